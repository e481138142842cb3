/* CPU kernel for the fused IRNN recurrence (irnn_chainer.fused).
 *
 *   h_{-1} = 0,   h_t = act(E[ids[:, t]] + b + h_{t-1} W^T)      t = 0 .. T-1
 *
 * act: relu (ACT_RELU, the IRNN) or tanh (ACT_TANH, the rnn-tanh baseline; its backward
 * uses dpre_t = (dL/dh_t) * (1 - h_t^2)).
 *
 * forward_*:  the whole time loop in C; optionally keeps every h_t (T, B, H) for backward.
 * backward_*: the reverse loop in one pass over the states: per step, dpre_t = (dL/dh_t) *
 *             act'(h_t), the scatter-add dE[ids[b, t]] += dpre_t[b] and db += dpre_t[b],
 *             dW += dpre_t^T h_{t-1} (a partial per block of batch rows, in L2), and
 *             dL/dh_{t-1} = dpre_t W. An earlier version wrote every dpre_t (T, B, H) and
 *             read it and the states again for dW as one large product: 30 % slower, the
 *             second pass waiting on memory.
 *
 * Design: W (H x H, 40 KB in float32 for H = 100) stays in L1/L2 for the whole loop.
 * Each step is a register-blocked product: RR batch rows x two vectors of output units are
 * accumulated in registers while k runs over the H inputs, so W is read once per RR rows
 * and the state once per two vectors. W is passed padded to a multiple of 64 bytes (HP
 * columns, zero filled), everything else is unpadded and C-contiguous. Vectors use the
 * GCC/clang vector extension (portable C), their width and RR set per instruction-set level
 * (below). No numpy C API: arrays arrive through the buffer protocol, so building needs
 * nothing but a C compiler and Python's headers. The GIL is released in the loops.
 *
 * Files: this one (the Python glue and the choice of level); _irnn_isa.h instantiates the
 * kernels of _irnn_kernels.h for float32 and float64 at each level; _vmath.h (tanh) and
 * _threads.h (the thread pool) are shared.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(_M_X64) || defined(__SSE2__)
#include <xmmintrin.h>
#define IRNN_HAVE_MXCSR 1
#endif

/* Denormals: gradients that vanish along 784 steps reach subnormal floats, which cost
 * ~100x per operation on x86 (and slow BLAS on dW afterwards). The loops run with
 * flush-to-zero and denormals-are-zero set, and the caller's mode is restored after;
 * values below FLT_MIN / DBL_MIN become 0 (an absolute change < 1.2e-38 / 2.3e-308). */
#ifdef IRNN_HAVE_MXCSR
#define IRNN_FTZ_BEGIN unsigned int irnn_csr_ = _mm_getcsr(); _mm_setcsr(irnn_csr_ | 0x8040u);
#define IRNN_FTZ_END _mm_setcsr(irnn_csr_);
#else
#define IRNN_FTZ_BEGIN
#define IRNN_FTZ_END
#endif

/* Arrays are padded to whole 64-byte vectors (the widest level's) at every level. */
#define VBYTES 64

#ifndef IRNN_RB
#define IRNN_RB 8     /* batch rows per work unit: threads take whole units, and the
                       * backward's partial sums are per unit, summed in unit order */
#endif

#define IRNN_INLINE static inline __attribute__((always_inline))

#include "_threads.h"

#define ACT_RELU 0
#define ACT_TANH 1

/* Which product the recurrences use: 0 = the blocked dense kernel (default), 1 = the
 * sparse row kernel that skips zero states / gradients (set_modes(); both give the same
 * bits: adding zeros changes nothing). Measured here (H = 100, B = 16, AVX-512) the dense
 * one was as fast or faster even at 50% zeros, so it is the default. */
static int irnn_sparse_fwd = 0, irnn_sparse_bwd = 0;

/* Instruction-set levels. With GCC on x86-64 the kernels are compiled three times and the
 * module picks the best level the CPU (and OS) supports when it is imported:
 *
 *   avx512: 64-byte vectors (zmm), 8 rows per register block (16 accumulators of 32 zmm)
 *   avx2:   32-byte vectors (ymm) with FMA, 4 rows per register block (8 accumulators of 16
 *           ymm): an earlier build used the 64-byte vectors here too, which need two ymm
 *           each, so 8 rows spilled every accumulator and ran ~45x slower than AVX-512
 *   base:   16-byte vectors (SSE2, no FMA), 4 rows
 *
 * Every output element sums over its inputs in the same order at every level and row
 * blocking (the backward's dW adds a unit's rows in row order whatever the register block),
 * so avx512 and avx2, both with fused multiply-adds, give the same bits; base rounds each
 * product separately. Elsewhere (other compilers, other CPUs) one generic level is built
 * with the compiler's own flags: 16-byte vectors, 4 rows. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(IRNN_NO_CLONES) \
    && (__GNUC__ >= 6)
#define IRNN_MULTI_ISA 1
#else
#define IRNN_MULTI_ISA 0
#endif

#if IRNN_MULTI_ISA
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#define IRNN_ISA avx512
#define IRNN_VBYTES 64
#define IRNN_RR 8
#include "_irnn_isa.h"
#undef IRNN_ISA
#undef IRNN_VBYTES
#undef IRNN_RR
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define IRNN_ISA avx2
#define IRNN_VBYTES 32
#define IRNN_RR 4
#include "_irnn_isa.h"
#undef IRNN_ISA
#undef IRNN_VBYTES
#undef IRNN_RR
#pragma GCC pop_options
#endif

#define IRNN_ISA base
#define IRNN_VBYTES 16
#define IRNN_RR 4
#include "_irnn_isa.h"
#undef IRNN_ISA
#undef IRNN_VBYTES
#undef IRNN_RR

/* the levels, best first; irnn_level indexes them */
#if IRNN_MULTI_ISA
static const char *const irnn_levels[] = {"avx512", "avx2", "base"};
#define IRNN_N_LEVELS 3
#else
static const char *const irnn_levels[] = {"generic"};
#define IRNN_N_LEVELS 1
#endif
static int irnn_level = IRNN_N_LEVELS - 1;

static int irnn_level_supported(int level) {
#if IRNN_MULTI_ISA
    __builtin_cpu_init();
    if (level == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (level == 1) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return level >= 0 && level < IRNN_N_LEVELS;
}

/* IRNN_CALL(fn, args): fn (e.g. forward_f32) at the level in use */
#if IRNN_MULTI_ISA
#define IRNN_CALL(fn, ...)                                                                   \
    (irnn_level == 0 ? fn##_avx512(__VA_ARGS__)                                              \
                     : irnn_level == 1 ? fn##_avx2(__VA_ARGS__) : fn##_base(__VA_ARGS__))
#else
#define IRNN_CALL(fn, ...) fn##_base(__VA_ARGS__)
#endif

/* ---------------------------------------------------------------- Python glue */

typedef struct {
    Py_buffer views[12];
    int n;
} BufSet;

static void bufs_release(BufSet *s) {
    for (int i = 0; i < s->n; i++) PyBuffer_Release(&s->views[i]);
    s->n = 0;
}

/* Get a C-contiguous buffer of at least `need` bytes; obj may be None when allowed. */
static int get_buf(BufSet *s, PyObject *obj, int writable, Py_ssize_t need, const char *name,
                   void **ptr) {
    if (obj == Py_None) { *ptr = NULL; return 0; }
    Py_buffer *v = &s->views[s->n];
    if (PyObject_GetBuffer(obj, v, (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    s->n++;
    if (v->len < need) {
        PyErr_Format(PyExc_ValueError, "_irnn_cpu: buffer %s has %zd bytes, needs %zd",
                     name, v->len, need);
        return -1;
    }
    *ptr = v->buf;
    return 0;
}

static PyObject *py_forward(PyObject *self, PyObject *args) {
    int itemsize;
    Py_ssize_t B, T, H, HP, V;
    PyObject *o_ids, *o_eb, *o_wt, *o_hs, *o_scr, *o_ht;
    int act = ACT_RELU, n_threads = 1;
    if (!PyArg_ParseTuple(args, "innnnnOOOOOO|ii", &itemsize, &B, &T, &H, &HP, &V,
                          &o_ids, &o_eb, &o_wt, &o_hs, &o_scr, &o_ht, &act, &n_threads))
        return NULL;
    if (act != ACT_RELU && act != ACT_TANH) {
        PyErr_SetString(PyExc_ValueError, "_irnn_cpu.forward: act must be 0 (relu) or 1 (tanh)");
        return NULL;
    }
    if ((itemsize != 4 && itemsize != 8) || B < 1 || T < 1 || H < 1 || V < 1 || HP < H ||
        HP % (VBYTES / itemsize) != 0) {
        PyErr_SetString(PyExc_ValueError, "_irnn_cpu.forward: bad sizes");
        return NULL;
    }
    BufSet s = {.n = 0};
    void *ids, *eb, *wt, *hs, *scr, *ht;
    if (get_buf(&s, o_ids, 0, B * T * 4, "ids", &ids) ||
        get_buf(&s, o_eb, 0, V * HP * itemsize, "EB", &eb) ||
        get_buf(&s, o_wt, 0, H * HP * itemsize, "WT", &wt) ||
        get_buf(&s, o_hs, 1, T * B * H * itemsize, "hs", &hs) ||
        get_buf(&s, o_scr, 1, 2 * B * H * itemsize, "scratch", &scr) ||
        get_buf(&s, o_ht, 1, B * H * itemsize, "hT", &ht)) {
        bufs_release(&s);
        return NULL;
    }
    if (!ids || !eb || !wt || !scr || !ht) {
        bufs_release(&s);
        PyErr_SetString(PyExc_ValueError, "_irnn_cpu.forward: only hs may be None");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    IRNN_FTZ_BEGIN
    if (itemsize == 4)
        IRNN_CALL(forward_f32, ids, B, T, H, HP, eb, wt, hs, scr, ht, act, n_threads);
    else
        IRNN_CALL(forward_f64, ids, B, T, H, HP, eb, wt, hs, scr, ht, act, n_threads);
    IRNN_FTZ_END
    Py_END_ALLOW_THREADS
    bufs_release(&s);
    Py_RETURN_NONE;
}

static PyObject *py_backward(PyObject *self, PyObject *args) {
    int itemsize;
    Py_ssize_t B, T, H, HP, V;
    PyObject *o_ids, *o_wp, *o_hs, *o_gt, *o_gseq, *o_dpre, *o_de, *o_db, *o_carry, *o_dwp;
    int act = ACT_RELU, n_threads = 1, rc;
    if (!PyArg_ParseTuple(args, "innnnnOOOOOOOOOO|ii", &itemsize, &B, &T, &H, &HP, &V, &o_ids,
                          &o_wp, &o_hs, &o_gt, &o_gseq, &o_dpre, &o_de, &o_db, &o_carry,
                          &o_dwp, &act, &n_threads))
        return NULL;
    if (act != ACT_RELU && act != ACT_TANH) {
        PyErr_SetString(PyExc_ValueError, "_irnn_cpu.backward: act must be 0 (relu) or 1 (tanh)");
        return NULL;
    }
    if ((itemsize != 4 && itemsize != 8) || B < 1 || T < 1 || H < 1 || V < 1 || HP < H ||
        HP % (VBYTES / itemsize) != 0) {
        PyErr_SetString(PyExc_ValueError, "_irnn_cpu.backward: bad sizes");
        return NULL;
    }
    BufSet s = {.n = 0};
    void *ids, *wp, *hs, *gt, *gseq, *dpre, *de, *db, *carry, *dwp;
    if (get_buf(&s, o_ids, 0, B * T * 4, "ids", &ids) ||
        get_buf(&s, o_wp, 0, H * HP * itemsize, "Wp", &wp) ||
        get_buf(&s, o_hs, 0, T * B * H * itemsize, "hs", &hs) ||
        get_buf(&s, o_gt, 0, B * H * itemsize, "gT", &gt) ||
        get_buf(&s, o_gseq, 0, T * B * H * itemsize, "gseq", &gseq) ||
        get_buf(&s, o_dpre, 1, 2 * B * HP * itemsize, "ring", &dpre) ||
        get_buf(&s, o_de, 1, V * H * itemsize, "dE", &de) ||
        get_buf(&s, o_db, 1, H * itemsize, "db", &db) ||
        get_buf(&s, o_carry, 1, B * HP * itemsize, "carry", &carry) ||
        get_buf(&s, o_dwp, 1, H * HP * itemsize, "dWT", &dwp)) {
        bufs_release(&s);
        return NULL;
    }
    if (!ids || !wp || !hs || !dpre || !de || !db || !carry || !dwp) {
        bufs_release(&s);
        PyErr_SetString(PyExc_ValueError, "_irnn_cpu.backward: only gT and gseq may be None");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    IRNN_FTZ_BEGIN
    if (itemsize == 4)
        rc = IRNN_CALL(backward_f32, ids, B, T, H, HP, V, wp, hs, gt, gseq, dpre, de, db, carry, dwp, act,
                          n_threads);
    else
        rc = IRNN_CALL(backward_f64, ids, B, T, H, HP, V, wp, hs, gt, gseq, dpre, de, db, carry, dwp, act,
                          n_threads);
    IRNN_FTZ_END
    Py_END_ALLOW_THREADS
    bufs_release(&s);
    if (rc) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *py_lstm_forward(PyObject *self, PyObject *args) {
    int itemsize, keep, n_threads = 1;
    Py_ssize_t B, T, H, N4P, V;
    PyObject *o_ids, *o_gb, *o_ubt, *o_gates, *o_cs, *o_hs;
    if (!PyArg_ParseTuple(args, "innnnnOOOOOOp|i", &itemsize, &B, &T, &H, &N4P, &V, &o_ids,
                          &o_gb, &o_ubt, &o_gates, &o_cs, &o_hs, &keep, &n_threads))
        return NULL;
    if ((itemsize != 4 && itemsize != 8) || B < 1 || T < 1 || H < 1 || V < 1 || N4P < 4 * H ||
        N4P % (VBYTES / itemsize) != 0) {
        PyErr_SetString(PyExc_ValueError, "_irnn_cpu.lstm_forward: bad sizes");
        return NULL;
    }
    const Py_ssize_t slots = keep ? T : 2;
    BufSet s = {.n = 0};
    void *ids, *gb, *ubt, *gates, *cs, *hs;
    if (get_buf(&s, o_ids, 0, B * T * 4, "ids", &ids) ||
        get_buf(&s, o_gb, 0, V * N4P * itemsize, "Gb", &gb) ||
        get_buf(&s, o_ubt, 0, H * N4P * itemsize, "UbT", &ubt) ||
        get_buf(&s, o_gates, 1, (keep ? T : 1) * B * N4P * itemsize, "gates", &gates) ||
        get_buf(&s, o_cs, 1, slots * B * H * itemsize, "cs", &cs) ||
        get_buf(&s, o_hs, 1, slots * B * H * itemsize, "hs", &hs) ||
        !ids || !gb || !ubt || !gates || !cs || !hs) {
        bufs_release(&s);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "_irnn_cpu.lstm_forward: None given");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    IRNN_FTZ_BEGIN
    if (itemsize == 4)
        IRNN_CALL(lstm_forward_f32, ids, B, T, H, N4P, gb, ubt, gates, cs, hs, keep, n_threads);
    else
        IRNN_CALL(lstm_forward_f64, ids, B, T, H, N4P, gb, ubt, gates, cs, hs, keep, n_threads);
    IRNN_FTZ_END
    Py_END_ALLOW_THREADS
    bufs_release(&s);
    Py_RETURN_NONE;
}

static PyObject *py_lstm_backward(PyObject *self, PyObject *args) {
    int itemsize, n_threads = 1, rc;
    Py_ssize_t B, T, H, HP, N4P, V;
    PyObject *o_ids, *o_ub, *o_gates, *o_cs, *o_hs, *o_gt, *o_dz, *o_dg, *o_dh, *o_dc, *o_dut;
    if (!PyArg_ParseTuple(args, "innnnnnOOOOOOOOOOO|i", &itemsize, &B, &T, &H, &HP, &N4P, &V,
                          &o_ids, &o_ub, &o_gates, &o_cs, &o_hs, &o_gt, &o_dz, &o_dg, &o_dh,
                          &o_dc, &o_dut, &n_threads))
        return NULL;
    if ((itemsize != 4 && itemsize != 8) || B < 1 || T < 1 || H < 1 || V < 1 || N4P < 4 * H ||
        HP < H || N4P % (VBYTES / itemsize) != 0 || HP % (VBYTES / itemsize) != 0) {
        PyErr_SetString(PyExc_ValueError, "_irnn_cpu.lstm_backward: bad sizes");
        return NULL;
    }
    BufSet s = {.n = 0};
    void *ids, *ub, *gates, *cs, *hs, *gt, *dz, *dg, *dh, *dc, *dut;
    if (get_buf(&s, o_ids, 0, B * T * 4, "ids", &ids) ||
        get_buf(&s, o_ub, 0, 4 * H * HP * itemsize, "Ub", &ub) ||
        get_buf(&s, o_gates, 0, T * B * N4P * itemsize, "gates", &gates) ||
        get_buf(&s, o_cs, 0, T * B * H * itemsize, "cs", &cs) ||
        get_buf(&s, o_hs, 0, T * B * H * itemsize, "hs", &hs) ||
        get_buf(&s, o_gt, 0, B * H * itemsize, "gT", &gt) ||
        get_buf(&s, o_dz, 1, 2 * B * N4P * itemsize, "dz", &dz) ||
        get_buf(&s, o_dg, 1, V * 4 * H * itemsize, "dGb", &dg) ||
        get_buf(&s, o_dh, 1, B * H * itemsize, "dh", &dh) ||
        get_buf(&s, o_dc, 1, B * H * itemsize, "dc", &dc) ||
        get_buf(&s, o_dut, 1, H * N4P * itemsize, "dUT", &dut) ||
        !ids || !ub || !gates || !cs || !hs || !gt || !dz || !dg || !dh || !dc || !dut) {
        bufs_release(&s);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "_irnn_cpu.lstm_backward: None given");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    IRNN_FTZ_BEGIN
    if (itemsize == 4)
        rc = IRNN_CALL(lstm_backward_f32, ids, B, T, H, HP, N4P, V, ub, gates, cs, hs, gt, dz, dg, dh, dc, dut,
                               n_threads);
    else
        rc = IRNN_CALL(lstm_backward_f64, ids, B, T, H, HP, N4P, V, ub, gates, cs, hs, gt, dz, dg, dh, dc, dut,
                               n_threads);
    IRNN_FTZ_END
    Py_END_ALLOW_THREADS
    bufs_release(&s);
    if (rc) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *py_tanh(PyObject *self, PyObject *args) {
    int itemsize;
    Py_ssize_t n;
    PyObject *o_in, *o_out;
    if (!PyArg_ParseTuple(args, "inOO", &itemsize, &n, &o_in, &o_out)) return NULL;
    if ((itemsize != 4 && itemsize != 8) || n < 0) {
        PyErr_SetString(PyExc_ValueError, "_irnn_cpu.tanh: bad sizes");
        return NULL;
    }
    BufSet s = {.n = 0};
    void *in, *out;
    if (get_buf(&s, o_in, 0, n * itemsize, "in", &in) ||
        get_buf(&s, o_out, 1, n * itemsize, "out", &out) || !in || !out) {
        bufs_release(&s);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "_irnn_cpu.tanh: None given");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (itemsize == 4)
        IRNN_CALL(tanh_array_f32, in, out, n);
    else
        IRNN_CALL(tanh_array_f64, in, out, n);
    Py_END_ALLOW_THREADS
    bufs_release(&s);
    Py_RETURN_NONE;
}

static PyObject *py_set_modes(PyObject *self, PyObject *args) {
    int f = irnn_sparse_fwd, b = irnn_sparse_bwd;
    if (!PyArg_ParseTuple(args, "|pp", &f, &b)) return NULL;
    irnn_sparse_fwd = f;
    irnn_sparse_bwd = b;
    return Py_BuildValue("(ii)", irnn_sparse_fwd, irnn_sparse_bwd);
}

static PyObject *py_levels(PyObject *self, PyObject *args) {
    PyObject *out = PyTuple_New(0);
    for (int i = 0; out && i < IRNN_N_LEVELS; i++)
        if (irnn_level_supported(i)) {
            PyObject *name = PyUnicode_FromString(irnn_levels[i]);
            if (!name || _PyTuple_Resize(&out, PyTuple_GET_SIZE(out) + 1) < 0) {
                Py_XDECREF(name);
                Py_XDECREF(out);
                return NULL;
            }
            PyTuple_SET_ITEM(out, PyTuple_GET_SIZE(out) - 1, name);
        }
    return out;
}

static PyObject *py_set_level(PyObject *self, PyObject *args) {
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "|z", &name)) return NULL;
    if (name) {
        int i = 0;
        while (i < IRNN_N_LEVELS && strcmp(irnn_levels[i], name) != 0) i++;
        if (i == IRNN_N_LEVELS || !irnn_level_supported(i)) {
            PyObject *have = py_levels(self, NULL);
            if (have) {
                PyErr_Format(PyExc_ValueError,
                             "_irnn_cpu.set_level: expected one of %R (what this CPU runs), got '%s'",
                             have, name);
                Py_DECREF(have);
            }
            return NULL;
        }
        irnn_level = i;
    }
    return PyUnicode_FromString(irnn_levels[irnn_level]);
}

static PyMethodDef methods[] = {
    {"levels", py_levels, METH_NOARGS,
     "levels() -> the instruction-set levels built in that this CPU runs, best first"},
    {"set_level", py_set_level, METH_VARARGS,
     "set_level([name]) -> the level the kernels run now, after switching to name if given "
     "(the best one is chosen on import; for benchmarks and tests)"},
    {"set_modes", py_set_modes, METH_VARARGS,
     "set_modes(sparse_forward, sparse_backward) -> the modes now: 1 = sparse row kernel, "
     "0 = blocked dense kernel (both exact; for benchmarks and tests)"},
    {"forward", py_forward, METH_VARARGS,
     "forward(itemsize, B, T, H, HP, V, ids, EB, WT, hs_or_None, scratch, hT[, act[, threads]])"},
    {"backward", py_backward, METH_VARARGS,
     "backward(itemsize, B, T, H, HP, V, ids, Wp, hs, gT_or_None, gseq_or_None, ring (2, B, HP), "
     "dE, db, carry (B, HP), dWT (dW transposed, H x HP)[, act[, threads]]) (act: 0 relu, 1 tanh; threads: split the batch rows, the "
     "result is the same for any number)"},
    {"lstm_forward", py_lstm_forward, METH_VARARGS,
     "lstm_forward(itemsize, B, T, H, N4P, V, ids, Gb, UbT, gates, cs, hs, keep[, threads])"},
    {"lstm_backward", py_lstm_backward, METH_VARARGS,
     "lstm_backward(itemsize, B, T, H, HP, N4P, V, ids, Ub, gates, cs, hs, gT, dz (2, B, N4P), dGb, dh, dc, "
     "dUT[, threads])"},
    {"tanh", py_tanh, METH_VARARGS,
     "tanh(itemsize, n, in, out): out = the kernels' own tanh of in (for the tests)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_irnn_cpu",
                                       "Compiled CPU kernel of the fused IRNN recurrence.", -1,
                                       methods};

PyMODINIT_FUNC PyInit__irnn_cpu(void) {
    PyObject *m = PyModule_Create(&moduledef);
    if (m) {
        PyModule_AddIntConstant(m, "block_rows", IRNN_RB);
        PyModule_AddIntConstant(m, "vector_bytes", VBYTES);
        irnn_level = IRNN_N_LEVELS - 1;
        for (int i = 0; i < IRNN_N_LEVELS; i++)
            if (irnn_level_supported(i)) { irnn_level = i; break; }
    }
    return m;
}

