// CUDA kernels of the fused IRNN / RNN recurrence (irnn_chainer/kernels/cuda.py compiles
// this file with cupy.RawKernel; tests/cuda_emu.h compiles the same text with g++ to run
// it on the CPU).
//
//   forward:   h_t = act(EB[ids[:, t]] + h_{t-1} W^T)           h_{-1} = 0, EB = E + b
//   backward:  d_t = (g_t + d_{t+1} W) * act'(h_t)              g_t = gseq[t] (+ gT at t = T-1)
//
// The whole time loop runs inside the kernel. One block owns ROWS batch rows; thread j owns
// units j, j + blockDim.x, ... of every row. The matrix (W^T forward, W backward, both
// read as M[k * H + j]) sits in shared memory when it fits (W_SHARED), the previous step's
// states (or gradients) in a double buffer in shared memory, so one __syncthreads per step
// is enough: step t reads buf[(t-1) & 1] and writes buf[t & 1], and the barrier after step t
// orders step t's reads of buf[(t-1) & 1] before step t+1's writes to it.
// dW (one product over all steps), db and dE (scatter-add) are computed by the caller.
//
// Compile-time parameters (NVRTC -D options): REAL (float or double), H_UNITS, ROWS,
// W_SHARED (0 or 1). Runtime: act 0 = relu, 1 = tanh.

#ifndef REAL
#define REAL float
#endif
#ifndef H_UNITS
#define H_UNITS 100
#endif
#ifndef ROWS
#define ROWS 1
#endif
#ifndef W_SHARED
#define W_SHARED 1
#endif
#ifndef IRNN_SYNC
#define IRNN_SYNC() __syncthreads()
#endif

#define H H_UNITS

// relu keeps a NaN (as np.maximum does), so a non-finite loss is still seen as one
__device__ __forceinline__ REAL irnn_act(REAL x, int act) {
    if (act) return tanh(x);
    return (x > (REAL)0 || x != x) ? x : (REAL)0;
}

// act'(pre) expressed with h = act(pre): relu: h > 0; tanh: 1 - h^2
__device__ __forceinline__ REAL irnn_dact(REAL g, REAL h, int act) {
    if (act) return (1 - h * h) * g;
    return h > (REAL)0 ? g : (REAL)0;
}

// out[r][j] += sum_k v[r][k] * M[k * H + j] for the ROWS rows of v (shared, ROWS x H)
__device__ __forceinline__ void irnn_matvec(const REAL* v, const REAL* M, int j, REAL* acc) {
    for (int k = 0; k < H; ++k) {
        const REAL m = M[k * H + j];
        for (int r = 0; r < ROWS; ++r) acc[r] += v[r * H + k] * m;
    }
}

// ids (B, T) int32; EB (V, H) = E + b; MT (H, H) = W^T; hs (T, B, H) written when keep;
// hT (B, H).
extern "C" __global__ void irnn_forward(const int* __restrict__ ids, const REAL* __restrict__ EB,
                                        const REAL* __restrict__ MT, REAL* __restrict__ hs,
                                        REAL* __restrict__ hT, int B, int T, int keep, int act) {
    __shared__ REAL buf[2][ROWS * H];
#if W_SHARED
    __shared__ REAL Ms[H * H];
    for (int i = threadIdx.x; i < H * H; i += blockDim.x) Ms[i] = MT[i];
    __syncthreads();
#else
    const REAL* Ms = MT;
#endif
    const int row0 = blockIdx.x * ROWS;
    for (int t = 0; t < T; ++t) {
        REAL* cur = buf[t & 1];
        const REAL* prev = buf[(t & 1) ^ 1];
        for (int j = threadIdx.x; j < H; j += blockDim.x) {
            REAL acc[ROWS];
            for (int r = 0; r < ROWS; ++r) {
                const int row = row0 + r;
                acc[r] = row < B ? EB[(long long)ids[(long long)row * T + t] * H + j] : (REAL)0;
            }
            if (t) irnn_matvec(prev, Ms, j, acc);
            for (int r = 0; r < ROWS; ++r) {
                const int row = row0 + r;
                const REAL h = row < B ? irnn_act(acc[r], act) : (REAL)0;
                cur[r * H + j] = h;
                if (keep && row < B) hs[((long long)t * B + row) * H + j] = h;
            }
        }
        IRNN_SYNC();
    }
    const REAL* last = buf[(T - 1) & 1];
    for (int j = threadIdx.x; j < H; j += blockDim.x)
        for (int r = 0; r < ROWS; ++r)
            if (row0 + r < B) hT[(long long)(row0 + r) * H + j] = last[r * H + j];
}

// hs (T, B, H) the forward's states; M (H, H) = W; gT (B, H) used when has_gT; gseq
// (T, B, H) used when has_gseq; dpre (T, B, H) out: dL/d(pre-activation) at every step.
extern "C" __global__ void irnn_backward(const REAL* __restrict__ hs, const REAL* __restrict__ M,
                                         const REAL* __restrict__ gT, const REAL* __restrict__ gseq,
                                         REAL* __restrict__ dpre, int B, int T, int has_gT,
                                         int has_gseq, int act) {
    __shared__ REAL buf[2][ROWS * H];
#if W_SHARED
    __shared__ REAL Ms[H * H];
    for (int i = threadIdx.x; i < H * H; i += blockDim.x) Ms[i] = M[i];
    __syncthreads();
#else
    const REAL* Ms = M;
#endif
    const int row0 = blockIdx.x * ROWS;
    for (int t = T - 1, s = 0; t >= 0; --t, ++s) {
        REAL* cur = buf[s & 1];
        const REAL* prev = buf[(s & 1) ^ 1];
        for (int j = threadIdx.x; j < H; j += blockDim.x) {
            REAL acc[ROWS];
            for (int r = 0; r < ROWS; ++r) {
                const int row = row0 + r;
                acc[r] = (s == 0 && has_gT && row < B) ? gT[(long long)row * H + j] : (REAL)0;
            }
            if (s) irnn_matvec(prev, Ms, j, acc);
            for (int r = 0; r < ROWS; ++r) {
                const int row = row0 + r;
                REAL d = 0;
                if (row < B) {
                    const long long at = ((long long)t * B + row) * H + j;
                    REAL g = acc[r];
                    if (has_gseq) g += gseq[at];
                    d = irnn_dact(g, hs[at], act);
                    dpre[at] = d;
                }
                cur[r * H + j] = d;
            }
        }
        IRNN_SYNC();
    }
}
