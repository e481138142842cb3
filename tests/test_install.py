"""Installed as a library, the way a new user would: build the wheel (``pip wheel --no-deps .``),
install it with its dependencies into a fresh venv (not editable, not from the source tree),
and run ``irnn-chainer info`` and short trainings from a folder outside the checkout, with no
MNIST anywhere and the download mirrors pointed at a closed port on 127.0.0.1: the embedded
subset must come from the package's own data.

Slow (the build and the install take a minute or two; Chainer's source build is cached by pip
after the first time). It needs the package registry, as ``./dev.sh`` does.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONSTRAINTS = os.path.join(ROOT, 'constraints.txt')
# Not part of the package's source: left out of the copy the wheel is built from, so that
# a stale build/ or a local venv cannot leak into the wheel.
NOT_SOURCE = ('.git', '.venv*', 'build', 'dist', '*.egg-info', '__pycache__', '*.so', '*.pyc',
              '.pytest_cache', '.matrix', 'result', 'results')

pytestmark = pytest.mark.slow


def run(cmd, cwd, env, timeout=900):
    """stdout of ``cmd``, which must succeed."""
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    assert p.returncode == 0, '%s failed (exit %d):\n%s\n%s' % (
        ' '.join(cmd), p.returncode, p.stdout[-3000:], p.stderr[-3000:])
    return p.stdout


@pytest.fixture(scope='module')
def closed_port():
    """A port on 127.0.0.1 that refuses connections: bound (so nobody else takes it) but
    never listening."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(('127.0.0.1', 0))
    yield s.getsockname()[1]
    s.close()


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """(venv folder, wheel path): the wheel built from a copy of the checkout, installed with
    its dependencies into a new venv."""
    tmp = tmp_path_factory.mktemp('install')
    src = str(tmp / 'src')
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    env = dict(os.environ, PIP_CONSTRAINT=CONSTRAINTS, PIP_DISABLE_PIP_VERSION_CHECK='1')
    env.pop('PYTHONPATH', None)
    wheels = str(tmp / 'wheels')
    run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '-w', wheels, '.'], src, env)
    (wheel,) = [os.path.join(wheels, n) for n in os.listdir(wheels)]
    venv = str(tmp / 'venv')
    run([sys.executable, '-m', 'venv', venv], str(tmp), env)
    run([os.path.join(venv, 'bin', 'python'), '-m', 'pip', 'install', '-q', wheel], str(tmp), env)
    shutil.rmtree(src)  # nothing of the source tree is left to import from
    return venv, wheel


@pytest.fixture
def user_env(tmp_path, closed_port):
    """A user with no MNIST (empty home, no caches, no IRNN_MNIST_DIR) and no network."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('IRNN_', 'CHAINER_', 'PYTHON', 'VIRTUAL_ENV'))}
    home = tmp_path / 'home'
    home.mkdir()
    env.update(HOME=str(home), IRNN_MNIST_MIRRORS='http://127.0.0.1:%d/' % closed_port)
    work = tmp_path / 'work'
    work.mkdir()
    return env, str(work)


def test_wheel_holds_the_package_data_and_the_c_kernel(installed):
    _, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert 'irnn_chainer/data/embedded/mnist_subset.npz' in names
    assert 'irnn_chainer/data/embedded/README.md' in names
    assert 'irnn_chainer/compat/shims.py' in names
    assert 'irnn_chainer/kernels/irnn_cuda.cu' in names   # CuPy compiles it at run time
    assert 'irnn_chainer/kernels/irnn_whole.cu' in names  # (the whole update's kernels)
    assert any(n.startswith('irnn_chainer/kernels/_irnn_cpu.') and n.endswith('.so') for n in names)
    assert not any(n.startswith(('tests/', 'compat/', 'tools/')) for n in names)


def test_installed_package_runs_from_the_venv_with_its_c_kernel(installed, user_env):
    venv, _ = installed
    env, work = user_env
    where = run([os.path.join(venv, 'bin', 'python'), '-c',
                 'import irnn_chainer, irnn_chainer.data.mnist as d; print(irnn_chainer.__file__); '
                 'print(d.embedded_path())'], work, env).split()
    site = os.path.join(venv, 'lib')
    assert all(p.startswith(site) for p in where), where
    out = run([os.path.join(venv, 'bin', 'irnn-chainer'), 'info'], work, env)
    (line,) = [l for l in out.splitlines() if l.startswith('fused ')]
    assert 'CPU kernel: c (compiled extension _irnn_cpu.' in line, out
    assert 'python   %d.%d.' % sys.version_info[:2] in out


@pytest.mark.parametrize('dataset', ['embedded', 'auto'])
def test_installed_package_trains_offline_on_the_embedded_subset(installed, user_env, closed_port,
                                                                 dataset):
    venv, _ = installed
    env, work = user_env
    cmd = [os.path.join(venv, 'bin', 'irnn-chainer'), 'train', '--train-limit', '32',
           '--test-limit', '32', '--unit', '8', '--epoch', '1', '--lr', '1e-3', '-o', 'run']
    if dataset != 'auto':
        cmd += ['--dataset', dataset]  # 'auto' is the default: the command as a user types it
    out = run(cmd, work, env)
    lines = [l for l in out.splitlines() if l.startswith('data: ')]
    assert lines[0] == ('data: embedded MNIST subset (package data; its test images are from the '
                        'MNIST test set), 32 train / 32 test images (the first of 20000 / 2000, by '
                        '--train-limit/--test-limit)'), out
    if dataset == 'auto':  # it looked for full MNIST first, and the "network" refused
        assert any('skipped download' in l and 'unreachable' in l and '127.0.0.1:%d' % closed_port in l
                   for l in lines), out
    assert 'final: epoch 1, iteration 2' in out, out
    with open(os.path.join(work, 'run', 'config.json')) as f:
        cfg = json.load(f)
    assert cfg['source'] == 'embedded MNIST subset (package data; its test images are from the MNIST test set)'
    assert os.path.isfile(os.path.join(work, 'run', 'model.npz'))
    # nothing was downloaded or cached in the (empty) home
    assert not os.path.exists(os.path.join(env['HOME'], '.cache', 'irnn-chainer', 'mnist',
                                           'train-images-idx3-ubyte.gz'))
