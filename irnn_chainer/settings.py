"""Every setting of a run, declared once, and how a run's settings are resolved.

A :class:`Setting` is a setting's name, default, kind, allowed values or range, help text,
help group and whether ``--resume`` may change it. Everything else comes from the table
:data:`SETTINGS`: the command line's flags (``commands/cli.py`` builds them), the defaults
(:data:`DEFAULTS`), the check of a single value with its one-line error (from the command
line, a resumed run's config.json, a sweep or Python alike), what config.json holds and the
types it is checked against, the ``--help`` groups and ``docs/flags.md``.

A new setting is one ``Setting(...)`` line here (its value then reaches the run as
``cfg['name']``). A rule between settings is a small function beside the feature it belongs
to, listed once in :data:`RULES`. A preset is one entry of :data:`PRESETS`.

``resolve_config(cli, saved)`` is DEFAULTS <- a preset <- the resumed run's config.json <-
the flags given; what cannot work is refused in one line (:class:`UsageError`). A preset
adapts to the model: a value it sets that does not apply to the model (the IRNN's pull for
an LSTM, say) is left at the default, while the same value given as a flag is refused.
"""
import math

from irnn_chainer.data import mnist as mnist_data
from irnn_chainer.data import sequences
from irnn_chainer.errors import UsageError
from irnn_chainer.model import rnn
from irnn_chainer.run import memory
from irnn_chainer.run import optimizers
from irnn_chainer.run import recovery
from irnn_chainer.run import schedule


class Setting(object):
    """One setting. ``kind``: int, float, bool, text, path (made absolute on the command
    line), choice (one of ``choices``, a tuple or a registry dict whose keys are the choices)
    or layers (``100,50``). ``check``: a predicate a given value must pass, and ``expected``
    what it says when it does not (``--lr: expected a positive number, got 0``). ``applies``:
    ``f(cfg)`` -> None, or why a non-default value does not apply to this run (a flag is then
    refused, a preset's value dropped). ``resumable``: ``--resume`` may change it."""

    def __init__(self, name, default, kind, help, group, choices=None, check=None, expected=None,
                 resumable=False, short=None, metavar=None, applies=None):
        self.name, self.default, self.kind, self.help, self.group = name, default, kind, help, group
        self._choices, self.check, self.expected = choices, check, expected
        self.resumable, self.short, self.metavar, self.applies = resumable, short, metavar, applies

    @property
    def flag(self):
        return '--' + self.name.replace('_', '-')

    @property
    def choices(self):
        return tuple(self._choices) if self._choices is not None else None

    def parse(self, text):
        """A command-line value -> the setting's value; ValueError(what was expected) if bad."""
        if self.kind == 'int':
            try:
                value = int(text)
            except ValueError:
                raise ValueError('expected %s, got %r' % (self.expected or 'an integer', text))
        elif self.kind == 'float':
            try:
                value = float(text)
            except ValueError:
                value = None
            if value is None or not math.isfinite(value):
                raise ValueError('expected a finite number, got %r' % text)
        elif self.kind == 'layers':
            return parse_layers(text)
        else:
            return text
        if self.check is not None and not self.check(value):
            raise ValueError('expected %s, got %r' % (self.expected, text))
        return value

    def validate(self, value):
        """A value from anywhere (flags, config.json, a sweep, Python): one-line UsageError."""
        if value is None:
            return
        if self.kind == 'choice' and value not in self.choices:
            raise UsageError('%s: expected one of %s, got %r' % (self.flag, ', '.join(self.choices), value))
        if self.kind == 'float' and not math.isfinite(float(value)):
            raise UsageError('%s: expected a finite number, got %s' % (self.flag, value))
        if self.check is not None and not self.check(value):
            raise UsageError('%s: expected %s, got %s' % (self.flag, self.expected, value))

    def type_error(self, value):
        """What is wrong with ``value`` as this setting in a config.json, or None."""
        if value is None:
            return None
        if self.kind == 'bool':
            ok, want = isinstance(value, bool), 'true or false'
        elif self.kind == 'int':
            ok, want = isinstance(value, int) and not isinstance(value, bool), 'an integer'
        elif self.kind == 'float':
            ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), 'a number'
        elif self.kind == 'layers':
            ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                 for v in value)
            want = 'a list of positive integers'
        else:
            ok, want = isinstance(value, str), 'a text'
        return None if ok else want


def _positive(v):
    return int(v) >= 1


def _at_least_0(v):
    return float(v) >= 0


def _in_01(v):  # [0, 1)
    return 0 <= float(v) < 1


POSITIVE = dict(check=_positive, expected='a positive integer')

# --help groups, in the order they are shown
MODEL, TRAINING, SCHEDULE, NOISE, DIVERGENCE, DATA, OWN, DEVICE = (
    'model', 'training', 'learning-rate schedule', 'noise, regularisation and averaged weights',
    'divergence (a run that blows up)', 'data', 'your own sequences (docs/own-data.md)',
    'device and speed')
GROUPS = (MODEL, TRAINING, SCHEDULE, NOISE, DIVERGENCE, DATA, OWN, DEVICE)

#: every setting of a run; config.json holds each of them (and what the data record adds)
SETTINGS = (
    # the model
    Setting('model', 'irnn', 'choice', rnn.model_help(), MODEL, choices=rnn.MODELS),
    Setting('unit', 100, 'int', 'hidden units (default 100)', MODEL, short='-u', **POSITIVE),
    Setting('init_std', 0.001, 'float', 'std of the N(0, s) input and output weights (default 0.001, as the '
            'paper; the blog\'s run: 0.01)', MODEL, check=_at_least_0, expected='a standard deviation >= 0'),
    Setting('dtype', 'float32', 'choice', 'parameter dtype (default float32; lr 1e-8 cannot move the identity '
            'diagonal in float32)', MODEL, choices=('float32', 'float64')),
    Setting('impl', 'auto', 'choice', 'stepwise: one node per pixel, as the gist; fused: the whole recurrence '
            'as one FunctionNode; auto (default): fused where it covers the model', MODEL,
            choices=('auto', 'stepwise', 'fused'), resumable=True),
    Setting('init_from', None, 'path', 'start from the weights of another run (its folder, a snapshot or '
            'model.npz) with this run\'s settings and a fresh optimizer', MODEL, metavar='RUN'),
    # training
    Setting('preset', None, 'choice', None, TRAINING, choices=None),  # help and choices: below
    Setting('optimizer', 'sgd', 'choice', optimizers.help_text(), TRAINING, choices=optimizers.OPTIMIZERS),
    Setting('lr', 1e-8, 'float', 'learning rate of the --optimizer (Adam: its alpha; default 1e-8, as the '
            'paper)', TRAINING, check=lambda v: float(v) > 0, expected='a positive number'),
    Setting('clip', 1.0, 'float', 'gradient clipping at this global L2 norm (default 1.0; 0 = off)', TRAINING,
            check=_at_least_0, expected='>= 0 (0 = no clipping)'),
    Setting('batchsize', 16, 'int', 'mini-batch size (default 16, as the gist)', TRAINING, short='-b',
            **POSITIVE),
    Setting('epoch', None, 'int', 'epochs to train (default 1)', TRAINING, short='-e', resumable=True,
            **POSITIVE),
    Setting('iteration', None, 'int', 'updates to train, instead of --epoch', TRAINING, resumable=True,
            **POSITIVE),
    Setting('seed', 0, 'int', 'seed for initial weights, shuffling and --permute (default 0)', TRAINING,
            check=lambda v: 0 <= int(v) < 2 ** 32, expected='an integer in 0 .. 2**32 - 1'),
    Setting('skip_nonfinite', False, 'bool', 'zero the update when the gradient has inf/NaN (the fast preset '
            'does; the paper\'s plain SGD does not)', TRAINING),
    # the learning-rate schedule (run/schedule.py)
    Setting('lr_schedule', None, 'choice', 'constant (default), step (--lr-decay every --lr-decay-every epochs; '
            'the default when --lr-decay is given), cosine (to --lr-min over the planned updates) or plateau '
            '(x --lr-decay, default 0.5, after --lr-patience epochs without a better training accuracy)',
            SCHEDULE, choices=schedule.SCHEDULES),
    Setting('lr_decay', None, 'float', 'multiply the learning rate by this factor every --lr-decay-every '
            'epochs (default: no decay)', SCHEDULE, check=lambda v: 0 < float(v) <= 1,
            expected='a factor in (0, 1]'),
    Setting('lr_decay_every', 10, 'int', 'epochs between decays (default 10)', SCHEDULE, **POSITIVE),
    Setting('lr_min', 0.0, 'float', 'the cosine schedule\'s last rate (default 0)', SCHEDULE,
            check=_at_least_0, expected='a number >= 0'),
    Setting('lr_patience', 3, 'int', 'plateau: epochs without a new best (default 3)', SCHEDULE,
            check=_positive, expected='a positive number of epochs'),
    # noise, regularisation, averaged weights
    Setting('h0_noise', 0.0, 'float', 'Gaussian noise of std SIGMA on h_0 while training (default 0; '
            'evaluation starts from h_0 = 0); irnn, rnn-relu, rnn-tanh', NOISE, metavar='SIGMA',
            check=_at_least_0, expected='a standard deviation >= 0', applies=rnn.h0_noise_applies),
    Setting('identity_decay', 0.0, 'float', 'after each update pull the recurrent matrix toward its identity '
            'start: W -= lr * LAMBDA * (W - I) (default 0: off); irnn', NOISE, metavar='LAMBDA',
            check=_at_least_0, expected='a strength >= 0', applies=schedule.identity_decay_applies),
    Setting('dropout', 0.0, 'float', 'while training, zero each unit of the last hidden state h_T with '
            'probability P (the rest x 1/(1-P)) before the classifier reads it (default 0: off)', NOISE,
            metavar='P', check=_in_01, expected='a probability in [0, 1) (0 = off)'),
    Setting('input_dropout', 0.0, 'float', 'while training, set each input pixel to 0 (black) with '
            'probability P (default 0: off); MNIST only', NOISE, metavar='P', check=_in_01,
            expected='a probability in [0, 1) (0 = off)', applies=mnist_data.input_dropout_applies),
    Setting('grad_noise', 0.0, 'float', 'add Gaussian noise of variance ETA / (1 + t)^0.55 to the gradient of '
            'update t, before clipping (default 0: off)', NOISE, metavar='ETA', check=_at_least_0,
            expected='a variance >= 0'),
    Setting('ema', 0.0, 'float', 'also evaluate a moving average of the weights (e.g. 0.999; default 0: '
            'off), logged as ema/main/*, saved as model_ema.npz', NOISE, metavar='DECAY', check=_in_01,
            expected='a decay factor in [0, 1) (e.g. 0.999; 0 = off)'),
    # divergence (run/recovery.py)
    Setting('on_divergence', 'rollback', 'choice', 'when an epoch diverges (most updates non-finite, a '
            'non-finite test loss, or a loss above 20x that of guessing): rollback (default: back to the last '
            'good snapshot at the rate x --rollback-factor), stop (one line, snapshot kept) or ignore',
            DIVERGENCE, choices=recovery.ACTIONS, resumable=True),
    Setting('rollback_factor', 0.5, 'float', 'rate factor per rollback (default 0.5)', DIVERGENCE,
            check=lambda v: 0 < float(v) < 1, expected='a factor in (0, 1)'),
    Setting('max_rollbacks', 3, 'int', 'rollbacks in a run before it stops (default 3)', DIVERGENCE,
            check=lambda v: int(v) >= 0, expected='an integer >= 0', resumable=True),
    # data
    Setting('dataset', 'auto', 'choice', 'auto (default): full MNIST if found or downloadable, else the '
            'embedded subset (20000 training, 2000 test images); mnist: full MNIST or fail; embedded: the '
            'subset; adding: the adding problem '
            '(--length T)', DATA, choices=('auto', 'mnist', 'embedded', 'adding')),
    Setting('data_dir', None, 'text', 'folder with the four MNIST IDX files (or env IRNN_MNIST_DIR)', DATA,
            resumable=True),
    Setting('permute', False, 'bool', 'permuted pixel MNIST: one fixed random permutation of the 784 pixels',
            DATA),
    Setting('train_limit', None, 'int', 'use only the first N training images', DATA, **POSITIVE),
    Setting('test_limit', None, 'int', 'use only the first N test images', DATA, **POSITIVE),
    Setting('validation', None, 'int', 'hold out the last N of the training images and evaluate on them '
            'instead of the test set (to choose settings without looking at the test set)', DATA,
            metavar='N', **POSITIVE),
    # your own sequences, stacked layers, the adding problem (data/sequences.py)
    Setting('data', None, 'path', 'train on FILE instead of MNIST: .npz with x, y (optional x_test, y_test) '
            'or a long-format .csv (seq, t, features..., label)', OWN, metavar='FILE'),
    Setting('input', None, 'choice', 'ids: integer ids (N, T) through an EmbedID; real: float features '
            '(N, T, D) through a Linear; default: from the dtype of x', OWN, choices=sequences.INPUTS),
    Setting('task', None, 'choice', 'classification (softmax, classes 0..K-1 from the labels) or regression '
            '(MSE); default: from the dtype of y', OWN, choices=sequences.TASKS),
    Setting('test_split', None, 'float', 'hold out a seeded fraction F as the test set (stratified by class) '
            'when the file has no x_test, y_test', OWN, metavar='F', check=lambda v: 0 < float(v) < 1,
            expected='a fraction between 0 and 1'),
    Setting('layers', None, 'layers', 'stacked IRNN layers, e.g. 100,50 (instead of --unit); each layer\'s '
            'recurrent matrix starts as (--identity-scale) x identity', OWN, metavar='N1,N2,..'),
    Setting('identity_scale', 1.0, 'float', 'recurrent matrices start as S x I (default 1; the paper used '
            '0.01 for speech)', OWN, metavar='S'),
    Setting('input_bias', False, 'bool', 'give the real-valued input projection a bias (off by default, as '
            'the paper)', OWN),
    Setting('length', None, 'int', 'sequence length of --dataset adding (default 150)', OWN, metavar='T',
            **POSITIVE),
    # device and speed
    Setting('device', None, 'text', "Chainer device spec: '@numpy' (default), '@cupy:0', ...", DEVICE,
            short='-d', resumable=True),
    Setting('eval_batchsize', 1000, 'int', 'batch size for evaluation (default 1000)', DEVICE,
            resumable=True, **POSITIVE),
    Setting('log_interval', None, 'int', 'evaluate, log, plot and snapshot every N iterations (default: every '
            'epoch)', DEVICE, resumable=True, **POSITIVE),
    Setting('communicator', None, 'text', 'data-parallel training with ChainerMN under mpiexec -n N: naive '
            '(the CPU communicator); --batchsize is per process (docs/distributed.md)', DEVICE,
            metavar='NAME'),
)
BY_NAME = {s.name: s for s in SETTINGS}
#: the settings that define a run and their defaults; ``--resume`` keeps them from config.json
DEFAULTS = {s.name: s.default for s in SETTINGS}
#: may differ between a run and its resumption (where to run, how long, how to read data)
RESUMABLE_CHANGES = tuple(s.name for s in SETTINGS if s.resumable)
OPTIMIZERS = tuple(optimizers.OPTIMIZERS)

#: what else config.json holds (the run's record, from its data and its machine), by type
RECORD = dict(
    per_epoch='int', train_size='int', test_size='int', workers='int', n_in='int', n_out='int',
    run_id='text', data_sha256='text', source='text', impl_used='text', device_used='text')


def config_type_error(key, value):
    """What is wrong with ``value`` as ``key`` of a config.json (``expected ...``), or None."""
    if key in BY_NAME:
        return BY_NAME[key].type_error(value)
    if key in RECORD:
        return Setting(key, None, RECORD[key], '', '').type_error(value)
    return None


# ------------------------------------------------------------------------------ presets

class Preset(object):
    """A named setting (``--preset NAME``): ``values`` for every model, ``per_model`` on top
    for one model, ``permuted`` on top for ``--permute``. Flags given override them."""

    def __init__(self, help, values, per_model=None, permuted=None):
        self.help, self.values = help, dict(values)
        self.per_model, self.permuted = dict(per_model or {}), dict(permuted or {})

    def for_run(self, model, permute):
        values = dict(self.values)
        values.update(self.per_model.get(model, {}))
        if permute:
            values.update(self.permuted)
        return values


# Values marked "our reading" are not stated in the source and were chosen by us
# (docs/presets.md says why; how `fast` was chosen is in results/README.md).
PRESETS = {
    # The blog's own run: the paper's SGD 1e-8 and batch 16 but, in its words, "std of 0.01;
    # No gradient clipping".
    'blog': Preset('the 2015 blog\'s own run: IRNN, SGD 1e-8, batch 16, no clipping, weights N(0, 0.01)',
                   {'model': 'irnn', 'optimizer': 'sgd', 'lr': 1e-8, 'clip': 0.0, 'batchsize': 16,
                    'init_std': 0.01}),
    # The paper, section 4.2: N(0, 0.001), clip 1 and batch 16 for every model; the rate per model.
    'paper': Preset('the paper (section 4.2) for the --model: SGD, clip 1, batch 16, weights N(0, 0.001); '
                    'lr 1e-8 (lstm: 1e-2)',
                    {'optimizer': 'sgd', 'lr': 1e-8, 'clip': 1.0, 'batchsize': 16, 'init_std': 0.001},
                    per_model={'lstm': {'lr': 1e-2}, 'gru': {'lr': 1e-2}}),  # rnn-*, gru: our reading
    # The Keras example mnist_irnn: RMSprop 1e-6, batch 32; it defines clip_norm but never passes
    # it to the optimizer: no clipping (our reading of that code).
    'keras': Preset('the Keras example mnist_irnn: IRNN, RMSprop 1e-6, batch 32, no clipping',
                    {'model': 'irnn', 'optimizer': 'rmsprop', 'lr': 1e-6, 'clip': 0.0, 'batchsize': 32}),
    # Ours (results/README.md): RMSprop 1e-4 along a cosine, noise on h_0 while training, the
    # recurrent matrix pulled back toward I, the averaged weights scored beside. For the
    # baselines, the settings their own runs learned with: rnn-* need larger random
    # recurrent weights (N(0, 0.1)) and no h_0 noise; the LSTM and GRU a higher rate halved
    # every 10 epochs. The pull is the IRNN's (it adapts away for the others).
    'fast': Preset('ours, the best we measured: RMSprop 1e-4 along a cosine to 1e-6, clip 1, h_0 noise 0.1, '
                   'the pull toward I, averaged weights; with --permute the cosine ends at 1e-7 and the noise '
                   'is 0.05; for the baselines, the settings that made them learn (docs/presets.md)',
                   {'optimizer': 'rmsprop', 'lr': 1e-4, 'clip': 1.0, 'batchsize': 16, 'skip_nonfinite': True,
                    'lr_schedule': 'cosine', 'lr_min': 1e-6, 'h0_noise': 0.1, 'identity_decay': 1.0,
                    'ema': 0.999, 'lr_decay_every': 8},  # with --lr-decay 0.5: halving every 8 epochs
                   per_model={
                       'rnn-relu': {'init_std': 0.1, 'h0_noise': 0.0, 'lr_min': 0.0},
                       'rnn-tanh': {'init_std': 0.1, 'h0_noise': 0.0, 'lr_min': 0.0},
                       'lstm': {'lr': 1e-3, 'lr_schedule': 'step', 'lr_decay': 0.5, 'lr_decay_every': 10},
                       'gru': {'lr': 1e-3, 'lr_schedule': 'step', 'lr_decay': 0.5, 'lr_decay_every': 10},
                   },
                   permuted={'lr_min': 1e-7, 'h0_noise': 0.05}),
}
# the IRNN's permuted values, for the runs and tests that name them
FAST_PERMUTED = dict(PRESETS['fast'].values, **PRESETS['fast'].permuted)
BY_NAME['preset']._choices = tuple(PRESETS)
BY_NAME['preset'].help = ('fill every hyperparameter from a named setting; flags given explicitly override it: '
                          + '; '.join('%s: %s' % (k, p.help) for k, p in PRESETS.items()))


# ------------------------------------------------------------------------------ resolution

def resolve_config(cli, saved=None):
    """DEFAULTS <- a preset <- the resumed run's saved config <- flags given (``cli``, None =
    not given); then every single-value check and every rule. Returns the run's settings."""
    saved = saved or {}
    given = {k: v for k, v in cli.items() if v is not None and k in DEFAULTS}
    cfg = dict(DEFAULTS)
    preset_values = {}
    name = given.get('preset') or saved.get('preset')
    if name:
        BY_NAME['preset'].validate(name)
        model = given.get('model') or saved.get('model') or PRESETS[name].values.get('model') or DEFAULTS['model']
        permute = given['permute'] if 'permute' in given else saved.get('permute')
        preset_values = PRESETS[name].for_run(model, permute)
        cfg.update(preset_values, preset=name)
    if saved:
        # a resumed run keeps what it saved; a setting it predates means what it meant then,
        # the default, not what its preset says today
        cfg.update({k: saved.get(k, DEFAULTS[k]) for k in DEFAULTS})
    for key, value in given.items():
        if saved and key not in RESUMABLE_CHANGES and saved.get(key) != value:
            raise UsageError('--%s %s differs from the resumed run (%s); a resumed run keeps its '
                             'settings' % (key.replace('_', '-'), value, saved.get(key)))
        cfg[key] = value
    if 'epoch' in given:
        cfg['iteration'] = None
    elif 'iteration' in given:
        cfg['epoch'] = None
    if cfg['epoch'] is None and cfg['iteration'] is None:
        cfg['epoch'] = 1
    for s in SETTINGS:
        s.validate(cfg[s.name])
    for s in SETTINGS:  # a preset's value that does not fit this run gives way to the default
        if s.applies is not None and cfg[s.name] != s.default:
            why = s.applies(cfg)
            if why and s.name in given:
                raise UsageError('%s: %s' % (s.flag, why))
            if why and not saved:
                cfg[s.name] = s.default
    for rule in RULES:
        rule(cfg, given, saved)
    return cfg


def _epoch_or_iteration_positive(cfg, given, saved):
    for key in ('epoch', 'iteration'):
        BY_NAME[key].validate(cfg[key])


#: every rule between settings, each beside its feature
RULES = (
    rnn.check_impl,                        # --impl fused covers the model
    schedule.check_lr_settings,            # --lr-decay with a schedule, --lr-min below --lr
    schedule.check_identity_decay,         # the pull at most 1 / --lr
    sequences.check_own_data,              # --data / --dataset adding / --layers combinations
    mnist_data.check_mnist_settings,       # --validation, --data-dir where no MNIST is read
    rnn.check_model_data,                  # the LSTM and GRU baselines read pixel ids only
)


def check_memory(cfg):
    """Refuse, with the figure, a run that cannot fit in this machine's memory (run/memory.py);
    apart from :func:`resolve_config`, whose settings are the same on every machine."""
    too_big = memory.refusal(cfg)
    if too_big:
        raise UsageError(too_big)


def parse_layers(text):
    """'100,50' -> [100, 50] (for --layers)."""
    try:  # every part a size: '100,,50' is a typo, not 100,50
        sizes = [int(s) for s in str(text).replace(' ', '').split(',')]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise ValueError('expected comma-separated positive layer sizes like 100,50, got %r' % text)
    return sizes


uses_own_data = sequences.uses_own_data


def check_evaluate_flags(cfg, data_dir, dataset):
    """``irnn-chainer evaluate``'s data flags against the run's settings ``cfg``: refused
    (one line) where the run did not train on MNIST files."""
    own = uses_own_data(cfg)
    embedded = cfg.get('dataset') == 'embedded' or str(cfg.get('source', '')).startswith('embedded')
    if data_dir is not None and (own or embedded):
        raise UsageError('--data-dir %s: this run trained on %s, not on MNIST files; evaluate it '
                         'without --data-dir' % (data_dir, cfg.get('source') or cfg.get('data') or 'its own data'))
    if dataset is not None and own:
        raise UsageError('--dataset %s: this run trained on %s; evaluate it without --dataset'
                         % (dataset, cfg.get('source') or cfg.get('data') or 'its own data'))
