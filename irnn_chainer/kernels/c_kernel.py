"""Python side of the compiled CPU kernel (``_irnn_cpu``, see ``_irnn_cpu.c``).

Same interface as :mod:`.numpy_kernel`. Pads W (and E + b) to a multiple of the vector
length once per call; the time loops (dW summed inside the reverse one) run in C with the GIL
released.
The (T, B, H) buffers (the states kept for backward) are recycled between calls through a
small pool (:func:`release` gives a state buffer back when its graph node dies), so each
iteration does not fault in 10 MB of fresh pages (~1 ms here).
"""
import threading

import numpy as np

from irnn_chainer.kernels import _irnn_cpu as _ext
from irnn_chainer.kernels import threads
from irnn_chainer.kernels.numpy_kernel import check_activation

name = 'c'
VECTOR_BYTES = _ext.vector_bytes
ACTS = {'relu': 0, 'tanh': 1}  # the C side's ACT_RELU, ACT_TANH


def levels():
    """The instruction-set levels built into the kernel that this CPU runs, best first: with
    GCC on x86-64 'avx512', 'avx2' (both with FMA: the same bits) and 'base' (SSE2);
    elsewhere 'generic'. The best is chosen on import."""
    return _ext.levels()


def level():
    """The level the kernels run at now."""
    return _ext.set_level()


def set_level(name):
    """Run the kernels at level ``name`` (one of :func:`levels`), e.g. to measure what an
    AVX2-only CPU runs; returns the level before. ValueError for a level this CPU lacks."""
    before = _ext.set_level()
    _ext.set_level(name)
    return before


def _padded(a, hp):
    """a (rows, H) copied into a zero-padded (rows, hp) C-contiguous array."""
    out = np.zeros((a.shape[0], hp), dtype=a.dtype)
    out[:, :a.shape[1]] = a
    return out


def _hp(h, dtype):
    vl = VECTOR_BYTES // np.dtype(dtype).itemsize
    return -(-h // vl) * vl


def forward(ids, E, W, b, keep, activation='relu'):
    act = ACTS[check_activation(activation)]
    B, T = ids.shape
    V, H = E.shape
    dtype = E.dtype
    hp = _hp(H, dtype)
    EB = _padded(E, hp)
    EB[:, :H] += b
    assert ids.shape == (B, T)
    WT = _padded(W.T, hp)
    ids = np.ascontiguousarray(ids, dtype=np.int32)
    hs = _take((T, B, H), dtype) if keep else None
    scratch = np.empty((2, B, H), dtype=dtype)
    hT = np.empty((B, H), dtype=dtype)
    _ext.forward(dtype.itemsize, B, T, H, hp, V, ids, EB, WT, hs, scratch, hT, act,
                 threads.get_threads())
    return hs, hT


_pool = {}
_pool_lock = threading.Lock()


_POOL_MAX = 3    # buffers kept per shape
_POOL_SHAPES = 4  # shapes kept (the IRNN states and the LSTM gates, cells and states of the latest runs)


def _take(shape, dtype):
    key = (tuple(shape), np.dtype(dtype).str)
    with _pool_lock:
        bufs = _pool.get(key)
        if bufs:
            return bufs.pop()
    return np.empty(shape, dtype=dtype)


def release(buf):
    """Give a (T, B, H) buffer back for reuse; the caller must hold no other reference."""
    key = (buf.shape, buf.dtype.str)
    with _pool_lock:
        if key not in _pool:
            while len(_pool) >= _POOL_SHAPES:
                del _pool[next(iter(_pool))]  # the shape seen longest ago
            _pool[key] = []
        if len(_pool[key]) < _POOL_MAX:
            _pool[key].append(buf)


def tanh(x):
    """The kernels' own tanh (float32: our vector approximation; float64: the C library's)
    of an array, in the caller's floating-point mode (for the tests)."""
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    _ext.tanh(x.dtype.itemsize, x.size, x, out)
    return out


def backward(ids, hs, W, gT, gseq, n_vocab, activation='relu'):
    act = ACTS[check_activation(activation)]
    T, B, H = hs.shape
    dtype = hs.dtype
    hp = _hp(H, dtype)
    Wp = _padded(W, hp)
    ids = np.ascontiguousarray(ids, dtype=np.int32)
    if gT is not None:
        gT = np.ascontiguousarray(gT, dtype=dtype)
    if gseq is not None:
        gseq = np.ascontiguousarray(gseq, dtype=dtype)
    ring = np.empty((2, B, hp), dtype=dtype)  # dL/dpre of two steps; rows padded
    dE = np.empty((n_vocab, H), dtype=dtype)
    db = np.empty((H,), dtype=dtype)
    carry = np.empty((B, hp), dtype=dtype)
    dWT = np.empty((H, hp), dtype=dtype)  # dW transposed, padded
    _ext.backward(dtype.itemsize, B, T, H, hp, n_vocab, ids, Wp, np.ascontiguousarray(hs), gT,
                  gseq, ring, dE, db, carry, dWT, act, threads.get_threads())
    return dE, np.ascontiguousarray(dWT[:, :H].T), db
