"""The C kernel's instruction-set levels (AVX-512, AVX2, SSE2 baseline).

- On import the kernel runs the best level the CPU has, judged independently here from the
  CPU flags Linux reports in /proc/cpuinfo.
- Every level the CPU runs computes the same recurrence as the NumPy kernel (float64 within
  1e-10, float32 within 1e-5), keeps its bits for any thread count, and the two levels with
  fused multiply-adds (avx512, avx2) give the same bits as each other over shapes that hit
  every tail of their different vector widths and row blocks.
"""
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import irnn_chainer  # noqa: F401  (compat shims before chainer)
from irnn_chainer import kernels
from irnn_chainer.kernels import lstm_numpy, numpy_kernel, threads

pytestmark = pytest.mark.skipif(kernels.c_kernel is None,
                                reason='C kernel not built: %s' % kernels._c_error)
c_kernel = kernels.c_kernel
LEVELS = c_kernel.levels() if c_kernel else ()


@pytest.fixture(autouse=True)
def _restore():
    before = c_kernel.level()
    yield
    c_kernel.set_level(before)
    threads.set_threads(None)


def _cpu_flags():
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('flags'):
                return set(line.split(':', 1)[1].split())
    return set()


@pytest.mark.skipif(not (sys.platform.startswith('linux') and platform.machine() == 'x86_64'
                         and os.path.exists('/proc/cpuinfo')), reason='needs Linux on x86-64')
def test_import_picks_the_best_level_the_cpu_has():
    if LEVELS == ('generic',):
        pytest.skip('built with one generic level (not GCC)')
    flags = _cpu_flags()
    want = ['base']
    if {'avx2', 'fma'} <= flags:
        want.insert(0, 'avx2')
        if {'avx512f', 'avx512vl', 'avx512bw', 'avx512dq'} <= flags:
            want.insert(0, 'avx512')
    assert list(LEVELS) == want
    # a fresh process (this one's level may have been switched by another test)
    out = subprocess.run([sys.executable, '-c', 'import irnn_chainer.kernels.c_kernel as k; print(k.level())'],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [want[0]]
    assert kernels.backend_description().endswith('%s code)' % c_kernel.level())


def test_set_level_names_what_it_expected():
    with pytest.raises(ValueError, match=r"expected one of \(.*'%s'.*\).*got 'sse9'" % LEVELS[0]):
        c_kernel.set_level('sse9')
    assert c_kernel.level() == LEVELS[0]
    assert c_kernel.set_level(LEVELS[-1]) == LEVELS[0]
    assert c_kernel.level() == LEVELS[-1]


def _irnn(B, T, H, dtype, act, seed, with_seq=True):
    rng = np.random.default_rng(seed)
    V = 37
    E = rng.normal(0, 0.5, (V, H)).astype(dtype)
    W = (rng.normal(0, 1, (H, H)) * (0.9 / np.sqrt(H))).astype(dtype)
    b = rng.normal(0, 0.1, H).astype(dtype)
    ids = rng.integers(0, V, (B, T)).astype(np.int32)
    gT = rng.normal(size=(B, H)).astype(dtype)
    gseq = rng.normal(size=(T, B, H)).astype(dtype) if with_seq else None
    hs, hT = c_kernel.forward(ids, E, W, b, True, act)
    hs = hs.copy()
    grads = c_kernel.backward(ids, hs, W, gT, gseq, V, act)
    ref = numpy_kernel.forward(ids, E, W, b, True, act)
    ref_grads = numpy_kernel.backward(ids, ref[0], W, gT, gseq, V, act)
    return [hs, hT] + [g.copy() for g in grads], [ref[0], ref[1]] + list(ref_grads)


def _lstm(B, T, H, dtype, seed):
    from irnn_chainer.kernels import lstm_c
    rng = np.random.default_rng(seed)
    V = 11
    G = (rng.normal(size=(V, 4 * H)) * 0.5).astype(dtype)
    U = (rng.normal(size=(4 * H, H)) * 0.3).astype(dtype)
    ids = rng.integers(0, V, (B, T)).astype(np.int32)
    gT = rng.normal(size=(B, H)).astype(dtype)
    saved, hT = lstm_c.forward(ids, G, U, True)
    got = [np.array(hT)] + [np.array(g) for g in lstm_c.backward(ids, saved, U, gT, V)]
    saved_r, hT_r = lstm_numpy.forward(ids, G, U, True)
    ref = [hT_r] + list(lstm_numpy.backward(ids, saved_r, U, gT, V))
    return got, ref


SHAPES = [(1, 5, 1), (5, 6, 3), (16, 9, 8), (17, 7, 13), (4, 8, 24), (13, 6, 37), (16, 20, 100),
          (9, 4, 128)]


@pytest.mark.parametrize('level', LEVELS)
@pytest.mark.parametrize('dtype, tol', [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_every_level_matches_the_numpy_kernel(level, dtype, tol):
    c_kernel.set_level(level)
    threads.set_threads(2)
    for B, T, H in SHAPES:
        for act in ('relu', 'tanh'):
            got, ref = _irnn(B, T, H, dtype, act, seed=B * 100 + H)
            for name, a, r in zip(('hs', 'hT', 'dE', 'dW', 'db'), got, ref):
                np.testing.assert_allclose(a, r, rtol=tol, atol=tol * max(1.0, np.abs(r).max()),
                                           err_msg='%s %s B%d T%d H%d %s' % (level, act, B, T, H, name))
    for B, T, H in ((3, 5, 7), (16, 12, 100)):
        got, ref = _lstm(B, T, H, dtype, seed=H)
        assert np.abs(ref[2]).max() > 1e-3
        for name, a, r in zip(('hT', 'dG', 'dU'), got, ref):
            np.testing.assert_allclose(a, r, rtol=tol, atol=tol * max(1.0, np.abs(r).max()),
                                       err_msg='%s lstm H%d %s' % (level, H, name))


@pytest.mark.parametrize('level', LEVELS)
def test_every_level_keeps_its_bits_for_any_thread_count(level):
    c_kernel.set_level(level)
    out = []
    for n in (1, 3):
        threads.set_threads(n)
        out.append(_irnn(17, 30, 37, np.float32, 'relu', seed=1)[0] + _lstm(17, 9, 13, np.float32, 2)[0])
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not {'avx512', 'avx2'} <= set(LEVELS), reason='needs a CPU with AVX-512')
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_avx512_and_avx2_give_the_same_bits(dtype):
    runs = {}
    for level in ('avx512', 'avx2'):
        c_kernel.set_level(level)
        threads.set_threads(2)
        got = []
        for B, T, H in SHAPES:
            for act in ('relu', 'tanh'):
                got += _irnn(B, T, H, dtype, act, seed=H, with_seq=B % 2 == 1)[0]
        for H in (3, 13, 37, 100):
            got += _lstm(16, 7, H, dtype, seed=H)[0]
        runs[level] = got
    assert len(runs['avx2']) == len(runs['avx512'])
    for i, (a, b) in enumerate(zip(runs['avx512'], runs['avx2'])):
        np.testing.assert_array_equal(a, b, err_msg='output %d' % i)
    # the test can fail: the SSE2 level (no fused multiply-add) rounds differently
    if 'base' in LEVELS:
        c_kernel.set_level('base')
        base = _irnn(16, 20, 100, dtype, 'relu', seed=100, with_seq=False)[0]
        c_kernel.set_level('avx2')
        fused = _irnn(16, 20, 100, dtype, 'relu', seed=100, with_seq=False)[0]
        assert any(a.tobytes() != b.tobytes() for a, b in zip(base, fused))


@pytest.mark.parametrize('level', LEVELS)
def test_every_level_sparse_and_dense_products_agree(level):
    # the sparse row kernel walks whole vectors up to the 64-byte padding, which below
    # AVX-512 holds vectors entirely past the last column
    c_kernel.set_level(level)
    before = c_kernel._ext.set_modes()
    try:
        out = []
        for modes in ((0, 0), (1, 1)):
            c_kernel._ext.set_modes(*modes)
            got = []
            for B, T, H in ((5, 6, 3), (17, 7, 13), (16, 20, 100), (9, 4, 128)):
                got += _irnn(B, T, H, np.float32, 'relu', seed=H)[0]
            out.append(got)
    finally:
        c_kernel._ext.set_modes(*before)
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)
