"""The models: the IRNN of Le, Jaitly & Hinton (2015), section 4.2, as the 2015 gist built it,
its plain-RNN and LSTM baselines, and the one factory that builds a run's model (:func:`for_run`).

Each 28x28 image is read as 784 pixel ids (0..255), one per timestep::

    h_0 = 0
    h_t = relu(pixel_to_h(x_t) + h_to_h(h_{t-1}))      # EmbedID (no bias) + Linear
    y   = h_to_y(h_T)                                   # logits, one per class

``pixel_to_h`` is a one-hot input times a weight matrix, so an ``EmbedID``; ``h_to_h`` starts
as the identity with zero bias (the "I" in IRNN); the other weights are N(0, 0.001).
The same :class:`RNN` stacks layers and reads real-valued features (your own sequences).
"""
import collections

import numpy as np

import chainer
import chainer.functions as F
import chainer.links as L
from chainer import initializers

from irnn_chainer.model.checks import check_ids  # noqa: F401  (re-exported: the model's input check)
from irnn_chainer.compat import api
from irnn_chainer.errors import UsageError

IMPLS = ('stepwise', 'fused')
INPUTS = ('ids', 'real')


def _check_options(impl, activation, recurrent_init):
    if impl not in IMPLS:
        raise ValueError('impl: expected one of %s, got %r' % (', '.join(IMPLS), impl))
    if activation not in ('relu', 'tanh'):
        raise ValueError("activation: expected 'relu' or 'tanh', got %r" % activation)
    if recurrent_init not in ('identity', 'normal'):
        raise ValueError("recurrent_init: expected 'identity' or 'normal', got %r" % recurrent_init)


class RNN(chainer.Chain):
    """Elman RNN (the IRNN by default): one or more layers, over ids or real-valued features.

    For layers ``l = 1..L`` of sizes ``n_units`` (a number: one layer; a list: a stack)::

        h^1_t = act(input(x_t) + recurrent_1(h^1_{t-1}))                 # h^l_0 = 0
        h^l_t = act(between_{l-1,l}(h^{l-1}_t) + recurrent_l(h^l_{t-1}))  # l > 1
        y     = h_to_y(h^L_T)                                             # logits or outputs

    * the input link: ``EmbedID(n_in, units)`` for ``input='ids'`` (ids 0..n_in-1, pixel
      MNIST's 256), or ``Linear(n_in, units)`` for ``input='real'`` (n_in features per
      step; no bias unless ``input_bias``, as the paper's input has none); N(0, init_std).
    * between layers: ``Linear`` without bias, N(0, init_std).
    * each layer's square recurrent matrix: ``identity_scale * I`` with zero bias
      (``recurrent_init='identity'``, the "I" in IRNN; the paper used 0.01 I for speech), or
      N(0, init_std) (``'normal'``, the paper's plain RNN baselines).
    * ``h_to_y``: ``Linear(units of the last layer, n_out)``, N(0, init_std), zero bias.

    Names: the gist's model (one layer given as a number, ids in) keeps the gist's names,
    ``pixel_to_h``, ``h_to_h``, ``h_to_y``, so its snapshots and every run in results/
    load; a list of layers (or real input) numbers them: ``x_to_h1``, ``h1_to_h1``,
    ``h1_to_h2``, ``h2_to_h2``, ..., ``h_to_y``. ``gist_names`` overrides the choice (the
    run factory, :func:`for_run`, sets it as the runs it loads were saved).

    ``impl='stepwise'`` is the faithful reference (one node per layer per timestep, as the
    gist); ``impl='fused'`` runs each layer over the whole sequence as one FunctionNode
    (:mod:`irnn_chainer.fused`, ReLU or tanh), its input projection for all steps first as
    one matmul. Both use the same parameters.
    """

    def __init__(self, n_units=100, n_in=256, n_out=10, init_std=0.001, impl='stepwise',
                 activation='relu', recurrent_init='identity', input='ids', identity_scale=1.0,
                 input_bias=False, gist_names=None):
        super(RNN, self).__init__()
        one = isinstance(n_units, (int, np.integer))
        layers = (int(n_units),) if one else tuple(int(n) for n in n_units)
        if not layers or min(layers) < 1:
            raise ValueError('layers: expected one or more positive sizes, got %r' % (n_units,))
        if input not in INPUTS:
            raise ValueError('input: expected one of %s, got %r' % (', '.join(INPUTS), input))
        _check_options(impl, activation, recurrent_init)
        if input == 'ids' and input_bias:
            raise ValueError("input_bias: an EmbedID input has no bias; use input='real'")
        if gist_names is None:
            gist_names = one and input == 'ids'
        if gist_names and (len(layers) > 1 or input != 'ids'):
            raise ValueError('gist_names: the gist\'s names are for one layer of ids, got layers %s, '
                             'input %r' % (list(layers), input))
        self.layers, self.n_units, self.n_in, self.n_out = layers, layers[-1], int(n_in), int(n_out)
        self.input, self.impl, self.activation, self.identity_scale = input, impl, activation, identity_scale
        self._names = ([('pixel_to_h', 'h_to_h')] if gist_names else
                       [('x_to_h1' if l == 1 else 'h%d_to_h%d' % (l - 1, l), 'h%d_to_h%d' % (l, l))
                        for l in range(1, len(layers) + 1)])
        normal = initializers.Normal(init_std)
        links = {}
        for l, n in enumerate(layers, 1):
            into, rec = self._names[l - 1]
            if l > 1:
                links[into] = L.Linear(layers[l - 2], n, initialW=normal, nobias=True)
            elif input == 'ids':
                links[into] = L.EmbedID(n_in, n, initialW=normal)
            else:
                links[into] = L.Linear(n_in, n, initialW=normal, nobias=not input_bias,
                                       initial_bias=0 if input_bias else None)
            identity = initializers.Identity(scale=identity_scale) if identity_scale != 1.0 else \
                initializers.Identity()  # (the gist's model: the exact call of every Chainer era)
            links[rec] = L.Linear(n, n, initial_bias=0,
                                  initialW=identity if recurrent_init == 'identity' else normal)
        links['h_to_y'] = L.Linear(layers[-1], n_out, initialW=normal, initial_bias=0)
        api.register_links(self, **links)

    def input_link(self, l):
        """The link that feeds layer ``l`` (1-based): pixel_to_h or x_to_h1, h1_to_h2, ..."""
        return self[self._names[l - 1][0]]

    def recurrent_link(self, l):
        """Layer ``l``'s recurrent link: h_to_h or h1_to_h1, h2_to_h2, ..."""
        return self[self._names[l - 1][1]]

    def check_input(self, x):
        if self.input == 'ids':
            return check_ids(x, self.n_in)
        return check_real(x, self.n_in, self.h_to_y.W.dtype)

    #: ``--h0-noise``: the std of Gaussian noise on h_0 while training (0: h_0 = 0, as the
    #: paper); evaluation always starts from 0. ``noise_key``: the seed of the update's draws
    #: (this noise, ``--dropout``'s and ``--input-dropout``'s masks), set per update by the
    #: trainer (schedule.NoiseKey) so that a resumed run draws the same. The noise: one-layer
    #: models over ids only (h0_noise_applies refuses the others).
    h0_noise = 0.0
    noise_key = None
    #: ``--dropout`` and ``--input-dropout``: see :func:`readout_dropout`, :func:`input_dropout`.
    dropout = 0.0
    input_dropout = 0.0

    def initial_state(self, batch):
        """h_0 of the first layer for a batch: None (zeros) unless training with ``h0_noise``."""
        if not self.h0_noise or not api.training_mode():
            return None
        if len(self.layers) > 1 or self.input != 'ids':
            raise ValueError('h0_noise: for one layer over ids, got layers %s, input %r'
                             % (list(self.layers), self.input))
        rng = np.random.RandomState(self.noise_key) if self.noise_key is not None else np.random
        noise = rng.normal(0.0, self.h0_noise, (batch, self.n_units))
        return self.xp.asarray(noise.astype(self.h_to_y.W.dtype))

    def forward(self, x):
        x = self.check_input(x)
        if self.input == 'ids':
            x = input_dropout(x, self.input_dropout, self.noise_key, self.xp)
        h0 = self.initial_state(x.shape[0])
        h = self.recurrence_fused(x, h0) if self.impl == 'fused' else self.recurrence_stepwise(x, h0)
        return self.h_to_y(readout_dropout(h, self.dropout, self.noise_key, self.xp))

    def __call__(self, x):  # Chainer < 5 calls __call__, not forward
        return self.forward(x)

    def recurrence_stepwise(self, x, h0=None):
        """h^L_T by the per-timestep loop, all layers at each step (the first from ``h0``,
        default 0): for the gist's model exactly the gist's graph."""
        act = F.relu if self.activation == 'relu' else F.tanh
        batch, length = x.shape[:2]
        if self.input == 'ids':
            xs = self.xp.ascontiguousarray(x.T)  # one contiguous row of ids per timestep
        else:
            xs = F.separate(x, axis=1)  # one (batch, features) node per timestep
        dtype = self.h_to_y.W.dtype
        hs = [chainer.Variable(self.xp.zeros((batch, n), dtype=dtype)) for n in self.layers]
        if h0 is not None:
            hs[0] = chainer.Variable(h0)
        for t in range(length):
            inp = xs[t]
            for l in range(1, len(self.layers) + 1):
                hs[l - 1] = act(self.input_link(l)(inp) + self.recurrent_link(l)(hs[l - 1]))
                inp = hs[l - 1]
        return hs[-1]

    def recurrence_fused(self, x, h0=None):
        """h^L_T layer by layer: each layer's inputs for all steps in one matmul (ids: the
        embedding table itself), then the whole recurrence as one FunctionNode (the first
        layer of ids from ``h0``, default 0: :func:`irnn_chainer.fused.irnn_recurrence`)."""
        from irnn_chainer.model import fused
        batch, length = x.shape[:2]
        inp = x
        n_layers = len(self.layers)
        for l in range(1, n_layers + 1):
            rec = self.recurrent_link(l)
            last = l == n_layers
            if l == 1 and self.input == 'ids':
                h = fused.irnn_recurrence(inp, self.input_link(1).W, rec.W, rec.b, return_sequence=not last,
                                          activation=self.activation, h0=h0)
            else:
                flat = F.reshape(inp, (batch * length, inp.shape[2]))
                pre = F.reshape(self.input_link(l)(flat), (batch, length, self.layers[l - 1]))
                h = _fused_pre_recurrence(fused, pre, rec.W, rec.b, not last, self.activation)
            inp = h
        return inp


def readout_dropout(h, ratio, key, xp):
    """``--dropout P``: while training, each unit of the last hidden state h_T (the one the
    classifier reads) is zeroed with probability P and the rest scaled by 1 / (1 - P)
    (inverted dropout, Srivastava et al. 2014), so evaluation reads all units unscaled. The
    mask is drawn from ``key`` + [1] (``key``: the update's seed, schedule.NoiseKey; h_0's
    noise uses ``key`` itself), so a resumed run draws the same masks."""
    if not ratio or not api.training_mode():
        return h
    rng = np.random.RandomState(list(key) + [1]) if key is not None else np.random
    data = h.data
    keep = rng.uniform(size=data.shape) >= ratio
    mask = (keep / (1.0 - ratio)).astype(data.dtype)
    return h * chainer.Variable(xp.asarray(mask))


def input_dropout(x, ratio, key, xp):
    """``--input-dropout P``: while training, each pixel id of ``x`` (batch, steps) is replaced
    by 0, a black pixel, with probability P; evaluation reads the image as it is. No rescaling:
    an id is a category, not a magnitude. The mask is drawn from ``key`` + [2] (see
    :func:`readout_dropout`), so a resumed run draws the same."""
    if not ratio or not api.training_mode():
        return x
    rng = np.random.RandomState(list(key) + [2]) if key is not None else np.random
    keep = rng.uniform(size=x.shape) >= ratio
    return x * xp.asarray(keep.astype(x.dtype))


class IRNN(RNN):
    """The IRNN: ReLU units, the recurrent matrix initialised to the identity with zero bias."""

    def __init__(self, n_units=100, n_in=256, n_out=10, init_std=0.001, impl='stepwise', **options):
        super(IRNN, self).__init__(n_units, n_in, n_out, init_std, impl, activation='relu',
                                   recurrent_init='identity', **options)


class LSTM(chainer.Chain):
    """The paper's LSTM baseline: pixel ids through an EmbedID, Chainer's LSTM with the
    forget-gate bias initialised to 1, the class read from the last hidden state."""

    #: ``--dropout`` on h_T, ``--input-dropout`` on the pixels, and their per-update seed, as
    #: in :class:`RNN`
    dropout = 0.0
    input_dropout = 0.0
    noise_key = None

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
        x = input_dropout(check_ids(x, self.n_in), self.input_dropout, self.noise_key, self.xp)
        if self.impl == 'fused':  # one node: upward(E) as a table, then the fused recurrence
            from irnn_chainer.model.fused import lstm_recurrence
            up = self.lstm.upward
            h = lstm_recurrence(x, F.linear(self.pixel_to_h.W, up.W, up.b), self.lstm.lateral.W)
        else:
            xs = self.xp.ascontiguousarray(x.T)
            self.lstm.reset_state()
            for t in range(xs.shape[0]):
                h = self.lstm(self.pixel_to_h(xs[t]))
            self.lstm.reset_state()
        return self.h_to_y(readout_dropout(h, self.dropout, self.noise_key, self.xp))

    def __call__(self, x):
        return self.forward(x)


class GRU(chainer.Chain):
    """A GRU baseline (Cho et al. 2014), stepwise: pixel ids through an EmbedID, Chainer's
    stateless GRU link (:func:`irnn_chainer.compat.api.stateless_gru`) one step per pixel,
    the class read from the last hidden state; N(0, init_std) input and output weights."""

    dropout = 0.0        # --dropout, --input-dropout and their per-update seed, as in RNN
    input_dropout = 0.0
    noise_key = None

    def __init__(self, n_units=100, n_in=256, n_out=10, init_std=0.001, impl='stepwise'):
        super(GRU, self).__init__()
        if impl != 'stepwise':
            raise ValueError('impl: the GRU runs stepwise only, got %r' % (impl,))
        self.n_units, self.n_in, self.n_out, self.impl = n_units, n_in, n_out, impl
        normal = initializers.Normal(init_std)
        api.register_links(
            self,
            pixel_to_h=L.EmbedID(n_in, n_units, initialW=normal),
            gru=api.stateless_gru(n_units, n_units),
            h_to_y=L.Linear(n_units, n_out, initialW=normal, initial_bias=0),
        )

    def forward(self, x):
        x = input_dropout(check_ids(x, self.n_in), self.input_dropout, self.noise_key, self.xp)
        xs = self.xp.ascontiguousarray(x.T)
        h = self.xp.zeros((x.shape[0], self.n_units), self.h_to_y.W.dtype)
        for t in range(xs.shape[0]):
            h = self.gru(h, self.pixel_to_h(xs[t]))
        return self.h_to_y(readout_dropout(h, self.dropout, self.noise_key, self.xp))

    def __call__(self, x):
        return self.forward(x)


class ModelSpec(collections.namedtuple('ModelSpec', 'cls kwargs fused help label family')):
    """A ``--model``: its class and keyword arguments, whether the fused path covers it,
    its help text, its name in tables and plots, and its ``family``: ``rnn`` (the Elman
    RNN: own data, stacked layers, h_0 noise) or ``gated`` (pixel ids, one layer)."""


#: --model name -> its ModelSpec. A new baseline is one entry here (and its tests).
MODELS = {
    'irnn': ModelSpec(IRNN, {}, True, 'the IRNN: ReLU, recurrent matrix = identity (default)', 'IRNN', 'rnn'),
    'rnn-relu': ModelSpec(RNN, {'activation': 'relu', 'recurrent_init': 'normal'}, True,
                          'ReLU RNN, N(0, init-std) recurrent matrix', 'RNN + ReLU', 'rnn'),
    'rnn-tanh': ModelSpec(RNN, {'activation': 'tanh', 'recurrent_init': 'normal'}, True,
                          'tanh RNN, N(0, init-std) recurrent matrix', 'RNN + tanh', 'rnn'),
    'lstm': ModelSpec(LSTM, {}, True, 'Chainer\'s LSTM, forget-gate bias 1', 'LSTM', 'gated'),
    'gru': ModelSpec(GRU, {}, False, 'Chainer\'s GRU, stepwise', 'GRU', 'gated'),
}


def model_help():
    return '; '.join('%s: %s' % (name, spec.help) for name, spec in MODELS.items())


def build(name='irnn', n_units=100, n_in=256, n_out=10, init_std=0.001, impl='stepwise', **options):
    """The model called ``name`` (one of :data:`MODELS`); ``options`` go to the RNN
    (``input``, ``identity_scale``, ``input_bias``, ``gist_names``); the gated ones take none."""
    if name not in MODELS:
        raise ValueError('model: expected one of %s, got %r' % (', '.join(MODELS), name))
    spec = MODELS[name]
    return spec.cls(n_units=n_units, n_in=n_in, n_out=n_out, init_std=init_std, impl=impl,
                    **dict(spec.kwargs, **options))


# ---- the rules between settings that are the models' (settings.RULES lists them) ----------

def _own_data(cfg):
    return bool(cfg.get('data')) or cfg.get('dataset') == 'adding'


def beyond_the_gist(cfg):
    """Settings the gist's model did not have: own data, stacked layers, a scaled identity,
    an input bias (the gated baselines take none of them)."""
    return (_own_data(cfg) or bool(cfg.get('layers')) or cfg.get('identity_scale', 1.0) != 1.0
            or bool(cfg.get('input_bias')))


def _listed(names, last):
    names = list(names)
    return names[0] if len(names) == 1 else '%s %s %s' % (', '.join(names[:-1]), last, names[-1])


def _family(name):
    return [m for m, v in MODELS.items() if v.family == name]


def h0_noise_applies(cfg):
    """``--h0-noise`` is the one-layer pixel RNNs' (RNN.h0_noise); why not, or None."""
    if MODELS[cfg['model']].family != 'rnn' or beyond_the_gist(cfg):
        return ('covers the one-layer pixel models %s, not %s'
                % (_listed(_family('rnn'), 'and'),
                   cfg['model'] if MODELS[cfg['model']].family != 'rnn' else 'own data or --layers'))
    return None


def check_impl(cfg, given, saved):
    if cfg['impl'] == 'fused' and not MODELS[cfg['model']].fused:
        raise UsageError('--impl fused: the fused recurrence covers %s, not %s (it runs stepwise)'
                         % (', '.join(m for m, v in MODELS.items() if v.fused), cfg['model']))


def check_model_data(cfg, given, saved):
    if beyond_the_gist(cfg) and MODELS[cfg['model']].family != 'rnn':
        raise UsageError('--model %s: not available with --data, --dataset adding or --layers (use %s)'
                         % (cfg['model'], _listed(_family('rnn'), 'or')))


def resolve_impl(cfg):
    """'auto' -> the fused recurrence where it covers the model and a kernel loads, else stepwise."""
    if cfg['impl'] != 'auto':
        return cfg['impl']
    if not MODELS[cfg['model']].fused:
        return 'stepwise'
    try:
        import irnn_chainer.model.fused  # noqa: F401
        if str(cfg.get('device') or '').startswith('@cupy'):
            import irnn_chainer.kernels.cuda  # noqa: F401  (the CUDA kernel)
    except ImportError:
        return 'stepwise'
    return 'fused'


def for_run(cfg, data):
    """The one model factory: the run's settings ``cfg`` and its data record ``data``
    (:class:`irnn_chainer.data.sources.RunData`) give the predictor ``cfg['model']`` in the run's
    dtype, wrapped with its loss: ``L.Classifier`` (softmax cross-entropy and accuracy) or
    :class:`Regressor` (MSE and the constant prediction's). Initial weights are drawn from
    ``cfg['seed']``. The gist's model (pixel MNIST, one layer of ``--unit``, the identity
    unscaled) keeps the gist's parameter names; everything else numbers its layers (as the
    runs already saved were named)."""
    if cfg.get('input_bias') and data.input == 'ids':
        raise UsageError('--input-bias: only for real-valued input (--input real); ids go through '
                         'an EmbedID, which has no bias')
    n_units, options = cfg['unit'], {}
    if MODELS[cfg['model']].family == 'rnn':  # the gated baselines take pixel MNIST only
        gist = data.kind == 'mnist' and not cfg.get('layers') and cfg.get('identity_scale', 1.0) == 1.0
        n_units = cfg['unit'] if gist else list(cfg.get('layers') or [cfg['unit']])
        options = dict(input=data.input, identity_scale=cfg.get('identity_scale', 1.0),
                       input_bias=bool(cfg.get('input_bias')), gist_names=gist)
    np.random.seed(cfg['seed'])  # Chainer's initializers draw from NumPy's global RNG
    predictor = api.build_in_dtype(lambda: build(
        cfg['model'], n_units=n_units, n_in=data.n_in, n_out=data.n_out, init_std=cfg['init_std'],
        impl=resolve_impl(cfg), **options), cfg['dtype'])
    if data.task == 'regression':
        return Regressor(predictor, baseline=data.baseline)
    return L.Classifier(predictor)


class Regressor(chainer.Chain):
    """``L.Classifier``'s counterpart for real targets: reports ``loss`` (MSE) and, when
    ``baseline`` is given, ``baseline``: the MSE of always predicting that value."""

    def __init__(self, predictor, baseline=None):
        super(Regressor, self).__init__()
        api.register_links(self, predictor=predictor)
        self.baseline = None if baseline is None else np.asarray(baseline, dtype=np.float64)

    def forward(self, x, t):
        y = self.predictor(x)
        t = t.reshape(y.shape) if hasattr(t, 'reshape') else t
        loss = F.mean_squared_error(y, t.astype(y.dtype) if t.dtype != y.dtype else t)
        report = {'loss': loss}
        if self.baseline is not None:
            b = api.array_module(t).asarray(self.baseline, dtype=t.dtype)
            report['baseline'] = ((t - b) ** 2).mean()
        chainer.report(report, self)
        return loss

    def __call__(self, x, t):
        return self.forward(x, t)


# ---------------------------------------------------------------------------------------
# Input checks (ids: irnn_chainer.model.checks, free of Chainer, shared with every era)
# ---------------------------------------------------------------------------------------

def check_real(x, n_features, dtype=None, name='x'):
    """Validate real-valued input: a float array of shape (batch, time, features).

    Returns it as ``dtype`` (the parameters' dtype). Raises TypeError/ValueError naming
    what was expected and what was given (Chainer's own error for a 2-D input to a Linear
    is "Expect: in_types[0].ndim >= 2, Actual: 1 < 2", which says neither).
    """
    arr = api.array_of(x)
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
