"""Noticing that a run has diverged, and what then happens (``--on-divergence``).

The IRNN's failure mode: the training loss jumps (to ~1e3), then 784 steps of a
recurrence a little above 1 overflow on every batch, every gradient is non-finite, every
update is skipped (``--skip-nonfinite``) or ruins the weights, and the run sits at chance
for as long as it is left running. :class:`DivergenceGuard` judges every logging interval
(an epoch by default), after the evaluation and before the log and the snapshot of that
interval, so that no snapshot holds diverged weights:

- more than half of its updates were skipped for a non-finite gradient, or
- more than half of its training losses were non-finite, or
- the test loss at its end is not finite (the weights overflow the recurrence), or
- (classification) its median training loss, or the median over its last tenth, is above
  twenty times the loss of guessing, 20 ln C (46 for 10 classes: the true class at a
  probability below 1e-20; a run starts at ln C = 2.3, and one that blows up goes to ~1e3
  first). The median, not the mean: a few exploding batches that the run recovers from
  (epochs whose mean was 92-662 while the weights at their end were fine) are not a
  divergence. The last tenth too: a blow-up in the second half of an interval leaves its
  median fine and its end, and so its snapshot, ruined (the recipe ReLU RNN, epoch 7: median
  below 46, the weights at its end at a loss of 2.2e7, so every rollback went back to them).
  A large but finite test loss alone is not one either: a run that overfits a small
  training set is confidently wrong on its test set (160 examples, 60 epochs: test loss 57
  at a training loss near 0), and the recipe IRNN once evaluated to 113 at a median
  training loss of 0.34 and trained on fine.

It then raises :class:`Diverged`, which leaves the loop before a diverged snapshot is
written. ``train.train`` rolls back (``rollback``, the default): it records the event in
the run's ``rollbacks.json`` and resumes from the newest snapshot, the end of the last good
interval, with the learning rate times ``--rollback-factor`` (0.5), at most
``--max-rollbacks`` (3) times in a run; ``stop`` ends the run there with one line;
``ignore`` trains on.
"""
import math

import numpy as np

import chainer
from chainer import training

from irnn_chainer.run.schedule import _tolerant

ACTIONS = ('rollback', 'stop', 'ignore')
LOSS_FACTOR = 20.0  # diverged: a loss above LOSS_FACTOR * ln C
TAIL = 10  # ... over the interval, or over its last tenth (a blow-up late in the interval)
ROLLBACKS_FILE = 'rollbacks.json'


class Diverged(Exception):
    """The run diverged; ``reason`` in words, where (``epoch``, ``iteration``), and the
    trainer's elapsed time then."""

    def __init__(self, reason, epoch, iteration, elapsed, figures=None):
        super(Diverged, self).__init__('training diverged in the interval ending at epoch %d '
                                       '(iteration %d): %s' % (epoch, iteration, reason))
        self.reason, self.epoch, self.iteration, self.elapsed = reason, epoch, iteration, elapsed
        self.figures = figures or {}  # the interval's losses, for rollbacks.json
        self.root, self.distributed = True, False  # set by train._train


class DivergenceGuard(training.Extension):
    """Called after every update; judges at ``judge`` (a trigger: the logging interval)."""
    name = 'DivergenceGuard'
    trigger = 1, 'iteration'
    priority = training.PRIORITY_EDITOR  # after the evaluator, before the log and the snapshot

    def __init__(self, judge, n_classes=None, agree=None):
        self.judge = judge
        self.agree = agree or (lambda verdict: verdict)  # data parallel: rank 0's verdict for all
        self.loss_limit = LOSS_FACTOR * math.log(n_classes) if n_classes and n_classes > 1 else None
        self._reset()

    def _reset(self):
        self.n = self.skipped = self.nonfinite = 0
        self.losses = []  # the interval's finite training losses

    def verdict(self, test_loss=None):
        """Why this interval counts as diverged, or None (``test_loss``: the evaluation's at
        its end, when there was one)."""
        if test_loss is not None and not math.isfinite(test_loss):
            return 'the test loss at its end is %s' % test_loss
        if not self.n:
            return None
        if self.skipped * 2 > self.n:
            return '%d of its %d updates had a non-finite gradient' % (self.skipped, self.n)
        if self.nonfinite * 2 > self.n:
            return '%d of its %d training losses were not finite' % (self.nonfinite, self.n)
        if self.loss_limit is None or not self.losses:
            return None
        limit = '%g times that of guessing (%g ln C = %.3f)' % (LOSS_FACTOR, LOSS_FACTOR, self.loss_limit)
        median = float(np.median(self.losses))
        if median > self.loss_limit:
            return 'its median training loss %.4g is above %s' % (median, limit)
        tail = self.losses[-max(1, len(self.losses) // TAIL):]
        tail_median = float(np.median(tail))
        if tail_median > self.loss_limit:
            return ('the median training loss of its last %d updates, %.4g, is above %s (it blew up '
                    'late in the interval)' % (len(tail), tail_median, limit))
        return None

    def __call__(self, trainer):
        obs = trainer.observation
        loss = obs.get('main/loss')
        if loss is not None:
            value = float(getattr(loss, 'array', loss))
            self.n += 1
            if math.isfinite(value):
                self.losses.append(value)
            else:
                self.nonfinite += 1
            skipped = obs.get('skipped')
            if skipped is not None and float(getattr(skipped, 'array', skipped)) > 0:
                self.skipped += 1
        if self.judge(trainer):
            test = obs.get('validation/main/loss')
            test = float(getattr(test, 'array', test)) if test is not None else None
            reason = self.agree(self.verdict(test))
            figures = {'updates': self.n, 'skipped': self.skipped, 'test_loss': test,
                       'median_loss': float(np.median(self.losses)) if self.losses else None,
                       'mean_loss': float(np.mean(self.losses)) if self.losses else None}
            self._reset()
            if reason:
                u = trainer.updater
                raise Diverged(reason, u.epoch, u.iteration, trainer.elapsed_time, figures)

    def serialize(self, serializer):
        if hasattr(self.judge, 'serialize'):
            try:
                self.judge.serialize(serializer['judge'])
            except KeyError:  # a snapshot from before the guard existed
                pass
        self.n = int(_tolerant(serializer, 'n', self.n))
        self.skipped = int(_tolerant(serializer, 'skipped', self.skipped))
        self.nonfinite = int(_tolerant(serializer, 'nonfinite', self.nonfinite))
        if isinstance(serializer, chainer.serializer.Deserializer):  # None: the stored array, any length
            stored = _tolerant(serializer, 'losses', None)  # absent before the median existed
            self.losses = [] if stored is None else [float(v) for v in np.asarray(stored).ravel()]
        else:
            serializer('losses', np.asarray(self.losses, dtype=np.float64))
