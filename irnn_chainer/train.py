"""Training: the Chainer Trainer for the IRNN, as the 2015 gist configured it.

SGD with lr 1e-8, global-norm gradient clipping at 1.0, batch 16, the training set
shuffled every epoch, test loss and accuracy every epoch. Everything the run needs to be
evaluated or resumed (its settings, the pixel permutation, snapshots) goes into ``--out``.
"""
import math
import os
import signal
import sys
import time

import numpy as np

import chainer
import chainer.links as L
from chainer import training
from chainer.training import extensions

from irnn_chainer import data as data_mod
from irnn_chainer import distributed as dist
from irnn_chainer import files
from irnn_chainer import memory
from irnn_chainer.compat import api
from irnn_chainer import model as model_mod
from irnn_chainer import recovery
from irnn_chainer import runfolder
from irnn_chainer import schedule
from irnn_chainer import sequences as seq_mod

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
    # issue 19: the learning-rate schedule (schedule.py), noise on h_0 while training, and what
    # happens when the run diverges (recovery.py)
    'lr_schedule': None, 'lr_min': 0.0, 'lr_patience': 3, 'h0_noise': 0.0,
    'on_divergence': 'rollback', 'rollback_factor': 0.5, 'max_rollbacks': 3,
}
DEFAULTS.update(seq_mod.DEFAULTS)  # own data, stacked layers, the adding problem (sequences.py)
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
    # Ours: the fastest to high accuracy on a 2-core CPU that we found (see README).
    # The halving every 8 epochs took pixel MNIST from a noisy 89 % plateau to 93 % (README).
    'fast': {'model': 'irnn', 'optimizer': 'rmsprop', 'lr': 1e-4, 'clip': 1.0, 'batchsize': 16,
             'skip_nonfinite': True, 'lr_decay': 0.5, 'lr_decay_every': 8},
}
# ``fast`` on permuted MNIST: lr 1e-4 blew up there after 12 epochs (with or without
# skipping non-finite updates); a constant 3e-5 climbed steadily to 80 % (README).
FAST_PERMUTED = {'lr': 3e-5, 'lr_decay': None}
OPTIMIZERS = ('sgd', 'momentum', 'rmsprop', 'adam')
# The run folder's files (runfolder.py: one run per folder, locked, checked as read)
CONFIG_FILE = runfolder.CONFIG_FILE
PERMUTATION_FILE = runfolder.PERMUTATION_FILE
MODEL_FILE = runfolder.MODEL_FILE
SNAPSHOT_PREFIX = runfolder.SNAPSHOT_PREFIX


class UsageError(Exception):
    """Bad flags or run folder: one line for the user, exit code 2."""


class ShuffledIterator(chainer.iterators.SerialIterator):
    """SerialIterator that shuffles with its own seeded RandomState and saves that
    state in snapshots, so a resumed run draws the same future epochs as an
    uninterrupted one (Chainer's default sampler uses the global RNG, not saved)."""

    def __init__(self, dataset, batch_size, seed):
        self._rng = np.random.RandomState(seed)
        super(ShuffledIterator, self).__init__(
            dataset, batch_size, repeat=True,
            order_sampler=chainer.iterators.ShuffleOrderSampler(self._rng))

    def serialize(self, serializer):
        super(ShuffledIterator, self).serialize(serializer)
        name, keys, pos, has_gauss, cached = self._rng.get_state()
        keys = serializer('rng_keys', np.array(keys))
        pos = serializer('rng_pos', pos)
        has_gauss = serializer('rng_has_gauss', has_gauss)
        cached = serializer('rng_cached_gaussian', cached)
        self._rng.set_state((name, np.asarray(keys, np.uint32), int(pos), int(has_gauss), float(cached)))


def convert(batch, device=None):
    """Stack a batch; pixels are stored as uint8 and reach the model as int32 ids
    (real-valued features, see sequences.py, pass as they are)."""
    x, t = chainer.dataset.concat_examples(batch, device)
    return (x.astype(np.int32) if x.dtype.kind in 'iu' else x), t


class _StopTrigger(object):
    """The run's stop trigger, which also stops cleanly after the update in progress
    when Ctrl-C was pressed (a KeyboardInterrupt mid-update would lose the batch the
    iterator already handed out, and resume would not continue exactly)."""

    def __init__(self, base):
        self.base = base
        self.interrupted = False

    def __call__(self, trainer):
        return self.interrupted or self.base(trainer)

    def get_training_length(self):
        return self.base.get_training_length()


class _IntervalOrEnd(object):
    """Fires on ``every`` and on the iteration where ``stop`` fires."""

    def __init__(self, every, stop):
        self.every = chainer.training.triggers.IntervalTrigger(*every)
        self.stop = chainer.training.triggers.IntervalTrigger(*stop)

    def __call__(self, trainer):
        a = self.every(trainer)
        b = self.stop(trainer)  # both called every time: they track the previous iteration
        return a or b

    def serialize(self, serializer):
        self.every.serialize(serializer['every'])
        self.stop.serialize(serializer['stop'])


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
        cfg.update({k: v for k, v in saved.items() if k in DEFAULTS})
    for key, value in cli.items():
        if value is None or key not in DEFAULTS:
            continue
        if saved and key not in RESUMABLE_CHANGES and saved.get(key) != value:
            raise UsageError('--%s %s differs from the resumed run (%s); a resumed run keeps its '
                             'settings' % (key.replace('_', '-'), value, saved.get(key)))
        cfg[key] = value
    if cli.get('epoch') is not None:
        cfg['iteration'] = None
    elif cli.get('iteration') is not None:
        cfg['epoch'] = None
    if cfg['epoch'] is None and cfg['iteration'] is None:
        cfg['epoch'] = 1
    if cfg['model'] not in model_mod.MODELS:
        raise UsageError('--model: expected one of %s, got %r' % (', '.join(model_mod.MODELS), cfg['model']))
    if cfg['optimizer'] not in OPTIMIZERS:
        raise UsageError('--optimizer: expected one of %s, got %r' % (', '.join(OPTIMIZERS), cfg['optimizer']))
    if cfg['impl'] == 'fused' and not model_mod.MODELS[cfg['model']][2]:
        raise UsageError('--impl fused: the fused recurrence covers %s, not %s (it runs stepwise)'
                         % (', '.join(m for m, v in model_mod.MODELS.items() if v[2]), cfg['model']))
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
    for key in ('lr', 'clip', 'init_std', 'lr_decay', 'identity_scale', 'lr_min', 'h0_noise', 'rollback_factor'):
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
    if cfg['h0_noise'] and (cfg['model'] == 'lstm' or seq_mod.uses_sequence_model(cfg)):
        raise UsageError('--h0-noise: covers the one-layer pixel models irnn, rnn-relu and rnn-tanh, not %s'
                         % ('lstm' if cfg['model'] == 'lstm' else 'own data or --layers'))
    if not 0 <= int(cfg['seed']) < 2 ** 32:
        raise UsageError('--seed: expected an integer in 0 .. 2**32 - 1, got %s' % cfg['seed'])
    if cfg.get('data_dir') and (cfg['dataset'] in ('embedded', 'adding') or cfg.get('data')):
        raise UsageError('--data-dir %s: not used by a run on %s (refused rather than ignored)'
                         % (cfg['data_dir'], '--data' if cfg.get('data') else '--dataset ' + cfg['dataset']))
    seq_mod.check_config(cfg, cli)  # --data, --layers, --dataset adding, ... (sequences.py)
    return cfg


def find_snapshot(path):
    """The snapshot file for ``--resume PATH``: the file itself, or the latest one in a run folder."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise UsageError('--resume: expected a run folder or a snapshot file, got %r (not found)' % path)
    snaps = runfolder.snapshots(path)
    if not snaps:
        raise UsageError('--resume: no %s* file in %s (the run never reached a snapshot: start it '
                         'again with the same command, no --force needed)' % (SNAPSHOT_PREFIX, path))
    return snaps[0]


def load_config(run_dir):
    """The run's config.json, checked (runfolder.read_config)."""
    return runfolder.read_config(run_dir)


write_json = files.write_json


def _load_weights(arrays, target, source, path_in_file=''):
    """Deserialize the (safely read) arrays of ``source`` into ``target``; one line when they
    do not fit (another --model, --unit or layers)."""
    try:
        api.load_npz(arrays, target, path_in_file=path_in_file)
    except (KeyError, ValueError, TypeError) as e:
        raise files.FileError('%s: its weights do not fit this model (expected the --model, --unit and '
                              'layers it was trained with; %s)' % (source, str(e).strip().splitlines()[0][:160]))


def resolve_impl(cfg):
    """'auto' -> the fused recurrence where it covers the model and a kernel loads, else stepwise."""
    if cfg['impl'] != 'auto':
        return cfg['impl']
    if not model_mod.MODELS[cfg['model']][2]:
        return 'stepwise'
    try:
        import irnn_chainer.fused  # noqa: F401
        if str(cfg.get('device') or '').startswith('@cupy'):
            import irnn_chainer.kernels.cuda  # noqa: F401  (the CUDA kernel)
    except ImportError:
        return 'stepwise'
    return 'fused'


def check_device_kernel(model, cfg, device, *datasets):
    """On a GPU the CUDA kernel checks itself at its first use (kernels/cuda.py). Make that
    first use happen here, on a training and an evaluation batch, before the trainer: a
    kernel that disagrees is then refused in one line (a DeviceError), not a traceback from
    inside the loop."""
    if resolve_impl(cfg) != 'fused' or getattr(device, 'xp', np) is np:
        return
    for dataset, n in zip(datasets, (cfg['batchsize'], cfg['eval_batchsize'])):
        with api.no_graph():
            model(*convert([dataset[i] for i in range(min(n, len(dataset)))], device))


def init_weights(model, path, log=print):
    """Load the weights of another run (its folder, a snapshot or a model.npz) into
    ``model``: a new run that starts where that one was, with its own settings."""
    source = path
    if os.path.isdir(path):
        source = os.path.join(path, MODEL_FILE)
        if not os.path.exists(source):
            source = find_snapshot(path)
    if not os.path.exists(source):
        raise UsageError('--init-from: expected a run folder, snapshot or model.npz, got %r (not found)' % path)
    if os.path.basename(source).startswith(SNAPSHOT_PREFIX):
        _load_weights(runfolder.load_snapshot(source), model, source, 'updater/model:main/')
    else:
        _load_weights(files.load_npz(source, 'model weights (a model.npz of irnn-chainer train)'),
                      model.predictor, source)
    log('initial weights from %s' % source)
    return source


def build_model(cfg):
    """The classifier (model + softmax cross-entropy + accuracy) in the run's dtype."""
    if seq_mod.uses_sequence_model(cfg):  # own data / --layers: SequenceRNN (+ Regressor)
        return seq_mod.build_model(cfg, resolve_impl(cfg))
    np.random.seed(cfg['seed'])  # Chainer's initializers draw from NumPy's global RNG
    predictor = api.build_in_dtype(
        lambda: model_mod.build(cfg['model'], n_units=cfg['unit'], init_std=cfg['init_std'],
                                impl=resolve_impl(cfg)), cfg['dtype'])
    return L.Classifier(predictor)


class SkipNonFinite(object):
    """Optimizer hook: when the gradient has an inf or NaN anywhere, zero it for this
    update (and report ``skipped`` = 1 for the log). Clipping cannot rescue such a
    gradient (inf / inf = NaN), and one NaN update ruins every parameter for good, which
    is how the IRNN's occasional exploding batch ends a long run. Runs before clipping."""
    name = 'SkipNonFinite'
    timing = 'pre'
    call_for_each_param = False

    def __call__(self, optimizer):
        grads = [p.grad for p in optimizer.target.params() if p.grad is not None]
        xp = api.array_module(grads[0]) if grads else np
        finite = all(bool(xp.isfinite(g).all()) for g in grads)
        if not finite:
            for g in grads:
                g[...] = 0
        chainer.report({'skipped': 0.0 if finite else 1.0})


def make_optimizer(cfg):
    name, lr = cfg['optimizer'], cfg['lr']
    if name == 'sgd':
        return chainer.optimizers.SGD(lr=lr)
    if name == 'momentum':
        return chainer.optimizers.MomentumSGD(lr=lr, momentum=0.9)
    if name == 'rmsprop':  # Keras' defaults: rho 0.9, epsilon 1e-7
        return chainer.optimizers.RMSprop(lr=lr, alpha=0.9, eps=1e-7)
    if name == 'adam':
        return chainer.optimizers.Adam(alpha=lr)
    raise UsageError('--optimizer: expected one of %s, got %r' % (', '.join(OPTIMIZERS), name))


def load_data(cfg, run_dir, log=print):
    """The train/test datasets, with the run's stored pixel permutation when ``permute``."""
    if seq_mod.uses_own_data(cfg):  # --data FILE or --dataset adding (sequences.py)
        return seq_mod.load_for_run(cfg, log=log)
    splits = data_mod.get_mnist(cfg['dataset'], cfg['data_dir'], cfg['train_limit'],
                                cfg['test_limit'], log=log)
    train_x, test_x = splits.train_x, splits.test_x
    if cfg['permute']:
        path = os.path.join(run_dir, PERMUTATION_FILE)
        if os.path.lexists(path):
            perm = files.load_npy(path, 'the run\'s pixel permutation (784 integers)')
        else:
            perm = data_mod.make_permutation(cfg['seed'])
            files.save_npy(path, perm)
        log('permuted pixel MNIST: one fixed permutation (seed %d, %s)' % (cfg['seed'], path))
        try:
            train_x = data_mod.apply_permutation(train_x, perm)
            test_x = data_mod.apply_permutation(test_x, perm)
        except data_mod.DataError as e:
            raise files.FileError('%s: %s' % (path, e)) from None
    train = chainer.datasets.TupleDataset(train_x, splits.train_y)
    test = chainer.datasets.TupleDataset(test_x, splits.test_y)
    return train, test, splits.source


def train(cli, out, resume=None, force=False, progress=True, log=print, extra_extensions=(),
          table_out=None, allow_changed_data=False):
    """Run (or resume) training; returns the trainer. ``cli`` holds the flags given;
    ``extra_extensions``: more trainer extensions (a sweep's pruning, sweep.py);
    ``table_out``: file for the per-epoch table (default stdout); ``allow_changed_data``:
    resume although the data's checksum differs from the one in config.json.
    The run folder is locked for the whole run (runfolder.claim). A run that diverges is
    rolled back to its last good snapshot at a lower rate, or stopped (recovery.py)."""
    lr_factor = None
    while True:
        held = []
        try:
            return _train(cli, out, resume, force, progress, log, extra_extensions, table_out,
                          allow_changed_data, held, lr_factor)
        except recovery.Diverged as d:
            run_dir = held[0].path if held else out
            resume, force, lr_factor = _after_divergence(d, run_dir, cli, log)
            out = run_dir
        except BaseException:
            for claim in held:  # refused before training began: a new run leaves nothing behind
                claim.abandon()
            raise
        finally:
            for claim in held:
                claim.release()


def _after_divergence(d, run_dir, cli, log):
    """Record a divergence in the run's rollbacks.json; return how to go on (resume from the
    last good snapshot, no --force, the rate factor), or raise the one-line error that ends
    the run (``--on-divergence stop``, no good snapshot yet, or no rollbacks left)."""
    cfg = load_config(run_dir)
    action = cli.get('on_divergence') or cfg.get('on_divergence', DEFAULTS['on_divergence'])
    limit = int(cli.get('max_rollbacks') if cli.get('max_rollbacks') is not None
                else cfg.get('max_rollbacks', DEFAULTS['max_rollbacks']))
    factor = float(cfg.get('rollback_factor', DEFAULTS['rollback_factor']))
    path = os.path.join(run_dir, recovery.ROLLBACKS_FILE)
    events = (files.read_json(path, 'the run\'s rollbacks (a JSON object)').get('rollbacks', [])
              if os.path.exists(path) else [])
    if not isinstance(events, list):
        raise files.FileError('%s: expected a list of rollbacks under "rollbacks", found %s'
                              % (path, type(events).__name__))
    good = runfolder.last_good_snapshot(run_dir)
    event = {'epoch': d.epoch, 'iteration': d.iteration, 'reason': d.reason,
             'elapsed_time': d.elapsed, 'rolled_back_to': os.path.basename(good) if good else None,
             'lr_factor': factor, 'action': action}
    if action == 'stop' or good is None or len(events) >= limit or d.distributed:
        why = ('--on-divergence stop' if action == 'stop' else 'no snapshot to go back to' if good is None
               else 'no rollback under --communicator' if d.distributed
               else 'it was rolled back %d times already (--max-rollbacks %d)' % (len(events), limit))
        event['action'] = 'stop'
        if d.root:
            files.write_json(path, {'rollbacks': events + [event]})
        keep = ('the last good snapshot %s is kept (--resume it, perhaps with --max-rollbacks)' % good
                if good else 'start it again with a lower --lr')
        raise TrainingDiverged('%s; stopped (%s); %s' % (d, why, keep))
    files.write_json(path, {'rollbacks': events + [event]})
    log('%s; rolling back to %s with the learning rate x %g (rollback %d of at most %d, %s)'
        % (d, good, factor, len(events) + 1, limit, path))
    return good, False, factor


class TrainingDiverged(Exception):
    """A diverged run that is not rolled back: one line, exit code 2 (cli.py)."""


def data_record(cfg, train_set, test_set):
    """What config.json records of the data, to recognise it when resuming or evaluating:
    the sha256 of the user's --data file, or of the arrays (MNIST, after --train-limit,
    --test-limit and --permute); the adding problem is generated from the seed."""
    if cfg.get('dataset') == 'adding':
        return {}
    if cfg.get('data'):
        return {'data_sha256': files.sha256_file(cfg['data']), 'data_bytes': os.path.getsize(cfg['data'])}
    arrays = [np.asarray(a) for d in (train_set, test_set) for a in d._datasets]
    return {'data_sha256': files.sha256_arrays(*arrays), 'data_bytes': int(sum(a.nbytes for a in arrays))}


def check_data(saved, record, allow, flag='--allow-changed-data'):
    """Refuse data whose checksum differs from the run's (unless ``allow``)."""
    want = (saved or {}).get('data_sha256')
    if want and record.get('data_sha256') and record['data_sha256'] != want and not allow:
        raise UsageError('the data differ from the run\'s: expected sha256 %s (%s bytes, %s), found %s '
                         '(%s bytes); give the run\'s data, or %s to go on anyway'
                         % (want[:16], saved.get('data_bytes', '?'), saved.get('source', '?'),
                            record['data_sha256'][:16], record.get('data_bytes', '?'), flag))


def _train(cli, out, resume, force, progress, log, extra_extensions, table_out, allow_changed_data, held,
           lr_factor=None):
    snapshot = None
    saved = None
    if resume:
        snapshot = find_snapshot(resume)
        run_dir = os.path.dirname(os.path.abspath(snapshot))
        saved = load_config(run_dir)
        snapshot_arrays = runfolder.load_snapshot(snapshot)  # unreadable: names the last good one
        out = out or run_dir
    out = out or 'result'
    cfg = resolve_config(cli, saved)
    too_big = memory.refusal(cfg)  # refuse, with the figure, what cannot fit in memory
    if too_big:
        raise UsageError(too_big)
    comm = None
    if cfg['communicator']:  # data parallel: every rank runs this function (distributed.py)
        try:
            comm = dist.create_communicator(cfg['communicator'])
        except dist.DistributedError as e:
            raise UsageError(str(e))
        if saved and saved.get('workers', 1) != comm.size:
            raise UsageError('--resume: the run trained with %d processes and this has %d; resume '
                             'it with mpiexec -n %d' % (saved.get('workers', 1), comm.size,
                                                        saved.get('workers', 1)))
        if not dist.is_root(comm):  # rank 0 alone prints and writes files
            log, progress = dist.quiet, False
    root = dist.is_root(comm)
    run_id = (saved or {}).get('run_id') or runfolder.new_run_id()
    if root:  # lock the folder, refuse what is not ours, clear our previous run; then the mark
        held.append(runfolder.claim(out, force=force, resume_from=run_dir if saved else None,
                                    run_id=(saved or {}).get('run_id'), log=log))
        if not os.path.exists(os.path.join(out, CONFIG_FILE)):
            write_json(os.path.join(out, CONFIG_FILE), dict(saved or cfg, run_id=run_id))
    origin = None
    if saved and os.path.abspath(out) != os.path.abspath(os.path.dirname(os.path.abspath(snapshot))):
        origin = os.path.dirname(os.path.abspath(snapshot))  # resuming into a new folder
    elif not saved and cfg['init_from']:
        origin = cfg['init_from'] if os.path.isdir(cfg['init_from']) else os.path.dirname(
            os.path.abspath(cfg['init_from']))
    if root and origin and not os.path.exists(os.path.join(out, PERMUTATION_FILE)):
        # carry the pixel permutation along: the weights were trained on that one
        src = os.path.join(origin, PERMUTATION_FILE)
        if os.path.exists(src):
            files.save_npy(os.path.join(out, PERMUTATION_FILE),
                           files.load_npy(src, 'the run\'s pixel permutation (784 integers)'))
    device = api.get_device(cfg['device'])

    if comm is None:
        train_set, test_set, source = load_data(cfg, out, log=log)
        n_train = len(train_set)
        record = data_record(cfg, train_set, test_set)
        check_data(saved, record, allow_changed_data)
    else:
        # rank 0 reads the data (and any error in it is every rank's), then scatters slices
        loaded, error = (None, None), None
        if root:
            try:
                loaded = load_data(cfg, out, log=log)
                record = data_record(cfg, loaded[0], loaded[1])
                check_data(saved, record, allow_changed_data)
            except (data_mod.DataError, UsageError, files.FileError) as e:
                error = e
        error = dist.agree(comm, error)
        if error is not None:
            raise error
        train_set, test_set, source = loaded if root else (None, None, None)
        n_train = dist.agree(comm, len(train_set) if root else None)
        train_set, test_set = dist.scatter(train_set, comm), dist.scatter(test_set, comm)
    model = build_model(cfg)
    if cfg['init_from'] and not snapshot:
        init_weights(model, cfg['init_from'], log=log)
    api.to_device(model, device)
    check_device_kernel(model, cfg, device, train_set, test_set)
    optimizer = api.setup_optimizer(make_optimizer(cfg), model)
    if cfg['skip_nonfinite']:
        optimizer.add_hook(SkipNonFinite())  # before clipping: hooks run in the order added
    if cfg['clip']:
        optimizer.add_hook(api.gradient_clipping(cfg['clip']))
    if comm is not None:  # gradients averaged over the ranks before the hooks and the step
        optimizer = dist.multi_node_optimizer(optimizer, model, comm)

    train_iter = ShuffledIterator(train_set, cfg['batchsize'], seed=cfg['seed'])
    test_iter = chainer.iterators.SerialIterator(test_set, cfg['eval_batchsize'], repeat=False, shuffle=False)
    updater = training.updaters.StandardUpdater(train_iter, optimizer, converter=convert, device=device)

    per_epoch = -(-len(train_set) // cfg['batchsize'])
    if cfg['epoch'] is not None:
        stop = (cfg['epoch'], 'epoch')
        every = (1, 'epoch')
    else:
        stop = (cfg['iteration'], 'iteration')
        every = (1, 'epoch') if cfg['iteration'] >= per_epoch else (cfg['iteration'], 'iteration')
    if cfg['log_interval']:
        every = (cfg['log_interval'], 'iteration')
    stop_trigger = _StopTrigger(chainer.training.triggers.IntervalTrigger(*stop))
    trainer = training.Trainer(updater, stop_trigger, out=out)

    def extend_root(extension, **kwargs):  # logs, plots, snapshots: rank 0 only
        if root:
            trainer.extend(extension, **kwargs)

    def interval():
        # Every epoch (or the whole run, when shorter), and at the last iteration too, so a
        # run of --iteration N always ends with a test evaluation. Triggers keep state:
        # each extension gets its own.
        return _IntervalOrEnd(every, stop)

    snapshot_ext = extensions.snapshot(filename=SNAPSHOT_PREFIX + '{.updater.iteration}', n_retains=2)
    evaluator = extensions.Evaluator(test_iter, model, converter=convert, device=device)
    if comm is not None:  # each rank evaluates its slice; the results are averaged
        evaluator = dist.multi_node_evaluator(evaluator, comm)
    trainer.extend(evaluator, trigger=interval())
    extend_root(extensions.LogReport(trigger=interval()))
    extend_root(snapshot_ext, trigger=interval())
    x_key = every[1]
    extend_root(extensions.PlotReport(['main/loss', 'validation/main/loss'], x_key, trigger=interval(),
                                         file_name='loss.png'))
    if cfg.get('task') == 'regression':  # MSE and its constant-prediction baseline (sequences.py)
        extend_root(extensions.PrintReport(
            ['epoch', 'iteration', 'main/loss', 'validation/main/loss', 'validation/main/baseline',
             'elapsed_time'], out=table_out or sys.stdout), trigger=interval())
    else:
        extend_root(extensions.PlotReport(['main/accuracy', 'validation/main/accuracy'], x_key,
                                             trigger=interval(), file_name='accuracy.png'))
        extend_root(extensions.PrintReport(
            ['epoch', 'iteration', 'main/loss', 'main/accuracy', 'validation/main/loss',
             'validation/main/accuracy', 'elapsed_time'], out=table_out or sys.stdout), trigger=interval())
    # the learning rate of every update (schedule.py); Adam's step size is called alpha
    attr = 'alpha' if cfg['optimizer'] == 'adam' else 'lr'
    kind = schedule.schedule_name(cfg)
    lr_schedule = schedule.LRSchedule(
        attr, cfg['lr'], kind, decay=cfg['lr_decay'], every=cfg['lr_decay_every'],
        total=stop[0] * (per_epoch if stop[1] == 'epoch' else 1), lr_min=cfg['lr_min'],
        patience=cfg['lr_patience'])
    trainer.extend(lr_schedule)
    if kind != 'constant':
        extend_root(extensions.observe_value(
            'lr', lambda t: getattr(t.updater.get_optimizer('main'), attr)), trigger=interval())
    if cfg['on_divergence'] != 'ignore':  # judged before the interval's evaluation and snapshot
        trainer.extend(recovery.DivergenceGuard(
            interval(), None if cfg.get('task') == 'regression' else getattr(model.predictor, 'n_out', None),
            agree=(lambda verdict: dist.agree(comm, verdict)) if comm is not None else None))
    if cfg['h0_noise']:
        model.predictor.h0_noise = float(cfg['h0_noise'])
        trainer.extend(schedule.H0NoiseKey(model.predictor, cfg['seed'], comm.rank if comm is not None else 0))
    if progress and root:
        trainer.extend(extensions.ProgressBar(update_interval=10 if resolve_impl(cfg) == 'stepwise' else 50))

    for ext in extra_extensions:
        trainer.extend(ext)

    if snapshot:  # under MPI every rank loads rank 0's snapshot (why that is exact: distributed.py)
        _load_weights(snapshot_arrays, trainer, snapshot)
        log('resumed from %s at epoch %d, iteration %d' % (snapshot, updater.epoch, updater.iteration))
        if lr_factor:  # a rollback (recovery.py): the snapshot's rate scale, lowered
            lr_schedule.scale *= lr_factor
    impl = resolve_impl(cfg)
    workers = dist.size(comm)
    if root:
        cfg_out = dict(cfg, impl_used=impl, device_used=str(device), source=source, per_epoch=per_epoch,
                       train_size=n_train, test_size=len(test_set) * workers, workers=workers,
                       versions=api.versions(), run_id=run_id, **record)
        write_json(os.path.join(out, CONFIG_FILE), cfg_out)
    log('training: %s%s, %d sequences, %d iterations per epoch (batch %d%s), stop at %d %s(s); %s lr %g, '
        'clip %s, %s, %s, device %s -> %s'
        % (cfg['model'], ' (permuted)' if cfg['permute'] else '', n_train, per_epoch, cfg['batchsize'],
           ' per process x %d processes = %d' % (workers, workers * cfg['batchsize']) if comm else '',
           stop[0], stop[1], cfg['optimizer'], cfg['lr'], cfg['clip'] or 'off',
           cfg['dtype'], impl, device, out))

    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        if stop_trigger.interrupted:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        stop_trigger.interrupted = True
        sys.stderr.write('\nCtrl-C: stopping after this update and saving a snapshot '
                         '(press again to abort)\n')

    # Under MPI a rank that stopped alone would leave the others waiting in the all-reduce:
    # there Ctrl-C ends the job (mpiexec), and --resume continues from the last snapshot.
    in_main_thread = comm is None
    if in_main_thread:
        try:
            signal.signal(signal.SIGINT, on_sigint)
        except ValueError:  # not the main thread
            in_main_thread = False
    try:
        for claim in held:
            claim.started = True
        # quiet: an exception leaving the loop is the CLI's to report (OSError: one line)
        try:
            api.run_trainer(trainer, quiet_errors=True)
        except recovery.Diverged as d:
            d.root, d.distributed = root, comm is not None
            raise
        if not root:
            return trainer
        # Always end with a snapshot of the last iteration, so --resume continues from here.
        if not os.path.exists(os.path.join(out, SNAPSHOT_PREFIX + str(updater.iteration))):
            snapshot_ext(trainer)
        api.save_npz(os.path.join(out, MODEL_FILE), model.predictor)
    except OSError as e:  # full disk, read-only file system, ...: say what is kept
        good = runfolder.last_good_snapshot(out) if root else None
        kept = ('the previous good snapshot %s is kept: free space (or fix the folder) and continue '
                'with --resume %s' % (good, good) if good else 'no snapshot was written yet')
        raise files.FileError('%s; %s' % (files.os_error(e, doing='cannot write it at iteration %d'
                                                          % updater.iteration), kept)) from None
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous)
    if stop_trigger.interrupted:
        log('interrupted at epoch %d, iteration %d: snapshot saved; continue with --resume %s'
            % (updater.epoch, updater.iteration, out))
    return trainer


def evaluate(run_dir, data_dir=None, dataset=None, batchsize=1000, device=None, log=print,
             allow_changed_data=False):
    """Test loss and accuracy of a run, on its own test split, with its newest weights: the
    newest snapshot (a killed run's model.npz is older), else model.npz. ``run_dir`` may also
    be one snapshot file of the run. Data that differ from the run's (config.json's sha256)
    are refused unless ``allow_changed_data``."""
    snapshot = None
    if os.path.isfile(run_dir) and runfolder.snapshot_number(os.path.basename(run_dir)) is not None:
        snapshot, run_dir = run_dir, os.path.dirname(os.path.abspath(run_dir))
    cfg = load_config(run_dir)
    own = seq_mod.uses_own_data(cfg)
    embedded = cfg.get('dataset') == 'embedded' or str(cfg.get('source', '')).startswith('embedded')
    if data_dir is not None and (own or embedded):
        raise UsageError('--data-dir %s: this run trained on %s, not on MNIST files; evaluate it '
                         'without --data-dir' % (data_dir, cfg.get('source') or cfg.get('data') or 'its own data'))
    if dataset is not None and own:
        raise UsageError('--dataset %s: this run trained on %s; evaluate it without --dataset'
                         % (dataset, cfg.get('source') or cfg.get('data') or 'its own data'))
    if data_dir is not None:
        cfg['data_dir'] = data_dir
    if dataset is not None:
        cfg['dataset'] = dataset
    if device is not None:
        cfg['device'] = device
    dev = api.get_device(cfg['device'])
    train_set, test_set, _ = load_data(cfg, run_dir, log=log)
    check_data(cfg, data_record(cfg, train_set, test_set), allow_changed_data)
    model = build_model(cfg)
    snaps = [snapshot] if snapshot else runfolder.snapshots(run_dir)
    if snaps:
        model_path = snaps[0]
        _load_weights(runfolder.load_snapshot(model_path), model, model_path, 'updater/model:main/')
    else:
        model_path = os.path.join(run_dir, MODEL_FILE)
        if not os.path.lexists(model_path):
            raise files.FileError('%s: no weights to evaluate (no %s* and no %s)'
                                  % (run_dir, SNAPSHOT_PREFIX, MODEL_FILE))
        _load_weights(files.load_npz(model_path, 'model weights (a model.npz of irnn-chainer train)'),
                      model.predictor, model_path)
    api.to_device(model, dev)
    it = chainer.iterators.SerialIterator(test_set, batchsize, repeat=False, shuffle=False)
    t0 = time.time()
    reporter = chainer.Reporter()  # Evaluator reports through the current reporter
    reporter.add_observer('main', model)
    with reporter:
        result = extensions.Evaluator(it, model, converter=convert, device=dev).evaluate()
    out = {'loss': float(result['main/loss']), 'accuracy': float(result.get('main/accuracy', float('nan'))),
           'n': len(test_set), 'model': model_path, 'seconds': time.time() - t0}
    if 'main/baseline' in result:  # regression (sequences.py): MSE of the constant prediction
        out['baseline'] = float(result['main/baseline'])
    return out
