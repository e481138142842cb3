"""Input validation shared by every model and every Chainer version.

Kept free of Chainer imports so that eras.py (the IRNN of every era) can use it on Chainer 1.0/1.3, where
``irnn_chainer.model`` (Chain subclasses) cannot be imported: the same check gives the same
one-line error everywhere, including 1.0.1, which had no type checks at all.
"""
import numpy as np


def check_ids(x, n_in, name='x'):
    """Validate pixel ids: an integer array of shape (batch, time) with values in [0, n_in).

    Returns them as int32 (EmbedID's dtype). Raises TypeError/ValueError naming what was
    expected and what was given, on every Chainer version (1.0 had no type checks at all
    and later ones give errors like "Expect: in_types[0].ndim >= 2, Actual: 1 < 2").
    """
    if type(x).__module__.split('.')[0] == 'chainer':  # a Variable or Parameter
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
