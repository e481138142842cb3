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

from irnn_chainer.compat import api

IMPLS = ('stepwise', 'fused')


def check_ids(x, n_in, name='x'):
    """Validate pixel ids: an integer array of shape (batch, time) with values in [0, n_in).

    Returns them as int32 (EmbedID's dtype). Raises TypeError/ValueError naming what was
    expected and what was given, on every Chainer version (1.0 had no type checks at all
    and later ones give errors like "Expect: in_types[0].ndim >= 2, Actual: 1 < 2").
    """
    if isinstance(x, chainer.Variable):
        x = x.array if hasattr(x, 'array') else x.data
    if not hasattr(x, 'dtype') or not hasattr(x, 'ndim'):
        raise TypeError('%s: expected an integer array of pixel ids with shape (batch, time), '
                        'got %s' % (name, type(x).__name__))
    if x.dtype.kind not in 'iu':
        raise TypeError('%s: expected integer pixel ids (int32) with shape (batch, time), got a %s '
                        'array; for pixel MNIST pass the raw 0..255 values, e.g. x.astype(np.int32)'
                        % (name, x.dtype))
    if x.ndim != 2:
        raise ValueError('%s: expected shape (batch, time), got %d-D shape %s%s'
                         % (name, x.ndim, tuple(x.shape),
                            '; for one sequence use x[None]' if x.ndim == 1 else ''))
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError('%s: expected at least one sequence of at least one step, got shape %s'
                         % (name, tuple(x.shape)))
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi >= n_in:
        raise ValueError('%s: expected ids in 0..%d, got values in %d..%d' % (name, n_in - 1, lo, hi))
    return x.astype(np.int32, copy=False)


class RNN(chainer.Chain):
    """Elman RNN over integer inputs: ``h_t = act(pixel_to_h(x_t) + h_to_h(h_{t-1}))``.

    ``recurrent_init='identity'`` with ReLU is the IRNN; ``'normal'`` draws ``h_to_h`` from
    N(0, init_std) like the other weights (the paper's plain RNN baselines).
    ``impl='stepwise'`` is the faithful reference (one EmbedID + Linear + activation node
    per timestep, as the gist); ``impl='fused'`` runs the whole recurrence as one
    FunctionNode (:mod:`irnn_chainer.fused`, ReLU only). Both use the same parameters.
    """

    def __init__(self, n_units=100, n_in=256, n_out=10, init_std=0.001, impl='stepwise',
                 activation='relu', recurrent_init='identity'):
        super(RNN, self).__init__()
        if impl not in IMPLS:
            raise ValueError('impl: expected one of %s, got %r' % (', '.join(IMPLS), impl))
        if activation not in ('relu', 'tanh'):
            raise ValueError("activation: expected 'relu' or 'tanh', got %r" % activation)
        if impl == 'fused' and activation != 'relu':
            raise ValueError("impl='fused' runs ReLU recurrences only; use impl='stepwise' for %s"
                             % activation)
        if recurrent_init not in ('identity', 'normal'):
            raise ValueError("recurrent_init: expected 'identity' or 'normal', got %r" % recurrent_init)
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

    def forward(self, x):
        x = check_ids(x, self.n_in)
        if self.impl == 'fused':
            from irnn_chainer.fused import irnn_recurrence
            h = irnn_recurrence(x, self.pixel_to_h.W, self.h_to_h.W, self.h_to_h.b)
        else:
            h = self.recurrence_stepwise(x)
        return self.h_to_y(h)

    def __call__(self, x):  # Chainer < 5 calls __call__, not forward
        return self.forward(x)

    def recurrence_stepwise(self, x):
        """h_T by the per-timestep loop, exactly the gist's graph."""
        act = F.relu if self.activation == 'relu' else F.tanh
        batch, length = x.shape
        xs = self.xp.ascontiguousarray(x.T)  # one contiguous row of ids per timestep
        h = chainer.Variable(self.xp.zeros((batch, self.n_units), dtype=self.h_to_h.W.dtype))
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
        if impl != 'stepwise':
            raise ValueError("impl: the LSTM runs stepwise only, got %r" % impl)
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
    'rnn-tanh': (RNN, {'activation': 'tanh', 'recurrent_init': 'normal'}, False),
    'lstm': (LSTM, {}, False),
}


def build(name='irnn', n_units=100, n_in=256, n_out=10, init_std=0.001, impl='stepwise'):
    """The model called ``name`` (one of :data:`MODELS`)."""
    if name not in MODELS:
        raise ValueError('model: expected one of %s, got %r' % (', '.join(MODELS), name))
    cls, kwargs, _ = MODELS[name]
    return cls(n_units=n_units, n_in=n_in, n_out=n_out, init_std=init_std, impl=impl, **kwargs)
