"""A run's settings (settings.py): presets, flags over them, and the checks of every
combination that cannot work, each refused in one line."""
import json
import os

import pytest

import irnn_chainer  # noqa: F401  (compat shims first)
from irnn_chainer.run import schedule
from irnn_chainer import settings
from irnn_chainer.errors import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, 'results')


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
    cfg = settings.resolve_config({'preset': 'fast', 'lr_decay': 0.5})  # the preset before its cosine
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


# ---- one declaration per setting -----------------------------------------------------------

def test_the_flags_reference_is_current():
    """docs/flags.md is generated from the declarations: regenerate with tools/flags_doc.py."""
    from irnn_chainer.commands import cli
    with open(os.path.join(ROOT, 'docs', 'flags.md')) as f:
        assert f.read() == cli.flags_reference() + '\n', 'docs/flags.md is out of date: python tools/flags_doc.py'


def test_every_declared_setting_is_a_flag_with_its_registry_as_choices():
    from irnn_chainer.commands import cli
    from irnn_chainer.model import rnn
    from irnn_chainer.run import optimizers, recovery, schedule
    parser = cli.build_parser()
    train = parser._subparsers._group_actions[0].choices['train']
    actions = {a.dest: a for a in train._actions}
    assert set(settings.DEFAULTS) == {s.name for s in settings.SETTINGS}
    for s in settings.SETTINGS:
        a = actions[s.name]
        assert s.flag in a.option_strings and a.help.startswith(s.help) and a.default is None
        assert s.group in settings.GROUPS
    for name, registry in (('model', rnn.MODELS), ('optimizer', optimizers.OPTIMIZERS),
                           ('preset', settings.PRESETS), ('lr_schedule', schedule.SCHEDULES),
                           ('on_divergence', recovery.ACTIONS)):
        assert tuple(actions[name].choices) == tuple(registry), name
    # --resume may change exactly the settings declared resumable
    assert set(settings.RESUMABLE_CHANGES) == {'epoch', 'iteration', 'device', 'data_dir', 'eval_batchsize',
                                               'impl', 'log_interval', 'on_divergence', 'max_rollbacks'}


@pytest.mark.parametrize('key, value, want', [
    ('h0_noise', 'lots', 'a number'), ('dropout', True, 'a number'), ('ema', [0.9], 'a number'),
    ('validation', 1.5, 'an integer'), ('permute', 'yes', 'true or false'), ('model', 3, 'a text'),
])
def test_config_json_is_checked_against_the_declared_types(tmp_path, key, value, want):
    from irnn_chainer import files
    from irnn_chainer.run import runfolder
    with open(os.path.join(str(tmp_path), 'config.json'), 'w') as f:
        json.dump({'model': 'irnn', key: value}, f)
    with pytest.raises(files.FileError) as info:
        runfolder.read_config(str(tmp_path))
    assert '%s: expected %s, found %s' % (key, want, json.dumps(value)) in str(info.value)


def test_one_check_gives_the_same_line_from_the_command_line_and_from_python(capsys):
    from irnn_chainer.commands import cli
    with pytest.raises(SystemExit) as info:
        cli.main(['train', '--dropout', '1.5'])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --dropout: expected a probability in [0, 1) (0 = off), got '1.5'" in err
    with pytest.raises(UsageError, match=r'^--dropout: expected a probability in \[0, 1\) \(0 = off\), got 1.5$'):
        settings.resolve_config({'dropout': 1.5})


@pytest.mark.parametrize('model, want', [
    ('lstm', dict(h0_noise=0.0, identity_decay=0.0, lr=1e-3, lr_schedule='step', lr_decay=0.5, lr_decay_every=10)),
    ('gru', dict(h0_noise=0.0, identity_decay=0.0, lr=1e-3, lr_schedule='step', lr_decay=0.5)),
    ('rnn-tanh', dict(h0_noise=0.0, identity_decay=0.0, init_std=0.1, lr=1e-4, lr_schedule='cosine', lr_min=0.0)),
    ('rnn-relu', dict(h0_noise=0.0, identity_decay=0.0, init_std=0.1)),
    ('irnn', dict(h0_noise=0.1, identity_decay=1.0, init_std=0.001, lr=1e-4, lr_min=1e-6)),
])
def test_fast_adapts_to_the_model_and_never_fails_over_a_flag_not_given(model, want):
    cfg = settings.resolve_config({'preset': 'fast', 'model': model})
    assert {k: cfg[k] for k in want} == want
    assert cfg['ema'] == 0.999 and cfg['optimizer'] == 'rmsprop' and cfg['clip'] == 1.0


def test_a_flag_that_does_not_apply_is_refused_even_with_a_preset():
    with pytest.raises(UsageError, match='--h0-noise: covers the one-layer pixel models irnn, rnn-relu and '
                                         'rnn-tanh, not gru'):
        settings.resolve_config({'preset': 'fast', 'model': 'gru', 'h0_noise': 0.1})
    with pytest.raises(UsageError, match='--identity-decay: pulls the identity-initialised recurrent matrix '
                                         'of --model irnn, not of lstm'):
        settings.resolve_config({'preset': 'fast', 'model': 'lstm', 'identity_decay': 1.0})
    with pytest.raises(UsageError, match='--model gru: not available with --data'):
        settings.resolve_config({'model': 'gru', 'layers': [4, 2]})


def test_paper_preset_covers_every_model():
    from irnn_chainer.model import rnn
    for model in rnn.MODELS:
        cfg = settings.resolve_config({'preset': 'paper', 'model': model})
        assert (cfg['optimizer'], cfg['clip'], cfg['batchsize'], cfg['init_std']) == ('sgd', 1.0, 16, 0.001)
        assert cfg['lr'] == (1e-2 if model in ('lstm', 'gru') else 1e-8), model
