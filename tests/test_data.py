"""irnn_chainer.data.mnist against independent truths: the real MNIST files, hand-made IDX/npz
files, a real HTTP download from mirrors on 127.0.0.1, and the embedded subset (against the
original MNIST files, row by row)."""
import functools
import gzip
import hashlib
import http.server
import os
import shutil
import socket
import struct
import sys
import threading
import time

import numpy as np
import pytest

from irnn_chainer.data import mnist as data

import realmnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
         't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']
# The official MNIST checksums (as MNIST's mirrors publish them).
OFFICIAL_RAW_MD5 = {
    'train-images-idx3-ubyte.gz': '6bbc9ace898e44ae57da46a324031adb',
    'train-labels-idx1-ubyte.gz': 'a25bea736e30d166cdddb491f175f624',
    't10k-images-idx3-ubyte.gz': '2646ac647ad5339dbf082846283269ea',
    't10k-labels-idx1-ubyte.gz': '27ae3e4e09519cfbb04c329615203637',
}
OFFICIAL_GZ_MD5 = {
    'train-images-idx3-ubyte.gz': 'f68b3c2dcbeaaa9fbdd348bbdeb94873',
    'train-labels-idx1-ubyte.gz': 'd53e105ee54ea40749a09fcbcd1e9432',
    't10k-images-idx3-ubyte.gz': '9fb629c4189551a2d022fa330f9573f3',
    't10k-labels-idx1-ubyte.gz': 'ec29112dd5afa0611ce80d1b7f02629c',
}
# The class counts of MNIST's labels, as published.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

# --------------------------------------------------------------------------- helpers

def idx_images_bytes(x):
    x = np.asarray(x, dtype=np.uint8)
    return struct.pack('>IIII', 2051, *x.shape) + x.tobytes()


def idx_labels_bytes(y):
    y = np.asarray(y, dtype=np.uint8)
    return struct.pack('>II', 2049, len(y)) + y.tobytes()


def write(path, blob, gz=False):
    with open(path, 'wb') as f:
        f.write(gzip.compress(blob) if gz else blob)
    return str(path)


def fake_mnist(n_train, n_test, seed=0):
    rs = np.random.RandomState(seed)
    return (rs.randint(0, 256, (n_train, 28, 28)).astype(np.uint8), (np.arange(n_train) % 10).astype(np.uint8),
            rs.randint(0, 256, (n_test, 28, 28)).astype(np.uint8), (np.arange(n_test) * 3 % 10).astype(np.uint8))


def make_idx_dir(directory, n_train=20, n_test=10, gz=True, seed=0):
    os.makedirs(directory, exist_ok=True)
    trx, try_, tex, tey = fake_mnist(n_train, n_test, seed)
    for name, blob in zip(NAMES, [idx_images_bytes(trx), idx_labels_bytes(try_),
                                  idx_images_bytes(tex), idx_labels_bytes(tey)]):
        write(os.path.join(directory, name if gz else name[:-3]), blob, gz)
    return trx, try_, tex, tey


def make_chainer_cache(root, n_train=12, n_test=6):
    d = os.path.join(root, 'pfnet', 'chainer', 'mnist')
    os.makedirs(d, exist_ok=True)
    trx, try_, tex, tey = fake_mnist(n_train, n_test, seed=1)
    # the format chainer.datasets.get_mnist writes
    np.savez_compressed(os.path.join(d, 'train.npz'), x=trx.reshape(n_train, 784), y=try_)
    np.savez_compressed(os.path.join(d, 'test.npz'), x=tex.reshape(n_test, 784), y=tey)
    return d


def md5_file(path, decompress=False):
    with open(path, 'rb') as f:
        b = f.read()
    return hashlib.md5(gzip.decompress(b) if decompress else b).hexdigest()


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def no_temp_files(directory):
    return [f for f in os.listdir(directory) if f.startswith('.') or f.endswith('.part')]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Nothing here may touch the real home caches or the internet."""
    monkeypatch.setenv('CHAINER_DATASET_ROOT', str(tmp_path / 'chainer-root'))
    monkeypatch.setenv('IRNN_CACHE_DIR', str(tmp_path / 'irnn-cache'))
    monkeypatch.setenv('IRNN_MNIST_MIRRORS', 'http://127.0.0.1:%d/' % free_port())  # refused
    monkeypatch.delenv('IRNN_MNIST_DIR', raising=False)


# --------------------------------------------------------------------------- IDX on real MNIST

@pytest.fixture(scope='module')
def real():
    return data.load_idx_dir(realmnist.folder())


def test_mnist_files_table_is_the_official_one():
    assert list(data.MNIST_FILES) == NAMES
    for n in NAMES:
        assert data.MNIST_FILES[n] == (OFFICIAL_GZ_MD5[n], OFFICIAL_RAW_MD5[n])


def test_read_idx_real_files():
    imgs = data.read_idx(realmnist.path('t10k-images-idx3-ubyte.gz'))
    labels = data.read_idx(realmnist.path('t10k-labels-idx1-ubyte.gz'))
    assert imgs.shape == (10000, 28, 28) and imgs.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert list(labels[:10]) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_load_idx_dir_real(real):
    trx, trY, tex, tey = real
    assert trx.shape == (60000, 784) and tex.shape == (10000, 784)
    assert trx.dtype == np.uint8 and tex.dtype == np.uint8
    assert trY.shape == (60000,) and tey.shape == (10000,)
    assert trY.dtype == np.int32 and tey.dtype == np.int32
    assert list(tey[:10]) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert list(np.bincount(trY, minlength=10)) == TRAIN_COUNTS
    assert list(np.bincount(tey, minlength=10)) == TEST_COUNTS
    assert trx.min() == 0 and trx.max() == 255 and tex.min() == 0 and tex.max() == 255


def test_raw_and_gz_give_the_same_array(tmp_path):
    src = realmnist.path('t10k-labels-idx1-ubyte.gz')
    with gzip.open(src, 'rb') as f:
        raw = write(tmp_path / 't10k-labels-idx1-ubyte', f.read())
    assert np.array_equal(data.read_idx(raw), data.read_idx(src))


def test_idx_dir_raw_gz_and_dotted_names(tmp_path):
    trx, try_, tex, tey = make_idx_dir(tmp_path / 'raw', gz=False)
    got = data.load_idx_dir(tmp_path / 'raw')
    assert np.array_equal(got[0], trx.reshape(20, 784)) and np.array_equal(got[1], try_)
    assert np.array_equal(got[2], tex.reshape(10, 784)) and np.array_equal(got[3], tey)
    assert got[1].dtype == np.int32
    # LeCun's site / Kaggle spelling: train-images.idx3-ubyte
    d = tmp_path / 'dotted'
    d.mkdir()
    for n in os.listdir(tmp_path / 'raw'):
        shutil.copy(tmp_path / 'raw' / n, d / n.replace('-idx', '.idx'))
    assert np.array_equal(data.load_idx_dir(d)[0], got[0])


# --------------------------------------------------------------------------- corrupt IDX files

def test_truncated_images(tmp_path):
    blob = idx_images_bytes(np.zeros((5, 28, 28), np.uint8))
    p = write(tmp_path / 'train-images-idx3-ubyte', blob[:-100])
    with pytest.raises(data.DataError) as e:
        data.read_idx(p)
    msg = str(e.value)
    assert p in msg and 'truncated' in msg and str(len(blob)) in msg and str(len(blob) - 100) in msg


def test_truncated_gzip(tmp_path):
    gz = gzip.compress(idx_images_bytes(np.arange(5 * 784).reshape(5, 28, 28) % 256))
    p = write(tmp_path / 'x.gz', gz[:len(gz) // 2])
    with pytest.raises(data.DataError, match='truncated gzip'):
        data.read_idx(p)


def test_wrong_magic(tmp_path):
    p = write(tmp_path / 'foreign', b'\x89PNG\r\n\x1a\n' + b'\0' * 100)
    with pytest.raises(data.DataError) as e:
        data.read_idx(p)
    msg = str(e.value)
    assert p in msg and '2051' in msg and '2049' in msg and 'magic' in msg and '89504e47' in msg


def test_not_gzip_but_named_gz(tmp_path):
    p = write(tmp_path / 'train-images-idx3-ubyte.gz', b'<html>Not Found</html>')
    with pytest.raises(data.DataError, match='expected a gzip file'):
        data.read_idx(p)


def test_labels_file_where_images_expected(tmp_path):
    make_idx_dir(tmp_path, gz=False)
    # put a labels file in place of the training images
    shutil.copy(tmp_path / 'train-labels-idx1-ubyte', tmp_path / 'train-images-idx3-ubyte')
    with pytest.raises(data.DataError) as e:
        data.load_idx_dir(tmp_path)
    msg = str(e.value)
    assert 'train-images-idx3-ubyte' in msg and 'expected an IDX images file' in msg
    assert 'found an IDX labels file' in msg


def test_count_mismatch_between_images_and_labels(tmp_path):
    make_idx_dir(tmp_path, n_train=20, gz=True)
    write(tmp_path / 'train-labels-idx1-ubyte.gz', idx_labels_bytes(np.zeros(19)), gz=True)
    with pytest.raises(data.DataError) as e:
        data.load_idx_dir(tmp_path)
    msg = str(e.value)
    assert '20 images' in msg and '19 labels' in msg and 'train-labels-idx1-ubyte.gz' in msg


def test_labels_out_of_range(tmp_path):
    make_idx_dir(tmp_path, n_test=10)
    write(tmp_path / 't10k-labels-idx1-ubyte.gz', idx_labels_bytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 12]), gz=True)
    with pytest.raises(data.DataError, match=r'expected labels 0\.\.9.*12'):
        data.load_idx_dir(tmp_path)


def test_too_long_and_wrong_size_images(tmp_path):
    blob = idx_images_bytes(np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(data.DataError, match='too long'):
        data.read_idx(write(tmp_path / 'a', blob + b'\0'))
    with pytest.raises(data.DataError, match='expected 28x28 images, found 32x32'):
        data.read_idx(write(tmp_path / 'b', idx_images_bytes(np.zeros((2, 32, 32), np.uint8))))


def test_missing_dir_and_files(tmp_path):
    with pytest.raises(data.DataError, match='not found'):
        data.load_idx_dir(tmp_path / 'nope')
    make_idx_dir(tmp_path)
    os.remove(tmp_path / 't10k-images-idx3-ubyte.gz')
    with pytest.raises(data.DataError) as e:
        data.load_idx_dir(tmp_path)
    assert 'missing t10k-images-idx3-ubyte' in str(e.value) and str(tmp_path) in str(e.value)


# --------------------------------------------------------------------------- Chainer cache

def test_chainer_cache_dir(monkeypatch, tmp_path):
    assert data.chainer_cache_dir() == os.path.join(str(tmp_path / 'chainer-root'), 'pfnet', 'chainer', 'mnist')
    monkeypatch.delenv('CHAINER_DATASET_ROOT')
    assert data.chainer_cache_dir() == os.path.join(
        os.path.expanduser('~'), '.chainer', 'dataset', 'pfnet', 'chainer', 'mnist')


def test_chainer_cache_loads(tmp_path):
    d = make_chainer_cache(str(tmp_path / 'chainer-root'))
    trx, trY, tex, teY = data.load_chainer_cache()
    ref = fake_mnist(12, 6, seed=1)
    assert trx.shape == (12, 784) and trx.dtype == np.uint8 and np.array_equal(trx, ref[0].reshape(12, 784))
    assert trY.dtype == np.int32 and np.array_equal(trY, ref[1])
    assert tex.shape == (6, 784) and np.array_equal(teY, ref[3])
    assert np.array_equal(data.load_chainer_cache(d)[0], trx)


@pytest.mark.parametrize('bad, words', [
    (dict(x=np.zeros((3, 784), np.uint8)), ['expected arrays x and y', 'found x']),
    (dict(x=np.zeros((3, 784), np.float32), y=np.zeros(3, np.uint8)), ['(N, 784) uint8', 'float32']),
    (dict(x=np.zeros((3, 28, 28), np.uint8), y=np.zeros(3, np.uint8)), ['(N, 784) uint8', '(3, 28, 28)']),
    (dict(x=np.zeros((3, 784), np.uint8), y=np.zeros(4, np.uint8)), ['3 images', '4 labels']),
    (dict(x=np.zeros((3, 784), np.uint8), y=np.array([0, 1, 10], np.uint8)), ['labels 0..9']),
    (b'not a zip file', ['a readable .npz', 'NumPy cannot read']),
])
def test_chainer_cache_malformed(tmp_path, bad, words):
    d = make_chainer_cache(str(tmp_path / 'chainer-root'))
    path = os.path.join(d, 'train.npz')
    if isinstance(bad, bytes):
        write(path, bad)
    else:
        np.savez(path, **bad)
    with pytest.raises(data.DataError) as e:
        data.load_chainer_cache()
    msg = str(e.value)
    assert path in msg and '\n' not in msg
    for w in words:
        assert w in msg, (w, msg)


# --------------------------------------------------------------------------- download over HTTP

class _Handler(http.server.SimpleHTTPRequestHandler):
    requests = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        _Handler.requests.append(self.path)
        return super().do_GET()


@pytest.fixture(scope='module')
def mirrors(tmp_path_factory):
    """An HTTP server on 127.0.0.1 with mirrors good/ (the real files), corrupt/ (the real
    files but train-labels with one label changed), html/ (an error page for every file)
    and empty/ (404s)."""
    realmnist.folder()  # skips without the real files
    root = tmp_path_factory.mktemp('www')
    for sub in ('good', 'corrupt', 'html', 'empty'):
        (root / sub).mkdir()
    for n in NAMES:
        shutil.copy(realmnist.path(n), root / 'good' / n)
        os.symlink(root / 'good' / n, root / 'corrupt' / n)
        write(root / 'html' / n, b'<html><body>Access denied</body></html>')
    os.remove(root / 'corrupt' / 'train-labels-idx1-ubyte.gz')
    with gzip.open(root / 'good' / 'train-labels-idx1-ubyte.gz') as f:
        labels = bytearray(f.read())
    labels[8] = (labels[8] + 1) % 10  # a plausible, valid IDX file with a wrong label
    write(root / 'corrupt' / 'train-labels-idx1-ubyte.gz', bytes(labels), gz=True)
    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = 'http://127.0.0.1:%d/' % server.server_address[1]
    yield {k: base + k + '/' for k in ('good', 'corrupt', 'html', 'empty')}
    server.shutdown()
    server.server_close()


def assert_verified(directory):
    for n in NAMES:
        assert md5_file(os.path.join(directory, n), decompress=True) == OFFICIAL_RAW_MD5[n]


def test_download_good_mirror_by_decompressed_md5(mirrors, tmp_path, capsys):
    dest = str(tmp_path / 'dl')
    # the test files' .gz are recompressed: only their decompressed md5 is the official one
    for n in NAMES:
        assert md5_file(realmnist.path(n)) != OFFICIAL_GZ_MD5[n]
    assert data.download_mnist(dest, mirrors=[mirrors['good']], progress=True) == dest
    assert sorted(os.listdir(dest)) == sorted(NAMES)
    assert_verified(dest)
    err = capsys.readouterr().err
    # progress: bytes, percent, rate
    assert 'train-images-idx3-ubyte.gz' in err and '9.6 MB' in err and '100.0%' in err and '/s' in err
    # a second call keeps the verified files and fetches nothing
    _Handler.requests.clear()
    data.download_mnist(dest, mirrors=[mirrors['good']], progress=False)
    assert _Handler.requests == []


def test_download_accepts_original_gz_md5(mirrors, tmp_path, monkeypatch):
    # pretend the served .gz are the original ones, and that their content md5 were unknown
    table = {n: (md5_file(realmnist.path(n)), '0' * 32) for n in NAMES}
    monkeypatch.setattr(data, 'MNIST_FILES', table)
    data.download_mnist(str(tmp_path / 'dl'), mirrors=[mirrors['good']], progress=False)
    assert sorted(os.listdir(tmp_path / 'dl')) == sorted(NAMES)


def test_download_falls_back_after_corrupt_and_missing(mirrors, tmp_path, monkeypatch, capsys):
    dest = str(tmp_path / 'dl')
    monkeypatch.setenv('IRNN_MNIST_MIRRORS', '%s, %s %s' % (mirrors['empty'], mirrors['corrupt'], mirrors['good']))
    _Handler.requests.clear()
    data.download_mnist(dest, progress=True)
    assert_verified(dest)
    assert not no_temp_files(dest)
    assert '/corrupt/train-labels-idx1-ubyte.gz' in _Handler.requests
    assert '/good/train-labels-idx1-ubyte.gz' in _Handler.requests
    assert '/good/train-images-idx3-ubyte.gz' not in _Handler.requests  # corrupt/ had a good copy
    err = capsys.readouterr().err
    assert 'train-labels-idx1-ubyte.gz from %s rejected: md5 mismatch' % mirrors['corrupt'] in err


def test_download_only_corrupt_mirrors_fails_clean(mirrors, tmp_path):
    dest = str(tmp_path / 'dl')
    with pytest.raises(data.DataError) as e:
        data.download_mnist(dest, mirrors=[mirrors['corrupt'], mirrors['empty']], progress=False)
    msg = str(e.value)
    assert 'train-labels-idx1-ubyte.gz' in msg and 'every mirror' in msg and '\n' not in msg
    assert 'md5 mismatch' in msg and 'HTTP 404' in msg and OFFICIAL_RAW_MD5[NAMES[1]] in msg
    # the good file fetched before stays; the corrupt one and any temp file do not
    assert os.listdir(dest) == ['train-images-idx3-ubyte.gz']
    with pytest.raises(data.DataError, match='not a valid gzip file'):
        data.download_mnist(str(tmp_path / 'dl2'), mirrors=[mirrors['html']], progress=False)
    assert os.listdir(tmp_path / 'dl2') == []


def test_download_replaces_a_bad_cached_file(mirrors, tmp_path):
    dest = tmp_path / 'dl'
    dest.mkdir()
    write(dest / 't10k-labels-idx1-ubyte.gz', idx_labels_bytes([1, 2, 3]), gz=True)
    data.download_mnist(str(dest), mirrors=[mirrors['good']], progress=False)
    assert_verified(str(dest))


def test_download_unreachable_mirror(tmp_path):
    with pytest.raises(data.DataError) as e:
        data.download_mnist(str(tmp_path / 'dl'), progress=False, timeout=5)  # env: refused port
    assert 'unreachable' in str(e.value) and '127.0.0.1' in str(e.value)


def test_download_cache_dir(monkeypatch, tmp_path):
    assert data.download_cache_dir() == str(tmp_path / 'irnn-cache')
    monkeypatch.delenv('IRNN_CACHE_DIR')
    assert data.download_cache_dir() == os.path.join(os.path.expanduser('~'), '.cache', 'irnn-chainer', 'mnist')


# --------------------------------------------------------------------------- embedded subset

# The committed file: `sha256sum irnn_chainer/data/embedded/mnist_subset.npz`.
EMBEDDED_FILE_SHA256 = 'fbc39b6ce2b0033f762a31dd9fb4e300f5dedea3a097688b5121501dad284983'
EMBEDDED_ARRAYS = ['test_index', 'test_x', 'test_y', 'train_index', 'train_x', 'train_y']


def _read_npz():
    """The embedded file read directly, without irnn_chainer.data."""
    path = os.path.join(ROOT, 'irnn_chainer', 'data', 'embedded', 'mnist_subset.npz')
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope='module')
def embedded():
    return data.load_embedded()


def test_embedded_file_sha256():
    assert data.embedded_path() == os.path.join(ROOT, 'irnn_chainer', 'data', 'embedded', 'mnist_subset.npz')
    with open(data.embedded_path(), 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == data.EMBEDDED_SHA256 == EMBEDDED_FILE_SHA256


def test_embedded_file_arrays():
    """What embedded/README.md says the file holds: 2000 images of each class for training,
    200 of each for testing, each with its row number in MNIST's set, the classes mixed."""
    f = _read_npz()
    assert sorted(f) == EMBEDDED_ARRAYS
    for split, n, per_class, n_mnist in (('train', 20000, 2000, 60000), ('test', 2000, 200, 10000)):
        x, y, idx = f[split + '_x'], f[split + '_y'], f[split + '_index']
        assert x.shape == (n, 784) and x.dtype == np.uint8
        assert y.shape == (n,) and y.dtype == np.uint8 and idx.shape == (n,) and idx.dtype == np.uint16
        assert list(np.bincount(y, minlength=10)) == [per_class] * 10
        assert len(np.unique(idx)) == n and idx.max() < n_mnist
        assert len(set(y[:50].tolist())) >= 8 and not np.all(np.diff(idx.astype(int)) > 0)
    # MNIST's test set: the first 5000 images are the cleaner half; the draw spans both
    assert 900 <= int((f['test_index'] < 5000).sum()) <= 1100


def test_embedded_rows_are_the_real_mnist_rows(real):
    """Every embedded image and label against the original IDX files: the training images
    are rows of MNIST's training set, the test images rows of MNIST's TEST set; and the rows
    are the documented draw (embedded/README.md), repeated here."""
    train_x, train_y, test_x, test_y = real
    f = _read_npz()
    assert np.array_equal(f['train_x'], train_x[f['train_index']])
    assert np.array_equal(f['train_y'], train_y[f['train_index']])
    assert np.array_equal(f['test_x'], test_x[f['test_index']])
    assert np.array_equal(f['test_y'], test_y[f['test_index']])
    rs = np.random.RandomState(0)
    for labels, k, got in ((train_y, 2000, f['train_index']), (test_y, 200, f['test_index'])):
        rows = []
        for c in range(10):
            rows.extend(sorted(rs.permutation(np.flatnonzero(labels == c))[:k].tolist()))
        order = rs.permutation(len(rows))
        assert [rows[i] for i in order] == got.tolist()


def test_load_embedded_gives_the_files_splits(embedded):
    trx, trY, tex, teY = embedded
    f = _read_npz()
    assert trx.dtype == tex.dtype == np.uint8 and trY.dtype == teY.dtype == np.int32
    assert np.array_equal(trx, f['train_x']) and np.array_equal(trY, f['train_y'])
    assert np.array_equal(tex, f['test_x']) and np.array_equal(teY, f['test_y'])
    # no image in both splits
    tr_rows = {r.tobytes() for r in trx}
    assert not any(r.tobytes() in tr_rows for r in tex)


def test_embedded_deterministic(embedded):
    again = data.load_embedded()
    for a, b in zip(embedded, again):
        assert np.array_equal(a, b)


def test_embedded_tampered(monkeypatch, tmp_path):
    f = _read_npz()
    f['test_x'][0, 300] ^= 1  # one pixel of one image
    bad = str(tmp_path / 'mnist_subset.npz')
    np.savez_compressed(bad, **f)
    monkeypatch.setattr(data, 'embedded_path', lambda: bad)
    with pytest.raises(data.DataError) as e:
        data.load_embedded()
    msg = str(e.value)
    assert bad in msg and 'sha256' in msg and data.EMBEDDED_SHA256 in msg and 'reinstall' in msg
    assert '\n' not in msg


def test_embedded_file_missing(monkeypatch, tmp_path):
    gone = str(tmp_path / 'embedded' / 'mnist_subset.npz')
    monkeypatch.setattr(data, 'embedded_path', lambda: gone)
    with pytest.raises(data.DataError) as e:
        data.load_embedded()
    msg = str(e.value)
    assert gone in msg and 'missing' in msg and 'reinstall irnn-chainer' in msg and '\n' not in msg


def test_data_module_does_not_import_chainer():
    import subprocess
    code = ('import sys; import importlib.util as u; s = u.spec_from_file_location("d", %r); '
            'm = u.module_from_spec(s); s.loader.exec_module(m); print(len(m.load_embedded()[0])); '
            'print("chainer" in sys.modules)' % data.__file__)
    out = subprocess.run([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True, timeout=60).stdout
    assert out.split() == ['20000', 'False']


# --------------------------------------------------------------------------- get_mnist

class Log(list):
    def __call__(self, line):
        self.append(line)


def test_get_mnist_data_dir_first(tmp_path):
    make_chainer_cache(str(tmp_path / 'chainer-root'))
    make_idx_dir(tmp_path / 'irnn-cache', n_train=30, n_test=15)
    make_idx_dir(tmp_path / 'mine', n_train=20, n_test=10)
    log = Log()
    s = data.get_mnist('auto', str(tmp_path / 'mine'), log=log)
    assert isinstance(s, data.MnistSplits)
    assert s.source == 'MNIST IDX files in %s' % (tmp_path / 'mine')
    assert s.train_x.shape == (20, 784) and s.test_x.shape == (10, 784)
    assert s.train_x.dtype == np.uint8 and s.train_y.dtype == np.int32 and s.test_y.dtype == np.int32
    assert log == ['data: MNIST IDX files in %s, 20 train / 10 test images' % (tmp_path / 'mine')]


def test_get_mnist_env_data_dir(tmp_path, monkeypatch):
    make_idx_dir(tmp_path / 'mine', n_train=20, n_test=10)
    monkeypatch.setenv('IRNN_MNIST_DIR', str(tmp_path / 'mine'))
    s = data.get_mnist('mnist', log=Log())
    assert s.source == 'MNIST IDX files in %s' % (tmp_path / 'mine')


@pytest.mark.parametrize('dataset', ['auto', 'mnist'])
def test_get_mnist_bad_data_dir_is_an_error(tmp_path, dataset):
    with pytest.raises(data.DataError, match='nonexistent'):
        data.get_mnist(dataset, str(tmp_path / 'nonexistent'), log=Log())


def test_get_mnist_chainer_cache_before_download_cache(tmp_path):
    make_chainer_cache(str(tmp_path / 'chainer-root'))
    make_idx_dir(tmp_path / 'irnn-cache', n_train=30, n_test=15)
    log = Log()
    s = data.get_mnist('mnist', log=log)
    assert s.source.startswith('Chainer dataset cache ') and s.train_x.shape == (12, 784)
    assert log == ['data: %s, 12 train / 6 test images' % s.source]


def test_get_mnist_broken_chainer_cache_logged_then_download_cache(tmp_path):
    d = make_chainer_cache(str(tmp_path / 'chainer-root'))
    write(os.path.join(d, 'test.npz'), b'garbage')
    make_idx_dir(tmp_path / 'irnn-cache', n_train=30, n_test=15)
    log = Log()
    s = data.get_mnist('auto', log=log)
    assert s.source == 'MNIST download cache %s' % (tmp_path / 'irnn-cache')
    assert s.train_x.shape == (30, 784)
    assert log[0] == 'data: %s, 30 train / 15 test images' % s.source
    assert len(log) == 2 and 'skipped Chainer dataset cache' in log[1] and 'test.npz' in log[1]


def test_get_mnist_downloads_when_nothing_cached(tmp_path, monkeypatch, mirrors):
    monkeypatch.setenv('IRNN_MNIST_MIRRORS', mirrors['good'])
    log = Log()
    s = data.get_mnist('auto', train_limit=100, test_limit=10, log=log)
    cache = str(tmp_path / 'irnn-cache')
    assert s.source == 'MNIST downloaded to %s' % cache
    assert_verified(cache)
    assert s.train_x.shape == (100, 784) and s.test_x.shape == (10, 784)
    assert list(s.test_y) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert log[0] == 'data: %s, 100 train / 10 test images (the first of 60000 / 10000, by --train-limit/--test-limit)' % s.source
    assert 'skipped Chainer dataset cache' in log[1] and 'skipped download cache' in log[2]
    # next time: from the cache
    s = data.get_mnist('auto', log=log)
    assert s.source == 'MNIST download cache %s' % cache


def test_get_mnist_auto_falls_back_to_embedded_loudly(tmp_path):
    log = Log()
    s = data.get_mnist('auto', log=log)
    assert s.source == 'embedded MNIST subset (package data; its test images are from the MNIST test set)'
    assert log[0] == 'data: embedded MNIST subset (package data; its test images are from the MNIST test set), 20000 train / 2000 test images'
    rest = '\n'.join(log[1:])
    assert 'skipped Chainer dataset cache' in rest and 'skipped download cache' in rest
    assert 'skipped download' in rest and 'unreachable' in rest and 'embedded' in log[-1]
    assert len(log) == 5


def test_get_mnist_mnist_never_falls_back(tmp_path):
    with pytest.raises(data.DataError) as e:
        data.get_mnist('mnist', log=Log())
    msg = str(e.value)
    assert 'no full MNIST source' in msg and 'unreachable' in msg and '\n' not in msg


def test_get_mnist_embedded_and_limits(embedded):
    log = Log()
    s = data.get_mnist('embedded', train_limit=64, test_limit=50, log=log)
    assert log == ['data: embedded MNIST subset (package data; its test images are from the MNIST '
                   'test set), 64 train / 50 test images (the first of 20000 / 2000, by '
                   '--train-limit/--test-limit)']
    assert np.array_equal(s.train_x, embedded[0][:64]) and np.array_equal(s.test_y, embedded[3][:50])
    s = data.get_mnist('embedded', train_limit=10 ** 6, log=Log())  # more than there is: all
    assert len(s.train_x) == 20000


@pytest.mark.parametrize('kw', [dict(train_limit=0), dict(test_limit=-3), dict(train_limit=1.5),
                                dict(test_limit='10'), dict(train_limit=True)])
def test_get_mnist_bad_limits(kw):
    with pytest.raises(data.DataError, match='positive integer'):
        data.get_mnist('embedded', log=Log(), **kw)


def test_get_mnist_unknown_dataset():
    with pytest.raises(data.DataError, match="'auto', 'mnist' or 'embedded'"):
        data.get_mnist('cifar', log=Log())


# --------------------------------------------------------------------------- permutation

def test_make_permutation():
    p = data.make_permutation(0)
    assert p.shape == (784,) and p.dtype == np.int64
    assert np.array_equal(np.sort(p), np.arange(784))
    assert np.array_equal(p, data.make_permutation(0))
    assert np.array_equal(p, np.random.RandomState(0).permutation(784))
    assert not np.array_equal(p, data.make_permutation(1))
    assert not np.array_equal(p, np.arange(784))


def test_apply_permutation_by_hand():
    x = np.array([[10, 20, 30], [40, 50, 60]], np.uint8)
    got = data.apply_permutation(x, np.array([2, 0, 1]))
    assert got.tolist() == [[30, 10, 20], [60, 40, 50]]
    # on images: the pixel that was at position perm[j] is now at position j, in every image
    x = np.arange(2 * 784).reshape(2, 784) % 251
    p = data.make_permutation(3)
    y = data.apply_permutation(x, p)
    j = 17
    assert y[0, j] == x[0, p[j]] and y[1, j] == x[1, p[j]]
    assert sorted(y[1].tolist()) == sorted(x[1].tolist())


@pytest.mark.parametrize('perm', [[0, 0, 1], [0, 1], [0, 1, 3], [0.0, 1.0, 2.0], [[0, 1, 2]]])
def test_apply_permutation_rejects(perm):
    with pytest.raises(data.DataError, match='permutation'):
        data.apply_permutation(np.zeros((2, 3), np.uint8), np.array(perm))


@pytest.fixture
def silent_mirror():
    """A server on 127.0.0.1 that accepts every connection and never answers."""
    srv = socket.socket()
    srv.bind(('127.0.0.1', 0))
    srv.listen(16)
    held, stop = [], threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield 'http://127.0.0.1:%d/' % srv.getsockname()[1]
    stop.set()
    t.join(5)
    for c in held:
        c.close()
    srv.close()


def test_mirrors_that_never_answer_time_out_and_fall_back_loudly(silent_mirror, monkeypatch, capfd):
    monkeypatch.setenv('IRNN_MNIST_MIRRORS', '%sa/ %sb/' % (silent_mirror, silent_mirror))
    t0 = time.time()
    log = Log()
    s = data.get_mnist('auto', log=log)
    took = time.time() - t0
    err = capfd.readouterr().err
    # a few seconds per silent mirror (it used to be 30 s each, 61 s in all, with no output)
    assert took < 4 * data.DOWNLOAD_TIMEOUT, took
    assert data.DOWNLOAD_TIMEOUT <= 10
    assert s.source.startswith('embedded')
    for m in ('a/', 'b/'):
        assert 'MNIST: trying mirror %s%s (timeout %g s)' % (silent_mirror, m, data.DOWNLOAD_TIMEOUT) in err, err
    assert 'timed out); trying the next mirror' in err and 'timed out); no mirror left' in err, err
    assert 'falling back to the embedded MNIST subset (20000 training, 2000 test images)' in err
    assert any('timed out' in line for line in log)
