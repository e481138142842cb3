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
