"""The whole-update path (fused_update.FusedUpdater) against Chainer's own update.

The reference is Chainer's StandardUpdater (graph, backward, hooks, update rules): on the
per-timestep model (impl='stepwise', the gist's graph) and on the fused model. Over 100
updates of every optimizer the losses, accuracies and weights agree (1e-12 in float64,
1e-5 in float32), snapshots cross from one path to the other, and the whole-update path
gives the same bits for any thread count.
"""
import os

import numpy as np
import pytest

import irnn_chainer  # noqa: F401  (shims first)
import chainer
import chainer.links as L
from chainer import serializers
from chainer.training import updaters

from irnn_chainer.run import fused_update
from irnn_chainer.model import rnn as model_mod
from irnn_chainer.run import optimizers
from irnn_chainer.run import train as train_mod
from irnn_chainer.run import schedule
from irnn_chainer.compat import api
from irnn_chainer.kernels import threads

B, T, N = 8, 24, 40  # batch, steps, sequences: small enough for the per-step graph
# rates at which every update moves the weights visibly, and clipping at 1.0 often fires
LR = {'sgd': 0.05, 'momentum': 0.01, 'rmsprop': 1e-3, 'adam': 1e-3}


def dataset(seed=0, n_in=256):
    rng = np.random.RandomState(seed)
    x = np.where(rng.uniform(size=(N, T)) < 0.6, 0, rng.randint(1, n_in, (N, T))).astype(np.uint8 if n_in <= 256 else np.int32)
    return chainer.datasets.TupleDataset(x, rng.randint(0, 10, N).astype(np.int32))


def setup(optimizer='sgd', impl='fused', dtype='float32', name='irnn', skip=True, clip=1.0, whole=True,
          seed=1, **options):
    np.random.seed(seed)
    model = L.Classifier(api.build_in_dtype(
        lambda: model_mod.build(name, n_units=10, init_std=0.1, impl=impl, **options), dtype))
    opt = api.setup_optimizer(optimizers.make({'optimizer': optimizer, 'lr': LR[optimizer]}), model)
    if skip:
        opt.add_hook(train_mod.SkipNonFinite())
    if clip:
        opt.add_hook(api.gradient_clipping(clip))
    it = train_mod.ShuffledIterator(dataset(), B, seed=5)
    cls = fused_update.FusedUpdater if whole else updaters.StandardUpdater
    return model, cls(it, opt, converter=train_mod.convert)


def run(model, updater, n):
    """n updates; the reported losses, accuracies and skips."""
    reporter = chainer.Reporter()
    reporter.add_observer('main', model)
    out = []
    for _ in range(n):
        obs = {}
        with reporter.scope(obs):
            updater.update()
        out.append([float(getattr(obs.get(k, -1), 'array', obs.get(k, -1)))
                    for k in ('main/loss', 'main/accuracy', 'skipped')])
    return np.array(out)


def weights(model):
    return {n: p.array.copy() for n, p in model.namedparams()}


def states(updater):
    opt = updater.get_optimizer('main')
    return {n: (p.update_rule.t, {k: v.copy() for k, v in (p.update_rule.state or {}).items()})
            for n, p in opt.target.namedparams()}


def assert_close(a, b, tol):
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=tol, atol=tol * 1e-3, err_msg=k)


@pytest.mark.parametrize('dtype,tol', [('float64', 1e-12), ('float32', 1e-5)])
@pytest.mark.parametrize('optimizer', ['sgd', 'momentum', 'rmsprop', 'adam'])
def test_100_updates_match_chainers_update(optimizer, dtype, tol):
    ref_model, ref = setup(optimizer, 'fused', dtype, whole=False)
    model, upd = setup(optimizer, 'fused', dtype)
    a, b = run(ref_model, ref, 100), run(model, upd, 100)
    assert upd.fallback_reason is None  # it ran the whole-update path
    np.testing.assert_allclose(b, a, rtol=tol, atol=0)
    assert_close(weights(model), weights(ref_model), tol)
    assert abs(a[-1, 0] - a[0, 0]) > 1e-3  # it trained
    sa, sb = states(ref), states(upd)
    for k in sa:
        assert sa[k][0] == sb[k][0] == 100
        assert_close(sb[k][1], sa[k][1], tol)
    w0 = weights(setup(optimizer, 'fused', dtype)[0])
    assert all(not np.array_equal(w0[k], v) for k, v in weights(model).items())


@pytest.mark.parametrize('optimizer,h0', [('sgd', 0), ('adam', 0), ('rmsprop', 0.1)])
def test_matches_the_per_timestep_graph(optimizer, h0):
    """The independent reference: the gist's graph, one node per pixel, in float64."""
    ref_model, ref = setup(optimizer, 'stepwise', 'float64', whole=False)
    model, upd = setup(optimizer, 'fused', 'float64')
    for m in (ref_model, model):
        m.predictor.h0_noise, m.predictor.noise_key = h0, [5, 2]
    np.testing.assert_allclose(run(model, upd, 30), run(ref_model, ref, 30), rtol=1e-10)
    assert_close(weights(model), weights(ref_model), 1e-10)


@pytest.mark.parametrize('name', ['rnn-tanh', 'rnn-relu'])
def test_baselines_with_h0_noise_readout_and_input_dropout(name):
    ref_model, ref = setup('rmsprop', 'fused', 'float64', name=name, whole=False)
    model, upd = setup('rmsprop', 'fused', 'float64', name=name)
    for m, u in ((ref_model, ref), (model, upd)):
        m.predictor.dropout, m.predictor.input_dropout, m.predictor.h0_noise = 0.3, 0.2, 0.1
        m.predictor.noise_key = [7, 1]  # what schedule.NoiseKey sets per update
    np.testing.assert_allclose(run(model, upd, 20), run(ref_model, ref, 20), rtol=1e-12)
    assert upd.fallback_reason is None
    assert_close(weights(model), weights(ref_model), 1e-12)


def test_a_skipped_update_is_skipped_and_reported():
    model, upd = setup('momentum', 'fused', 'float64')
    ref_model, ref = setup('momentum', 'fused', 'float64', whole=False)
    run(model, upd, 3), run(ref_model, ref, 3)
    for m in (model, ref_model):  # what an exploding batch produces: non-finite states
        m.predictor.pixel_to_h.W.array[:] = np.inf
    a, b = run(ref_model, ref, 1), run(model, upd, 1)
    assert b[0, 2] == a[0, 2] == 1.0
    np.testing.assert_array_equal(b, a)
    assert_close(weights(model), weights(ref_model), 0)  # momentum still moves them, as Chainer's does
    np.testing.assert_array_equal(model.predictor.h_to_h.W.grad, 0)


class ScaleAfter(object):
    """A 'post' hook of our own: shrinks every weight a little after each step."""
    timing, call_for_each_param, name = 'post', False, 'ScaleAfter'

    def __call__(self, optimizer):
        for p in optimizer.target.params():
            p.array *= 0.999


def other_hooks():
    yield 'weight-decay', lambda: chainer.optimizer_hooks.WeightDecay(1e-3)  # called per parameter
    yield 'hard-clipping', lambda: chainer.optimizer_hooks.GradientHardClipping(-0.05, 0.05)
    yield 'grad-noise', lambda: schedule.GradientNoise(1e-4, seed=3)
    yield 'post-hook', ScaleAfter


@pytest.mark.parametrize('case', list(other_hooks()), ids=lambda c: c[0])
@pytest.mark.parametrize('optimizer', ['sgd', 'rmsprop'])
def test_any_optimizer_hook_runs_on_the_whole_path(case, optimizer):
    """Hooks other than skip and clipping are called as Optimizer.update calls them, between
    the skip check and clipping (as train adds --grad-noise): same losses and weights."""
    _, make = case
    ref_model, ref = setup(optimizer, 'fused', 'float64', whole=False, clip=None)
    model, upd = setup(optimizer, 'fused', 'float64', clip=None)
    for u in (ref, upd):
        u.get_optimizer('main').add_hook(make())
        u.get_optimizer('main').add_hook(api.gradient_clipping(1.0))
    a, b = run(ref_model, ref, 30), run(model, upd, 30)
    assert upd.fallback_reason is None
    np.testing.assert_allclose(b, a, rtol=1e-12, atol=0)
    assert_close(weights(model), weights(ref_model), 1e-12)
    plain_model, plain = setup(optimizer, 'fused', 'float64')  # the hook changed something
    run(plain_model, plain, 30)
    assert any(not np.allclose(v, weights(plain_model)[k], rtol=1e-9, atol=0) for k, v in weights(model).items())


def fallbacks():
    yield 'rule-hook', lambda m, u: m.predictor.h_to_h.W.update_rule.add_hook(
        chainer.optimizer_hooks.WeightDecay(1e-4)), 'per-parameter'
    yield 'no-accuracy', lambda m, u: setattr(m, 'accfun', lambda y, t: chainer.functions.accuracy(y, t)), \
        'Classifier'


@pytest.mark.parametrize('case', list(fallbacks()), ids=lambda c: c[0])
def test_what_it_does_not_cover_runs_chainers_update(case):
    _, change, reason = case
    ref_model, ref = setup('adam', 'fused', 'float64', whole=False)
    model, upd = setup('adam', 'fused', 'float64')
    for m, u in ((ref_model, ref), (model, upd)):
        m.predictor.noise_key = [3, 0]
        change(m, u)
    np.testing.assert_array_equal(run(model, upd, 5), run(ref_model, ref, 5))
    assert reason in upd.fallback_reason
    assert_close(weights(model), weights(ref_model), 0)


@pytest.mark.parametrize('build', [dict(impl='stepwise'), dict(name='lstm'), dict(n_units=[6, 5]) and
                                   dict(impl='fused')])
def test_other_models_fall_back(build):
    if build == dict(impl='fused'):  # two layers
        np.random.seed(1)
        model = L.Classifier(model_mod.build('irnn', n_units=[6, 5], impl='fused'))
        opt = api.setup_optimizer(chainer.optimizers.SGD(0.01), model)
        upd = fused_update.FusedUpdater(train_mod.ShuffledIterator(dataset(), B, seed=5), opt,
                                        converter=train_mod.convert)
    else:
        model, upd = setup('sgd', **build)
    run(model, upd, 2)
    assert upd.fallback_reason is not None


@pytest.mark.parametrize('optimizer', ['momentum', 'adam'])
@pytest.mark.parametrize('first', ['whole', 'standard'])
def test_a_snapshot_resumes_on_the_other_path(tmp_path, optimizer, first):
    """10 updates on one path, a snapshot, 10 more on the other == 20 on the first."""
    straight_model, straight = setup(optimizer, 'fused', 'float64', whole=first == 'whole')
    run(straight_model, straight, 20)
    m1, u1 = setup(optimizer, 'fused', 'float64', whole=first == 'whole')
    run(m1, u1, 10)
    path = str(tmp_path / 'snap.npz')
    serializers.save_npz(path, u1)
    m2, u2 = setup(optimizer, 'fused', 'float64', whole=first != 'whole', seed=99)
    serializers.load_npz(path, u2)
    assert u2.iteration == 10
    run(m2, u2, 10)
    assert isinstance(u2, fused_update.FusedUpdater) == (first != 'whole')
    assert getattr(u2, 'fallback_reason', None) is None
    assert_close(weights(m2), weights(straight_model), 1e-12)
    sa, sb = states(straight), states(u2)
    for k in sa:
        assert sa[k][0] == sb[k][0] == 20
        assert_close(sb[k][1], sa[k][1], 1e-12)
    # the snapshot holds what Chainer's own update writes: the same keys
    serializers.save_npz(str(tmp_path / 'whole.npz'), u2)
    m3, u3 = setup(optimizer, 'fused', 'float64', whole=False)
    run(m3, u3, 1)
    serializers.save_npz(str(tmp_path / 'standard.npz'), u3)
    with np.load(str(tmp_path / 'whole.npz')) as a, np.load(str(tmp_path / 'standard.npz')) as b:
        assert sorted(a.files) == sorted(b.files)


def test_bit_identical_for_any_thread_count():
    results = []
    for n in (1, 2, 3):
        threads.set_threads(n)
        try:
            model, upd = setup('adam', 'fused', 'float32')
            losses = run(model, upd, 15)
        finally:
            threads.set_threads(None)
        results.append((losses, weights(model)))
    for losses, w in results[1:]:
        np.testing.assert_array_equal(losses, results[0][0])
        for k in w:
            np.testing.assert_array_equal(w[k], results[0][1][k], err_msg=k)


def test_the_trainer_runs_it_and_resumes_on_the_standard_path(tmp_path):
    """train.train's updater is the whole-update one; a run resumed under IRNN_FUSED... no:
    a run trained with it resumes exactly through Chainer's update (a wrapped optimizer)."""
    small = dict(dataset='embedded', train_limit=48, test_limit=32, batchsize=16, unit=8,
                 lr=0.01, clip=1.0, seed=3, optimizer='adam', skip_nonfinite=True)
    a = str(tmp_path / 'a')
    t = train_mod.train(dict(small, iteration=6), a, progress=False, log=lambda *x: None)
    assert isinstance(t.updater, fused_update.FusedUpdater) and t.updater.fallback_reason is None
    assert t.observation['skipped'] == 0.0 and 'main/accuracy' in t.observation
    b = str(tmp_path / 'b')
    train_mod.train(dict(small, iteration=3), b, progress=False, log=lambda *x: None)
    original = fused_update.why_not
    fused_update.why_not = lambda updater: 'forced for the test'
    try:
        t2 = train_mod.train({'iteration': 6}, None, resume=b, progress=False, log=lambda *x: None)
    finally:
        fused_update.why_not = original
    assert t2.updater.fallback_reason == 'forced for the test'
    with np.load(os.path.join(a, 'model.npz')) as fa, np.load(os.path.join(b, 'model.npz')) as fb:
        for k in fa.files:
            np.testing.assert_allclose(fb[k], fa[k], rtol=1e-5, atol=1e-8, err_msg=k)
