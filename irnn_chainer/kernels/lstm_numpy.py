"""NumPy kernel of the fused LSTM recurrence (the paper's LSTM baseline, fused.lstm_recurrence).

Chainer's ``L.LSTM`` over inputs ``x_t = E[ids_t]``, with the ``upward`` Linear folded in
a table ``G = E Wu^T + bu`` (V, 4H) computed by the caller::

    z_t = G[ids_t] + h_{t-1} U^T              (U: lateral.W, (4H, H); h_{-1} = 0, c_{-1} = 0)
    a, i, f, o = tanh(z^a), sigmoid(z^i), sigmoid(z^f), sigmoid(z^o)
    c_t = a i + f c_{t-1},   h_t = o tanh(c_t)

Chainer interleaves the gates (column 4j + k is gate k = a, i, f, o of unit j); the kernel
permutes G and U once per call to four contiguous blocks and the gradients back. Every
step is a handful of NumPy calls on (B, 4H) arrays, so a 784-step update costs tens of
milliseconds where Chainer's graph of ~6 nodes per step costs about ten times more.

- ``forward(ids, G, U, keep)`` -> ``(saved, hT)``; ``saved`` (states for backward) or None.
- ``backward(ids, saved, U, gT, n_vocab)`` -> ``(dG, dU)``: gT = dL/dh_T.
"""
import numpy as np

from irnn_chainer.kernels import numpy_kernel


def _blocks(H):
    """Column order that turns Chainer's interleaved gates into [a | i | f | o] blocks."""
    return np.arange(4 * H).reshape(H, 4).T.ravel()


def _sigmoid(x, out):
    # as Chainer computes it: tanh(x / 2) / 2 + 1 / 2 (no overflow for large |x|)
    np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def forward(ids, G, U, keep):
    B, T = ids.shape
    H = U.shape[1]
    perm = _blocks(H)
    Gb = np.ascontiguousarray(G[:, perm])
    UbT = np.ascontiguousarray(U[perm].T)          # (H, 4H)
    ids_t = np.ascontiguousarray(ids.T)
    dtype = G.dtype
    gates = np.empty((T, B, 4 * H), dtype=dtype) if keep else np.empty((1, B, 4 * H), dtype=dtype)
    cs = np.empty((T, B, H), dtype=dtype) if keep else np.empty((2, B, H), dtype=dtype)
    hs = np.empty((T, B, H), dtype=dtype) if keep else np.empty((2, B, H), dtype=dtype)
    tmp = np.empty((B, 4 * H), dtype=dtype)
    tc = np.empty((B, H), dtype=dtype)
    for t in range(T):
        g = gates[t] if keep else gates[0]
        c = cs[t] if keep else cs[t & 1]
        h = hs[t] if keep else hs[t & 1]
        np.take(Gb, ids_t[t], axis=0, out=g)
        if t:
            np.dot(hs[t - 1] if keep else hs[(t - 1) & 1], UbT, out=tmp)
            g += tmp
        a, ifo = g[:, :H], g[:, H:]
        np.tanh(a, out=a)
        _sigmoid(ifo, ifo)
        i, f, o = g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
        np.multiply(a, i, out=c)
        if t:
            np.multiply(f, cs[t - 1] if keep else cs[(t - 1) & 1], out=tc)  # tc: scratch here
            c += tc
        np.tanh(c, out=tc)
        np.multiply(o, tc, out=h)
    hT = h.copy()
    return ((gates, cs, hs) if keep else None), hT


def backward(ids, saved, U, gT, n_vocab):
    gates, cs, hs = saved
    T, B, H4 = gates.shape
    H = H4 // 4
    dtype = gates.dtype
    perm = _blocks(H)
    Ub = np.ascontiguousarray(U[perm])             # (4H, H)
    dz = np.empty((T, B, 4 * H), dtype=dtype)
    dh = np.array(gT, dtype=dtype)
    dc = np.zeros((B, H), dtype=dtype)
    tc = np.empty((B, H), dtype=dtype)
    tmp = np.empty((B, H), dtype=dtype)
    for t in range(T - 1, -1, -1):
        g = gates[t]
        a, i, f, o = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
        d = dz[t]
        da, di, df, do = d[:, :H], d[:, H:2 * H], d[:, 2 * H:3 * H], d[:, 3 * H:]
        np.tanh(cs[t], out=tc)
        np.multiply(dh, tc, out=do)                # dL/do
        np.multiply(tc, tc, out=tmp)               # dc += dh o (1 - tanh(c)^2)
        np.subtract(1, tmp, out=tmp)
        tmp *= o
        tmp *= dh
        dc += tmp
        np.multiply(dc, i, out=da)                 # dL/da
        np.multiply(dc, a, out=di)                 # dL/di
        if t:
            np.multiply(dc, cs[t - 1], out=df)     # dL/df
        else:
            df[...] = 0
        dc *= f                                    # dL/dc_{t-1}
        # through the nonlinearities: tanh' = 1 - a^2, sigmoid' = s (1 - s)
        np.multiply(a, a, out=tmp)
        np.subtract(1, tmp, out=tmp)
        da *= tmp
        s = g[:, H:]
        d[:, H:] *= s * (1 - s)
        if t:
            np.dot(d, Ub, out=dh)                  # dL/dh_{t-1}
    # dU = sum_t dz_t^T h_{t-1}: one product over all steps
    if T > 1:
        dUb = np.dot(dz[1:].reshape(-1, 4 * H).T, hs[:-1].reshape(-1, H))
    else:
        dUb = np.zeros((4 * H, H), dtype=dtype)
    flat = dz.reshape(T * B, 4 * H)
    index = np.ascontiguousarray(ids.T).ravel()
    dGb = numpy_kernel.scatter_rows(index, flat, n_vocab)
    inv = np.argsort(perm)
    return np.ascontiguousarray(dGb[:, inv]), np.ascontiguousarray(dUb[inv])
