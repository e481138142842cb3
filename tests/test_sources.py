"""The one data interface: every source (pixel MNIST, a --data file, the adding problem)
gives the same record, whose fields are checked here against the data themselves."""
import hashlib
import os

import numpy as np
import pytest

import irnn_chainer  # noqa: F401  (compat shims first)
from irnn_chainer.data import mnist
from irnn_chainer.model import rnn as model_mod
from irnn_chainer import settings
from irnn_chainer.data import sources
from irnn_chainer.errors import UsageError

FIELDS = ('kind', 'input', 'n_in', 'task', 'n_out', 'baseline', 'source', 'train_size')


def load(tmp_path, **flags):
    cfg = settings.resolve_config(flags)
    logged = []
    d = sources.load(cfg, str(tmp_path), log=logged.append)
    return cfg, d, logged


def test_pixel_mnist_record(tmp_path):
    cfg, d, logged = load(tmp_path, dataset='embedded', train_limit=40, test_limit=20, permute=True)
    splits = mnist.get_mnist('embedded', None, 40, 20, log=lambda *a: None)
    assert (d.kind, d.input, d.n_in, d.task, d.n_out, d.baseline) == ('mnist', 'ids', 256, 'classification', 10, None)
    assert (len(d.train), len(d.test), d.train_size) == (40, 20, 40)
    assert d.source == splits.source and d.settings == {}
    perm = np.load(os.path.join(str(tmp_path), 'permutation.npy'))
    x, y = d.train[3]
    np.testing.assert_array_equal(x, splits.train_x[3][perm])
    assert y == splits.train_y[3]
    # the fingerprint: sha256 over dtype, shape and bytes of the arrays the run uses, by hand
    h = hashlib.sha256()
    for a in (splits.train_x[:, perm], splits.train_y, splits.test_x[:, perm], splits.test_y):
        a = np.ascontiguousarray(a)
        h.update(('%s%s;' % (a.dtype.str, a.shape)).encode() + a.tobytes())
    assert d.fingerprint == {'data_sha256': h.hexdigest(), 'data_bytes': 60 * 784 + 60 * 4}
    assert logged[0].startswith('data: embedded') and d.description == logged[0] + '; permuted (seed 0)'
    assert logged[1].startswith('permuted pixel MNIST: one fixed permutation (seed 0')


def test_file_record_regression(tmp_path):
    rng = np.random.RandomState(0)
    x, y = rng.normal(size=(30, 7, 3)), rng.normal(size=(30, 2))
    path = str(tmp_path / 'seq.npz')
    np.savez(path, x=x, y=y)
    cfg, d, logged = load(tmp_path, data=path, test_split=0.2, dtype='float64')
    assert (d.kind, d.input, d.n_in, d.task, d.n_out) == ('file', 'real', 3, 'regression', 2)
    assert len(d.train) + len(d.test) == 30 and len(d.test) == 6
    train_y = np.stack([d.train[i][1] for i in range(len(d.train))])
    np.testing.assert_allclose(d.baseline, train_y.mean(axis=0))  # the training mean
    assert d.settings == {'input': 'real', 'task': 'regression', 'n_in': 3, 'n_out': 2,
                          'baseline': d.baseline}
    with open(path, 'rb') as f:
        assert d.fingerprint == {'data_sha256': hashlib.sha256(f.read()).hexdigest(),
                                 'data_bytes': os.path.getsize(path)}
    assert d.description in logged and d.description.startswith('data: %s' % path)
    assert isinstance(model_mod.for_run(cfg, d), model_mod.Regressor)


def test_adding_record(tmp_path):
    cfg, d, logged = load(tmp_path, dataset='adding', length=9, train_limit=50, test_limit=10)
    assert (d.kind, d.input, d.n_in, d.task, d.n_out, d.baseline) == ('adding', 'real', 2, 'regression', 1, 1.0)
    assert d.settings == {'length': 9, 'input': 'real', 'task': 'regression', 'n_in': 2, 'n_out': 1,
                          'baseline': 1.0}
    x, y = d.train[0]
    assert x.shape == (9, 2) and x.dtype == np.float32
    assert y[0] == pytest.approx((x[:, 0] * x[:, 1]).sum())  # the sum of the two marked values
    assert d.fingerprint == {} and logged == [d.description]


def test_from_config_is_the_record_without_data(tmp_path):
    """What a run's model needs of its data, from its config.json: as the loaded record."""
    for flags in ({'dataset': 'embedded', 'train_limit': 16, 'test_limit': 16},
                  {'dataset': 'adding', 'length': 4, 'train_limit': 16, 'test_limit': 16}):
        cfg, d, _ = load(tmp_path, **flags)
        cfg.update(d.settings)  # as train records it
        spec = sources.from_config(dict(cfg, source=d.source))
        assert spec.train is None and spec.test is None
        assert [getattr(spec, f) for f in FIELDS[:-1]] == [getattr(d, f) for f in FIELDS[:-1]]
    with pytest.raises(UsageError, match='lacks n_in, n_out'):
        sources.from_config({'dataset': 'adding', 'input': 'real', 'task': 'regression'})


def test_spec_drops_the_datasets_and_keeps_the_sizes(tmp_path):
    _, d, _ = load(tmp_path, dataset='embedded', train_limit=24, test_limit=8)
    spec = d.spec()
    assert spec.train is None and spec.test is None and d.train is not None
    assert [getattr(spec, f) for f in FIELDS] == [getattr(d, f) for f in FIELDS]
    assert spec.train_size == 24


def test_changed_data_is_one_line(tmp_path):
    _, d, _ = load(tmp_path, dataset='embedded', train_limit=24, test_limit=8)
    saved = {'data_sha256': '0' * 64, 'data_bytes': 1, 'source': 'somewhere'}
    with pytest.raises(UsageError) as info:
        sources.check_same(saved, d, allow=False)
    assert 'expected sha256 0000000000000000' in str(info.value) and '\n' not in str(info.value)
    sources.check_same(saved, d, allow=True)
    sources.check_same({'data_sha256': d.fingerprint['data_sha256']}, d, allow=False)


def test_validation_holds_out_the_last_training_images_and_leaves_the_test_set_unused(tmp_path):
    cfg, d, logged = load(tmp_path, dataset='embedded', validation=500, permute=True)
    splits = mnist.get_mnist('embedded', None, None, None, log=lambda *a: None)
    perm = np.load(os.path.join(str(tmp_path), 'permutation.npy'))
    n = len(splits.train_x)
    assert (len(d.train), len(d.test), d.train_size) == (n - 500, 500, n - 500)
    x, y = d.test[0]  # the first validation image is training image n - 500, permuted as the rest
    np.testing.assert_array_equal(x, splits.train_x[n - 500][perm])
    assert y == splits.train_y[n - 500]
    x, y = d.train[n - 501]
    np.testing.assert_array_equal(x, splits.train_x[n - 501][perm])
    assert not any(np.array_equal(d.test[i][0], splits.test_x[0][perm]) for i in range(len(d.test)))
    assert any('last 500 of the training images' in line for line in logged)


@pytest.mark.parametrize('flags, words', [
    (dict(dataset='embedded', validation=20000), 'expected fewer than the 20000 training images'),
    (dict(dataset='adding', validation=10), '--validation: holds out MNIST training images'),
])
def test_validation_refusals(tmp_path, flags, words):
    with pytest.raises(UsageError, match=words):
        load(tmp_path, **flags)
