"""NumPy kernel of the fused IRNN recurrence: the reference and the fallback.

Every step is a handful of NumPy calls writing into preallocated buffers (no temporaries
per step beyond the boolean mask in backward); dW is one large product over all steps.
Written against the array module (``xp``): CuPy arrays run it unchanged on the GPU (a loop
of small cuBLAS calls, the reference the CUDA kernel checks itself against).

Interface (shared by every kernel; arrays are C-contiguous, ids int32 (B, T)):

- ``forward(ids, E, W, b, keep, activation='relu')`` -> ``(hs, hT)``: ``hs`` (T, B, H)
  every state when ``keep`` else None (then only two (B, H) buffers are used), ``hT`` (B, H).
- ``backward(ids, hs, W, gT, gseq, n_vocab, activation='relu')`` -> ``(dE, dW, db)``:
  ``gT`` (B, H) is dL/dh_T or None, ``gseq`` (T, B, H) is dL/dh_t for every t or None.
- ``activation``: ``'relu'`` (the IRNN) or ``'tanh'`` (h_t = tanh(...), whose backward
  multiplies by 1 - h_t^2).
"""
import numpy as np

name = 'numpy'


ACTIVATIONS = ('relu', 'tanh')


def check_activation(activation):
    """``activation`` if every kernel knows it, else ValueError (the one check of it)."""
    if activation not in ACTIVATIONS:
        raise ValueError("activation: expected 'relu' or 'tanh', got %r" % (activation,))
    return activation


def array_module(*arrays):
    """numpy or cupy for these arrays (Chainer's ``get_array_module``)."""
    from chainer import backend
    return backend.get_array_module(*arrays)


def forward(ids, E, W, b, keep, activation='relu'):
    check_activation(activation)
    xp = array_module(E)
    B, T = ids.shape
    H = W.shape[0]
    EB = E + b                      # bias folded into the embedding rows: one add per step less
    WT = W.T                        # BLAS reads the transpose in place
    ids_t = xp.ascontiguousarray(ids.T)
    if keep:
        hs = xp.empty((T, B, H), dtype=E.dtype)
        bufs = hs
    else:
        hs = None
        bufs = xp.empty((2, B, H), dtype=E.dtype)
    tmp = xp.empty((B, H), dtype=E.dtype)
    prev = None
    for t in range(T):
        cur = bufs[t] if keep else bufs[t & 1]
        xp.take(EB, ids_t[t], axis=0, out=cur)
        if prev is not None:
            xp.dot(prev, WT, out=tmp)
            cur += tmp
        if activation == 'relu':
            xp.maximum(cur, 0, out=cur)
        else:
            xp.tanh(cur, out=cur)
        prev = cur
    return hs, prev.copy()


def backward(ids, hs, W, gT, gseq, n_vocab, activation='relu'):
    check_activation(activation)
    xp = array_module(hs)
    T, B, H = hs.shape
    dtype = hs.dtype
    dpre = xp.empty((T, B, H), dtype=dtype)
    carry = xp.zeros((B, H), dtype=dtype) if gT is None else xp.array(gT, dtype=dtype)
    mask = xp.empty((B, H), dtype=bool)
    for t in range(T - 1, -1, -1):
        if gseq is not None:
            carry += gseq[t]
        if activation == 'relu':
            xp.greater(hs[t], 0, out=mask)
            xp.multiply(carry, mask, out=dpre[t])
        else:  # d tanh = 1 - h^2
            xp.multiply(hs[t], hs[t], out=dpre[t])
            xp.subtract(1, dpre[t], out=dpre[t])
            dpre[t] *= carry
        if t:
            xp.dot(dpre[t], W, out=carry)
    flat = dpre.reshape(T * B, H)
    dW = xp.dot(dpre[1:].reshape(-1, H).T, hs[:-1].reshape(-1, H)) if T > 1 \
        else xp.zeros_like(W)
    db = flat.sum(axis=0)
    dE = scatter_rows(xp.ascontiguousarray(ids.T).ravel(), flat, n_vocab)
    return dE, dW, db


def scatter_rows(index, rows, n):
    """out[i] = sum of rows[k] with index[k] == i (out: (n, H)); a sort and add.reduceat
    (faster than np.add.at on large inputs). CuPy arrays: ``cupyx.scatter_add``."""
    xp = array_module(rows)
    if xp is not np:
        import cupyx
        out = xp.zeros((n, rows.shape[1]), dtype=rows.dtype)
        cupyx.scatter_add(out, index, rows)
        return out
    order = np.argsort(index, kind='stable')
    sidx = index[order]
    starts = np.flatnonzero(np.r_[True, sidx[1:] != sidx[:-1]])
    out = np.zeros((n, rows.shape[1]), dtype=rows.dtype)
    out[sidx[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out
