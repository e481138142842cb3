"""The whole IRNN recurrence as one Chainer FunctionNode::

    h_0 = 0,   h_t = relu(E[ids[:, t]] + h_{t-1} W^T + b)   t = 1 .. T

(or tanh instead of relu, ``activation='tanh'``, for the rnn-tanh baseline).

``irnn_recurrence(ids, E, W, b)`` gives h_T (B, H), or every h_t (B, T, H) with
``return_sequence=True``; E is ``pixel_to_h.W`` (V, H), W and b are ``h_to_h``'s (the
Linear convention x W^T + b). The time loop runs in a kernel (:mod:`irnn_chainer.kernels`:
compiled C when built, else NumPy; CuPy arrays go to the CUDA kernel, or with
``IRNN_FUSED_KERNEL=numpy`` to the NumPy kernel on CuPy arrays).

Forward keeps every h_t (T * B * H values) for backward, and nothing per step when the
graph is not built (``chainer.config.enable_backprop`` False, or no input needs a
gradient). Backward gives dE (scatter-add over the ids), dW (one product over all steps)
and db. Double backprop is not supported: differentiating the gradients raises.
"""
import weakref

import chainer
import chainer.functions as F
from chainer import backend
from chainer import function_node
from chainer.utils import type_check

from irnn_chainer import kernels
from irnn_chainer.kernels import numpy_kernel


def _is_cupy(xp):
    return getattr(xp, '__name__', '') != 'numpy'


def _xp(*arrays):
    return backend.get_array_module(*arrays)


class IRNNRecurrence(function_node.FunctionNode):
    """Inputs (E, W, b); output h_T (B, H) or, with ``return_sequence``, all h (B, T, H).

    ``ids`` (B, T) integer pixel ids (not differentiated) are given to the constructor;
    ``keep``: retain the states for backward. After forward, ``self.hs`` is the (T, B, H)
    array of every state when kept and None otherwise; ``self.kernel_name`` says which
    kernel ran.
    """

    def __init__(self, ids, return_sequence=False, keep=True, activation='relu'):
        self.activation = numpy_kernel.check_activation(activation)
        self.ids = ids
        self.return_sequence = return_sequence
        self.keep = keep
        self.hs = None
        self.kernel = self.kernel_name = None
        self.n_vocab = None

    def check_type_forward(self, in_types):
        type_check._argname(in_types, ('E', 'W', 'b'))
        E, W, b = in_types
        type_check.expect(
            E.dtype.kind == 'f',
            E.ndim == 2, W.ndim == 2, b.ndim == 1,
            W.dtype == E.dtype, b.dtype == E.dtype,
            W.shape[0] == E.shape[1], W.shape[1] == E.shape[1], b.shape[0] == E.shape[1],
        )

    def forward(self, inputs):
        E, W, b = inputs
        ids = self.ids
        xp = _xp(ids, E, W, b)
        kernel = kernels.get_kernel(xp)
        self.kernel = kernel
        self.kernel_name = kernel.name
        if ids.dtype != xp.int32 or not ids.flags.c_contiguous:
            ids = xp.ascontiguousarray(ids, dtype=xp.int32)
            self.ids = ids
        E, W, b = (xp.ascontiguousarray(a) for a in (E, W, b))
        self.n_vocab = E.shape[0]
        store = self.keep or self.return_sequence
        hs, hT = kernel.forward(ids, E, W, b, store, self.activation)
        if self.keep:
            self.hs = hs
            self.retain_inputs((1,))
            release = getattr(kernel, 'release', None)
            if release is not None and not self.return_sequence:
                # recycle the state buffer when this node (the graph) is gone
                weakref.finalize(self, release, hs)
        if self.return_sequence:
            return xp.ascontiguousarray(hs.transpose(1, 0, 2)),
        return hT,

    def backward(self, indexes, grad_outputs):
        gy, = grad_outputs
        if gy is None:
            return None, None, None
        if self.hs is None:
            raise RuntimeError('IRNNRecurrence: backward after a forward that kept no states')
        W, = self.get_retained_inputs()
        return IRNNRecurrenceGrad(self).apply((W, gy))


class IRNNRecurrenceGrad(function_node.FunctionNode):
    """(W, dL/dy) -> (dE, dW, db) of an :class:`IRNNRecurrence`; not differentiable."""

    def __init__(self, fwd):
        self.fwd = fwd

    def forward(self, inputs):
        W, gy = inputs
        fwd = self.fwd
        xp = _xp(W, gy)
        kernel = fwd.kernel  # the one that ran forward (hs is laid out for it)
        if fwd.return_sequence:
            gT, gseq = None, xp.ascontiguousarray(gy.transpose(1, 0, 2))
        else:
            gT, gseq = gy, None
        dE, dW, db = kernel.backward(fwd.ids, fwd.hs, xp.ascontiguousarray(W), gT, gseq,
                                     fwd.n_vocab, fwd.activation)
        return dE, dW, db

    def backward(self, indexes, grad_outputs):
        raise NotImplementedError('double backprop through the fused IRNN recurrence is not '
                                  'supported; use impl=\'stepwise\' for higher-order gradients')


def irnn_recurrence(ids, E, W, b, return_sequence=False, activation='relu', h0=None):
    """h_T (B, H) of ``h_t = relu(E[ids[:, t]] + h_{t-1} W^T + b)``, h_0 = 0, as a Variable
    (``activation='tanh'``: tanh instead of relu).

    ``ids``: (B, T) integer array of ids in [0, V) (NumPy or CuPy; not checked here);
    ``E`` (V, H), ``W`` (H, H), ``b`` (H,): Variables/Parameters or arrays, float32 or
    float64, one dtype. ``return_sequence=True``: every state, (B, T, H).
    ``h0``: an initial state (B, H) array instead of 0 (``--h0-noise``; not differentiated).
    """
    if h0 is not None:
        ids, E = _first_step_rows(ids, E, W, h0)
    ids, inputs, keep = _prepare(ids, (E, W, b))
    y, = IRNNRecurrence(ids, return_sequence=return_sequence, keep=keep,
                        activation=activation).apply(inputs)
    return y


def _first_step_rows(ids, E, W, h0):
    """A start from ``h0`` through kernels that start from 0: the first step's
    pre-activation ``E[ids[:, 0]] + h0 W^T + b`` becomes one extra row of E per sequence
    (row V + i for sequence i), so every kernel runs unchanged, and Chainer's graph carries
    those rows' gradient back to E (through the gather) and to W (through the product)."""
    if isinstance(ids, chainer.Variable):
        ids = ids.array
    xp = _xp(ids, h0)
    B = ids.shape[0]
    V = E.shape[0]
    first = F.embed_id(xp.ascontiguousarray(ids[:, 0], dtype=xp.int32), E) + F.matmul(h0, W, transb=True)
    ids = xp.array(ids, dtype=xp.int32)
    ids[:, 0] = V + xp.arange(B, dtype=xp.int32)
    return ids, F.concat((E, first), axis=0)


def _prepare(ids, arrays):
    """ids as an array, the inputs as Variables (arrays given: no gradient), and whether
    the node must keep its states for backward (a graph is built and something needs a
    gradient)."""
    if isinstance(ids, chainer.Variable):
        ids = ids.array
    inputs = [x if isinstance(x, chainer.Variable) else chainer.Variable(x, requires_grad=False)
              for x in arrays]
    keep = bool(chainer.config.enable_backprop) and any(x.requires_grad for x in inputs)
    return ids, inputs, keep


# ---------------------------------------------------------------------------------------
# The LSTM baseline: Chainer's L.LSTM over E[ids_t], the whole sequence as one node.
# ---------------------------------------------------------------------------------------

class LSTMRecurrence(function_node.FunctionNode):
    """Inputs (G, U): G = E Wu^T + bu (V, 4H), the ``upward`` Linear applied to every
    embedding row, and U = ``lateral.W`` (4H, H); output h_T (B, H) of Chainer's LSTM
    (gates interleaved as in ``F.lstm``) from zero state. ``ids`` (B, T) go to the
    constructor. On the CPU the C kernel (:mod:`irnn_chainer.kernels.lstm_c`) or the NumPy one,
    chosen as for the IRNN; CuPy arrays run the array-module kernel
    (:mod:`irnn_chainer.kernels.lstm_numpy`)."""

    def __init__(self, ids, keep=True):
        self.ids = ids
        self.keep = keep
        self.saved = None
        self.kernel = None

    def check_type_forward(self, in_types):
        type_check._argname(in_types, ('G', 'U'))
        G, U = in_types
        type_check.expect(G.dtype.kind == 'f', G.ndim == 2, U.ndim == 2, U.dtype == G.dtype,
                          U.shape[0] == G.shape[1], U.shape[0] == 4 * U.shape[1])

    def forward(self, inputs):
        G, U = inputs
        xp = _xp(self.ids, G, U)
        if _is_cupy(xp):
            from irnn_chainer.kernels import lstm_numpy  # the array-module kernel (NumPy or CuPy)
            self.kernel = lstm_numpy
        else:
            self.kernel = kernels.lstm_cpu_kernel()
        self.ids = xp.ascontiguousarray(self.ids, dtype=xp.int32)
        self.n_vocab = G.shape[0]
        self.saved, hT = self.kernel.forward(self.ids, xp.ascontiguousarray(G), xp.ascontiguousarray(U),
                                             self.keep)
        if self.keep:
            self.retain_inputs((1,))
            release = getattr(self.kernel, 'release', None)
            if release is not None:  # the saved buffers go back to the pool with the graph
                weakref.finalize(self, release, self.saved)
        return hT,

    def backward(self, indexes, grad_outputs):
        gy, = grad_outputs
        if gy is None:
            return None, None
        if self.saved is None:
            raise RuntimeError('LSTMRecurrence: backward after a forward that kept no states')
        U, = self.get_retained_inputs()
        return LSTMRecurrenceGrad(self).apply((U, gy))


class LSTMRecurrenceGrad(function_node.FunctionNode):
    """(U, dL/dh_T) -> (dG, dU) of an :class:`LSTMRecurrence`; not differentiable."""

    def __init__(self, fwd):
        self.fwd = fwd

    def forward(self, inputs):
        U, gy = inputs
        fwd = self.fwd
        return fwd.kernel.backward(fwd.ids, fwd.saved, U, gy, fwd.n_vocab)

    def backward(self, indexes, grad_outputs):
        raise NotImplementedError('double backprop through the fused LSTM is not supported')


def lstm_recurrence(ids, G, U):
    """h_T (B, H) of Chainer's LSTM over the rows ``G[ids[:, t]]`` (see LSTMRecurrence)."""
    ids, inputs, keep = _prepare(ids, (G, U))
    y, = LSTMRecurrence(ids, keep=keep).apply(inputs)
    return y
