"""A run's settings (settings.py): presets, flags over them, and the checks of every
combination that cannot work, each refused in one line."""
import json
import os

import pytest

import irnn_chainer  # noqa: F401  (compat shims first)
from irnn_chainer.run import schedule
from irnn_chainer import settings
from irnn_chainer.errors import UsageError

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'results')


def test_fast_preset_carries_its_schedule_and_flags_override_it():
    cfg = settings.resolve_config({'preset': 'fast'})
    assert (cfg['optimizer'], cfg['lr'], cfg['lr_schedule'], cfg['lr_min'], cfg['h0_noise'], cfg['lr_decay']) \
        == ('rmsprop', 1e-4, 'cosine', 1e-6, 0.1, None)
    assert schedule.schedule_name(cfg) == 'cosine'
    assert (cfg['identity_decay'], cfg['ema']) == (1.0, 0.999)
    # the pull is the IRNN's: fast with another model leaves it off, the flag itself is refused
    assert settings.resolve_config({'preset': 'fast', 'model': 'rnn-relu'})['identity_decay'] == 0.0
    with pytest.raises(UsageError, match='--identity-decay: pulls'):
        settings.resolve_config({'preset': 'fast', 'model': 'rnn-relu', 'identity_decay': 1.0})
    # an explicit step decay takes the place of the preset's cosine
    cfg = settings.resolve_config({'preset': 'fast', 'lr_decay': 1.0, 'lr_decay_every': 3, 'lr': 3e-5})
    assert (cfg['lr'], cfg['lr_decay'], cfg['lr_decay_every']) == (3e-5, 1.0, 3)
    assert schedule.schedule_name(cfg) == 'step'
    cfg = settings.resolve_config({'preset': 'fast', 'lr_decay': 0.5})  # the preset until issue 19
    assert (cfg['lr_decay'], cfg['lr_decay_every'], schedule.schedule_name(cfg)) == (0.5, 8, 'step')
    # the other presets do not decay
    assert settings.resolve_config({'preset': 'blog'})['lr_decay'] is None
    assert schedule.schedule_name(settings.resolve_config({'preset': 'blog'})) == 'constant'
    # on permuted MNIST fast takes its own cosine: from the pixel rate, to 1e-7, noise 0.05
    cfg = settings.resolve_config({'preset': 'fast', 'permute': True})
    assert (cfg['lr'], cfg['lr_min'], cfg['lr_decay'], cfg['optimizer'], cfg['h0_noise']) \
        == (1e-4, 1e-7, None, 'rmsprop', 0.05)
    assert (cfg['identity_decay'], cfg['ema']) == (1.0, 0.999)
    assert schedule.schedule_name(cfg) == 'cosine'
    assert settings.resolve_config({'preset': 'fast', 'permute': True, 'lr': 5e-5})['lr'] == 5e-5


def test_a_fast_run_made_before_the_preset_changed_resumes_as_it_was():
    """A run saved by the code of the old ``fast`` (halving every 8 epochs, before
    --lr-schedule and --h0-noise existed) keeps its step decay and gets no h_0 noise."""
    old = dict(settings.DEFAULTS, preset='fast', optimizer='rmsprop', lr=1e-4, clip=1.0,
               skip_nonfinite=True, lr_decay=0.5, lr_decay_every=8)
    for key in ('lr_schedule', 'lr_min', 'lr_patience', 'h0_noise', 'on_divergence', 'max_rollbacks',
                'rollback_factor'):
        del old[key]
    cfg = settings.resolve_config({}, old)
    assert (cfg['lr_decay'], cfg['lr_decay_every'], cfg['h0_noise'], cfg['lr_schedule']) == (0.5, 8, 0.0, None)
    assert schedule.schedule_name(cfg) == 'step'


def test_a_permuted_fast_run_from_before_the_rate_change_resumes_at_its_own_rate():
    """results/ablations/seed2-irnn-permuted was saved when ``fast --permute`` started at 5e-5: its
    config, resumed under today's preset (1e-4), keeps 5e-5 and its cosine."""
    with open(os.path.join(RESULTS, 'ablations', 'seed2-irnn-permuted', 'config.json')) as f:
        saved = json.load(f)
    assert (saved['preset'], saved['permute'], saved['lr']) == ('fast', True, 5e-5)
    cfg = settings.resolve_config({'epoch': 120}, saved)
    assert (cfg['lr'], cfg['lr_min'], cfg['lr_schedule'], cfg['h0_noise']) == (5e-5, 1e-7, 'cosine', 0.05)


def test_blog_preset_is_the_blogs_own_run_and_paper_the_papers():
    # The blog: "std of 0.01; No gradient clipping; The other setting is the same as the paper."
    cfg = settings.resolve_config({'preset': 'blog'})
    assert (cfg['model'], cfg['optimizer'], cfg['lr'], cfg['batchsize']) == ('irnn', 'sgd', 1e-8, 16)
    assert (cfg['init_std'], cfg['clip']) == (0.01, 0.0)
    cfg = settings.resolve_config({'preset': 'paper'})
    assert (cfg['optimizer'], cfg['lr'], cfg['init_std'], cfg['clip']) == ('sgd', 1e-8, 0.001, 1.0)
    # an explicit flag still wins over the preset
    assert settings.resolve_config({'preset': 'blog', 'clip': 1.0})['clip'] == 1.0


@pytest.mark.parametrize('cli, words', [
    (dict(data='x.npz', dataset='embedded'), ['--data', '--dataset embedded', 'one of them']),
    (dict(length=10), ['--length', '--dataset adding']),
    (dict(dataset='adding', task='classification'), ['--task classification', 'regression']),
    (dict(dataset='adding', test_split=0.2), ['--test-split', 'own test set']),
    (dict(layers=[4, 2], unit=4), ['--unit 4', '--layers 4,2', 'one of them']),
    (dict(test_split=0.2), ['--test-split', '--data']),
    (dict(input='real'), ['--input', '--data']),
    (dict(layers=[4], model='lstm'), ['--model lstm', 'irnn']),
])
def test_flag_combinations_give_usage_errors(cli, words):
    with pytest.raises(UsageError) as info:
        settings.resolve_config(cli)
    for w in words:
        assert w in str(info.value), (w, str(info.value))
