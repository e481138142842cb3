"""A run's settings: defaults, presets, the resolution of flags over them, every check.

``resolve_config(cli, saved)`` is DEFAULTS <- a preset <- the resumed run's config.json
<- the flags given; every combination that cannot work is refused here, in one line
(:class:`~irnn_chainer.errors.UsageError`). What depends on the data (e.g. ``--input-bias``
with ids) is checked where the data are known, by the model factory.
"""
import math

from irnn_chainer.run import memory
from irnn_chainer.run import recovery
from irnn_chainer.run import schedule
from irnn_chainer.errors import UsageError
from irnn_chainer.model.rnn import MODELS

# Settings that define a run; ``--resume`` keeps them from the run's config.json.
DEFAULTS = {
    'model': 'irnn', 'optimizer': 'sgd', 'preset': None,
    'batchsize': 16, 'epoch': None, 'iteration': None, 'lr': 1e-8, 'clip': 1.0,
    'unit': 100, 'init_std': 0.001, 'seed': 0, 'permute': False, 'dataset': 'auto',
    'data_dir': None, 'dtype': 'float32', 'train_limit': None, 'test_limit': None,
    'impl': 'auto', 'eval_batchsize': 1000, 'device': None, 'log_interval': None,
    'skip_nonfinite': False, 'lr_decay': None, 'lr_decay_every': 10,
    'communicator': None,  # ChainerMN data parallel under mpiexec (distributed.py)
    'init_from': None,     # start from another run's weights (a new run: fresh optimizer)
    # your own sequences (sequences.py, docs/own-data.md), stacked layers, the adding problem
    'data': None, 'input': None, 'task': None, 'layers': None, 'identity_scale': 1.0,
    'input_bias': False, 'test_split': None, 'length': None,
    # issue 19: the learning-rate schedule (schedule.py), noise on h_0 while training, and what
    # happens when the run diverges (recovery.py)
    'lr_schedule': None, 'lr_min': 0.0, 'lr_patience': 3, 'h0_noise': 0.0,
    'identity_decay': 0.0,  # the pull of h_to_h back toward I after each update (schedule.py)
    'dropout': 0.0,         # on h_T, before the classifier, while training (model.readout_dropout)
    'input_dropout': 0.0,   # pixels set to 0 (black) while training (model.input_dropout)
    'ema': 0.0,             # the moving average of the weights, evaluated beside them (averaging.py)
    'on_divergence': 'rollback', 'rollback_factor': 0.5, 'max_rollbacks': 3,
    'validation': None,     # hold out the last N training images and evaluate on them, not the test set
}
# May differ between a run and its resumption (where to run, how long, how to read data).
RESUMABLE_CHANGES = ('epoch', 'iteration', 'device', 'data_dir', 'eval_batchsize', 'impl', 'log_interval',
                     'on_divergence', 'max_rollbacks')

# Named settings (--preset); flags given on the command line override them. Values marked
# "our reading" are not stated in the source and were chosen by us; see the README.
PRESETS = {
    # The 2015 blog's own run: the paper's SGD 1e-8 and batch 16, but, in its words, "std
    # of 0.01; No gradient clipping" (other weights N(0, 0.01), not the paper's 0.001).
    'blog': {'model': 'irnn', 'optimizer': 'sgd', 'lr': 1e-8, 'clip': 0.0, 'batchsize': 16,
             'init_std': 0.01},
    # The paper, section 4.2, per model (N(0, 0.001), clip 1 and batch 16 throughout).
    'paper': {
        'irnn': {'optimizer': 'sgd', 'lr': 1e-8, 'clip': 1.0, 'batchsize': 16, 'init_std': 0.001},
        'rnn-relu': {'optimizer': 'sgd', 'lr': 1e-8, 'clip': 1.0, 'batchsize': 16},   # lr: our reading
        'rnn-tanh': {'optimizer': 'sgd', 'lr': 1e-8, 'clip': 1.0, 'batchsize': 16},   # lr: our reading
        'lstm': {'optimizer': 'sgd', 'lr': 1e-2, 'clip': 1.0, 'batchsize': 16},
    },
    # The Keras example mnist_irnn: RMSprop lr 1e-6, batch 32. It defines clip_norm = 1.0
    # but never passes it to the optimizer, so: no clipping (our reading of that code).
    'keras': {'model': 'irnn', 'optimizer': 'rmsprop', 'lr': 1e-6, 'clip': 0.0, 'batchsize': 32},
    # Ours: the best on pixel MNIST that we measured (README, results/RUNS.md): RMSprop 1e-4
    # decayed along a cosine to 1e-6 over the run's epochs, noise on h_0 in training (Wang,
    # Balestriero & Baraniuk 2019), and the recurrent matrix pulled back toward I after each
    # update (--identity-decay 1): 97.07 % in 100 epochs, where the same without the pull
    # reached 95.58 % and halving every 8 epochs (the preset until issue 19) 94.1 %. The
    # moving average of the weights (--ema 0.999) is scored beside them; training is the same.
    # The pull is the IRNN's: with another --model the preset leaves it off.
    'fast': {'model': 'irnn', 'optimizer': 'rmsprop', 'lr': 1e-4, 'clip': 1.0, 'batchsize': 16,
             'skip_nonfinite': True, 'lr_schedule': 'cosine', 'lr_min': 1e-6, 'h0_noise': 0.1,
             'identity_decay': 1.0, 'ema': 0.999,
             'lr_decay_every': 8},  # with --lr-decay 0.5: the old fast, halving every 8 epochs
}
# ``fast`` on permuted MNIST: the cosine ends lower, at 1e-7, with h_0 noise 0.05 (ahead of
# 0.01, 0.1 and 0.2 in one run each). Its start was 5e-5 while a constant 1e-4 blew up after
# 12 epochs; with the pull toward I, 1e-4 along the cosine survives its loss spikes (epochs
# 2-27) and ended ahead of 5e-5 on the same seeds: 90.46 against 89.80 % (seed 0) and
# 90.78 against 89.95 % (seed 2) at the last epoch (README, "How `fast` was chosen").
FAST_PERMUTED = {'lr': 1e-4, 'lr_schedule': 'cosine', 'lr_min': 1e-7, 'h0_noise': 0.05}
OPTIMIZERS = ('sgd', 'momentum', 'rmsprop', 'adam')

def resolve_config(cli, saved=None):
    """DEFAULTS <- the resumed run's saved config <- flags given on the command line."""
    cfg = dict(DEFAULTS)
    preset = cli.get('preset') or (saved or {}).get('preset')
    if preset:
        if preset not in PRESETS:
            raise UsageError('--preset: expected one of %s, got %r' % (', '.join(PRESETS), preset))
        values = PRESETS[preset]
        if preset == 'paper':
            model = cli.get('model') or (saved or {}).get('model') or DEFAULTS['model']
            values = dict(values[model], model=model)
        cfg.update(values, preset=preset)
        permute = cli.get('permute') if cli.get('permute') is not None else (saved or {}).get('permute')
        if preset == 'fast' and permute:
            cfg.update(FAST_PERMUTED)
    if saved:
        # a resumed run keeps what it saved; a setting it predates means what it meant then,
        # the default, not what its preset says today
        cfg.update({k: saved.get(k, DEFAULTS[k]) for k in DEFAULTS})
    for key, value in cli.items():
        if value is None or key not in DEFAULTS:
            continue
        if saved and key not in RESUMABLE_CHANGES and saved.get(key) != value:
            raise UsageError('--%s %s differs from the resumed run (%s); a resumed run keeps its '
                             'settings' % (key.replace('_', '-'), value, saved.get(key)))
        cfg[key] = value
    if cfg['identity_decay'] and cfg['model'] != 'irnn' and cli.get('identity_decay') is None:
        cfg['identity_decay'] = 0.0  # a preset's pull (fast) is the IRNN's; given as a flag it is refused
    if cli.get('epoch') is not None:
        cfg['iteration'] = None
    elif cli.get('iteration') is not None:
        cfg['epoch'] = None
    if cfg['epoch'] is None and cfg['iteration'] is None:
        cfg['epoch'] = 1
    if cfg['model'] not in MODELS:
        raise UsageError('--model: expected one of %s, got %r' % (', '.join(MODELS), cfg['model']))
    if cfg['optimizer'] not in OPTIMIZERS:
        raise UsageError('--optimizer: expected one of %s, got %r' % (', '.join(OPTIMIZERS), cfg['optimizer']))
    if cfg['impl'] == 'fused' and not MODELS[cfg['model']][2]:
        raise UsageError('--impl fused: the fused recurrence covers %s, not %s (it runs stepwise)'
                         % (', '.join(m for m, v in MODELS.items() if v[2]), cfg['model']))
    for key in ('batchsize', 'unit', 'eval_batchsize', 'log_interval'):
        if cfg[key] is not None and int(cfg[key]) < 1:
            raise UsageError('--%s: expected a positive integer, got %s' % (key, cfg[key]))
    for key in ('epoch', 'iteration'):
        if cfg[key] is not None and int(cfg[key]) < 1:
            raise UsageError('--%s: expected a positive integer, got %s' % (key, cfg[key]))
    if cfg['lr_decay'] is not None and not 0 < cfg['lr_decay'] <= 1:
        raise UsageError('--lr-decay: expected a factor in (0, 1], got %s' % cfg['lr_decay'])
    if int(cfg['lr_decay_every']) < 1:
        raise UsageError('--lr-decay-every: expected a positive integer, got %s' % cfg['lr_decay_every'])
    if cfg['lr_schedule'] is not None and cfg['lr_schedule'] not in schedule.SCHEDULES:
        raise UsageError('--lr-schedule: expected one of %s, got %r'
                         % (', '.join(schedule.SCHEDULES), cfg['lr_schedule']))
    if (cli.get('lr_decay') is not None and cli.get('lr_schedule') is None and not saved
            and cfg['lr_schedule'] in ('constant', 'cosine')):
        cfg['lr_schedule'] = None  # an explicit step decay takes the place of a preset's schedule
    if cfg['lr_schedule'] in ('constant', 'cosine') and cfg['lr_decay']:
        if cli.get('lr_decay') is not None:
            raise UsageError('--lr-decay %s: not used by --lr-schedule %s (it applies to step and plateau)'
                             % (cfg['lr_decay'], cfg['lr_schedule']))
        cfg['lr_decay'] = None  # a preset's step decay gives way to the schedule asked for
    if int(cfg['lr_patience']) < 1:
        raise UsageError('--lr-patience: expected a positive number of epochs, got %s' % cfg['lr_patience'])
    if cfg['on_divergence'] not in recovery.ACTIONS:
        raise UsageError('--on-divergence: expected one of %s, got %r'
                         % (', '.join(recovery.ACTIONS), cfg['on_divergence']))
    if not 0 < float(cfg['rollback_factor']) < 1:
        raise UsageError('--rollback-factor: expected a factor in (0, 1), got %s' % cfg['rollback_factor'])
    if int(cfg['max_rollbacks']) < 0:
        raise UsageError('--max-rollbacks: expected an integer >= 0, got %s' % cfg['max_rollbacks'])
    for key in ('lr', 'clip', 'init_std', 'lr_decay', 'identity_scale', 'lr_min', 'h0_noise', 'identity_decay', 'ema',
                'dropout', 'input_dropout', 'rollback_factor'):
        if cfg.get(key) is not None and not math.isfinite(float(cfg[key])):
            raise UsageError('--%s: expected a finite number, got %s' % (key.replace('_', '-'), cfg[key]))
    if not cfg['lr'] > 0:
        raise UsageError('--lr: expected a positive number, got %s' % cfg['lr'])
    if cfg['clip'] is not None and cfg['clip'] < 0:
        raise UsageError('--clip: expected >= 0 (0 = no clipping), got %s' % cfg['clip'])
    if cfg['init_std'] < 0:
        raise UsageError('--init-std: expected a standard deviation >= 0, got %s' % cfg['init_std'])
    if not 0 <= float(cfg['lr_min']) < cfg['lr']:
        raise UsageError('--lr-min: expected a rate in [0, --lr = %s), got %s' % (cfg['lr'], cfg['lr_min']))
    if cfg['h0_noise'] < 0:
        raise UsageError('--h0-noise: expected a standard deviation >= 0, got %s' % cfg['h0_noise'])
    if cfg['h0_noise'] and (cfg['model'] == 'lstm' or _beyond_the_gist(cfg)):
        raise UsageError('--h0-noise: covers the one-layer pixel models irnn, rnn-relu and rnn-tanh, not %s'
                         % ('lstm' if cfg['model'] == 'lstm' else 'own data or --layers'))
    if not 0 <= float(cfg['dropout']) < 1:
        raise UsageError('--dropout: expected a probability in [0, 1) (0 = off), got %s' % cfg['dropout'])
    if not 0 <= float(cfg['input_dropout']) < 1:
        raise UsageError('--input-dropout: expected a probability in [0, 1) (0 = off), got %s'
                         % cfg['input_dropout'])
    if cfg['input_dropout'] and uses_own_data(cfg):
        raise UsageError('--input-dropout: sets MNIST pixels to 0 (black); expected MNIST, got %s'
                         % ('--data %s' % cfg['data'] if cfg.get('data') else '--dataset %s' % cfg['dataset']))
    if not 0 <= float(cfg['ema']) < 1:
        raise UsageError('--ema: expected a decay factor in [0, 1) (e.g. 0.999; 0 = off), got %s' % cfg['ema'])
    if cfg['identity_decay'] < 0:
        raise UsageError('--identity-decay: expected a strength >= 0, got %s' % cfg['identity_decay'])
    if cfg['identity_decay'] and cfg['model'] != 'irnn':
        raise UsageError('--identity-decay: pulls the identity-initialised recurrent matrix of --model irnn, '
                         'not of %s' % cfg['model'])
    if cfg['identity_decay'] * cfg['lr'] > 1:
        raise UsageError('--identity-decay: expected at most 1 / --lr = %g (a pull past the identity), got %s'
                         % (1.0 / cfg['lr'], cfg['identity_decay']))
    if not 0 <= int(cfg['seed']) < 2 ** 32:
        raise UsageError('--seed: expected an integer in 0 .. 2**32 - 1, got %s' % cfg['seed'])
    if cfg.get('data_dir') and (cfg['dataset'] in ('embedded', 'adding') or cfg.get('data')):
        raise UsageError('--data-dir %s: not used by a run on %s (refused rather than ignored)'
                         % (cfg['data_dir'], '--data' if cfg.get('data') else '--dataset ' + cfg['dataset']))
    if cfg.get('validation') is not None:
        if int(cfg['validation']) < 1:
            raise UsageError('--validation: expected a positive number of images, got %s' % cfg['validation'])
        if uses_own_data(cfg):
            raise UsageError('--validation: holds out MNIST training images; for --data use --test-split')
    _check_own_data(cfg, cli)
    return cfg


def check_memory(cfg):
    """Refuse, with the figure, a run that cannot fit in this machine's memory (memory.py);
    apart from :func:`resolve_config`, whose settings are the same on every machine."""
    too_big = memory.refusal(cfg)
    if too_big:
        raise UsageError(too_big)


def parse_layers(text):
    """'100,50' -> [100, 50] (for --layers)."""
    try:  # every part a size: '100,,50' is a typo, not 100,50
        sizes = [int(s) for s in str(text).replace(' ', '').split(',')]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise ValueError('expected comma-separated positive layer sizes like 100,50, got %r' % text)
    return sizes


def uses_own_data(cfg):
    """--data FILE or --dataset adding (sequences.py), not MNIST."""
    return bool(cfg.get('data')) or cfg.get('dataset') == 'adding'


def _beyond_the_gist(cfg):
    """Settings the gist's model did not have: own data, stacked layers, a scaled identity,
    an input bias (the LSTM baseline takes none of them)."""
    return (uses_own_data(cfg) or bool(cfg.get('layers')) or cfg.get('identity_scale', 1.0) != 1.0
            or bool(cfg.get('input_bias')))


def _check_own_data(cfg, cli):
    """One-line errors for combinations of the data/model flags."""
    if cfg.get('data') and cfg.get('dataset') not in (None, 'auto'):
        raise UsageError('--data %s and --dataset %s: give one of them' % (cfg['data'], cfg['dataset']))
    if cfg.get('permute') and uses_own_data(cfg):
        raise UsageError('--permute: only for pixel MNIST, not with %s (permute your sequences '
                         'in the file)' % ('--data' if cfg.get('data') else '--dataset adding'))
    if cfg.get('length') is not None and cfg.get('dataset') != 'adding':
        raise UsageError('--length: only for --dataset adding')
    if cfg.get('dataset') == 'adding':
        for key, want in (('input', 'real'), ('task', 'regression')):
            if cfg.get(key) not in (None, want):
                raise UsageError('--%s %s: the adding problem is %s' % (key, cfg[key], want))
        if cfg.get('test_split') is not None:
            raise UsageError('--test-split: the adding problem generates its own test set '
                             '(size: --test-limit)')
        if cfg.get('length') is not None and int(cfg['length']) < 2:
            raise UsageError('--length: expected at least 2, got %s' % cfg['length'])
    if cli.get('layers') and cli.get('unit'):
        raise UsageError('--unit %s and --layers %s: give one of them (--layers 100 is --unit 100)'
                         % (cli['unit'], ','.join(map(str, cli['layers']))))
    if cfg.get('test_split') is not None and not 0 < cfg['test_split'] < 1:
        raise UsageError('--test-split: expected a fraction between 0 and 1, got %s' % cfg['test_split'])
    if cfg.get('test_split') is not None and not uses_own_data(cfg):
        raise UsageError('--test-split: only for --data files without a test set')
    for key in ('input', 'task'):
        if cfg.get(key) is not None and not uses_own_data(cfg):
            raise UsageError('--%s: only with --data or --dataset adding' % key)
    if _beyond_the_gist(cfg) and cfg['model'] == 'lstm':
        raise UsageError('--model lstm: not available with --data, --dataset adding or --layers '
                         '(use irnn, rnn-relu or rnn-tanh)')


def check_evaluate_flags(cfg, data_dir, dataset):
    """``irnn-chainer evaluate``'s data flags against the run's settings ``cfg``: refused
    (one line) where the run did not train on MNIST files."""
    own = uses_own_data(cfg)
    embedded = cfg.get('dataset') == 'embedded' or str(cfg.get('source', '')).startswith('embedded')
    if data_dir is not None and (own or embedded):
        raise UsageError('--data-dir %s: this run trained on %s, not on MNIST files; evaluate it '
                         'without --data-dir' % (data_dir, cfg.get('source') or cfg.get('data') or 'its own data'))
    if dataset is not None and own:
        raise UsageError('--dataset %s: this run trained on %s; evaluate it without --dataset'
                         % (dataset, cfg.get('source') or cfg.get('data') or 'its own data'))
