"""dev.sh: the install is skipped while nothing it depends on changed, and the demo says what
it does and where its files are. Run on a copy of the files dev.sh reads, with a venv whose
python records every pip and pytest call (and runs everything else with this interpreter)
and whose irnn-chainer records its arguments: no real install, no training."""
import os
import shutil
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNEL = os.path.join('irnn_chainer', 'kernels')

FAKE_PYTHON = '''#!/bin/sh
# pip and pytest are recorded (pip "builds" the kernel); the rest runs on the real python
case "$1 $2" in
  "-m pip") echo "pip $*" >> "$DEVSH_LOG"; touch irnn_chainer/kernels/_irnn_cpu.fake.so; exit 0 ;;
  "-m pytest") echo "pytest $*" >> "$DEVSH_LOG"; exit 0 ;;
esac
exec %s "$@"
'''
FAKE_CLI = '''#!/bin/sh
echo "irnn-chainer $*" >> "$DEVSH_LOG"
echo "final: epoch 5, iteration 3125, test accuracy 0.7325, test loss 0.7423 -> somewhere"
'''


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / 'repo'
    os.makedirs(str(root / KERNEL))
    for name in ('dev.sh', 'setup.py', 'pyproject.toml', 'constraints.txt'):
        shutil.copy(os.path.join(ROOT, name), str(root / name))
    for name in os.listdir(os.path.join(ROOT, KERNEL)):
        if name.endswith(('.c', '.h')) or name == 'build.py':
            shutil.copy(os.path.join(ROOT, KERNEL, name), str(root / KERNEL / name))
    bin_dir = root / '.venv' / 'bin'
    os.makedirs(str(bin_dir))
    for name, text in (('python', FAKE_PYTHON % sys.executable), ('irnn-chainer', FAKE_CLI)):
        (bin_dir / name).write_text(text)
        os.chmod(str(bin_dir / name), stat.S_IRWXU)
    return root


def dev(repo, *args, **env):
    log = str(repo / 'calls.log')
    open(log, 'a').close()
    before = open(log).read().splitlines()
    # the fake venv is .venv: CI's own choice of venv and interpreter (IRNN_VENV=.venv312
    # PYTHON=... while it runs the suite on 3.12 and 3.13) must not reach this dev.sh
    base = {k: v for k, v in os.environ.items() if k not in ('IRNN_VENV', 'PYTHON', 'IRNN_REINSTALL')}
    p = subprocess.run([str(repo / 'dev.sh')] + list(args), cwd=str(repo), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120,
                       env=dict(base, DEVSH_LOG=log, **env))
    assert p.returncode == 0, p.stdout
    return p.stdout, open(log).read().splitlines()[len(before):]


def pips(calls):
    return [c for c in calls if c.startswith('pip ')]


def test_the_install_is_skipped_until_something_it_depends_on_changes(repo):
    out, calls = dev(repo, 'demo')
    assert pips(calls) == ['pip -m pip install -q --disable-pip-version-check -e .']  # the demo: no extras
    assert 'dev.sh: installing irnn-chainer' in out
    out, calls = dev(repo, 'demo')
    assert pips(calls) == [] and 'is up to date: skipping the install' in out
    # the test suite needs its extras: installed once, then kept (a demo after it reinstalls nothing)
    _, calls = dev(repo, 'test', '-x')
    assert pips(calls)[0].endswith('-e .[test,sweep]') or pips(calls)[0].endswith('-e .[test,sweep,mpi]')
    assert [c for c in calls if c.startswith('pytest')] == ['pytest -m pytest -q -x']
    for command in ('test', 'demo'):
        assert pips(dev(repo, command)[1]) == []
    # each input of the install, changed, brings it back
    for path in ('setup.py', 'pyproject.toml', 'constraints.txt', os.path.join(KERNEL, '_irnn_cpu.c')):
        with open(str(repo / path), 'a') as f:
            f.write('\n')
        assert len(pips(dev(repo, 'demo')[1])) == 1, path
        assert pips(dev(repo, 'demo')[1]) == [], path
    os.remove(str(repo / KERNEL / '_irnn_cpu.fake.so'))   # the built kernel gone (git clean)
    assert len(pips(dev(repo, 'demo')[1])) == 1
    assert len(pips(dev(repo, 'demo', IRNN_REINSTALL='1')[1])) == 1
    os.remove(str(repo / '.venv' / '.irnn-chainer-installed'))  # no stamp: install
    assert len(pips(dev(repo, 'demo')[1])) == 1


def test_the_demo_says_what_it_does_and_where_its_files_are(repo):
    out, calls = dev(repo, 'demo')
    lines = out.splitlines()
    steps = [i for i, l in enumerate(lines) if l.startswith('dev.sh: ')]
    assert 'installing' in lines[steps[0]] and 'training' in lines[steps[2]]
    assert lines.index([l for l in lines if l.startswith('final:')][0]) > steps[2]
    train = [c for c in calls if c.startswith('irnn-chainer')]
    assert train == ['irnn-chainer train --dataset embedded --preset fast --epoch 5 --batchsize 32 --lr 2e-4 '
                     '--init-std 0.01 --ema 0 --out result/demo --force']
    tail = out[out.index('dev.sh: done in'):]
    for words in ('result/demo/accuracy.png', 'above 70 %', 'result/demo/loss.png', 'source .venv/bin/activate',
                  'irnn-chainer predict result/demo examples/digit.png'):
        assert words in tail, words
    # flags go to train; the files named are where --out put them
    out, calls = dev(repo, 'demo', '--out', 'elsewhere', '--seed', '1')
    assert calls[-1].endswith('--out elsewhere --seed 1') and 'elsewhere/accuracy.png' in out
