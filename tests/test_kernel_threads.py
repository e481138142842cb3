"""The C kernel's threads and its own tanh.

- Threads: the batch rows are split over threads; every output (states, dE, dW, db) must be
  the same bits for any thread count (resume and several tests compare bit for bit), and the
  same as the NumPy kernel within the usual tolerance.
- tanh: the float32 kernel uses its own vector tanh; it must be within 2 ulp of the C
  library's tanhf (NumPy's float32 tanh) and within 1 ulp of the correctly rounded value over
  the whole float32 range, and exact on +-0, subnormals, +-inf and NaN.
"""
import numpy as np
import pytest

import irnn_chainer  # noqa: F401  (compat shims before chainer)
from irnn_chainer import kernels
from irnn_chainer.kernels import numpy_kernel, threads

pytestmark = pytest.mark.skipif(kernels.c_kernel is None,
                                reason='C kernel not built: %s' % kernels._c_error)
c_kernel = kernels.c_kernel


@pytest.fixture(autouse=True)
def _threads_back():
    yield
    threads.set_threads(None)


def _problem(B, T, H, dtype, seed):
    rng = np.random.default_rng(seed)
    V = 256
    E = rng.normal(0, 0.5, (V, H)).astype(dtype)
    W = (rng.normal(0, 1, (H, H)) * (0.9 / np.sqrt(H))).astype(dtype)  # units switch off and on
    b = rng.normal(0, 0.1, H).astype(dtype)
    ids = rng.integers(0, V, (B, T)).astype(np.int32)
    gT = rng.normal(size=(B, H)).astype(dtype)
    gseq = rng.normal(size=(T, B, H)).astype(dtype)
    return ids, E, W, b, gT, gseq, V


def _run(n_threads, problem, activation, with_seq):
    ids, E, W, b, gT, gseq, V = problem
    threads.set_threads(n_threads)
    hs, hT = c_kernel.forward(ids, E, W, b, True, activation)
    hs = hs.copy()  # the kernel's buffer pool may reuse it
    grads = c_kernel.backward(ids, hs, W, gT, gseq if with_seq else None, V, activation)
    return [hs, hT] + [g.copy() for g in grads]


@pytest.mark.parametrize('activation', ['relu', 'tanh'])
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('B,T,H', [(1, 7, 100), (5, 1, 100), (16, 784, 100), (17, 30, 37),
                                   (40, 12, 128)])
def test_same_bits_for_any_thread_count(activation, dtype, B, T, H):
    problem = _problem(B, T, H, dtype, seed=B * 1000 + T)
    ref = _run(1, problem, activation, with_seq=(T == 12))
    for n in (2, 3, 8):
        got = _run(n, problem, activation, with_seq=(T == 12))
        for name, a, r in zip(('hs', 'hT', 'dE', 'dW', 'db'), got, ref):
            np.testing.assert_array_equal(a, r, err_msg='%s, %d threads vs 1' % (name, n))


@pytest.mark.parametrize('activation', ['relu', 'tanh'])
def test_threaded_kernel_matches_numpy_kernel(activation):
    ids, E, W, b, gT, gseq, V = _problem(24, 784, 100, np.float64, seed=3)
    threads.set_threads(3)
    hs, hT = c_kernel.forward(ids, E, W, b, True, activation)
    dE, dW, db = c_kernel.backward(ids, hs, W, gT, gseq, V, activation)
    hs_r, hT_r = numpy_kernel.forward(ids, E, W, b, True, activation)
    dE_r, dW_r, db_r = numpy_kernel.backward(ids, hs_r, W, gT, gseq, V, activation)
    assert (hs_r == 0).mean() > 0.1 if activation == 'relu' else True  # units do switch off
    for a, r in ((hT, hT_r), (dE, dE_r), (dW, dW_r), (db, db_r)):
        scale = np.abs(r).max()
        np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-10 * scale)


def test_thread_count_settings(monkeypatch):
    monkeypatch.delenv(threads.ENV, raising=False)
    assert threads.get_threads() == threads.available() >= 1
    monkeypatch.setenv(threads.ENV, '3')
    assert threads.get_threads() == 3 and 'IRNN_THREADS' in threads.describe()
    threads.set_threads(2)
    assert threads.get_threads() == 2 and '--threads' in threads.describe()
    threads.set_threads(None)
    for bad in ('0', '-1', 'two', '1.5', ' '):
        if not bad.strip():
            continue
        monkeypatch.setenv(threads.ENV, bad)
        with pytest.raises(ValueError, match='IRNN_THREADS: expected a positive integer'):
            threads.get_threads()
    with pytest.raises(ValueError, match='--threads: expected a positive integer'):
        threads.set_threads(0)


# ------------------------------------------------------------------------------- tanh

def _ordered(a):
    """float32 -> integers in the order of the floats, so ulp distance is a difference."""
    i = a.view(np.int32).astype(np.int64)
    return np.where(i < 0, -(i & 0x7fffffff), i)


def test_float32_tanh_within_2_ulp_of_tanhf_over_the_whole_range():
    # every 1009th float32 bit pattern (all signs, exponents, subnormals, inf, NaN) plus a
    # dense grid where the two branches of the approximation meet and tanh bends
    bits = np.arange(0, 2 ** 32, 1009, dtype=np.uint64).astype(np.uint32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.1754942e-38,
                        -1.1754942e-38, 0.625, -0.625, np.nextafter(np.float32(0.625), 0),
                        9.0, 9.01, 9.5, 10, 44, 88.8, 3.4e38, -3.4e38], np.float32)
    x = np.concatenate([bits.view(np.float32), special,
                        np.linspace(-12, 12, 1_000_001, dtype=np.float32),
                        np.linspace(-1e-3, 1e-3, 100_001, dtype=np.float32)])
    with np.errstate(invalid='ignore'):
        y = c_kernel.tanh(x)
        ref = np.tanh(x)
        exact = np.tanh(x.astype(np.float64)).astype(np.float32)  # correctly rounded (nearly)
    nan = np.isnan(x)
    assert np.isnan(y[nan]).all() and not np.isnan(y[~nan]).any()
    d_tanhf = np.abs(_ordered(y[~nan]) - _ordered(ref[~nan]))
    d_exact = np.abs(_ordered(y[~nan]) - _ordered(exact[~nan]))
    assert d_tanhf.max() <= 2, x[~nan][np.argmax(d_tanhf)]
    assert d_exact.max() <= 1, x[~nan][np.argmax(d_exact)]
    assert np.abs(y[~nan]).max() <= 1
    # signs and the exact cases
    zero = x == 0
    np.testing.assert_array_equal(np.signbit(y[zero]), np.signbit(x[zero]))
    sub = (np.abs(x) < np.finfo(np.float32).tiny) & ~zero
    np.testing.assert_array_equal(y[sub], x[sub])   # tanh x = x for subnormal x
    assert c_kernel.tanh(np.array([np.inf, -np.inf, 9.5, -20], np.float32)).tolist() == [1, -1, 1, -1]
    odd = x[~nan]
    np.testing.assert_array_equal(c_kernel.tanh(-odd), -c_kernel.tanh(odd))


def test_float64_tanh_is_the_c_library_one():
    import math
    x = np.random.default_rng(0).normal(0, 3, 10000)
    np.testing.assert_array_equal(c_kernel.tanh(x), [math.tanh(v) for v in x])


# ------------------------------------------------------------------- command line

def test_cli_threads_flag_env_and_communicator_default(monkeypatch, capsys):
    import argparse
    from irnn_chainer.commands import cli
    monkeypatch.delenv(threads.ENV, raising=False)
    cli.set_threads(argparse.Namespace(threads=3, communicator=None))
    assert threads.get_threads() == 3
    cli.set_threads(argparse.Namespace(threads=None, communicator='naive'))
    assert threads.get_threads() == 1          # one per MPI process unless told
    cli.set_threads(argparse.Namespace(threads=2, communicator='naive'))
    assert threads.get_threads() == 2
    monkeypatch.setenv(threads.ENV, '2')
    cli.set_threads(argparse.Namespace(threads=None, communicator='naive'))
    assert threads.get_threads() == 2          # the environment is a choice too
    cli.set_threads(argparse.Namespace(threads=None, communicator=None))
    assert threads.get_threads() == 2
    monkeypatch.setenv(threads.ENV, 'many')
    assert cli.main(['info']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["irnn-chainer: error: IRNN_THREADS: expected a positive integer number of "
                   "threads, got 'many'"]
    monkeypatch.setenv(threads.ENV, '1')
    assert cli.main(['info', ]) == 0
    assert 'threads  1 (from IRNN_THREADS; ' in capsys.readouterr().out


# ------------------------------------------------------------------------- LSTM

def _lstm_problem(B, T, H, dtype, seed):
    rng = np.random.default_rng(seed)
    V = 256
    G = rng.normal(0, 1, (V, 4 * H)).astype(dtype)
    U = rng.normal(0, 1.5 / np.sqrt(H), (4 * H, H)).astype(dtype)
    ids = rng.integers(0, V, (B, T)).astype(np.int32)
    gT = rng.normal(size=(B, H)).astype(dtype)
    return ids, G, U, gT, V


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('B,T,H', [(1, 5, 100), (16, 784, 100), (19, 20, 13)])
def test_lstm_same_bits_for_any_thread_count(dtype, B, T, H):
    from irnn_chainer.kernels import lstm_c
    ids, G, U, gT, V = _lstm_problem(B, T, H, dtype, seed=T)
    out = []
    for n in (1, 2, 5):
        threads.set_threads(n)
        saved, hT = lstm_c.forward(ids, G, U, True)
        dG, dU = lstm_c.backward(ids, saved, U, gT, V)
        _, hT_nograph = lstm_c.forward(ids, G, U, False)
        np.testing.assert_array_equal(hT_nograph, hT)
        out.append([hT, dG, dU])
    for got in out[1:]:
        for name, a, r in zip(('hT', 'dG', 'dU'), got, out[0]):
            np.testing.assert_array_equal(a, r, err_msg=name)


@pytest.mark.parametrize('dtype, tol', [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_lstm_c_kernel_matches_numpy_kernel(dtype, tol):
    from irnn_chainer.kernels import lstm_c, lstm_numpy
    ids, G, U, gT, V = _lstm_problem(17, 784, 100, dtype, seed=5)
    threads.set_threads(2)
    saved, hT = lstm_c.forward(ids, G, U, True)
    dG, dU = lstm_c.backward(ids, saved, U, gT, V)
    saved_r, hT_r = lstm_numpy.forward(ids, G, U, True)
    dG_r, dU_r = lstm_numpy.backward(ids, saved_r, U, gT, V)
    assert np.abs(dU_r).max() > 1e-3   # the gradient does reach back through the steps
    for a, r in ((hT, hT_r), (dG, dG_r), (dU, dU_r)):
        scale = np.abs(r).max()
        np.testing.assert_allclose(a, r, rtol=tol, atol=tol * scale)


# ---------------------------------------------------------------------- the worker pool

def test_calls_from_several_python_threads_at_once_give_the_same_bits():
    # the kernels release the GIL: a call made while another holds the pool starts threads
    # of its own; every call's result must still be the one a lone call gives
    import threading
    problem = _problem(16, 200, 100, np.float32, seed=11)
    ref = _run(2, problem, 'relu', with_seq=False)
    out, errors = [None] * 6, []

    def worker(i):
        try:
            ids, E, W, b, gT, gseq, V = problem
            for _ in range(5):
                hs, hT = c_kernel.forward(ids, E, W, b, True, 'relu')
                hs = hs.copy()
                grads = c_kernel.backward(ids, hs, W, gT, None, V, 'relu')
            out[i] = [hs, hT] + [g.copy() for g in grads]
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)
    threads.set_threads(2)
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(len(out))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors and not any(t.is_alive() for t in ts), errors
    for got in out:
        for name, a, r in zip(('hs', 'hT', 'dE', 'dW', 'db'), got, ref):
            np.testing.assert_array_equal(a, r, err_msg=name)


def test_a_forked_child_starts_a_pool_of_its_own():
    # the parent's pool threads do not survive fork(): a child that waited for them would hang
    import os
    import signal
    if not hasattr(os, 'fork'):
        pytest.skip('no fork on this platform')
    problem = _problem(16, 50, 100, np.float32, seed=12)
    ref = _run(2, problem, 'relu', with_seq=False)  # the pool is started in the parent
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one threaded call, then the verdict through the pipe
        code = 1
        try:
            signal.alarm(60)
            got = _run(2, problem, 'relu', with_seq=False)
            code = 0 if all(np.array_equal(a, b) for a, b in zip(got, ref)) else 3
        finally:
            os.write(w, bytes([code]))
            os._exit(code)
    os.close(w)
    verdict = os.read(r, 1)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert verdict == b'\x00' and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (verdict, status)
