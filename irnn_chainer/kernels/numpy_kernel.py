"""NumPy kernel of the fused IRNN recurrence: the reference and the fallback.

Every step is a handful of NumPy calls writing into preallocated buffers (no temporaries
per step beyond the boolean mask in backward); dW is one large product over all steps.

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


def forward(ids, E, W, b, keep, activation='relu'):
    check_activation(activation)
    B, T = ids.shape
    H = W.shape[0]
    EB = E + b                      # bias folded into the embedding rows: one add per step less
    WT = W.T                        # BLAS reads the transpose in place
    ids_t = np.ascontiguousarray(ids.T)
    if keep:
        hs = np.empty((T, B, H), dtype=E.dtype)
        bufs = hs
    else:
        hs = None
        bufs = np.empty((2, B, H), dtype=E.dtype)
    tmp = np.empty((B, H), dtype=E.dtype)
    prev = None
    for t in range(T):
        cur = bufs[t] if keep else bufs[t & 1]
        np.take(EB, ids_t[t], axis=0, out=cur)
        if prev is not None:
            np.dot(prev, WT, out=tmp)
            cur += tmp
        if activation == 'relu':
            np.maximum(cur, 0, out=cur)
        else:
            np.tanh(cur, out=cur)
        prev = cur
    return hs, prev.copy()


def backward(ids, hs, W, gT, gseq, n_vocab, activation='relu'):
    check_activation(activation)
    T, B, H = hs.shape
    dtype = hs.dtype
    dpre = np.empty((T, B, H), dtype=dtype)
    carry = np.zeros((B, H), dtype=dtype) if gT is None else np.array(gT, dtype=dtype)
    mask = np.empty((B, H), dtype=bool)
    for t in range(T - 1, -1, -1):
        if gseq is not None:
            carry += gseq[t]
        if activation == 'relu':
            np.greater(hs[t], 0, out=mask)
            np.multiply(carry, mask, out=dpre[t])
        else:  # d tanh = 1 - h^2
            np.multiply(hs[t], hs[t], out=dpre[t])
            np.subtract(1, dpre[t], out=dpre[t])
            dpre[t] *= carry
        if t:
            np.dot(dpre[t], W, out=carry)
    flat = dpre.reshape(T * B, H)
    dW = np.dot(dpre[1:].reshape(-1, H).T, hs[:-1].reshape(-1, H)) if T > 1 \
        else np.zeros_like(W)
    db = flat.sum(axis=0)
    dE = scatter_rows(np.ascontiguousarray(ids.T).ravel(), flat, n_vocab)
    return dE, dW, db


def scatter_rows(index, rows, n):
    """out[i] = sum of rows[k] with index[k] == i (out: (n, H)); a sort and add.reduceat
    (faster than np.add.at on large inputs)."""
    order = np.argsort(index, kind='stable')
    sidx = index[order]
    starts = np.flatnonzero(np.r_[True, sidx[1:] != sidx[:-1]])
    out = np.zeros((n, rows.shape[1]), dtype=rows.dtype)
    out[sidx[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out
