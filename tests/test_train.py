"""Training runs end to end: exact resume (in process and after Ctrl-C), the run folder."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import irnn_chainer  # noqa: F401
from irnn_chainer import files
from irnn_chainer.run import train as train_mod
from irnn_chainer.commands import evaluate as evaluate_mod
from irnn_chainer.model import rnn as model_mod
from irnn_chainer.run import runfolder
from irnn_chainer import settings
from irnn_chainer.data import sources
from irnn_chainer.model import weights
from irnn_chainer.errors import UsageError


def model_for(cfg):
    """The run's model as train builds it, from its settings alone (pixel MNIST)."""
    return model_mod.for_run(cfg, sources.from_config(cfg))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Small but real: the embedded MNIST subset, 784 timesteps, a tiny hidden layer and a
# learning rate at which every update visibly moves the parameters.
SMALL = dict(dataset='embedded', train_limit=48, test_limit=32, batchsize=16, unit=8,
             lr=0.01, clip=1.0, seed=0)  # seed 0: with 3, RMSprop at 1e-3 blows up on these 48 images


def params_of(run_dir):
    with np.load(os.path.join(run_dir, runfolder.MODEL_FILE)) as f:
        return {k: f[k].copy() for k in f.files}


def quiet(*args):
    pass


def test_resume_continues_exactly(tmp_path):
    straight = str(tmp_path / 'straight')
    split = str(tmp_path / 'split')
    # 3 iterations per epoch: 8 iterations cross two reshuffles, 4 + 4 splits mid-epoch.
    train_mod.train(dict(SMALL, iteration=8), straight, progress=False, log=quiet)
    train_mod.train(dict(SMALL, iteration=4), split, progress=False, log=quiet)
    first_half = params_of(split)
    t = train_mod.train({'iteration': 8}, None, resume=split, progress=False, log=quiet)
    assert t.updater.iteration == 8
    # evaluated every epoch and at the last iteration, also across the resume
    assert [r['iteration'] for r in json.load(open(os.path.join(straight, 'log')))] == [3, 6, 8]
    assert [r['iteration'] for r in json.load(open(os.path.join(split, 'log')))] == [3, 4, 6, 8]
    a, b = params_of(straight), params_of(split)
    assert sorted(a) == sorted(b) == ['h_to_h/W', 'h_to_h/b', 'h_to_y/W', 'h_to_y/b', 'pixel_to_h/W']
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        assert not np.array_equal(a[k], first_half[k]), 'resume must have trained: ' + k


def test_run_folder_contents_and_log(tmp_path):
    out = str(tmp_path / 'run')
    train_mod.train(dict(SMALL, epoch=2), out, progress=False, log=quiet)
    files = set(os.listdir(out))
    for name in ('log', 'loss.png', 'accuracy.png', 'config.json', 'model.npz', 'snapshot_iter_6'):
        assert name in files, (name, files)
    log = json.load(open(os.path.join(out, 'log')))
    assert [r['epoch'] for r in log] == [1, 2] and [r['iteration'] for r in log] == [3, 6]
    for r in log:
        assert 0 <= r['validation/main/accuracy'] <= 1 and r['main/loss'] > 0
    cfg = json.load(open(os.path.join(out, 'config.json')))
    assert cfg['per_epoch'] == 3 and cfg['train_size'] == 48 and cfg['test_size'] == 32
    assert 'embedded' in cfg['source']
    # evaluate reproduces the last logged test loss/accuracy from the saved model
    r = evaluate_mod.evaluate(out, log=quiet)
    assert r['n'] == 32
    assert r['accuracy'] == pytest.approx(log[-1]['validation/main/accuracy'], abs=1e-9)
    assert r['loss'] == pytest.approx(log[-1]['validation/main/loss'], rel=1e-5)


def test_refuses_to_overwrite_and_to_change_resumed_settings(tmp_path):
    out = str(tmp_path / 'run')
    train_mod.train(dict(SMALL, iteration=1), out, progress=False, log=quiet)
    with pytest.raises(files.FileError, match='--resume'):
        train_mod.train(dict(SMALL, iteration=1), out, progress=False, log=quiet)
    with pytest.raises(UsageError, match='--unit 9 differs'):
        train_mod.train({'unit': 9, 'iteration': 2}, None, resume=out, progress=False, log=quiet)
    train_mod.train(dict(SMALL, iteration=1), out, force=True, progress=False, log=quiet)


def test_permutation_is_stored_and_reused(tmp_path):
    out = str(tmp_path / 'perm')
    train_mod.train(dict(SMALL, iteration=2, permute=True), out, progress=False, log=quiet)
    perm = np.load(os.path.join(out, runfolder.PERMUTATION_FILE))
    assert sorted(perm.tolist()) == list(range(784)) and not (perm == np.arange(784)).all()
    train_mod.train({'iteration': 3}, None, resume=out, progress=False, log=quiet)
    np.testing.assert_array_equal(np.load(os.path.join(out, runfolder.PERMUTATION_FILE)), perm)


def test_ctrl_c_saves_a_snapshot_and_resume_continues(tmp_path):
    out = str(tmp_path / 'int')
    cmd = [sys.executable, '-m', 'irnn_chainer', 'train', '--dataset', 'embedded', '--train-limit', '160',
           '--test-limit', '16', '--unit', '8', '--lr', '0.01', '--iteration', '100000',
           '--out', out, '--no-progress']
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    lines = []
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith('training:') or not line:
            break
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    text = ''.join(lines) + rest
    assert proc.returncode == 130, text  # 128 + SIGINT, after saving: `train && evaluate` stops
    assert 'interrupted at epoch' in text and 'Traceback' not in text, text
    snaps = [f for f in os.listdir(out) if f.startswith(runfolder.SNAPSHOT_PREFIX)]
    n = max(int(f[len(runfolder.SNAPSHOT_PREFIX):]) for f in snaps)
    assert n >= 1
    t = train_mod.train({'iteration': n + 2}, None, resume=out, progress=False, log=quiet)
    assert t.updater.iteration == n + 2


def test_fused_and_stepwise_train_the_same_50_iterations():
    """The same seed, data and optimizer: per-iteration losses and final parameters agree."""
    import chainer
    import chainer.links as L
    from irnn_chainer.data import mnist as data
    from irnn_chainer.compat import api
    from irnn_chainer.model import IRNN
    splits = data.get_mnist('embedded', train_limit=800, log=quiet)
    losses, finals = {}, {}
    for impl in ('stepwise', 'fused'):
        np.random.seed(11)
        model = L.Classifier(IRNN(n_units=20, impl=impl))
        opt = api.setup_optimizer(chainer.optimizers.SGD(lr=1e-3), model, 1.0)
        it = train_mod.ShuffledIterator(chainer.datasets.TupleDataset(splits.train_x, splits.train_y), 16, seed=5)
        losses[impl] = []
        for _ in range(50):
            x, t = train_mod.convert(it.next())
            opt.update(model, x, t)
            losses[impl].append(float(model.loss.array))
        finals[impl] = {n: p.array.copy() for n, p in model.namedparams()}
    np.testing.assert_allclose(losses['fused'], losses['stepwise'], rtol=1e-4)
    assert losses['stepwise'][0] != losses['stepwise'][-1]
    for name in finals['stepwise']:
        np.testing.assert_allclose(finals['fused'][name], finals['stepwise'][name], rtol=1e-3, atol=1e-6,
                                   err_msg=name)


def test_skip_nonfinite_zeroes_a_poisoned_update_and_reports_it():
    import chainer
    import chainer.links as L
    from irnn_chainer.compat import api
    from irnn_chainer.model import IRNN
    np.random.seed(0)
    model = L.Classifier(IRNN(n_units=4))
    opt = api.setup_optimizer(chainer.optimizers.RMSprop(lr=1e-2), model)
    opt.add_hook(train_mod.SkipNonFinite())
    opt.add_hook(api.gradient_clipping(1.0))
    x = np.random.randint(0, 256, (3, 5)).astype(np.int32)
    t = np.array([1, 2, 3], np.int32)
    before = {n: p.array.copy() for n, p in model.namedparams()}
    observation = {}
    reporter = chainer.Reporter()
    reporter.add_observer('main', model)  # Classifier reports its loss through it
    with reporter.scope(observation):
        model.cleargrads()
        model(x, t).backward()
        model.predictor.h_to_h.W.grad[0, 0] = np.inf  # what an exploding batch produces
        opt.update()
    assert observation['skipped'] == 1.0
    for n, p in model.namedparams():
        np.testing.assert_array_equal(p.array, before[n], err_msg=n)
    with reporter.scope(observation):  # a finite gradient still updates
        opt.update(model, x, t)
    assert observation['skipped'] == 0.0
    assert not np.array_equal(model.predictor.h_to_h.W.array, before['/predictor/h_to_h/W'])
    # without the hook, clipping turns the same gradient into NaN parameters
    np.random.seed(0)
    plain = L.Classifier(IRNN(n_units=4))
    opt = api.setup_optimizer(chainer.optimizers.RMSprop(lr=1e-2), plain, 1.0)
    plain.compute_accuracy = False
    reporter.add_observer('plain', plain)
    with reporter.scope({}):
        plain.cleargrads()
        plain(x, t).backward()
    plain.predictor.h_to_h.W.grad[0, 0] = np.inf
    opt.update()
    assert np.isnan(plain.predictor.h_to_h.W.array).any()


def test_lr_decay_multiplies_the_rate_every_n_epochs(tmp_path):
    out = str(tmp_path / 'decay')
    t = train_mod.train(dict(SMALL, optimizer='rmsprop', lr=1e-3, lr_decay=0.5, lr_decay_every=2, epoch=5),
                        out, progress=False, log=quiet)
    # 3 iterations per epoch; halved after epochs 2 and 4
    assert t.updater.get_optimizer('main').lr == pytest.approx(1e-3 * 0.25)
    log = json.load(open(os.path.join(out, 'log')))
    # the log shows the rate each epoch trained with
    assert [r['lr'] for r in log] == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])


def test_init_from_starts_a_new_run_at_another_runs_weights(tmp_path):
    a = str(tmp_path / 'a')
    train_mod.train(dict(SMALL, permute=True, iteration=4), a, progress=False, log=quiet)
    # from the folder (its model.npz) and from a snapshot: the same weights as run a ended with
    ended = np.load(os.path.join(a, 'model.npz'))
    for source in (a, os.path.join(a, 'snapshot_iter_4')):
        model = model_for(settings.resolve_config(dict(SMALL)))
        weights.init_weights(model, source, log=quiet)
        for name, p in model.predictor.namedparams():
            np.testing.assert_array_equal(p.array, ended[name.lstrip('/')], err_msg=name)
    # a run started from it keeps a's pixel permutation and its own settings and optimizer
    b = str(tmp_path / 'b')
    lines = []
    # (another seed: its own permutation would differ; the weights need a's)
    t = train_mod.train(dict(SMALL, permute=True, iteration=1, init_from=a, optimizer='rmsprop', lr=1e-4,
                             seed=4),
                        b, progress=False, log=lines.append)
    assert any(l.startswith('initial weights from') for l in lines)
    np.testing.assert_array_equal(np.load(os.path.join(a, 'permutation.npy')),
                                  np.load(os.path.join(b, 'permutation.npy')))
    assert t.updater.iteration == 1 and json.load(open(os.path.join(b, 'config.json')))['init_from'] == a
    # weights that do not fit, and a missing source: one-line usage errors
    with pytest.raises(files.FileError, match='do not fit this model'):
        train_mod.train(dict(SMALL, unit=5, iteration=1, init_from=a), str(tmp_path / 'c'),
                        progress=False, log=quiet)
    with pytest.raises(UsageError, match='not found'):
        train_mod.train(dict(SMALL, iteration=1, init_from=str(tmp_path / 'nope.npz')),
                        str(tmp_path / 'd'), progress=False, log=quiet)


@pytest.mark.parametrize('validation, held_out', [(None, 'test'), (16, 'validation')])
def test_table_and_plots_name_the_held_out_set_and_the_log_keeps_its_keys(tmp_path, validation, held_out):
    import io
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    out, table = str(tmp_path / 'run'), io.StringIO()
    train_mod.train(dict(SMALL, iteration=6, log_interval=3, ema=0.9, validation=validation, on_divergence='ignore'), out,
                    progress=False, log=quiet, table_out=table)
    lines = table.getvalue().splitlines()
    assert lines[0].split()[:2] == ['epoch', 'iteration']
    for words in ('train loss', 'train accuracy', '%s loss' % held_out, '%s accuracy' % held_out,
                  '%s accuracy, averaged weights' % held_out):
        assert words in lines[0], (words, lines[0])
    assert 'validation/main' not in lines[0] and '\x1b' not in table.getvalue()  # no terminal codes
    # one row per evaluation (iterations 3 and 6), the figures those of the log, whose keys are Chainer's
    log = json.load(open(os.path.join(out, 'log')))
    assert [r['iteration'] for r in log] == [3, 6] and len(lines) == 3
    for row, record in zip(lines[1:], log):
        cells = row.split()
        assert int(cells[1]) == record['iteration']
        assert float(cells[5]) == pytest.approx(record['validation/main/accuracy'], rel=1e-5)
        assert float(cells[6]) == pytest.approx(record['ema/main/accuracy'], rel=1e-5)
    # the plots' legend: what PlotReport draws (one line per key), relabelled
    fig, ax = plt.subplots()
    for key in ('main/accuracy', 'validation/main/accuracy', 'ema/main/accuracy'):
        ax.plot([0, 1], [0, 1], label=key)
    train_mod._relabel(train_mod.column_labels({'validation': validation}), 'accuracy')(fig, ax, {})
    assert [l.get_label() for l in ax.get_lines()] == [
        'train accuracy', '%s accuracy' % held_out, '%s accuracy, averaged weights' % held_out]
    assert ax.get_ylabel() == 'accuracy'
    plt.close(fig)
