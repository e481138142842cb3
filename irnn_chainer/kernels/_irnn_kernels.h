/* The CPU kernels for one dtype at one instruction-set level: included by _irnn_isa.h
 * with REAL, VEC, IVEC, VL (lanes per vector), IRNN_F32, TANH, SUF (the name suffix) and
 * IRNN_RR (batch rows per register block) defined. See _irnn_cpu.c for the design. */

IRNN_INLINE VEC SUF(vload)(const REAL *p) {
    VEC v;
    memcpy(&v, p, sizeof(VEC));
    return v;
}

/* Store the first n lanes of v to p (all of them when n >= VL, none when n <= 0: below
 * 64-byte vectors the padding to HP holds whole vectors past the last column). */
IRNN_INLINE void SUF(vstore)(REAL *p, VEC v, Py_ssize_t n) {
    if (n >= VL)
        memcpy(p, &v, sizeof(VEC));
    else if (n > 0)
        memcpy(p, &v, (size_t)n * sizeof(REAL));
}

#include "_vmath.h"

/* acc[c][r] = init[r] + sum_k in[r * in_rs + k * in_ks] * M[k * m_stride + jc + c VL :]
 * (rows_acc; rows_block then stores out[r, :HP] = act(acc), bwd_block its own output stage)
 * for rb rows, NV (1 or 2) vectors of columns at a time, the rb x NV accumulators in
 * registers: per k, NV loads of M and rb broadcasts of the input feed rb x NV FMAs (two
 * vectors per pass halve the broadcasts per FMA, which bound the one-vector loop). Every
 * output element sums over k in the same order whatever rb and NV, so the blocking changes
 * no bit. init[r]: row pointers (NULL: start from 0). Stores write the first n_out columns
 * of each out row (stride out_stride). Reads of M may run past column n_out of a row up to
 * the next multiple of VL (callers make sure that memory exists). relu when do_relu. */
IRNN_INLINE void SUF(rows_acc)(const int rb, const int NV, Py_ssize_t jc,
                               const REAL *const *init, const REAL *in, Py_ssize_t in_rs,
                               Py_ssize_t in_ks, Py_ssize_t K, const REAL *M,
                               Py_ssize_t m_stride, VEC acc[2][IRNN_RR]) {
#pragma GCC unroll 2
    for (int c = 0; c < NV; c++)
#pragma GCC unroll 16
        for (int r = 0; r < rb; r++)
            acc[c][r] = init ? SUF(vload)(init[r] + jc + c * VL) : (VEC){0};
    if (in) {
        const REAL *m = M + jc;
        const REAL *x = in;
        for (Py_ssize_t k = 0; k < K; k++, m += m_stride, x += in_ks) {
            VEC w[2];
#pragma GCC unroll 2
            for (int c = 0; c < NV; c++) w[c] = SUF(vload)(m + c * VL);
#pragma GCC unroll 16
            for (int r = 0; r < rb; r++) {
                const REAL xr = x[r * in_rs];
#pragma GCC unroll 2
                for (int c = 0; c < NV; c++) acc[c][r] += xr * w[c];
            }
        }
    }
}

/* rows_acc, then relu when do_relu, then the stores */
IRNN_INLINE void SUF(rows_block)(const int rb, const int NV, Py_ssize_t jc,
                                 const REAL *const *init, const REAL *in, Py_ssize_t in_rs,
                                 Py_ssize_t in_ks, Py_ssize_t K, const REAL *M,
                                 Py_ssize_t m_stride, REAL *out, Py_ssize_t out_stride,
                                 Py_ssize_t n_out, int do_relu) {
    VEC acc[2][IRNN_RR];
    SUF(rows_acc)(rb, NV, jc, init, in, in_rs, in_ks, K, M, m_stride, acc);
    if (do_relu) {
        const VEC zero = (VEC){0};
#pragma GCC unroll 2
        for (int c = 0; c < NV; c++)
#pragma GCC unroll 16
            for (int r = 0; r < rb; r++)
                acc[c][r] = (VEC)((IVEC)acc[c][r] & (IVEC)(acc[c][r] > zero));
    }
#pragma GCC unroll 2
    for (int c = 0; c < NV; c++)
#pragma GCC unroll 16
        for (int r = 0; r < rb; r++)
            SUF(vstore)(out + r * out_stride + jc + c * VL, acc[c][r], n_out - jc - c * VL);
}

IRNN_INLINE void SUF(rows_product)(const int rb, const REAL *const *init, const REAL *in,
                                   Py_ssize_t in_rs, Py_ssize_t in_ks, Py_ssize_t K,
                                   const REAL *M, Py_ssize_t m_stride, Py_ssize_t HP,
                                   REAL *out, Py_ssize_t out_stride, Py_ssize_t n_out,
                                   int do_relu) {
    Py_ssize_t jc = 0;
    for (; jc + 2 * VL <= HP; jc += 2 * VL)
        SUF(rows_block)(rb, 2, jc, init, in, in_rs, in_ks, K, M, m_stride, out, out_stride,
                        n_out, do_relu);
    if (jc < HP)
        SUF(rows_block)(rb, 1, jc, init, in, in_rs, in_ks, K, M, m_stride, out, out_stride,
                        n_out, do_relu);
}

/* One row, sparse input: out[:n_out] = act(init + sum_{k: x[k] != 0} x[k] M[k, :HP]).
 * The nonzero k are compacted first (branch-free), then NC vectors of columns are
 * accumulated in registers per pass. ReLU states and their masked gradients are often
 * half zeros, which this skips; cost per nonzero equals the blocked kernel's. */
IRNN_INLINE void SUF(row_sparse_nc)(const int NC, const REAL *init, const REAL *x,
                                    const int32_t *idx, Py_ssize_t n, const REAL *M,
                                    Py_ssize_t HP, Py_ssize_t c0, REAL *out, Py_ssize_t n_out,
                                    int do_relu) {
    VEC acc[8];
#pragma GCC unroll 8
    for (int c = 0; c < NC; c++) acc[c] = init ? SUF(vload)(init + c0 + c * VL) : (VEC){0};
    for (Py_ssize_t i = 0; i < n; i++) {
        const Py_ssize_t k = idx[i];
        const REAL xv = x[k];
        const REAL *m = M + k * HP + c0;
#pragma GCC unroll 8
        for (int c = 0; c < NC; c++) acc[c] += xv * SUF(vload)(m + c * VL);
    }
    if (do_relu) {
        const VEC zero = (VEC){0};
#pragma GCC unroll 8
        for (int c = 0; c < NC; c++) acc[c] = (VEC)((IVEC)acc[c] & (IVEC)(acc[c] > zero));
    }
#pragma GCC unroll 8
    for (int c = 0; c < NC; c++) SUF(vstore)(out + c0 + c * VL, acc[c], n_out - c0 - c * VL);
}

IRNN_INLINE void SUF(row_sparse)(const REAL *init, const REAL *x, Py_ssize_t K, const REAL *M,
                                 Py_ssize_t HP, REAL *out, Py_ssize_t n_out, int do_relu,
                                 int32_t *idx) {
    Py_ssize_t n = 0;
    if (x)
        for (Py_ssize_t k = 0; k < K; k++) {
            idx[n] = (int32_t)k;
            n += x[k] != 0;
        }
    for (Py_ssize_t c0 = 0; c0 < HP; c0 += 8 * VL) {
        switch ((HP - c0) / VL) {
#define IRNN_CASE(NC) case NC: SUF(row_sparse_nc)(NC, init, x, idx, n, M, HP, c0, out, n_out, do_relu); break;
            IRNN_CASE(1) IRNN_CASE(2) IRNN_CASE(3) IRNN_CASE(4) IRNN_CASE(5) IRNN_CASE(6)
            IRNN_CASE(7)
#undef IRNN_CASE
            default: SUF(row_sparse_nc)(8, init, x, idx, n, M, HP, c0, out, n_out, do_relu);
        }
    }
}

/* ---- forward: each thread runs all T steps for its units of IRNN_RB batch rows, IRNN_RR
 * rows per register block (rows do not interact, so no synchronisation per step, and a row's
 * bits do not depend on which thread or block computes it). */
typedef struct {
    const int32_t *ids;
    Py_ssize_t B, T, H, HP;
    const REAL *EB, *WT;
    REAL *hs, *scratch;
    int act;
} SUF(fwd_args);

static void SUF(forward_rows)(void *p, Py_ssize_t u0, Py_ssize_t u1) {
    const SUF(fwd_args) *a = (const SUF(fwd_args) *)p;
    const Py_ssize_t B = a->B, T = a->T, H = a->H, HP = a->HP, BH = B * H;
    const Py_ssize_t r0 = u0 * IRNN_RB, r1 = u1 * IRNN_RB < B ? u1 * IRNN_RB : B;
    const REAL *EB = a->EB, *WT = a->WT;
    const int32_t *ids = a->ids;
    const int relu = a->act == ACT_RELU;
    const REAL *init[IRNN_RR];
    int32_t *idx = irnn_sparse_fwd ? (int32_t *)malloc((size_t)H * sizeof(int32_t)) : NULL;
    for (Py_ssize_t t = 0; t < T; t++) {
        const REAL *prev = t == 0 ? NULL
                                  : (a->hs ? a->hs + (t - 1) * BH : a->scratch + ((t - 1) & 1) * BH);
        REAL *cur = a->hs ? a->hs + t * BH : a->scratch + (t & 1) * BH;
        if (idx) {
            for (Py_ssize_t r = r0; r < r1; r++)
                SUF(row_sparse)(EB + (Py_ssize_t)ids[r * T + t] * HP, prev ? prev + r * H : NULL,
                                H, WT, HP, cur + r * H, H, relu, idx);
        } else {
            Py_ssize_t r = r0;
            for (; r + IRNN_RR <= r1; r += IRNN_RR) {
                for (int i = 0; i < IRNN_RR; i++)
                    init[i] = EB + (Py_ssize_t)ids[(r + i) * T + t] * HP;
                SUF(rows_product)(IRNN_RR, init, prev ? prev + r * H : NULL, H, 1, H, WT, HP, HP,
                                  cur + r * H, H, H, relu);
            }
            for (; r < r1; r++) {
                init[0] = EB + (Py_ssize_t)ids[r * T + t] * HP;
                SUF(rows_product)(1, init, prev ? prev + r * H : NULL, H, 1, H, WT, HP, HP,
                                  cur + r * H, H, H, relu);
            }
        }
        if (!relu) SUF(tanh_inplace)(cur + r0 * H, (r1 - r0) * H);
    }
    free(idx);
}

static void SUF(forward)(const int32_t *ids, Py_ssize_t B, Py_ssize_t T, Py_ssize_t H,
                         Py_ssize_t HP, const REAL *EB, const REAL *WT, REAL *hs, REAL *scratch,
                         REAL *hT, int act, int n_threads) {
    SUF(fwd_args) a = {ids, B, T, H, HP, EB, WT, hs, scratch, act};
    irnn_parallel(n_threads, (B + IRNN_RB - 1) / IRNN_RB, SUF(forward_rows), &a);
    const Py_ssize_t BH = B * H;
    memcpy(hT, hs ? hs + (T - 1) * BH : scratch + ((T - 1) & 1) * BH, (size_t)BH * sizeof(REAL));
}

/* ---- backward: each thread runs the reverse loop for its blocks of IRNN_RB batch rows
 * (rows do not interact: no synchronisation per step). Per step t and block, with d_t =
 * dL/dpre_t of the block's rows (in registers or L1):
 *
 *   dE[ids[:, t]] += d_t,  db += d_t                     (the block's partial sums)
 *   dW^T += h_{t-1}^T d_t                                 (the block's partial, in L2)
 *   d_{t-1} = act'(h_{t-1}) * (d_t W + gseq_{t-1})        (one product; its output stage
 *                                                          is the mask)
 *
 * Everything a step needs is the block's d_t and h_{t-1}: the states are read once, and
 * no (T, B, H) gradient is written (d cycles through two slots). The partials are summed
 * over the blocks in block order afterwards, and each block sums over t in one order: the
 * same bits for any number of threads. A unit's rows go through the products IRNN_RR at a
 * time; dW^T still adds them in row order, so the register blocking changes no bit. */
typedef struct {
    const int32_t *ids;
    Py_ssize_t B, T, H, HP, V;
    const REAL *Wp, *hs, *gT, *gseq;
    REAL *ring, *part, *carry;
    int act;
} SUF(bwd_args);

/* the partial sums of block u: dE (V x HP), db (HP), dW^T (H x HP) */
#define IRNN_PART_SIZE(V, H, HP) ((V) * (HP) + (HP) + (H) * (HP))
#if IRNN_RB % IRNN_RR
#error "IRNN_RR must divide IRNN_RB (a register block may not straddle two units)"
#endif

/* out[r] = act'(h[r]) * (in[r] W + gs[r]) for rb rows of in (stride HP) and NV vectors of
 * columns from jc: the product as rows_block computes it, then + gs[r] (stride H; may be
 * NULL), times act'(h[r]) (stride H), lanes at or past column H zeroed, stored whole to out
 * (stride HP). Loads of h and gs run up to VL - 1 elements past a row's column H: callers
 * pass rows of steps before T-1, so that memory is the next row or step of the array. */
IRNN_INLINE void SUF(bwd_block)(const int rb, const int NV, Py_ssize_t jc, const REAL *in,
                                const REAL *M, Py_ssize_t HP, const REAL *h, const REAL *gs,
                                Py_ssize_t H, REAL *out, int tanh_act) {
    VEC acc[2][IRNN_RR];
    SUF(rows_acc)(rb, NV, jc, NULL, in, HP, 1, H, M, HP, acc);
    const VEC zero = (VEC){0};
#pragma GCC unroll 2
    for (int c = 0; c < NV; c++) {
        IVEC valid;
        for (int i = 0; i < VL; i++) valid[i] = jc + c * VL + i < H ? -1 : 0;
#pragma GCC unroll 16
        for (int r = 0; r < rb; r++) {
            VEC g = acc[c][r];
            if (gs) g += SUF(vload)(gs + r * H + jc + c * VL);
            const VEC hv = SUF(vload)(h + r * H + jc + c * VL);
            const VEC d = tanh_act ? g * (1 - hv * hv) : (VEC)((IVEC)g & (IVEC)(hv > zero));
            SUF(vstore)(out + r * HP + jc + c * VL, (VEC)((IVEC)d & valid), VL);
        }
    }
}

/* dWT[i, jc:] += sum_r h[r, i] d[r, jc:] for i < H, NV vectors of columns: d's rb x NV
 * vectors stay in registers while i runs over the rows of dWT (stride HP, in L2). */
IRNN_INLINE void SUF(dwt_block)(const int rb, const int NV, Py_ssize_t jc, const REAL *d,
                                Py_ssize_t HP, const REAL *h, Py_ssize_t H, REAL *dWT) {
    VEC dv[2][IRNN_RR];
#pragma GCC unroll 2
    for (int c = 0; c < NV; c++)
#pragma GCC unroll 16
        for (int r = 0; r < rb; r++) dv[c][r] = SUF(vload)(d + r * HP + jc + c * VL);
    for (Py_ssize_t i = 0; i < H; i++) {
        REAL *o = dWT + i * HP + jc;
        VEC acc[2];
#pragma GCC unroll 2
        for (int c = 0; c < NV; c++) acc[c] = SUF(vload)(o + c * VL);
#pragma GCC unroll 16
        for (int r = 0; r < rb; r++) {
            const REAL hr = h[r * H + i];
#pragma GCC unroll 2
            for (int c = 0; c < NV; c++) acc[c] += hr * dv[c][r];
        }
#pragma GCC unroll 2
        for (int c = 0; c < NV; c++) SUF(vstore)(o + c * VL, acc[c], VL);
    }
}

IRNN_INLINE void SUF(dwt_step)(const int rb, const REAL *d, Py_ssize_t HP, const REAL *h,
                               Py_ssize_t H, REAL *dWT) {
    Py_ssize_t jc = 0;
    for (; jc + 2 * VL <= HP; jc += 2 * VL) SUF(dwt_block)(rb, 2, jc, d, HP, h, H, dWT);
    if (jc < HP) SUF(dwt_block)(rb, 1, jc, d, HP, h, H, dWT);
}

/* one step of rb rows: dW^T += h_prev^T d, then d_prev (see bwd_block) */
IRNN_INLINE void SUF(bwd_step)(const int rb, const REAL *d, const REAL *Wp, Py_ssize_t H,
                               Py_ssize_t HP, const REAL *h, const REAL *gs, REAL *d_prev,
                               REAL *dWT, int tanh_act) {
    SUF(dwt_step)(rb, d, HP, h, H, dWT);
    Py_ssize_t jc = 0;
    for (; jc + 2 * VL <= HP; jc += 2 * VL)
        SUF(bwd_block)(rb, 2, jc, d, Wp, HP, h, gs, H, d_prev, tanh_act);
    if (jc < HP) SUF(bwd_block)(rb, 1, jc, d, Wp, HP, h, gs, H, d_prev, tanh_act);
}

/* d[:HP] = act'(h) * (c + gs) for one row (the last step, and the sparse mode) */
IRNN_INLINE void SUF(bwd_mask_row)(const REAL *restrict h, const REAL *restrict c,
                                   const REAL *restrict gs, Py_ssize_t H, Py_ssize_t HP,
                                   REAL *restrict d, int tanh_act) {
    for (Py_ssize_t j = 0; j < H; j++) {
        const REAL g = c ? (gs ? c[j] + gs[j] : c[j]) : (gs ? gs[j] : 0);
        d[j] = tanh_act ? g * (1 - h[j] * h[j]) : (h[j] > 0 ? g : 0);
    }
    for (Py_ssize_t j = H; j < HP; j++) d[j] = 0;
}

static void SUF(backward_rows)(void *p, Py_ssize_t u0, Py_ssize_t u1) {
    const SUF(bwd_args) *a = (const SUF(bwd_args) *)p;
    const Py_ssize_t B = a->B, T = a->T, H = a->H, HP = a->HP, V = a->V, BH = B * H;
    const Py_ssize_t r0 = u0 * IRNN_RB, r1 = u1 * IRNN_RB < B ? u1 * IRNN_RB : B;
    const Py_ssize_t n = (r1 - r0) * H, part = IRNN_PART_SIZE(V, H, HP);
    const int tanh_act = a->act == ACT_TANH;
    const REAL *Wp = a->Wp;
    int32_t *idx = irnn_sparse_bwd ? (int32_t *)malloc((size_t)H * sizeof(int32_t)) : NULL;
    for (Py_ssize_t b = r0; b < r1; b++)
        SUF(bwd_mask_row)(a->hs + (T - 1) * BH + b * H, a->gT ? a->gT + b * H : NULL,
                          a->gseq ? a->gseq + (T - 1) * BH + b * H : NULL, H, HP,
                          a->ring + ((T - 1) & 1) * B * HP + b * HP, tanh_act);
    for (Py_ssize_t t = T - 1; t >= 0; t--) {
        const REAL *dt = a->ring + (t & 1) * B * HP;
        for (Py_ssize_t b = r0; b < r1; b++) {
            REAL *pu = a->part + (b / IRNN_RB) * part;
            REAL *restrict de = pu + (Py_ssize_t)a->ids[b * T + t] * HP, *restrict dbb = pu + V * HP;
            const REAL *restrict d = dt + b * HP;
            for (Py_ssize_t j = 0; j < HP; j++) de[j] += d[j];
            for (Py_ssize_t j = 0; j < HP; j++) dbb[j] += d[j];
        }
        if (t == 0) break;
        REAL *dp = a->ring + ((t - 1) & 1) * B * HP;
        const REAL *hp = a->hs + (t - 1) * BH, *gp = a->gseq ? a->gseq + (t - 1) * BH : NULL;
        /* the states a step ahead: the loop walks hs backwards, which the hardware
         * prefetchers follow poorly (the mask's loads of h stall otherwise) */
        if (t > 1) {
            const char *next = (const char *)(a->hs + (t - 2) * BH + r0 * H);
            for (Py_ssize_t o = 0; o < n * (Py_ssize_t)sizeof(REAL); o += 64)
                __builtin_prefetch(next + o, 0, 3);
        }
        Py_ssize_t r = r0;
        if (idx) {
            for (; r < r1; r++) {
                REAL *dWT = a->part + (r / IRNN_RB) * part + V * HP + HP;
                SUF(dwt_step)(1, dt + r * HP, HP, hp + r * H, H, dWT);
                SUF(row_sparse)(NULL, dt + r * HP, H, Wp, HP, a->carry + r * HP, H, 0, idx);
                SUF(bwd_mask_row)(hp + r * H, a->carry + r * HP, gp ? gp + r * H : NULL, H, HP,
                                  dp + r * HP, tanh_act);
            }
            continue;
        }
        for (; r + IRNN_RR <= r1; r += IRNN_RR)
            SUF(bwd_step)(IRNN_RR, dt + r * HP, Wp, H, HP, hp + r * H, gp ? gp + r * H : NULL,
                          dp + r * HP, a->part + (r / IRNN_RB) * part + V * HP + HP, tanh_act);
        for (; r < r1; r++)
            SUF(bwd_step)(1, dt + r * HP, Wp, H, HP, hp + r * H, gp ? gp + r * H : NULL,
                          dp + r * HP, a->part + (r / IRNN_RB) * part + V * HP + HP, tanh_act);
    }
    free(idx);
}

/* ring: (2, B, HP) scratch for d; carry: (B, HP) scratch of the sparse mode; dWT: (H, HP),
 * dW^T padded. Returns 0, or -1 when the partial sums could not be allocated. */
static int SUF(backward)(const int32_t *ids, Py_ssize_t B, Py_ssize_t T, Py_ssize_t H,
                         Py_ssize_t HP, Py_ssize_t V, const REAL *Wp, const REAL *hs,
                         const REAL *gT, const REAL *gseq, REAL *ring, REAL *dE, REAL *db,
                         REAL *carry, REAL *dWT, int act, int n_threads) {
    const Py_ssize_t n_blocks = (B + IRNN_RB - 1) / IRNN_RB, part = IRNN_PART_SIZE(V, H, HP);
    REAL *parts = (REAL *)calloc((size_t)(n_blocks * part), sizeof(REAL));
    if (!parts) return -1;
    SUF(bwd_args) a = {ids, B, T, H, HP, V, Wp, hs, gT, gseq, ring, parts, carry, act};
    irnn_parallel(n_threads, n_blocks, SUF(backward_rows), &a);
    /* the blocks' partials summed in block order */
    for (Py_ssize_t u = 1; u < n_blocks; u++) {
        const REAL *pu = parts + u * part;
        for (Py_ssize_t i = 0; i < part; i++) parts[i] += pu[i];
    }
    for (Py_ssize_t v = 0; v < V; v++) memcpy(dE + v * H, parts + v * HP, (size_t)H * sizeof(REAL));
    memcpy(db, parts + V * HP, (size_t)H * sizeof(REAL));
    memcpy(dWT, parts + V * HP + HP, (size_t)(H * HP) * sizeof(REAL));
    free(parts);
    return 0;
}

/* ---- LSTM (the paper's baseline; fused.lstm_recurrence) -------------------------------
 * Gates in block layout [a | i | f | o], each H wide (the caller permutes Chainer's
 * interleaved columns once per call), rows padded from N4 = 4H to N4P columns:
 *   z_t = Gb[ids_t] + h_{t-1} UbT      (Gb: V x N4P, the upward Linear folded into a table;
 *                                       UbT: H x N4P; h_{-1} = 0, c_{-1} = 0)
 *   a = tanh z^a;  i, f, o = sigmoid z = tanh(z / 2) / 2 + 1 / 2 (as Chainer computes it)
 *   c_t = a i + f c_{t-1},   h_t = o tanh(c_t)
 * Saved for backward: the gates after their nonlinearities (T, B, N4P), c and h (T, B, H);
 * without keep, two slots of each are cycled. Threads split the batch rows as in the IRNN. */
IRNN_INLINE void SUF(sigmoid_inplace)(REAL *a, Py_ssize_t n) {
    Py_ssize_t i = 0;
    for (; i < n; i++) a[i] *= (REAL)0.5;
    SUF(tanh_inplace)(a, n);
    for (i = 0; i < n; i++) a[i] = a[i] * (REAL)0.5 + (REAL)0.5;
}

typedef struct {
    const int32_t *ids;
    Py_ssize_t B, T, H, N4P;
    const REAL *Gb, *UbT;
    REAL *gates, *cs, *hs;
    int keep;
} SUF(lstm_fwd_args);

static void SUF(lstm_forward_rows)(void *p, Py_ssize_t u0, Py_ssize_t u1) {
    const SUF(lstm_fwd_args) *a = (const SUF(lstm_fwd_args) *)p;
    const Py_ssize_t B = a->B, T = a->T, H = a->H, N4P = a->N4P, BH = B * H;
    const Py_ssize_t r0 = u0 * IRNN_RB, r1 = u1 * IRNN_RB < B ? u1 * IRNN_RB : B;
    const REAL *init[IRNN_RR];
    for (Py_ssize_t t = 0; t < T; t++) {
        const Py_ssize_t s = a->keep ? t : (t & 1), sp = a->keep ? t - 1 : ((t - 1) & 1);
        REAL *g = a->gates + (a->keep ? t : 0) * B * N4P;
        REAL *c = a->cs + s * BH, *h = a->hs + s * BH;
        const REAL *cp = t ? a->cs + sp * BH : NULL, *hp = t ? a->hs + sp * BH : NULL;
        Py_ssize_t r = r0;
        for (; r + IRNN_RR <= r1; r += IRNN_RR) {
            for (int i = 0; i < IRNN_RR; i++) init[i] = a->Gb + (Py_ssize_t)a->ids[(r + i) * T + t] * N4P;
            SUF(rows_product)(IRNN_RR, init, hp ? hp + r * H : NULL, H, 1, H, a->UbT, N4P, N4P,
                              g + r * N4P, N4P, N4P, 0);
        }
        for (; r < r1; r++) {
            init[0] = a->Gb + (Py_ssize_t)a->ids[r * T + t] * N4P;
            SUF(rows_product)(1, init, hp ? hp + r * H : NULL, H, 1, H, a->UbT, N4P, N4P,
                              g + r * N4P, N4P, N4P, 0);
        }
        for (r = r0; r < r1; r++) {
            REAL *gr = g + r * N4P;
            REAL *restrict cr = c + r * H, *restrict hr = h + r * H;
            SUF(tanh_inplace)(gr, H);                 /* a */
            SUF(sigmoid_inplace)(gr + H, 3 * H);      /* i, f, o */
            const REAL *restrict ga = gr, *restrict gi = gr + H, *restrict gf = gr + 2 * H;
            if (cp) {
                const REAL *restrict cpr = cp + r * H;
                for (Py_ssize_t j = 0; j < H; j++) {
                    const REAL fc = gf[j] * cpr[j];
                    cr[j] = ga[j] * gi[j] + fc;
                }
            } else
                for (Py_ssize_t j = 0; j < H; j++) cr[j] = ga[j] * gi[j];
            memcpy(hr, cr, (size_t)H * sizeof(REAL));
            SUF(tanh_inplace)(hr, H);
            const REAL *restrict go = gr + 3 * H;
            for (Py_ssize_t j = 0; j < H; j++) hr[j] *= go[j];
        }
    }
}

static void SUF(lstm_forward)(const int32_t *ids, Py_ssize_t B, Py_ssize_t T, Py_ssize_t H,
                              Py_ssize_t N4P, const REAL *Gb, const REAL *UbT, REAL *gates,
                              REAL *cs, REAL *hs, int keep, int n_threads) {
    SUF(lstm_fwd_args) a = {ids, B, T, H, N4P, Gb, UbT, gates, cs, hs, keep};
    irnn_parallel(n_threads, (B + IRNN_RB - 1) / IRNN_RB, SUF(lstm_forward_rows), &a);
}

/* Backward in one pass, as the IRNN's (rows over threads): per step and block, the reverse
 * loop gives dz_t (two slots of (B, N4P), zeros past N4); then the scatter-add dGb[ids] +=
 * dz_t, dU^T += h_{t-1}^T dz_t and dL/dh_{t-1} = dz_t Ub, the first two into per-block
 * partials (dGu: V x N4, then H x N4P) summed in block order after. */
typedef struct {
    const int32_t *ids;
    Py_ssize_t B, T, H, HP, N4P, V;
    const REAL *Ub, *gates, *cs, *hs, *gT;
    REAL *dz, *dGu, *dh, *dc, *tcu;
} SUF(lstm_bwd_args);

#define IRNN_LSTM_PART(V, H, N4P) ((V) * 4 * (H) + (H) * (N4P))

static void SUF(lstm_backward_rows)(void *p, Py_ssize_t u0, Py_ssize_t u1) {
    const SUF(lstm_bwd_args) *a = (const SUF(lstm_bwd_args) *)p;
    const Py_ssize_t B = a->B, T = a->T, H = a->H, HP = a->HP, N4P = a->N4P, V = a->V, BH = B * H;
    const Py_ssize_t N4 = 4 * H;
    const Py_ssize_t r0 = u0 * IRNN_RB, r1 = u1 * IRNN_RB < B ? u1 * IRNN_RB : B;
    REAL *tc = a->tcu + u0 * H; /* this thread's tanh(c_t) row, allocated by the caller */
    memcpy(a->dh + r0 * H, a->gT + r0 * H, (size_t)((r1 - r0) * H) * sizeof(REAL));
    memset(a->dc + r0 * H, 0, (size_t)((r1 - r0) * H) * sizeof(REAL));
    const Py_ssize_t part = IRNN_LSTM_PART(V, H, N4P);
    for (Py_ssize_t t = T - 1; t >= 0; t--) {
        REAL *dzt = a->dz + (t & 1) * B * N4P;
        if (t > 1) { /* the saved gates and cells of the step before, one step ahead (as in
                      * the IRNN's backward: the reverse walk defeats the prefetchers) */
            const char *g1 = (const char *)(a->gates + ((t - 1) * B + r0) * N4P);
            const char *c2 = (const char *)(a->cs + (t - 2) * BH + r0 * H);
            for (Py_ssize_t o = 0; o < (r1 - r0) * N4P * (Py_ssize_t)sizeof(REAL); o += 64)
                __builtin_prefetch(g1 + o, 0, 3);
            for (Py_ssize_t o = 0; o < (r1 - r0) * H * (Py_ssize_t)sizeof(REAL); o += 64)
                __builtin_prefetch(c2 + o, 0, 3);
        }
        for (Py_ssize_t b = r0; b < r1; b++) {
            const REAL *restrict g = a->gates + (t * B + b) * N4P;
            const REAL *restrict ga = g, *restrict gi = g + H, *restrict gf = g + 2 * H,
                       *restrict go = g + 3 * H;
            const REAL *restrict c = a->cs + t * BH + b * H;
            const REAL *restrict cp = t ? a->cs + (t - 1) * BH + b * H : NULL;
            REAL *restrict dh = a->dh + b * H, *restrict dc = a->dc + b * H;
            REAL *restrict d = dzt + b * N4P;
            REAL *restrict da = d, *restrict di = d + H, *restrict df = d + 2 * H,
                 *restrict dO = d + 3 * H;
            memcpy(tc, c, (size_t)H * sizeof(REAL));
            SUF(tanh_inplace)(tc, H);
            for (Py_ssize_t j = 0; j < H; j++) {
                dO[j] = dh[j] * tc[j];
                dc[j] += (1 - tc[j] * tc[j]) * go[j] * dh[j];
                da[j] = dc[j] * gi[j];
                di[j] = dc[j] * ga[j];
                df[j] = cp ? dc[j] * cp[j] : 0;
                dc[j] *= gf[j];
                da[j] *= 1 - ga[j] * ga[j];
            }
            for (Py_ssize_t j = H; j < N4; j++) d[j] *= g[j] * (1 - g[j]);
            for (Py_ssize_t j = N4; j < N4P; j++) d[j] = 0;
            REAL *restrict dg = a->dGu + (b / IRNN_RB) * part + (Py_ssize_t)a->ids[b * T + t] * N4;
            for (Py_ssize_t j = 0; j < N4; j++) dg[j] += d[j];
        }
        if (t == 0) break;
        const REAL *hp = a->hs + (t - 1) * BH;
        Py_ssize_t r = r0;
        for (; r + IRNN_RR <= r1; r += IRNN_RR) {
            SUF(dwt_step)(IRNN_RR, dzt + r * N4P, N4P, hp + r * H, H,
                          a->dGu + (r / IRNN_RB) * part + V * N4);
            SUF(rows_product)(IRNN_RR, NULL, dzt + r * N4P, N4P, 1, N4, a->Ub, HP, HP,
                              a->dh + r * H, H, H, 0);
        }
        for (; r < r1; r++) {
            SUF(dwt_step)(1, dzt + r * N4P, N4P, hp + r * H, H, a->dGu + (r / IRNN_RB) * part + V * N4);
            SUF(rows_product)(1, NULL, dzt + r * N4P, N4P, 1, N4, a->Ub, HP, HP, a->dh + r * H, H,
                              H, 0);
        }
    }
}

/* dGb: V x N4 (unpadded), dUT: H x N4P. Returns 0, or -1 when out of memory. */
static int SUF(lstm_backward)(const int32_t *ids, Py_ssize_t B, Py_ssize_t T, Py_ssize_t H,
                              Py_ssize_t HP, Py_ssize_t N4P, Py_ssize_t V, const REAL *Ub,
                              const REAL *gates, const REAL *cs, const REAL *hs, const REAL *gT,
                              REAL *dz, REAL *dGb, REAL *dh, REAL *dc, REAL *dUT, int n_threads) {
    const Py_ssize_t n_blocks = (B + IRNN_RB - 1) / IRNN_RB, N4 = 4 * H;
    const Py_ssize_t part = IRNN_LSTM_PART(V, H, N4P);
    /* per block: a partial dGb (V x N4) and dU^T (H x N4P); after them, a row per block for
     * tanh(c_t) */
    REAL *dGu = (REAL *)calloc((size_t)(n_blocks * (part + H)), sizeof(REAL));
    if (!dGu) return -1;
    SUF(lstm_bwd_args) a = {ids, B, T, H, HP, N4P, V, Ub, gates, cs, hs, gT, dz, dGu, dh, dc,
                            dGu + n_blocks * part};
    irnn_parallel(n_threads, n_blocks, SUF(lstm_backward_rows), &a);
    for (Py_ssize_t u = 1; u < n_blocks; u++) {
        const REAL *pu = dGu + u * part;
        for (Py_ssize_t i = 0; i < part; i++) dGu[i] += pu[i];
    }
    memcpy(dGb, dGu, (size_t)(V * N4) * sizeof(REAL));
    memcpy(dUT, dGu + V * N4, (size_t)(H * N4P) * sizeof(REAL));
    free(dGu);
    return 0;
}

/* For the tests: out[i] = tanh(in[i]) by this kernel's own tanh (SUF(vtanh)), in the
 * caller's floating-point mode (no flush-to-zero), so subnormals can be checked too. */
static void SUF(tanh_array)(const REAL *in, REAL *out, Py_ssize_t n) {
    memcpy(out, in, (size_t)n * sizeof(REAL));
    SUF(tanh_inplace)(out, n);
}

