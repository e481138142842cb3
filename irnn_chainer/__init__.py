"""irnn-chainer: the IRNN of Le, Jaitly & Hinton (2015) on pixel-by-pixel MNIST.

Importing this package applies the environment shims in :mod:`irnn_chainer.compat.shims`
(NumPy 2, Python 3.10+, setuptools 82, ...) before anything imports Chainer.
"""
from .compat import shims as _shims

_shims.apply()

__version__ = '0.1.0'
