"""The fused IRNN recurrence (one FunctionNode, C and NumPy kernels) against a stepwise
Chainer graph built here from F.embed_id / F.linear / F.relu on the same weights."""
import functools
import os
import tracemalloc
import types

import numpy as np
import pytest

import irnn_chainer  # noqa: F401  (compat shims before chainer)
import chainer
import chainer.functions as F
from chainer import gradient_check

from irnn_chainer import kernels
from irnn_chainer.model import fused
from irnn_chainer.model.fused import IRNNRecurrence, irnn_recurrence

KERNELS = ['numpy', pytest.param('c', marks=pytest.mark.skipif(
    kernels.c_kernel is None, reason='C kernel not built: %s' % kernels._c_error))]
TOL = {np.float32: 1e-5, np.float64: 1e-10}
V, H, N_OUT = 256, 100, 10


@pytest.fixture
def kernel(request, monkeypatch):
    monkeypatch.setenv(kernels.ENV, request.param)
    assert kernels.backend_name() == request.param
    return request.param


def assert_close(actual, expected, rtol, what=''):
    """Equal within rtol relative to the largest magnitude of the reference."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, what
    scale = max(float(np.abs(expected).max()), 1e-30)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


@functools.lru_cache(maxsize=None)
def problem(T, B, dtype):
    """Random weights (not the identity), random ids and labels; W scaled so units switch
    off and on along the sequence without the state exploding over 784 steps."""
    rng = np.random.default_rng(1000 * T + B + (7 if dtype == np.float64 else 0))
    E = rng.normal(0, 0.5, (V, H)).astype(dtype)
    W = (rng.normal(0, 1, (H, H)) * (0.9 / np.sqrt(H))).astype(dtype)
    b = rng.normal(0, 0.1, H).astype(dtype)
    R = rng.normal(0, 0.5, (N_OUT, H)).astype(dtype)
    ids = rng.integers(0, V, (B, T)).astype(np.int32)
    labels = rng.integers(0, N_OUT, B).astype(np.int32)
    return E, W, b, R, ids, labels


def loss_and_grads(recurrence, T, B, dtype):
    E, W, b, R, ids, labels = problem(T, B, dtype)
    Ev, Wv, bv = (chainer.Parameter(a.copy()) for a in (E, W, b))
    h = recurrence(ids, Ev, Wv, bv)
    loss = F.softmax_cross_entropy(F.linear(h, R), labels)
    loss.backward()
    return h.array, float(loss.array), Ev.grad, Wv.grad, bv.grad


def stepwise(ids, E, W, b, act=F.relu):
    h = chainer.Variable(np.zeros((ids.shape[0], W.shape[0]), dtype=W.dtype))
    xs = np.ascontiguousarray(ids.T)
    for t in range(ids.shape[1]):
        h = act(F.embed_id(xs[t], E) + F.linear(h, W, b))
    return h


@functools.lru_cache(maxsize=None)
def reference(T, B, dtype):
    return loss_and_grads(stepwise, T, B, dtype)


@pytest.mark.parametrize('kernel', KERNELS, indirect=True)
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('B', [1, 16])
@pytest.mark.parametrize('T', [1, 2, 7, 784])
def test_matches_stepwise(kernel, dtype, B, T):
    ref = reference(T, B, dtype)
    got = loss_and_grads(irnn_recurrence, T, B, dtype)
    tol = TOL[dtype]
    for name, a, r in zip(('h_T', 'loss', 'dE', 'dW', 'db'), got, ref):
        assert_close(a, r, tol, name)
    assert got[0].dtype == dtype and got[2].dtype == dtype
    # some units are off at the end and some on: the ReLU kinks are exercised
    assert 0 < (ref[0] > 0).mean() < 1 or B == 1


@pytest.mark.parametrize('kernel', KERNELS, indirect=True)
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_sequence_matches_stepwise(kernel, dtype):
    E, W, b, R, ids, _ = problem(7, 16, dtype)
    ids = ids[:3]
    rng = np.random.default_rng(5)
    weights = rng.normal(size=(3, 7, H)).astype(dtype)
    out = []
    for fn in ('fused', 'stepwise'):
        Ev, Wv, bv = (chainer.Parameter(a.copy()) for a in (E, W, b))
        if fn == 'fused':
            hs = irnn_recurrence(ids, Ev, Wv, bv, return_sequence=True)
        else:
            hs = F.stack([stepwise(ids[:, :t + 1], Ev, Wv, bv) for t in range(7)], axis=1)
        F.sum(hs * weights).backward()
        out.append((hs.array, Ev.grad, Wv.grad, bv.grad))
    assert out[0][0].shape == (3, 7, H)
    for a, r in zip(*out):
        assert_close(a, r, TOL[dtype])


def kink_free_problem(seed, T=3, B=2, Hs=4, Vs=5, margin=0.05):
    """Small float64 inputs whose pre-activations stay away from 0 (for finite differences),
    with some units off."""
    rng = np.random.default_rng(seed)
    while True:
        E = rng.normal(0, 1, (Vs, Hs))
        W = rng.normal(0, 0.7, (Hs, Hs))
        b = rng.normal(0, 0.3, Hs)
        ids = rng.integers(0, Vs, (B, T)).astype(np.int32)
        h, pres = np.zeros((B, Hs)), []
        for t in range(T):
            pres.append(E[ids[:, t]] + h @ W.T + b)
            h = np.maximum(pres[-1], 0)
        pres = np.array(pres)
        if np.abs(pres).min() > margin and (pres < 0).any() and (h > 0).any():
            return E, W, b, ids


@pytest.mark.parametrize('kernel', KERNELS, indirect=True)
@pytest.mark.parametrize('return_sequence', [False, True])
def test_check_backward(kernel, return_sequence):
    E, W, b, ids = kink_free_problem(3)
    rng = np.random.default_rng(4)
    shape = ids.shape + (4,) if return_sequence else (ids.shape[0], 4)
    gy = rng.normal(size=shape)

    def f(E, W, b):
        return irnn_recurrence(ids, E, W, b, return_sequence=return_sequence)

    gradient_check.check_backward(f, (E, W, b), gy, eps=1e-6, atol=1e-7, rtol=1e-6,
                                  dtype=np.float64)


# ------------------------------------------------------------------ tanh (rnn-tanh)

def stepwise_tanh(ids, E, W, b):
    return stepwise(ids, E, W, b, act=F.tanh)


def fused_tanh(ids, E, W, b):
    return irnn_recurrence(ids, E, W, b, activation='tanh')


@functools.lru_cache(maxsize=None)
def reference_tanh(T, B, dtype):
    return loss_and_grads(stepwise_tanh, T, B, dtype)


@pytest.mark.parametrize('kernel', KERNELS, indirect=True)
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('B', [1, 16])
@pytest.mark.parametrize('T', [1, 2, 7, 784])
def test_tanh_matches_stepwise(kernel, dtype, B, T):
    ref = reference_tanh(T, B, dtype)
    for name, a, r in zip(('h_T', 'loss', 'dE', 'dW', 'db'), loss_and_grads(fused_tanh, T, B, dtype), ref):
        assert_close(a, r, TOL[dtype], name)
    # tanh states are signed and not clipped: a ReLU kernel would not give these
    assert (ref[0] < 0).any() and (ref[0] > 0).any()


@pytest.mark.parametrize('kernel', KERNELS, indirect=True)
@pytest.mark.parametrize('return_sequence', [False, True])
def test_tanh_check_backward(kernel, return_sequence):
    rng = np.random.default_rng(11)
    E, W, b = rng.normal(0, 1, (5, 4)), rng.normal(0, 0.7, (4, 4)), rng.normal(0, 0.3, 4)
    ids = rng.integers(0, 5, (2, 6)).astype(np.int32)
    gy = rng.normal(size=ids.shape + (4,) if return_sequence else (2, 4))

    def f(E, W, b):
        return irnn_recurrence(ids, E, W, b, return_sequence=return_sequence, activation='tanh')

    gradient_check.check_backward(f, (E, W, b), gy, eps=1e-6, atol=1e-7, rtol=1e-6,
                                  dtype=np.float64)


@pytest.mark.parametrize('kernel', KERNELS, indirect=True)
def test_unknown_activation_is_refused(kernel):
    E, W, b, R, ids, labels = problem(2, 1, np.float32)
    with pytest.raises(ValueError, match="expected 'relu' or 'tanh'"):
        irnn_recurrence(ids, E, W, b, activation='sigmoid')


# ------------------------------------------------------------------ LSTM (the baseline)

@pytest.mark.parametrize('kernel', KERNELS, indirect=True)
@pytest.mark.parametrize('dtype, T, tol', [(np.float64, 1, 1e-12), (np.float64, 9, 1e-12),
                                           (np.float64, 784, 1e-10), (np.float32, 784, 1e-5)])
def test_lstm_fused_matches_chainer_lstm(kernel, dtype, T, tol):
    """The fused LSTM against the model's stepwise path: Chainer's own L.LSTM, step by step."""
    from irnn_chainer.compat import api
    from irnn_chainer.model import build
    rng = np.random.RandomState(T)
    ref = api.build_in_dtype(lambda: build('lstm', n_units=12), np.dtype(dtype).name)
    for p in ref.params():
        p.array[...] = rng.normal(0, 0.4, p.shape)
    fused_model = api.build_in_dtype(lambda: build('lstm', n_units=12, impl='fused'), np.dtype(dtype).name)
    fused_model.copyparams(ref)
    ids = rng.randint(0, 256, (6, T)).astype(np.int32)
    labels = rng.randint(0, 10, 6).astype(np.int32)
    out = []
    for m in (ref, fused_model):
        m.cleargrads()
        y = m(ids)
        F.softmax_cross_entropy(y, labels).backward()
        # (with T = 1 Chainer's L.LSTM never applies lateral: no gradient, i.e. zeros)
        out.append((y.array, {n: np.zeros_like(p.array) if p.grad is None else p.grad.copy()
                              for n, p in m.namedparams()}))
    assert_close(out[1][0], out[0][0], tol, 'y')
    for name, g in out[0][1].items():
        assert_close(out[1][1][name], g, tol, name)
    assert np.abs(out[0][1]['/lstm/lateral/W']).max() > 0 or T == 1


@pytest.mark.parametrize('kernel', KERNELS, indirect=True)
def test_lstm_check_backward(kernel):
    from irnn_chainer.model.fused import lstm_recurrence
    rng = np.random.default_rng(2)
    H, Vs = 3, 5
    G, U = rng.normal(0, 1, (Vs, 4 * H)), rng.normal(0, 0.5, (4 * H, H))
    ids = rng.integers(0, Vs, (2, 5)).astype(np.int32)
    gy = rng.normal(size=(2, H))
    gradient_check.check_backward(lambda G, U: lstm_recurrence(ids, G, U), (G, U), gy,
                                  eps=1e-6, atol=1e-7, rtol=1e-6, dtype=np.float64)


def spy_nodes(monkeypatch):
    nodes = []
    orig = IRNNRecurrence.forward

    def forward(self, inputs):
        nodes.append(self)
        return orig(self, inputs)
    monkeypatch.setattr(IRNNRecurrence, 'forward', forward)
    return nodes


@pytest.mark.parametrize('kernel', KERNELS, indirect=True)
def test_no_graph_stores_nothing_per_step(kernel, monkeypatch):
    E, W, b, _, ids, _ = problem(784, 16, np.float32)
    Ev, Wv, bv = (chainer.Parameter(a) for a in (E, W, b))
    nodes = spy_nodes(monkeypatch)
    h_graph = irnn_recurrence(ids, Ev, Wv, bv)
    assert nodes[-1].hs.shape == (784, 16, H) and nodes[-1].kernel_name == kernel
    tracemalloc.start()
    try:
        with chainer.no_backprop_mode():
            h = irnn_recurrence(ids, Ev, Wv, bv)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    node = nodes[-1]
    assert node.hs is None and h.creator is None
    assert peak < 1 << 20, peak  # the states would be 784*16*100*4 = 5 MB
    np.testing.assert_array_equal(h.array, h_graph.array)


def test_inputs_without_grad_store_nothing(monkeypatch):
    E, W, b, _, ids, _ = problem(7, 16, np.float32)
    nodes = spy_nodes(monkeypatch)
    irnn_recurrence(ids, E, W, b)
    assert nodes[-1].hs is None


def test_kernel_choice(monkeypatch):
    monkeypatch.setenv(kernels.ENV, 'numpy')
    assert kernels.backend_name() == 'numpy'
    assert 'forced' in kernels.backend_description()
    monkeypatch.setenv(kernels.ENV, 'auto')
    assert kernels.backend_name() == ('numpy' if kernels.c_kernel is None else 'c')
    assert kernels.backend_description().startswith(kernels.backend_name())
    monkeypatch.setenv(kernels.ENV, 'fortran')
    with pytest.raises(ValueError, match='IRNN_FUSED_KERNEL'):
        kernels.backend_name()


def test_c_forced_without_build_raises(monkeypatch):
    monkeypatch.setattr(kernels, 'c_kernel', None)
    monkeypatch.setattr(kernels, '_c_error', 'ImportError: test')
    monkeypatch.setenv(kernels.ENV, 'c')
    with pytest.raises(RuntimeError, match='not built'):
        kernels.cpu_kernel()
    monkeypatch.setenv(kernels.ENV, 'auto')
    assert kernels.backend_name() == 'numpy'
    assert 'not built' in kernels.backend_description()


def test_gpu_arrays_are_not_sent_to_numpy(monkeypatch):
    fake_cupy = types.ModuleType('cupy')
    monkeypatch.setitem(__import__('sys').modules, 'irnn_chainer.kernels.cuda', None)
    with pytest.raises(NotImplementedError, match='fused GPU kernel not available'):
        kernels.get_kernel(fake_cupy)


def test_cupy_input_raises_without_gpu_kernel(monkeypatch):
    cupy = pytest.importorskip('cupy')
    try:
        cupy.zeros(1)
    except Exception as e:  # noqa: BLE001
        pytest.skip('no usable CUDA device: %s' % e)
    monkeypatch.setitem(__import__('sys').modules, 'irnn_chainer.kernels.cuda', None)
    E, W, b, _, ids, _ = problem(2, 1, np.float32)
    with pytest.raises(NotImplementedError, match='fused GPU kernel'):
        irnn_recurrence(cupy.asarray(ids), *(chainer.Parameter(cupy.asarray(a)) for a in (E, W, b)))


def test_double_backprop_raises():
    E, W, b, ids = kink_free_problem(3)
    Ev, Wv, bv = (chainer.Parameter(a) for a in (E, W, b))
    h = irnn_recurrence(ids, Ev, Wv, bv)
    gE, = chainer.grad([F.sum(h * h)], [Ev], enable_double_backprop=True)
    with pytest.raises(NotImplementedError, match='double backprop'):
        F.sum(gE * gE).backward()


def test_type_errors():
    E, W, b, ids = kink_free_problem(3)
    with pytest.raises(chainer.utils.type_check.InvalidType):
        irnn_recurrence(ids, E.astype(np.float32), W, b)
    with pytest.raises(chainer.utils.type_check.InvalidType):
        irnn_recurrence(ids, E, W[:, :3], b)


def test_ids_any_int_and_noncontiguous():
    E, W, b, ids = kink_free_problem(3)
    wide = np.asfortranarray(ids.astype(np.int64))
    np.testing.assert_array_equal(irnn_recurrence(wide, E, W, b).array,
                                  irnn_recurrence(ids, E, W, b).array)


@pytest.mark.skipif(kernels.c_kernel is None, reason='C kernel not built')
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_c_sparse_and_dense_products_agree(dtype, monkeypatch):
    ext = kernels.c_kernel._ext
    monkeypatch.setenv(kernels.ENV, 'c')
    before = ext.set_modes()
    try:
        out = []
        for modes in ((0, 0), (1, 1)):
            ext.set_modes(*modes)
            out.append(loss_and_grads(irnn_recurrence, 7, 16, dtype))
    finally:
        ext.set_modes(*before)
    for a, r in zip(*out):
        np.testing.assert_array_equal(a, r)


@pytest.mark.parametrize('kernel', KERNELS, indirect=True)
def test_two_graphs_alive_and_buffers_recycled(kernel):
    """Buffers are recycled only when a graph dies: two live graphs keep their own states."""
    refs = [reference(7, 16, np.float32), reference(2, 16, np.float32)]
    for _ in range(3):  # later rounds run on recycled buffers
        E, W, b, R, ids7, labels = problem(7, 16, np.float32)
        params = [[chainer.Parameter(a.copy()) for a in p[:3]]
                  for p in (problem(7, 16, np.float32), problem(2, 16, np.float32))]
        hs = [irnn_recurrence(p[4], *v) for p, v in zip(
            (problem(7, 16, np.float32), problem(2, 16, np.float32)), params)]
        # a third graph that dies at once, returning its buffers for reuse
        irnn_recurrence(ids7, *params[0])
        for h, v, p, ref in zip(hs, params, (problem(7, 16, np.float32),
                                             problem(2, 16, np.float32)), refs):
            F.softmax_cross_entropy(F.linear(h, p[3]), p[5]).backward()
            for a, r in zip((h.array,) + tuple(x.grad for x in v), (ref[0],) + ref[2:]):
                assert_close(a, r, 1e-5)
