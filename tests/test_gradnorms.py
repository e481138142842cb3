"""tools/gradnorms.py against hand computations: the output bias's gradient is the batch mean
of softmax - one-hot, and an upper-triangular recurrent matrix's eigenvalues are its diagonal."""
import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np

import irnn_chainer  # noqa: F401  (compat shims first)
import chainer
from irnn_chainer.run import runfolder
from irnn_chainer.run import train as train_mod
from irnn_chainer.model.weights import load_run_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, 'tools', 'gradnorms.py')
spec = importlib.util.spec_from_file_location('gradnorms', TOOL)
gradnorms = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gradnorms)

SMALL = dict(dataset='embedded', train_limit=48, test_limit=16, batchsize=16, unit=8, epoch=1,
             optimizer='rmsprop', lr=1e-5, clip=1.0, seed=2)


def quiet(*args):
    pass


def trained(tmp_path):
    out = str(tmp_path / 'run')
    train_mod.train(dict(SMALL), out, progress=False, log=quiet)
    return out


def test_norms_match_the_output_bias_gradient_by_hand(tmp_path):
    run = trained(tmp_path)
    got = gradnorms.measure(run, batches=3, seed=5, log=quiet)
    # the same batches, drawn as the tool draws them
    cfg, model, _ = load_run_model(run)
    from irnn_chainer.data import sources
    data = sources.load(cfg, run, log=quiet)
    rng = np.random.RandomState(5)
    for k in range(3):
        x, t = train_mod.convert([data.train[int(i)] for i in rng.choice(len(data.train), 16, replace=False)])
        with chainer.using_config('train', True), chainer.no_backprop_mode():
            y = np.asarray(model.predictor(x).array, np.float64)
        p = np.exp(y - y.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(16), t] -= 1
        by_hand = np.linalg.norm(p.mean(0))
        np.testing.assert_allclose(got['params']['/predictor/h_to_y/b'][k], by_hand, rtol=1e-4)
    # the global norm is over every parameter, so no smaller than any one of them
    for name, norms in got['params'].items():
        assert np.all(got['norms'] >= np.array(norms) * (1 - 1e-9)), name
    total = np.sqrt(sum(np.square(n) for n in got['params'].values()))
    np.testing.assert_allclose(got['norms'], total, rtol=1e-12)
    assert got['clip'] == 1.0


def with_recurrent_matrix(run, w):
    for s in runfolder.snapshots(run):  # so that model.npz, edited here, is the newest weights
        os.remove(s)
    path = os.path.join(run, runfolder.MODEL_FILE)
    with np.load(path) as f:
        arrays = {k: f[k].copy() for k in f.files}
    arrays['h_to_h/W'] = w.astype(np.float32)
    np.savez(path, **arrays)


def test_spectral_radius_of_a_known_recurrent_matrix(tmp_path):
    run = trained(tmp_path)
    diag = np.linspace(0.3, 0.95, 8).astype(np.float32)
    w = np.triu(np.full((8, 8), 0.3, np.float32), 1) + np.diag(diag)  # eigenvalues: the diagonal
    with_recurrent_matrix(run, w)
    got = gradnorms.measure(run, batches=2, log=quiet)
    radius, mean = got['recurrent']['/predictor/h_to_h/W']
    np.testing.assert_allclose(radius, 0.95, rtol=1e-5)
    np.testing.assert_allclose(mean, diag.mean(), rtol=1e-6)
    assert radius < np.linalg.norm(w, 2)  # non-normal: the radius is not the largest singular value
    assert got['nonfinite'] == 0 and np.isfinite(got['norms']).all()


def test_an_overflowing_recurrence_is_counted_not_averaged(tmp_path):
    run = trained(tmp_path)
    with_recurrent_matrix(run, 1.25 * np.eye(8))  # 1.25 ** 784 is past float32's range
    lines = []
    got = gradnorms.measure(run, batches=2, log=lines.append)
    assert got['nonfinite'] == 2
    assert '2 of 2 batches have a non-finite gradient' in lines[1]
    assert not any('nan' in line for line in lines), lines
    np.testing.assert_allclose(got['recurrent']['/predictor/h_to_h/W'], (1.25, 1.25), rtol=1e-6)


def test_bad_input_is_one_line(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    r = subprocess.run([sys.executable, TOOL, str(empty)], capture_output=True, text=True)
    assert r.returncode != 0
    assert r.stderr.count('\n') == 1 and 'gradnorms.py: error:' in r.stderr, r.stderr
    r = subprocess.run([sys.executable, TOOL, str(empty), '--batches', '0'], capture_output=True, text=True)
    assert r.returncode == 2 and 'expected a positive integer, got 0' in r.stderr
    assert 'Traceback' not in r.stderr
    shutil.rmtree(empty)
