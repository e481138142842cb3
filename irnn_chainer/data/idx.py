"""MNIST's IDX files: the format's reader and the folder of MNIST's four files.

:func:`read_idx` reads one IDX file (images, magic 2051, or labels, magic 2049), gzip or raw;
:func:`load_idx_dir` reads a folder of the four standard files (:data:`MNIST_FILES`, whose
official MD5s :mod:`.download` checks). Every problem is a :class:`DataError` of one line
naming the file, what was expected and what was found. Imports NumPy only.
"""
import collections
import gzip
import hashlib
import os
import struct

import numpy as np

from irnn_chainer.errors import DataError


# name -> (md5 of the original .gz as mirrors publish it, md5 of the decompressed file)
MNIST_FILES = collections.OrderedDict([
    ('train-images-idx3-ubyte.gz', ('f68b3c2dcbeaaa9fbdd348bbdeb94873', '6bbc9ace898e44ae57da46a324031adb')),
    ('train-labels-idx1-ubyte.gz', ('d53e105ee54ea40749a09fcbcd1e9432', 'a25bea736e30d166cdddb491f175f624')),
    ('t10k-images-idx3-ubyte.gz', ('9fb629c4189551a2d022fa330f9573f3', '2646ac647ad5339dbf082846283269ea')),
    ('t10k-labels-idx1-ubyte.gz', ('ec29112dd5afa0611ce80d1b7f02629c', '27ae3e4e09519cfbb04c329615203637')),
])

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
_KIND_OF_MAGIC = {IMAGE_MAGIC: 'images', LABEL_MAGIC: 'labels'}
_MAGIC_OF_KIND = {'images': IMAGE_MAGIC, 'labels': LABEL_MAGIC}
N_PIXELS = 28 * 28
N_CLASSES = 10


def md5(data=None):
    try:
        h = hashlib.md5(usedforsecurity=False)
    except TypeError:  # pragma: no cover - Python < 3.9
        h = hashlib.md5()
    if data is not None:
        h.update(data)
    return h


def read_bytes(path):
    """The (decompressed) bytes of ``path``; gzip is recognised by its magic, not its name."""
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError('%s: missing (file not found)' % path) from None
    except OSError as e:
        raise DataError('%s: cannot read (%s)' % (path, e.strerror or e)) from None
    if raw[:2] == b'\x1f\x8b':
        try:
            return gzip.decompress(raw)
        except EOFError:
            raise DataError('%s: truncated gzip file: expected a complete gzip stream, found it '
                            'cut off after %d compressed bytes (incomplete download?)'
                            % (path, len(raw))) from None
        except (OSError, gzip.BadGzipFile, ValueError) as e:  # bad CRC, bad header, ...
            raise DataError('%s: corrupt gzip file: expected a valid gzip stream, found %s'
                            % (path, str(e).strip() or type(e).__name__)) from None
    if path.endswith('.gz'):
        raise DataError('%s: expected a gzip file (name ends in .gz), found no gzip header '
                        '(first bytes %s)' % (path, raw[:4].hex() or 'none: empty file'))
    return raw


def read_idx(path, kind=None):
    """Read an MNIST IDX file (gzip-compressed or raw) into a uint8 array.

    Images (magic 2051) come back as (N, 28, 28), labels (magic 2049) as (N,). ``kind``
    ('images' or 'labels'), if given, is the kind the caller expects. A truncated, padded or
    foreign file raises :class:`DataError` naming the path, what was expected and what was found.
    """
    path = os.fspath(path)
    if kind is not None and kind not in _MAGIC_OF_KIND:
        raise ValueError("kind: expected 'images', 'labels' or None, got %r" % (kind,))
    data = read_bytes(path)
    want = ('IDX %s file (magic %d)' % (kind, _MAGIC_OF_KIND[kind]) if kind
            else 'IDX images (magic 2051) or labels (magic 2049) file')
    if len(data) < 8:
        raise DataError('%s: expected an %s, found only %d bytes' % (path, want, len(data)))
    magic, n = struct.unpack('>II', data[:8])
    found_kind = _KIND_OF_MAGIC.get(magic)
    if found_kind is None:
        raise DataError('%s: not an MNIST IDX file: expected an %s, found magic number %d '
                        '(first bytes %s)' % (path, want, magic, data[:4].hex()))
    if kind is not None and found_kind != kind:
        raise DataError('%s: expected an %s, found an IDX %s file (magic %d)'
                        % (path, want, found_kind, magic))
    if found_kind == 'images':
        if len(data) < 16:
            raise DataError('%s: truncated IDX images file: expected a 16-byte header, found %d '
                            'bytes' % (path, len(data)))
        rows, cols = struct.unpack('>II', data[8:16])
        if (rows, cols) != (28, 28):
            raise DataError('%s: expected 28x28 images, found %dx%d' % (path, rows, cols))
        header, shape = 16, (n, rows, cols)
    else:
        header, shape = 8, (n,)
    expected = header + int(np.prod(shape, dtype=np.int64))
    what = ' x '.join(str(s) for s in shape)
    if len(data) < expected:
        raise DataError('%s: truncated IDX %s file: expected %d bytes (header + %s), found %d '
                        '(incomplete download?)' % (path, found_kind, expected, what, len(data)))
    if len(data) > expected:
        raise DataError('%s: IDX %s file too long: expected %d bytes (header + %s), found %d'
                        % (path, found_kind, expected, what, len(data)))
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def check_labels(y, where):
    if y.size and (y.min() < 0 or y.max() >= N_CLASSES):
        bad = y[(y < 0) | (y >= N_CLASSES)]
        raise DataError('%s: expected labels 0..9, found %d label(s) outside, e.g. %d'
                        % (where, bad.size, int(bad[0])))


def check_pair(x, y, where_x, where_y):
    if len(x) != len(y):
        raise DataError('%s has %d images but %s has %d labels: expected the same number'
                        % (where_x, len(x), where_y, len(y)))


def idx_candidates(name):
    """File names that may hold the IDX file ``name`` (the .gz name in MNIST_FILES)."""
    base = name[:-3]
    dotted = base.replace('-idx', '.idx')  # e.g. train-images.idx3-ubyte (LeCun's site, Kaggle)
    return [base, name, dotted, dotted + '.gz']


def find_idx(directory, name):
    for cand in idx_candidates(name):
        p = os.path.join(directory, cand)
        if os.path.isfile(p):
            return p
    return None


def load_idx_dir(directory):
    """(train_x, train_y, test_x, test_y) from the four standard MNIST IDX files in ``directory``.

    Each file may be raw or ``.gz``. x is (N, 784) uint8, y is (N,) int32.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise DataError('MNIST folder %s: not found (expected a folder with the four IDX files %s)'
                        % (directory, ', '.join(MNIST_FILES)))
    paths = {name: find_idx(directory, name) for name in MNIST_FILES}
    missing = [name[:-3] + '[.gz]' for name, p in paths.items() if p is None]
    if missing:
        raise DataError('MNIST folder %s: expected the four IDX files, missing %s'
                        % (directory, ', '.join(missing)))
    out = []
    for prefix in ('train', 't10k'):
        pi = paths['%s-images-idx3-ubyte.gz' % prefix]
        pl = paths['%s-labels-idx1-ubyte.gz' % prefix]
        x = read_idx(pi, 'images')
        y = read_idx(pl, 'labels')
        check_pair(x, y, pi, pl)
        check_labels(y, pl)
        out += [x.reshape(len(x), N_PIXELS), y.astype(np.int32)]
    return tuple(out)
