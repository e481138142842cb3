/* The kernels at one instruction-set level, for float32 and float64: included by
 * _irnn_cpu.c once per level with IRNN_ISA (the level's name suffix), IRNN_VBYTES (bytes
 * per vector register) and IRNN_RR (batch rows per register block) defined, inside the
 * level's `#pragma GCC target` where there is one. */

#define IRNN_CAT_(a, b, c) a##b##c
#define IRNN_CAT(a, b, c) IRNN_CAT_(a, b, c)

typedef float IRNN_CAT(vf32, _, IRNN_ISA) __attribute__((vector_size(IRNN_VBYTES)));
typedef double IRNN_CAT(vf64, _, IRNN_ISA) __attribute__((vector_size(IRNN_VBYTES)));
typedef int32_t IRNN_CAT(vi32, _, IRNN_ISA) __attribute__((vector_size(IRNN_VBYTES)));
typedef int64_t IRNN_CAT(vi64, _, IRNN_ISA) __attribute__((vector_size(IRNN_VBYTES)));

#define REAL float
#define VEC IRNN_CAT(vf32, _, IRNN_ISA)
#define IVEC IRNN_CAT(vi32, _, IRNN_ISA)
#define VL (IRNN_VBYTES / 4)
#define IRNN_F32 1
#define TANH tanhf
#define SUF(name) IRNN_CAT(name, _f32_, IRNN_ISA)
#include "_irnn_kernels.h"
#undef REAL
#undef VEC
#undef IVEC
#undef VL
#undef IRNN_F32
#undef TANH
#undef SUF

#define REAL double
#define VEC IRNN_CAT(vf64, _, IRNN_ISA)
#define IVEC IRNN_CAT(vi64, _, IRNN_ISA)
#define VL (IRNN_VBYTES / 8)
#define IRNN_F32 0
#define TANH tanh
#define SUF(name) IRNN_CAT(name, _f64_, IRNN_ISA)
#include "_irnn_kernels.h"
#undef REAL
#undef VEC
#undef IVEC
#undef VL
#undef IRNN_F32
#undef TANH
#undef SUF
