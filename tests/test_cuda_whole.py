"""The CUDA whole update (irnn_chainer/kernels/irnn_whole.cu, cuda.WholeUpdate) tested on a
machine without a GPU:

1. NVRTC compiles it for sm_80 and sm_90 through ptxas; its registers, spills, barriers
   and shared memory are read from ptxas's report and held to the architecture's limits;
2. the emulator (tests/cuda_emu.h) computes warp shuffles as the CUDA programming guide
   defines them (a table written from the guide's words), gives dynamic shared memory a
   fill pattern, and runs 512 threads;
3. the same source, run by the emulator through cuda.WholeUpdate on emulated device
   arrays, over several updates: losses, accuracy, gradients, states and weights equal
   Chainer's own update on the CPU (the fused model on the C kernel, Chainer's
   softmax_cross_entropy, SkipNonFinite, GradientClipping, SGD / RMSprop): 1e-12 in
   float64, 1e-5 in float32; the same bits run to run; without its per-step barrier the
   kernel is wrong, and ThreadSanitizer reports the race;
4. host side: three launches per update, and no device-to-host copy until read_stats
   (the emulated device arrays refuse every implicit read on the host).
"""
import ctypes
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import irnn_chainer  # noqa: F401  (compat shims)
import chainer
import chainer.links as L

from irnn_chainer.model import rnn as model_mod
from irnn_chainer.run import train as train_mod
from irnn_chainer.compat import api
from irnn_chainer.kernels import cuda

import test_cuda_kernel as base

HERE = base.HERE
need = base.need

# ----------------------------------------------------------------------------- 1. NVRTC

#: the most dynamic shared memory one block may opt into, per architecture
OPTIN = {'sm_80': 163 * 1024, 'sm_90': 227 * 1024}
REGS_PER_SM = 65536


def ptxas_report(log):
    """{entry: (registers, spill bytes, stack bytes, static shared bytes, barriers)} from
    ptxas -v's lines."""
    out = {}
    for m in re.finditer(r"Compiling entry function '(\w+)'.*?\n(.*?)Used (\d+) registers(.*?)\n", log, re.S):
        name, props, regs, rest = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        stack = int(re.search(r'(\d+) bytes stack frame', props).group(1))
        spill = sum(int(n) for n in re.findall(r'(\d+) bytes spill (?:stores|loads)', props))
        smem = re.search(r'(\d+) bytes smem', rest)
        bars = re.search(r'used (\d+) barriers', rest)
        out[name] = (regs, spill, stack, int(smem.group(1)) if smem else 0, int(bars.group(1)) if bars else 0)
    return out


@pytest.mark.parametrize('arch', ['sm_80', 'sm_90'])
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_nvrtc_compiles_the_whole_update_within_the_arch_limits(arch, dtype):
    need(base._nvrtc_lib, 'nvidia-cuda-nvrtc-cu12 is not installed (pip install -e .[test])')
    p = cuda.whole_plan(100, 256, 10, 784, dtype, shared_limit=OPTIN[arch])
    cubin, log = base.nvrtc.compile_cubin(cuda.whole_source(), arch, list(cuda.whole_options(p)) + ['-Xptxas=-v'],
                                          name='irnn_whole.cu')
    assert cubin[:4] == b'\x7fELF'
    assert 'warning' not in log.lower(), log
    rep = ptxas_report(log)
    assert set(rep) == {'irnn_whole_rows', 'irnn_whole_reduce', 'irnn_whole_apply'}, log
    for name, (regs, spill, stack, smem, bars) in rep.items():
        assert spill == 0 and stack == 0, (name, log)  # nothing in local memory
        assert bars == 1, (name, bars)
    regs, _, _, smem, _ = rep['irnn_whole_rows']
    assert p.threads == 416 and regs * p.threads <= REGS_PER_SM, (regs, p.threads)  # one block fits an SM
    assert regs <= 128  # 512 threads (H = 128) would fit too
    assert smem == 0  # all of its shared memory is dynamic
    need_bytes = cuda.whole_shared_bytes(p, 784)
    assert need_bytes <= OPTIN[arch]
    # float32 holds E + b (100 KB) in shared memory; float64 reads it from global memory
    assert p.eb_shared == (dtype == np.float32)
    for name in ('irnn_whole_reduce', 'irnn_whole_apply'):
        assert rep[name][3] == cuda.REDUCE_THREADS * (np.dtype(dtype).itemsize + 4)


@pytest.mark.parametrize('arch', ['sm_80', 'sm_90'])
@pytest.mark.parametrize('split, min_blocks, threads', [(8, 1, 800), (4, 2, 416)])
def test_nvrtc_the_benchmarks_other_variants_do_not_spill(arch, split, min_blocks, threads):
    """8 threads per unit, and registers capped for two blocks per SM (float32)."""
    need(base._nvrtc_lib, 'nvidia-cuda-nvrtc-cu12 is not installed (pip install -e .[test])')
    p = cuda.whole_plan(100, 256, 10, 784, np.float32, OPTIN[arch], split=split, min_blocks=min_blocks)
    _, log = base.nvrtc.compile_cubin(cuda.whole_source(), arch, list(cuda.whole_options(p)) + ['-Xptxas=-v'])
    regs, spill, stack, _, _ = ptxas_report(log)['irnn_whole_rows']
    assert p.threads == threads and spill == 0 and stack == 0, log
    assert regs * threads * min_blocks <= REGS_PER_SM, (regs, threads, min_blocks)
    print(arch, split, min_blocks, regs)


def test_the_resource_check_can_fail():
    """A variant that cannot hold W in registers spills, and the parser sees it."""
    need(base._nvrtc_lib, 'nvidia-cuda-nvrtc-cu12 is not installed (pip install -e .[test])')
    opts = ['-DREAL=double', '-DH_UNITS=256', '-DSPLIT=1', '-DMIN_BLOCKS=2', '-Xptxas=-v']
    _, log = base.nvrtc.compile_cubin(cuda.whole_source(), 'sm_90', opts)
    assert ptxas_report(log)['irnn_whole_rows'][1] > 0, log


# ----------------------------------------------------------------------------- 2. emulator

_builds = {}


def emu_source(tmp_dir):
    """irnn_whole.cu with its `extern __shared__ T name[];` as CUDA_EMU_EXTERN_SHARED(T, name)
    (C++ has no block-scope shared extern); every other line as is."""
    src = cuda.whole_source()
    pat = re.compile(r'extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?([A-Za-z_][\w ]*?)\s+(\w+)\s*\[\s*\]\s*;')
    out, n = pat.subn(r'CUDA_EMU_EXTERN_SHARED(\1, \2);', src)
    assert n == 1, 'expected one dynamic shared declaration in irnn_whole.cu, found %d' % n
    path = os.path.join(str(tmp_dir), 'irnn_whole_emu.cu')
    with open(path, 'w') as f:
        f.write(out)
    return path


def build(tmp_dir, defines, tsan=False):
    need(base.CXX, 'no C++ compiler (g++ >= 11 for C++20 <barrier>)')
    key = (tuple(defines), tsan)
    if key not in _builds:
        emu_source(tmp_dir)
        out = os.path.join(str(tmp_dir), 'whole_%d%s.so' % (len(_builds), '_tsan' if tsan else ''))
        flags = ['-O1', '-g', '-fsanitize=thread'] if tsan else ['-O2']
        cmd = [base.CXX, '-std=c++20', '-fPIC', '-shared', '-pthread', '-I', str(tmp_dir), '-I', HERE] + \
            flags + list(defines) + [os.path.join(HERE, 'cuda_emu_whole.cpp'), '-o', out]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert p.returncode == 0, p.stdout
        _builds[key] = out
    return _builds[key]


@pytest.fixture(scope='module')
def emu_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('cuda_whole')


def test_emulated_shuffles_follow_the_programming_guide(emu_dir):
    lib = ctypes.CDLL(build(emu_dir, []))
    out = np.zeros((4, 6, 32, 32), np.int32)
    lib.probe_shuffles(ctypes.c_void_p(out.ctypes.data))
    lane = np.arange(32)
    for wi in range(6):
        w = 1 << wi
        group = lane // w * w
        for o in range(32):
            # the guide: __shfl_sync reads lane srcLane % width of the caller's group;
            # up/down: lane -/+ delta, own value when that leaves the group; xor: lane ^ mask,
            # own value when that is in a later group (an earlier group's is read)
            idx = group + o % w
            up = np.where(lane - group >= o, lane - o, lane)
            down = np.where(lane - group + o < w, lane + o, lane)
            x = lane ^ o
            xor = np.where(x < group + w, x, lane)
            for mode, want in enumerate((idx, up, down, xor)):
                np.testing.assert_array_equal(out[mode, wi, o] - 100, want, err_msg='mode %d width %d op %d'
                                              % (mode, w, o))


def test_emulated_dynamic_shared_memory_starts_as_a_fill_pattern(emu_dir):
    lib = ctypes.CDLL(build(emu_dir, []))
    out = np.zeros((2, 300), np.int32)
    lib.probe_dynamic_shared(ctypes.c_int(300), ctypes.c_void_p(out.ctypes.data))
    assert (out == -1).all()  # each block's buffer is refilled: block 1 does not see block 0's


class HostRead(AssertionError):
    pass


class DeviceArray(object):
    """An array on the emulated device: the kernels get its pointer; the host may only
    copy it through the backend (to_host), slice it into views, or fill it."""

    def __init__(self, a):
        self._a = a
        self.shape, self.dtype = a.shape, a.dtype

    def _refuse(self, *args, **kwargs):
        raise HostRead('a device array was read on the host')

    __array__ = __float__ = __int__ = __bool__ = __index__ = __iter__ = __len__ = item = tolist = _refuse
    __repr__ = __str__ = lambda self: 'DeviceArray(%s, %s)' % (self.shape, self.dtype)

    def __getitem__(self, key):
        return DeviceArray(self._a[key])

    def reshape(self, *shape):
        return DeviceArray(self._a.reshape(*shape))

    def __setitem__(self, key, value):
        if not np.isscalar(value):
            raise HostRead('only a fill from the host')
        self._a[key] = value


class EmuWholeKernel(object):
    def __init__(self, be, fn, real):
        self.be, self.fn, self.real, self.name = be, fn, real, fn.__name__[len('launch_'):]

    def __call__(self, grid, block, args, shared_mem=0):
        self.be.launches.append(self.name)
        conv = []
        for a in args:
            if isinstance(a, (DeviceArray, np.ndarray)):  # a Chainer model's arrays are plain ones
                a = a._a if isinstance(a, DeviceArray) else a
                assert a.flags.c_contiguous and a.dtype in (np.int32, np.float64, self.real), (self.name, a.dtype)
                conv.append(ctypes.c_void_p(a.ctypes.data))
            elif isinstance(a, np.int32):
                conv.append(ctypes.c_int(int(a)))
            elif isinstance(a, (np.float32, np.float64)):
                assert a.dtype == self.real, (self.name, a.dtype)
                conv.append(ctypes.c_float(float(a)) if a.dtype == np.float32 else ctypes.c_double(float(a)))
            else:
                raise AssertionError('%s: argument of type %s' % (self.name, type(a)))
        assert shared_mem <= self.be.max_shared()
        self.fn(ctypes.c_uint(grid[0]), ctypes.c_uint(block[0]), ctypes.c_uint(shared_mem), *conv)


class EmuWholeBackend(object):
    """cuda.WholeUpdate's backend on the CPU: DeviceArray arrays, emulated kernels."""

    def __init__(self, tmp_dir, extra=(), shared=cuda.OPTIN_SHARED_LIMIT, tsan=False):
        self.tmp_dir, self.extra, self.shared, self.tsan = tmp_dir, list(extra), shared, tsan
        self.launches, self.copies = [], 0

    def max_shared(self):
        return self.shared

    def zeros(self, shape, dtype):
        return DeviceArray(np.zeros(shape, dtype))

    def upload(self, a):
        return DeviceArray(np.ascontiguousarray(a).copy())

    def to_host(self, a):
        self.copies += 1
        return a._a.copy()

    def whole_kernel(self, fn, p):
        lib = ctypes.CDLL(build(self.tmp_dir, list(cuda.whole_options(p)) + self.extra, self.tsan))
        return EmuWholeKernel(self, getattr(lib, 'launch_' + fn), np.float32 if p.real == 'float' else np.float64)


# ----------------------------------------------------------------------------- 3. against Chainer

def problem(H, V, T, N, dtype, seed=0):
    """Weights scaled so units switch off and on without exploding; every fifth unit kept
    off by its bias (relu); a small data set of N sequences."""
    rng = np.random.default_rng(seed)
    E = rng.normal(0, 0.5, (V, H))
    W = rng.normal(0, 1, (H, H)) * (0.9 / np.sqrt(H))
    b = rng.normal(0, 0.1, H)
    b[::5] = -50
    Wy = rng.normal(0, 0.3, (10, H))
    by = rng.normal(0, 0.1, 10)
    data = rng.integers(0, V, (N, T)).astype(np.int32)
    labels = rng.integers(0, 10, N).astype(np.int32)
    return [a.astype(dtype) for a in (E, W, b, Wy, by)], data, labels


def chainer_model(params, activation, optimizer, lr, clip):
    H = params[1].shape[0]
    model = L.Classifier(model_mod.build('irnn' if activation == 'relu' else 'rnn-tanh', n_units=H,
                                         n_in=params[0].shape[0], n_out=10, impl='fused'))
    byname = dict(model.predictor.namedparams())
    for name, a in zip(cuda.WHOLE_PARAMS, params):
        byname['/' + name].array = a.copy()
    opt = (chainer.optimizers.SGD(lr=lr) if optimizer == 'sgd'
           else chainer.optimizers.RMSprop(lr=lr, alpha=0.9, eps=1e-7))
    opt.setup(model)
    opt.add_hook(train_mod.SkipNonFinite())
    if clip:
        opt.add_hook(api.gradient_clipping(clip))
    return model, opt, byname


def run_pair(be, params, data, labels, batches, activation='relu', optimizer='sgd', lr=0.05, clip=1.0,
             check=False):
    """The same updates by Chainer (CPU) and by the emulated whole update; per update both
    sides' loss, accuracy, gradients (before clipping) and weights; the emulated states."""
    B, T = len(batches[0]), data.shape[1]
    model, opt, byname = chainer_model(params, activation, optimizer, lr, clip)
    dev = [be.upload(a) for a in params]
    u = cuda.WholeUpdate(dev, B, T, optimizer=optimizer, lr=lr, clip=clip, activation=activation,
                         backend=be, check=check)
    ddata, dlabels = be.upload(data), be.upload(labels)
    order = be.upload(np.concatenate(batches).astype(np.int32))
    ref, got = [], []
    for i, rows in enumerate(batches):
        with chainer.using_config('train', True):
            loss = model(data[rows], labels[rows])
        model.cleargrads()
        loss.backward()
        grads = [byname['/' + n].grad.copy() for n in cuda.WHOLE_PARAMS]
        opt.update()
        ref.append((float(loss.array), float(model.accuracy.array), grads,
                    [byname['/' + n].array.copy() for n in cuda.WHOLE_PARAMS]))
        u.update(ddata, dlabels, order, offset=i * B)
        g, lc = u.gradients()
        lc = be.to_host(lc)
        got.append((float(lc[0]) / B, float(lc[1]) / B, [be.to_host(x) for x in g],
                    [be.to_host(a) for a in dev]))
    return ref, got, u


def max_rel(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(float(np.abs(b).max()), 1e-300))


def compare(ref, got, tol):
    """The largest relative difference of each quantity over the updates."""
    worst = {}
    for (rl, ra, rg, rw), (gl, ga, gg, gw) in zip(ref, got):
        assert abs(ga - ra) <= 1e-6, (ga, ra)  # the same rows right (Chainer: a float32 mean)
        worst['loss'] = max(worst.get('loss', 0), abs(gl - rl) / abs(rl))
        for n, x, y in zip(cuda.WHOLE_PARAMS, gg, rg):
            worst['d' + n] = max(worst.get('d' + n, 0), max_rel(x, y))
        for n, x, y in zip(cuda.WHOLE_PARAMS, gw, rw):
            worst[n] = max(worst.get(n, 0), max_rel(x, y))
    bad = {k: v for k, v in worst.items() if not v <= tol}
    assert not bad, (bad, worst)
    return worst


TOL = {np.float32: 1e-5, np.float64: 1e-12}
#: (H, V, T, B, updates, activation, optimizer, lr, clip)
CASES = [
    (24, 16, 20, 3, 3, 'relu', 'sgd', 0.05, 1.0),       # clipped (norms ~ 3-5)
    (24, 16, 20, 3, 3, 'tanh', 'rmsprop', 1e-3, 0.0),   # no clipping
    (40, 16, 10, 2, 2, 'relu', 'rmsprop', 1e-3, 100.0), # clipping on, not reached; 10 values per lane
]
#: 512 threads (float32 only: the slowest case to emulate)
CASE_512 = (128, 32, 4, 2, 2, 'relu', 'sgd', 0.05, 1.0)


def batches_of(N, B, n, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.permutation(N)[:B] for _ in range(n)]


@pytest.mark.parametrize('dtype, H, V, T, B, n, activation, optimizer, lr, clip',
                         [(d,) + c for c in CASES for d in (np.float64, np.float32)] + [(np.float32,) + CASE_512])
def test_emulated_whole_update_equals_chainers(emu_dir, dtype, H, V, T, B, n, activation, optimizer, lr, clip):
    params, data, labels = problem(H, V, T, 8, dtype)
    be = EmuWholeBackend(emu_dir)
    ref, got, u = run_pair(be, params, data, labels, batches_of(8, B, n), activation, optimizer, lr, clip)
    worst = compare(ref, got, TOL[dtype])
    assert u.plan.threads == {24: 96, 40: 160, 128: 512}[H] and u.plan.eb_shared == (dtype == np.float32)
    print(dtype.__name__, H, activation, optimizer, ' '.join('%s %.2g' % kv for kv in sorted(worst.items())))
    # the updates moved the weights, and (with clip 1) the clipping was reached
    assert max_rel(got[-1][3][1], params[1]) > 1e-4
    stats = u.read_stats()
    assert stats['updates'] == n and stats['skipped'] == 0
    assert abs(stats['loss'] - np.mean([r[0] for r in ref])) <= 1e-5 * stats['loss']
    if clip == 1.0:
        assert stats['last_norm'] > 1.0


def test_emulated_states_equal_the_c_kernel(emu_dir):
    from irnn_chainer import kernels
    params, data, labels = problem(24, 16, 30, 4, np.float64)
    be = EmuWholeBackend(emu_dir)
    dev = [be.upload(a) for a in params]
    u = cuda.WholeUpdate(dev, 4, 30, lr=0.0, backend=be, check=False)
    u.update(be.upload(data), be.upload(labels), be.upload(np.arange(4, dtype=np.int32)))
    hs = be.to_host(u.hs)  # (B, T, H)
    want, _ = kernels.cpu_kernel().forward(data, *params[:3], True, 'relu')  # (T, B, H)
    assert max_rel(hs.transpose(1, 0, 2), want) <= 1e-12
    off = hs == 0
    assert off[:, :, ::5].all() and 0.1 < off.mean() < 0.9


def test_e_plus_b_from_global_memory_too(emu_dir):
    """Where E + b does not fit the device's shared memory, the kernel reads it (and keeps
    dE) in global memory: the same results."""
    params, data, labels = problem(24, 16, 12, 6, np.float32, seed=3)
    be = EmuWholeBackend(emu_dir, shared=2048)
    ref, got, u = run_pair(be, params, data, labels, batches_of(6, 2, 2), 'relu', 'rmsprop', 1e-3, 1.0)
    assert not u.plan.eb_shared
    compare(ref, got, TOL[np.float32])


def test_non_finite_gradient_is_skipped_as_chainer_does(emu_dir):
    params, data, labels = problem(24, 16, 20, 6, np.float64, seed=4)
    params[0][3] = np.inf  # an id with an infinite embedding: inf states, NaN gradients
    data[data == 3] = 4
    data[1, 5] = 3  # in the first batch only
    be = EmuWholeBackend(emu_dir)
    ref, got, u = run_pair(be, params, data, labels, [np.array([0, 1]), np.array([2, 4])], 'relu', 'rmsprop',
                           1e-3, 1.0)
    assert not np.isfinite(ref[0][2][1]).all()  # Chainer's own gradient was not finite
    for x, y in zip(got[0][3], ref[0][3]):
        np.testing.assert_array_equal(x, y)  # skipped: the weights did not move
    compare(ref[1:], got[1:], TOL[np.float64])
    assert u.read_stats()['skipped'] == 1


def test_same_bits_run_to_run(emu_dir):
    runs = []
    for _ in range(2):
        params, data, labels = problem(24, 16, 16, 8, np.float32)
        be = EmuWholeBackend(emu_dir)
        _, got, _ = run_pair(be, params, data, labels, batches_of(8, 2, 2), 'relu', 'rmsprop', 1e-3, 1.0)
        runs.append(got)
    for a, b in zip(*runs):
        assert a[0] == b[0]
        for x, y in zip(a[2] + a[3], b[2] + b[3]):
            assert x.tobytes() == y.tobytes()


def test_missing_barrier_gives_wrong_results(emu_dir):
    params, data, labels = problem(24, 16, 20, 8, np.float64)
    be = EmuWholeBackend(emu_dir, extra=['-DWHOLE_SYNC()='])
    ref, got, _ = run_pair(be, params, data, labels, batches_of(8, 2, 1))
    assert max_rel(got[0][2][1], ref[0][2][1]) > 1e-2  # dW


def test_the_self_checks_truth_equals_chainers_update():
    """cuda.reference_update (what the whole update checks itself against on a device)
    is Chainer's update: two RMSprop updates with clipping reached, float64."""
    params, data, labels = problem(12, 16, 15, 6, np.float64, seed=7)
    model, opt, byname = chainer_model(params, 'relu', 'rmsprop', 1e-3, 1.0)
    cur, state = [a.copy() for a in params], [np.zeros_like(a) for a in params]
    for rows in batches_of(6, 3, 2):
        loss = model(data[rows], labels[rows])
        model.cleargrads()
        loss.backward()
        opt.update()
        cur, state, rloss, racc, _ = cuda.reference_update(cur, state, data[rows], labels[rows], 'rmsprop', 1e-3,
                                                           1.0)
        assert abs(rloss - float(loss.array)) <= 1e-14 * rloss and racc == float(model.accuracy.array)
        for n, a in zip(cuda.WHOLE_PARAMS, cur):
            assert max_rel(a, byname['/' + n].array) <= 1e-13, n
        for n, s in zip(cuda.WHOLE_PARAMS, state):
            assert max_rel(s, byname['/' + n].update_rule.state['ms']) <= 1e-12, n


def test_self_check_passes_and_a_wrong_kernel_is_refused(emu_dir):
    params, data, labels = problem(24, 16, 10, 4, np.float32)
    for activation in ('relu', 'tanh'):
        diffs = cuda.whole_self_check(EmuWholeBackend(emu_dir), cuda.whole_plan(24, 16, 10, 10, np.float32),
                                      activation)
        assert max(diffs.values()) <= 1e-5 and len(diffs) == 15
    be = EmuWholeBackend(emu_dir, extra=['-DWHOLE_SYNC()='])
    with pytest.raises(cuda.KernelCheckError) as e:
        cuda.WholeUpdate([be.upload(a) for a in params], 4, 10, backend=be)  # check=True: the default
    assert '\n' not in str(e.value) and 'disagrees' in str(e.value), str(e.value)


# ----------------------------------------------------------------------------- 4. host side

def test_three_launches_per_update_and_no_host_copy_between_reads(emu_dir):
    params, data, labels = problem(24, 16, 10, 32, np.float32)
    be = EmuWholeBackend(emu_dir)
    dev = [be.upload(a) for a in params]
    u = cuda.WholeUpdate(dev, 4, 10, optimizer='rmsprop', lr=1e-3, clip=1.0, backend=be, check=False)
    ddata, dlabels = be.upload(data), be.upload(labels)
    order = be.upload(np.random.default_rng(0).permutation(32).astype(np.int32))  # once per epoch
    for i in range(8):
        u.update(ddata, dlabels, order, offset=4 * i, lr=1e-3 * (1 - i / 8))
    assert be.launches == ['irnn_whole_rows', 'irnn_whole_reduce', 'irnn_whole_apply'] * 8
    assert be.copies == 0
    s = u.read_stats()
    assert be.copies == 1 and s['updates'] == 8 and np.isfinite(s['loss'])
    assert u.read_stats()['updates'] == 0 and be.copies == 2  # read resets
    with pytest.raises(HostRead):
        float(u.stats[0])  # the guard is real: an implicit read fails


# ----------------------------------------------------------------------------- 5. TSan

def tsan_main(tmp_dir, no_sync):
    extra = ['-DWHOLE_SYNC()='] if no_sync else []
    params, data, labels = problem(16, 16, 4, 4, np.float64)
    be = EmuWholeBackend(tmp_dir, extra=extra, tsan=True)
    ref, got, _ = run_pair(be, params, data, labels, batches_of(4, 2, 1), 'relu', 'rmsprop', 1e-3, 1.0)
    worst = max(max_rel(x, y) for r, g in zip(ref, got) for x, y in zip(g[2] + g[3], r[2] + r[3]))
    print('max_rel %.3g' % worst)


def run_tsan(tmp_dir, no_sync):
    need(base.TSAN_LIB and os.path.exists(base.TSAN_LIB), 'no libtsan for %s' % base.CXX)
    extra = ['-DWHOLE_SYNC()='] if no_sync else []
    p = cuda.whole_plan(16, 16, 10, 4, np.float64)
    build(tmp_dir, list(cuda.whole_options(p)) + extra, True)
    code = ('import sys; sys.path.insert(0, %r); import test_cuda_whole as t; t._builds.update(%r); '
            't.tsan_main(%r, %r)' % (HERE, _builds, str(tmp_dir), no_sync))
    # Chainer's side on the NumPy kernel and one BLAS thread: TSan sees only instrumented
    # code, and would take the C kernel's or OpenBLAS's own synchronisation for races
    env = dict(os.environ, LD_PRELOAD=base.TSAN_LIB, TSAN_OPTIONS='halt_on_error=0 report_signal_unsafe=0',
               IRNN_FUSED_KERNEL='numpy', OPENBLAS_NUM_THREADS='1', OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, '-c', code], cwd=HERE, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=600)


def test_no_race_under_threadsanitizer_and_the_barrier_is_needed(emu_dir):
    p = run_tsan(emu_dir, no_sync=False)
    assert p.returncode == 0, p.stderr[-3000:]
    assert 'ThreadSanitizer' not in p.stderr, p.stderr[-3000:]
    assert float(p.stdout.split('max_rel')[1]) <= 1e-12, p.stdout
    p = run_tsan(emu_dir, no_sync=True)
    assert 'WARNING: ThreadSanitizer: data race' in p.stderr, p.stderr[-3000:]
    assert re.search(r'irnn_whole_emu\.cu:\d+', p.stderr), p.stderr[-3000:]


# ----------------------------------------------------------------------------- 6. Chainer's objects

def chainer_setup(params, optimizer, hooks=('skip', 'clip')):
    model, opt, byname = chainer_model(params, 'relu', optimizer, 1e-3 if optimizer == 'rmsprop' else 0.05,
                                       1.0 if 'clip' in hooks else 0)
    if 'skip' not in hooks:
        opt.remove_hook('SkipNonFinite')
    return model, opt, byname


def test_whole_update_on_chainers_own_optimizer_and_snapshot(emu_dir, tmp_path):
    """whole_update_for() on a set-up Chainer optimizer: the model's arrays and RMSprop's
    'ms' are updated in place, t counts as Chainer counts, a snapshot holds the result;
    the same as Chainer's own updates of a twin."""
    params, data, labels = problem(24, 16, 12, 8, np.float64, seed=9)
    model, opt, byname = chainer_setup(params, 'rmsprop')
    twin, topt, tbyname = chainer_setup(params, 'rmsprop')
    be = EmuWholeBackend(emu_dir)
    u = cuda.whole_update_for(opt, 3, 12, backend=be, check=False)
    assert (u.optimizer, u.clip, u.skip, u.alpha, u.eps) == ('rmsprop', 1.0, True, 0.9, 1e-7)
    ddata, dlabels = be.upload(data), be.upload(labels)
    batches = batches_of(8, 3, 3)
    order = be.upload(np.concatenate(batches).astype(np.int32))
    for i, rows in enumerate(batches):
        u.update(ddata, dlabels, order, offset=3 * i, lr=opt.lr)
        cuda.finish_chainer_update(opt)
        loss = twin(data[rows], labels[rows])
        twin.cleargrads()
        loss.backward()
        topt.update()
    assert opt.t == topt.t == 3
    for n in cuda.WHOLE_PARAMS:
        p, q = byname['/' + n], tbyname['/' + n]
        assert max_rel(p.array, q.array) <= 1e-12, n
        assert max_rel(p.update_rule.state['ms'], q.update_rule.state['ms']) <= 1e-12, n
        assert p.update_rule.t == q.update_rule.t == 3
    path, mpath = str(tmp_path / 'opt.npz'), str(tmp_path / 'model.npz')
    chainer.serializers.save_npz(path, opt)  # (what a Trainer snapshot holds: both)
    chainer.serializers.save_npz(mpath, model)
    back, bopt, bbyname = chainer_setup([a * 0 for a in params], 'rmsprop')
    chainer.serializers.load_npz(mpath, back)
    chainer.serializers.load_npz(path, bopt)
    assert bopt.t == 3
    for n in cuda.WHOLE_PARAMS:
        np.testing.assert_array_equal(bbyname['/' + n].array, byname['/' + n].array)
        np.testing.assert_array_equal(bbyname['/' + n].update_rule.state['ms'], byname['/' + n].update_rule.state['ms'])


def test_whole_update_for_says_what_it_does_not_run(emu_dir):
    params = problem(24, 16, 12, 8, np.float64)[0]
    be = EmuWholeBackend(emu_dir)
    model, opt, _ = chainer_setup(params, 'sgd', hooks=('clip',))
    u = cuda.whole_update_for(opt, 2, 12, backend=be, check=False)
    assert (u.optimizer, u.clip, u.skip) == ('sgd', 1.0, False)
    cases = []
    m = L.Classifier(model_mod.build('irnn', n_units=24, n_in=16, impl='fused'))
    o = chainer.optimizers.MomentumSGD(lr=0.01)
    o.setup(m)
    cases.append((o, 'SGD or RMSprop, got MomentumSGD'))
    m, o, _ = chainer_setup(params, 'sgd')
    o.add_hook(chainer.optimizer_hooks.WeightDecay(1e-4))
    cases.append((o, 'got WeightDecay'))
    m, o, _ = chainer_setup(params, 'sgd')
    m.predictor.dropout = 0.1
    cases.append((o, 'dropout 0.1'))
    m = L.Classifier(model_mod.build('irnn', n_units=(8, 8), n_in=16, impl='fused'))
    o = chainer.optimizers.SGD(lr=0.01)
    o.setup(m)
    cases.append((o, '2 layers'))
    for o, why in cases:
        with pytest.raises(NotImplementedError) as e:
            cuda.whole_update_for(o, 2, 12, backend=be, check=False)
        assert why in str(e.value) and '\n' not in str(e.value), str(e.value)
