"""A run's settings (settings.py): presets, flags over them, and the checks of every
combination that cannot work, each refused in one line."""
import pytest

import irnn_chainer  # noqa: F401  (compat shims first)
from irnn_chainer import settings
from irnn_chainer.errors import UsageError


def test_fast_preset_carries_its_decay_and_flags_override_it():
    cfg = settings.resolve_config({'preset': 'fast'})
    assert (cfg['optimizer'], cfg['lr'], cfg['lr_decay'], cfg['lr_decay_every']) == ('rmsprop', 1e-4, 0.5, 8)
    cfg = settings.resolve_config({'preset': 'fast', 'lr_decay': 1.0, 'lr_decay_every': 3, 'lr': 3e-5})
    assert (cfg['lr'], cfg['lr_decay'], cfg['lr_decay_every']) == (3e-5, 1.0, 3)
    # the other presets do not decay
    assert settings.resolve_config({'preset': 'blog'})['lr_decay'] is None
    # on permuted MNIST fast takes the rate that did not blow up there
    cfg = settings.resolve_config({'preset': 'fast', 'permute': True})
    assert (cfg['lr'], cfg['lr_decay'], cfg['optimizer']) == (3e-5, None, 'rmsprop')
    assert settings.resolve_config({'preset': 'fast', 'permute': True, 'lr': 1e-4})['lr'] == 1e-4


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
