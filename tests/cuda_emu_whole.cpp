// The whole-update CUDA kernels (irnn_chainer/kernels/irnn_whole.cu, with its one
// `extern __shared__` line rewritten for C++ by tests/test_cuda_whole.py) on the CPU through
// cuda_emu.h: one C entry point per kernel taking (grid, block, dynamic shared bytes) and
// then the kernel's own arguments; plus a probe of the warp shuffles.
#include "cuda_emu.h"
#include "irnn_whole_emu.cu"

extern "C" void launch_irnn_whole_rows(unsigned grid, unsigned block, unsigned shared,
                                       const int* data, const int* labels, const int* order,
                                       int offset, const REAL* E, const REAL* W, const REAL* b,
                                       const REAL* Wy, const REAL* by, REAL* hs, REAL* part,
                                       int B, int T, int act) {
    cuda_emu_launch(dim3(grid), dim3(block), [=] {
        irnn_whole_rows(data, labels, order, offset, E, W, b, Wy, by, hs, part, B, T, act);
    }, shared);
}

extern "C" void launch_irnn_whole_reduce(unsigned grid, unsigned block, unsigned shared,
                                         const REAL* part, REAL* grad, REAL* blocksq,
                                         int* blockbad, int B) {
    cuda_emu_launch(dim3(grid), dim3(block), [=] { irnn_whole_reduce(part, grad, blocksq, blockbad, B); },
                    shared);
}

extern "C" void launch_irnn_whole_apply(unsigned grid, unsigned block, unsigned shared,
                                        const REAL* grad, const REAL* blocksq, const int* blockbad,
                                        int nsq, REAL* E, REAL* W, REAL* b, REAL* Wy, REAL* by,
                                        REAL* msE, REAL* msW, REAL* msb, REAL* msWy, REAL* msby,
                                        double* stats, int B, int rmsprop, int skip, REAL clip,
                                        REAL lr, REAL alpha, REAL eps) {
    cuda_emu_launch(dim3(grid), dim3(block), [=] {
        irnn_whole_apply(grad, blocksq, blockbad, nsq, E, W, b, Wy, by, msE, msW, msb, msWy, msby,
                         stats, B, rmsprop, skip, clip, lr, alpha, eps);
    }, shared);
}

// out[mode][width index][operand][lane]: what lane `lane` gets from __shfl*_sync(FULL,
// 100 + lane, operand, width), modes idx, up, down, xor; widths 1, 2, .., 32; operands 0..31;
// one warp of 32
extern "C" void probe_shuffles(int* out) {
    cuda_emu_launch(dim3(1), dim3(32), [=] {
        const int lane = threadIdx.x;
        for (int wi = 0; wi < 6; ++wi) {
            const int width = 1 << wi;
            for (int o = 0; o < 32; ++o) {
                const int base = (wi * 32 + o) * 32 + lane;
                out[0 * 6 * 32 * 32 + base] = __shfl_sync(0xffffffffu, 100 + lane, o, width);
                out[1 * 6 * 32 * 32 + base] = __shfl_up_sync(0xffffffffu, 100 + lane, o, width);
                out[2 * 6 * 32 * 32 + base] = __shfl_down_sync(0xffffffffu, 100 + lane, o, width);
                out[3 * 6 * 32 * 32 + base] = __shfl_xor_sync(0xffffffffu, 100 + lane, o, width);
            }
        }
    });
}

// a dynamic shared buffer of n ints, read before any write: the fill pattern
extern "C" void probe_dynamic_shared(int n, int* out) {
    cuda_emu_launch(dim3(2), dim3(64), [=] {
        CUDA_EMU_EXTERN_SHARED(int, dyn);
        if (threadIdx.x == 0)
            for (int i = 0; i < n; ++i) out[blockIdx.x * n + i] = dyn[i];
        __syncthreads();
        for (int i = threadIdx.x; i < n; i += blockDim.x) dyn[i] = (int)(blockIdx.x * 1000 + i);
        __syncthreads();
    }, n * sizeof(int));
}
