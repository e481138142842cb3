"""What changes with the update count: the learning rate, the seed of h_0's noise, and the
pull of the recurrent matrix back toward its identity start.

All three are trainer extensions called after every update. The learning rate is a function of
the position in the run (so a resumed run continues the schedule exactly) times a scale
that only a rollback (recovery.py) or a plateau lowers; that scale, and a plateau's count,
are in the snapshots.

Schedules (``--lr-schedule``):

- ``constant``: ``--lr`` throughout (the paper, the blog);
- ``step``: times ``--lr-decay`` every ``--lr-decay-every`` epochs (as Chainer's
  ExponentialShift would, the same values);
- ``cosine``: from ``--lr`` down to ``--lr-min`` along half a cosine over the planned updates;
- ``plateau``: ``--lr`` held while the epoch's training accuracy still improves; after
  ``--lr-patience`` epochs without a new best it is multiplied by ``--lr-decay`` (0.5 unless
  given), and the count starts again.
"""
import math

import numpy as np

from chainer import training

from irnn_chainer.compat import api
from irnn_chainer.errors import UsageError
from irnn_chainer.model import rnn

def _constant(s, iteration, epoch):
    return s.lr


def _step(s, iteration, epoch):
    return s.lr * s.decay ** (epoch // s.every)


def _cosine(s, iteration, epoch):
    progress = min(1.0, iteration / float(s.total)) if s.total else 0.0
    return s.lr_min + (s.lr - s.lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))


#: --lr-schedule name -> the base rate of the update after ``iteration`` updates and ``epoch``
#: whole epochs, from the LRSchedule's settings (a rollback's or a plateau's scale multiplies
#: it). A new schedule is one function and one entry here (and its test). plateau's base
#: rate is constant: its lowering is the scale (LRSchedule.__call__).
SCHEDULES = {'constant': _constant, 'step': _step, 'cosine': _cosine, 'plateau': _constant}


# ---- the rules between settings that are the schedule's (settings.RULES lists them) -------

def check_lr_settings(cfg, given, saved):
    """--lr-decay belongs to the step and plateau schedules; --lr-min is below --lr."""
    if (given.get('lr_decay') is not None and given.get('lr_schedule') is None and not saved
            and cfg['lr_schedule'] in ('constant', 'cosine')):
        cfg['lr_schedule'] = None  # an explicit step decay takes the place of a preset's schedule
    if cfg['lr_schedule'] in ('constant', 'cosine') and cfg['lr_decay']:
        if given.get('lr_decay') is not None:
            raise UsageError('--lr-decay %s: not used by --lr-schedule %s (it applies to step and plateau)'
                             % (cfg['lr_decay'], cfg['lr_schedule']))
        cfg['lr_decay'] = None  # a preset's step decay gives way to the schedule asked for
    if not 0 <= float(cfg['lr_min']) < cfg['lr']:
        raise UsageError('--lr-min: expected a rate in [0, --lr = %s), got %s' % (cfg['lr'], cfg['lr_min']))


def identity_decay_applies(cfg):
    """The pull (:class:`IdentityDecay`) is toward the IRNN's identity start; why not, or None."""
    if not issubclass(rnn.MODELS[cfg['model']].cls, rnn.IRNN):
        return 'pulls the identity-initialised recurrent matrix of --model irnn, not of %s' % cfg['model']
    return None


def check_identity_decay(cfg, given, saved):
    if cfg['identity_decay'] * cfg['lr'] > 1:
        raise UsageError('--identity-decay: expected at most 1 / --lr = %g (a pull past the identity), got %s'
                         % (1.0 / cfg['lr'], cfg['identity_decay']))


def schedule_name(cfg):
    """The run's schedule: ``--lr-schedule``, else step where ``--lr-decay`` is given (the
    settings of runs made before ``--lr-schedule`` existed mean exactly that)."""
    return cfg.get('lr_schedule') or ('step' if cfg.get('lr_decay') else 'constant')


def _tolerant(serializer, key, value):
    """``serializer(key, value)``, or ``value`` where a snapshot made before this extension
    existed has no such key (it then resumes as the run it was)."""
    try:
        return serializer(key, value)
    except KeyError:
        return value


class LRSchedule(training.Extension):
    """Sets the optimizer's ``attr`` ('lr', or Adam's 'alpha') before every update."""
    name = 'LRSchedule'
    trigger = 1, 'iteration'
    priority = training.PRIORITY_READER  # after the writers: the log shows the rate just used

    def __init__(self, attr, lr, kind='constant', decay=None, every=10, total=None, lr_min=0.0,
                 patience=3):
        if kind not in SCHEDULES:
            raise ValueError('lr schedule: expected one of %s, got %r' % (', '.join(SCHEDULES), kind))
        self.attr, self.lr, self.kind = attr, float(lr), kind
        self.decay = float(decay) if decay else 0.5
        self.every, self.total, self.lr_min, self.patience = int(every), total, float(lr_min), int(patience)
        self.scale = 1.0                  # lowered by rollbacks (recovery.py) and plateaus
        self.best, self.since = -np.inf, 0  # plateau: best epoch accuracy, epochs without one
        self._sum, self._n = 0.0, 0         # plateau: this epoch's training accuracy so far

    def value(self, iteration, epoch):
        """The rate for the update after ``iteration`` updates and ``epoch`` whole epochs."""
        return SCHEDULES[self.kind](self, iteration, epoch) * self.scale

    def _set(self, trainer):
        u = trainer.updater
        setattr(u.get_optimizer('main'), self.attr, self.value(u.iteration, u.epoch))

    def initialize(self, trainer):
        self._set(trainer)

    def __call__(self, trainer):
        if self.kind == 'plateau':
            acc = trainer.observation.get('main/accuracy')
            if acc is not None:
                self._sum += float(getattr(acc, 'array', acc))
                self._n += 1
            if trainer.updater.is_new_epoch and self._n:
                mean = self._sum / self._n
                self._sum, self._n = 0.0, 0
                if mean > self.best:
                    self.best, self.since = mean, 0
                else:
                    self.since += 1
                    if self.since >= self.patience:
                        self.scale *= self.decay
                        self.since = 0
        self._set(trainer)

    def serialize(self, serializer):
        self.scale = float(_tolerant(serializer, 'scale', self.scale))
        self.best = float(_tolerant(serializer, 'best', self.best))
        self.since = int(_tolerant(serializer, 'since', self.since))
        self._sum = float(_tolerant(serializer, 'sum', self._sum))
        self._n = int(_tolerant(serializer, 'n', self._n))


class NoiseKey(training.Extension):
    """Gives the model the seed of the next update's random draws (--h0-noise's noise,
    --dropout's and --input-dropout's masks): (seed, rank, update number), so they depend on
    nothing a snapshot could lose."""
    name = 'NoiseKey'
    trigger = 1, 'iteration'

    def __init__(self, predictor, seed, rank=0):
        self.predictor, self.seed, self.rank = predictor, int(seed), int(rank)

    def _set(self, trainer):
        self.predictor.noise_key = [self.seed, self.rank, int(trainer.updater.iteration)]

    def initialize(self, trainer):
        self._set(trainer)

    def __call__(self, trainer):
        self._set(trainer)


class IdentityDecay(training.Extension):
    """``--identity-decay LAMBDA``: after every update, each recurrent matrix is pulled back
    toward its start ``s I`` (the IRNN's identity, ``--identity-scale`` s), decoupled from the
    gradient as AdamW's weight decay is from Adam's step::

        W <- W - rate * LAMBDA * (W - s I)

    with ``rate`` the learning rate (Adam's alpha) of the update just made, so the pull
    follows the schedule and a rollback's lowering. Why: RMSprop moves every entry by about
    ``rate`` per update whatever the gradient's size, so where the gradient is mostly noise
    an entry random-walks; the pull holds that walk to a spread of about sqrt(rate / (2
    LAMBDA)), while a gradient that keeps one sign can still move an entry up to ~1/LAMBDA
    away (README, "what this says"). Recurrent biases are left alone."""
    name = 'IdentityDecay'
    trigger = 1, 'iteration'
    # first after the update: before the average (averaging.py), the evaluators (writers) and
    # LRSchedule (a reader), which sets the next update's rate after this one has used it
    priority = training.PRIORITY_WRITER + 2

    def __init__(self, links, strength, scale=1.0, attr='lr'):
        self.links, self.strength, self.scale, self.attr = list(links), float(strength), float(scale), attr

    def __call__(self, trainer):
        c = float(getattr(trainer.updater.get_optimizer('main'), self.attr)) * self.strength
        for link in self.links:
            W = link.W.data
            n = W.shape[0]
            diag = api.array_module(W).arange(n)
            W *= 1.0 - c
            W[diag, diag] += c * self.scale


class GradientNoise(object):
    """``--grad-noise ETA``: Gaussian noise of variance ``ETA / (1 + t) ** 0.55`` added to the
    gradient of update t (t = 0, 1, ...), as Neelakantan et al. (2015, "Adding gradient noise
    improves learning for very deep networks") anneal it. The draws are keyed by (seed,
    rank, t), t being the optimizer's own update count, which snapshots keep: a resumed run
    draws the same noise. An optimizer hook, after the non-finite check, before clipping."""
    name = 'GradientNoise'
    timing = 'pre'
    call_for_each_param = False

    def __init__(self, eta, seed, rank=0):
        self.eta, self.seed, self.rank = float(eta), int(seed), int(rank)

    def __call__(self, optimizer):
        t = int(optimizer.t)  # updates made before this one
        std = math.sqrt(self.eta / (1.0 + t) ** 0.55)
        rng = np.random.RandomState([self.seed, self.rank, t, 4])  # 4: apart from NoiseKey's streams
        for _, param in sorted(optimizer.target.namedparams()):
            if param.grad is None:
                continue
            noise = rng.normal(0.0, std, param.grad.shape).astype(param.grad.dtype)
            param.grad += api.array_module(param.grad).asarray(noise)


def gradient_noise(run):
    """The run's GradientNoise hook (train.HOOKS lists this), if --grad-noise is on."""
    cfg = run.cfg
    if not cfg['grad_noise']:
        return []
    return [GradientNoise(cfg['grad_noise'], cfg['seed'], run.comm.rank if run.comm is not None else 0)]
