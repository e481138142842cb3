"""The irnn-chainer command as a user runs it: outputs, exit codes, one-line errors."""
import json
import os
import subprocess
import sys
import tempfile

import pytest

import irnn_chainer  # noqa: F401  (compat shims before chainer)
from irnn_chainer import kernels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, env=None):
    e = dict(os.environ, **(env or {}))
    # in an empty folder, not the checkout: its result/ may hold the user's own run (./dev.sh
    # demo writes result/demo), which a train without --out would find there and refuse
    with tempfile.TemporaryDirectory() as cwd:
        p = subprocess.run([sys.executable, '-m', 'irnn_chainer'] + list(args), cwd=cwd, env=e,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    return p.returncode, p.stdout, p.stderr


def assert_one_line_error(code, err, *words):
    assert code == 2, err
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and 'Traceback' not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_info_lists_versions_and_shims():
    code, out, err = run('info')
    assert code == 0, err
    for key in ('python', 'numpy', 'chainer', 'cupy', 'shims', 'cuda'):
        assert key in out
    assert 'fused path: irnn, rnn-relu, rnn-tanh, lstm; stepwise only: gru' in out
    import numpy
    if int(numpy.__version__.split('.')[0]) >= 2:
        assert 'numpy.sctypes' in out  # NumPy 2 removed it and Chainer 7.8 needs it


def test_train_end_to_end_then_evaluate(tmp_path):
    out = str(tmp_path / 'run')
    code, stdout, err = run('train', '--dataset', 'embedded', '--train-limit', '64', '--test-limit', '50',
                            '--unit', '10', '--epoch', '2', '--lr', '0.001', '-o', out)
    assert code == 0, err
    assert stdout.splitlines()[0].startswith('data: embedded'), stdout[:300]
    assert 'final: epoch 2, iteration 8' in stdout
    for name in ('log', 'loss.png', 'accuracy.png', 'snapshot_iter_8', 'model.npz', 'config.json'):
        assert os.path.exists(os.path.join(out, name)), name
    with open(os.path.join(out, 'loss.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    log = json.load(open(os.path.join(out, 'log')))
    code, stdout, err = run('evaluate', out)
    assert code == 0, err
    assert 'on 50 images' in stdout
    assert ('test accuracy %.4f' % log[-1]['validation/main/accuracy']) in stdout


@pytest.mark.parametrize('args, words', [
    (['train', '--dataset', 'mnist', '--data-dir', '/nonexistent/mnist'], ['/nonexistent/mnist']),
    (['train', '--gpu', '0', '--dataset', 'embedded'], ['@cupy:0', 'CUDA', 'CPU']),
    (['train', '--device', 'tpu', '--dataset', 'embedded'], ["'tpu'", '@numpy']),
    (['evaluate', '/nonexistent/run'], ['not an irnn-chainer run folder']),
    (['train', '--resume', '/nonexistent/run'], ['--resume', 'not found']),
])
def test_bad_input_one_line_exit_2(args, words):
    code, _, err = run(*args)
    assert_one_line_error(code, err, *words)


def test_argparse_rejects_non_positive():
    code, _, err = run('train', '--batchsize', '0')
    assert code == 2 and 'expected a positive integer' in err


def test_console_script_matches_module():
    exe = os.path.join(os.path.dirname(sys.executable), 'irnn-chainer')
    if not os.path.exists(exe):
        pytest.skip('console script not installed')
    p = subprocess.run([exe, 'info'], stdout=subprocess.PIPE, text=True, timeout=120)
    assert p.returncode == 0 and 'chainer' in p.stdout


# Python run in a child process: a training run (or info) through cli.main, then the BLAS
# libraries' own thread counts as OpenBLAS reports them (threadpoolctl asks the library).
_BLAS_AFTER = '''
import json, sys, threadpoolctl
from irnn_chainer.commands import cli
code = cli.main(sys.argv[1:])
print(json.dumps([code] + [i['num_threads'] for i in threadpoolctl.threadpool_info()
                           if i.get('user_api') == 'blas']))
'''


_C = kernels.c_kernel is not None


@pytest.mark.parametrize('args, env, expected', [
    (['--threads', '1'], {}, 1),             # a chosen count caps the BLAS too
    ([], {'IRNN_THREADS': '1'}, 1),
    # nothing chosen: one BLAS thread beside the C kernel's threads; with the NumPy kernel,
    # the BLAS keeps its own count
    ([], {}, 1 if _C else 2),
    ([], {'IRNN_FUSED_KERNEL': 'numpy'}, 2),
    (['--threads', '2'], {'IRNN_FUSED_KERNEL': 'numpy'}, 2),
    pytest.param(['--threads', '2'], {}, 1, marks=pytest.mark.skipif(not _C, reason='C kernel not built')),
])
def test_a_chosen_thread_count_caps_numpys_blas(tmp_path, args, env, expected):
    e = dict(os.environ)
    e.pop('IRNN_THREADS', None)
    e.update(OPENBLAS_NUM_THREADS='2', **env)  # 2 to begin with, whatever the cores
    argv = ['train', '--dataset', 'embedded', '--train-limit', '32', '--test-limit', '20', '--unit', '8',
            '--model', 'lstm', '--iteration', '2', '--no-progress', '-o', str(tmp_path / 'run')] + args
    p = subprocess.run([sys.executable, '-c', _BLAS_AFTER] + argv, cwd=ROOT, env=e, timeout=600,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.returncode == 0, p.stderr
    reported = json.loads(p.stdout.strip().splitlines()[-1])
    assert reported[0] == 0 and len(reported) > 1, reported  # trained; NumPy's BLAS was found
    assert set(reported[1:]) == {expected}, reported


def test_info_names_the_blas_thread_count():
    code, out, err = run('info', env={'IRNN_THREADS': '1', 'OPENBLAS_NUM_THREADS': '2'})
    assert code == 0, err
    line = [l for l in out.splitlines() if l.startswith('threads')][0]
    assert line.startswith('threads  1 (from IRNN_THREADS') and 'BLAS under NumPy: openblas 1' in line, line


# ---------------------------------------------------------------------- flags

def in_process(capsys, *argv):
    from irnn_chainer.commands import cli
    try:
        code = cli.main(list(argv))
    except SystemExit as e:
        code = e.code
    _, err = capsys.readouterr()
    return code, [l for l in err.strip().splitlines() if l.strip()]


@pytest.mark.parametrize('args, words', [
    (['--lr', 'inf'], ['--lr', 'finite', "'inf'"]),
    (['--lr', 'nan'], ['--lr', 'finite']),
    (['--clip', 'nan'], ['--clip', "'nan'"]),
    (['--init-std', 'nan'], ['--init-std', "'nan'"]),
    (['--init-std', '-0.1'], ['--init-std', '>= 0', "'-0.1'"]),
    (['--identity-scale', 'nan'], ['--identity-scale', 'finite']),
    (['--identity-scale', 'inf'], ['--identity-scale', 'finite']),
    (['--lr-decay', 'inf'], ['--lr-decay', 'finite']),
    (['--seed', '-1'], ['--seed', '2**32', "'-1'"]),
    (['--seed', str(2 ** 32)], ['--seed', '2**32', str(2 ** 32)]),
    (['--layers', '100,,50'], ['--layers', "'100,,50'"]),
    (['--batchsize', '0'], ['--batchsize', 'positive integer']),
    (['--bogus'], ['unrecognized arguments: --bogus']),
])
def test_flag_error_is_one_line_and_one_hint(capsys, tmp_path, args, words):
    out = str(tmp_path / 'run')
    code, err = in_process(capsys, 'train', '--dataset', 'embedded', '-o', out, *args)
    assert code == 2 and len(err) == 2, err  # not argparse's 22-line usage block
    assert err[0].startswith('irnn-chainer: error: ') and 'usage:' not in ' '.join(err)
    for w in words:
        assert w in err[0], (w, err[0])
    assert err[1] == 'see irnn-chainer train --help'
    assert not os.path.exists(out)


def test_flag_error_hint_through_the_real_command():
    code, _, err = run('evaluate')
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 2 and lines[1] == 'see irnn-chainer evaluate --help', err


@pytest.mark.parametrize('args, words', [
    (['--batchsize', '100000000'], ['needs at least', 'GiB of memory', '--batchsize']),
    (['--unit', '1000000'], ['needs at least', 'parameters', 'GiB']),
    (['--dataset', 'adding', '--length', '100000000'], ['needs at least', 'adding data', 'GiB']),
    (['--permute', '--data', 'x.npz'], ['--permute', 'pixel MNIST', '--data']),
    (['--permute', '--dataset', 'adding'], ['--permute', '--dataset adding']),
])
def test_runs_that_cannot_work_are_refused_first(capsys, tmp_path, args, words):
    out = str(tmp_path / 'run')
    argv = ['train', '-o', out] + (args if '--dataset' in args or '--data' in args else
                                   ['--dataset', 'embedded'] + args)
    code, err = in_process(capsys, *argv)
    assert code == 2 and len(err) == 1 and 'Traceback' not in err[0], err
    for w in words:
        assert w in err[0], (w, err[0])
    assert not os.path.exists(out)


def test_memory_estimate_by_hand():
    from irnn_chainer import settings
    from irnn_chainer.run import memory
    cfg = settings.resolve_config({'batchsize': 100000})
    need, biggest = memory.estimate(cfg)
    states = 784 * 100000 * 100 * 4                            # T x batch x H float32
    params = (256 * 100 + 100 * 100 + 100 + 100 * 10 + 10) * 4 * 4  # weights, grads, 2 slots
    assert need == states + params + 70000 * 784 and 'states' in biggest
    msg = memory.refusal(cfg, available=8 * 2 ** 30)
    assert '29.3 GiB' in msg and '8.0 GiB' in msg
    assert memory.refusal(settings.resolve_config({}), available=8 * 2 ** 30) is None
