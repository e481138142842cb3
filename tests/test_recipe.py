"""The training features of a long IRNN run: noise on h_0, the learning-rate schedules, and what a run
does when it diverges (rollback to the last good snapshot at a lower rate, or stop)."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import irnn_chainer  # noqa: F401  (first: the NumPy shims Chainer needs)
import chainer
import chainer.functions as F
from chainer import gradient_check
from irnn_chainer.model import fused
from irnn_chainer.model import rnn as model_mod
from irnn_chainer.run import recovery
from irnn_chainer.run import schedule
from irnn_chainer.run import runfolder
from irnn_chainer import settings
from irnn_chainer.run import train as train_mod
from irnn_chainer.errors import TrainingDiverged, UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(dataset='embedded', train_limit=48, test_limit=32, batchsize=16, unit=8,
             lr=0.01, clip=1.0, seed=0)  # seed 0: with 3, RMSprop at 1e-3 blows up on these 48 images


def quiet(*args):
    pass


def params_of(run_dir):
    with np.load(os.path.join(run_dir, runfolder.MODEL_FILE)) as f:
        return {k: f[k].copy() for k in f.files}


# ---- h_0 -------------------------------------------------------------------------------

@pytest.mark.parametrize('activation', ['relu', 'tanh'])
def test_fused_start_from_h0_equals_the_stepwise_loop(activation):
    """The fused path's extra-rows trick against the plain loop started from the same h_0:
    outputs and every gradient (float64)."""
    rng = np.random.RandomState(0)
    B, T, V, H = 5, 9, 7, 6
    ids = rng.randint(0, V, (B, T)).astype(np.int32)
    h0 = rng.normal(0, 0.5, (B, H))
    m = model_mod.RNN(n_units=H, n_in=V, n_out=3, init_std=0.3, activation=activation,
                      recurrent_init='normal')
    for p in m.params():
        p.array = p.array.astype(np.float64)
    gy = rng.normal(size=(B, H))

    def grads(run):
        m.cleargrads()
        h = run()
        F.sum(h * gy).backward()
        return h.array, [m.pixel_to_h.W.grad.copy(), m.h_to_h.W.grad.copy(), m.h_to_h.b.grad.copy()]

    hs, gs = grads(lambda: m.recurrence_stepwise(ids, h0))
    hf, gf = grads(lambda: fused.irnn_recurrence(ids, m.pixel_to_h.W, m.h_to_h.W, m.h_to_h.b,
                                                 activation=activation, h0=h0))
    np.testing.assert_allclose(hf, hs, rtol=1e-12, atol=1e-12)
    for a, b in zip(gf, gs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # and h_0 matters: from zeros the result differs
    h_zero = fused.irnn_recurrence(ids, m.pixel_to_h.W, m.h_to_h.W, m.h_to_h.b, activation=activation)
    assert not np.allclose(h_zero.array, hf)


def test_fused_start_from_h0_passes_gradient_check():
    rng = np.random.RandomState(1)
    B, T, V, H = 3, 5, 4, 3
    ids = rng.randint(0, V, (B, T)).astype(np.int32)
    h0 = rng.normal(0, 0.5, (B, H))
    E = rng.normal(0, 0.5, (V, H))
    W = np.eye(H) + rng.normal(0, 0.2, (H, H))
    b = rng.normal(0, 0.1, H)
    gy = rng.normal(size=(B, H))
    gradient_check.check_backward(
        lambda E, W, b: fused.irnn_recurrence(ids, E, W, b, activation='tanh', h0=h0),
        (E, W, b), gy, eps=1e-6, atol=1e-7, rtol=1e-6)


def test_h0_noise_only_while_training_and_keyed_by_the_update():
    m = model_mod.IRNN(n_units=6, n_in=256, n_out=10, impl='fused')
    x = np.random.RandomState(0).randint(0, 256, (4, 20)).astype(np.int32)
    assert m.initial_state(4) is None  # off by default: the paper's h_0 = 0
    m.h0_noise, m.noise_key = 0.1, [3, 0, 17]
    a = m.initial_state(4)
    expected = np.random.RandomState([3, 0, 17]).normal(0, 0.1, (4, 6)).astype(np.float32)
    np.testing.assert_array_equal(a, expected)
    assert abs(float(a.std()) - 0.1) < 0.05
    m.noise_key = [3, 0, 18]
    assert not np.array_equal(m.initial_state(4), a)
    with chainer.using_config('train', False):  # evaluation starts from 0: same as no noise
        assert m.initial_state(4) is None
        y_eval = m(x).array
    m.h0_noise = 0.0
    np.testing.assert_array_equal(m(x).array, y_eval)


def resumes_exactly(tmp_path, cfg):
    """Trains ``cfg`` for 6 updates straight and as 4 + a resume to 6 (asserting the two
    end equal), and SMALL without its extra settings; returns (its weights, SMALL's)."""
    straight, split, plain = (str(tmp_path / n) for n in ('straight', 'split', 'plain'))
    train_mod.train(dict(cfg, iteration=6), straight, progress=False, log=quiet)
    train_mod.train(dict(cfg, iteration=4), split, progress=False, log=quiet)
    train_mod.train({'iteration': 6}, None, resume=split, progress=False, log=quiet)
    train_mod.train(dict(SMALL, iteration=6), plain, progress=False, log=quiet)
    a, b, c = params_of(straight), params_of(split), params_of(plain)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    return a, c


def test_h0_noise_run_resumes_exactly_and_differs_from_no_noise(tmp_path):
    a, c = resumes_exactly(tmp_path, dict(SMALL, h0_noise=0.5))
    assert not np.array_equal(a['h_to_h/W'], c['h_to_h/W'])


def test_h0_noise_refused_where_it_does_not_apply():
    with pytest.raises(UsageError, match='--h0-noise: covers .* not lstm'):
        settings.resolve_config({'model': 'lstm', 'h0_noise': 0.1})
    with pytest.raises(UsageError, match='--h0-noise: expected a standard deviation'):
        settings.resolve_config({'h0_noise': -1.0})


# ---- dropout on h_T ---------------------------------------------------------------------

@pytest.mark.parametrize('name', ['irnn', 'lstm'])
def test_dropout_by_hand_only_while_training_and_keyed_by_the_update(name):
    m = model_mod.build(name, n_units=6, n_in=256, n_out=10, impl='fused')
    x = np.random.RandomState(0).randint(0, 256, (5, 20)).astype(np.int32)
    with chainer.using_config('train', False):
        y_eval = m(x).array
    # h_T by hand: the classifier's input, from the logits of the model without dropout
    # (h_to_y is linear: solve W h + b = y for h, one row per image)
    W, b = m.h_to_y.W.array.astype(np.float64), m.h_to_y.b.array.astype(np.float64)
    h = np.linalg.lstsq(W, (m(x).array - b).T, rcond=None)[0].T
    m.dropout, m.noise_key = 0.25, [3, 0, 17]
    keep = np.random.RandomState([3, 0, 17, 1]).uniform(size=(5, 6)) >= 0.25
    assert 0 < keep.sum() < keep.size
    expected = (h * keep / 0.75).dot(W.T) + b
    np.testing.assert_allclose(m(x).array, expected, rtol=1e-4, atol=1e-6)
    m.noise_key = [3, 0, 18]  # another update: another mask
    assert not np.allclose(m(x).array, expected, rtol=1e-4, atol=1e-6)
    with chainer.using_config('train', False):  # evaluation reads every unit, unscaled
        np.testing.assert_array_equal(m(x).array, y_eval)


def test_dropout_passes_gradient_check_and_keeps_the_mean():
    h = np.random.RandomState(1).uniform(-1, 1, (4, 7))
    gy = np.random.RandomState(2).uniform(-1, 1, (4, 7))
    gradient_check.check_backward(lambda v: model_mod.readout_dropout(v, 0.5, [1, 0, 2], np), h, gy)
    ones = chainer.Variable(np.ones((400, 500), np.float32))
    out = model_mod.readout_dropout(ones, 0.3, [1, 0, 2], np).array
    np.testing.assert_allclose(np.unique(out), [0.0, 1 / 0.7], rtol=1e-6)  # dropped, or kept x 1/(1-P)
    assert abs(float((out == 0).mean()) - 0.3) < 0.005  # 200000 draws: std 0.001
    assert abs(float(out.mean()) - 1.0) < 0.01


def test_dropout_run_resumes_exactly_and_differs_from_no_dropout(tmp_path):
    a, c = resumes_exactly(tmp_path, dict(SMALL, dropout=0.3))
    assert not np.array_equal(a['h_to_h/W'], c['h_to_h/W'])


def test_dropout_refused_outside_its_range():
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(UsageError, match=r'--dropout: expected a probability in \[0, 1\)'):
            settings.resolve_config({'dropout': bad})


# ---- dropout on the input pixels -------------------------------------------------------

@pytest.mark.parametrize('name', ['irnn', 'lstm'])
def test_input_dropout_by_hand_only_while_training_and_keyed_by_the_update(name):
    m = model_mod.build(name, n_units=6, n_in=256, n_out=10, impl='fused')
    x = np.random.RandomState(0).randint(1, 256, (5, 20)).astype(np.int32)  # no black pixel yet
    with chainer.using_config('train', False):
        y_eval = m(x).array
    m.input_dropout, m.noise_key = 0.3, [3, 0, 17]
    # by hand: the same uniform draws, pixels below P set to 0, read without dropout
    keep = np.random.RandomState([3, 0, 17, 2]).uniform(size=x.shape) >= 0.3
    assert 0 < keep.sum() < keep.size
    with chainer.using_config('train', False):
        expected = m(np.where(keep, x, 0).astype(np.int32)).array
    np.testing.assert_array_equal(m(x).array, expected)
    m.noise_key = [3, 0, 18]  # another update: another mask
    assert not np.allclose(m(x).array, expected, rtol=1e-4, atol=1e-6)
    with chainer.using_config('train', False):  # evaluation reads the image as it is
        np.testing.assert_array_equal(m(x).array, y_eval)


def test_input_dropout_rate_and_what_it_keeps():
    x = np.random.RandomState(4).randint(0, 256, (400, 500)).astype(np.int32)
    out = model_mod.input_dropout(x, 0.1, [1, 0, 2], np)
    assert out.dtype == np.int32 and out.shape == x.shape
    changed = out != x
    assert np.all(out[changed] == 0)  # a dropped pixel is black, a kept one untouched
    dropped = float((out[x != 0] == 0).mean())
    assert abs(dropped - 0.1) < 0.003  # ~199000 non-black draws: std 0.0007
    with chainer.using_config('train', False):
        assert model_mod.input_dropout(x, 0.1, [1, 0, 2], np) is x


def test_input_dropout_run_resumes_exactly_and_differs_from_no_dropout(tmp_path):
    a, c = resumes_exactly(tmp_path, dict(SMALL, input_dropout=0.2))
    assert not np.array_equal(a['h_to_h/W'], c['h_to_h/W'])


def test_input_dropout_refused_outside_its_range_and_on_own_data():
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(UsageError, match=r'--input-dropout: expected a probability in \[0, 1\)'):
            settings.resolve_config({'input_dropout': bad})
    with pytest.raises(UsageError, match='--input-dropout: sets MNIST pixels to 0 .*got --dataset adding'):
        settings.resolve_config({'input_dropout': 0.1, 'dataset': 'adding'})


# ---- the learning rate -----------------------------------------------------------------

def test_schedule_values_by_hand():
    step = schedule.LRSchedule('lr', 1e-3, 'step', decay=0.5, every=8)
    assert [step.value(0, e) for e in (0, 7, 8, 15, 16, 24)] == [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 1.25e-4]
    cos = schedule.LRSchedule('lr', 1e-3, 'cosine', total=100, lr_min=1e-5)
    assert cos.value(0, 0) == pytest.approx(1e-3)
    assert cos.value(50, 0) == pytest.approx(1e-5 + (1e-3 - 1e-5) / 2)
    assert cos.value(100, 0) == pytest.approx(1e-5) and cos.value(150, 0) == pytest.approx(1e-5)
    const = schedule.LRSchedule('lr', 2e-4)
    const.scale = 0.25  # two rollbacks
    assert const.value(10 ** 6, 300) == pytest.approx(5e-5)


def test_step_schedule_matches_chainers_exponential_shift(tmp_path):
    """--lr-decay as before: the rate of every update equals ExponentialShift's (the
    extension runs before this change used)."""
    out = str(tmp_path / 'run')
    t = train_mod.train(dict(SMALL, optimizer='rmsprop', lr=1e-3, lr_decay=0.3, lr_decay_every=1,
                             epoch=3), out, progress=False, log=quiet)
    log = json.load(open(os.path.join(out, 'log')))
    # the rate used by the last update of epoch e (1-based) was set after epoch e - 1 ended
    assert [r['lr'] for r in log] == pytest.approx([1e-3, 3e-4, 9e-5], rel=1e-12)
    assert t.updater.get_optimizer('main').lr == pytest.approx(2.7e-5, rel=1e-12)


def test_plateau_lowers_the_rate_when_training_accuracy_stalls():
    s = schedule.LRSchedule('lr', 1.0, 'plateau', decay=0.5, patience=2)

    class U(object):
        iteration, epoch, is_new_epoch = 0, 0, False

        def get_optimizer(self, name):
            return self.opt

    class T(object):
        updater = U()
        observation = {}
    T.updater.opt = type('O', (), {})()
    trainer = T()
    rates = []
    for acc in (0.5, 0.6, 0.6, 0.55, 0.7, 0.7, 0.7, 0.7):  # epoch means, one update per epoch
        trainer.observation = {'main/accuracy': acc}
        trainer.updater.is_new_epoch = True
        s(trainer)
        rates.append(trainer.updater.opt.lr)
    # new bests at epochs 1, 2, 5; stalls: 3, 4 (-> halve), 6, 7 (-> halve), 8
    assert rates == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]


# ---- divergence ------------------------------------------------------------------------

class Overflow(chainer.training.Extension):
    """Fault injection, once: at iteration ``at`` the recurrent matrix becomes 1.5 I, so
    every later forward pass overflows over 784 steps (the IRNN's failure mode)."""
    trigger = 1, 'iteration'
    priority = chainer.training.PRIORITY_WRITER + 10  # before the evaluation of that iteration

    def __init__(self, at):
        self.at, self.fired = at, False

    def __call__(self, trainer):
        if trainer.updater.iteration == self.at and not self.fired:
            self.fired = True
            W = trainer.updater.get_optimizer('main').target.predictor.h_to_h.W
            W.array[...] = 1.5 * np.eye(W.shape[0], dtype=W.dtype)


def test_a_diverged_run_rolls_back_to_its_last_good_snapshot_at_half_the_rate(tmp_path):
    out = str(tmp_path / 'run')
    cfg = dict(SMALL, iteration=12, log_interval=2, skip_nonfinite=True, optimizer='rmsprop', lr=1e-3)
    t = train_mod.train(cfg, out, progress=False, log=quiet, extra_extensions=[Overflow(5)])
    events = json.load(open(os.path.join(out, recovery.ROLLBACKS_FILE)))['rollbacks']
    assert len(events) == 1 and events[0]['action'] == 'rollback'
    assert events[0]['iteration'] == 6 and events[0]['rolled_back_to'] == 'snapshot_iter_4'
    assert 'test loss' in events[0]['reason']
    assert t.updater.iteration == 12
    assert t.updater.get_optimizer('main').lr == pytest.approx(5e-4)
    log = json.load(open(os.path.join(out, 'log')))
    assert [r['iteration'] for r in log] == [2, 4, 6, 8, 10, 12]
    assert all(math.isfinite(r['validation/main/loss']) and r['validation/main/loss'] < 20 * math.log(10) for r in log)
    # an independent run of the first 4 iterations: the rollback started from exactly there
    ref = str(tmp_path / 'ref')
    train_mod.train(dict(cfg, iteration=4), ref, progress=False, log=quiet)
    keys = ('iteration', 'main/loss', 'main/accuracy', 'validation/main/loss', 'validation/main/accuracy')
    assert [[r[k] for k in keys] for r in log[:2]] == \
        [[r[k] for k in keys] for r in json.load(open(os.path.join(ref, 'log')))]


def test_a_run_that_keeps_diverging_stops_with_one_line(tmp_path):
    out = str(tmp_path / 'run')

    class Always(Overflow):
        def __call__(self, trainer):
            if trainer.updater.iteration % 2 == 1:
                W = trainer.updater.get_optimizer('main').target.predictor.h_to_h.W
                W.array[...] = 1.5 * np.eye(W.shape[0], dtype=W.dtype)
    cfg = dict(SMALL, iteration=12, log_interval=2, skip_nonfinite=True, max_rollbacks=2)
    with pytest.raises(TrainingDiverged) as e:
        train_mod.train(cfg, out, progress=False, log=quiet, extra_extensions=[Always(0)])
    assert 'no snapshot to go back to' in str(e.value)
    events = json.load(open(os.path.join(out, recovery.ROLLBACKS_FILE)))['rollbacks']
    assert [ev['action'] for ev in events] == ['stop']


def test_rollbacks_to_the_same_snapshot_lower_the_rate_each_time(tmp_path):
    """A resume is exact, so a second rollback to the same snapshot at the same rate would
    repeat the first's divergence: each one lowers the rate again (1e-3 -> 5e-4 -> 2.5e-4)."""
    out = str(tmp_path / 'run')
    cfg = dict(SMALL, iteration=12, log_interval=2, skip_nonfinite=True, optimizer='rmsprop', lr=1e-3)

    class Twice(Overflow):  # the first two times iteration 5 is reached
        count = 0

        def __call__(self, trainer):
            if trainer.updater.iteration == 5 and Twice.count < 2:
                Twice.count += 1
                W = trainer.updater.get_optimizer('main').target.predictor.h_to_h.W
                W.array[...] = 1.5 * np.eye(W.shape[0], dtype=W.dtype)
    t = train_mod.train(cfg, out, progress=False, log=quiet, extra_extensions=[Twice(0)])
    events = json.load(open(os.path.join(out, recovery.ROLLBACKS_FILE)))['rollbacks']
    assert [(e['rolled_back_to'], e['lr_factor']) for e in events] == \
        [('snapshot_iter_4', 0.5), ('snapshot_iter_4', 0.25)]
    assert t.updater.iteration == 12
    assert t.updater.get_optimizer('main').lr == pytest.approx(2.5e-4)


def test_stop_and_max_rollbacks(tmp_path):
    out = str(tmp_path / 'run')
    cfg = dict(SMALL, iteration=12, log_interval=2, skip_nonfinite=True, max_rollbacks=2)

    class Late(Overflow):  # every time iteration 5 is reached (again)
        def __call__(self, trainer):
            if trainer.updater.iteration == 5:
                W = trainer.updater.get_optimizer('main').target.predictor.h_to_h.W
                W.array[...] = 1.5 * np.eye(W.shape[0], dtype=W.dtype)
    with pytest.raises(TrainingDiverged) as e:
        train_mod.train(cfg, out, progress=False, log=quiet, extra_extensions=[Late(0)])
    msg = str(e.value)
    assert '--max-rollbacks 2' in msg and 'snapshot_iter_4' in msg and '\n' not in msg
    events = json.load(open(os.path.join(out, recovery.ROLLBACKS_FILE)))['rollbacks']
    assert [ev['action'] for ev in events] == ['rollback', 'rollback', 'stop']
    # the good snapshot is kept and resumes
    assert os.path.exists(os.path.join(out, 'snapshot_iter_4'))
    out2 = str(tmp_path / 'stop')
    with pytest.raises(TrainingDiverged, match='--on-divergence stop'):
        train_mod.train(dict(cfg, on_divergence='stop'), out2, progress=False, log=quiet,
                        extra_extensions=[Late(0)])


def test_ignore_trains_on_at_chance(tmp_path):
    out = str(tmp_path / 'run')
    cfg = dict(SMALL, iteration=8, log_interval=2, skip_nonfinite=True, on_divergence='ignore')
    t = train_mod.train(cfg, out, progress=False, log=quiet, extra_extensions=[Overflow(3)])
    assert t.updater.iteration == 8 and not os.path.exists(os.path.join(out, recovery.ROLLBACKS_FILE))
    log = json.load(open(os.path.join(out, 'log')))
    assert [r['skipped'] for r in log] == [0.0, 0.5, 1.0, 1.0]  # every update after iteration 3
    assert not math.isfinite(log[-1]['validation/main/loss'])


def test_cli_divergence_is_one_line_and_exit_2(tmp_path):
    # Adam 1e-3 without clipping, 100 units: the first two updates already blow up
    r = subprocess.run([sys.executable, '-m', 'irnn_chainer', 'train', '--dataset', 'embedded',
                        '--optimizer', 'adam', '--lr', '1e-3', '--clip', '0',
                        '--iteration', '4', '--log-interval', '2', '--train-limit', '64',
                        '--test-limit', '16', '--skip-nonfinite', '--no-progress',
                        '--out', str(tmp_path / 'run')], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    errors = [l for l in r.stderr.splitlines() if l.startswith('irnn-chainer: error:')]
    assert len(errors) == 1 and 'training diverged' in errors[0] and 'Traceback' not in r.stderr


@pytest.mark.parametrize('flags,expected', [
    ({'lr_schedule': 'warm'}, '--lr-schedule: expected one of constant, step, cosine, plateau'),
    ({'lr_schedule': 'cosine', 'lr_decay': 0.5}, '--lr-decay 0.5: not used by --lr-schedule cosine'),
    ({'lr_min': 1.0}, r'--lr-min: expected a rate in \[0, --lr'),
    ({'on_divergence': 'pray'}, '--on-divergence: expected one of rollback, stop, ignore'),
    ({'rollback_factor': 1.5}, r'--rollback-factor: expected a factor in \(0, 1\)'),
    ({'max_rollbacks': -1}, '--max-rollbacks: expected an integer >= 0'),
])
def test_bad_flags_are_one_line(flags, expected):
    with pytest.raises(UsageError, match=expected):
        settings.resolve_config(flags)


def test_a_presets_step_decay_gives_way_to_cosine():
    cfg = settings.resolve_config({'preset': 'fast', 'lr_schedule': 'cosine'})
    assert cfg['lr_decay'] is None and schedule.schedule_name(cfg) == 'cosine'
    assert schedule.schedule_name(settings.resolve_config({'preset': 'fast'})) in ('step', 'cosine', 'plateau', 'constant')


def test_verdicts_by_hand():
    g = recovery.DivergenceGuard(judge=lambda t: False, n_classes=10)
    assert g.loss_limit == pytest.approx(20 * math.log(10))
    # 100 updates, 3 of them exploding (loss 1e4): the mean is 302, the median 2.0: a run that
    # recovers by itself is not rolled back
    g.n, g.losses = 100, [2.0] * 97 + [1e4] * 3
    assert np.mean(g.losses) > g.loss_limit and g.verdict(test_loss=1.9) is None
    g.losses = [2.0] * 40 + [1e3] * 60  # most batches far above guessing
    assert 'median training loss 1000' in g.verdict(test_loss=1.9)
    g.losses = [2.0] * 100
    assert 'test loss at its end is inf' in g.verdict(test_loss=float('inf'))
    # a large finite test loss at a healthy training loss is overfitting, not divergence
    assert g.verdict(test_loss=50.0) is None and g.verdict(test_loss=113.3) is None
    # a blow-up in the interval's last fifth: the median over all of it is fine, its end is not
    g.losses = [2.0] * 80 + [2.2e7] * 20
    assert np.median(g.losses) < g.loss_limit
    assert 'median training loss of its last 10 updates, 2.2e+07' in g.verdict(test_loss=2.2e7)
    g.losses = [0.01] * 100  # overfitting: near-zero training loss, a confidently wrong test set
    assert g.verdict(test_loss=57.2) is None
    g.losses = [2.0] * 100
    g.skipped = 51
    assert '51 of its 100 updates had a non-finite gradient' in g.verdict(test_loss=2.0)
    g.skipped, g.nonfinite = 50, 51
    assert '51 of its 100 training losses were not finite' in g.verdict(test_loss=2.0)
    reg = recovery.DivergenceGuard(judge=lambda t: False, n_classes=None)  # regression: no limit
    reg.n, reg.losses = 10, [1e6] * 10
    assert reg.verdict(test_loss=1e6) is None


# ---- the pull toward the identity (--identity-decay) ---------------------------------

class _FakeTrainer(object):
    """What IdentityDecay reads: the updater's optimizer and its rate."""

    def __init__(self, optimizer):
        self.updater = type('U', (), {'get_optimizer': lambda self, name: optimizer})()


def test_identity_decay_by_hand():
    """W <- W - rate * LAMBDA * (W - s I), computed entry by entry in float64; the bias is left."""
    link = chainer.links.Linear(3, 3)
    W0 = np.array([[1.2, -0.3, 0.1], [0.4, 0.9, -0.2], [0.0, 0.5, 1.1]])
    link.W.data = W0.copy()
    b0 = link.b.data.copy()
    opt = type('O', (), {'lr': 0.1, 'alpha': 0.25})()
    schedule.IdentityDecay([link], 2.0, scale=0.5)(_FakeTrainer(opt))
    c = 0.1 * 2.0
    expected = [[W0[i][j] - c * (W0[i][j] - (0.5 if i == j else 0.0)) for j in range(3)] for i in range(3)]
    np.testing.assert_allclose(link.W.data, expected, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(link.b.data, b0)
    # Adam's rate is its alpha
    link.W.data = W0.copy()
    schedule.IdentityDecay([link], 2.0, attr='alpha')(_FakeTrainer(opt))
    np.testing.assert_allclose(link.W.data, W0 - 0.5 * (W0 - np.eye(3)), rtol=0, atol=1e-15)


def test_identity_decay_run_resumes_exactly_and_a_full_pull_keeps_the_identity(tmp_path):
    """lr 0.01 x LAMBDA 100 = 1: every update is undone on h_to_h/W, which stays I exactly
    while the other weights learn; a weaker pull resumes exactly and differs from none."""
    full = str(tmp_path / 'full')
    train_mod.train(dict(SMALL, iteration=6, identity_decay=100.0), full, progress=False, log=quiet)
    p = params_of(full)
    np.testing.assert_array_equal(p['h_to_h/W'], np.eye(8, dtype=np.float32))
    a, c = resumes_exactly(tmp_path, dict(SMALL, identity_decay=5.0))
    eye = np.eye(8)
    assert np.abs(a['h_to_h/W'] - eye).sum() < np.abs(c['h_to_h/W'] - eye).sum()
    assert np.abs(p['h_to_y/b']).max() > 0  # the output layer learned (it starts at 0)


def test_identity_decay_refused_where_it_does_not_apply():
    with pytest.raises(UsageError, match='--identity-decay: pulls .* not of rnn-relu'):
        settings.resolve_config({'model': 'rnn-relu', 'identity_decay': 0.1})
    with pytest.raises(UsageError, match='--identity-decay: expected a strength >= 0'):
        settings.resolve_config({'identity_decay': -1.0})
    with pytest.raises(UsageError, match=r'--identity-decay: expected at most 1 / --lr'):
        settings.resolve_config({'preset': 'fast', 'identity_decay': 2e4})


# ---- the moving average of the weights (--ema) ---------------------------------------

def test_weight_average_by_hand():
    """Three 'updates' of a one-parameter link: the average follows A <- d A + (1 - d) W with
    d = min(DECAY, (1 + n) / (10 + n)), computed here by hand; the model itself is untouched."""
    from irnn_chainer.run import averaging
    link = chainer.links.Linear(1, 1, initialW=np.array([[2.0]]), initial_bias=np.array([0.0]))
    avg = averaging.WeightAverage(link, 0.25)
    expected = 2.0
    for n, w in enumerate([4.0, -1.0, 3.0], 1):
        link.W.data[...] = w
        avg()
        d = min(0.25, (1.0 + n) / (10.0 + n))  # 2/11, 3/12 = 0.25, then 0.25
        expected = d * expected + (1 - d) * w
        assert float(avg.average.W.data[0, 0]) == pytest.approx(expected, rel=1e-6)  # float32
        assert float(link.W.data[0, 0]) == w
    assert averaging.decay_at(0.999, 1) == pytest.approx(2 / 11.0)
    assert averaging.decay_at(0.999, 10 ** 6) == 0.999


def test_ema_run_averages_the_weights_it_trained_and_resumes_exactly(tmp_path):
    """A second implementation: the weights after each of 0..6 updates come from runs of
    k updates (the constant rate makes the first k updates of every run the same); their
    average by hand must be the 6-update run's model_ema.npz, whose logged test accuracy
    is recomputed from it; a run split 4 + 2 ends with the same average; model.npz is the
    same as without --ema (the average never trains)."""
    cfg = dict(SMALL, ema=0.5)
    runs = {}
    for k in range(1, 7):
        runs[k] = str(tmp_path / ('k%d' % k))
        train_mod.train(dict(cfg, iteration=k), runs[k], progress=False, log=quiet)
    plain = str(tmp_path / 'plain')
    train_mod.train(dict(SMALL, iteration=6), plain, progress=False, log=quiet)
    for k_, v in params_of(plain).items():
        np.testing.assert_array_equal(v, params_of(runs[6])[k_], err_msg=k_)
    # the initial weights: the run's model factory with the run's seed
    run_cfg = runfolder.read_config(runs[6])
    from irnn_chainer.data import sources
    init = model_mod.for_run(run_cfg, sources.from_config(run_cfg)).predictor
    avg = {name.lstrip('/'): p.data.astype(np.float64) for name, p in init.namedparams()}
    for k in range(1, 7):
        d = min(0.5, (1.0 + k) / (10.0 + k))
        w = params_of(runs[k])
        avg = {n: d * a + (1 - d) * w[n] for n, a in avg.items()}
    with np.load(os.path.join(runs[6], runfolder.EMA_MODEL_FILE)) as f:
        for n in avg:
            np.testing.assert_allclose(f[n], avg[n], rtol=1e-5, atol=1e-7, err_msg=n)
    assert not np.allclose(avg['h_to_y/W'], params_of(runs[6])['h_to_y/W'])
    # the logged ema accuracy is that of the saved average
    log = json.load(open(os.path.join(runs[6], 'log')))
    data = sources.load(run_cfg, runs[6], log=quiet)
    m = model_mod.for_run(run_cfg, data)
    chainer.serializers.load_npz(os.path.join(runs[6], runfolder.EMA_MODEL_FILE), m.predictor)
    x, t = train_mod.convert(list(data.test))
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        acc = float((m.predictor(x).array.argmax(axis=1) == t).mean())
    assert log[-1]['ema/main/accuracy'] == pytest.approx(acc, abs=1e-6)
    # resumed: the same average
    split = str(tmp_path / 'split')
    train_mod.train(dict(cfg, iteration=4), split, progress=False, log=quiet)
    train_mod.train({'iteration': 6}, None, resume=split, progress=False, log=quiet)
    with np.load(os.path.join(split, runfolder.EMA_MODEL_FILE)) as a, \
            np.load(os.path.join(runs[6], runfolder.EMA_MODEL_FILE)) as b:
        for n in a.files:
            np.testing.assert_array_equal(a[n], b[n], err_msg=n)


def test_ema_refused_outside_its_range():
    for bad in (1.0, -0.1, 2.0):
        with pytest.raises(UsageError, match=r'--ema: expected a decay factor in \[0, 1\)'):
            settings.resolve_config({'ema': bad})


def test_evaluate_and_load_take_a_runs_model_ema_npz(tmp_path, capsys):
    """``evaluate RUN/model_ema.npz`` scores the averaged weights: the figures the run logged
    as ema/main/*; ``RUN/model.npz`` the trained ones (validation/main/*); ``irnn_chainer.load``
    and ``predict`` take the same files."""
    import irnn_chainer
    from irnn_chainer.commands import evaluate
    from irnn_chainer.data import sources
    from irnn_chainer.commands.cli import main
    run = str(tmp_path / 'run')
    train_mod.train(dict(SMALL, ema=0.5, iteration=6), run, progress=False, log=quiet)
    last = json.load(open(os.path.join(run, 'log')))[-1]
    assert last['ema/main/accuracy'] != last['validation/main/accuracy'] or \
        last['ema/main/loss'] != pytest.approx(last['validation/main/loss'], abs=1e-6)
    ema_file = os.path.join(run, runfolder.EMA_MODEL_FILE)
    r = evaluate.evaluate(ema_file, log=quiet)
    assert r['model'] == ema_file
    assert r['accuracy'] == pytest.approx(last['ema/main/accuracy'], abs=1e-6)
    assert r['loss'] == pytest.approx(last['ema/main/loss'], rel=1e-5)
    r = evaluate.evaluate(os.path.join(run, runfolder.MODEL_FILE), log=quiet)
    assert r['accuracy'] == pytest.approx(last['validation/main/accuracy'], abs=1e-6)
    assert r['loss'] == pytest.approx(last['validation/main/loss'], rel=1e-5)
    # the Python API on the same file: its probabilities give the logged accuracy
    cfg = runfolder.read_config(run)
    x, t = train_mod.convert(list(sources.load(cfg, run, log=quiet).test))
    probs = irnn_chainer.load(ema_file).predict(x)
    assert float((probs.argmax(axis=1) == t).mean()) == pytest.approx(last['ema/main/accuracy'], abs=1e-6)
    capsys.readouterr()
    assert main(['evaluate', ema_file]) == 0
    assert 'model_ema.npz' in capsys.readouterr().out
    # another file of the run is not weights: one line, exit 2
    assert main(['evaluate', os.path.join(run, 'config.json')]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'config.json: expected a run folder or one of its weight files' in err, err


# ---- gradient noise (--grad-noise) ------------------------------------------------------------

def test_grad_noise_is_the_annealed_gaussian_keyed_by_the_update():
    """One SGD update by hand: the step with noise minus the step without is -lr times the
    noise drawn from RandomState([seed, rank, t, 4]) with variance eta / (1 + t)^0.55."""
    import chainer.links as L
    from irnn_chainer.run import schedule
    lr, eta, seed = 0.1, 0.3, 7
    steps = []
    for noise in (False, True):
        np.random.seed(0)
        model = L.Classifier(model_mod.IRNN(n_units=3, n_in=5, n_out=2))
        opt = chainer.optimizers.SGD(lr=lr)
        opt.setup(model)
        opt.t = 2  # the third update of a run: t = 2 updates made before it
        if noise:
            opt.add_hook(schedule.GradientNoise(eta, seed))
        x = np.array([[1, 2, 3], [4, 0, 1]], np.int32)
        before = {n: p.array.copy() for n, p in model.namedparams()}
        opt.update(model, x, np.array([0, 1], np.int32))
        steps.append({n: p.array - before[n] for n, p in model.namedparams()})
    rng = np.random.RandomState([seed, 0, 2, 4])
    std = np.sqrt(eta / 3.0 ** 0.55)
    for name in sorted(steps[0]):
        noise = rng.normal(0.0, std, steps[0][name].shape).astype(np.float32)
        np.testing.assert_allclose(steps[1][name] - steps[0][name], -lr * noise, rtol=1e-4, atol=1e-6,
                                   err_msg=name)


def test_grad_noise_run_resumes_exactly_and_differs_from_no_noise(tmp_path):
    a, c = resumes_exactly(tmp_path, dict(SMALL, grad_noise=1e-4))
    assert not np.array_equal(a['h_to_h/W'], c['h_to_h/W'])


def test_grad_noise_refusals():
    with pytest.raises(UsageError, match=r'^--grad-noise: expected a variance >= 0, got -1'):
        settings.resolve_config({'grad_noise': -1.0})
