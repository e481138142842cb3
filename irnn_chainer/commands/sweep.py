"""``irnn-chainer sweep``: hyperparameter sweeps with Optuna, on one machine or many.

Every worker runs the same command against the same study; the storage URL says where the
study lives: an SQLite file (the default, one machine) or PostgreSQL (several machines).
Each trial is a normal training run (irnn_chainer/run/train.py) in ``OUT/trial-NNNN``; it
reports the test accuracy (regression: test MSE) at every evaluation, and a median pruner
stops trials that fall below the median of earlier ones at the same point.

A worker that dies mid-trial (killed, machine lost) stops sending heartbeats; the next
worker to start a trial marks that trial FAIL and queues it again with the same
parameters, and the retried trial resumes from the
dead trial's last snapshot, so only the updates since that snapshot are redone (Optuna's
RetryHeartbeatStaleTrialCallback, at most 3 retries of one trial). Ctrl-C
stops the trial after its current update, snapshots it, marks it FAIL and queues it the
same way. ``--trials N`` counts COMPLETE and PRUNED trials of the whole study; workers
already inside a trial when the N-th finishes still finish theirs (Optuna's own rule), so
with W workers a study can end with up to N + W - 1 trials.
"""
import json
import math
import os
import time
import warnings

import chainer

from irnn_chainer import files
from irnn_chainer.run import train as train_mod
from irnn_chainer.model import weights
from irnn_chainer.errors import TrainingDiverged, UsageError

DEFAULT_SPACE = {
    'lr': {'log': [1e-5, 1e-3]},
    'clip': {'uniform': [0.5, 5.0]},
    'optimizer': {'choice': ['rmsprop', 'adam']},
}
KINDS = ('log', 'uniform', 'int', 'choice')
# Flags a search space may sweep (the others define the task and stay fixed per study).
SWEEPABLE = ('lr', 'clip', 'optimizer', 'model', 'unit', 'batchsize', 'init_std', 'lr_decay',
             'lr_decay_every', 'seed', 'identity_scale')
TRIAL_DIR = 'trial-%04d'
STEPS_PER_EPOCH = 100  # Optuna steps are hundredths of an epoch


def _requeue():
    """What queues a failed trial again: same parameters, its reports so far, and system
    attrs naming the trials it retries (Optuna >= 4.9)."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    return RetryHeartbeatStaleTrialCallback(max_retry=3, inherit_intermediate_values=True)


class SweepError(Exception):
    """Bad sweep flags, search space or storage: one line for the user, exit code 2."""


def _optuna():
    try:
        import optuna
    except ImportError:
        raise SweepError("sweep needs Optuna: pip install 'irnn-chainer[sweep]' (optuna, and "
                         "psycopg for PostgreSQL)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours
    warnings.filterwarnings('ignore', category=optuna.exceptions.ExperimentalWarning)
    return optuna


# ---------------------------------------------------------------------------------------
# Search space: {"lr": {"log": [1e-5, 1e-3]}, "clip": {"uniform": [0.5, 5]},
#                "unit": {"int": [50, 200]}, "optimizer": {"choice": ["rmsprop", "adam"]}}
# ---------------------------------------------------------------------------------------

def load_space(path=None):
    """The search space from a JSON file (or the default one), checked."""
    if path is None:
        return dict(DEFAULT_SPACE)
    try:
        with open(path) as f:
            space = json.load(f)
    except OSError as e:
        raise SweepError('--space: cannot read %s (%s)' % (path, e.strerror or e))
    except ValueError as e:
        raise SweepError('--space: %s is not valid JSON (%s)' % (path, e))
    check_space(space, path)
    return space


def check_space(space, where='space'):
    if not isinstance(space, dict) or not space:
        raise SweepError('%s: expected a JSON object of parameters, e.g. {"lr": {"log": [1e-5, 1e-3]}}, '
                         'got %s' % (where, json.dumps(space)[:60]))
    for name, spec in space.items():
        if name not in SWEEPABLE:
            raise SweepError('%s: cannot sweep %r; expected one of %s' % (where, name, ', '.join(SWEEPABLE)))
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
            raise SweepError('%s: %s: expected one of {"log": [lo, hi]}, {"uniform": [lo, hi]}, '
                             '{"int": [lo, hi]}, {"choice": [...]}, got %s' % (where, name, json.dumps(spec)))
        kind, values = next(iter(spec.items()))
        if not isinstance(values, list) or not values:
            raise SweepError('%s: %s: expected a non-empty list after %r, got %s'
                             % (where, name, kind, json.dumps(values)))
        if kind == 'choice':
            continue
        if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                       for v in values) or not values[0] < values[1]:
            raise SweepError('%s: %s: expected [low, high] numbers with low < high, got %s'
                             % (where, name, json.dumps(values)))
        if kind == 'log' and values[0] <= 0:
            raise SweepError('%s: %s: a log range needs low > 0, got %s' % (where, name, values[0]))
        if kind == 'int' and not all(float(v).is_integer() for v in values):
            raise SweepError('%s: %s: an int range needs integers, got %s' % (where, name, json.dumps(values)))


def suggest(trial, space):
    """The trial's parameters (a re-queued trial gets its fixed ones back)."""
    params = {}
    for name, spec in sorted(space.items()):
        kind, v = next(iter(spec.items()))
        if kind == 'log':
            params[name] = trial.suggest_float(name, v[0], v[1], log=True)
        elif kind == 'uniform':
            params[name] = trial.suggest_float(name, v[0], v[1])
        elif kind == 'int':
            params[name] = trial.suggest_int(name, int(v[0]), int(v[1]))
        else:
            params[name] = trial.suggest_categorical(name, v)
    return params


# ---------------------------------------------------------------------------------------
# Reporting to Optuna from inside a Chainer Trainer
# ---------------------------------------------------------------------------------------

class OptunaPruning(chainer.training.Extension):
    """Reports ``key`` to the trial after each evaluation and raises TrialPruned when the
    pruner says so. Ours, not optuna-integration's ChainerPruningExtension: that one is
    gone from optuna-integration 5 and took only plain interval triggers, while runs here
    evaluate every epoch *and* at the last iteration.

    The step is the training progress in hundredths of an epoch (epoch 2 = step 200), so
    trials with different batch sizes are compared at the same point of training."""
    trigger = 1, 'iteration'
    priority = chainer.training.PRIORITY_READER  # after the Evaluator wrote the observation

    def __init__(self, trial, key):
        self.trial = trial
        self.key = key

    def __call__(self, trainer):
        if self.key not in trainer.observation:
            return
        value = float(trainer.observation[self.key])
        step = int(round(trainer.updater.epoch_detail * STEPS_PER_EPOCH))
        self.trial.report(value, step)
        if self.trial.should_prune():
            import optuna
            raise optuna.TrialPruned('pruned at epoch %.2f: %s %.4f is worse than the median'
                                     % (step / float(STEPS_PER_EPOCH), self.key, value))


# ---------------------------------------------------------------------------------------
# Storage, study, workers
# ---------------------------------------------------------------------------------------

def default_storage(out):
    return 'sqlite:///%s' % os.path.abspath(os.path.join(out, 'optuna.db'))


def open_storage(url, heartbeat=60):
    """An Optuna RDB storage with heartbeats (so dead workers' trials are found) and the
    callback that queues such a trial again."""
    optuna = _optuna()
    from optuna.storages import RDBStorage
    if not isinstance(url, str) or '://' not in url:
        raise SweepError('--storage: expected a URL such as sqlite:///sweep/optuna.db or '
                         'postgresql://user@host:5432/db, got %r' % (url,))
    if url.startswith('sqlite:///'):
        folder = os.path.dirname(url[len('sqlite:///'):])
        if folder:
            os.makedirs(folder, exist_ok=True)
    for attempt in range(5):
        try:
            return RDBStorage(
                url, engine_kwargs={'pool_pre_ping': True},
                heartbeat_interval=heartbeat, grace_period=max(2 * heartbeat, heartbeat + 1),
                heartbeat_stale_trial_callback=_requeue())
        except ImportError as e:
            raise SweepError('--storage %s: the database driver is missing (%s); for PostgreSQL: '
                             'pip install "psycopg[binary]"' % (_redact(url), e))
        except Exception as e:  # sqlalchemy: bad URL, server not reachable, no such database
            # Workers started together on an empty database race to create Optuna's tables;
            # the losers see a duplicate-key error, and a second look finds the tables there.
            text = str(e).lower()
            if attempt < 4 and ('duplicate' in text or 'already exists' in text or 'locked' in text):
                time.sleep(0.5 + attempt)
                continue
            raise SweepError('--storage %s: cannot open (%s)' % (_redact(url), _first_line(e)))


def _redact(url):
    """The URL without its password, for messages."""
    head, sep, rest = url.partition('://')
    if '@' in rest:
        cred, at, host = rest.rpartition('@')
        if ':' in cred:
            rest = cred.split(':', 1)[0] + ':***@' + host
    return head + sep + rest


def _first_line(e):
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def objective_key(cli):
    """What a trial reports and the study's direction: test accuracy (maximise) for
    classification, test MSE (minimise) for regression."""
    if cli.get('task') == 'regression' or cli.get('dataset') == 'adding':
        return 'validation/main/loss', 'minimize'
    return 'validation/main/accuracy', 'maximize'


def make_study(storage, name, direction, pruner_startup=5, prune_after=1.0):
    """The study (created or joined); its median pruner waits for ``pruner_startup``
    finished trials and never prunes a trial before ``prune_after`` epochs."""
    optuna = _optuna()
    pruner = optuna.pruners.MedianPruner(n_startup_trials=pruner_startup,
                                         n_warmup_steps=int(round(prune_after * STEPS_PER_EPOCH)))
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction=direction,
                                    pruner=pruner, load_if_exists=True)
    except Exception as e:
        raise SweepError('study %r: %s' % (name, _first_line(e)))
    if study.direction.name.lower() != direction:
        raise SweepError('study %r exists and is to %s; this sweep would %s (another task?): use '
                         'another --study' % (name, study.direction.name.lower(), direction))
    return study


class _Interrupted(Exception):
    """Ctrl-C inside a trial: the trial is snapshotted, marked FAIL and queued again."""


def run_worker(cli, out, study_name, trials, storage_url=None, space=None, heartbeat=60,
               pruner_startup=5, prune_after=1.0, log=print):
    """Run trials of the study until it holds ``trials`` COMPLETE or PRUNED ones."""
    optuna = _optuna()
    from optuna.trial import TrialState
    space = space or dict(DEFAULT_SPACE)
    check_space(space)
    fixed = sorted(k for k in space if cli.get(k) is not None)
    if fixed:
        raise SweepError('--%s is both given as a flag and swept by the search space; drop one'
                         % fixed[0].replace('_', '-'))
    os.makedirs(out, exist_ok=True)
    storage = open_storage(storage_url or default_storage(out), heartbeat)
    key, direction = objective_key(cli)
    study = make_study(storage, study_name, direction, pruner_startup, prune_after)
    counted = (TrialState.COMPLETE, TrialState.PRUNED)

    def done():
        return len(study.get_trials(deepcopy=False, states=counted))

    current = {}

    def objective(trial):
        current['number'] = trial.number
        params = suggest(trial, space)
        run_dir = os.path.join(out, TRIAL_DIR % trial.number)
        # A re-queued trial: resume the latest of the trials it retries that left a snapshot.
        history = study.get_trials(deepcopy=False)[trial.number].system_attrs.get('retry_history') or []
        retried = history[-1] if history else None
        resume = None
        for number in reversed(history):
            try:
                resume = weights.find_snapshot(os.path.join(out, TRIAL_DIR % number))
                break
            except UsageError:  # that trial left no snapshot
                continue
        trial.set_user_attr('out', os.path.abspath(run_dir))
        shown = ', '.join('%s=%s' % (k, '%.3g' % v if isinstance(v, float) else v)
                          for k, v in sorted(params.items()))
        log('trial %d: %s%s' % (trial.number, shown,
                                ' (retry of trial %d%s)' % (retried, ', resuming its snapshot' if resume else '')
                                if retried is not None else ''))
        os.makedirs(run_dir, exist_ok=True)
        t0 = time.time()
        with open(os.path.join(run_dir, 'train.out'), 'a') as f:
            def trial_log(line):
                f.write(line + '\n')
                f.flush()
            run_cli = dict(cli, **params)
            if run_cli.get('on_divergence') is None:
                # a trial that diverges is pruned, as one that ends non-finite: rolled back at a
                # lower rate it would no longer be the trial of the rate that was drawn
                run_cli['on_divergence'] = 'stop'
            pruning = OptunaPruning(trial, key)
            try:
                trainer = train_mod.train(run_cli, run_dir, resume=resume, progress=False, log=trial_log,
                                          extra_extensions=[pruning], table_out=f)
            except TrainingDiverged as e:
                trial.set_user_attr('seconds', time.time() - t0)
                raise optuna.TrialPruned('diverged: %s' % e)
        entries = [e for e in trainer.get_extension('LogReport').log if key in e]
        trial.set_user_attr('epochs', float(trainer.updater.epoch_detail))
        trial.set_user_attr('iterations', int(trainer.updater.iteration))
        trial.set_user_attr('seconds', time.time() - t0)
        if trainer.stop_trigger.interrupted:
            raise _Interrupted('trial %d interrupted at iteration %d' % (trial.number, trainer.updater.iteration))
        if not entries:
            raise SweepError('trial %d: no %s was logged' % (trial.number, key))
        values = [float(e[key]) for e in entries]
        best = max(values) if direction == 'maximize' else min(values)
        trial.set_user_attr('best', best)
        if not math.isfinite(values[-1]):
            raise optuna.TrialPruned('diverged: %s is %s' % (key, values[-1]))
        return values[-1]  # the model the run ends with; the best epoch is in user_attrs

    def report(study, frozen):
        what = {'COMPLETE': '%s %.4f' % (key.split('/')[-1], frozen.value) if frozen.value is not None else '',
                'PRUNED': 'pruned at epoch %.2f' % (max(frozen.intermediate_values or [0])
                                                    / float(STEPS_PER_EPOCH)),
                'FAIL': 'failed'}.get(frozen.state.name, frozen.state.name)
        log('trial %d: %s (%s/%s trials counted)' % (frozen.number, what, done(), trials))

    stop_at = optuna.study.MaxTrialsCallback(trials, states=counted)
    if done() >= trials:
        log('study %r already has %d counted trials (>= %d): nothing to do' % (study_name, done(), trials))
        return study
    try:
        study.optimize(objective, callbacks=[report, stop_at], catch=(), gc_after_trial=True)
    except (_Interrupted, KeyboardInterrupt) as e:
        # Ctrl-C: Optuna marked the trial FAIL; queue it again, as a dead worker's would be.
        # Its snapshot (taken on the first Ctrl-C) is where the retry resumes.
        if 'number' in current:
            frozen = study.get_trials(deepcopy=False)[current['number']]
            if frozen.state == TrialState.FAIL:
                _requeue()(study, frozen)
        log('trial %s interrupted: marked failed and queued again; run the same command to continue'
            % current.get('number', '?'))
        if isinstance(e, KeyboardInterrupt):
            raise
    return study


# ---------------------------------------------------------------------------------------
# Summary: the best trials and a plot of the objective against each swept value
# ---------------------------------------------------------------------------------------

def summary(study_name, storage_url, out, top=5, log=print):
    optuna = _optuna()
    from optuna.trial import TrialState
    storage = open_storage(storage_url or default_storage(out))
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise SweepError('no study %r in %s (it has: %s)' % (study_name, _redact(storage.url),
                                                          ', '.join(names) or 'none'))
    trials = study.get_trials(deepcopy=False)
    maximize = study.direction.name == 'MAXIMIZE'
    states = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    log('study %r: %d trials (%s)' % (study_name, len(trials),
                                       ', '.join('%d %s' % (n, s.lower()) for s, n in sorted(states.items()))))
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    complete.sort(key=lambda t: -t.value if maximize else t.value)
    name = 'accuracy' if maximize else 'loss'
    log('%-6s %-9s %-9s %-8s %s' % ('trial', name, 'best', 'epochs', 'parameters'))
    for t in complete[:top]:
        log('%-6d %-9.4f %-9s %-8s %s' % (
            t.number, t.value, '%.4f' % t.user_attrs['best'] if 'best' in t.user_attrs else '-',
            '%.2f' % t.user_attrs['epochs'] if 'epochs' in t.user_attrs else '-',
            ', '.join('%s=%s' % (k, '%.3g' % v if isinstance(v, float) else v)
                      for k, v in sorted(t.params.items()))))
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, 'sweep.png')
    plot(trials, path, maximize)
    log('plot: %s' % path)
    return complete, path


def plot(trials, path, maximize):
    """One panel per swept parameter: the final value of complete trials and the last
    reported value of pruned ones against the parameter."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.ticker
    import matplotlib.pyplot as plt
    names = sorted({k for t in trials for k in t.params})
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4 * max(1, len(names)), 3.4), squeeze=False)
    ylabel = 'test accuracy' if maximize else 'test loss'
    for ax, name in zip(axes[0], names or ['(no parameters)']):
        for state, marker, color in (('COMPLETE', 'o', 'tab:blue'), ('PRUNED', 'x', 'tab:gray')):
            xs, ys = [], []
            for t in trials:
                if t.state.name != state or name not in t.params:
                    continue
                y = t.value if state == 'COMPLETE' else (
                    t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None)
                if y is None or not math.isfinite(y):
                    continue
                xs.append(t.params[name])
                ys.append(y)
            if xs:
                ax.scatter(xs, ys, marker=marker, color=color, label=state.lower())
        values = [t.params[name] for t in trials if name in t.params]
        if values and all(isinstance(v, (int, float)) for v in values) and min(values) > 0 \
                and max(values) / min(values) > 20:
            ax.set_xscale('log')
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no overlapping labels
        ax.set_xlabel(name)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    if any(ax.get_legend_handles_labels()[0] for ax in axes[0]):
        axes[0][0].legend(loc='best', fontsize=8)
    fig.tight_layout()
    try:
        files.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format='png'), suffix='.png')
    finally:
        plt.close(fig)
