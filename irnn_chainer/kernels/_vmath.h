/* Vector tanh for the C kernels; included inside each per-dtype pass of a kernel file (REAL,
 * VEC, IVEC, VL, IRNN_F32, TANH, SUF defined there). Gives
 *
 *   SUF(vtanh)(VEC x)                       tanh of every lane
 *   SUF(tanh_inplace)(REAL *a, Py_ssize_t n)  a[i] = tanh(a[i]), vectorised with a tail
 *
 * float32: our own approximation, within 2 ulp of glibc's tanhf over the whole float32
 * range (tests/test_fused.py sweeps it against np.tanh, including +-0, subnormals, large
 * values, +-inf and NaN):
 *   |x| < 0.625:  tanh x = x + x^3 P(x^2), P of degree 4 fitted to (tanh x - x) / x^3 for the
 *                 least relative error (4.4e-9 before float32 rounding); x^3 P is below 0.13 x,
 *                 so its rounding costs well under an ulp, and +-0 and subnormals come back
 *                 unchanged (x^3 underflows to 0).
 *   |x| >= 0.625: tanh |x| = 1 - 2 / (exp(2|x|) + 1) with |x| clamped to 9.5 (tanhf is 1.0
 *                 from 9.01 on); exp by Cody-Waite reduction to r in [-ln2/2, ln2/2], a
 *                 degree-7 Taylor polynomial and an exponent shift. The result is >= 0.55
 *                 there, so 2 / (e + 1) < 0.45 and its relative error costs < 1 ulp.
 *   the sign put back from x; NaN in, NaN out.
 * float64: the C library's tanh lane by lane (the float64 path is the exact reference).
 */

#if IRNN_F32

IRNN_INLINE VEC SUF(vsel)(IVEC mask, VEC a, VEC b) { /* mask ? a : b, lane-wise */
    return (VEC)(((IVEC)a & mask) | ((IVEC)b & ~mask));
}

IRNN_INLINE VEC SUF(vtanh)(VEC x) {
    const IVEC sign_bit = (IVEC){0} + (int32_t)0x80000000u;
    const IVEC sign = (IVEC)x & sign_bit;
    VEC a = (VEC)((IVEC)x & ~sign_bit);
    /* small |x|: x + x^3 P(x^2) */
    const VEC u = a * a;
    VEC p = (VEC){0} - 0.00570495937564832f;
    p = p * u + 0.020639060032740863f;
    p = p * u - 0.05373970572371602f;
    p = p * u + 0.1333144206839994f;
    p = p * u - 0.33333281936171016f;
    const VEC small = a + (a * u) * p;
    /* large |x|: 1 - 2 / (exp(2|x|) + 1) */
    const VEC cap = (VEC){0} + 9.5f;
    const VEC ac = SUF(vsel)(a > cap, cap, a);
    const VEC y = ac + ac;
    const VEC fn = y * 1.44269504088896341f + 0.5f;          /* y / ln 2, rounded below */
    const IVEC n = __builtin_convertvector(fn, IVEC);        /* truncation: y > 0 */
    const VEC nf = __builtin_convertvector(n, VEC);
    VEC r = y - nf * 0.693145751953125f;                     /* ln 2, high part (exact) */
    r = r - nf * 1.4286068203094173e-06f;                     /* ln 2, low part */
    VEC e = (VEC){0} + (1.0f / 5040);
    e = e * r + (1.0f / 720);
    e = e * r + (1.0f / 120);
    e = e * r + (1.0f / 24);
    e = e * r + (1.0f / 6);
    e = e * r + 0.5f;
    e = e * r + 1.0f;
    e = e * r + 1.0f;
    e = (VEC)((IVEC)e + (n << 23));                          /* times 2^n, n in 0 .. 28 */
    const VEC large = 1.0f - 2.0f / (e + 1.0f);
    VEC t = SUF(vsel)(a < 0.625f, small, large);
    t = (VEC)((IVEC)t | sign);
    return SUF(vsel)(x != x, x, t);                           /* NaN stays NaN */
}

#else /* float64 */

IRNN_INLINE VEC SUF(vtanh)(VEC x) {
    VEC out;
    for (int i = 0; i < VL; i++) out[i] = TANH(x[i]);
    return out;
}

#endif

IRNN_INLINE void SUF(tanh_inplace)(REAL *a, Py_ssize_t n) {
    Py_ssize_t i = 0;
    for (; i + VL <= n; i += VL) {
        VEC v;
        memcpy(&v, a + i, sizeof(VEC));
        v = SUF(vtanh)(v);
        memcpy(a + i, &v, sizeof(VEC));
    }
    if (i < n) {
        VEC v = (VEC){0};
        memcpy(&v, a + i, (size_t)(n - i) * sizeof(REAL));
        v = SUF(vtanh)(v);
        memcpy(a + i, &v, (size_t)(n - i) * sizeof(REAL));
    }
}
