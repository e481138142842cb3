"""Runs made before the RNN classes became one still evaluate, resume and load, and the same
command today trains the same model under the same parameter names.

The fixtures (tests/fixtures/runs-before-one-rnn-class, README there) were written by the code of
commit c874615: the gist's pixel IRNN (``pixel_to_h``, ``h_to_h``, ``h_to_y``; permuted,
RMSprop), a two-layer rnn-tanh on pixels and the adding problem (both ``x_to_h1``,
``h1_to_h1``, ...; the adding problem a regression).

The two pixel runs were trained on the embedded MNIST subset of that time (5000 training-set
images, since replaced). ``embedded-before.npz`` there holds the 32 training and 16 test
images they used, as that subset gave them, with their rows in MNIST's training set; the
tests here give those runs their own data again (:func:`their_subset`).
"""
import glob
import json
import os
import shutil

import numpy as np
import pytest

import irnn_chainer  # noqa: F401  (compat shims first)
from irnn_chainer import files
from irnn_chainer.commands import cli
from irnn_chainer.commands import evaluate as evaluate_mod
from irnn_chainer.model import rnn as model_mod
from irnn_chainer.run import runfolder
from irnn_chainer import settings
from irnn_chainer.data import mnist, sources, subset
from irnn_chainer.run import train as train_mod
from irnn_chainer.model.weights import load_run_model
from irnn_chainer.errors import UsageError

import realmnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, 'tests', 'fixtures', 'runs-before-one-rnn-class')
# the command each fixture was made with (its README); `fast --permute` then meant RMSprop
# 3e-5 held constant, no h_0 noise, which today's flags have to say (the preset changed since)
COMMANDS = {
    'pixel-irnn-permuted': '--dataset embedded --train-limit 32 --test-limit 16 --unit 8 -b 16 --epoch 1 '
                           '--preset fast --permute --lr 3e-5 --lr-schedule constant --lr-min 0 '
                           '--h0-noise 0 --identity-decay 0 --ema 0',  # fast's additions since, off
    'pixel-rnn-tanh-layers': '--dataset embedded --train-limit 32 --test-limit 16 --layers 6,4 -b 16 '
                             '--epoch 1 --model rnn-tanh --optimizer adam --lr 1e-3',
    'adding': '--dataset adding --length 6 --train-limit 64 --test-limit 16 --unit 5 -b 16 --epoch 1 '
              '--optimizer adam --lr 1e-3',
}
NAMES = {
    'pixel-irnn-permuted': ['h_to_h/W', 'h_to_h/b', 'h_to_y/W', 'h_to_y/b', 'pixel_to_h/W'],
    'pixel-rnn-tanh-layers': ['h1_to_h1/W', 'h1_to_h1/b', 'h1_to_h2/W', 'h2_to_h2/W', 'h2_to_h2/b',
                              'h_to_y/W', 'h_to_y/b', 'x_to_h1/W'],
    'adding': ['h1_to_h1/W', 'h1_to_h1/b', 'h_to_y/W', 'h_to_y/b', 'x_to_h1/W'],
}


def quiet(*args):
    pass


OLD_SOURCE = 'embedded 5000-image MNIST subset (package data)'


def _old_subset():
    with np.load(os.path.join(FIXTURES, 'embedded-before.npz'), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(autouse=True)
def their_subset(monkeypatch):
    """The embedded subset as these runs knew it: its first 32 training and 16 test images."""
    old = _old_subset()
    monkeypatch.setattr(subset, 'load', lambda: (
        old['train_x'], old['train_y'].astype(np.int32), old['test_x'], old['test_y'].astype(np.int32)))
    monkeypatch.setattr(subset, 'SOURCE', OLD_SOURCE)


def test_the_old_subsets_images_are_the_runs_data():
    """The fixture's images are the data the runs recorded (config.json's sha256 of the arrays
    they trained and tested on; the permuted run's after its permutation)."""
    old = _old_subset()
    arrays = [old['train_x'], old['train_y'].astype(np.int32), old['test_x'], old['test_y'].astype(np.int32)]
    perm = np.load(os.path.join(FIXTURES, 'pixel-irnn-permuted', 'permutation.npy'))
    for name, xs in (('pixel-rnn-tanh-layers', arrays),
                     ('pixel-irnn-permuted', [arrays[0][:, perm], arrays[1], arrays[2][:, perm], arrays[3]])):
        cfg = json.load(open(os.path.join(FIXTURES, name, 'config.json')))
        assert cfg['source'] == OLD_SOURCE and (cfg['train_limit'], cfg['test_limit']) == (32, 16)
        assert files.sha256_arrays(*xs) == cfg['data_sha256']


def test_the_old_subsets_images_are_mnist_training_images():
    """... and real MNIST: the rows of MNIST's training set that the fixture names."""
    train_x, train_y, _, _ = mnist.load_idx_dir(realmnist.folder())
    old = _old_subset()
    for split in ('train', 'test'):  # the old subset split MNIST training images both ways
        idx = old[split + '_index']
        assert np.array_equal(old[split + '_x'], train_x[idx]) and np.array_equal(old[split + '_y'], train_y[idx])


def npz(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(params=sorted(COMMANDS))
def old_run(request, tmp_path):
    run = str(tmp_path / request.param)
    shutil.copytree(os.path.join(FIXTURES, request.param), run)
    return request.param, run


def test_the_fixtures_have_the_names_they_were_saved_with():
    for name, names in NAMES.items():
        assert sorted(npz(os.path.join(FIXTURES, name, 'model.npz'))) == names
        snap = npz(glob.glob(os.path.join(FIXTURES, name, 'snapshot_iter_*'))[0])
        assert sorted(k[len('updater/model:main/predictor/'):] for k in snap
                      if k.startswith('updater/model:main/predictor/')) == names


def test_an_old_run_evaluates_to_its_logged_test_loss(old_run):
    name, run = old_run
    last = json.load(open(os.path.join(run, 'log')))[-1]
    r = evaluate_mod.evaluate(run, log=quiet)
    assert r['loss'] == pytest.approx(last['validation/main/loss'], rel=1e-5)
    assert os.path.basename(r['model']) == 'snapshot_iter_%d' % last['iteration']
    if name == 'adding':  # the regression's constant-prediction baseline, as logged
        assert r['baseline'] == pytest.approx(last['validation/main/baseline'], rel=1e-6)
    else:
        assert r['accuracy'] == pytest.approx(last['validation/main/accuracy'])


def test_load_run_model_gives_the_old_runs_newest_weights(old_run):
    name, run = old_run
    cfg, model, path = load_run_model(run)
    assert cfg['run_id'] == json.load(open(os.path.join(run, 'config.json')))['run_id']
    assert path == runfolder.snapshots(run)[0]
    saved = npz(path)
    got = {k.lstrip('/'): p.array for k, p in model.predictor.namedparams()}
    assert sorted(got) == NAMES[name]
    for k, v in got.items():
        np.testing.assert_array_equal(v, saved['updater/model:main/predictor/' + k])
    assert isinstance(model, model_mod.Regressor) == (name == 'adding')


def test_an_old_run_resumes_and_keeps_its_names(old_run):
    name, run = old_run
    before = sorted(npz(runfolder.snapshots(run)[0]))
    trainer = train_mod.train({'epoch': 2}, None, resume=run, progress=False, log=quiet)
    assert trainer.updater.epoch == 2
    newest = runfolder.snapshots(run)[0]
    assert runfolder.snapshot_number(os.path.basename(newest)) == trainer.updater.iteration
    after = sorted(npz(newest))
    # every path of the old snapshot is still written (the model's, the optimizer's state, the
    # iterator's...); what is new is the state of extensions added since (the schedule's
    # and divergence guard), never the model's
    assert set(before) <= set(after), sorted(set(before) - set(after))
    model_paths = [k for k in after if k.startswith('updater/model:main/')]
    assert model_paths == [k for k in before if k.startswith('updater/model:main/')]
    assert sorted(npz(os.path.join(run, 'model.npz'))) == NAMES[name]
    if name == 'pixel-irnn-permuted':  # the stored permutation was used, not a new one
        np.testing.assert_array_equal(np.load(os.path.join(run, 'permutation.npy')),
                                      np.load(os.path.join(FIXTURES, name, 'permutation.npy')))


def test_the_same_command_today_trains_the_same_model(tmp_path, capsys):
    for name, command in sorted(COMMANDS.items()):
        out = str(tmp_path / name)
        assert cli.main(['train'] + command.split() + ['--no-progress', '-o', out]) == 0
        old, new = npz(os.path.join(FIXTURES, name, 'model.npz')), npz(os.path.join(out, 'model.npz'))
        assert sorted(new) == sorted(old) == NAMES[name]
        for k in old:
            np.testing.assert_allclose(new[k], old[k], rtol=1e-5, atol=1e-7, err_msg='%s %s' % (name, k))
        old_cfg = json.load(open(os.path.join(FIXTURES, name, 'config.json')))
        new_cfg = json.load(open(os.path.join(out, 'config.json')))
        skip = {'run_id', 'versions'}
        assert {k: v for k, v in new_cfg.items() if k in old_cfg and k not in skip} == \
            {k: v for k, v in old_cfg.items() if k not in skip}
        # what is new: settings added since, at their defaults
        # (a schedule spelled 'constant' is the default's, None: no schedule)
        added = {k: new_cfg[k] for k in set(new_cfg) - set(old_cfg)}
        if added.get('lr_schedule') == 'constant':
            added['lr_schedule'] = None
        assert added == {k: settings.DEFAULTS[k] for k in set(new_cfg) - set(old_cfg)}


@pytest.mark.parametrize('config', sorted(glob.glob(os.path.join(ROOT, 'results', '**', 'config.json'),
                                                    recursive=True)))
def test_every_run_in_results_resolves_and_builds_its_model(config):
    """The runs in results/ (their weights are not in the repository): config.json is read,
    resolves as on --resume, and the model built for it has the parameter names that its
    snapshots carry (the gist's for the single-layer pixel models)."""
    saved = runfolder.read_config(os.path.dirname(config))
    cfg = settings.resolve_config({}, saved)
    assert all(cfg[k] == saved[k] for k in settings.DEFAULTS if k in saved)
    model = model_mod.for_run(cfg, sources.from_config(saved))
    names = sorted(k.lstrip('/') for k, _ in model.predictor.namedparams())
    if saved['model'] == 'lstm':
        assert names[0] == 'h_to_y/W' and 'lstm/upward/W' in names and 'pixel_to_h/W' in names
    else:
        assert names == ['h_to_h/W', 'h_to_h/b', 'h_to_y/W', 'h_to_y/b', 'pixel_to_h/W']
    assert model.predictor.h_to_y.W.shape == (10, saved['unit'])


def test_the_committed_blog_run_loads_with_its_newest_weights():
    """results/blog/blog-own-irnn-pixel carries its last snapshot (made by the code before this
    change): load_run_model gives the gist's model with exactly those weights."""
    run = os.path.join(ROOT, 'results', 'blog', 'blog-own-irnn-pixel')
    snaps = runfolder.snapshots(run)
    if not snaps:
        pytest.skip('no snapshot in %s' % run)
    cfg, model, path = load_run_model(run)
    assert path == snaps[0] and cfg['preset'] == 'blog'
    saved = npz(path)
    got = {k.lstrip('/'): p.array for k, p in model.predictor.namedparams()}
    assert sorted(got) == NAMES['pixel-irnn-permuted']  # the gist's names
    for k, v in got.items():
        np.testing.assert_array_equal(v, saved['updater/model:main/predictor/' + k])


def _finished_runs():
    """results/GROUP/ runs that reached their planned epochs, with their model.npz (the weights of
    the last logged evaluation); the plain and identity RNNs (the LSTM's evaluation is slow)."""
    found = []
    for config in sorted(glob.glob(os.path.join(ROOT, 'results', '*', '*', 'config.json'))):
        run = os.path.dirname(config)
        saved = json.load(open(config))
        log = os.path.join(run, 'log')
        if saved.get('model') == 'lstm' or not os.path.exists(os.path.join(run, 'model.npz')) \
                or runfolder.snapshots(run) or not os.path.exists(log):
            continue
        last = json.load(open(log))[-1]
        if saved.get('epoch') and last['epoch'] == saved['epoch'] and not saved.get('train_limit'):
            found.append(os.path.relpath(run, os.path.join(ROOT, 'results')))
    return found


@pytest.mark.parametrize('name', _finished_runs())
def test_a_finished_run_in_results_evaluates_to_its_last_logged_accuracy(name):
    """The committed weights of a finished run are the ones its log speaks of: evaluated on
    the real MNIST test set, they give the log's last test accuracy and loss."""
    data_dir = realmnist.folder()
    run = os.path.join(ROOT, 'results', *name.split('/'))
    last = json.load(open(os.path.join(run, 'log')))[-1]
    r = evaluate_mod.evaluate(run, data_dir=data_dir, log=quiet)
    assert os.path.basename(r['model']) == 'model.npz'
    assert r['accuracy'] == pytest.approx(last['validation/main/accuracy'], abs=1.5e-4)  # 1 image
    assert r['loss'] == pytest.approx(last['validation/main/loss'], rel=1e-4)


# ---- a run made before the layout by role and the one table of settings -------------------

BEFORE_LAYOUT = os.path.join(ROOT, 'tests', 'fixtures', 'runs-before-layout', 'adding-cosine-pull-ema')
BEFORE_LAYOUT_CMD = ('--dataset adding --length 6 --train-limit 64 --test-limit 16 --unit 5 -b 16 --log-interval 2 '
                     '--optimizer rmsprop --lr 1e-3 --lr-schedule cosine --identity-decay 1 --ema 0.99 '
                     '--skip-nonfinite --dropout 0.1 --no-progress')


def _same_run(a, b, what):
    """Arrays of the same run: equal, floats within float32 rounding (the kernels' order of
    summation may change between versions: the backward's dW moved into its reverse loop)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, what
    if a.dtype.kind == 'f':
        scale = float(np.abs(b).max()) if b.size else 1.0
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6 * (scale or 1.0), err_msg=what)
    else:
        np.testing.assert_array_equal(a, b, err_msg=what)


def _same_log(la, lb):
    assert [sorted(r) for r in la] == [sorted(r) for r in lb]
    for ra, rb in zip(la, lb):
        for k in ra:
            if k == 'elapsed_time':
                continue
            if isinstance(ra[k], float):
                assert ra[k] == pytest.approx(rb[k], rel=2e-5, abs=1e-12), k
            else:
                assert ra[k] == rb[k], k


def test_a_snapshot_from_before_the_layout_resumes_to_the_same_weights_as_todays_run(tmp_path):
    old = str(tmp_path / 'old')
    shutil.copytree(BEFORE_LAYOUT, old)
    new = str(tmp_path / 'new')  # the same run today: 3 updates (the cosine planned over 3), resumed to 6
    assert cli.main(['train'] + BEFORE_LAYOUT_CMD.split() + ['--iteration', '3', '-o', new]) == 0
    snap_old, snap_new = (npz(os.path.join(d, 'snapshot_iter_3')) for d in (old, new))
    assert sorted(snap_old) == sorted(snap_new)  # the same extensions under the same names
    for k in snap_old:  # every array the same, times aside
        if 'elapsed_time' not in k and k != 'extensions/LogReport/_log':
            _same_run(snap_old[k], snap_new[k], k)
    _same_log(json.loads(str(snap_old['extensions/LogReport/_log'])),
              json.loads(str(snap_new['extensions/LogReport/_log'])))
    for run in (old, new):
        assert cli.main(['train', '--resume', run, '--iteration', '6', '--no-progress']) == 0
    for name in (runfolder.MODEL_FILE, runfolder.EMA_MODEL_FILE):
        a, b = npz(os.path.join(old, name)), npz(os.path.join(new, name))
        assert sorted(a) == sorted(b)
        for k in a:
            _same_run(a[k], b[k], '%s %s' % (name, k))
    log_old, log_new = (json.load(open(os.path.join(d, 'log'))) for d in (old, new))
    assert [r['iteration'] for r in log_old] == [r['iteration'] for r in log_new] == [2, 3, 4, 6]
    _same_log(log_old, log_new)
    assert log_old[-1]['lr'] == log_new[-1]['lr']


def test_an_old_run_of_the_replaced_subset_is_refused_on_todays_subset(monkeypatch, tmp_path):
    """Without its own data (the real embedded subset of today), such a run does not resume
    on other images silently: one line says the data differ and how to go on."""
    monkeypatch.undo()
    run = str(tmp_path / 'run')
    shutil.copytree(os.path.join(FIXTURES, 'pixel-rnn-tanh-layers'), run)
    with pytest.raises(UsageError) as e:
        train_mod.train({'epoch': 2}, None, resume=run, progress=False, log=quiet)
    msg = str(e.value)
    assert "the data differ from the run's: expected sha256 2e59d27e64bb931a" in msg and OLD_SOURCE in msg
    assert '--allow-changed-data' in msg and '\n' not in msg
