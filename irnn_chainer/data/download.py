"""Downloading MNIST's four files from public mirrors into our cache.

Why our own client rather than Chainer's ``chainer.dataset.download.cached_download`` (what
``chainer.datasets.get_mnist`` uses, under ``$CHAINER_DATASET_ROOT``) or a download library:
in Chainer 7.8.1 it is ``urllib.request.urlretrieve`` of one URL with

* no timeout: a mirror that accepts the connection and never answers blocks forever;
* no checksum: whatever arrives (an HTML error page, a cut-off file) is cached under the
  URL's hash and returned by every later call; MNIST's files have official MD5s, and a
  recompressed mirror's .gz differs from the original while its content does not, so a
  file must be accepted by either MD5;
* no second mirror: ``get_mnist`` asks yann.lecun.com alone, a site known to refuse such
  downloads (HTTP 403);
* raw ``urllib`` exceptions instead of one line naming the mirror and what went wrong.

Pooch (a maintained library) verifies one hash per file and retries one URL, and would add
``requests``; neither gives the two-MD5 check or the fallback from a dead mirror to the next.
Each needed wrapping larger than this module. Chainer's own cache of MNIST is still read
first (:func:`irnn_chainer.data.mnist.load_chainer_cache`), and a download goes to
``$IRNN_CACHE_DIR`` (default ``~/.cache/irnn-chainer/mnist``), not into Chainer's cache,
whose format (train.npz, test.npz) is Chainer's to write.

What it does: each file from the first mirror that gives it with an official MD5; a mirror
that cannot be reached (or stops answering within :data:`DOWNLOAD_TIMEOUT` seconds) is
skipped for the other files; stderr says which mirror is tried and why one is given up, with
a progress line (:mod:`irnn_chainer.progress`); every failure ends in one line. Imports no
Chainer.
"""
import gzip
import io
import os
import re
import sys
import urllib.error
import urllib.request

from irnn_chainer import files
from irnn_chainer.data import idx
from irnn_chainer.errors import DataError
from irnn_chainer.progress import Progress

DEFAULT_MIRRORS = (
    'https://ossci-datasets.s3.amazonaws.com/mnist/',   # the one torchvision uses
    'https://storage.googleapis.com/cvdf-datasets/mnist/',  # Google's CVDF mirror
)


def download_cache_dir():
    """Where :func:`download_mnist` puts the files: ``$IRNN_CACHE_DIR`` or
    ``~/.cache/irnn-chainer/mnist``."""
    return os.environ.get('IRNN_CACHE_DIR') or os.path.join(
        os.path.expanduser('~'), '.cache', 'irnn-chainer', 'mnist')


def _mirrors_from_env():
    env = os.environ.get('IRNN_MNIST_MIRRORS', '').strip()
    return [m for m in re.split(r'[,\s]+', env) if m] if env else list(DEFAULT_MIRRORS)


def _verify(name, blob):
    """None if ``blob`` (the bytes of the .gz) matches ``name``'s MD5 (.gz or decompressed),
    else why not."""
    gz_md5, raw_md5 = idx.MNIST_FILES[name]
    got = idx.md5(blob).hexdigest()
    if got == gz_md5:
        return None
    try:
        raw = gzip.decompress(blob)
    except Exception as e:
        return ('not a valid gzip file (%s), md5 %s (expected %s)'
                % (str(e).strip() or type(e).__name__, got, gz_md5))
    got_raw = idx.md5(raw).hexdigest()
    if got_raw == raw_md5:
        return None
    return ('md5 mismatch: .gz %s (expected %s), decompressed %s (expected %s)'
            % (got, gz_md5, got_raw, raw_md5))


class _NetworkError(Exception):
    """The mirror could not be reached (not worth trying again for the next file)."""


def _fetch(url, timeout, progress_label, progress):
    """The bytes at ``url``: (bytes, None), or (None, why) for an HTTP error or a short
    transfer; raises _NetworkError when the mirror cannot be reached or stops answering."""
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
        bar = Progress(progress_label, total, size=True) if progress else None
        buf = io.BytesIO()
        try:
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                buf.write(chunk)
                if bar:
                    bar.add(len(chunk))
        except OSError as e:  # timeout or reset in the middle
            if bar:
                bar.finish('failed')
            raise _NetworkError('transfer interrupted after %d bytes (%s)' % (buf.tell(), e))
        blob = buf.getvalue()
        if total and len(blob) != total:
            if bar:
                bar.finish('incomplete')
            return None, 'incomplete transfer: expected %d bytes, got %d' % (total, len(blob))
        if bar:
            bar.finish()
        return blob, None


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
    the .gz or of its decompressed bytes is the official one, and written atomically
    (:func:`irnn_chainer.files.write_bytes`); a corrupt file from one mirror means the next
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
    for name in idx.MNIST_FILES:
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
                blob, why = _fetch(url, timeout, name, progress)
            except _NetworkError as e:
                dead[base] = ('unreachable (no answer within %g s: timed out)' % timeout
                              if 'timed out' in str(e) else 'unreachable (%s)' % e)
                failures.append('%s: %s' % (base, dead[base]))
                if progress:
                    left = [m for m in mirrors if m not in dead]
                    sys.stderr.write('MNIST: mirror %s %s; %s\n' % (
                        base, dead[base], 'trying the next mirror' if left else 'no mirror left'))
                continue
            if blob is not None:
                why = _verify(name, blob)
            if why is None:
                try:
                    files.write_bytes(path, blob)
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


def download_cache_complete(directory):
    return os.path.isdir(directory) and all(idx.find_idx(directory, n) for n in idx.MNIST_FILES)
