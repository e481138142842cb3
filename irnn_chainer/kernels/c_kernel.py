"""Python side of the compiled CPU kernel (``_irnn_cpu``, see ``_irnn_cpu.c``).

Same interface as :mod:`.numpy_kernel`. Pads W (and E + b) to a multiple of the vector
length once per call; the time loops run in C with the GIL released; dW is one large
BLAS product over all timesteps here.
"""
import numpy as np

from irnn_chainer.kernels import _irnn_cpu as _ext

name = 'c'
VECTOR_BYTES = _ext.vector_bytes


def _padded(a, hp):
    """a (rows, H) copied into a zero-padded (rows, hp) C-contiguous array."""
    out = np.zeros((a.shape[0], hp), dtype=a.dtype)
    out[:, :a.shape[1]] = a
    return out


def _hp(h, dtype):
    vl = VECTOR_BYTES // np.dtype(dtype).itemsize
    return -(-h // vl) * vl


def forward(ids, E, W, b, keep):
    B, T = ids.shape
    V, H = E.shape
    dtype = E.dtype
    hp = _hp(H, dtype)
    EB = _padded(E, hp)
    EB[:, :H] += b
    WT = _padded(W.T, hp)
    ids = np.ascontiguousarray(ids, dtype=np.int32)
    hs = np.empty((T, B, H), dtype=dtype) if keep else None
    scratch = np.empty((2, B, H), dtype=dtype)
    hT = np.empty((B, H), dtype=dtype)
    _ext.forward(dtype.itemsize, B, T, H, hp, V, ids, EB, WT, hs, scratch, hT)
    return hs, hT


def backward(ids, hs, W, gT, gseq, n_vocab):
    T, B, H = hs.shape
    dtype = hs.dtype
    hp = _hp(H, dtype)
    Wp = _padded(W, hp)
    ids = np.ascontiguousarray(ids, dtype=np.int32)
    if gT is not None:
        gT = np.ascontiguousarray(gT, dtype=dtype)
    if gseq is not None:
        gseq = np.ascontiguousarray(gseq, dtype=dtype)
    dpre = np.empty((T, B, H), dtype=dtype)
    dE = np.empty((n_vocab, H), dtype=dtype)
    db = np.empty((H,), dtype=dtype)
    carry = np.empty((B, H), dtype=dtype)
    _ext.backward(dtype.itemsize, B, T, H, hp, n_vocab, ids, Wp, np.ascontiguousarray(hs), gT,
                  gseq, dpre, dE, db, carry)
    if T > 1:
        dW = np.dot(dpre[1:].reshape(-1, H).T, hs[:-1].reshape(-1, H))
    else:
        dW = np.zeros_like(W)
    return dE, dW, db
