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

SCHEDULES = ('constant', 'step', 'cosine', 'plateau')


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
        if self.kind == 'step':
            base = self.lr * self.decay ** (epoch // self.every)
        elif self.kind == 'cosine':
            progress = min(1.0, iteration / float(self.total)) if self.total else 0.0
            base = self.lr_min + (self.lr - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            base = self.lr
        return base * self.scale

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
