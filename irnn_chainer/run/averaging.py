"""``--ema DECAY``: an exponential moving average of the weights, evaluated beside them.

The IRNN's late epochs wander (RMSprop moves every weight by about the rate each update, and
loss spikes knock the model back); the average of the recent weights is often a better model
than the last of them (Polyak averaging). :class:`WeightAverage` keeps a copy of the model
whose parameters are that average, updated after every update::

    A <- d A + (1 - d) W,   d = min(DECAY, (1 + n) / (10 + n)) at the n-th update

(the short start, d small at first, so the average is not stuck at the initial weights for
the first thousands of updates). The copy is evaluated on the test set as ``ema/main/*``
beside ``validation/main/*``, is in every snapshot (so a resumed run continues the same
average), and is saved at the end as ``model_ema.npz`` (the format of ``model.npz``: use it
with ``--init-from``). Training itself is unchanged: the average is never trained on.
"""
import copy

from chainer import training


def decay_at(decay, n):
    """The factor of the ``n``-th update (1-based)."""
    return min(float(decay), (1.0 + n) / (10.0 + n))


class WeightAverage(training.Extension):
    """Keeps ``average``, a copy of ``model`` (the loss-wrapped model) with averaged weights."""
    name = 'WeightAverage'
    trigger = 1, 'iteration'
    # after the update and its pull toward I (schedule.IdentityDecay), before the evaluators
    # (writers) that score the average at the end of an epoch
    priority = training.PRIORITY_WRITER + 1

    def __init__(self, model, decay):
        if not 0 <= float(decay) < 1:
            raise ValueError('ema decay: expected a factor in [0, 1), got %r' % (decay,))
        self.model, self.decay, self.count = model, float(decay), 0
        self.average = copy.deepcopy(model)

    def __call__(self, trainer=None):
        self.count += 1
        d = decay_at(self.decay, self.count)
        own = dict(self.model.namedparams())
        for name, a in self.average.namedparams():
            a.data *= d
            a.data += (1.0 - d) * own[name].data

    def serialize(self, serializer):
        self.count = int(serializer('count', self.count))
        self.average.serialize(serializer['average'])
