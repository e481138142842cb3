"""The irnn-chainer command as a user runs it: outputs, exit codes, one-line errors."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, env=None):
    e = dict(os.environ, **(env or {}))
    p = subprocess.run([sys.executable, '-m', 'irnn_chainer'] + list(args), cwd=ROOT, env=e,
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
    assert 'fused path: irnn, rnn-relu, rnn-tanh, lstm; stepwise only: none' in out
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


# ---------------------------------------------------------------------- flags (issue 15, group 5)

def in_process(capsys, *argv):
    from irnn_chainer import cli
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
    from irnn_chainer import memory, settings
    cfg = settings.resolve_config({'batchsize': 100000})
    need, biggest = memory.estimate(cfg)
    states = 784 * 100000 * 100 * 4                            # T x batch x H float32
    params = (256 * 100 + 100 * 100 + 100 + 100 * 10 + 10) * 4 * 4  # weights, grads, 2 slots
    assert need == states + params + 70000 * 784 and 'states' in biggest
    msg = memory.refusal(cfg, available=8 * 2 ** 30)
    assert '29.3 GiB' in msg and '8.0 GiB' in msg
    assert memory.refusal(settings.resolve_config({}), available=8 * 2 ** 30) is None
