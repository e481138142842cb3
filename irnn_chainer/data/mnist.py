"""Pixel MNIST for the IDX-file era's IRNN: where the images come from, and the permutation.

:func:`get_mnist` tries, in this order:

1. a folder of the four standard IDX files (``data_dir`` or ``$IRNN_MNIST_DIR``), ``.gz`` or
   raw (:mod:`.idx`);
2. Chainer's own MNIST cache (``$CHAINER_DATASET_ROOT/pfnet/chainer/mnist/{train,test}.npz``,
   what ``chainer.datasets.get_mnist`` writes), read here;
3. our download cache (``$IRNN_CACHE_DIR`` or ``~/.cache/irnn-chainer/mnist``), filled by
   :func:`.download.download_mnist` from public mirrors, each file verified by MD5;
4. the real MNIST subset shipped inside this package (:mod:`.subset`: 20000 training and
   2000 test images, the test images from MNIST's test set; ``auto`` only, ``'embedded'``
   asks for it directly).

The modules by role: :mod:`.idx` (the IDX reader, MNIST's four files), :mod:`.download`,
:mod:`.subset`; their public names are importable from here too. Every problem with a file
is a :class:`DataError` whose message is one line naming the file or source, what was
expected and what was found. This module does not import Chainer.
"""
import collections
import os
import sys

import numpy as np

from irnn_chainer import files
from irnn_chainer.data import download, idx, subset
from irnn_chainer.data.sequences import uses_own_data
from irnn_chainer.errors import DataError, UsageError, shown

# the public names of the modules by role, importable from here as before
from irnn_chainer.data.idx import (  # noqa: F401
    IMAGE_MAGIC, LABEL_MAGIC, MNIST_FILES, N_CLASSES, N_PIXELS, load_idx_dir, read_idx)
from irnn_chainer.data.download import (  # noqa: F401
    DEFAULT_MIRRORS, DOWNLOAD_TIMEOUT, download_cache_dir, download_mnist)
from irnn_chainer.data.subset import load as load_embedded, path as embedded_path  # noqa: F401
from irnn_chainer.data.subset import SHA256 as EMBEDDED_SHA256, SOURCE as EMBEDDED_SOURCE  # noqa: F401

MnistSplits = collections.namedtuple('MnistSplits', 'train_x train_y test_x test_y source')
MnistSplits.__doc__ = ('Train/test MNIST: x (N, 784) uint8 pixels 0..255, y (N,) int32 labels '
                       '0..9, and ``source``, a phrase saying where the data came from.')


# --------------------------------------------------------------------------- Chainer's cache

def chainer_cache_dir():
    """Where ``chainer.datasets.get_mnist`` caches MNIST: ``$CHAINER_DATASET_ROOT`` (default
    ``~/.chainer/dataset``) + ``pfnet/chainer/mnist``."""
    root = os.environ.get('CHAINER_DATASET_ROOT') or os.path.join(
        os.path.expanduser('~'), '.chainer', 'dataset')
    return os.path.join(root, 'pfnet', 'chainer', 'mnist')


def _load_npz(path):
    try:  # the one safe loader (files.py): pickles refused, every failure one line
        arrays = files.load_npz(path, 'a readable .npz file of arrays x and y (Chainer MNIST cache)')
    except files.FileError as e:
        raise DataError(str(e)) from None
    if not {'x', 'y'} <= set(arrays):
        raise DataError('%s: expected arrays x and y (Chainer MNIST cache), found %s'
                        % (path, ', '.join(sorted(arrays)) or 'none'))
    x, y = arrays['x'], arrays['y']
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != idx.N_PIXELS:
        raise DataError('%s: expected x as (N, 784) uint8, found %s %s'
                        % (path, tuple(x.shape), x.dtype))
    if y.ndim != 1 or y.dtype.kind not in 'iu':
        raise DataError('%s: expected y as (N,) integer labels, found %s %s'
                        % (path, tuple(y.shape), y.dtype))
    idx.check_pair(x, y, path + ' (x)', path + ' (y)')
    idx.check_labels(y, path)
    return x, y.astype(np.int32)


def load_chainer_cache(directory=None):
    """(train_x, train_y, test_x, test_y) from Chainer's MNIST cache (train.npz, test.npz)."""
    directory = os.fspath(directory) if directory is not None else chainer_cache_dir()
    out = []
    for name in ('train.npz', 'test.npz'):
        out += _load_npz(os.path.join(directory, name))
    return tuple(out)


def _chainer_cache_present(directory):
    return all(os.path.isfile(os.path.join(directory, n)) for n in ('train.npz', 'test.npz'))


# --------------------------------------------------------------------------- get_mnist

def _check_limit(name, value):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError('%s: expected a positive integer or None, got %s' % (name, shown(value)))
    return int(value)


def get_mnist(dataset='auto', data_dir=None, train_limit=None, test_limit=None, log=print):
    """MNIST as :class:`MnistSplits` (x (N, 784) uint8, y (N,) int32, ``source``).

    ``dataset='mnist'``: ``data_dir`` (or ``$IRNN_MNIST_DIR``) if given, which must work; else
    Chainer's cache, else our download cache, else a download. ``'embedded'``: the embedded
    subset. ``'auto'``: as 'mnist', then the embedded subset if no MNIST source works.
    ``log`` gets a first line saying which source and how many images were used, then one
    line per source that was skipped and why. ``train_limit``/``test_limit`` keep the first N.
    """
    if dataset not in ('auto', 'mnist', 'embedded'):
        raise DataError("dataset: expected 'auto', 'mnist' or 'embedded', got %s" % shown(dataset))
    train_limit = _check_limit('train_limit', train_limit)
    test_limit = _check_limit('test_limit', test_limit)
    notes = []
    arrays = source = None
    if dataset != 'embedded':
        given = data_dir if data_dir is not None else (os.environ.get('IRNN_MNIST_DIR') or None)
        if given is not None:
            given = os.fspath(given)
            arrays, source = idx.load_idx_dir(given), 'MNIST IDX files in %s' % given
        else:
            arrays, source = _mnist_chain(notes)
        if arrays is None:
            if dataset == 'mnist':
                raise DataError('no full MNIST source worked (--dataset mnist): %s; give the IDX '
                                'files with --data-dir or IRNN_MNIST_DIR' % '; '.join(notes))
            notes.append('no full MNIST source available: using %s instead (accuracies are not '
                         'comparable with full MNIST)' % subset.NAME)
            sys.stderr.write('MNIST: no full MNIST source worked (the reasons follow the data line): '
                             'falling back to %s\n' % subset.NAME)
    if arrays is None:
        arrays = subset.load()
        source = subset.SOURCE
    train_x, train_y, test_x, test_y = arrays
    n_train, n_test = len(train_x), len(test_x)
    if train_limit is not None:
        train_x, train_y = train_x[:train_limit], train_y[:train_limit]
    if test_limit is not None:
        test_x, test_y = test_x[:test_limit], test_y[:test_limit]
    line = 'data: %s, %d train / %d test images' % (source, len(train_x), len(test_x))
    if (len(train_x), len(test_x)) != (n_train, n_test):
        line += ' (the first of %d / %d, by --train-limit/--test-limit)' % (n_train, n_test)
    log(line)
    for note in notes:
        log('data: ' + note)
    return MnistSplits(train_x, train_y, test_x, test_y, source)


def _mnist_chain(notes):
    """Chainer cache, download cache, download: (arrays, source) or (None, None); each source
    skipped adds a note saying why."""
    cdir = chainer_cache_dir()
    if _chainer_cache_present(cdir):
        try:
            return load_chainer_cache(cdir), 'Chainer dataset cache %s' % cdir
        except DataError as e:
            notes.append('skipped Chainer dataset cache: %s' % e)
    else:
        notes.append('skipped Chainer dataset cache %s: no train.npz/test.npz there' % cdir)
    ddir = download.download_cache_dir()
    if download.download_cache_complete(ddir):
        try:
            return idx.load_idx_dir(ddir), 'MNIST download cache %s' % ddir
        except DataError as e:
            notes.append('skipped download cache: %s' % e)
    else:
        notes.append('skipped download cache %s: not complete' % ddir)
    try:
        download.download_mnist(ddir)
        return idx.load_idx_dir(ddir), 'MNIST downloaded to %s' % ddir
    except DataError as e:
        notes.append('skipped download: %s' % e)
    return None, None


# --------------------------------------------------------------------------- permutation

def make_permutation(seed, n=idx.N_PIXELS):
    """One fixed random permutation of the ``n`` pixel positions (int64), from ``seed``."""
    return np.random.RandomState(seed).permutation(n).astype(np.int64)


def apply_permutation(x, perm):
    """``x[:, perm]`` (every image's pixels reordered the same way); ``perm`` must be a
    permutation of ``range(x.shape[1])``."""
    x = np.asarray(x)
    perm = np.asarray(perm)
    if x.ndim != 2:
        raise DataError('apply_permutation: expected x of shape (N, pixels), found shape %s'
                        % (x.shape,))
    n = x.shape[1]
    if perm.ndim != 1 or perm.dtype.kind not in 'iu' or len(perm) != n:
        raise DataError('pixel permutation: expected %d integer positions, found shape %s %s'
                        % (n, perm.shape, perm.dtype))
    if not np.array_equal(np.sort(perm), np.arange(n)):
        raise DataError('pixel permutation: expected each of 0..%d exactly once, found repeats '
                        'or positions out of range' % (n - 1))
    return x[:, perm]


# ---- the rules between settings that are pixel MNIST's (settings.RULES lists them) --------

def input_dropout_applies(cfg):
    """--input-dropout sets pixels to 0 (black): MNIST's; why not, or None."""
    if uses_own_data(cfg):
        return ('sets MNIST pixels to 0 (black); expected MNIST, got %s'
                % ('--data %s' % cfg['data'] if cfg.get('data') else '--dataset %s' % cfg['dataset']))
    return None


def check_mnist_settings(cfg, given, saved):
    """--data-dir only where MNIST files are read; --validation holds out MNIST images."""
    if cfg.get('data_dir') and (cfg['dataset'] in ('embedded', 'adding') or cfg.get('data')):
        raise UsageError('--data-dir %s: not used by a run on %s (refused rather than ignored)'
                         % (cfg['data_dir'], '--data' if cfg.get('data') else '--dataset ' + cfg['dataset']))
    if cfg.get('validation') is not None and uses_own_data(cfg):
        raise UsageError('--validation: holds out MNIST training images; for --data use --test-split')
