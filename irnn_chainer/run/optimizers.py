"""The optimizers a run can use (``--optimizer``): one registry, one entry each.

An entry is the optimizer's help text, the attribute that holds its learning rate (Adam
calls it ``alpha``; the schedule, the pull toward I and rollbacks set it there) and how it is
built from ``--lr``. A new optimizer is one entry here (and its test).
"""
import collections

import chainer


class OptimizerSpec(collections.namedtuple('OptimizerSpec', 'help rate_attr make')):
    """``make(lr)`` -> a Chainer optimizer whose ``rate_attr`` is the learning rate."""


OPTIMIZERS = {
    'sgd': OptimizerSpec('plain SGD (default, as the paper)', 'lr', lambda lr: chainer.optimizers.SGD(lr=lr)),
    'momentum': OptimizerSpec('SGD with momentum 0.9', 'lr',
                              lambda lr: chainer.optimizers.MomentumSGD(lr=lr, momentum=0.9)),
    # Keras' defaults (its IRNN example): rho 0.9, epsilon 1e-7
    'rmsprop': OptimizerSpec('RMSprop, rho 0.9, eps 1e-7 (as Keras)', 'lr',
                             lambda lr: chainer.optimizers.RMSprop(lr=lr, alpha=0.9, eps=1e-7)),
    'adam': OptimizerSpec('Adam, Chainer\'s defaults, --lr as its alpha', 'alpha',
                          lambda lr: chainer.optimizers.Adam(alpha=lr)),
}


def help_text():
    return '; '.join('%s: %s' % (name, spec.help) for name, spec in OPTIMIZERS.items())


def make(cfg):
    """The run's optimizer (not yet set up on a model)."""
    return OPTIMIZERS[cfg['optimizer']].make(cfg['lr'])


def rate_attr(cfg):
    """The attribute of the run's optimizer that holds its learning rate."""
    return OPTIMIZERS[cfg['optimizer']].rate_attr
