"""CuPy installed for real on a machine without a GPU: the cuDNN shim, `info`'s CUDA
section and the one-line `--gpu 0` errors.

The real-CuPy tests run the commands of a venv that has ``cupy-cuda12x[ctk]`` installed
(~3 GB installed, too heavy for every CI run): opt in with
``IRNN_CUPY_VENV=/path/to/venv`` (``benchmarks/gpu_prepare.sh cupy-venv`` makes one). On
a machine with a working GPU they are skipped (they check the no-driver case).
"""
import os
import subprocess
import sys
import types

import pytest

from irnn_chainer.compat import api, shims

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fake_cupy(tmp_path, with_cudnn):
    pkg = tmp_path / 'site' / 'cupy'
    (pkg / 'cuda').mkdir(parents=True)
    (pkg / '__init__.py').write_text('raise ImportError("this fake CuPy is never imported")\n')
    if with_cudnn:
        (pkg / 'cuda' / 'cudnn.cpython-311-x86_64-linux-gnu.so').write_text('')
    return str(tmp_path / 'site')


def shim_env_after_import(site, **env):
    """CHAINER_CUDNN after ``import irnn_chainer`` in a fresh interpreter (whose import
    path starts with ``site``) and the shims it applied."""
    e = {k: v for k, v in os.environ.items() if k != 'CHAINER_CUDNN'}
    e.update(env)
    e['PYTHONPATH'] = os.pathsep.join([site, ROOT])
    code = ('import os, irnn_chainer\nfrom irnn_chainer.compat import shims\n'
            'print(os.environ.get("CHAINER_CUDNN", "unset"))\n'
            'print([n for n, _ in shims.APPLIED])')
    p = subprocess.run([sys.executable, '-c', code], env=e, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    value, applied = p.stdout.splitlines()
    return value, applied


def test_cudnn_probe_finds_cupys_module_without_importing_it(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, 'cupy', raising=False)  # a real one, imported (restored after)
    monkeypatch.syspath_prepend(fake_cupy(tmp_path / 'a', with_cudnn=False))
    assert shims.cupy_has_cudnn() is False
    assert 'cupy' not in sys.modules
    monkeypatch.syspath_prepend(fake_cupy(tmp_path / 'b', with_cudnn=True))
    assert shims.cupy_has_cudnn() is True


def test_chainer_cudnn_set_to_0_when_cupy_has_no_cudnn(tmp_path):
    value, applied = shim_env_after_import(fake_cupy(tmp_path, with_cudnn=False))
    assert value == '0' and 'CHAINER_CUDNN=0' in applied


def test_chainer_cudnn_left_alone_when_user_set_it(tmp_path):
    value, applied = shim_env_after_import(fake_cupy(tmp_path, with_cudnn=False), CHAINER_CUDNN='1')
    assert value == '1' and 'CHAINER_CUDNN=0' not in applied


def test_chainer_cudnn_untouched_with_cudnn_or_without_cupy(tmp_path):
    value, _ = shim_env_after_import(fake_cupy(tmp_path / 'a', with_cudnn=True))
    assert value == 'unset'
    value, _ = shim_env_after_import(str(tmp_path / 'empty'))
    assert value == ('0' if shims.cupy_has_cudnn() is False else 'unset')  # the real CuPy, if any


def test_numpy_distutils_stub_on_python_312_and_later():
    if sys.version_info < (3, 12):
        pytest.skip('numpy.distutils exists before Python 3.12 (the stub is tested in test_compat)')
    import chainer  # noqa: F401  (its import reads numpy.distutils.system_info)
    assert 'numpy.distutils stub' in [n for n, _ in shims.APPLIED]


# ------------------------------------------------------------------ reasons, from fake Chainer states

class FakeRuntime(object):
    def __init__(self, count=None, error=None):
        self.count, self.error = count, error

    def getDeviceCount(self):
        if self.error:
            raise self.error
        return self.count


def fake_chainer_cuda(available, resolution_error=None, runtime=None):
    cuda = types.SimpleNamespace(available=available, _resolution_error=resolution_error)
    if runtime is not None:
        cuda.cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime))
    return cuda


class CUDARuntimeError(RuntimeError):
    pass


@pytest.mark.parametrize('cuda, device, words', [
    (fake_chainer_cuda(False, ImportError(
        'CuPy failed to load libcublasLt.so.12: OSError: libcublasLt.so.12: cannot open shared object file')),
     0, ['Chainer cannot use CuPy', 'libcublasLt.so.12', 'cupy-cuda12x[ctk]']),
    (fake_chainer_cuda(True, runtime=FakeRuntime(error=CUDARuntimeError(
        'cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version'))),
     0, ['no usable CUDA driver', 'cudaErrorInsufficientDriver']),
    (fake_chainer_cuda(True, runtime=FakeRuntime(count=0)), 0, ['no CUDA device found']),
    (fake_chainer_cuda(True, runtime=FakeRuntime(count=2)), 3, ['no CUDA device 3', '2 device(s)']),
])
def test_cuda_status_names_the_real_reason(monkeypatch, cuda, device, words):
    if not cuda.available:
        monkeypatch.setitem(sys.modules, 'cupy', types.ModuleType('cupy'))  # importable, unusable
    monkeypatch.setattr(api, '_chainer_cuda', lambda: cuda)
    ok, why = api.cuda_status(device)
    assert not ok
    for w in words:
        assert w in why, (w, why)
    with pytest.raises(api.DeviceError) as e:
        api.get_device('@cupy:%d' % device)
    assert why in str(e.value) and '\n' not in str(e.value)


def test_cupys_import_banner_gives_its_original_error():
    e = ImportError('\n' + '=' * 64 + '\n\nFailed to import CuPy.\n\nIf you installed CuPy via wheels '
                    '(cupy-cudaXXX or cupy-rocm-X-X), make sure that the package matches with the version '
                    'of CUDA or ROCm installed.\n\nOriginal error:\n  ImportError: libcudart.so.12: cannot '
                    'open shared object file: No such file or directory\n\n' + '=' * 64 + '\n')
    assert api._first_line(e) == ('ImportError: ImportError: libcudart.so.12: cannot open shared object '
                                  'file: No such file or directory')
    assert api._first_line(RuntimeError('')) == 'RuntimeError'
    assert api._first_line(OSError('one\ntwo')) == 'OSError: one'


def test_cuda_status_ok_for_an_existing_device(monkeypatch):
    monkeypatch.setattr(api, '_chainer_cuda', lambda: fake_chainer_cuda(True, runtime=FakeRuntime(count=2)))
    assert api.cuda_status(1) == (True, '2 CUDA device(s)')


def test_gpu_without_cupy_names_it(tmp_path):
    try:
        import cupy  # noqa: F401
        pytest.skip('CuPy is installed here')
    except ImportError:
        pass
    p = subprocess.run([sys.executable, '-m', 'irnn_chainer', 'train', '--device', '@cupy:0',
                        '--dataset', 'embedded'], cwd=str(tmp_path), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=300)  # not the checkout's result/
    assert p.returncode == 2 and p.stderr.count('\n') == 1, p.stderr
    assert "No module named 'cupy'" in p.stderr and 'cupy-cuda12x[ctk]' in p.stderr


# ------------------------------------------------------------------ a real CuPy (opt-in venv)

def cupy_venv():
    venv = os.environ.get('IRNN_CUPY_VENV')
    if not venv:
        pytest.skip('opt-in: IRNN_CUPY_VENV=/path/to/venv with cupy-cuda12x[ctk] and this project '
                    'installed (~3 GB; benchmarks/gpu_prepare.sh cupy-venv makes it)')
    exe = os.path.join(venv, 'bin', 'irnn-chainer')
    if not os.path.exists(exe):
        pytest.fail('IRNN_CUPY_VENV=%s has no bin/irnn-chainer' % venv)
    return venv, exe


def run_venv(exe, *args):
    env = {k: v for k, v in os.environ.items() if k != 'CHAINER_CUDNN'}
    p = subprocess.run([exe] + list(args), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=600)
    return p.returncode, p.stdout, p.stderr


def test_real_cupy_info_and_one_line_gpu_errors():
    venv, exe = cupy_venv()
    code, out, err = run_venv(exe, 'info')
    assert code == 0, err
    if 'CUDA driver: none' not in out:
        pytest.skip('this machine has a CUDA driver; the no-driver case is not testable here')
    assert 'cuDNN is not enabled' not in err, err   # CHAINER_CUDNN=0 came before Chainer
    assert 'chainer sees CUDA: yes' in out, out     # the [ctk] wheels resolve cuBLAS
    assert 'cuDNN: off (CuPy has no cuDNN; CHAINER_CUDNN=0)' in out, out
    assert 'cupy: 14.' in out and '(cupy-cuda12x)' in out, out
    for args in (['--gpu', '0'], ['--device', '@cupy:0']):
        code, out, err = run_venv(exe, 'train', '--dataset', 'embedded', '--epoch', '1', *args)
        assert code == 2 and err.count('\n') == 1 and 'Traceback' not in err, err
        assert 'cudaErrorInsufficientDriver' in err or 'cudaErrorNoDevice' in err, err
        assert 'no usable CUDA driver' in err and '@cupy:0' in err, err
    # and the CPU still trains with CuPy installed
    code, out, err = run_venv(exe, 'train', '--dataset', 'embedded', '--train-limit', '32',
                              '--test-limit', '20', '--unit', '8', '--epoch', '1', '--out',
                              os.path.join(venv, 'cpu-run'), '--force')
    assert code == 0 and 'final: epoch 1' in out, err


def test_info_has_a_cuda_section():
    p = subprocess.run([sys.executable, '-m', 'irnn_chainer', 'info'], cwd=ROOT, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    ok, why = api.cuda_status()
    assert ('cuda     %s' % ('usable: ' if ok else 'not usable: ') + why) in p.stdout
    for line in ('  - cupy: ', '  - chainer sees CUDA: ', '  - cuDNN: off',
                 'GPU kernel: cuda (irnn_cuda.cu'):
        assert line in p.stdout, (line, p.stdout)
