"""Training: the Chainer Trainer for the IRNN, as the 2015 gist configured it.

SGD with lr 1e-8, global-norm gradient clipping at 1.0, batch 16, the training set
shuffled every epoch, test loss and accuracy every epoch. Everything the run needs to be
evaluated or resumed (its settings, the pixel permutation, snapshots) goes into ``--out``.

A run is five steps, one function each: prepare the run folder and settings
(:func:`prepare`), load the data record (:func:`load_data`), build the model and its
optimizer (:func:`build`), assemble the Trainer and its extensions (:func:`assemble`), run
and save (:func:`run_and_save`). The settings are settings.py's, the data sources.py's, the model
model.py's; under ``--communicator`` every rank runs the same steps (distributed.py).
"""
import os
import signal
import sys

import numpy as np

import chainer
from chainer import training
from chainer.training import extensions

from irnn_chainer.run import averaging
from irnn_chainer.run import distributed as dist
from irnn_chainer.run import optimizers
from irnn_chainer import files
from irnn_chainer.model import rnn as model_mod
from irnn_chainer.run import recovery
from irnn_chainer.run import runfolder
from irnn_chainer.run import schedule
from irnn_chainer.run import fused_update
from irnn_chainer import settings
from irnn_chainer.data import sources
from irnn_chainer.model import weights
from irnn_chainer.compat import api
from irnn_chainer.errors import DataError, TrainingDiverged, UsageError


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


SkipNonFinite = recovery.SkipNonFinite  # (where the hook lived before; tests and sweeps name it here)


def check_device_kernel(model, cfg, device, *datasets):
    """On a GPU the CUDA kernel checks itself at its first use (kernels/cuda.py). Make that
    first use happen here, on a training and an evaluation batch, before the trainer: a
    kernel that disagrees is then refused in one line (a DeviceError), not a traceback from
    inside the loop."""
    if model_mod.resolve_impl(cfg) != 'fused' or getattr(device, 'xp', np) is np:
        return
    for dataset, n in zip(datasets, (cfg['batchsize'], cfg['eval_batchsize'])):
        with api.no_graph():
            model(*convert([dataset[i] for i in range(min(n, len(dataset)))], device))


def column_labels(cfg):
    """What the table and the plots call the log's keys (the log keeps Chainer's keys, which
    old runs, report and evaluate read): the held-out set is the test set, or under
    --validation the held-out training images."""
    held_out = 'validation' if cfg.get('validation') else 'test'
    return {'main/loss': 'train loss', 'main/accuracy': 'train accuracy',
            'validation/main/loss': '%s loss' % held_out, 'validation/main/accuracy': '%s accuracy' % held_out,
            'validation/main/baseline': '%s MSE of the mean' % held_out,
            'ema/main/loss': '%s loss, averaged weights' % held_out,
            'ema/main/accuracy': '%s accuracy, averaged weights' % held_out,
            'elapsed_time': 'elapsed s'}


def _relabel(labels, ylabel):
    """PlotReport's postprocess: the legend and the y axis in words, not log keys."""
    def postprocess(figure, axes, summary):
        for line in axes.get_lines():
            line.set_label(labels.get(line.get_label(), line.get_label()))
        axes.set_ylabel(ylabel)
    return postprocess


class LogTable(training.Extension):
    """The table printed at each evaluation (as Chainer's PrintReport, which it replaces):
    the columns named by :func:`column_labels`, plain text when piped or redirected (on a
    terminal one code clears the progress bar first). A resumed run prints its log from the start."""
    trigger = 1, 'iteration'

    def __init__(self, entries, labels, out):
        self.entries, self.out, self.printed = entries, out, 0
        self.labels = [labels.get(e, e) for e in entries]
        self.widths = [max(10, len(l)) for l in self.labels]

    def __call__(self, trainer):
        log = trainer.get_extension('LogReport').log
        if log[self.printed:] and getattr(self.out, 'isatty', lambda: False)():
            self.out.write('\033[J')  # on a terminal: clear the progress bar below, as PrintReport does
        if self.printed == 0 and log:
            self.out.write('  '.join(l.ljust(w) for l, w in zip(self.labels, self.widths)).rstrip() + '\n')
        for record in log[self.printed:]:
            cells = [('%g' % record[e]).ljust(w) if e in record else ' ' * w
                     for e, w in zip(self.entries, self.widths)]
            self.out.write('  '.join(cells).rstrip() + '\n')
        if hasattr(self.out, 'flush'):
            self.out.flush()
        self.printed = len(log)


class Run(object):
    """What the steps of one run share: from :func:`prepare` its settings (``cfg``), folder
    (``out``), the resumed run's config and snapshot, the device, the MPI communicator and
    rank; :func:`build` adds the ``model``, :func:`assemble` the schedule (``per_epoch``,
    ``stop``, ``stop_trigger``), the ``lr_schedule`` and the snapshot extension that
    :func:`run_and_save` uses last."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


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
        held, run = [], None
        try:
            run = prepare(cli, out, resume, force, progress, log, held, lr_factor)
            data = load_data(run, allow_changed_data)
            model, optimizer = build(run, data)
            trainer = assemble(run, data, model, optimizer, table_out, extra_extensions)
            return run_and_save(run, data, trainer)
        except recovery.Diverged as d:
            run_dir = held[0].path if held else out
            resume, force, lr_factor = _after_divergence(d, run.cfg, run_dir, log)
            out = run_dir
        except BaseException:
            for claim in held:  # refused before training began: a new run leaves nothing behind
                claim.abandon()
            raise
        finally:
            for claim in held:
                claim.release()


def _after_divergence(d, cfg, run_dir, log):
    """Record a divergence in the run's rollbacks.json; return how to go on (resume from the
    last good snapshot, no --force, the rate factor), or raise the one-line error that ends
    the run (``--on-divergence stop``, no good snapshot yet, or no rollbacks left)."""
    action, limit, factor = cfg['on_divergence'], int(cfg['max_rollbacks']), float(cfg['rollback_factor'])
    path = os.path.join(run_dir, recovery.ROLLBACKS_FILE)
    events = (files.read_json(path, 'the run\'s rollbacks (a JSON object)').get('rollbacks', [])
              if os.path.exists(path) else [])
    if not isinstance(events, list):
        raise files.FileError('%s: expected a list of rollbacks under "rollbacks", found %s'
                              % (path, type(events).__name__))
    good = runfolder.last_good_snapshot(run_dir)
    if good and events and events[-1].get('rolled_back_to') == os.path.basename(good) \
            and events[-1].get('action') == 'rollback':
        # back to the same snapshot without a good interval since: its resume is exact, so
        # the same rate would repeat the same divergence; lower the last rollback's rate
        factor *= float(events[-1].get('lr_factor', 1.0))
    event = {'epoch': d.epoch, 'iteration': d.iteration, 'reason': d.reason,
             'elapsed_time': d.elapsed, 'rolled_back_to': os.path.basename(good) if good else None,
             'lr_factor': factor, 'action': action, 'interval': d.figures}
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


def prepare(cli, out, resume, force, progress, log, held, lr_factor=None):
    """Step 1: the settings (settings.py: defaults, preset, the resumed run's, the flags,
    every check), the MPI communicator, the run folder claimed (locked; its config.json,
    the mark, written first) and, from another run, its pixel permutation. ``lr_factor``:
    a rollback's lowering of the resumed snapshot's rate (recovery.py)."""
    snapshot = saved = snapshot_arrays = run_dir = None
    if resume:
        snapshot = weights.find_snapshot(resume)
        run_dir = os.path.dirname(os.path.abspath(snapshot))
        saved = runfolder.read_config(run_dir)
        snapshot_arrays = runfolder.load_snapshot(snapshot)  # unreadable: names the last good one
        out = out or run_dir
    out = out or 'result'
    cfg = settings.resolve_config(cli, saved)
    settings.check_memory(cfg)
    device = api.get_device(cfg['device'])  # before the claim: a bad device leaves the folder as it was
    comm = _communicator(cfg, saved)
    root = dist.is_root(comm)
    if not root:  # rank 0 alone prints and writes files
        log, progress = dist.quiet, False
    run_id = (saved or {}).get('run_id') or runfolder.new_run_id()
    if root:  # lock the folder, refuse what is not ours, clear our previous run; then the mark
        held.append(runfolder.claim(out, force=force, resume_from=run_dir, run_id=(saved or {}).get('run_id'),
                                    log=log))
        if not os.path.exists(os.path.join(out, runfolder.CONFIG_FILE)):
            files.write_json(os.path.join(out, runfolder.CONFIG_FILE), dict(saved or cfg, run_id=run_id))
        _carry_permutation(cfg, saved, snapshot, out)
    return Run(cfg=cfg, saved=saved, snapshot=snapshot, snapshot_arrays=snapshot_arrays, out=out,
               comm=comm, root=root, log=log, progress=progress, run_id=run_id, held=held,
               lr_factor=lr_factor, device=device)


def _communicator(cfg, saved):
    """ChainerMN's communicator for ``--communicator`` (every rank runs train()), or None."""
    if not cfg['communicator']:
        return None
    try:
        comm = dist.create_communicator(cfg['communicator'])
    except dist.DistributedError as e:
        raise UsageError(str(e))
    if saved and saved.get('workers', 1) != comm.size:
        raise UsageError('--resume: the run trained with %d processes and this has %d; resume '
                         'it with mpiexec -n %d' % (saved.get('workers', 1), comm.size, saved.get('workers', 1)))
    return comm


def _carry_permutation(cfg, saved, snapshot, out):
    """Resumed into a new folder, or started --init-from another run: its pixel permutation
    comes along (the weights were trained on that one)."""
    origin = None
    if saved and os.path.abspath(out) != os.path.dirname(os.path.abspath(snapshot)):
        origin = os.path.dirname(os.path.abspath(snapshot))
    elif not saved and cfg['init_from']:
        origin = cfg['init_from'] if os.path.isdir(cfg['init_from']) else os.path.dirname(
            os.path.abspath(cfg['init_from']))
    if origin and not os.path.exists(os.path.join(out, runfolder.PERMUTATION_FILE)):
        src = os.path.join(origin, runfolder.PERMUTATION_FILE)
        if os.path.exists(src):
            files.save_npy(os.path.join(out, runfolder.PERMUTATION_FILE),
                           files.load_npy(src, 'the run\'s pixel permutation (784 integers)'))


def load_data(run, allow_changed_data):
    """Step 2: the data record (sources.py), checked against the resumed run's checksum;
    what was inferred from it joins the settings. Under MPI rank 0 reads it (an error in it
    is every rank's) and every rank gets its slice."""
    if run.comm is None:
        data = sources.load(run.cfg, run.out, log=run.log)
        sources.check_same(run.saved, data, allow_changed_data)
    else:
        data, error = None, None
        if run.root:
            try:
                data = sources.load(run.cfg, run.out, log=run.log)
                sources.check_same(run.saved, data, allow_changed_data)
            except (DataError, UsageError, files.FileError) as e:
                error = e
        error = dist.agree(run.comm, error)
        if error is not None:
            raise error
        full = data
        data = dist.agree(run.comm, full.spec() if run.root else None)
        data.train = dist.scatter(full.train if run.root else None, run.comm)
        data.test = dist.scatter(full.test if run.root else None, run.comm)
    run.cfg.update(data.settings)
    return data


def skip_nonfinite(run):
    return [SkipNonFinite()] if run.cfg['skip_nonfinite'] else []


def clipping(run):
    return [api.gradient_clipping(run.cfg['clip'])] if run.cfg['clip'] else []


#: The optimizer's hooks, one function per feature, in the order they act on the gradient:
#: a non-finite gradient zeroed first (noise or clipping cannot rescue it), the noise, then
#: the clip that bounds the sum. Each takes the run and returns a list of hooks.
HOOKS = (skip_nonfinite, schedule.gradient_noise, clipping)


def build(run, data):
    """Step 3: the model (model.for_run), its initial weights (``--init-from``), the
    optimizer with its hooks (:data:`HOOKS`; under MPI the gradients are averaged over the
    ranks before them)."""
    cfg = run.cfg
    model = model_mod.for_run(cfg, data)
    if cfg['init_from'] and not run.snapshot:
        weights.init_weights(model, cfg['init_from'], log=run.log)
    api.to_device(model, run.device)
    check_device_kernel(model, cfg, run.device, data.train, data.test)
    optimizer = api.setup_optimizer(optimizers.make(cfg), model)
    for feature in HOOKS:  # hooks run on each update's gradient in the order added
        for hook in feature(run):
            optimizer.add_hook(hook)
    if run.comm is not None:  # gradients averaged over the ranks before the hooks and the step
        optimizer = dist.multi_node_optimizer(optimizer, model, run.comm)
    run.model = model
    return model, optimizer


def assemble(run, data, model, optimizer, table_out=None, extra_extensions=()):
    """Step 4: iterators, updater, the Trainer with its stop trigger and extensions
    (evaluation, log, snapshots, plots, table, lr schedule, progress), then the resumed
    run's snapshot."""
    cfg = run.cfg
    train_iter = ShuffledIterator(data.train, cfg['batchsize'], seed=cfg['seed'])
    # the whole update in one pass where the fused path covers the model (else the standard one)
    updater = fused_update.FusedUpdater(train_iter, optimizer, converter=convert, device=run.device)
    run.per_epoch = -(-len(data.train) // cfg['batchsize'])
    if cfg['epoch'] is not None:
        run.stop, every = (cfg['epoch'], 'epoch'), (1, 'epoch')
    else:
        run.stop = (cfg['iteration'], 'iteration')
        every = (1, 'epoch') if cfg['iteration'] >= run.per_epoch else (cfg['iteration'], 'iteration')
    if cfg['log_interval']:
        every = (cfg['log_interval'], 'iteration')
    run.stop_trigger = _StopTrigger(chainer.training.triggers.IntervalTrigger(*run.stop))
    trainer = training.Trainer(updater, run.stop_trigger, out=run.out)
    # Every interval (every epoch, or the whole run when shorter) and at the last iteration
    # too, so a run of --iteration N always ends with a test evaluation. Triggers keep state:
    # each extension gets its own.
    run.every, run.table_out = every, table_out
    trainer.run_cfg = cfg  # the run's settings, for the caller's last line (cli.cmd_train)
    run.interval = lambda: _IntervalOrEnd(every, run.stop)
    for feature in EXTENSIONS:
        for ext in feature(run, data, model):
            if run.root or not ext.root:
                trainer.extend(ext.extension, trigger=ext.trigger, name=ext.name)
    for ext in extra_extensions:
        trainer.extend(ext)
    if run.snapshot:  # under MPI every rank loads rank 0's snapshot (why that is exact: distributed.py)
        weights.load_weights(run.snapshot_arrays, trainer, run.snapshot)
        run.log('resumed from %s at epoch %d, iteration %d' % (run.snapshot, updater.epoch, updater.iteration))
        if run.lr_factor:  # a rollback (recovery.py): the snapshot's rate scale, lowered
            run.lr_schedule.scale *= run.lr_factor
    return trainer


class Ext(object):
    """One Trainer extension of a feature: what :func:`assemble` passes to ``trainer.extend``;
    ``root``: rank 0 only (logs, plots, snapshots, the table) under ``--communicator``."""

    def __init__(self, extension, trigger=None, name=None, root=False):
        self.extension, self.trigger, self.name, self.root = extension, trigger, name, root


def evaluation(run, data, model):
    """The test set (or --validation's held-out images), scored every interval."""
    test_iter = chainer.iterators.SerialIterator(data.test, run.cfg['eval_batchsize'], repeat=False, shuffle=False)
    evaluator = extensions.Evaluator(test_iter, model, converter=convert, device=run.device)
    if run.comm is not None:  # each rank evaluates its slice; the results are averaged
        evaluator = dist.multi_node_evaluator(evaluator, run.comm)
    return [Ext(evaluator, run.interval())]


def averaged_weights(run, data, model):
    """--ema: the averaged weights (run/averaging.py), scored beside the trained ones as ema/main/*."""
    run.average = None
    if not run.cfg['ema']:
        return []
    run.average = averaging.WeightAverage(model, run.cfg['ema'])
    ema_iter = chainer.iterators.SerialIterator(data.test, run.cfg['eval_batchsize'], repeat=False, shuffle=False)
    ema_eval = extensions.Evaluator(ema_iter, run.average.average, converter=convert, device=run.device)
    ema_eval.name = 'ema'
    if run.comm is not None:
        ema_eval = dist.multi_node_evaluator(ema_eval, run.comm)
    return [Ext(run.average), Ext(ema_eval, run.interval(), name='ema')]


def reports(run, data, model):
    """The log, the snapshots, the plots and the table, every interval (rank 0)."""
    ema = ['ema/main/loss', 'ema/main/accuracy'] if run.cfg['ema'] else []
    run.snapshot_ext = extensions.snapshot(filename=runfolder.SNAPSHOT_PREFIX + '{.updater.iteration}',
                                           n_retains=2)
    out = [Ext(extensions.LogReport(trigger=run.interval()), root=True),
           Ext(run.snapshot_ext, run.interval(), root=True)]
    x_key = run.every[1]
    labels = column_labels(run.cfg)  # the log keeps Chainer's keys; the table and plots say test (or validation)
    out.append(Ext(extensions.PlotReport(['main/loss', 'validation/main/loss'] + ema[:1], x_key,
                                         trigger=run.interval(), file_name='loss.png',
                                         postprocess=_relabel(labels, 'loss')), root=True))
    if data.task == 'regression':  # MSE and its constant-prediction baseline
        columns = ['main/loss', 'validation/main/loss', 'validation/main/baseline'] + ema[:1]
    else:
        out.append(Ext(extensions.PlotReport(['main/accuracy', 'validation/main/accuracy'] + ema[1:], x_key,
                                             trigger=run.interval(), file_name='accuracy.png',
                                             postprocess=_relabel(labels, 'accuracy')), root=True))
        columns = ['main/loss', 'main/accuracy', 'validation/main/loss', 'validation/main/accuracy'] + ema[1:]
    # the table under PrintReport's name, which it replaced: its trigger's state stays where
    # snapshots (old runs' too) keep it
    out.append(Ext(LogTable(['epoch', 'iteration'] + columns + ['elapsed_time'], labels, run.table_out or sys.stdout),
                   run.interval(), name='PrintReport', root=True))
    return out


def learning_rate(run, data, model):
    """The rate of every update (run/schedule.py), and its value in the log when it changes."""
    cfg = run.cfg
    attr, kind = optimizers.rate_attr(cfg), schedule.schedule_name(cfg)
    run.lr_schedule = schedule.LRSchedule(
        attr, cfg['lr'], kind, decay=cfg['lr_decay'], every=cfg['lr_decay_every'],
        total=run.stop[0] * (run.per_epoch if run.stop[1] == 'epoch' else 1), lr_min=cfg['lr_min'],
        patience=cfg['lr_patience'])
    out = [Ext(run.lr_schedule)]
    if kind != 'constant':
        out.append(Ext(extensions.observe_value('lr', lambda t: getattr(t.updater.get_optimizer('main'), attr)),
                       run.interval(), root=True))
    return out


def divergence_guard(run, data, model):
    """Judged before the interval's evaluation and snapshot (run/recovery.py)."""
    if run.cfg['on_divergence'] == 'ignore':
        return []
    return [Ext(recovery.DivergenceGuard(
        run.interval(), None if data.task == 'regression' else getattr(model.predictor, 'n_out', None),
        agree=(lambda verdict: dist.agree(run.comm, verdict)) if run.comm is not None else None))]


def identity_pull(run, data, model):
    """--identity-decay: every layer's recurrent matrix pulled toward its s I start."""
    if not run.cfg['identity_decay']:
        return []
    rnn = model.predictor
    return [Ext(schedule.IdentityDecay([rnn.recurrent_link(l) for l in range(1, len(rnn.layers) + 1)],
                                       run.cfg['identity_decay'], rnn.identity_scale, optimizers.rate_attr(run.cfg)))]


def training_noise(run, data, model):
    """--h0-noise, --dropout, --input-dropout: the model's draws, keyed by the update."""
    cfg = run.cfg
    if not (cfg['h0_noise'] or cfg['dropout'] or cfg['input_dropout']):
        return []
    model.predictor.h0_noise = float(cfg['h0_noise'])
    model.predictor.dropout = float(cfg['dropout'])
    model.predictor.input_dropout = float(cfg['input_dropout'])
    return [Ext(schedule.NoiseKey(model.predictor, cfg['seed'], run.comm.rank if run.comm is not None else 0))]


def progress_bar(run, data, model):
    if not (run.progress and run.root):
        return []
    return [Ext(extensions.ProgressBar(update_interval=10 if model_mod.resolve_impl(run.cfg) == 'stepwise' else 50))]


#: The run's Trainer extensions, one function per feature, in this order (the order fixes
#: the names Chainer gives them in snapshots, e.g. PlotReport_1: append new ones at the end).
#: Each takes (run, data, model) and returns a list of :class:`Ext`.
EXTENSIONS = (evaluation, averaged_weights, reports, learning_rate, divergence_guard, identity_pull,
              training_noise, progress_bar)


def run_and_save(run, data, trainer):
    """Step 5: config.json with everything used, the loop (Ctrl-C stops after the update in
    progress), a last snapshot and model.npz; an OSError says which snapshot is kept."""
    cfg, out, updater = run.cfg, run.out, trainer.updater
    impl, workers = model_mod.resolve_impl(cfg), dist.size(run.comm)
    if run.root:
        files.write_json(os.path.join(out, runfolder.CONFIG_FILE), dict(
            cfg, impl_used=impl, device_used=str(run.device), source=data.source, per_epoch=run.per_epoch,
            train_size=data.train_size, test_size=len(data.test) * workers, workers=workers,
            versions=api.versions(), run_id=run.run_id, **data.fingerprint))
    run.log('training: %s%s, %d sequences, %d iterations per epoch (batch %d%s), stop at %d %s(s); %s lr %g, '
            'clip %s, %s, %s, device %s -> %s'
            % (cfg['model'], ' (permuted)' if cfg['permute'] else '', data.train_size, run.per_epoch,
               cfg['batchsize'], ' per process x %d processes = %d' % (workers, workers * cfg['batchsize'])
               if run.comm else '', run.stop[0], run.stop[1], cfg['optimizer'], cfg['lr'],
               cfg['clip'] or 'off', cfg['dtype'], impl, run.device, out))
    stop_trigger = run.stop_trigger
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        if stop_trigger.interrupted:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        stop_trigger.interrupted = True
        sys.stderr.write('\nCtrl-C: stopping after this update and saving a snapshot '
                         '(press again to abort)\n')

    # Under MPI a rank that stopped alone would leave the others waiting in the all-reduce:
    # there Ctrl-C ends the job (mpiexec), and --resume continues from the last snapshot.
    in_main_thread = run.comm is None
    if in_main_thread:
        try:
            signal.signal(signal.SIGINT, on_sigint)
        except ValueError:  # not the main thread
            in_main_thread = False
    try:
        for claim in run.held:
            claim.started = True
        # quiet: an exception leaving the loop is the CLI's to report (OSError: one line)
        try:
            api.run_trainer(trainer, quiet_errors=True)
        except recovery.Diverged as d:  # train() rolls back or stops (recovery.py)
            d.root, d.distributed = run.root, run.comm is not None
            raise
        if not run.root:
            return trainer
        # Always end with a snapshot of the last iteration, so --resume continues from here.
        if not os.path.exists(os.path.join(out, runfolder.SNAPSHOT_PREFIX + str(updater.iteration))):
            run.snapshot_ext(trainer)
        api.save_npz(os.path.join(out, runfolder.MODEL_FILE), run.model.predictor, files.write_atomic)
        if run.average is not None:
            api.save_npz(os.path.join(out, runfolder.EMA_MODEL_FILE), run.average.average.predictor, files.write_atomic)
    except OSError as e:  # full disk, read-only file system, ...: say what is kept
        good = runfolder.last_good_snapshot(out) if run.root else None
        kept = ('the previous good snapshot %s is kept: free space (or fix the folder) and continue '
                'with --resume %s' % (good, good) if good else 'no snapshot was written yet')
        raise files.FileError('%s; %s' % (files.os_error(e, doing='cannot write it at iteration %d'
                                                          % updater.iteration), kept)) from None
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous)
    if stop_trigger.interrupted:
        run.log('interrupted at epoch %d, iteration %d: snapshot saved; continue with --resume %s'
                % (updater.epoch, updater.iteration, out))
    return trainer
