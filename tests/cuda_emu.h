// Run CUDA C kernels on the CPU (C++20): one std::thread per CUDA thread of a block,
// __syncthreads() as a std::barrier shared by them, blocks one after another.
//
// What it covers: __global__/__device__ functions, __shared__ (a function-level static:
// correct because one block runs at a time), threadIdx/blockIdx (thread_local),
// blockDim/gridDim, __syncthreads, __restrict__, __forceinline__, __launch_bounds__,
// __align__, the <cmath> functions; warp shuffles (__shfl_sync, __shfl_up_sync,
// __shfl_down_sync, __shfl_xor_sync, any width) computed as PTX's shfl.sync defines them
// for a full warp of 32 (every lane deposits its value at a per-warp barrier, then reads
// its source lane's; a source outside the lane's segment gives the lane its own value),
// and __syncwarp; dynamic shared memory: cuda_emu_launch's shared_bytes is one buffer per
// block, filled with 0xff bytes (a NaN as float or double, -1 as int) so that a read
// before a write shows, which the kernel reaches through
// CUDA_EMU_EXTERN_SHARED(type, name): C++ has no block-scope `extern __shared__`, so the
// test's build rewrites that one declaration into this macro (tests/test_cuda_whole.py).
// A shuffle with a mask other than all 32 lanes, or in a partial warp, stops the program:
// what the hardware leaves undefined is not guessed here.
// Not covered: __ballot_sync and the other vote/match intrinsics, atomics, streams,
// texture/constant memory. About 1000 threads per block is the practical limit.
//
// A race the kernel has on the GPU is a race here: compiled with -fsanitize=thread,
// ThreadSanitizer reports it (the barrier is a real synchronisation, so correct code
// reports nothing).
#pragma once

#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline thread_local dim3 threadIdx;
inline thread_local dim3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;
inline std::barrier<>* cuda_emu_barrier = nullptr;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

using std::exp;
using std::fabs;
using std::log;
using std::sqrt;
using std::tanh;

inline void __syncthreads() { cuda_emu_barrier->arrive_and_wait(); }

// ---- dynamic shared memory
inline void* cuda_emu_dynamic_shared = nullptr;
#define CUDA_EMU_EXTERN_SHARED(T, name) T* const name = static_cast<T*>(cuda_emu_dynamic_shared)

// ---- warps
struct cuda_emu_warp {
    std::unique_ptr<std::barrier<>> bar;
    unsigned size = 0;
    alignas(8) unsigned char slot[32][8];
};
inline std::vector<cuda_emu_warp>* cuda_emu_warps = nullptr;

[[noreturn]] inline void cuda_emu_fail(const char* what) {
    std::fprintf(stderr, "cuda_emu: %s\n", what);
    std::abort();
}

inline unsigned cuda_emu_linear_tid() {
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

inline void __syncwarp(unsigned mask = 0xffffffffu) {
    cuda_emu_warp& w = (*cuda_emu_warps)[cuda_emu_linear_tid() / 32];
    if (mask != 0xffffffffu || w.size != 32) cuda_emu_fail("__syncwarp: only a full mask in a full warp");
    w.bar->arrive_and_wait();
}

enum cuda_emu_shfl_mode { CUDA_EMU_IDX, CUDA_EMU_UP, CUDA_EMU_DOWN, CUDA_EMU_BFLY };

// PTX shfl.sync: c = ((32 - width) << 8) | clamp, clamp 0x1f (0 for up);
// segmask = c[12:8], minLane = lane & segmask, maxLane = minLane | (clamp & ~segmask);
// idx: j = minLane | (b & ~segmask), ok j <= maxLane; up: j = lane - b, ok j >= maxLane;
// down: j = lane + b, ok j <= maxLane; bfly: j = lane ^ b, ok j <= maxLane; not ok: own.
template <class T>
inline T cuda_emu_shfl(unsigned mask, T var, int b, int width, cuda_emu_shfl_mode mode) {
    static_assert(sizeof(T) <= 8, "shuffles move 4 or 8 bytes");
    const unsigned tid = cuda_emu_linear_tid();
    const int lane = tid % 32;
    cuda_emu_warp& w = (*cuda_emu_warps)[tid / 32];
    if (mask != 0xffffffffu || w.size != 32) cuda_emu_fail("__shfl*_sync: only a full mask in a full warp");
    if (width < 1 || width > 32 || (width & (width - 1))) cuda_emu_fail("__shfl*_sync: width is not a power of two <= 32");
    if (b < 0 || b > 31) cuda_emu_fail("__shfl*_sync: lane operand outside 0..31");
    std::memcpy(w.slot[lane], &var, sizeof(T));
    w.bar->arrive_and_wait();
    const int segmask = 32 - width;
    const int clamp = mode == CUDA_EMU_UP ? 0 : 0x1f;
    const int min_lane = lane & segmask, max_lane = min_lane | (clamp & ~segmask);
    int j = lane;
    bool ok = false;
    switch (mode) {
        case CUDA_EMU_IDX: j = min_lane | (b & ~segmask); ok = j <= max_lane; break;
        case CUDA_EMU_UP: j = lane - b; ok = j >= max_lane; break;
        case CUDA_EMU_DOWN: j = lane + b; ok = j <= max_lane; break;
        case CUDA_EMU_BFLY: j = lane ^ b; ok = j <= max_lane; break;
    }
    if (!ok) j = lane;
    T out;
    std::memcpy(&out, w.slot[j], sizeof(T));
    w.bar->arrive_and_wait();  // nobody deposits the next value before every lane has read
    return out;
}

template <class T> inline T __shfl_sync(unsigned m, T v, int src, int w = 32) { return cuda_emu_shfl(m, v, src, w, CUDA_EMU_IDX); }
template <class T> inline T __shfl_up_sync(unsigned m, T v, unsigned d, int w = 32) { return cuda_emu_shfl(m, v, (int)d, w, CUDA_EMU_UP); }
template <class T> inline T __shfl_down_sync(unsigned m, T v, unsigned d, int w = 32) { return cuda_emu_shfl(m, v, (int)d, w, CUDA_EMU_DOWN); }
template <class T> inline T __shfl_xor_sync(unsigned m, T v, int l, int w = 32) { return cuda_emu_shfl(m, v, l, w, CUDA_EMU_BFLY); }

// kernel<<<grid, block, shared_bytes>>>(): ``body`` is called once per CUDA thread.
template <class Body>
void cuda_emu_launch(dim3 grid, dim3 block, Body body, size_t shared_bytes = 0) {
    gridDim = grid;
    blockDim = block;
    const unsigned n = block.x * block.y * block.z;
    std::vector<cuda_emu_warp> warps((n + 31) / 32);
    for (unsigned i = 0; i < warps.size(); ++i) {
        warps[i].size = i + 1 < warps.size() || n % 32 == 0 ? 32 : n % 32;
        warps[i].bar = std::make_unique<std::barrier<>>(warps[i].size);
    }
    cuda_emu_warps = &warps;
    struct alignas(16) chunk { unsigned char b[16]; };
    std::vector<chunk> dynamic(shared_bytes / 16 + 1);  // 16-byte aligned
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                std::memset(dynamic.data(), 0xff, dynamic.size() * sizeof(chunk));
                cuda_emu_dynamic_shared = shared_bytes ? dynamic.data() : nullptr;
                std::barrier<> barrier(n);
                cuda_emu_barrier = &barrier;
                std::vector<std::thread> threads;
                threads.reserve(n);
                for (unsigned i = 0; i < n; ++i)
                    threads.emplace_back([&, i] {
                        blockIdx = dim3(bx, by, bz);
                        threadIdx = dim3(i % block.x, (i / block.x) % block.y, i / (block.x * block.y));
                        body();
                    });
                for (auto& t : threads) t.join();
            }
}
