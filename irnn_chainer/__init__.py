"""irnn-chainer: the IRNN of Le, Jaitly & Hinton (2015) on pixel-by-pixel MNIST.

Importing this package applies the environment shims in :mod:`irnn_chainer.compat.shims`
(NumPy 2, Python 3.10+, setuptools 82, ...) before anything imports Chainer.

``irnn_chainer.load(RUN)`` gives a trained run's predictor (:mod:`irnn_chainer.predict`)::

    import irnn_chainer
    run = irnn_chainer.load('result')       # a run folder (or one of its snapshots)
    probs = run.predict(images)             # (N, 784) or (N, 28, 28) uint8 -> (N, 10)
    run.model                               # the Chainer link
"""
from .compat import shims as _shims

_shims.apply()

__version__ = '0.1.0'


def load(run, device=None):
    """A trained run ready to predict: ``.predict(x)`` gives class probabilities (N, C) or
    regression outputs (N, K) as a NumPy array, ``.model`` is the Chainer link. ``run``: a
    run folder of ``irnn-chainer train`` or one of its snapshot files (the newest weights
    are used, as ``irnn-chainer evaluate`` does); ``device``: '@numpy', '@cupy:0', ...
    (default: the run's own). See :mod:`irnn_chainer.predict`."""
    from irnn_chainer.commands import predict  # imported here: importing the package stays light
    return predict.load(run, device)
