// The fused-recurrence CUDA kernels (irnn_chainer/kernels/irnn_cuda.cu, included as is)
// on the CPU through cuda_emu.h, with one C entry point per kernel taking (grid, block)
// and then the kernel's own arguments, for tests/test_cuda_kernel.py (ctypes).
#include "cuda_emu.h"
#include "irnn_cuda.cu"

extern "C" void launch_irnn_forward(unsigned grid, unsigned block, const int* ids, const REAL* EB,
                                    const REAL* MT, REAL* hs, REAL* hT, int B, int T, int keep,
                                    int act) {
    cuda_emu_launch(dim3(grid), dim3(block), [=] { irnn_forward(ids, EB, MT, hs, hT, B, T, keep, act); });
}

extern "C" void launch_irnn_backward(unsigned grid, unsigned block, const REAL* hs, const REAL* M,
                                     const REAL* gT, const REAL* gseq, REAL* dpre, int B, int T,
                                     int has_gT, int has_gseq, int act) {
    cuda_emu_launch(dim3(grid), dim3(block),
                    [=] { irnn_backward(hs, M, gT, gseq, dpre, B, T, has_gT, has_gseq, act); });
}
