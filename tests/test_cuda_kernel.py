"""The CUDA kernel of the fused recurrence (irnn_chainer/kernels/irnn_cuda.cu) tested on a
machine without a GPU:

1. NVRTC (the compiler cupy.RawKernel uses, from the nvidia-cuda-nvrtc-cu12 wheel)
   compiles the exact source for sm_80 and sm_90, through ptxas, in every variant that
   ``cuda.plan`` picks, within the static shared-memory limit;
2. the same source, compiled with g++ -std=c++20 and tests/cuda_emu.h (one std::thread per
   CUDA thread, __syncthreads as a std::barrier), runs through kernels/cuda.py's own
   Python side on NumPy arrays, called like a RawKernel; its states and every gradient
   equal the C kernel's (the NumPy kernel's where C is not built);
3. under ThreadSanitizer the kernels have no race, and with the per-step __syncthreads
   removed TSan reports one and the results are wrong.
"""
import ctypes
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import irnn_chainer  # noqa: F401  (compat shims)
from irnn_chainer import kernels
from irnn_chainer.kernels import cuda

HERE = os.path.dirname(os.path.abspath(__file__))
KERNEL_DIR = os.path.dirname(cuda.SOURCE_PATH)
CXX = os.environ.get('CXX') or shutil.which('g++')
TOL = {np.float32: 1e-5, np.float64: 1e-11}
NO_SYNC = '-DIRNN_SYNC()='


def need(ok, why):
    """Skip with ``why`` here; in CI (CI=true) a missing tool is a failure, not a skip."""
    if not ok:
        if os.environ.get('CI'):
            pytest.fail(why + ' (required in CI)')
        pytest.skip(why)


# ----------------------------------------------------------------------------- 1. NVRTC

try:
    import nvrtc  # tests/nvrtc.py
    _nvrtc_lib = nvrtc.find_library()
except Exception as e:  # noqa: BLE001
    _nvrtc_lib = None

VARIANTS = [  # (B, H, dtype): the plans training and evaluation use, and the edges
    (16, 100, np.float32), (256, 100, np.float32), (1000, 100, np.float32),
    (5000, 100, np.float32), (16, 100, np.float64), (16, 256, np.float32),
    (16, 1, np.float32), (16, 2000, np.float32)]


def shared_bytes(ptx, entry):
    """Static shared memory of one kernel (its ``.shared`` arrays are named after it)."""
    return sum(int(n) for n in re.findall(r'\.shared \.align \d+ \.b8 _ZZ\d+%s\w*\[(\d+)\]' % entry, ptx))


@pytest.mark.parametrize('arch', ['sm_80', 'sm_90'])
@pytest.mark.parametrize('B, H, dtype', VARIANTS)
def test_nvrtc_compiles_the_kernel_source(arch, B, H, dtype):
    need(_nvrtc_lib, 'nvidia-cuda-nvrtc-cu12 is not installed (pip install -e .[test])')
    p = cuda.plan(B, H, dtype)
    ptx, log = nvrtc.compile_ptx(cuda.source(), arch, cuda.options(p), name='irnn_cuda.cu')
    assert 'warning' not in log.lower(), log
    for entry in ('irnn_forward', 'irnn_backward'):
        assert '.entry %s(' % entry in ptx
        used = shared_bytes(ptx, entry)
        assert used == (H * H * p.w_shared + 2 * p.rows * H) * np.dtype(dtype).itemsize
        assert used <= cuda.SHARED_LIMIT
    cubin, _ = nvrtc.compile_cubin(cuda.source(), arch, cuda.options(p))  # ptxas: the arch's limits
    assert cubin[:4] == b'\x7fELF'


def test_nvrtc_rejects_what_does_not_fit():
    """The compile check can fail: W of 120 units in shared memory is past 48 KB."""
    need(_nvrtc_lib, 'nvidia-cuda-nvrtc-cu12 is not installed (pip install -e .[test])')
    with pytest.raises(nvrtc.NVRTCError, match='too much shared data'):
        nvrtc.compile_cubin(cuda.source(), 'sm_90', ['-DH_UNITS=120', '-DW_SHARED=1'])
    assert not cuda.plan(16, 120, np.float32).w_shared


# ----------------------------------------------------------------------------- 2. emulation

_builds = {}


def build(tmp_dir, defines, tsan=False):
    """The .cu source + cuda_emu.h as a shared library (cached per set of flags)."""
    need(CXX, 'no C++ compiler (g++ >= 11 for C++20 <barrier>)')
    key = (tuple(defines), tsan)
    if key not in _builds:
        out = os.path.join(str(tmp_dir), 'emu_%d%s.so' % (len(_builds), '_tsan' if tsan else ''))
        flags = ['-O1', '-g', '-fsanitize=thread'] if tsan else ['-O2']
        cmd = [CXX, '-std=c++20', '-fPIC', '-shared', '-pthread', '-I', HERE, '-I', KERNEL_DIR] + \
            flags + list(defines) + [os.path.join(HERE, 'cuda_emu_irnn.cpp'), '-o', out]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert p.returncode == 0, p.stdout
        _builds[key] = out
    return _builds[key]


class EmuKernel(object):
    """A compiled kernel called as cupy.RawKernel is: ``kernel(grid, block, args)``, with
    arrays (checked C-contiguous, int32 or the REAL it was compiled for) and numpy int32."""

    def __init__(self, fn, real):
        self.fn, self.real = fn, real

    def __call__(self, grid, block, args):
        conv = []
        for a in args:
            if isinstance(a, np.ndarray):
                assert a.flags.c_contiguous and a.dtype in (np.int32, self.real), (a.dtype, a.flags)
                conv.append(ctypes.c_void_p(a.ctypes.data))
            else:
                assert isinstance(a, np.int32), type(a)
                conv.append(ctypes.c_int(int(a)))
        self.fn(ctypes.c_uint(grid[0]), ctypes.c_uint(block[0]), *conv)


class EmuBackend(object):
    """kernels/cuda.py's backend on the CPU: NumPy arrays, emulated kernels."""
    xp = np

    def __init__(self, tmp_dir, extra=(), tsan=False, **plan_args):
        self.tmp_dir, self.extra, self.tsan, self.plan_args = tmp_dir, list(extra), tsan, plan_args
        self.launches = []

    def kernel(self, fn, p):
        lib = ctypes.CDLL(build(self.tmp_dir, list(cuda.options(p)) + self.extra, self.tsan))
        self.launches.append((fn, p))
        return EmuKernel(getattr(lib, 'launch_' + fn), np.float32 if p.real == 'float' else np.float64)

    @staticmethod
    def scatter_add(out, index, rows):
        np.add.at(out, index, rows)


def problem(T, B, dtype, H=100, V=256, seed=0):
    """Random weights scaled so units switch off and on along 784 steps without the state
    exploding; every fifth unit has a bias that keeps it off (relu); gradients for h_T and
    for every h_t."""
    rng = np.random.default_rng(seed + 1000 * T + B)
    E = rng.normal(0, 0.5, (V, H)).astype(dtype)
    W = (rng.normal(0, 1, (H, H)) * (0.9 / np.sqrt(H))).astype(dtype)
    b = rng.normal(0, 0.1, H).astype(dtype)
    b[::5] = -50
    ids = rng.integers(0, V, (B, T)).astype(np.int32)
    gT = rng.normal(0, 1, (B, H)).astype(dtype)
    gseq = rng.normal(0, 1, (T, B, H)).astype(dtype)
    return ids, E, W, b, gT, gseq


def run_both(be, ids, E, W, b, gT, gseq, activation):
    """(emulated, C) results: hs, hT, then (dE, dW, db) for gT alone, for gseq alone."""
    ref = kernels.cpu_kernel()
    out = []
    for k, kw in ((cuda, {'backend': be}), (ref, {})):
        hs, hT = k.forward(ids, E, W, b, True, activation, **kw)
        if ids.size < 5000:  # (the emulation takes ~5 s for 784 x 16)
            _, hT_nokeep = k.forward(ids, E, W, b, False, activation, **kw)
            np.testing.assert_array_equal(hT_nokeep, hT)
        hs = hs.copy()  # the C kernel recycles its buffers
        grads = [tuple(g.copy() for g in k.backward(ids, hs, W, gT_, gseq_, E.shape[0], activation, **kw))
                 for gT_, gseq_ in ((gT, None), (None, gseq))]
        out.append([hs, hT] + [g for pair in grads for g in pair])
    return out


NAMES = ['hs', 'hT', 'dE(gT)', 'dW(gT)', 'db(gT)', 'dE(gseq)', 'dW(gseq)', 'db(gseq)']


def max_rel(a, b):
    return float(np.abs(a.astype(np.float64) - b).max() / max(float(np.abs(b).max()), 1e-30))


def assert_all_close(got, want, tol):
    for name, a, b in zip(NAMES, got, want):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(float(np.abs(b).max()), 1e-30),
                                   err_msg=name)


@pytest.fixture(scope='module')
def emu_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('cuda_emu')


@pytest.mark.parametrize('activation', ['relu', 'tanh'])
@pytest.mark.parametrize('B', [1, 16])
@pytest.mark.parametrize('T', [1, 7, 784])
def test_emulated_kernel_equals_c_kernel(emu_dir, activation, B, T):
    ids, E, W, b, gT, gseq = problem(T, B, np.float32)
    be = EmuBackend(emu_dir)
    got, want = run_both(be, ids, E, W, b, gT, gseq, activation)
    assert_all_close(got, want, TOL[np.float32])
    p = cuda.plan(B, 100, np.float32)
    assert p.w_shared and p.rows == 1 and p.threads == 128
    assert ('irnn_forward', p) in be.launches and ('irnn_backward', p) in be.launches
    if activation == 'relu' and T > 1:
        off = got[0] == 0
        assert off[:, :, ::5].all() and 0.1 < off.mean() < 0.9  # dead units, and units switching


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('plan_args, H', [
    ({'rows': 3}, 100),                  # three rows per block, the last block partial
    ({'threads': 32}, 100),              # four units per thread
    ({'rows': 2, 'threads': 64}, 130),   # W in global memory (does not fit), 3 units/thread
])
def test_emulated_kernel_variants(emu_dir, dtype, plan_args, H):
    T, B = 50, 7
    ids, E, W, b, gT, gseq = problem(T, B, dtype, H=H, V=31, seed=5)
    be = EmuBackend(emu_dir, **plan_args)
    for activation in ('relu', 'tanh'):
        got, want = run_both(be, ids, E, W, b, gT, gseq, activation)
        assert_all_close(got, want, TOL[dtype])
    p = be.launches[-1][1]
    assert (p.rows, p.threads) == (plan_args.get('rows', 1), plan_args.get('threads', p.threads))
    assert p.w_shared == (H == 100 and dtype == np.float32)  # 100 x 100 doubles: 80 KB > 48 KB


def test_self_check_passes_and_a_wrong_kernel_is_refused(emu_dir):
    be = EmuBackend(emu_dir)
    for activation in ('relu', 'tanh'):
        diffs = cuda.self_check(be, cuda.plan(16, 100, np.float32), activation)
        assert set(diffs) == {'hs', 'hT', 'dE', 'dW', 'db'} and max(diffs.values()) < 1e-5

    class Broken(EmuBackend):  # a scatter that assigns instead of adding: dE wrong
        @staticmethod
        def scatter_add(out, index, rows):
            out[index] = rows
    with pytest.raises(cuda.KernelCheckError) as e:
        cuda.forward(*problem(3, 2, np.float32)[:4], keep=True, backend=Broken(emu_dir))
    msg = str(e.value)
    assert '\n' not in msg and 'dE' in msg and 'IRNN_FUSED_KERNEL=numpy' in msg, msg


def test_missing_syncthreads_gives_wrong_results(emu_dir):
    """The per-step barrier is load-bearing: without it the emulated kernel is wrong."""
    ids, E, W, b, gT, gseq = problem(784, 16, np.float32)
    be = EmuBackend(emu_dir, extra=[NO_SYNC])
    p = cuda.plan(16, 100, np.float32)
    got = cuda._forward(be, p, ids, E, W, b, True, 0)[0]
    want = kernels.cpu_kernel().forward(ids, E, W, b, True, 'relu')[0]
    assert max_rel(got, want) > 1e-2, max_rel(got, want)


# ----------------------------------------------------------------------------- 3. TSan

TSAN_LIB = None
if CXX:
    _p = subprocess.run([CXX, '-print-file-name=libtsan.so'], stdout=subprocess.PIPE, text=True)
    TSAN_LIB = _p.stdout.strip() if os.path.isabs(_p.stdout.strip()) else None


#: (T, B, H, plan overrides) run under TSan: every step count and batch of the tests above
#: at H = 24 (one warp), and the variants (rows per block, units per thread, W global).
TSAN_CASES = [(1, 1, 24, {}), (7, 16, 24, {}), (784, 1, 24, {}), (20, 5, 40, {'rows': 2, 'threads': 32}),
              (20, 3, 130, {'threads': 64})]


def tsan_main(tmp_dir, no_sync, cases):
    """Run inside a Python started with libtsan preloaded: both kernels, both activations,
    each case; prints the largest relative difference from the NumPy kernel."""
    extra = [NO_SYNC] if no_sync else []
    worst = 0.0
    for T, B, H, plan_args in cases:
        be = EmuBackend(tmp_dir, extra=extra, tsan=True, **plan_args)
        for activation in ('relu', 'tanh'):
            ids, E, W, b, gT, gseq = problem(T, B, np.float32, H=H, V=17)
            got, want = run_both(be, ids, E, W, b, gT, gseq, activation)
            worst = max([worst] + [max_rel(a, w) for a, w in zip(got, want)])
    print('max_rel %.3g' % worst)


def run_tsan(tmp_dir, no_sync, cases):
    need(TSAN_LIB and os.path.exists(TSAN_LIB), 'no libtsan for %s' % CXX)
    # build here (an uninstrumented compiler run), use in the preloaded child
    extra = [NO_SYNC] if no_sync else []
    for T, B, H, plan_args in cases:
        build(tmp_dir, list(cuda.options(cuda.plan(B, H, np.float32, **plan_args))) + extra, True)
    code = ('import sys; sys.path.insert(0, %r); import test_cuda_kernel as t; t._builds.update(%r); '
            't.tsan_main(%r, %r, %r)' % (HERE, _builds, str(tmp_dir), no_sync, cases))
    # The reference is the NumPy kernel on one BLAS thread: TSan sees only instrumented code
    # and intercepted calls, and takes OpenBLAS's own (invisible) synchronisation for races.
    env = dict(os.environ, LD_PRELOAD=TSAN_LIB, TSAN_OPTIONS='halt_on_error=0 report_signal_unsafe=0',
               IRNN_FUSED_KERNEL='numpy', OPENBLAS_NUM_THREADS='1', OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, '-c', code], cwd=HERE, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=600)


def test_no_race_under_threadsanitizer(emu_dir):
    p = run_tsan(emu_dir, no_sync=False, cases=TSAN_CASES)
    assert p.returncode == 0, p.stderr[-3000:]
    assert 'ThreadSanitizer' not in p.stderr, p.stderr[-3000:]
    worst = float(p.stdout.split('max_rel')[1])
    assert worst <= 1e-5, p.stdout


def test_threadsanitizer_reports_the_race_without_syncthreads(emu_dir):
    p = run_tsan(emu_dir, no_sync=True, cases=[(40, 3, 24, {})])
    assert 'WARNING: ThreadSanitizer: data race' in p.stderr, p.stderr[-3000:]
    # at the kernel's own lines: a state written (forward) / read (matvec) in shared memory
    assert re.search(r'irnn_cuda\.cu:\d+', p.stderr), p.stderr[-3000:]
    assert "'irnn_forward::buf'" in p.stderr or "'irnn_backward::buf'" in p.stderr, p.stderr[-3000:]


NVCC = shutil.which('nvcc')


@pytest.mark.parametrize('arch', ['sm_80', 'sm_90'])
def test_nvcc_compiles_the_kernel_source_too(tmp_path, arch):
    """The machine's own CUDA toolkit (13 here; the H200 machine's CuPy is cupy-cuda13x),
    where there is one: another compiler version on the same text."""
    if not NVCC:
        pytest.skip('no nvcc on this machine (optional; NVRTC 12 above is the required check)')
    for dtype in (np.float32, np.float64):
        opts = list(cuda.options(cuda.plan(16, 100, dtype)))
        out = str(tmp_path / 'k.cubin')
        p = subprocess.run([NVCC, '-arch=' + arch, '-cubin', '-Werror', 'all-warnings'] + opts +
                           ['-o', out, cuda.SOURCE_PATH], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert p.returncode == 0, p.stdout
        assert open(out, 'rb').read(4) == b'\x7fELF'
