"""Data-parallel training with ChainerMN under a real mpiexec (Open MPI): 2 processes at
batch 8 against one process at batch 16 on the union of their batches (computed here
without MPI), exact resume, rank 0 alone writing. IRNN_REQUIRE_MPI=1 (set by .ci/run)
turns a missing MPI from a skip into a failure."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import irnn_chainer  # noqa: F401  (compat shims first)
import chainer

from irnn_chainer.run import optimizers
from irnn_chainer.run import train as train_mod
from irnn_chainer.model import rnn as model_mod
from irnn_chainer.run import runfolder
from irnn_chainer import settings
from irnn_chainer.data import sources
from irnn_chainer.commands.cli import main
from irnn_chainer.compat import api


def model_for(cfg):
    """The run's model as train builds it, from its settings alone (pixel MNIST)."""
    return model_mod.for_run(cfg, sources.from_config(cfg))


def _mpi_missing():
    if shutil.which('mpiexec') is None:
        return 'mpiexec not found (Debian: apt-get install openmpi-bin libopenmpi-dev)'
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return 'mpi4py not installed (pip install mpi4py)'
    return None


MISSING = _mpi_missing()
if MISSING and os.environ.get('IRNN_REQUIRE_MPI') == '1':
    raise RuntimeError(MISSING + ' and IRNN_REQUIRE_MPI=1')
needs_mpi = pytest.mark.skipif(MISSING is not None, reason=MISSING or '')

# lr 1e-4: at 1e-3 RMSprop's first steps push this 8-unit identity recurrence past 1 and the
# loss of a single update reaches ~300, which the divergence guard (rightly) stops on.
FLAGS = dict(dataset='embedded', train_limit=64, test_limit=50, unit=8, batchsize=8,
             optimizer='rmsprop', lr=1e-4, clip=1.0, dtype='float64', seed=3)


def flags(**kw):
    out = []
    for k, v in dict(FLAGS, **kw).items():
        out += ['--' + k.replace('_', '-'), str(v)]
    return out


def mpiexec(n, *args):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT='1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM='1',
               OMPI_MCA_rmaps_base_oversubscribe='1')
    cmd = ['mpiexec', '-n', str(n), sys.executable, '-m', 'irnn_chainer'] + list(args)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout
    return r.stdout


def params_of(run_dir):
    cfg = runfolder.read_config(run_dir)
    model = model_for(cfg)
    api.load_npz(os.path.join(run_dir, 'model.npz'), model.predictor)
    return {name: p.array.copy() for name, p in model.predictor.namedparams()}


def single_process_on_the_union(tmp_path, iterations, pull=0.0, ema=0.0):
    """One process, batch 16: at each step the union of what rank 0 and rank 1 draw
    (each rank: its contiguous half, shuffled by the run's seed), the same optimizer and
    clipping; no MPI, no all-reduce. ``pull``, ``ema``: --identity-decay and --ema written
    out here by hand (then returns the parameters and their average)."""
    cfg = settings.resolve_config(dict(FLAGS))
    train = sources.load(cfg, str(tmp_path), log=lambda *a: None).train
    half = len(train) // 2
    iters = [train_mod.ShuffledIterator(chainer.datasets.SubDataset(train, r * half, (r + 1) * half),
                                        cfg['batchsize'], seed=cfg['seed']) for r in range(2)]
    model = model_for(cfg)
    start = {name: p.array.copy() for name, p in model.predictor.namedparams()}
    averages = []
    opt = api.setup_optimizer(optimizers.make(cfg), model)
    opt.add_hook(api.gradient_clipping(cfg['clip']))
    for _ in range(iterations):
        batch = iters[0].next() + iters[1].next()
        assert len(batch) == 16
        x, t = train_mod.convert(batch)
        opt.update(model, x, t)
        if pull:
            W = model.predictor.h_to_h.W.array
            W[...] = W - opt.lr * pull * (W - np.eye(len(W)))
        if ema:
            n = len(averages) + 1
            d = min(ema, (1.0 + n) / (10.0 + n))
            prev = averages[-1] if averages else start
            averages.append({k: d * prev[k] + (1 - d) * p.array for k, p in model.predictor.namedparams()})
    params = {name: p.array.copy() for name, p in model.predictor.namedparams()}
    return (params, averages[-1]) if ema else params


@needs_mpi
def test_two_processes_at_batch_8_equal_one_at_batch_16(tmp_path):
    out = str(tmp_path / 'mpi')
    text = mpiexec(2, 'train', '--communicator', 'naive', '--iteration', '6', '--no-progress',
                   '--out', out, *flags())
    assert text.count('training: ') == 1                      # rank 0 alone prints
    assert 'batch 8 per process x 2 processes = 16' in text
    got = params_of(out)
    want = single_process_on_the_union(tmp_path, 6)
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-10, atol=1e-14, err_msg=name)
    # and the updates did move the parameters (a no-op would also "agree")
    start = model_for(settings.resolve_config(dict(FLAGS)))
    moved = [name for name, p in start.predictor.namedparams() if not np.allclose(p.array, want[name])]
    assert len(moved) >= 3, moved
    cfg = json.load(open(os.path.join(out, 'config.json')))
    assert cfg['workers'] == 2 and cfg['communicator'] == 'naive' and cfg['train_size'] == 64
    # rank 0 wrote each file once; nothing else appeared beside the run folder
    assert sorted(os.listdir(tmp_path)) == ['mpi']
    assert sorted(f for f in os.listdir(out) if f.startswith('snapshot_iter_')) == \
        ['snapshot_iter_4', 'snapshot_iter_6']


@needs_mpi
def test_identity_decay_and_ema_under_mpiexec_equal_one_process_by_hand(tmp_path):
    """Each rank pulls its (identical) weights and keeps its own average: rank 0's files
    equal one process at batch 16 with the pull and the average written out by hand."""
    out = str(tmp_path / 'mpi')
    mpiexec(2, 'train', '--communicator', 'naive', '--iteration', '6', '--no-progress', '--out', out,
            '--identity-decay', '5', '--ema', '0.5', *flags())
    want, want_avg = single_process_on_the_union(tmp_path, 6, pull=5.0, ema=0.5)
    got = params_of(out)
    cfg = runfolder.read_config(out)
    avg_model = model_for(cfg)
    api.load_npz(os.path.join(out, 'model_ema.npz'), avg_model.predictor)
    got_avg = {name: p.array for name, p in avg_model.predictor.namedparams()}
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-10, atol=1e-14, err_msg=name)
        np.testing.assert_allclose(got_avg[name], want_avg[name], rtol=1e-10, atol=1e-14, err_msg=name)
    assert not np.allclose(got_avg['/h_to_y/W'], got['/h_to_y/W'])  # the average is not the last weights
    log = json.load(open(os.path.join(out, 'log')))
    assert 'ema/main/accuracy' in log[-1]


@needs_mpi
def test_resume_under_mpiexec_is_exact(tmp_path):
    straight, split = str(tmp_path / 'straight'), str(tmp_path / 'split')
    mpiexec(2, 'train', '--communicator', 'naive', '--iteration', '7', '--no-progress', '--out', straight,
            *flags())
    mpiexec(2, 'train', '--communicator', 'naive', '--iteration', '3', '--no-progress', '--out', split,
            *flags())
    text = mpiexec(2, 'train', '--resume', split, '--communicator', 'naive', '--iteration', '7',
                   '--no-progress')
    assert 'resumed from' in text
    a, b = params_of(straight), params_of(split)
    for name in a:  # across an epoch boundary (4 iterations per epoch), bit for bit
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    log = json.load(open(os.path.join(split, 'log')))
    assert [e['iteration'] for e in log] == [3, 4, 7]


@needs_mpi
def test_resuming_with_another_number_of_processes_is_refused(tmp_path):
    out = str(tmp_path / 'run')
    mpiexec(2, 'train', '--communicator', 'naive', '--iteration', '2', '--no-progress', '--out', out,
            *flags())
    # one process (no mpiexec) cannot continue a 2-process run exactly
    r = subprocess.run([sys.executable, '-m', 'irnn_chainer', 'train', '--resume', out, '--iteration', '4',
                        '--no-progress'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert 'trained with 2 processes and this has 1' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_unknown_communicator_is_one_line(tmp_path, capsys):
    assert main(['train', '--communicator', 'pure_nccl', '--out', str(tmp_path / 'r')] +
                ['--dataset', 'embedded', '--train-limit', '16', '--iteration', '1']) == 2
    err = capsys.readouterr().err
    assert "--communicator: expected naive (the CPU communicator), got 'pure_nccl'" in err
