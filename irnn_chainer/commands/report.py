"""``irnn-chainer report RUN_DIR ...``: compare runs with each other and with the paper.

Reads each run's ``config.json`` and ``log``; writes ``report.md``, ``table.png`` (the
curves of the runs in the paper's table: one panel per task, one colour per model, one line
style per setting) and ``accuracy.png`` / ``loss.png`` (every run's test curves), each
against epochs AND iterations.
"""
import json
import math
import numbers
import os

from irnn_chainer import files
from irnn_chainer.model.rnn import MODELS
from irnn_chainer.run import runfolder
from irnn_chainer.run import schedule

# Test accuracy (%) the paper reports (Le, Jaitly & Hinton 2015, section 4.2), by model and task.
PAPER = {
    ('irnn', 'pixel'): 97.0, ('irnn', 'permuted'): 82.0,
    ('lstm', 'pixel'): 65.0, ('lstm', 'permuted'): 36.0,
    ('rnn-tanh', 'pixel'): 35.0, ('rnn-tanh', 'permuted'): 35.0,
}
# Test accuracy (%) of a guess among MNIST's 10 classes (the runs the paper's numbers apply to).
CHANCE = 10.0


# The paper's table: its rows (the paper's models in its order, then every other model of
# the registry), the models' names in it, and which runs fill each cell.
_PAPER_ORDER = ('irnn', 'lstm', 'rnn-tanh', 'rnn-relu')
TABLE_ROWS = tuple((m, MODELS[m].label) for m in
                   _PAPER_ORDER + tuple(m for m in MODELS if m not in _PAPER_ORDER))
TASKS = ('pixel', 'permuted')
# The table compares with the paper: runs on all of MNIST (its 60000 training and 10000 test
# images, no --validation) that trained at least this many epochs; shorter ones (checks,
# pilots) and runs on subsets are listed under "Every run" only.
PAPER_SIZES = (60000, 10000)
MIN_TABLE_EPOCHS = 10
# Settings that say where or how a run ran, not what it learned: runs that differ only in
# these and in --seed are one setting, shown as the mean over its seeds.
NOT_THE_SETTING = ('seed', 'device', 'data_dir', 'eval_batchsize', 'impl', 'log_interval', 'communicator',
                   'run_id')


class ReportError(Exception):
    pass


def kind_of(cfg):
    """Which column of the table a run fills: 'paper' (``--preset paper``), 'blog'
    (``--preset blog``, the blog's own run, shown beside the paper-setting IRNN) or 'ours'."""
    return cfg.get('preset') if cfg.get('preset') in ('paper', 'blog') else 'ours'


def in_paper_table(s):
    """Whether a run's summary can stand beside the paper's figures (see PAPER_SIZES)."""
    return (s.get('sizes') == PAPER_SIZES and not s.get('validation') and s['final'] is not None
            and s['epochs'] >= MIN_TABLE_EPOCHS)


def _spread(values):
    """'97.07 %' for one value, '90.78 ± 0.32 %' (mean ± sample standard deviation) for more."""
    if len(values) == 1:
        return '%.2f %%' % values[0]
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return '%.2f ± %.2f %%' % (mean, sd)


def _cell_run(group):
    """A table cell for a group of runs that differ only by --seed: the final model's test
    accuracy (the last evaluation), '97.07 % (100 epochs, 375000 updates, 54.5 min; `NAME`)'
    for one run; for more, the mean ± standard deviation over the seeds, n, each seed's figure
    and the mean length. Beside it, where higher, the best epoch's (which the test set chose,
    so it is no result), and the averaged weights' (--ema) final figure."""
    if isinstance(group, dict):
        group = [group]
    s = group[0]
    if s['final'] is None:
        return 'no evaluation yet (%s)' % s['name']
    names = ', '.join('`%s`' % r['name'] for r in group)
    ema = [r['ema_final'] for r in group if r.get('ema_final') is not None]
    averaged = ('; averaged weights %s' % _spread(ema)) if len(ema) == len(group) else ''
    if len(group) == 1:
        more = ''
        if s.get('planned') and s['epochs'] < s['planned']:
            more = ', of %s planned: %s' % (s['planned'], 'continues (its snapshot is kept)' if s.get('resumable')
                                             else 'stopped there')
        after = ', after the weights of `%s`' % s['init_from'] if s.get('init_from') else ''
        best = ('; best epoch %.2f %% (epoch %s)' % (s['best'], s['best_epoch'])
                if _higher(s) else '')
        return '%.2f %% (%s epochs, %s updates, %s%s%s%s%s; `%s`)' % (
            s['final'], s['epochs'], s['iterations'], _fmt_time(s['time']), after, more, best, averaged,
            s['name'])
    times = [r['time'] for r in group if r['time'] is not None]
    epochs = sorted(set(r['epochs'] for r in group))
    best = ('; best epochs %s' % _spread([r['best'] for r in group])
            if any(_higher(r) for r in group) else '')
    return '%s over %d seeds (%s; %s epochs, %s on average%s%s; %s)' % (
        _spread([r['final'] for r in group]), len(group),
        ', '.join('seed %s: %.2f' % (r.get('seed', 0), r['final']) for r in group),
        '-'.join(str(e) for e in (epochs[0], epochs[-1]) if e is not None) if len(epochs) > 1 else epochs[0],
        _fmt_time(sum(times) / len(times) if times else None), best, averaged, names)


def _higher(s):
    """Whether a run's best epoch scored higher than its final model, as the report prints them."""
    return '%.2f' % s['best'] != '%.2f' % s['final']


def group_runs(rows):
    """The runs' summaries grouped by setting: the runs of a group differ only by --seed (and
    by where they ran, NOT_THE_SETTING), their data and length included; in input order."""
    groups = {}
    for r in rows:
        groups.setdefault(r.get('setting_key'), []).append(r)
    return [sorted(g, key=lambda r: (r.get('seed') or 0, r['name'])) for g in groups.values()]


def _mean(values):
    return sum(values) / len(values)


def table_cells(rows):
    """{(model, task, kind): [the summaries of the runs shown in that cell]}: for 'paper'
    and 'ours' the best group of that kind (runs that differ only by --seed; the highest mean
    of the runs' final test accuracy), for 'blog' every blog run. Only runs that fit the
    paper's table (:func:`in_paper_table`) are considered."""
    cells = {}
    for group in group_runs([r for r in rows if in_paper_table(r)]):
        r = group[0]
        if not r.get('kind') or r['model'] not in dict(TABLE_ROWS):
            continue
        key = (r['model'], r['task'], r['kind'])
        if r['kind'] == 'blog':
            cells.setdefault(key, []).extend(group)
        elif key not in cells or _mean([g['final'] for g in group]) > _mean([g['final'] for g in cells[key]]):
            cells[key] = group
    return cells


def paper_table(rows):
    """The paper's table reproduced: one row per model, per task 'paper / ours under the
    paper's setting / ours with our recipe' (the best setting of each kind, over its seeds)."""
    chosen = table_cells(rows)
    lines = ['| model | pixel MNIST: paper / ours, paper\'s setting / ours, our recipe '
             '| permuted MNIST: paper / ours, paper\'s setting / ours, our recipe |', '|---|---|---|']
    for model, title in TABLE_ROWS:
        cells = []
        for task in TASKS:
            paper = PAPER.get((model, task))
            parts = ['%.1f %%' % paper if paper is not None else 'not reported']
            for kind in ('paper', 'ours'):
                best = chosen.get((model, task, kind))
                parts.append(_cell_run(best) if best else 'not run yet')
            cells.append(' / '.join(parts))
        lines.append('| %s | %s | %s |' % (title, cells[0], cells[1]))
    blog = [r for task in TASKS for r in chosen.get(('irnn', task, 'blog'), [])]
    if blog:
        lines += ['', 'Beside the paper-setting IRNN, the 2015 blog\'s own setting (SGD 1e-8, N(0, 0.01), no '
                  'clipping): ' + '; '.join('%s %s' % (r['task'], _cell_run(r)) for r in blog) + '.']
    return lines


def collect_runs(paths, log=print):
    """The run folders among ``paths`` (as ``report results/*`` gives them): a run folder
    (it has config.json), or a folder of runs (its sub-folders that are runs, one level: the
    groups of results/); anything else is skipped with one line. ReportError when no run is left."""
    runs = []
    for path in paths:
        if os.path.isfile(os.path.join(path, runfolder.CONFIG_FILE)):
            runs.append(path)
            continue
        inside = sorted(os.path.join(path, n) for n in os.listdir(path)) if os.path.isdir(path) else []
        inside = [d for d in inside if os.path.isfile(os.path.join(d, runfolder.CONFIG_FILE))]
        if inside:
            runs += inside
        elif not os.path.lexists(path):
            log('report: skipping %s: missing (no such file or folder)' % path)
        else:
            log('report: skipping %s: not a run folder (no %s%s)' % (
                path, runfolder.CONFIG_FILE, ', and no run folder inside' if os.path.isdir(path) else
                '; %s' % files.kind_of(path)))
    if not runs:
        raise ReportError('expected run folders written by irnn-chainer train (or folders of them), found '
                          'none in %s' % ', '.join(paths) if paths else 'expected run folders, got none')
    return runs


def _check_log(log_path, records):
    """The log's records, checked: a list of objects whose figures are numbers; one line
    naming the file, the record and the key when not."""
    if not isinstance(records, list):
        raise ReportError('%s: expected the run\'s log (a JSON list of records), found a JSON %s'
                          % (log_path, type(records).__name__))
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise ReportError('%s: record %d: expected an object of figures, found a JSON %s'
                              % (log_path, i, type(r).__name__))
        if 'validation/main/loss' not in r:
            continue
        for key in ('epoch', 'iteration', 'validation/main/loss', 'validation/main/accuracy',
                    'ema/main/accuracy', 'elapsed_time'):
            if key in ('epoch', 'iteration', 'validation/main/loss') and key not in r:
                raise ReportError('%s: record %d: expected %s, found none' % (log_path, i, key))
            if key in r and (not isinstance(r[key], numbers.Real) or isinstance(r[key], bool)):
                raise ReportError('%s: record %d: %s: expected a number, found %s'
                                  % (log_path, i, key, json.dumps(r[key])[:40]))
    return [r for r in records if 'validation/main/loss' in r]


def load_run(run_dir):
    cfg_path, log_path = os.path.join(run_dir, 'config.json'), os.path.join(run_dir, 'log')
    if not os.path.exists(cfg_path):
        raise ReportError('%s: not an irnn-chainer run folder (no config.json)' % run_dir)
    cfg = files.read_json(cfg_path, "a run's settings (a JSON object)")
    log = []
    if os.path.exists(log_path):
        files.require_file(log_path, 'the run\'s log (a JSON list)')
        try:
            with open(log_path) as f:
                records = json.load(f)
        except (ValueError, TypeError) as e:
            raise ReportError('%s: expected the run\'s log (a JSON list of records), found %s'
                              % (log_path, str(e).splitlines()[0])) from None
        log = _check_log(log_path, records)
        if log and any('validation/main/accuracy' in r for r in log) and not all(
                'validation/main/accuracy' in r for r in log):
            i = next(i for i, r in enumerate(log) if 'validation/main/accuracy' not in r)
            raise ReportError('%s: evaluation %d: expected validation/main/accuracy, as in the others, found '
                              'none' % (log_path, i))
    return {'dir': run_dir, 'name': os.path.basename(os.path.normpath(run_dir)), 'config': cfg, 'log': log}


def setting_key(cfg):
    """What defines a run's result (its settings but NOT_THE_SETTING, its data's sizes): equal
    for runs that differ only by --seed."""
    from irnn_chainer import settings
    keys = [k for k in settings.DEFAULTS if k not in NOT_THE_SETTING]
    return json.dumps([[k, cfg.get(k, settings.DEFAULTS[k])] for k in keys] +
                      [cfg.get('train_size'), cfg.get('test_size')], sort_keys=True, default=str)


def _fmt_time(seconds):
    if seconds is None:
        return '-'
    if seconds < 120:
        return '%.0f s' % seconds
    if seconds < 7200:
        return '%.1f min' % (seconds / 60)
    return '%.1f h' % (seconds / 3600)


def summarise(run, window=5):
    """Best/final accuracy, lengths, time, and (below the paper) a projection."""
    cfg, log = run['config'], run['log']
    if cfg.get('task') == 'regression' or (log and 'validation/main/accuracy' not in log[-1]):
        return _summarise_regression(run)
    task = 'permuted' if cfg.get('permute') else 'pixel'
    model = cfg.get('model', 'irnn')
    paper = PAPER.get((model, task))
    s = {'name': run['name'], 'model': model, 'task': task, 'paper': paper, 'kind': kind_of(cfg),
         'planned': cfg.get('epoch'), 'init_from': _short(cfg['init_from']) if cfg.get('init_from') else None,
         'resumable': any(n.startswith('snapshot_iter_') for n in os.listdir(run['dir'])),
         'setting': '%s%s lr %g%s%s, clip %s, batch %s, %s%s' % (
             (cfg['preset'] + ': ') if cfg.get('preset') else '', cfg.get('optimizer', 'sgd'),
             cfg.get('lr', 1e-8), _schedule_words(cfg),
             (', h0 noise %g' % cfg['h0_noise'] if cfg.get('h0_noise') else '')
             + (', identity decay %g' % cfg['identity_decay'] if cfg.get('identity_decay') else '')
             + (', dropout %g' % cfg['dropout'] if cfg.get('dropout') else '')
             + (', input dropout %g' % cfg['input_dropout'] if cfg.get('input_dropout') else ''),
             cfg.get('clip') or 'off', cfg.get('batchsize'), cfg.get('dtype', 'float32'),
             '; from the weights of %s' % _short(cfg['init_from']) if cfg.get('init_from') else ''),
         'device': cfg.get('device_used', cfg.get('device') or '@numpy'),
         'data': '%s train / %s test' % (cfg.get('train_size', '?'), cfg.get('test_size', '?')),
         'best': None, 'final': None, 'epochs': 0, 'iterations': 0, 'time': None, 'projection': '',
         'sizes': (cfg.get('train_size'), cfg.get('test_size')), 'validation': cfg.get('validation'),
         'seed': cfg.get('seed', 0), 'ema_best': None, 'ema_final': None, 'best_epoch': None,
         'setting_key': setting_key(cfg)}
    if not log:
        s['projection'] = 'no evaluation logged yet'
        return s
    accs = [100 * r['validation/main/accuracy'] for r in log]
    last, at_best = log[-1], log[accs.index(max(accs))]
    s.update(best=max(accs), final=accs[-1], epochs=last['epoch'], iterations=last['iteration'],
             time=last.get('elapsed_time'), best_epoch=at_best['epoch'])
    ema = [(100 * r['ema/main/accuracy'], r['epoch']) for r in log if 'ema/main/accuracy' in r]
    if ema:  # --ema: the averaged weights' best, beside the trained weights' (the table's)
        best_ema = max(ema)
        s['ema_best'], s['ema_final'] = best_ema[0], ema[-1][0]
        s['setting'] += '; averaged weights (--ema %g): best %.2f %% (epoch %s), final %.2f %%' % (
            cfg.get('ema', 0), best_ema[0], best_ema[1], ema[-1][0])
    planned_iters = cfg.get('iteration') or (cfg['epoch'] * cfg['per_epoch'] if cfg.get('epoch') and
                                              cfg.get('per_epoch') else None)
    finished = ((planned_iters is not None and last['iteration'] >= planned_iters) or
                (planned_iters is None and cfg.get('epoch') is not None and last['epoch'] >= cfg['epoch']))
    if paper is not None and s['best'] < paper and s['final'] < s['best'] - 10:
        # near chance (10 classes) the recurrence has blown up; higher, it may be a dip at a high rate
        s['projection'] = ('%s: final %.2f %% against the best %.2f %% at epoch %s, iteration %s (%s; '
                           'no projection)' % (
                               'collapsed' if s['final'] < CHANCE + 5 else 'dropped', s['final'], s['best'],
                               at_best['epoch'], at_best['iteration'],
                               'at chance: the training diverged' if s['final'] < CHANCE + 5 else
                               '%.1f points below its best' % (s['best'] - s['final'])))
    elif paper is not None and s['best'] < paper and finished and _decays(cfg):
        # its rate has decayed to its end: the slope of its last, smallest steps says nothing
        # of more epochs (a constant-rate run that stopped is still projected)
        s['projection'] = ('finished %.2f points below the paper\'s %.1f %% (no projection: its rate '
                           'has decayed to its end)' % (paper - s['best'], paper))
    elif paper is not None and s['best'] < paper:
        # a least-squares slope over the run's last quarter (at least `window` intervals):
        # two points a few evaluations apart make a noisy curve look like a steep one
        k = min(max(window, len(log) // 4), len(log) - 1)
        tail = [(r.get('elapsed_time'), a) for r, a in zip(log[-1 - k:], accs[-1 - k:])]
        if k >= 1 and all(t is not None for t, _ in tail):
            t0 = sum(t for t, _ in tail) / len(tail)
            a0 = sum(a for _, a in tail) / len(tail)
            var = sum((t - t0) ** 2 for t, _ in tail)
            slope = sum((t - t0) * (a - a0) for t, a in tail) / var if var > 0 else 0.0
            if slope > 0:
                hours = (paper - accs[-1]) / slope / 3600
                s['projection'] = ('+%.2f points/h over the last %d evaluations (least squares); at that '
                                   'rate %.3g h more to %.1f %% (a straight line: real curves flatten)'
                                   % (slope * 3600, k + 1, hours, paper))
            else:
                s['projection'] = 'not improving over the last %d evaluations' % (k + 1)
        else:
            s['projection'] = 'too few evaluations to project'
    return s


def _decays(cfg):
    return schedule.schedule_name(cfg) != 'constant'


def _schedule_words(cfg):
    kind = schedule.schedule_name(cfg)
    if kind == 'step':
        return ' x %g every %d epochs' % (cfg['lr_decay'], cfg.get('lr_decay_every', 10))
    if kind == 'cosine':
        return ' cosine to %g over %s epochs' % (cfg.get('lr_min') or 0, cfg.get('epoch') or '?')
    if kind == 'plateau':
        return ' x %g after %d epochs without a better training accuracy' % (
            cfg.get('lr_decay') or 0.5, cfg.get('lr_patience', 3))
    return ''


def _short(path):
    """'run/snapshot_iter_N' of a path, enough to find the run it names."""
    parts = os.path.normpath(path).split(os.sep)
    return '/'.join(parts[-2:]) if parts[-1].startswith('snapshot_iter_') or parts[-1].endswith('.npz') \
        else parts[-1]


def _summarise_regression(run):
    """Regression runs (the adding problem, own data): test MSE, lower is better, beside
    the constant-prediction baseline the run logged."""
    cfg, log = run['config'], run['log']
    s = {'name': run['name'], 'model': cfg.get('model', 'irnn'), 'paper': None,
         'task': 'adding T=%s' % cfg.get('length') if cfg.get('dataset') == 'adding' else 'regression',
         'setting': '%s lr %g, clip %s, batch %s' % (cfg.get('optimizer', 'sgd'), cfg.get('lr', 1e-8),
                                                    cfg.get('clip') or 'off', cfg.get('batchsize')),
         'device': cfg.get('device_used', '@numpy'),
         'data': '%s train / %s test' % (cfg.get('train_size', '?'), cfg.get('test_size', '?')),
         'best': None, 'final': None, 'epochs': 0, 'iterations': 0, 'time': None, 'projection': ''}
    if log:
        mse = [r['validation/main/loss'] for r in log]
        last = log[-1]
        s.update(epochs=last['epoch'], iterations=last['iteration'], time=last.get('elapsed_time'))
        base = last.get('validation/main/baseline')
        s['projection'] = 'test MSE best %.4g, final %.4g%s (accuracy columns do not apply)' % (
            min(mse), mse[-1], '' if base is None else ', constant-prediction baseline %.4g' % base)
    return s


# table.png: a colour per model, a line style per column of the table
_COLOURS = ('tab:red', 'tab:blue', 'tab:green', 'tab:purple', 'tab:orange', 'tab:brown', 'tab:pink', 'tab:olive')
MODEL_COLOURS = {m: _COLOURS[i % len(_COLOURS)] for i, (m, _) in enumerate(TABLE_ROWS)}
KIND_STYLES = {'ours': '-', 'paper': '--', 'blog': ':'}
KIND_WORDS = {'ours': 'our recipe', 'paper': "paper's setting", 'blog': "the blog's setting"}


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out_dir, fname):
    path = os.path.join(out_dir, fname)
    files.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=90, bbox_inches='tight'), suffix='.png')
    return path


def plot_table(runs, rows, out_dir):
    """table.png: the test accuracy of each run in the paper's table, pixel and permuted side
    by side, against epochs (top) and updates (bottom); the paper's figure as a thin line in
    the model's colour. Returns the path and the curves drawn: (run, colour, style)."""
    plt = _pyplot()
    log_of = {id(s): run['log'] for run, s in zip(runs, rows)}
    chosen = table_cells(rows)
    drawn = []
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharey=True)
    for col, task in enumerate(TASKS):
        for model, title in TABLE_ROWS:
            colour = MODEL_COLOURS[model]
            for kind in ('ours', 'paper', 'blog'):
                for s in chosen.get((model, task, kind), []):
                    log = log_of[id(s)]
                    ys = [100 * r['validation/main/accuracy'] for r in log]
                    label = '%s, %s (%s)' % (title, KIND_WORDS[kind], s['name'])
                    for row, xkey in enumerate(('epoch', 'iteration')):
                        axes[row][col].plot([r[xkey] for r in log], ys, color=colour,
                                            linestyle=KIND_STYLES[kind], label=label)
                    drawn.append((s['name'], colour, KIND_STYLES[kind]))
            paper = PAPER.get((model, task))
            if paper is not None:
                for row in (0, 1):
                    axes[row][col].axhline(paper, color=colour, linewidth=0.8, alpha=0.5)
        for row, xlabel in enumerate(('epoch', 'iteration (update)')):
            ax = axes[row][col]
            ax.set_title('%s MNIST' % task)
            ax.set_xlabel(xlabel)
            ax.set_ylabel('test accuracy (%)')
            ax.set_ylim(0, 100)
            ax.grid(True, alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc='lower right')
    fig.suptitle("The paper's table: solid = our recipe, dashed = the paper's setting, dotted = the "
                 "blog's; thin lines = the paper's figures")
    fig.tight_layout()
    path = _save(fig, out_dir, 'table.png')
    plt.close(fig)
    return path, drawn


def plot(runs, out_dir):
    """accuracy.png and loss.png: every run, a colour and line style of its own (20 colours
    x 3 styles before one repeats), the legend beside the panels."""
    plt = _pyplot()
    colours = plt.get_cmap('tab20').colors
    paths = []
    for key, label, fname in (('validation/main/accuracy', 'test accuracy', 'accuracy.png'),
                              ('validation/main/loss', 'test loss', 'loss.png')):
        fig, axes = plt.subplots(1, 2, figsize=(14, 5))
        for i, run in enumerate(runs):
            if not run['log'] or key not in run['log'][-1]:
                continue
            ys = [r[key] * (100 if 'accuracy' in key else 1) for r in run['log']]
            style = dict(color=colours[i % 20], linestyle=('-', '--', ':')[(i // 20) % 3])
            for ax, xkey in zip(axes, ('epoch', 'iteration')):
                ax.plot([r[xkey] for r in run['log']], ys, label=run['name'], **style)
        for ax, xkey in zip(axes, ('epoch', 'iteration (update, step)')):
            ax.set_xlabel(xkey)
            ax.set_ylabel(label + (' (%)' if 'accuracy' in key else ''))
            ax.grid(True, alpha=0.3)
            if 'loss' in key:
                ax.set_yscale('log')  # diverged runs reach 1e7; the healthy ones sit near 0.1-2.3
        handles, names = axes[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, names, loc='center left', bbox_to_anchor=(1.0, 0.5), fontsize=8)
        fig.suptitle('%s against epochs and iterations, every run' % label)
        fig.tight_layout()
        paths.append(_save(fig, out_dir, fname))
        plt.close(fig)
    return paths


def _test_sets(rows):
    """'10000' or '1000 / 2000 / 10000': the test sets' sizes among ``rows``."""
    sizes = sorted(set(r['sizes'][1] for r in rows if r.get('sizes') and r['sizes'][1] is not None))
    return ' / '.join(str(n) for n in sizes) or 'unknown'


def write_report(run_dirs, out_dir, command=None):
    """report.md, table.png, accuracy.png and loss.png in ``out_dir`` for the run folders
    ``run_dirs``; ``command``: the command line that built it, written into report.md."""
    runs = [load_run(d) for d in run_dirs]
    if os.path.exists(os.path.join(out_dir, 'config.json')):  # never over a run's own plots
        raise ReportError('-o %s is a run folder (it has config.json): the report would write over '
                          'its accuracy.png and loss.png; choose another folder' % out_dir)
    os.makedirs(out_dir, exist_ok=True)
    rows = [summarise(r) for r in runs]
    plot(runs, out_dir)
    plot_table(runs, rows, out_dir)

    def pct(v):
        return '-' if v is None else '%.2f %%' % v

    table_rows = [r for r in rows if in_paper_table(r)]
    lines = ['# IRNN runs', '']
    if command:
        lines += ['Built by `%s`.' % command, '']
    lines += ['## The paper\'s table, reproduced', '',
              'Test accuracy of the final model (the last evaluation) on MNIST\'s %d test images, of runs '
              'on all of MNIST (%d training images, no --validation) of at least %d epochs (%d of the %d '
              'runs; the others are under "Every run"). Each cell: the paper (Le, Jaitly & Hinton 2015, '
              'section 4.2) / our runs under the paper\'s setting (`--preset paper`) / our runs with our '
              'recipe (the other setting whose final models score best), each with its epochs, updates and '
              'training time. Runs that differ only by --seed are one setting: the mean ± standard '
              'deviation over its seeds, with each seed\'s figure. "Best epoch": where an earlier epoch '
              'scored higher, its figure (the test set picked it, so it is no result); "averaged weights": '
              'the same runs\' final --ema weights (model_ema.npz).'
              % (PAPER_SIZES[1], PAPER_SIZES[0], MIN_TABLE_EPOCHS, len(table_rows), len(rows)), '']
    lines += paper_table(rows)
    lines += ['', 'The test accuracy of the runs in the table, against epochs and updates:', '',
              '![the paper\'s table](table.png)']
    lines += ['', '## Every run', '',
             'Test accuracy and loss against epochs and iterations (one iteration = one update '
             'from one mini-batch), each run on its own test set (test sets of %s images here: the '
             '"data" column gives each run\'s):' % _test_sets(rows), '', '![accuracy](accuracy.png)', '',
             '![loss](loss.png)', '',
             '| run | model | task | setting | data | best test acc | final | epochs | iterations '
             '| wall time | device | paper |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for s in rows:
        lines.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
            s['name'], s['model'], s['task'], s['setting'], s['data'], pct(s['best']), pct(s['final']),
            s['epochs'], s['iterations'], _fmt_time(s['time']), s['device'], pct(s['paper'])))
    notes = [s for s in rows if s['projection']]
    if notes:
        lines += ['', 'Notes (below the paper\'s number: recent rate and projection):', '']
        lines += ['- %s: %s' % (s['name'], s['projection']) for s in notes]
    lines += ['', 'Paper: Le, Jaitly & Hinton (2015), arXiv:1504.00941, section 4.2 (IRNN 97.0 % / 82.0 %, '
              'LSTM ~65 % / ~36 %, RNN+tanh 35 % / 35 % on pixel / permuted MNIST).', '']
    path = os.path.join(out_dir, 'report.md')
    files.write_text(path, '\n'.join(lines))
    return path, rows
