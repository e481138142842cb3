"""The IRNN model against independent truths: the specified initialisation, a
hand-written NumPy loop of the recurrence and its backprop, Chainer's gradient_check,
and SGD with global-norm clipping computed by hand."""
import numpy as np
import pytest

import irnn_chainer  # noqa: F401  (compat shims first)
import chainer
import chainer.functions as F
from chainer import gradient_check

from irnn_chainer.compat import api
from irnn_chainer.model import IRNN, check_ids


def numpy_forward(E, W, b, V, c, ids):
    """h_t = relu(E[x_t] + h W^T + b); logits = h_T V^T + c. Returns logits and all h."""
    B, T = ids.shape
    hs = [np.zeros((B, W.shape[0]), dtype=E.dtype)]
    for t in range(T):
        hs.append(np.maximum(E[ids[:, t]] + hs[-1] @ W.T + b, 0))
    return hs[-1] @ V.T + c, hs


def numpy_backward(E, W, b, V, c, ids, gy):
    """Backprop through time for numpy_forward, given dL/dlogits."""
    _, hs = numpy_forward(E, W, b, V, c, ids)
    gE, gW, gb = np.zeros_like(E), np.zeros_like(W), np.zeros_like(b)
    gV, gc = gy.T @ hs[-1], gy.sum(0)
    gh = gy @ V
    for t in range(ids.shape[1], 0, -1):
        gpre = gh * (hs[t] > 0)
        np.add.at(gE, ids[:, t - 1], gpre)
        gW += gpre.T @ hs[t - 1]
        gb += gpre.sum(0)
        gh = gpre @ W
    return gE, gW, gb, gV, gc


def random_model(rng, n_units=6, n_in=256, dtype=np.float64):
    m = api.build_in_dtype(lambda: IRNN(n_units=n_units, n_in=n_in), dtype)
    # random, not only the identity init; scaled so some units switch off along the way
    m.pixel_to_h.W.array[...] = rng.normal(0, 0.5, m.pixel_to_h.W.shape)
    m.h_to_h.W.array[...] = rng.normal(0, 0.6, m.h_to_h.W.shape)
    m.h_to_h.b.array[...] = rng.normal(0, 0.1, m.h_to_h.b.shape)
    m.h_to_y.W.array[...] = rng.normal(0, 0.5, m.h_to_y.W.shape)
    m.h_to_y.b.array[...] = rng.normal(0, 0.1, m.h_to_y.b.shape)
    return m


def params(m):
    return [m.pixel_to_h.W.array, m.h_to_h.W.array, m.h_to_h.b.array, m.h_to_y.W.array, m.h_to_y.b.array]


def test_initialisation_as_specified():
    np.random.seed(0)
    m = IRNN()
    assert m.pixel_to_h.W.shape == (256, 100) and not hasattr(m.pixel_to_h, 'b')
    np.testing.assert_array_equal(m.h_to_h.W.array, np.eye(100, dtype=np.float32))
    np.testing.assert_array_equal(m.h_to_h.b.array, np.zeros(100, np.float32))
    np.testing.assert_array_equal(m.h_to_y.b.array, np.zeros(10, np.float32))
    assert m.h_to_y.W.shape == (10, 100)
    for w in (m.pixel_to_h.W.array, m.h_to_y.W.array):
        assert w.dtype == np.float32
        # N(0, 0.001): sample std of >= 1000 draws within 10% of 0.001, mean near 0
        assert abs(w.std() / 0.001 - 1) < 0.1, w.std()
        assert abs(w.mean()) < 0.0002
    assert sorted(name for name, _ in m.namedparams()) == [
        '/h_to_h/W', '/h_to_h/b', '/h_to_y/W', '/h_to_y/b', '/pixel_to_h/W']


def test_float64_build():
    m = api.build_in_dtype(lambda: IRNN(n_units=5), 'float64')
    assert {p.dtype for p in m.params()} == {np.dtype(np.float64)}
    np.testing.assert_array_equal(m.h_to_h.W.array, np.eye(5))


@pytest.mark.parametrize('T', [1, 7, 784])
def test_forward_equals_numpy_loop(T):
    rng = np.random.RandomState(T)
    m = random_model(rng, n_units=6)
    m.h_to_h.W.array[...] *= 0.3  # keep 784 steps finite
    ids = rng.randint(0, 256, size=(3, T)).astype(np.int32)
    expected, hs = numpy_forward(*params(m), ids)
    assert any((h == 0).any() for h in hs[1:]), 'test should exercise ReLUs that switch off'
    np.testing.assert_allclose(m(ids).array, expected, rtol=1e-12, atol=1e-14)


def test_float32_forward_on_real_init_close_to_float64():
    np.random.seed(1)
    m32 = IRNN()
    np.random.seed(1)
    m64 = api.build_in_dtype(lambda: IRNN(), 'float64')
    ids = np.random.RandomState(0).randint(0, 256, (2, 784)).astype(np.int32)
    np.testing.assert_allclose(m32(ids).array, m64(ids).array, rtol=1e-4, atol=1e-7)
    expected, _ = numpy_forward(*params(m64), ids)
    np.testing.assert_allclose(m64(ids).array, expected, rtol=1e-12)


def test_gradients_equal_numpy_backprop():
    rng = np.random.RandomState(3)
    m = random_model(rng, n_units=5)
    ids = rng.randint(0, 256, size=(4, 9)).astype(np.int32)
    gy = rng.normal(size=(4, 10))
    y = m(ids)
    y.grad = gy.copy()
    m.cleargrads()
    y.backward()
    got = [m.pixel_to_h.W.grad, m.h_to_h.W.grad, m.h_to_h.b.grad, m.h_to_y.W.grad, m.h_to_y.b.grad]
    for g, e in zip(got, numpy_backward(*params(m), ids, gy)):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


def test_gradient_check():
    rng = np.random.RandomState(4)
    m = random_model(rng, n_units=4, n_in=12)
    ids = rng.randint(0, 12, size=(3, 5)).astype(np.int32)
    gy = rng.normal(size=(3, 10))
    gradient_check.check_backward(
        lambda x: m(x), ids, gy, params=tuple(m.params()), no_grads=[True],
        eps=1e-6, atol=1e-7, rtol=1e-6, dtype=np.float64)


def test_one_clipped_sgd_update_is_exact():
    rng = np.random.RandomState(5)
    m = random_model(rng, n_units=6)
    ids = rng.randint(0, 256, size=(4, 20)).astype(np.int32)
    t = rng.randint(0, 10, size=4).astype(np.int32)
    before = [p.copy() for p in params(m)]
    loss = F.softmax_cross_entropy(m(ids), t)
    m.cleargrads()
    loss.backward()
    grads = [p.grad.copy() for p in (m.pixel_to_h.W, m.h_to_h.W, m.h_to_h.b, m.h_to_y.W, m.h_to_y.b)]
    norm = np.sqrt(sum((g ** 2).sum() for g in grads))
    lr, clip = 0.05, 0.5
    assert norm > clip, 'the test must exercise clipping'
    opt = api.setup_optimizer(chainer.optimizers.SGD(lr=lr), m, clip)
    opt.update()
    for p0, p1, g in zip(before, params(m), grads):
        np.testing.assert_allclose(p1, p0 - lr * g * (clip / norm), rtol=1e-12, atol=1e-15)


def test_stepwise_loss_matches_numpy_softmax_cross_entropy():
    rng = np.random.RandomState(6)
    m = random_model(rng, n_units=6)
    ids = rng.randint(0, 256, size=(5, 11)).astype(np.int32)
    t = rng.randint(0, 10, size=5).astype(np.int32)
    logits, _ = numpy_forward(*params(m), ids)
    z = logits - logits.max(1, keepdims=True)
    expected = -(z[np.arange(5), t] - np.log(np.exp(z).sum(1))).mean()
    assert api.scalar(F.softmax_cross_entropy(m(ids), t)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize('bad, exc, words', [
    (np.zeros((2, 5), np.float32), TypeError, ['integer pixel ids', 'float32']),
    (np.zeros(5, np.int32), ValueError, ['(batch, time)', '1-D', '(5,)']),
    (np.zeros((2, 3, 4), np.int32), ValueError, ['(batch, time)', '3-D']),
    (np.full((2, 5), 256, np.int32), ValueError, ['0..255', '256']),
    (np.full((2, 5), -1, np.int32), ValueError, ['0..255', '-1']),
    ([[1, 2, 3]], TypeError, ['integer array', 'list']),
    (np.zeros((0, 5), np.int32), ValueError, ['at least one']),
])
def test_bad_input_gives_clear_error(bad, exc, words):
    m = IRNN(n_units=3)
    with pytest.raises(exc) as info:
        m(bad)
    msg = str(info.value)
    assert '\n' not in msg and 'Expect:' not in msg
    for w in words:
        assert w in msg, (w, msg)


def test_other_integer_dtypes_accepted_as_int32():
    x = np.array([[0, 255, 3]], np.uint8)
    out = check_ids(x, 256)
    assert out.dtype == np.int32 and out.tolist() == [[0, 255, 3]]
    m = IRNN(n_units=3)
    np.testing.assert_array_equal(m(x).array, m(x.astype(np.int64)).array)


def test_rnn_variants_init_and_tanh_forward():
    from irnn_chainer.model import build
    np.random.seed(0)
    relu = build('rnn-relu', n_units=50)
    assert relu.activation == 'relu'
    W = relu.h_to_h.W.array
    assert abs(W.std() / 0.001 - 1) < 0.1 and not np.allclose(W, np.eye(50), atol=0.1)
    rng = np.random.RandomState(7)
    tanh = api.build_in_dtype(lambda: build('rnn-tanh', n_units=6), 'float64')
    for p in tanh.params():
        p.array[...] = rng.normal(0, 0.5, p.shape)
    ids = rng.randint(0, 256, size=(3, 9)).astype(np.int32)
    E, Wt, b, V, c = params(tanh)
    h = np.zeros((3, 6))
    for t in range(9):
        h = np.tanh(E[ids[:, t]] + h @ Wt.T + b)
    np.testing.assert_allclose(tanh(ids).array, h @ V.T + c, rtol=1e-12)
    # the fused recurrence gives the same outputs and gradients from the same parameters
    fused = api.build_in_dtype(lambda: build('rnn-tanh', n_units=6, impl='fused'), 'float64')
    fused.copyparams(tanh)
    labels = rng.randint(0, 10, size=3).astype(np.int32)
    grads = []
    for m in (tanh, fused):
        m.cleargrads()
        F.softmax_cross_entropy(m(ids), labels).backward()
        grads.append({name: p.grad.copy() for name, p in m.namedparams()})
    np.testing.assert_allclose(fused(ids).array, h @ V.T + c, rtol=1e-12)
    for name in grads[0]:
        np.testing.assert_allclose(grads[1][name], grads[0][name], rtol=1e-10, atol=1e-14, err_msg=name)


def test_lstm_forget_bias_and_forward_equal_numpy():
    from irnn_chainer.model import build
    rng = np.random.RandomState(8)
    m = api.build_in_dtype(lambda: build('lstm', n_units=4), 'float64')
    up_b = m.lstm.upward.b.array.reshape(4, 4)  # (units, gates a,i,f,o)
    np.testing.assert_array_equal(up_b[:, 2], np.ones(4))
    np.testing.assert_array_equal(up_b[:, [0, 1, 3]], np.zeros((4, 3)))
    for p in m.params():
        p.array[...] = rng.normal(0, 0.5, p.shape)
    ids = rng.randint(0, 256, size=(2, 6)).astype(np.int32)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    E, U, bu, L_ = (m.pixel_to_h.W.array, m.lstm.upward.W.array, m.lstm.upward.b.array,
                    m.lstm.lateral.W.array)
    h, c = np.zeros((2, 4)), np.zeros((2, 4))
    for t in range(6):
        z = (E[ids[:, t]] @ U.T + bu + h @ L_.T).reshape(2, 4, 4)
        a, i, f, o = np.tanh(z[..., 0]), sig(z[..., 1]), sig(z[..., 2]), sig(z[..., 3])
        c = a * i + f * c
        h = o * np.tanh(c)
    expected = h @ m.h_to_y.W.array.T + m.h_to_y.b.array
    np.testing.assert_allclose(m(ids).array, expected, rtol=1e-10)
    np.testing.assert_allclose(m(ids).array, expected, rtol=1e-10)  # state reset between calls


# ---- the GRU baseline (stepwise, Chainer's stateless GRU link) ---------------------------

def numpy_gru_forward(m, ids):
    """The GRU of Cho et al. by hand: r, z gates, candidate on r * h, h' = (1 - z) h + z h~."""
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    g = m.gru
    lin = lambda l, v: v @ l.W.array.T + l.b.array  # noqa: E731
    E = m.pixel_to_h.W.array
    h = np.zeros((ids.shape[0], m.n_units))
    for t in range(ids.shape[1]):
        x = E[ids[:, t]]
        r = sig(lin(g.W_r, x) + lin(g.U_r, h))
        z = sig(lin(g.W_z, x) + lin(g.U_z, h))
        cand = np.tanh(lin(g.W, x) + lin(g.U, r * h))
        h = (1 - z) * h + z * cand
    return h @ m.h_to_y.W.array.T + m.h_to_y.b.array


def gru_model(rng, n_units=4, n_in=12):
    from irnn_chainer.model import build
    m = api.build_in_dtype(lambda: build('gru', n_units=n_units, n_in=n_in), 'float64')
    for p in m.params():
        p.array[...] = rng.normal(0, 0.5, p.shape)
    return m


def test_gru_forward_equals_numpy():
    rng = np.random.RandomState(11)
    m = gru_model(rng)
    ids = rng.randint(0, 12, size=(3, 7)).astype(np.int32)
    expected = numpy_gru_forward(m, ids)
    np.testing.assert_allclose(m(ids).array, expected, rtol=1e-10)
    np.testing.assert_allclose(m(ids).array, expected, rtol=1e-10)  # no state kept between calls


def test_gru_gradient_check():
    rng = np.random.RandomState(12)
    m = gru_model(rng, n_units=3, n_in=10)
    ids = rng.randint(0, 10, size=(2, 4)).astype(np.int32)
    gy = rng.normal(size=(2, 10))
    gradient_check.check_backward(
        lambda x: m(x), ids, gy, params=tuple(m.params()), no_grads=[True],
        eps=1e-6, atol=1e-7, rtol=1e-6, dtype=np.float64)


def test_gru_initialisation_and_refusals():
    from irnn_chainer.model import build
    m = build('gru', n_units=5, init_std=0.001)
    assert m.pixel_to_h.W.shape == (256, 5) and m.h_to_y.W.shape == (10, 5)
    assert float(np.abs(m.h_to_y.b.array).max()) == 0.0
    assert 0 < float(m.pixel_to_h.W.array.std()) < 0.002  # N(0, 0.001)
    with pytest.raises(ValueError, match='stepwise only'):
        build('gru', n_units=5, impl='fused')
    with pytest.raises(ValueError, match=r'x: expected shape \(batch, time\)'):
        m(np.zeros(784, np.int32))


def test_gru_trains_resumes_and_is_used_by_evaluate_predict_report_and_load(tmp_path):
    """The GRU through every command, as the LSTM goes: a short real run under a preset."""
    import json
    import os
    from irnn_chainer.commands import evaluate, predict, report
    from irnn_chainer.data import mnist
    from irnn_chainer.run import train
    out = str(tmp_path / 'gru')
    flags = dict(model='gru', preset='fast', dataset='embedded', train_limit=32, test_limit=16, batchsize=8,
                 unit=6, iteration=4, eval_batchsize=16)
    train.train(dict(flags, iteration=2), out, progress=False, log=lambda *a: None)
    trainer = train.train({'iteration': 4}, None, resume=out, progress=False, log=lambda *a: None)
    assert trainer.updater.iteration == 4
    cfg = json.load(open(os.path.join(out, 'config.json')))
    assert (cfg['model'], cfg['impl_used'], cfg['lr'], cfg['h0_noise']) == ('gru', 'stepwise', 1e-3, 0.0)
    log = json.load(open(os.path.join(out, 'log')))
    assert all(np.isfinite(r['main/loss']) for r in log)
    r = evaluate.evaluate(out, log=lambda *a: None)
    assert r['n'] == 16 and 0 <= r['accuracy'] <= 1 and np.isclose(r['loss'], log[-1]['validation/main/loss'])
    images = mnist.get_mnist('embedded', None, None, 16, log=lambda *a: None).test_x
    run = irnn_chainer.load(out)
    probs = run.predict(images)
    assert probs.shape == (16, 10) and np.allclose(probs.sum(1), 1)
    np.testing.assert_allclose(probs, predict.load(out).predict(images))
    path, rows = report.write_report([out], str(tmp_path / 'report'))
    assert [row['model'] for row in rows] == ['gru'] and os.path.exists(path)
    assert 'GRU' in open(path).read()
