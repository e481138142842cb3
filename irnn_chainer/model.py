"""The IRNN of Le, Jaitly & Hinton (2015), section 4.2, as the 2015 gist built it.

Each 28x28 image is read as 784 pixel ids (0..255), one per timestep::

    h_0 = 0
    h_t = relu(pixel_to_h(x_t) + h_to_h(h_{t-1}))      # EmbedID (no bias) + Linear
    y   = h_to_y(h_T)                                   # logits, one per class

``pixel_to_h`` is a one-hot input times a weight matrix, so an ``EmbedID``; ``h_to_h`` starts
as the identity with zero bias (the "I" in IRNN); the other weights are N(0, 0.001).
"""
import numpy as np

import chainer
import chainer.functions as F
import chainer.links as L
from chainer import initializers

from irnn_chainer.checks import check_ids  # noqa: F401  (re-exported: the model's input check)
from irnn_chainer.compat import api

IMPLS = ('stepwise', 'fused')


def _check_options(impl, activation, recurrent_init):
    if impl not in IMPLS:
        raise ValueError('impl: expected one of %s, got %r' % (', '.join(IMPLS), impl))
    if activation not in ('relu', 'tanh'):
        raise ValueError("activation: expected 'relu' or 'tanh', got %r" % activation)
    if recurrent_init not in ('identity', 'normal'):
        raise ValueError("recurrent_init: expected 'identity' or 'normal', got %r" % recurrent_init)


class RNN(chainer.Chain):
    """Elman RNN over integer inputs: ``h_t = act(pixel_to_h(x_t) + h_to_h(h_{t-1}))``.

    ``recurrent_init='identity'`` with ReLU is the IRNN; ``'normal'`` draws ``h_to_h`` from
    N(0, init_std) like the other weights (the paper's plain RNN baselines).
    ``impl='stepwise'`` is the faithful reference (one EmbedID + Linear + activation node
    per timestep, as the gist); ``impl='fused'`` runs the whole recurrence as one
    FunctionNode (:mod:`irnn_chainer.fused`, ReLU or tanh). Both use the same parameters.
    """

    def __init__(self, n_units=100, n_in=256, n_out=10, init_std=0.001, impl='stepwise',
                 activation='relu', recurrent_init='identity'):
        super(RNN, self).__init__()
        _check_options(impl, activation, recurrent_init)
        self.n_units, self.n_in, self.n_out, self.impl = n_units, n_in, n_out, impl
        self.activation = activation
        normal = initializers.Normal(init_std)
        api.register_links(
            self,
            pixel_to_h=L.EmbedID(n_in, n_units, initialW=normal),
            h_to_h=L.Linear(n_units, n_units, initial_bias=0,
                            initialW=initializers.Identity() if recurrent_init == 'identity' else normal),
            h_to_y=L.Linear(n_units, n_out, initialW=normal, initial_bias=0),
        )

    #: ``--h0-noise``: the std of Gaussian noise on h_0 while training (0: h_0 = 0, as the
    #: paper); evaluation always starts from 0. ``h0_key``: the seed of the next draw, set per
    #: update by the trainer (extensions.H0NoiseKey) so that a resumed run draws the same noise.
    h0_noise = 0.0
    h0_key = None

    def initial_state(self, batch):
        """h_0 for a batch: None (zeros) unless training with ``h0_noise``."""
        if not self.h0_noise or not api.training_mode():
            return None
        rng = np.random.RandomState(self.h0_key) if self.h0_key is not None else np.random
        noise = rng.normal(0.0, self.h0_noise, (batch, self.n_units))
        return self.xp.asarray(noise.astype(self.h_to_h.W.dtype))

    def forward(self, x):
        x = check_ids(x, self.n_in)
        h0 = self.initial_state(x.shape[0])
        if self.impl == 'fused':
            from irnn_chainer.fused import irnn_recurrence
            h = irnn_recurrence(x, self.pixel_to_h.W, self.h_to_h.W, self.h_to_h.b,
                                activation=self.activation, h0=h0)
        else:
            h = self.recurrence_stepwise(x, h0)
        return self.h_to_y(h)

    def __call__(self, x):  # Chainer < 5 calls __call__, not forward
        return self.forward(x)

    def recurrence_stepwise(self, x, h0=None):
        """h_T by the per-timestep loop, exactly the gist's graph (from ``h0``, default 0)."""
        act = F.relu if self.activation == 'relu' else F.tanh
        batch, length = x.shape
        xs = self.xp.ascontiguousarray(x.T)  # one contiguous row of ids per timestep
        if h0 is None:
            h0 = self.xp.zeros((batch, self.n_units), dtype=self.h_to_h.W.dtype)
        h = chainer.Variable(h0)
        for t in range(length):
            h = act(self.pixel_to_h(xs[t]) + self.h_to_h(h))
        return h


class IRNN(RNN):
    """The IRNN: ReLU units, ``h_to_h`` initialised to the identity with zero bias."""

    def __init__(self, n_units=100, n_in=256, n_out=10, init_std=0.001, impl='stepwise'):
        super(IRNN, self).__init__(n_units, n_in, n_out, init_std, impl,
                                   activation='relu', recurrent_init='identity')


class LSTM(chainer.Chain):
    """The paper's LSTM baseline: pixel ids through an EmbedID, Chainer's LSTM with the
    forget-gate bias initialised to 1, the class read from the last hidden state."""

    def __init__(self, n_units=100, n_in=256, n_out=10, init_std=0.001, impl='stepwise'):
        super(LSTM, self).__init__()
        if impl not in IMPLS:
            raise ValueError('impl: expected one of %s, got %r' % (', '.join(IMPLS), impl))
        self.n_units, self.n_in, self.n_out, self.impl = n_units, n_in, n_out, impl
        normal = initializers.Normal(init_std)
        api.register_links(
            self,
            pixel_to_h=L.EmbedID(n_in, n_units, initialW=normal),
            lstm=L.LSTM(n_units, n_units, forget_bias_init=1),
            h_to_y=L.Linear(n_units, n_out, initialW=normal, initial_bias=0),
        )

    def forward(self, x):
        x = check_ids(x, self.n_in)
        if self.impl == 'fused':  # one node: upward(E) as a table, then the fused recurrence
            from irnn_chainer.fused import lstm_recurrence
            up = self.lstm.upward
            h = lstm_recurrence(x, F.linear(self.pixel_to_h.W, up.W, up.b), self.lstm.lateral.W)
            return self.h_to_y(h)
        xs = self.xp.ascontiguousarray(x.T)
        self.lstm.reset_state()
        for t in range(xs.shape[0]):
            h = self.lstm(self.pixel_to_h(xs[t]))
        self.lstm.reset_state()
        return self.h_to_y(h)

    def __call__(self, x):
        return self.forward(x)


#: --model name -> (class, keyword arguments, whether the fused path covers it)
MODELS = {
    'irnn': (IRNN, {}, True),
    'rnn-relu': (RNN, {'activation': 'relu', 'recurrent_init': 'normal'}, True),
    'rnn-tanh': (RNN, {'activation': 'tanh', 'recurrent_init': 'normal'}, True),
    'lstm': (LSTM, {}, True),
}


def build(name='irnn', n_units=100, n_in=256, n_out=10, init_std=0.001, impl='stepwise'):
    """The model called ``name`` (one of :data:`MODELS`)."""
    if name not in MODELS:
        raise ValueError('model: expected one of %s, got %r' % (', '.join(MODELS), name))
    cls, kwargs, _ = MODELS[name]
    return cls(n_units=n_units, n_in=n_in, n_out=n_out, init_std=init_std, impl=impl, **kwargs)


# ---------------------------------------------------------------------------------------
# Your own sequences (issue 7): real-valued or id inputs, stacked layers, any output size.
# ---------------------------------------------------------------------------------------

INPUTS = ('ids', 'real')


def check_real(x, n_features, dtype=None, name='x'):
    """Validate real-valued input: a float array of shape (batch, time, features).

    Returns it as ``dtype`` (the parameters' dtype). Raises TypeError/ValueError naming
    what was expected and what was given (Chainer's own error for a 2-D input to a Linear
    is "Expect: in_types[0].ndim >= 2, Actual: 1 < 2", which says neither).
    """
    if isinstance(x, chainer.Variable):
        arr = x.array if hasattr(x, 'array') else x.data
    else:
        arr = x
    if not hasattr(arr, 'dtype') or not hasattr(arr, 'ndim'):
        raise TypeError('%s: expected a float array with shape (batch, time, %d), got %s'
                        % (name, n_features, type(arr).__name__))
    if arr.dtype.kind != 'f':
        raise TypeError('%s: expected float features with shape (batch, time, %d), got a %s array%s'
                        % (name, n_features, arr.dtype,
                           '; integer ids need input=\'ids\'' if arr.dtype.kind in 'iu' else ''))
    if arr.ndim != 3:
        hint = {2: '; for one feature per step use x[..., None], for one sequence x[None]',
                1: '; for one sequence of one feature use x[None, :, None]'}.get(arr.ndim, '')
        raise ValueError('%s: expected shape (batch, time, %d), got %d-D shape %s%s'
                         % (name, n_features, arr.ndim, tuple(arr.shape), hint))
    if arr.shape[2] != n_features:
        raise ValueError('%s: expected %d features per step, shape (batch, time, %d), got shape %s'
                         % (name, n_features, n_features, tuple(arr.shape)))
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError('%s: expected at least one sequence of at least one step, got shape %s'
                         % (name, tuple(arr.shape)))
    if dtype is not None and arr.dtype != dtype:
        if isinstance(x, chainer.Variable):
            return chainer.functions.cast(x, dtype)
        return arr.astype(dtype)
    return x


class SequenceRNN(chainer.Chain):
    """Stacked Elman RNN (the IRNN by default) over ids or real-valued feature vectors.

    For layers ``l = 1..L`` with sizes ``layers`` (e.g. ``(100, 50)``)::

        h^l_t = act(x_to_h1(x_t) + h1_to_h1(h^1_{t-1}))            # l = 1
        h^l_t = act(h{l-1}_to_h{l}(h^{l-1}_t) + h{l}_to_h{l}(h^l_{t-1}))   # l > 1
        y     = h_to_y(h^L_T)

    * ``x_to_h1``: ``EmbedID(n_in, layers[0])`` for ``input='ids'`` (ids 0..n_in-1), or
      ``Linear(n_in, layers[0])`` for ``input='real'`` (n_in features per step; no bias
      unless ``input_bias``, as the paper's input has none); N(0, init_std).
    * ``h{l-1}_to_h{l}``: ``Linear`` without bias, N(0, init_std).
    * ``h{l}_to_h{l}``: each layer's square recurrent matrix, ``identity_scale * I`` with
      zero bias (``recurrent_init='identity'``; the paper used 0.01 I for speech), or
      N(0, init_std) (``'normal'``, the plain RNN baselines).
    * ``h_to_y``: ``Linear(layers[-1], n_out)``, N(0, init_std), zero bias: ``n_out``
      classes (logits) or regression outputs.

    ``impl='stepwise'`` builds one node per layer per step. ``impl='fused'`` runs each
    layer over the whole sequence at once: its input projection for all timesteps as one
    matmul, then the recurrence as one FunctionNode (:mod:`irnn_chainer.fused`).
    """

    def __init__(self, layers=(100,), n_in=256, n_out=10, input='ids', init_std=0.001,
                 identity_scale=1.0, input_bias=False, impl='stepwise', activation='relu',
                 recurrent_init='identity'):
        super(SequenceRNN, self).__init__()
        layers = tuple(int(n) for n in layers)
        if not layers or min(layers) < 1:
            raise ValueError('layers: expected one or more positive sizes, got %r' % (layers,))
        if input not in INPUTS:
            raise ValueError('input: expected one of %s, got %r' % (', '.join(INPUTS), input))
        _check_options(impl, activation, recurrent_init)
        if input == 'ids' and input_bias:
            raise ValueError("input_bias: an EmbedID input has no bias; use input='real'")
        self.layers, self.n_in, self.n_out, self.input = layers, int(n_in), int(n_out), input
        self.impl, self.activation, self.identity_scale = impl, activation, identity_scale
        normal = initializers.Normal(init_std)
        links = {}
        for l, n in enumerate(layers, 1):
            if l == 1:
                links['x_to_h1'] = (L.EmbedID(n_in, n, initialW=normal) if input == 'ids' else
                                    L.Linear(n_in, n, initialW=normal, nobias=not input_bias,
                                             initial_bias=0 if input_bias else None))
            else:
                links['h%d_to_h%d' % (l - 1, l)] = L.Linear(layers[l - 2], n, initialW=normal, nobias=True)
            links['h%d_to_h%d' % (l, l)] = L.Linear(
                n, n, initial_bias=0,
                initialW=initializers.Identity(scale=identity_scale) if recurrent_init == 'identity' else normal)
        links['h_to_y'] = L.Linear(layers[-1], n_out, initialW=normal, initial_bias=0)
        api.register_links(self, **links)

    def input_link(self, l):
        """The link that feeds layer ``l`` (1-based): x_to_h1, h1_to_h2, ..."""
        return self['x_to_h1' if l == 1 else 'h%d_to_h%d' % (l - 1, l)]

    def recurrent_link(self, l):
        return self['h%d_to_h%d' % (l, l)]

    def check_input(self, x):
        if self.input == 'ids':
            return check_ids(x, self.n_in)
        return check_real(x, self.n_in, self.h_to_y.W.dtype)

    def forward(self, x):
        x = self.check_input(x)
        h = self.recurrence_fused(x) if self.impl == 'fused' else self.recurrence_stepwise(x)
        return self.h_to_y(h)

    def __call__(self, x):  # Chainer < 5 calls __call__, not forward
        return self.forward(x)

    def recurrence_stepwise(self, x):
        """h^L_T by the per-timestep loop (all layers at each step)."""
        act = F.relu if self.activation == 'relu' else F.tanh
        batch, length = x.shape[:2]
        if self.input == 'ids':
            xs = self.xp.ascontiguousarray(x.T)
        else:
            xs = F.separate(x, axis=1)  # one (batch, features) node per timestep
        dtype = self.h_to_y.W.dtype
        hs = [chainer.Variable(self.xp.zeros((batch, n), dtype=dtype)) for n in self.layers]
        for t in range(length):
            inp = xs[t]
            for l in range(1, len(self.layers) + 1):
                hs[l - 1] = act(self.input_link(l)(inp) + self.recurrent_link(l)(hs[l - 1]))
                inp = hs[l - 1]
        return hs[-1]

    def recurrence_fused(self, x):
        """h^L_T layer by layer: each layer's inputs for all steps in one matmul, then the
        whole recurrence as one FunctionNode."""
        from irnn_chainer import fused
        batch, length = x.shape[:2]
        inp = x
        n_layers = len(self.layers)
        for l in range(1, n_layers + 1):
            rec = self.recurrent_link(l)
            last = l == n_layers
            if l == 1 and self.input == 'ids':
                h = fused.irnn_recurrence(inp, self.x_to_h1.W, rec.W, rec.b, return_sequence=not last,
                                          activation=self.activation)
            else:
                flat = F.reshape(inp, (batch * length, inp.shape[2]))
                pre = F.reshape(self.input_link(l)(flat), (batch, length, self.layers[l - 1]))
                h = _fused_pre_recurrence(fused, pre, rec.W, rec.b, not last, self.activation)
            inp = h
        return inp


def _fused_pre_recurrence(fused, pre, W, b, return_sequence, activation='relu'):
    """``h_t = act(pre[:, t] + W h_{t-1} + b)`` over precomputed input projections ``pre``
    (batch, time, units), fused.

    :func:`irnn_chainer.fused.irnn_recurrence` takes ids and an embedding table; a table
    with one row per (sequence, step), ``E = pre.reshape(batch * time, units)``, and the
    ids ``b * time + t`` make ``E[ids[:, t]] = pre[:, t]``: the same kernel, and its dE
    (a scatter-add over distinct ids) is exactly dL/dpre.
    """
    batch, length, units = pre.shape
    xp = api.array_module(pre)
    ids = xp.arange(batch * length, dtype=np.int32).reshape(batch, length)
    table = F.reshape(pre, (batch * length, units))
    return fused.irnn_recurrence(ids, table, W, b, return_sequence=return_sequence,
                                 activation=activation)
