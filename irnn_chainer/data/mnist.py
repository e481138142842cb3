"""MNIST for the IRNN: IDX reader, data sources, embedded subset, pixel permutation.

Sources, in the order ``get_mnist('auto')`` tries them:

1. a folder of the four standard IDX files (``data_dir`` or ``$IRNN_MNIST_DIR``), ``.gz`` or raw;
2. Chainer's own MNIST cache (``$CHAINER_DATASET_ROOT/pfnet/chainer/mnist/{train,test}.npz``);
3. our download cache (``$IRNN_CACHE_DIR`` or ``~/.cache/irnn-chainer/mnist``), filled by
   :func:`download_mnist` from public mirrors, each file verified by MD5;
4. the real MNIST subset shipped inside this package, ``embedded/mnist_subset.npz``: 20000
   training and 2000 test images, the test images from MNIST's test set (``auto`` only;
   ``'embedded'`` asks for it directly).

Every problem with a file is a :class:`DataError` whose message is one line naming the
file or source, what was expected and what was found. This module does not import Chainer.
"""
import collections
import gzip
import hashlib
import io
import os
import re
import struct
import sys
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np

from irnn_chainer import files
from irnn_chainer.errors import DataError


# name -> (md5 of the original .gz as mirrors publish it, md5 of the decompressed file)
MNIST_FILES = collections.OrderedDict([
    ('train-images-idx3-ubyte.gz', ('f68b3c2dcbeaaa9fbdd348bbdeb94873', '6bbc9ace898e44ae57da46a324031adb')),
    ('train-labels-idx1-ubyte.gz', ('d53e105ee54ea40749a09fcbcd1e9432', 'a25bea736e30d166cdddb491f175f624')),
    ('t10k-images-idx3-ubyte.gz', ('9fb629c4189551a2d022fa330f9573f3', '2646ac647ad5339dbf082846283269ea')),
    ('t10k-labels-idx1-ubyte.gz', ('ec29112dd5afa0611ce80d1b7f02629c', '27ae3e4e09519cfbb04c329615203637')),
])

DEFAULT_MIRRORS = (
    'https://ossci-datasets.s3.amazonaws.com/mnist/',   # the one torchvision uses
    'https://storage.googleapis.com/cvdf-datasets/mnist/',  # Google's CVDF mirror
)

# The embedded subset: package data (see embedded/README.md; tools/make_embedded.py builds it).
EMBEDDED_DIR = 'embedded'
EMBEDDED_FILE = 'mnist_subset.npz'
EMBEDDED_SHA256 = 'fbc39b6ce2b0033f762a31dd9fb4e300f5dedea3a097688b5121501dad284983'
EMBEDDED_TRAIN_SIZE = 20000  # 2000 per class, from MNIST's training set
EMBEDDED_TEST_SIZE = 2000  # 200 per class, from MNIST's test set
EMBEDDED_SOURCE = 'embedded MNIST subset (package data; its test images are from the MNIST test set)'
EMBEDDED_NAME = 'the embedded MNIST subset (20000 training, 2000 test images)'

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
_KIND_OF_MAGIC = {IMAGE_MAGIC: 'images', LABEL_MAGIC: 'labels'}
_MAGIC_OF_KIND = {'images': IMAGE_MAGIC, 'labels': LABEL_MAGIC}
N_PIXELS = 28 * 28
N_CLASSES = 10

MnistSplits = collections.namedtuple('MnistSplits', 'train_x train_y test_x test_y source')
MnistSplits.__doc__ = ('Train/test MNIST: x (N, 784) uint8 pixels 0..255, y (N,) int32 labels '
                       '0..9, and ``source``, a phrase saying where the data came from.')


def _md5(data=None):
    try:
        h = hashlib.md5(usedforsecurity=False)
    except TypeError:  # pragma: no cover - Python < 3.9
        h = hashlib.md5()
    if data is not None:
        h.update(data)
    return h


def _fmt_size(n):
    for unit in ('B', 'kB', 'MB', 'GB'):
        if n < 1000 or unit == 'GB':
            return ('%d %s' % (n, unit)) if unit == 'B' else ('%.1f %s' % (n, unit))
        n /= 1000.0


# --------------------------------------------------------------------------- IDX files

def _read_bytes(path):
    """The (decompressed) bytes of ``path``; gzip is recognised by its magic, not its name."""
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError('%s: file not found' % path) from None
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
    data = _read_bytes(path)
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


def _check_labels(y, where):
    if y.size and (y.min() < 0 or y.max() >= N_CLASSES):
        bad = y[(y < 0) | (y >= N_CLASSES)]
        raise DataError('%s: expected labels 0..9, found %d label(s) outside, e.g. %d'
                        % (where, bad.size, int(bad[0])))


def _check_pair(x, y, where_x, where_y):
    if len(x) != len(y):
        raise DataError('%s has %d images but %s has %d labels: expected the same number'
                        % (where_x, len(x), where_y, len(y)))


def _idx_candidates(name):
    """File names that may hold the IDX file ``name`` (the .gz name in MNIST_FILES)."""
    base = name[:-3]
    dotted = base.replace('-idx', '.idx')  # e.g. train-images.idx3-ubyte (LeCun's site, Kaggle)
    return [base, name, dotted, dotted + '.gz']


def _find_idx(directory, name):
    for cand in _idx_candidates(name):
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
    paths = {name: _find_idx(directory, name) for name in MNIST_FILES}
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
        _check_pair(x, y, pi, pl)
        _check_labels(y, pl)
        out += [x.reshape(len(x), N_PIXELS), y.astype(np.int32)]
    return tuple(out)


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
        raise DataError(str(e).replace('no such file', 'file not found')) from None
    if not {'x', 'y'} <= set(arrays):
        raise DataError('%s: expected arrays x and y (Chainer MNIST cache), found %s'
                        % (path, ', '.join(sorted(arrays)) or 'none'))
    x, y = arrays['x'], arrays['y']
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != N_PIXELS:
        raise DataError('%s: expected x as (N, 784) uint8, found %s %s'
                        % (path, tuple(x.shape), x.dtype))
    if y.ndim != 1 or y.dtype.kind not in 'iu':
        raise DataError('%s: expected y as (N,) integer labels, found %s %s'
                        % (path, tuple(y.shape), y.dtype))
    _check_pair(x, y, path + ' (x)', path + ' (y)')
    _check_labels(y, path)
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


# --------------------------------------------------------------------------- download

def download_cache_dir():
    """Where :func:`download_mnist` puts the files: ``$IRNN_CACHE_DIR`` or
    ``~/.cache/irnn-chainer/mnist``."""
    return os.environ.get('IRNN_CACHE_DIR') or os.path.join(
        os.path.expanduser('~'), '.cache', 'irnn-chainer', 'mnist')


def _mirrors_from_env():
    env = os.environ.get('IRNN_MNIST_MIRRORS', '').strip()
    return [m for m in re.split(r'[,\s]+', env) if m] if env else list(DEFAULT_MIRRORS)


def _verify(name, data):
    """None if ``data`` (the bytes of the .gz) matches ``name``'s MD5 (.gz or decompressed),
    else why not."""
    gz_md5, raw_md5 = MNIST_FILES[name]
    got = _md5(data).hexdigest()
    if got == gz_md5:
        return None
    try:
        raw = gzip.decompress(data)
    except Exception as e:
        return ('not a valid gzip file (%s), md5 %s (expected %s)'
                % (str(e).strip() or type(e).__name__, got, gz_md5))
    got_raw = _md5(raw).hexdigest()
    if got_raw == raw_md5:
        return None
    return ('md5 mismatch: .gz %s (expected %s), decompressed %s (expected %s)'
            % (got, gz_md5, got_raw, raw_md5))


class _Progress:
    """A one-line progress bar on stderr: bytes, percent, rate."""

    def __init__(self, label, total, enabled, stream=None):
        self.label, self.total, self.enabled = label, total, enabled
        self.stream = stream or sys.stderr
        self.start = self.last = time.time()
        self.tty = enabled and hasattr(self.stream, 'isatty') and self.stream.isatty()
        self.done = 0

    def _line(self):
        dt = max(time.time() - self.start, 1e-6)
        rate = '%s/s' % _fmt_size(self.done / dt)
        if self.total:
            pct = 100.0 * self.done / self.total
            width = 20
            fill = int(width * self.done / self.total) if self.total else 0
            return '%s [%s%s] %s / %s %5.1f%% %s' % (
                self.label, '#' * fill, '.' * (width - fill), _fmt_size(self.done),
                _fmt_size(self.total), pct, rate)
        return '%s %s %s' % (self.label, _fmt_size(self.done), rate)

    def update(self, n):
        self.done += n
        if self.tty and time.time() - self.last >= 0.1:
            self.last = time.time()
            self.stream.write('\r' + self._line())
            self.stream.flush()

    def finish(self, note):
        if self.enabled:
            self.stream.write(('\r' if self.tty else '') + self._line() + ' ' + note + '\n')
            self.stream.flush()


class _NetworkError(Exception):
    """The mirror could not be reached (not worth trying again for the next file)."""


def _fetch(url, timeout, progress_label, progress):
    """The bytes at ``url``; raises _NetworkError or returns (None, reason) for HTTP errors."""
    try:
        resp = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        return None, 'HTTP %d %s' % (e.code, e.reason)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise _NetworkError(str(getattr(e, 'reason', e)))
    with resp:
        try:
            total = int(resp.headers.get('Content-Length') or 0)
        except ValueError:
            total = 0
        bar = _Progress(progress_label, total, progress)
        buf = io.BytesIO()
        try:
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                buf.write(chunk)
                bar.update(len(chunk))
        except OSError as e:  # timeout or reset in the middle
            bar.finish('failed')
            raise _NetworkError('transfer interrupted after %d bytes (%s)' % (buf.tell(), e))
        data = buf.getvalue()
        if total and len(data) != total:
            bar.finish('incomplete')
            return None, 'incomplete transfer: expected %d bytes, got %d' % (total, len(data))
        bar.finish('')
        return data, None


def _write_atomic(dest_dir, name, data):
    fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix='.%s.' % name, suffix='.part')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(dest_dir, name))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _existing_ok(path, name):
    try:
        with open(path, 'rb') as f:
            return _verify(name, f.read()) is None
    except OSError:
        return False


#: seconds to wait for a mirror to connect, and then for each read: a mirror that accepts the
#: connection but never answers costs this long, not a minute
DOWNLOAD_TIMEOUT = 5


def download_mnist(dest_dir=None, mirrors=None, progress=True, timeout=DOWNLOAD_TIMEOUT):
    """Download the four MNIST files into ``dest_dir``; returns ``dest_dir``.

    Mirrors (base URLs) are tried in order for each file (default: ``$IRNN_MNIST_MIRRORS``,
    comma/space separated, else :data:`DEFAULT_MIRRORS`). A file is accepted when the MD5 of
    the .gz or of its decompressed bytes is the official one, and written atomically (a temp
    file in ``dest_dir`` then ``os.replace``); a corrupt file from one mirror means the next
    is tried. Files already present and verified are kept. Progress goes to stderr, and so
    does which mirror is tried and why one is given up (``timeout`` seconds to connect and
    for each read).
    """
    dest_dir = os.fspath(dest_dir) if dest_dir is not None else download_cache_dir()
    if mirrors is None:
        mirrors = _mirrors_from_env()
    elif isinstance(mirrors, str):
        mirrors = [m for m in re.split(r'[,\s]+', mirrors) if m]
    mirrors = [m if m.endswith('/') else m + '/' for m in mirrors]
    if not mirrors:
        raise DataError('MNIST download: no mirrors given (IRNN_MNIST_MIRRORS is empty?)')
    try:
        os.makedirs(dest_dir, exist_ok=True)
    except OSError as e:
        raise DataError('MNIST download folder %s: cannot create it (%s)'
                        % (dest_dir, e.strerror or e)) from None
    dead = {}  # mirror -> network error, skipped for the remaining files
    tried = set()
    for name in MNIST_FILES:
        path = os.path.join(dest_dir, name)
        if os.path.isfile(path) and _existing_ok(path, name):
            continue
        failures = []
        for base in mirrors:
            if base in dead:
                failures.append('%s: %s' % (base, dead[base]))
                continue
            url = base + name
            if progress and base not in tried:
                tried.add(base)
                sys.stderr.write('MNIST: trying mirror %s (timeout %g s)\n' % (base, timeout))
                sys.stderr.flush()
            try:
                data, why = _fetch(url, timeout, name, progress)
            except _NetworkError as e:
                dead[base] = ('unreachable (no answer within %g s: timed out)' % timeout
                              if 'timed out' in str(e) else 'unreachable (%s)' % e)
                failures.append('%s: %s' % (base, dead[base]))
                if progress:
                    left = [m for m in mirrors if m not in dead]
                    sys.stderr.write('MNIST: mirror %s %s; %s\n' % (
                        base, dead[base], 'trying the next mirror' if left else 'no mirror left'))
                continue
            if data is not None:
                why = _verify(name, data)
            if why is None:
                try:
                    _write_atomic(dest_dir, name, data)
                except OSError as e:
                    raise DataError('MNIST download: cannot write %s (%s)'
                                    % (path, e.strerror or e)) from None
                break
            if progress:
                sys.stderr.write('%s from %s rejected: %s; trying the next mirror\n'
                                 % (name, base, why))
            failures.append('%s: %s' % (url, why))
        else:
            raise DataError('MNIST download of %s failed from every mirror: %s'
                            % (name, '; '.join(failures)))
    return dest_dir


def _download_cache_complete(directory):
    return os.path.isdir(directory) and all(_find_idx(directory, n) for n in MNIST_FILES)


# --------------------------------------------------------------------------- embedded subset

def embedded_path():
    """Where the embedded subset lives: ``embedded/mnist_subset.npz`` inside the package."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), EMBEDDED_DIR, EMBEDDED_FILE)


def _read_embedded(path):
    """The embedded .npz's arrays (train_x, train_y, test_x, test_y), sha256 checked."""
    try:
        with open(path, 'rb') as f:
            blob = f.read()
    except FileNotFoundError:
        raise DataError('embedded MNIST subset %s: missing; the package was installed without its '
                        'data file: reinstall irnn-chainer' % path) from None
    except OSError as e:
        raise DataError('embedded MNIST subset %s: cannot read it (%s); the package was installed '
                        'without its data file: reinstall irnn-chainer'
                        % (path, e.strerror or e)) from None
    got = hashlib.sha256(blob).hexdigest()
    if got != EMBEDDED_SHA256:
        raise DataError('embedded MNIST subset %s: expected sha256 %s, found %s (modified or '
                        'damaged file); reinstall irnn-chainer' % (path, EMBEDDED_SHA256, got))
    with np.load(io.BytesIO(blob), allow_pickle=False) as f:  # the sha256 vouches for its content
        return f['train_x'], f['train_y'], f['test_x'], f['test_y']


def load_embedded():
    """(train_x, train_y, test_x, test_y): the real MNIST subset shipped in the package.

    ``embedded/mnist_subset.npz``, SHA-256 checked: 20000 training images (2000 of each class,
    drawn from MNIST's training set) and 2000 test images (200 of each class, drawn from
    MNIST's test set, so a score on them is a test score), each in a fixed shuffled order so
    that the classes are mixed; how they were drawn, and the licence, in ``embedded/README.md``.
    """
    train_x, train_y, test_x, test_y = _read_embedded(embedded_path())
    return train_x, train_y.astype(np.int32), test_x, test_y.astype(np.int32)


# --------------------------------------------------------------------------- get_mnist

def _check_limit(name, value):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError('%s: expected a positive integer or None, got %r' % (name, value))
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
        raise DataError("dataset: expected 'auto', 'mnist' or 'embedded', got %r" % (dataset,))
    train_limit = _check_limit('train_limit', train_limit)
    test_limit = _check_limit('test_limit', test_limit)
    notes = []
    arrays = source = None
    if dataset != 'embedded':
        given = data_dir if data_dir is not None else (os.environ.get('IRNN_MNIST_DIR') or None)
        if given is not None:
            given = os.fspath(given)
            arrays, source = load_idx_dir(given), 'MNIST IDX files in %s' % given
        else:
            arrays, source = _mnist_chain(notes)
        if arrays is None:
            if dataset == 'mnist':
                raise DataError('no full MNIST source worked (--dataset mnist): %s; give the IDX '
                                'files with --data-dir or IRNN_MNIST_DIR' % '; '.join(notes))
            notes.append('no full MNIST source available: using %s instead (accuracies are not '
                         'comparable with full MNIST)' % EMBEDDED_NAME)
            sys.stderr.write('MNIST: no full MNIST source worked (the reasons follow the data line): '
                             'falling back to %s\n' % EMBEDDED_NAME)
    if arrays is None:
        arrays = load_embedded()
        source = EMBEDDED_SOURCE
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
    ddir = download_cache_dir()
    if _download_cache_complete(ddir):
        try:
            return load_idx_dir(ddir), 'MNIST download cache %s' % ddir
        except DataError as e:
            notes.append('skipped download cache: %s' % e)
    else:
        notes.append('skipped download cache %s: not complete' % ddir)
    try:
        download_mnist(ddir)
        return load_idx_dir(ddir), 'MNIST downloaded to %s' % ddir
    except DataError as e:
        notes.append('skipped download: %s' % e)
    return None, None


# --------------------------------------------------------------------------- permutation

def make_permutation(seed, n=N_PIXELS):
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
