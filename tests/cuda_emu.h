// Run CUDA C kernels on the CPU (C++20): one std::thread per CUDA thread of a block,
// __syncthreads() as a std::barrier shared by them, blocks one after another.
//
// What it covers: __global__/__device__ functions, __shared__ (a function-level static:
// correct because one block runs at a time), threadIdx/blockIdx (thread_local),
// blockDim/gridDim, __syncthreads, __restrict__, __forceinline__, the <cmath> functions.
// Not covered: warp intrinsics (__shfl*_sync, __ballot_sync), atomics, dynamic shared
// memory (extern __shared__), streams, texture/constant memory. About 1000 threads per
// block is the practical limit.
//
// A race the kernel has on the GPU is a race here: compiled with -fsanitize=thread,
// ThreadSanitizer reports it (the barrier is a real synchronisation, so correct code
// reports nothing).
#pragma once

#include <barrier>
#include <cmath>
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

using std::exp;
using std::fabs;
using std::tanh;

inline void __syncthreads() { cuda_emu_barrier->arrive_and_wait(); }

// kernel<<<grid, block>>>(): ``body`` is called once per CUDA thread.
template <class Body>
void cuda_emu_launch(dim3 grid, dim3 block, Body body) {
    gridDim = grid;
    blockDim = block;
    const unsigned n = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
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
