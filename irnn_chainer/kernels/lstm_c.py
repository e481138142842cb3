"""Python side of the compiled LSTM kernel (``lstm_forward`` / ``lstm_backward`` in
``_irnn_cpu.c``): the fused LSTM baseline, same interface as :mod:`.lstm_numpy`.

- ``forward(ids, G, U, keep)`` -> ``(saved, hT)``; ``saved`` (states for backward) or None.
- ``backward(ids, saved, U, gT, n_vocab)`` -> ``(dG, dU)``: gT = dL/dh_T.

G (V, 4H) and U (4H, H) come in Chainer's interleaved gate order; they are permuted once per
call to blocks [a | i | f | o] and padded to whole vectors, and the gradients permuted back.
The saved buffers (gates, c, h: ~30 MB at batch 16) come from the C kernel's pool and go back
to it through :func:`release` when the graph node dies.
"""
import numpy as np

from irnn_chainer.kernels import _irnn_cpu as _ext
from irnn_chainer.kernels import threads
from irnn_chainer.kernels.c_kernel import _hp, _padded, _take, release as _release

name = 'c'


def _blocks(H):
    """Column order that turns Chainer's interleaved gates into [a | i | f | o] blocks."""
    return np.arange(4 * H).reshape(H, 4).T.ravel()


def forward(ids, G, U, keep):
    B, T = ids.shape
    H = U.shape[1]
    dtype = G.dtype
    n4p = _hp(4 * H, dtype)
    perm = _blocks(H)
    Gb = _padded(G[:, perm], n4p)
    UbT = _padded(U[perm].T, n4p)                    # (H, N4P)
    ids = np.ascontiguousarray(ids, dtype=np.int32)
    slots = T if keep else 2
    gates = _take((T if keep else 1, B, n4p), dtype)
    cs = _take((slots, B, H), dtype)
    hs = _take((slots, B, H), dtype)
    _ext.lstm_forward(dtype.itemsize, B, T, H, n4p, G.shape[0], ids, Gb, UbT, gates, cs, hs, keep,
                      threads.get_threads())
    hT = hs[(T - 1) if keep else ((T - 1) & 1)].copy()
    if not keep:
        for buf in (gates, cs, hs):
            _release(buf)
        return None, hT
    return (gates, cs, hs), hT


def release(saved):
    """Give the saved buffers of a forward back to the pool (the caller holds no other
    reference)."""
    for buf in saved:
        _release(buf)


def backward(ids, saved, U, gT, n_vocab):
    gates, cs, hs = saved
    T, B, n4p = gates.shape
    H = U.shape[1]
    dtype = gates.dtype
    hp = _hp(H, dtype)
    perm = _blocks(H)
    Ub = _padded(U[perm], hp)                        # (4H, HP)
    ids = np.ascontiguousarray(ids, dtype=np.int32)
    dz = np.empty((2, B, n4p), dtype=dtype)  # dL/dz of two steps
    dGb = np.empty((n_vocab, 4 * H), dtype=dtype)
    dh = np.empty((B, H), dtype=dtype)
    dc = np.empty((B, H), dtype=dtype)
    dUT = np.empty((H, n4p), dtype=dtype)
    _ext.lstm_backward(dtype.itemsize, B, T, H, hp, n4p, n_vocab, ids, Ub, gates, cs, hs,
                       np.ascontiguousarray(gT, dtype=dtype), dz, dGb, dh, dc, dUT,
                       threads.get_threads())
    inv = np.argsort(perm)
    return np.ascontiguousarray(dGb[:, inv]), np.ascontiguousarray(dUT[:, :4 * H].T[inv])
