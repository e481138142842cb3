"""Own sequences: the stacked real/ids RNN (model.RNN) against a NumPy loop and
gradient_check (stepwise and fused), the adding problem (generator and learning below its
baseline), data files (.npz, long CSV) with a crafted bad file for every validation error,
the stratified test split, and the training/CLI integration."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import irnn_chainer  # noqa: F401  (compat shims first)
import chainer
from chainer import gradient_check

from irnn_chainer.compat import api
from irnn_chainer import files
from irnn_chainer.data import sequences as S
from irnn_chainer.commands import evaluate as evaluate_mod
from irnn_chainer.model import RNN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:
    from irnn_chainer.model import fused  # noqa: F401
    HAVE_FUSED = True
except ImportError:  # pragma: no cover
    HAVE_FUSED = False
needs_fused = pytest.mark.skipif(not HAVE_FUSED, reason='irnn_chainer.model.fused not importable')


# ------------------------------------------------------------------ model vs NumPy loop

def build(layers, n_in, n_out, input, impl='stepwise', dtype='float64', **kw):
    return api.build_in_dtype(lambda: RNN(layers, n_in=n_in, n_out=n_out, input=input,
                                          impl=impl, **kw), dtype)


def randomise(m, rng, scale=0.5):
    for name, p in sorted(m.namedparams()):
        p.array[...] = rng.normal(0, scale, p.shape)


def weights(m):
    """[(U_l, W_l, b_l)] per layer, (V, c) for the output; U_1 is (V, H) for ids (EmbedID)."""
    layers = []
    for l in range(1, len(m.layers) + 1):
        rec = m.recurrent_link(l)
        layers.append((m.input_link(l).W.array, rec.W.array, rec.b.array))
    return layers, (m.h_to_y.W.array, m.h_to_y.b.array)


def numpy_forward(m, x):
    """Layer by layer, step by step; returns logits and every layer's states."""
    layers, (V, c) = weights(m)
    inp = x
    states = []
    for l, (U, W, b) in enumerate(layers):
        B, T = inp.shape[:2]
        if l == 0 and m.input == 'ids':
            pre = U[inp]
        else:
            pre = inp @ U.T
            if l == 0 and getattr(m.x_to_h1, 'b', None) is not None:
                pre = pre + m.x_to_h1.b.array
        hs = np.zeros((B, T + 1, W.shape[0]))
        for t in range(T):
            hs[:, t + 1] = np.maximum(pre[:, t] + hs[:, t] @ W.T + b, 0)
        states.append(hs)
        inp = hs[:, 1:]
    return inp[:, -1] @ V.T + c, states


def numpy_backward(m, x, gy):
    """BPTT through numpy_forward: gradients of sum(gy * logits) by parameter name (and x)."""
    layers, (V, c) = weights(m)
    _, states = numpy_forward(m, x)
    grads = {'/h_to_y/W': gy.T @ states[-1][:, -1], '/h_to_y/b': gy.sum(0)}
    n = len(layers)
    B, T = x.shape[:2]
    gseq = np.zeros_like(states[-1][:, 1:])
    gseq[:, -1] = gy @ V
    for l in range(n, 0, -1):
        U, W, b = layers[l - 1]
        hs = states[l - 1]
        inp = x if l == 1 else states[l - 2][:, 1:]
        gU, gW, gb = np.zeros_like(U), np.zeros_like(W), np.zeros_like(b)
        ginp = np.zeros(inp.shape) if not (l == 1 and m.input == 'ids') else None
        carry = np.zeros((B, W.shape[0]))
        for t in range(T, 0, -1):
            carry = carry + gseq[:, t - 1]
            gpre = carry * (hs[:, t] > 0)
            gW += gpre.T @ hs[:, t - 1]
            gb += gpre.sum(0)
            if ginp is None:
                np.add.at(gU, inp[:, t - 1], gpre)
            else:
                gU += gpre.T @ inp[:, t - 1]
                ginp[:, t - 1] = gpre @ U
            carry = gpre @ W
        name_in = 'x_to_h1' if l == 1 else 'h%d_to_h%d' % (l - 1, l)
        grads['/%s/W' % name_in] = gU
        grads['/h%d_to_h%d/W' % (l, l)] = gW
        grads['/h%d_to_h%d/b' % (l, l)] = gb
        if l == 1 and ginp is not None and getattr(m.x_to_h1, 'b', None) is not None:
            # the input bias adds to every step's pre-activation of layer 1
            grads['/x_to_h1/b'] = gb.copy()
        gseq = ginp
    return grads, gseq


CASES = [  # layers, input, n_in, input_bias
    ((5,), 'real', 3, False),
    ((5, 4), 'real', 3, False),
    ((4, 6, 3), 'real', 2, True),
    ((5, 4), 'ids', 7, False),
]


@pytest.mark.parametrize('impl', ['stepwise', pytest.param('fused', marks=needs_fused)])
@pytest.mark.parametrize('layers, input, n_in, bias', CASES)
def test_forward_and_gradients_equal_numpy_loop(layers, input, n_in, bias, impl):
    rng = np.random.RandomState(len(layers) + n_in)
    m = build(layers, n_in, 3, input, impl, input_bias=bias)
    randomise(m, rng)
    for l in range(1, len(layers) + 1):  # keep states bounded, with ReLUs switching off
        m.recurrent_link(l).W.array[...] *= 0.5
    B, T = 4, 6
    x = rng.normal(size=(B, T, n_in)) if input == 'real' else rng.randint(0, n_in, (B, T))
    expected, states = numpy_forward(m, x)
    assert any((s[:, 1:] == 0).any() for s in states) and any((s[:, 1:] > 0).any() for s in states)
    xv = chainer.Variable(x) if input == 'real' else x
    y = m(xv)
    np.testing.assert_allclose(y.array, expected, rtol=1e-10, atol=1e-12)
    gy = rng.normal(size=y.shape)
    y.grad = gy
    m.cleargrads()
    y.backward()
    want, gx = numpy_backward(m, x, gy)
    got = {name: p.grad for name, p in m.namedparams()}
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-9, atol=1e-12, err_msg=name)
    if input == 'real':
        np.testing.assert_allclose(xv.grad, gx, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('impl', ['stepwise', pytest.param('fused', marks=needs_fused)])
@pytest.mark.parametrize('layers, input, n_in', [((4, 3), 'real', 2), ((3, 4), 'ids', 5)])
def test_gradient_check(layers, input, n_in, impl):
    rng = np.random.RandomState(11)
    m = build(layers, n_in, 2, input, impl)
    randomise(m, rng, 0.6)
    x = rng.normal(size=(3, 5, n_in)) if input == 'real' else rng.randint(0, n_in, (3, 5)).astype(np.int32)
    gy = rng.normal(size=(3, 2))
    gradient_check.check_backward(lambda v: m(v), x, gy, params=tuple(p for _, p in sorted(m.namedparams())),
                                  no_grads=[input == 'ids'], eps=1e-6, atol=1e-7, rtol=1e-6,
                                  dtype=np.float64)


@needs_fused
def test_fused_equals_stepwise_float32_long_sequence():
    rng = np.random.RandomState(2)
    np.random.seed(5)
    a = RNN((16, 8), n_in=3, n_out=2, input='real', impl='stepwise', init_std=0.1)
    b = RNN((16, 8), n_in=3, n_out=2, input='real', impl='fused', init_std=0.1)
    b.copyparams(a)
    x = rng.uniform(0, 1, (4, 150, 3)).astype(np.float32)
    ya, yb = a(x), b(x)
    np.testing.assert_allclose(ya.array, yb.array, rtol=1e-4, atol=1e-6)
    for m, y in ((a, ya), (b, yb)):
        m.cleargrads()
        F = chainer.functions
        F.sum(y * y).backward()
    ga, gb = dict(a.namedparams()), dict(b.namedparams())
    for name in ga:
        np.testing.assert_allclose(ga[name].grad, gb[name].grad, rtol=1e-3, atol=1e-6, err_msg=name)


def test_initialisation():
    np.random.seed(0)
    m = RNN((100, 50), n_in=3, n_out=2, input='real', identity_scale=0.01)
    assert sorted(n for n, _ in m.namedparams()) == [
        '/h1_to_h1/W', '/h1_to_h1/b', '/h1_to_h2/W', '/h2_to_h2/W', '/h2_to_h2/b',
        '/h_to_y/W', '/h_to_y/b', '/x_to_h1/W']  # no input biases by default
    np.testing.assert_array_equal(m.h1_to_h1.W.array, 0.01 * np.eye(100, dtype=np.float32))
    np.testing.assert_array_equal(m.h2_to_h2.W.array, 0.01 * np.eye(50, dtype=np.float32))
    assert not m.h1_to_h1.b.array.any() and not m.h2_to_h2.b.array.any() and not m.h_to_y.b.array.any()
    assert m.x_to_h1.W.shape == (100, 3) and m.h1_to_h2.W.shape == (50, 100) and m.h_to_y.W.shape == (2, 50)
    w = m.h1_to_h2.W.array
    assert abs(w.std() / 0.001 - 1) < 0.1 and abs(w.mean()) < 2e-4
    m = RNN((4,), n_in=3, n_out=1, input='real', input_bias=True)
    assert not m.x_to_h1.b.array.any()
    np.testing.assert_array_equal(m.h1_to_h1.W.array, np.eye(4, dtype=np.float32))
    m = RNN((4,), n_in=10, n_out=3, input='ids')
    assert m.x_to_h1.W.shape == (10, 4)


@pytest.mark.parametrize('bad, exc, words', [
    (np.zeros((2, 5), np.float32), ValueError, ['(batch, time, 3)', '2-D', 'x[..., None]']),
    (np.zeros((2, 5, 4), np.float32), ValueError, ['3 features', '(2, 5, 4)']),
    (np.zeros((2, 5, 3), np.int32), TypeError, ['float features', 'int32', "input='ids'"]),
    ([[1.0]], TypeError, ['float array', 'list']),
])
def test_real_input_errors_are_clear(bad, exc, words):
    m = RNN((3,), n_in=3, n_out=2, input='real')
    with pytest.raises(exc) as info:
        m(bad)
    msg = str(info.value)
    assert '\n' not in msg and 'Expect:' not in msg
    for w in words:
        assert w in msg, (w, msg)


# ---------------------------------------------------------------------- adding problem

def test_adding_problem_generator():
    x, y = S.adding_problem(4000, 150, seed=3)
    assert x.shape == (4000, 150, 2) and y.shape == (4000, 1) and x.dtype == y.dtype == np.float32
    markers = x[..., 1]
    assert set(np.unique(markers)) == {0.0, 1.0}
    assert (markers[:, :75].sum(1) == 1).all() and (markers[:, 75:].sum(1) == 1).all()
    assert 0 <= x[..., 0].min() and x[..., 0].max() <= 1
    np.testing.assert_allclose(y[:, 0], (x[..., 0] * markers).sum(1), rtol=1e-6)
    assert abs(((y - 1) ** 2).mean() - S.ADDING_BASELINE) < 0.01   # ~0.167
    x2, y2 = S.adding_problem(4000, 150, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(S.adding_problem(10, 150, seed=4)[0], x[:10])
    with pytest.raises(S.SequenceDataError, match='at least 2'):
        S.adding_problem(3, 1)


def quiet(*args):
    pass


@needs_fused
def test_adding_problem_T150_learns_below_baseline(tmp_path):
    """T=150 with 32 units, Adam 1e-3, clip 1, batch 32: under half the always-1 MSE within
    1250 updates (2 epochs of 20000 sequences; seconds with the fused recurrence)."""
    from irnn_chainer.run import train as train_mod
    out = str(tmp_path / 'adding')
    cfg = dict(dataset='adding', length=150, train_limit=20000, test_limit=1000, unit=32,
               init_std=0.1, optimizer='adam', lr=1e-3, clip=1.0, batchsize=32, epoch=2, seed=0)
    trainer = train_mod.train(cfg, out, progress=False, log=quiet)
    log = json.load(open(os.path.join(out, 'log')))
    assert [r['iteration'] for r in log] == [625, 1250]
    last = log[-1]
    baseline = last['validation/main/baseline']
    assert abs(baseline - S.ADDING_BASELINE) < 0.01
    assert last['validation/main/loss'] < 0.5 * baseline, log
    saved = json.load(open(os.path.join(out, 'config.json')))
    assert (saved['input'], saved['task'], saved['n_in'], saved['n_out'], saved['length']) == \
        ('real', 'regression', 2, 1, 150)
    assert trainer.updater.iteration == 1250
    r = evaluate_mod.evaluate(out, log=quiet)
    assert r['loss'] == pytest.approx(last['validation/main/loss'], rel=1e-5)
    assert r['baseline'] == pytest.approx(baseline)


# ---------------------------------------------------------------------- data files

def blog_like(n=60, T=7, D=3, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.normal(size=(n, T, D)).astype(np.float32)
    y = (x[:, :, 0].sum(1) > 0).astype(np.int64)
    return x, y


def test_npz_inference_and_shapes(tmp_path):
    x, y = blog_like()
    p = str(tmp_path / 'd.npz')
    np.savez(p, x=x, y=y)
    d = S.load(p)
    assert (d.input, d.task, d.n_in, d.n_out, d.x_test) == ('real', 'classification', 3, 2, None)
    ids = np.random.RandomState(0).randint(0, 9, (20, 5)).astype(np.uint8)
    q = str(tmp_path / 'ids.npz')
    np.savez(q, x=ids, y=np.linspace(0, 1, 20), x_test=ids[:4], y_test=np.zeros(4))
    d = S.load(q)
    assert (d.input, d.task, d.n_in, d.n_out) == ('ids', 'regression', int(ids.max()) + 1, 1)
    assert d.y.shape == (20, 1) and d.x_test.shape == (4, 5)
    # float labels are regression targets unless --task classification (whole numbers only)
    np.savez(q, x=x, y=y.astype(np.float32))
    assert S.load(q).task == 'regression' and S.load(q, task='classification').n_out == 2


def _save(path, **arrays):
    np.savez(path, **arrays)


x0, y0 = blog_like(n=10)
BAD = [  # (name, writer(path) -> file, load kwargs, words expected in the one-line message)
    ('x_2d_float', lambda p: _save(p, x=x0[:, :, 0], y=y0), {}, ['x:', '(N, T, D)', '2-D shape (10, 7)', 'x[..., None]']),
    ('x_bool', lambda p: _save(p, x=x0 > 0, y=y0), {}, ['x:', 'integer ids (N, T) or float', 'dtype bool']),
    ('x_text', lambda p: _save(p, x=np.array([['a', 'b']]), y=np.array([0])), {}, ['x:', 'dtype <U1']),
    ('x_nan', lambda p: _save(p, x=np.where(np.arange(210).reshape(10, 7, 3) == 40, np.nan, x0), y=y0), {},
     ['x:', 'finite numbers', '1 NaN value', 'x[1, 6, 1]']),
    ('x_test_inf', lambda p: _save(p, x=x0, y=y0, x_test=np.full((2, 7, 3), np.inf), y_test=y0[:2]), {},
     ['x_test:', 'finite', '42 inf values', 'x_test[0, 0, 0]']),
    ('x_empty', lambda p: _save(p, x=np.zeros((0, 7, 3)), y=np.zeros(0, int)), {}, ['x:', 'at least one', '(0, 7, 3)']),
    ('x_ids_3d', lambda p: _save(p, x=np.zeros((10, 7, 3), int), y=y0), {}, ['x:', '(N, T) for --input ids', '3-D', '--input real']),
    ('x_ids_negative', lambda p: _save(p, x=-np.ones((10, 7), int), y=y0), {}, ['x:', 'ids in 0..', 'values in -1..-1']),
    ('x_ids_fraction', lambda p: _save(p, x=np.full((10, 7), 0.5), y=y0), {'input': 'ids'},
     ['x:', 'integer ids for --input ids', '0.5', 'x[0, 0]']),
    ('x_real_2d_ids', lambda p: _save(p, x=np.zeros((10, 7), int), y=y0), {'input': 'real'},
     ['x:', '(N, T, D) for --input real', '2-D']),
    ('x_test_features', lambda p: _save(p, x=x0, y=y0, x_test=x0[:, :, :2], y_test=y0), {},
     ['x_test:', '3 features per step (as x)', '(10, 7, 2)']),
    ('y_length', lambda p: _save(p, x=x0, y=y0[:9]), {}, ['y:', 'one class label per sequence, shape (10,)', '(9,)']),
    ('y_2d', lambda p: _save(p, x=x0, y=np.zeros((10, 2), int)), {}, ['y:', 'shape (10,)', '(10, 2)']),
    ('y_labels_1_2', lambda p: _save(p, x=x0, y=y0 + 1), {}, ['y:', 'class labels 0..1', 'labels 1..2', 'renumber']),
    ('y_one_class', lambda p: _save(p, x=x0, y=np.zeros(10, int)), {}, ['y:', 'at least 2 classes', 'only the label 0']),
    ('y_fraction_class', lambda p: _save(p, x=x0, y=np.full(10, 0.5)), {'task': 'classification'},
     ['y:', 'integer class labels', '0.5', 'y[0]', '--task regression']),
    ('y_nan_regression', lambda p: _save(p, x=x0, y=np.r_[np.zeros(9), np.nan]), {},
     ['y:', 'finite numbers', '1 NaN value', 'y[9, 0]']),
    ('y_text', lambda p: _save(p, x=x0, y=np.array(list('abcdefghij'))), {}, ['y:', 'numeric', 'dtype <U1']),
    ('y_test_range', lambda p: _save(p, x=x0, y=y0, x_test=x0, y_test=y0 + 1), {},
     ['y_test:', 'labels 0..1 (the classes in y)', 'labels 1..2']),
    ('y_test_targets', lambda p: _save(p, x=x0, y=np.zeros((10, 2)), x_test=x0, y_test=np.zeros((10, 3))), {},
     ['y_test:', '2 targets per sequence (as y)', '(10, 3)']),
    ('missing_y', lambda p: _save(p, x=x0), {}, ['expected arrays x and y', 'found x']),
    ('extra_key', lambda p: _save(p, x=x0, y=y0, X_test=x0), {}, ['expected only arrays x, y, x_test, y_test', 'X_test']),
    ('x_test_alone', lambda p: _save(p, x=x0, y=y0, x_test=x0), {}, ['y_test:', 'alongside x_test', 'found none']),
    ('object_array', lambda p: _save(p, x=np.array([x0, None], dtype=object), y=y0), {}, ['x:', 'numeric array', 'object']),
    ('not_npz', lambda p: open(p, 'w').write('hello'), {}, ['expected a .npz file', "found a text file (first line 'hello')"]),
    ('missing_file', lambda p: None, {}, ['expected a .npz or .csv data file', 'no such file']),
    # long-format CSV
    ('csv_columns', lambda p: open(p, 'w').write('seq,t,x0,label\n0,0,1.5,1\n0,1,2.5\n'), {},
     ['row 3', 'expected 4 columns (seq,t,x0,label)', 'found 3']),
    ('csv_blank_lines_counted', lambda p: open(p, 'w').write('\nseq,t,x0,label\n\n0,0,1.5,1\n0,1,2.5\n'), {},
     ['row 5', 'expected 4 columns', 'found 3']),
    ('csv_binary', lambda p: open(p, 'wb').write(b'PK\x03\x04\xff\xfe\x00garbage'), {}, ['a text file', 'cannot be read as CSV']),
    ('csv_too_few', lambda p: open(p, 'w').write('0,0,1\n0,1,1\n'), {}, ['row 1', 'at least 4 columns', 'found 3']),
    ('csv_step_text', lambda p: open(p, 'w').write('seq,t,x0,label\n0,0,1.5,1\n0,one,2.5,1\n'), {},
     ['column t, row 3', "expected an integer time step, found 'one'"]),  # as typed: not np.str_('one')
    ('csv_feature_text', lambda p: open(p, 'w').write('seq,t,x0,label\n0,0,1.5,1\n0,1,abc,1\n'), {},
     ['column x0, row 3', "expected a number, found 'abc'"]),
    ('csv_lengths', lambda p: open(p, 'w').write('s,t,x0,label\na,0,1.5,1\na,1,2.5,1\nb,0,1.0,0\n'), {},
     ['column s', 'same number of steps (2', "found 1 rows for sequence 'b'"]),
    ('csv_label_varies', lambda p: open(p, 'w').write('s,t,x0,label\na,0,1.5,1\na,1,2.5,0\nb,0,1.0,0\nb,1,1.0,0\n'), {},
     ['column label, row 3', "same label on every row of sequence 'a' (1, as row 2)", 'found 0']),
    ('csv_step_range', lambda p: open(p, 'w').write('s,t,x0,label\na,0,1.5,1\na,2,2.5,1\n'), {},
     ['column t, row 3', 'time step 0..1', 'found 2']),
    ('csv_step_repeated', lambda p: open(p, 'w').write('s,t,x0,label\na,0,1.5,1\na,0,2.5,1\n'), {},
     ['column t', 'steps 0..1 once each', "step 1 missing", "'a'"]),
    ('csv_nan', lambda p: open(p, 'w').write('s,t,x0,x1,label\na,0,1.5,nan,1\na,1,2.5,1,1\nb,0,1,1,0\nb,1,1,1,0\n'), {},
     ['x:', 'finite numbers', 'NaN', 'x[0, 0, 1]']),
]


@pytest.mark.parametrize('name, write, kwargs, words', BAD, ids=[b[0] for b in BAD])
def test_every_bad_file_gives_one_line_naming_file_array_expected_found(tmp_path, name, write, kwargs, words):
    path = str(tmp_path / (name + ('.csv' if name.startswith('csv') else '.npz')))
    write(path)
    if name not in ('missing_file', 'not_npz') and not name.startswith('csv'):
        assert os.path.exists(path)
    with pytest.raises(S.SequenceDataError) as info:
        S.load(path, **kwargs)
    msg = str(info.value)
    assert '\n' not in msg and msg.startswith(path + ': '), msg
    assert 'expected' in msg and ('found' in msg or 'NumPy cannot read' in msg), msg
    for w in words:
        assert w in msg, (w, msg)


def test_data_errors_are_data_errors_for_the_cli():
    from irnn_chainer.data import mnist as data_mod
    assert issubclass(S.SequenceDataError, data_mod.DataError)


@pytest.mark.parametrize('kind', ['real', 'ids'])
def test_csv_long_format_round_trip(tmp_path, kind):
    rng = np.random.RandomState(4)
    if kind == 'real':
        x = rng.normal(size=(12, 5, 3)).astype(np.float32)
        x[0, 0, 0] = 2.0   # a whole number still reads back as real
        y = rng.randint(0, 3, 12)
        y[:3] = [0, 1, 2]
    else:
        x = rng.randint(0, 256, (12, 5))
        y = rng.uniform(0, 1, 12).astype(np.float32)
        y[0] = 1.0          # a whole-number target among real ones stays regression
    path = str(tmp_path / 'seq.csv')
    S.write_csv(path, x, y)
    lines = open(path).read().splitlines()
    assert lines[0] == ('seq,t,x0,x1,x2,label' if kind == 'real' else 'seq,t,x0,label')
    assert len(lines) == 1 + 12 * 5
    d = S.load(path)
    assert d.input == kind and d.task == ('classification' if kind == 'real' else 'regression')
    np.testing.assert_array_equal(d.x.astype(x.dtype), x)
    np.testing.assert_array_equal(d.y.reshape(y.shape).astype(y.dtype), y)
    # rows in any order, no header, text sequence ids: same arrays (sequences in first-row order)
    body = lines[1:]
    order = np.random.RandomState(0).permutation(len(body))
    first = {}
    for i in order:
        first.setdefault(body[i].split(',')[0], len(first))
    shuffled = str(tmp_path / 'shuffled.csv')
    with open(shuffled, 'w') as f:
        f.write('\n'.join('seq-' + body[i] for i in order) + '\n')
    e = S.load(shuffled)
    perm = [int(k) for k in sorted(first, key=first.get)]
    np.testing.assert_array_equal(e.x, d.x[perm])
    np.testing.assert_array_equal(e.y, d.y[perm])


def test_csv_input_override(tmp_path):
    path = str(tmp_path / 'ids.csv')
    S.write_csv(path, np.arange(12).reshape(3, 4) % 5, np.array([0, 1, 0]))
    assert S.load(path).x.shape == (3, 4)
    d = S.load(path, input='real')
    assert d.input == 'real' and d.x.shape == (3, 4, 1) and d.n_in == 1


# ------------------------------------------------------------------------ test split

def test_stratified_seeded_split():
    y = np.array([0] * 80 + [1] * 15 + [2] * 5)
    x = np.zeros((100, 2, 1))
    tr, te = S.split(x, y, 0.2, seed=1)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == 100
    assert [int((y[te] == c).sum()) for c in range(3)] == [16, 3, 1]
    tr2, te2 = S.split(x, y, 0.2, seed=1)
    np.testing.assert_array_equal(te, te2)
    assert not np.array_equal(te, S.split(x, y, 0.2, seed=2)[1])
    _, te = S.split(x, np.array([0] * 10 + [1]), 0.5, seed=0)   # a singleton class stays in train
    assert 10 not in te
    _, te = S.split(x[:10], np.linspace(0, 1, 10), 0.3, seed=0, stratify=False)
    assert len(te) == 3


def test_with_test_split(tmp_path):
    x, y = blog_like(n=50)
    d = S.validate({'x': x, 'y': y}, 'mem')
    with pytest.raises(S.SequenceDataError, match='--test-split 0.2'):
        S.with_test_split(d, None)
    s = S.with_test_split(d, 0.2, seed=0)
    assert len(s.x) == 40 and len(s.x_test) == 10
    assert abs(s.y_test.mean() - y.mean()) <= 0.1
    t = S.validate({'x': x, 'y': y, 'x_test': x, 'y_test': y}, 'mem')
    with pytest.raises(S.SequenceDataError, match='without x_test'):
        S.with_test_split(t, 0.2)


# ------------------------------------------------------------------- training and CLI

def test_train_on_own_npz_with_stacked_layers_then_evaluate(tmp_path):
    from irnn_chainer.run import train as train_mod
    x, y = blog_like(n=80, T=6)
    data = str(tmp_path / 'blog.npz')
    np.savez(data, x=x, y=y)
    out = str(tmp_path / 'run')
    cfg = dict(data=data, test_split=0.25, layers=[8, 4], identity_scale=0.5, optimizer='adam', lr=1e-2,
               batchsize=10, epoch=2, init_std=0.1, seed=1)
    train_mod.train(cfg, out, progress=False, log=quiet)
    saved = json.load(open(os.path.join(out, 'config.json')))
    assert (saved['input'], saved['task'], saved['n_in'], saved['n_out']) == ('real', 'classification', 3, 2)
    assert saved['train_size'] == 60 and saved['test_size'] == 20 and saved['layers'] == [8, 4]
    with np.load(os.path.join(out, 'model.npz')) as f:
        assert sorted(f.files) == ['h1_to_h1/W', 'h1_to_h1/b', 'h1_to_h2/W', 'h2_to_h2/W', 'h2_to_h2/b',
                                   'h_to_y/W', 'h_to_y/b', 'x_to_h1/W']
    log = json.load(open(os.path.join(out, 'log')))
    r = evaluate_mod.evaluate(out, log=quiet)
    assert r['n'] == 20 and r['accuracy'] == pytest.approx(log[-1]['validation/main/accuracy'])
    # resuming keeps the data settings and continues
    t = train_mod.train({'epoch': 3}, None, resume=out, progress=False, log=quiet)
    assert t.updater.epoch == 3
    with pytest.raises(files.FileError, match='already holds a run'):
        train_mod.train(cfg, out, progress=False, log=quiet)


def run_cli(*args, cwd=ROOT):
    p = subprocess.run([sys.executable, '-m', 'irnn_chainer'] + list(args), cwd=cwd,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def test_cli_bad_file_is_one_line_and_writes_nothing(tmp_path):
    data = str(tmp_path / 'bad.npz')
    np.savez(data, x=np.zeros((5, 4), np.float32), y=np.zeros(5, int))
    out = str(tmp_path / 'run')
    code, _, err = run_cli('train', '--data', data, '--test-split', '0.2', '-o', out, '--no-progress')
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert code == 2 and len(lines) == 1 and 'Traceback' not in err, err
    assert lines[0].startswith('irnn-chainer: error: %s: x: expected' % data), lines[0]
    assert not os.path.exists(os.path.join(out, 'config.json'))
    code, _, err = run_cli('train', '--layers', '4,x', '-o', out)
    assert code == 2 and '--layers' in err and 'comma-separated' in err
    code, _, err = run_cli('train', '--dataset', 'embedded', '--input-bias', '-o', out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and '--input-bias: only for real' in err, err


def test_cli_adding_run_prints_mse_and_baseline(tmp_path):
    out = str(tmp_path / 'add')
    code, stdout, err = run_cli('train', '--dataset', 'adding', '--length', '20', '--train-limit', '64',
                                '--test-limit', '32', '--unit', '4', '--iteration', '4', '--batchsize', '16',
                                '--no-progress', '-o', out)
    assert code == 0, err
    assert 'always predicting 1 gives MSE' in stdout and 'validation/main/baseline' in stdout
    assert 'test MSE' in stdout and 'constant-prediction baseline' in stdout
    code, stdout, err = run_cli('evaluate', out)
    assert code == 0, err
    assert 'test MSE' in stdout and 'on 32 sequences' in stdout


@needs_fused
@pytest.mark.parametrize('input, n_in', [('real', 3), ('ids', 6)])
def test_tanh_layers_fused_equal_stepwise(input, n_in):
    """Stacked tanh layers (--model rnn-tanh --layers ...): the fused recurrence against
    Chainer's stepwise F.tanh graph, outputs and every gradient."""
    rng = np.random.RandomState(4)
    a = build((5, 4), n_in, 3, input, 'stepwise', activation='tanh', recurrent_init='normal')
    randomise(a, rng)
    b = build((5, 4), n_in, 3, input, 'fused', activation='tanh', recurrent_init='normal')
    b.copyparams(a)
    x = rng.normal(size=(4, 9, n_in)) if input == 'real' else rng.randint(0, n_in, (4, 9)).astype(np.int32)
    gy = rng.normal(size=(4, 3))
    grads = []
    for m in (a, b):
        y = m(x)
        y.grad = gy
        m.cleargrads()
        y.backward()
        grads.append((y.array, {name: p.grad.copy() for name, p in m.namedparams()}))
    np.testing.assert_allclose(grads[1][0], grads[0][0], rtol=1e-10, atol=1e-12)
    assert (grads[0][0] != 0).all()
    for name, g in grads[0][1].items():
        np.testing.assert_allclose(grads[1][1][name], g, rtol=1e-9, atol=1e-12, err_msg=name)
