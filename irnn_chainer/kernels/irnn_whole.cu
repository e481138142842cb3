// The whole IRNN training update in three CUDA kernels (irnn_chainer/kernels/cuda.py,
// WholeUpdate, launches them; tests/cuda_emu.h runs the same text on the CPU):
//
//   irnn_whole_rows    one block per batch row, persistent over all T steps: forward,
//                      readout, softmax cross entropy, backward; writes the row's gradient
//                      (and loss, correct) as one partial vector
//   irnn_whole_reduce  sums the B partials of every element in row order (0, 1, .., B-1),
//                      and per block the squares of its sums and a non-finite flag
//   irnn_whole_apply   the global norm from those per-block sums (same order in every
//                      block), skip-if-non-finite, clipping, SGD or RMSprop, and the
//                      interval statistics (loss, accuracy, updates, skipped)
//
// Model (Chainer's links): E = pixel_to_h/W (V, H), W = h_to_h/W (H, H), b = h_to_h/b (H),
// Wy = h_to_y/W (O, H), by = h_to_y/b (O);  h_t = act(E[id_t] + b + W h_{t-1}), h_{-1} = 0,
// y = Wy h_T + by, loss = mean over rows of softmax cross entropy.
//
// No atomics anywhere: every sum has one fixed order, so the result is the same bits on
// every run.
//
// irnn_whole_rows layout: SPLIT consecutive threads (one warp quarter for SPLIT 4..) share
// unit j = tid / SPLIT; thread q = tid % SPLIT keeps W[j][k] for k = q, q + SPLIT, ... in
// registers (W[k][j] in the backward), multiplies them with the previous state read from
// shared memory, and the SPLIT partial sums meet through __shfl_xor_sync (a butterfly:
// every lane ends with the same bits, since a + b == b + a exactly). One __syncthreads per
// step orders the state's double buffer. Dynamic shared memory holds, when EB_SHARED: the
// table E + b (V x H) for the forward, reused as dE for the backward; always: the ids row,
// the state double buffer, a double buffer of h_{t-1} for dW, small readout buffers.
// dW lives in registers (thread (j, q) owns dW[j][k] for its k), db in a register, dE in
// shared memory (column j is only ever touched by thread (j, 0), in step order).
//
// Compile-time: REAL (float/double), H_UNITS, V_ROWS, N_OUT, SPLIT (power of two <= 32),
// EB_SHARED (0/1). The block has THREADS = SPLIT * unit slots threads (a multiple of 32).

#ifndef REAL
#define REAL float
#endif
#ifndef H_UNITS
#define H_UNITS 100
#endif
#ifndef V_ROWS
#define V_ROWS 256
#endif
#ifndef N_OUT
#define N_OUT 10
#endif
#ifndef SPLIT
#define SPLIT 4
#endif
#ifndef EB_SHARED
#define EB_SHARED 1
#endif
#ifndef WHOLE_SYNC
#define WHOLE_SYNC() __syncthreads()
#endif
#ifndef MIN_BLOCKS
#define MIN_BLOCKS 1
#endif

#define WH H_UNITS
#define KP ((WH + SPLIT - 1) / SPLIT)                    // W values per thread
#define SLOTS ((((WH + 32 / SPLIT - 1) / (32 / SPLIT)) * 32) / SPLIT)  // units, padded to warps
#define THREADS (SLOTS * SPLIT)
#define HPAD (KP * SPLIT > SLOTS ? KP * SPLIT : SLOTS)   // a state buffer, padded with zeros
// flat layout of the gradient (the same order as the parameters): E, W, b, Wy, by; then
// the row's loss and correct (0/1)
#define OFF_E 0
#define OFF_W (OFF_E + V_ROWS * WH)
#define OFF_B (OFF_W + WH * WH)
#define OFF_WY (OFF_B + WH)
#define OFF_BY (OFF_WY + N_OUT * WH)
#define PSIZE (OFF_BY + N_OUT)
#define PART (PSIZE + 2)
#define FULL_MASK 0xffffffffu
#define REDUCE_THREADS 256

__device__ __forceinline__ REAL whole_act(REAL x, int act) {
    if (act) return tanh(x);
    return (x > (REAL)0 || x != x) ? x : (REAL)0;  // relu keeps a NaN, as np.maximum does
}

__device__ __forceinline__ REAL whole_dact(REAL g, REAL h, int act) {
    if (act) return (1 - h * h) * g;
    return h > (REAL)0 ? g : (REAL)0;
}

// sum_i w[i] * v[q + SPLIT i]: four independent chains (a dependent FMA chain of KP
// would put KP FMA latencies on every step's critical path), added in a fixed order
__device__ __forceinline__ REAL split_dot(const REAL* w, const REAL* v, int q) {
    REAL a[4] = {0, 0, 0, 0};
#pragma unroll
    for (int i = 0; i < KP; ++i) a[i & 3] += w[i] * v[q + SPLIT * i];
    return (a[0] + a[1]) + (a[2] + a[3]);
}

// the SPLIT partial sums of one unit, added as a butterfly: all SPLIT lanes get the sum
__device__ __forceinline__ REAL split_sum(REAL v) {
#pragma unroll
    for (int off = SPLIT / 2; off > 0; off >>= 1) v += __shfl_xor_sync(FULL_MASK, v, off);
    return v;
}

// data (N, T) int32 ids of the whole training set, labels (N,); row r of the batch is
// example order[offset + r]. hs (B, T, H) scratch. part (B, PART) out.
extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS)
irnn_whole_rows(const int* __restrict__ data, const int* __restrict__ labels,
                const int* __restrict__ order, int offset, const REAL* __restrict__ E,
                const REAL* __restrict__ W, const REAL* __restrict__ b,
                const REAL* __restrict__ Wy, const REAL* __restrict__ by,
                REAL* __restrict__ hs, REAL* __restrict__ part, int B, int T, int act) {
    extern __shared__ __align__(16) unsigned char whole_smem[];
#if EB_SHARED
    REAL* tab = reinterpret_cast<REAL*>(whole_smem);      // V x H: E + b, then dE
    REAL* hbuf = tab + V_ROWS * WH;
#else
    REAL* hbuf = reinterpret_cast<REAL*>(whole_smem);
#endif
    REAL* hprev = hbuf + 2 * HPAD;                         // 2 x HPAD: h_{t-1} for dW
    REAL* ys = hprev + 2 * HPAD;                           // N_OUT: logits, then dy
    REAL* gT = ys + N_OUT;                                 // HPAD: dL/dh_T
    int* ids = reinterpret_cast<int*>(gT + HPAD);          // T

    const int tid = threadIdx.x;
    const int j = tid / SPLIT, q = tid % SPLIT;
    const bool unit = j < WH;
    const int row = blockIdx.x;
    const long long ex = order[offset + row];
    const int label = labels[ex];
    REAL* out = part + (long long)row * PART;
    const REAL* hrow = hs + (long long)row * T * WH;
    REAL* hrow_w = hs + (long long)row * T * WH;

    for (int i = tid; i < T; i += THREADS) ids[i] = data[ex * T + i];
#if EB_SHARED
    for (int i = tid; i < V_ROWS * WH; i += THREADS) tab[i] = E[i] + b[i % WH];
#endif
    for (int i = tid; i < 4 * HPAD; i += THREADS) hbuf[i] = 0;  // hbuf and hprev
    REAL w[KP];
#pragma unroll
    for (int i = 0; i < KP; ++i) {
        const int k = q + SPLIT * i;
        w[i] = (unit && k < WH) ? W[j * WH + k] : (REAL)0;
    }
#if !EB_SHARED
    const REAL bj = unit ? b[j] : (REAL)0;
#endif
    __syncthreads();

    // ---- forward
    for (int t = 0; t < T; ++t) {
        const REAL* prev = hbuf + ((t & 1) ^ 1) * HPAD;
        REAL* cur = hbuf + (t & 1) * HPAD;
        // the input's row first: it does not depend on the previous state
        REAL eb = 0;
        if (unit && q == 0) {
#if EB_SHARED
            eb = tab[ids[t] * WH + j];
#else
            eb = E[(long long)ids[t] * WH + j] + bj;
#endif
        }
        const REAL acc = split_sum(split_dot(w, prev, q));
        if (unit && q == 0) {
            const REAL h = whole_act(eb + acc, act);
            cur[j] = h;
            hrow_w[(long long)t * WH + j] = h;
        }
        WHOLE_SYNC();
    }

    // ---- readout and softmax cross entropy (Chainer's: log-softmax with the max taken out)
    const REAL* hT = hbuf + ((T - 1) & 1) * HPAD;
    if (tid < N_OUT) {
        REAL y = by[tid];
        for (int k = 0; k < WH; ++k) y += Wy[tid * WH + k] * hT[k];
        ys[tid] = y;
    }
    __syncthreads();
    if (tid == 0) {
        REAL m = ys[0];
        int arg = 0;
        for (int c = 1; c < N_OUT; ++c)
            if (ys[c] > m) { m = ys[c]; arg = c; }
        REAL s = 0;
        for (int c = 0; c < N_OUT; ++c) s += exp(ys[c] - m);
        const REAL lse = log(s);
        out[PSIZE] = lse - (ys[label] - m);
        out[PSIZE + 1] = (REAL)(arg == label);
        const REAL coeff = (REAL)1 / (REAL)B;
        for (int c = 0; c < N_OUT; ++c) {
            const REAL p = exp(ys[c] - m - lse);
            ys[c] = (p - (REAL)(c == label)) * coeff;  // dL/dy
        }
    }
    __syncthreads();
    for (int i = tid; i < N_OUT * WH; i += THREADS) out[OFF_WY + i] = ys[i / WH] * hT[i % WH];
    if (tid < N_OUT) out[OFF_BY + tid] = ys[tid];
    if (tid < WH) {
        REAL g = 0;
        for (int c = 0; c < N_OUT; ++c) g += Wy[c * WH + tid] * ys[c];
        gT[tid] = g;
    }
    __syncthreads();  // every read of hT (in hbuf) and of tab (E + b) is done

    // ---- backward: d_t = (g_t + W^T d_{t+1}) * act'(h_t); dW += d_t h_{t-1}^T
#pragma unroll
    for (int i = 0; i < KP; ++i) {
        const int k = q + SPLIT * i;
        w[i] = (unit && k < WH) ? W[k * WH + j] : (REAL)0;
    }
    REAL dw[KP];
#pragma unroll
    for (int i = 0; i < KP; ++i) dw[i] = 0;
    REAL db = 0;
#if EB_SHARED
    REAL* dE = tab;
    for (int i = tid; i < V_ROWS * WH; i += THREADS) dE[i] = 0;
#else
    REAL* dE = out + OFF_E;
    for (int i = tid; i < V_ROWS * WH; i += THREADS) dE[i] = 0;
#endif
    for (int i = tid; i < 2 * HPAD; i += THREADS) hbuf[i] = 0;
    // h_{T-1}[j] for the first step's act', h_{T-2} (all units) for its dW
    REAL hcur = (unit && T >= 1) ? hrow[(long long)(T - 1) * WH + j] : (REAL)0;
    if (unit && q == 0 && T >= 2) hprev[j] = hrow[(long long)(T - 2) * WH + j];
    __syncthreads();
    for (int t = T - 1, s = 0; t >= 0; --t, ++s) {
        const REAL* dnext = hbuf + ((s & 1) ^ 1) * HPAD;
        REAL* dcur = hbuf + (s & 1) * HPAD;
        const REAL* hp = hprev + (s & 1) * HPAD;        // h_{t-1}
        REAL* hp_next = hprev + ((s & 1) ^ 1) * HPAD;   // h_{t-2}, for the next step
        // loads for the next step, issued before this step's chain
        const REAL hcur_next = (unit && t >= 1) ? hrow[(long long)(t - 1) * WH + j] : (REAL)0;
        const REAL hp2 = (unit && q == 0 && t >= 2) ? hrow[(long long)(t - 2) * WH + j] : (REAL)0;
        const REAL acc = split_sum(split_dot(w, dnext, q));
        REAL d = 0;
        if (unit) {
            const REAL g = s == 0 ? acc + gT[j] : acc;
            d = whole_dact(g, hcur, act);
        }
        if (t >= 1) {
#pragma unroll
            for (int i = 0; i < KP; ++i) dw[i] += d * hp[q + SPLIT * i];
        }
        db += d;
        if (unit && q == 0) {
            dcur[j] = d;
            dE[ids[t] * WH + j] += d;
            hp_next[j] = hp2;
        }
        hcur = hcur_next;
        WHOLE_SYNC();
    }

    // ---- the row's partial gradient
    if (unit) {
#pragma unroll
        for (int i = 0; i < KP; ++i) {
            const int k = q + SPLIT * i;
            if (k < WH) out[OFF_W + j * WH + k] = dw[i];
        }
        if (q == 0) out[OFF_B + j] = db;
    }
#if EB_SHARED
    for (int i = tid; i < V_ROWS * WH; i += THREADS) out[OFF_E + i] = dE[i];
#endif
}

// grad (PART) = sum over rows of part (B, PART), rows in order; per block: the sum of the
// squares of its gradient elements (tree, fixed order) and whether any is not finite
extern "C" __global__ void __launch_bounds__(REDUCE_THREADS)
irnn_whole_reduce(const REAL* __restrict__ part, REAL* __restrict__ grad,
                  REAL* __restrict__ blocksq, int* __restrict__ blockbad, int B) {
    __shared__ REAL sq[REDUCE_THREADS];
    __shared__ int bad[REDUCE_THREADS];
    const int e = blockIdx.x * REDUCE_THREADS + threadIdx.x;
    REAL g = 0;
    if (e < PART) {
#pragma unroll 8
        for (int r = 0; r < B; ++r) g += part[(long long)r * PART + e];  // loads ahead, adds in order
        grad[e] = g;
    }
    const bool param = e < PSIZE;
    sq[threadIdx.x] = param ? g * g : (REAL)0;
    bad[threadIdx.x] = param && !(g - g == (REAL)0);  // inf - inf and NaN - NaN are NaN
    __syncthreads();
    for (int n = REDUCE_THREADS / 2; n > 0; n >>= 1) {
        if (threadIdx.x < n) {
            sq[threadIdx.x] += sq[threadIdx.x + n];
            bad[threadIdx.x] |= bad[threadIdx.x + n];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        blocksq[blockIdx.x] = sq[0];
        blockbad[blockIdx.x] = bad[0];
    }
}

// Every block: the squared norm as the sum of blocksq[0 .. nsq) (tree, fixed order), then
// for its elements: g = 0 when skip and some element is not finite (Chainer's model then
// still runs the optimizer on zeros), g *= min(clip / norm, 1) when clip > 0 (Chainer's
// GradientClipping on a device), then SGD (param -= lr g) or RMSprop (Chainer's GPU rule:
// ms = alpha ms + (1 - alpha) g g; param -= lr g / (sqrt(ms) + eps)). Block 0, thread 0
// adds this update's mean loss, accuracy, 1 and skipped to stats (double, 6): loss sum,
// accuracy sum, updates, skipped, last loss, last norm.
extern "C" __global__ void __launch_bounds__(REDUCE_THREADS)
irnn_whole_apply(const REAL* __restrict__ grad, const REAL* __restrict__ blocksq,
                 const int* __restrict__ blockbad, int nsq, REAL* __restrict__ E,
                 REAL* __restrict__ W, REAL* __restrict__ b, REAL* __restrict__ Wy,
                 REAL* __restrict__ by, REAL* __restrict__ msE, REAL* __restrict__ msW,
                 REAL* __restrict__ msb, REAL* __restrict__ msWy, REAL* __restrict__ msby,
                 double* __restrict__ stats, int B, int rmsprop, int skip, REAL clip, REAL lr,
                 REAL alpha, REAL eps) {
    __shared__ REAL sq[REDUCE_THREADS];
    __shared__ int bad[REDUCE_THREADS];
    REAL s = 0;
    int f = 0;
    for (int i = threadIdx.x; i < nsq; i += REDUCE_THREADS) {
        s += blocksq[i];
        f |= blockbad[i];
    }
    sq[threadIdx.x] = s;
    bad[threadIdx.x] = f;
    __syncthreads();
    for (int n = REDUCE_THREADS / 2; n > 0; n >>= 1) {
        if (threadIdx.x < n) {
            sq[threadIdx.x] += sq[threadIdx.x + n];
            bad[threadIdx.x] |= bad[threadIdx.x + n];
        }
        __syncthreads();
    }
    const bool zero = skip && bad[0];
    const REAL norm = zero ? (REAL)0 : sqrt(sq[0]);
    REAL rate = 1;
    if (clip > (REAL)0 && !zero) {
        rate = clip / norm;
        if (!(rate < (REAL)1)) rate = 1;  // also for norm 0 (rate inf), as Chainer clips
    }
    const int e = blockIdx.x * REDUCE_THREADS + threadIdx.x;
    if (e < PSIZE) {
        REAL* p;
        REAL* ms;
        int i;
        if (e < OFF_W) { p = E; ms = msE; i = e - OFF_E; }
        else if (e < OFF_B) { p = W; ms = msW; i = e - OFF_W; }
        else if (e < OFF_WY) { p = b; ms = msb; i = e - OFF_B; }
        else if (e < OFF_BY) { p = Wy; ms = msWy; i = e - OFF_WY; }
        else { p = by; ms = msby; i = e - OFF_BY; }
        REAL g = zero ? (REAL)0 : grad[e] * rate;
        if (rmsprop) {
            const REAL m = alpha * ms[i] + (1 - alpha) * g * g;
            ms[i] = m;
            p[i] -= lr * g / (sqrt(m) + eps);
        } else {
            p[i] -= lr * g;
        }
    }
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        const double loss = (double)(grad[PSIZE] * ((REAL)1 / (REAL)B));
        stats[0] += loss;
        stats[1] += (double)grad[PSIZE + 1] / B;
        stats[2] += 1;
        stats[3] += zero ? 1 : 0;
        stats[4] = loss;
        stats[5] = (double)norm;
    }
}
