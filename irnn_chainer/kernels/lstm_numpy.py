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

Written against the array module (``xp``): CuPy arrays run it unchanged.

- ``forward(ids, G, U, keep)`` -> ``(saved, hT)``; ``saved`` (states for backward) or None.
- ``backward(ids, saved, U, gT, n_vocab)`` -> ``(dG, dU)``: gT = dL/dh_T.
"""
import numpy as np

from irnn_chainer.kernels import numpy_kernel


def _blocks(H, xp=np):
    """Column order that turns Chainer's interleaved gates into [a | i | f | o] blocks."""
    return xp.arange(4 * H).reshape(H, 4).T.ravel()


def _sigmoid(x, out, xp=np):
    # as Chainer computes it: tanh(x / 2) / 2 + 1 / 2 (no overflow for large |x|)
    xp.multiply(x, 0.5, out=out)
    xp.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def forward(ids, G, U, keep):
    xp = numpy_kernel.array_module(G)
    B, T = ids.shape
    H = U.shape[1]
    perm = _blocks(H, xp)
    Gb = xp.ascontiguousarray(G[:, perm])
    UbT = xp.ascontiguousarray(U[perm].T)          # (H, 4H)
    ids_t = xp.ascontiguousarray(ids.T)
    dtype = G.dtype
    gates = xp.empty((T, B, 4 * H), dtype=dtype) if keep else xp.empty((1, B, 4 * H), dtype=dtype)
    cs = xp.empty((T, B, H), dtype=dtype) if keep else xp.empty((2, B, H), dtype=dtype)
    hs = xp.empty((T, B, H), dtype=dtype) if keep else xp.empty((2, B, H), dtype=dtype)
    tmp = xp.empty((B, 4 * H), dtype=dtype)
    tc = xp.empty((B, H), dtype=dtype)
    for t in range(T):
        g = gates[t] if keep else gates[0]
        c = cs[t] if keep else cs[t & 1]
        h = hs[t] if keep else hs[t & 1]
        xp.take(Gb, ids_t[t], axis=0, out=g)
        if t:
            xp.dot(hs[t - 1] if keep else hs[(t - 1) & 1], UbT, out=tmp)
            g += tmp
        a, ifo = g[:, :H], g[:, H:]
        xp.tanh(a, out=a)
        _sigmoid(ifo, ifo, xp)
        i, f, o = g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
        xp.multiply(a, i, out=c)
        if t:
            xp.multiply(f, cs[t - 1] if keep else cs[(t - 1) & 1], out=tc)  # tc: scratch here
            c += tc
        xp.tanh(c, out=tc)
        xp.multiply(o, tc, out=h)
    hT = h.copy()
    return ((gates, cs, hs) if keep else None), hT


def backward(ids, saved, U, gT, n_vocab):
    gates, cs, hs = saved
    T, B, H4 = gates.shape
    H = H4 // 4
    dtype = gates.dtype
    xp = numpy_kernel.array_module(gates)
    perm = _blocks(H, xp)
    Ub = xp.ascontiguousarray(U[perm])             # (4H, H)
    dz = xp.empty((T, B, 4 * H), dtype=dtype)
    dh = xp.array(gT, dtype=dtype)
    dc = xp.zeros((B, H), dtype=dtype)
    tc = xp.empty((B, H), dtype=dtype)
    tmp = xp.empty((B, H), dtype=dtype)
    for t in range(T - 1, -1, -1):
        g = gates[t]
        a, i, f, o = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
        d = dz[t]
        da, di, df, do = d[:, :H], d[:, H:2 * H], d[:, 2 * H:3 * H], d[:, 3 * H:]
        xp.tanh(cs[t], out=tc)
        xp.multiply(dh, tc, out=do)                # dL/do
        xp.multiply(tc, tc, out=tmp)               # dc += dh o (1 - tanh(c)^2)
        xp.subtract(1, tmp, out=tmp)
        tmp *= o
        tmp *= dh
        dc += tmp
        xp.multiply(dc, i, out=da)                 # dL/da
        xp.multiply(dc, a, out=di)                 # dL/di
        if t:
            xp.multiply(dc, cs[t - 1], out=df)     # dL/df
        else:
            df[...] = 0
        dc *= f                                    # dL/dc_{t-1}
        # through the nonlinearities: tanh' = 1 - a^2, sigmoid' = s (1 - s)
        xp.multiply(a, a, out=tmp)
        xp.subtract(1, tmp, out=tmp)
        da *= tmp
        s = g[:, H:]
        d[:, H:] *= s * (1 - s)
        if t:
            xp.dot(d, Ub, out=dh)                  # dL/dh_{t-1}
    # dU = sum_t dz_t^T h_{t-1}: one product over all steps
    if T > 1:
        dUb = xp.dot(dz[1:].reshape(-1, 4 * H).T, hs[:-1].reshape(-1, H))
    else:
        dUb = xp.zeros((4 * H, H), dtype=dtype)
    flat = dz.reshape(T * B, 4 * H)
    index = xp.ascontiguousarray(ids.T).ravel()
    dGb = numpy_kernel.scatter_rows(index, flat, n_vocab)
    inv = xp.argsort(perm)
    return xp.ascontiguousarray(dGb[:, inv]), xp.ascontiguousarray(dUb[inv])
