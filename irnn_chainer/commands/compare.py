"""``irnn-chainer compare``: the library against the 2015 gist revisions, side by side.

Runs three programs on the same seed, data and number of iterations:

- ``library``: :class:`irnn_chainer.model.IRNN` in this environment (Chainer 7.8.1), trained
  by the loop below through :mod:`irnn_chainer.compat`;
- ``rev1``: ``examples/gist_rev1.py`` (Chainer 1.0 API) in the matrix venv of Chainer 1.0.1;
- ``rev2``: ``examples/gist_rev2.py`` (Chainer 1.3 API) in the matrix venv of Chainer 1.3.0.

The venvs come from ``tools/matrix.py`` (built on first use, cached), so this command needs
a source checkout. Every program draws its initial weights with ``np.random.seed(seed)``
then ``pixel_to_h`` and ``h_to_y`` N(0, --init-std) in that order (default 0.01 and no
clipping: the blog's own run; ``--init-std 0.001 --clip 1`` is the paper's setting), and shuffles each epoch with
``np.random.permutation`` from the same stream, so the per-iteration losses must agree.
Writes ``compare.md``, ``compare.csv``, ``compare.png`` and each program's JSON log into
``--out``; exits 1 when any loss differs from the library's by more than ``--tolerance``
(``--tolerance-rev1`` for rev1, whose float64 initial state makes its recurrence sum in float64).

This module also holds the plumbing the gist scripts share (data loading, per-epoch
lines, the JSON log); it does not import Chainer at module level, so it works in every
matrix venv.
"""
import argparse
import csv
import json
import os
import textwrap
import subprocess
import sys
import time

import numpy as np

PROGRAMS = ('library', 'rev1', 'rev2')
#: program -> (script under examples/, matrix cell whose venv runs it)
GISTS = {'rev1': ('gist_rev1.py', '1.0.1-np2'), 'rev2': ('gist_rev2.py', '1.3.0-np2')}
N_UNITS = 100


class CompareError(Exception):
    """A problem the user can fix (one line)."""


def repo_root():
    """The source checkout this package runs from, or None (installed without the repo)."""
    # irnn_chainer/commands/compare.py -> the checkout holding irnn_chainer/
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.exists(os.path.join(root, 'tools', 'matrix.py')) and \
            os.path.exists(os.path.join(root, 'examples', 'gist_rev1.py')):
        return root
    return None


# --------------------------------------------------------------------------------------
# Shared by the three programs.

def require_gist_chainer(program):
    """Before a gist script imports ``FunctionSet`` (Chainer 1.x only): on a later Chainer,
    exit with one line saying which Chainer it needs and how to get one, not an ImportError."""
    import chainer
    if hasattr(chainer, 'FunctionSet'):
        return
    script, cell = GISTS[program]
    sys.stderr.write('%s: needs Chainer %s (the 2015 FunctionSet API, gone since Chainer 2; this is Chainer %s): '
                     'run it with the python that `python tools/matrix.py --ensure %s` prints, or run '
                     '`irnn-chainer compare`, which does\n'
                     % (script, cell.split('-')[0], getattr(chainer, '__version__', '?'), cell))
    sys.exit(2)


def add_program_arguments(p):
    """The flags every program (library runner, gist_rev1.py, gist_rev2.py) accepts."""
    p.add_argument('--gpu', '-g', type=int, default=-1, help='GPU id (negative: CPU)')
    p.add_argument('--seed', type=int, default=0, help='seed of the initial weights and shuffling')
    p.add_argument('--dataset', choices=('auto', 'mnist', 'embedded'), default='auto',
                   help='MNIST source (see irnn-chainer train --help)')
    p.add_argument('--data-dir', help='folder with the four MNIST IDX files')
    p.add_argument('--data-npz', help='read train_x/train_y/test_x/test_y from this .npz instead')
    p.add_argument('--epoch', '-e', type=int, default=1, help='epochs (default 1)')
    p.add_argument('--iterations', type=int, help='stop after N updates (overrides --epoch)')
    p.add_argument('--train-limit', type=int, help='first N training images only')
    p.add_argument('--test-limit', type=int, help='first N test images only')
    p.add_argument('--batchsize', '-b', type=int, default=16)
    p.add_argument('--eval-batchsize', type=int, default=1000)
    p.add_argument('--lr', type=float, default=1e-8)
    # The blog's own run (its words: "std of 0.01; No gradient clipping"); the paper's setting
    # is --init-std 0.001 --clip 1.
    p.add_argument('--init-std', type=float, default=0.01,
                   help='std of the N(0, s) pixel_to_h and h_to_y weights (default 0.01, the blog\'s)')
    p.add_argument('--clip', type=float, default=0.0,
                   help='global-norm gradient clipping (default 0: none, as the blog ran; the paper: 1)')
    p.add_argument('--log-json', metavar='FILE', help='write per-iteration losses etc. as JSON')
    return p


def load_data(args, log=print):
    """(train_x, train_y, test_x, test_y): uint8 (N, 784) pixels and int32 labels."""
    if args.data_npz:
        with np.load(args.data_npz, allow_pickle=False) as z:  # never a pickle
            arrays = [z[k] for k in ('train_x', 'train_y', 'test_x', 'test_y')]
        log('data: %s, %d train / %d test images' % (args.data_npz, len(arrays[0]), len(arrays[2])))
    else:
        from irnn_chainer.data import mnist as data
        d = data.get_mnist(args.dataset, args.data_dir, log=log)
        arrays = [d.train_x, d.train_y, d.test_x, d.test_y]
    if args.train_limit:
        arrays[0], arrays[1] = arrays[0][:args.train_limit], arrays[1][:args.train_limit]
    if args.test_limit:
        arrays[2], arrays[3] = arrays[2][:args.test_limit], arrays[3][:args.test_limit]
    return arrays


def n_epochs(args, n_train):
    if args.iterations:
        per_epoch = -(-n_train // args.batchsize)
        return -(-args.iterations // per_epoch)
    return args.epoch


def epoch_line(epoch, iteration, train_loss, train_acc, test_loss, test_acc, sec_per_iter):
    """The per-epoch line all three programs print."""
    return ('epoch %d (iteration %d): train mean loss=%.6f, accuracy=%.4f; '
            'test mean loss=%.6f, accuracy=%.4f; %.3f s/iteration'
            % (epoch, iteration, train_loss, train_acc, test_loss, test_acc, sec_per_iter))


class RunLog(object):
    """Per-iteration losses and per-epoch results, written as JSON for ``compare``."""

    def __init__(self, program, chainer_version):
        self.d = {'program': program, 'chainer': chainer_version, 'numpy': np.__version__,
                  'python': sys.version.split()[0], 'losses': [], 'seconds': [], 'epochs': []}

    def iteration(self, loss, seconds):
        self.d['losses'].append(float(loss))
        self.d['seconds'].append(float(seconds))

    def epoch(self, epoch, train_loss, train_acc, test_loss, test_acc):
        secs = self.d['seconds']
        sec_per_iter = float(np.median(secs)) if secs else float('nan')
        self.d['epochs'].append({'epoch': epoch, 'iteration': len(self.d['losses']),
                                 'train_loss': train_loss, 'train_accuracy': train_acc,
                                 'test_loss': test_loss, 'test_accuracy': test_acc})
        print(epoch_line(epoch, len(self.d['losses']), train_loss, train_acc, test_loss, test_acc,
                         sec_per_iter), flush=True)

    def write(self, path):
        if path:
            with open(path, 'w') as f:
                json.dump(self.d, f, indent=1)


# --------------------------------------------------------------------------------------
# The library program (this environment's Chainer, irnn_chainer.model.IRNN).

def run_library(argv=None):
    """Train :class:`irnn_chainer.model.IRNN` with the gist's loop and flags."""
    p = add_program_arguments(argparse.ArgumentParser(prog='irnn-chainer compare library'))
    args = p.parse_args(argv)
    import irnn_chainer  # noqa: F401  (shims)
    import chainer
    import chainer.functions as F
    from irnn_chainer.compat import api
    from irnn_chainer.model.rnn import IRNN

    train_x, train_y, test_x, test_y = load_data(args)
    np.random.seed(args.seed)
    model = IRNN(n_units=N_UNITS, init_std=args.init_std)  # draws pixel_to_h/W, then h_to_y/W
    device = api.get_device(api.device_spec(gpu=args.gpu))
    api.to_device(model, device)
    xp = device.xp
    optimizer = api.setup_optimizer(chainer.optimizers.SGD(lr=args.lr), model, clip=args.clip or None)
    log = RunLog('library', api.chainer_version())

    def forward(x, t):
        x, t = xp.asarray(x), xp.asarray(t)
        y = model(x)
        return F.softmax_cross_entropy(y, t), F.accuracy(y, t)

    n, iteration = len(train_x), 0
    for epoch in range(1, n_epochs(args, n) + 1):
        perm = np.random.permutation(n)
        sum_loss = sum_acc = seen = 0
        for i in range(0, n, args.batchsize):
            if args.iterations and iteration >= args.iterations:
                break
            idx = perm[i:i + args.batchsize]
            start = time.perf_counter()
            loss, acc = forward(train_x[idx], train_y[idx])
            api.update(optimizer, model, loss)
            value = api.scalar(loss)
            log.iteration(value, time.perf_counter() - start)
            iteration += 1
            sum_loss += value * len(idx)
            sum_acc += api.scalar(acc) * len(idx)
            seen += len(idx)
        test_loss = test_acc = 0
        with api.no_graph():
            for i in range(0, len(test_x), args.eval_batchsize):
                loss, acc = forward(test_x[i:i + args.eval_batchsize], test_y[i:i + args.eval_batchsize])
                m = len(test_x[i:i + args.eval_batchsize])
                test_loss += api.scalar(loss) * m
                test_acc += api.scalar(acc) * m
        log.epoch(epoch, sum_loss / seen, sum_acc / seen, test_loss / len(test_x), test_acc / len(test_x))
    log.write(args.log_json)
    return 0


# --------------------------------------------------------------------------------------
# The comparison.

def add_arguments(p):
    """Flags of ``irnn-chainer compare``."""
    p.add_argument('--iterations', type=int, default=20, help='updates per program (default 20)')
    p.add_argument('--train-limit', type=int, default=320, help='first N training images (default 320)')
    p.add_argument('--test-limit', type=int, help='first N test images (default: all)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--dataset', choices=('auto', 'mnist', 'embedded'), default='embedded',
                   help='MNIST source (default embedded: the 20000-image subset shipped in the package)')
    p.add_argument('--data-dir', help='folder with the four MNIST IDX files')
    p.add_argument('--lr', type=float, default=1e-8, help='SGD learning rate (default 1e-8)')
    p.add_argument('--init-std', type=float, default=0.01,
                   help='N(0, s) input/output weights (default 0.01: the blog\'s own run; paper 0.001)')
    p.add_argument('--clip', type=float, default=0.0,
                   help='gradient clipping (default 0 = none: the blog\'s own run; paper 1)')
    p.add_argument('--out', '-o', default='compare', help='output folder (default: compare)')
    p.add_argument('--programs', nargs='+', choices=PROGRAMS, default=list(PROGRAMS),
                   help='which programs to run (default: all three)')
    p.add_argument('--tolerance-rev1', type=float, default=1e-4,
                   help='the same for rev1 (default 1e-4): its initial state is float64, so its '
                        'recurrence sums in float64 where the others round to float32 at every '
                        'step; with the blog\'s unclipped gradients (norm ~380) that moves the '
                        'losses by ~1e-5 relative, with the paper\'s clipping by < 1e-6')
    p.add_argument('--tolerance', type=float, default=1e-6,
                   help='max relative difference of any loss from the library\'s (default 1e-6)')
    p.add_argument('--python-rev1', help='python of a Chainer 1.0.1 venv (default: the matrix cell %s)'
                   % GISTS['rev1'][1])
    p.add_argument('--python-rev2', help='python of a Chainer 1.3.0 venv (default: the matrix cell %s)'
                   % GISTS['rev2'][1])
    p.add_argument('--matrix-cache', help='tools/matrix.py --cache-dir (default: its own default)')
    return p


#: a matrix venv on disk (measured: 113 MB for Chainer 7.8.1 + NumPy 2, 122 MB for 1.24.0 + NumPy 1)
VENV_MB = 120


def install_plan(root, cell, cache=None):
    """One line: the cell's venv is cached and reused, or what will be installed, where, and
    how big it is (tools/matrix.py's own recipe and cache, read before anything is built)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('_irnn_matrix', os.path.join(root, 'tools', 'matrix.py'))
    matrix = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(matrix)
    folder = os.path.join(cache or matrix.default_cache_dir(), cell)
    marker = os.path.join(folder, '.irnn-recipe')
    version = cell.split('-')[0]
    try:
        with open(marker) as f:
            if f.read().strip() == matrix.recipe_hash(cell):
                return 'using the Chainer %s venv built before (%s)' % (version, folder)
    except OSError:
        pass
    packages = [a for step in matrix.recipe(cell)['steps'] if step[0] == 'pip' for a in step[2]
                if not a.startswith('-')]
    return ('installing a venv for Chainer %s, once, into %s: %s with pip (about %d MB on disk, a minute '
            'or two; reused afterwards)' % (version, folder, ', '.join(packages), VENV_MB))


def _program_command(name, args, root):
    if name == 'library':
        return [sys.executable, '-m', 'irnn_chainer.commands.compare', 'library']
    script, cell = GISTS[name]
    py = getattr(args, 'python_' + name)
    if not py:
        if root is None:
            raise CompareError('%s runs examples/%s in a Chainer %s venv built by tools/matrix.py, '
                               'which need a source checkout; give --python-%s PATH instead'
                               % (name, script, cell.split('-')[0], name))
        cmd = [sys.executable, os.path.join(root, 'tools', 'matrix.py'), '--ensure', cell]
        if args.matrix_cache:
            cmd += ['--cache-dir', args.matrix_cache]
        print('compare: %s' % install_plan(root, cell, args.matrix_cache), flush=True)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise CompareError('building the %s venv failed: %s' % (
                cell, (p.stderr.decode(errors='replace').strip().splitlines() or ['?'])[-1]))
        py = p.stdout.decode().strip().splitlines()[-1]
    if root is None:
        raise CompareError('examples/%s is not here (no source checkout)' % script)
    return [py, os.path.join(root, 'examples', script)]


def rel_diff(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def compare_logs(logs, tolerance, per_program=None):
    """(max relative difference per program against the library, list of problems);
    ``per_program``: {name: tolerance} for programs that get their own."""
    per_program = per_program or {}
    ref = logs.get('library')
    diffs, problems = {}, []
    if ref is None:
        ref = logs[sorted(logs)[0]]
    for name, log in sorted(logs.items()):
        if log is ref:
            diffs[name] = 0.0
            continue
        if len(log['losses']) != len(ref['losses']):
            problems.append('%s ran %d iterations, %s %d' % (name, len(log['losses']), ref['program'],
                                                            len(ref['losses'])))
            diffs[name] = float('inf')
            continue
        vals = [(a, b) for a, b in zip(log['losses'], ref['losses'])]
        for ea, eb in zip(log['epochs'], ref['epochs']):
            vals += [(ea['test_loss'], eb['test_loss'])]
        d = max(rel_diff(a, b) for a, b in vals) if vals else 0.0
        diffs[name] = d
        tol = per_program.get(name, tolerance)
        if d > tol:
            problems.append('%s differs from %s by %.2e relative (tolerance %g)'
                            % (name, ref['program'], d, tol))
        if log['epochs'] and ref['epochs'] and \
                log['epochs'][-1]['test_accuracy'] != ref['epochs'][-1]['test_accuracy']:
            problems.append('%s final test accuracy %.4f != %s %.4f' % (
                name, log['epochs'][-1]['test_accuracy'], ref['program'], ref['epochs'][-1]['test_accuracy']))
    return diffs, problems


def write_outputs(logs, diffs, out, title, tolerance=1e-6, per_program=None):
    """compare.csv, compare.md and compare.png; ``per_program``: {name: tolerance} for the
    programs that have their own (rev1), drawn in the program's colour beside the others'."""
    per_program = per_program or {}
    names = [n for n in PROGRAMS if n in logs]
    n_iter = max(len(logs[n]['losses']) for n in names)
    csv_path = os.path.join(out, 'compare.csv')
    with open(csv_path, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['iteration'] + ['%s_loss' % n for n in names])
        for i in range(n_iter):
            w.writerow([i + 1] + ['%.9g' % logs[n]['losses'][i] if i < len(logs[n]['losses']) else ''
                                  for n in names])
    head = '| | ' + ' | '.join(names) + ' |'
    lines = ['# %s' % title, '', head, '|---' * (len(names) + 1) + '|']

    def row(label, fn):
        lines.append('| %s | %s |' % (label, ' | '.join(fn(logs[n], n) for n in names)))

    row('program', lambda l, n: {'library': 'irnn_chainer.model.rnn.IRNN', 'rev1': 'examples/gist_rev1.py',
                                 'rev2': 'examples/gist_rev2.py'}[n])
    row('Chainer', lambda l, n: l['chainer'])
    row('NumPy', lambda l, n: l['numpy'])
    row('time per iteration (median)', lambda l, n: '%.3f s' % np.median(l['seconds']) if l['seconds'] else '-')
    row('final test loss', lambda l, n: '%.9f' % l['epochs'][-1]['test_loss'] if l['epochs'] else '-')
    row('final test accuracy', lambda l, n: '%.4f' % l['epochs'][-1]['test_accuracy'] if l['epochs'] else '-')
    row('max rel. diff vs library', lambda l, n: '%.1e' % diffs.get(n, float('nan')))
    lines += ['', '| iteration | ' + ' | '.join('%s loss' % n for n in names) + ' |',
              '|---' * (len(names) + 1) + '|']
    for i in range(n_iter):
        lines.append('| %d | %s |' % (i + 1, ' | '.join(
            '%.9f' % logs[n]['losses'][i] if i < len(logs[n]['losses']) else '-' for n in names)))
    md_path = os.path.join(out, 'compare.md')
    with open(md_path, 'w') as f:
        f.write('\n'.join(lines) + '\n')

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True,
                                  gridspec_kw={'height_ratios': [3, 1.4]})
    styles = {'library': ('-', 'o', 9), 'rev1': ('--', 's', 6), 'rev2': (':', '^', 4)}
    for n in names:
        ls, marker, size = styles[n]
        ys = logs[n]['losses']
        ax.plot(range(1, len(ys) + 1), ys, ls, marker=marker, markersize=size, fillstyle='none',
                label='%s (Chainer %s, %.2f s/it)' % (n, logs[n]['chainer'], np.median(logs[n]['seconds'])))
        if n != 'library' and 'library' in logs:
            ref = logs['library']['losses']
            rel = [abs(a - b) / abs(b) for a, b in zip(ys, ref)]
            colour = ax.lines[-1].get_color()
            ax2.plot(range(1, len(rel) + 1), [max(r, 1e-12) for r in rel], ls, marker=marker,
                     markersize=size, fillstyle='none', color=colour, label=n)
            # each revision against its own tolerance, in its colour (rev1 sums in float64: 1e-4)
            tol = per_program.get(n, tolerance)
            ax2.axhline(tol, color=colour, lw=1.0, ls=ls, label='%s tolerance %g' % (n, tol))
    ax2.set_yscale('log')
    ax2.set_ylim(1e-12, 1e-3)
    ax2.set_ylabel('|loss - library|\n/ library (0 at 1e-12)', fontsize=8)
    ax2.legend(fontsize=7, ncol=3)
    ax2.set_xlabel('iteration (one mini-batch update)')
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel('training loss (mini-batch mean)')
    ax.set_title(textwrap.fill(title, 90), fontsize=9)
    ax.ticklabel_format(useOffset=False, axis='y')
    ax.legend(fontsize=8)
    fig.tight_layout()
    png_path = os.path.join(out, 'compare.png')
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return md_path, csv_path, png_path


def run(args):
    """``irnn-chainer compare``: returns the exit code (0 agree, 1 disagree)."""
    from irnn_chainer.data import mnist as data
    for name in ('iterations', 'train_limit', 'test_limit'):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise CompareError('--%s: expected a positive integer, got %d' % (name.replace('_', '-'), v))
    os.makedirs(args.out, exist_ok=True)
    root = repo_root()
    d = data.get_mnist(args.dataset, args.data_dir, train_limit=args.train_limit,
                       test_limit=args.test_limit)
    data_path = os.path.join(args.out, 'data.npz')
    np.savez(data_path, train_x=d.train_x, train_y=d.train_y, test_x=d.test_x, test_y=d.test_y)
    common = ['--seed', str(args.seed), '--data-npz', data_path, '--iterations', str(args.iterations),
              '--lr', repr(args.lr), '--init-std', repr(args.init_std), '--clip', repr(args.clip)]
    commands = dict((n, _program_command(n, args, root)) for n in args.programs)
    logs = {}
    for name in args.programs:
        log_path = os.path.join(args.out, '%s.json' % name)
        if os.path.exists(log_path):
            os.remove(log_path)
        cmd = commands[name] + common + ['--log-json', log_path]
        print('compare: running %s' % name, flush=True)
        env = dict(os.environ)
        if root:
            env['IRNN_CHAINER_ROOT'] = root
        t0 = time.time()
        with open(os.path.join(args.out, '%s.log' % name), 'w') as f:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
            text = p.stdout.decode(errors='replace')
            f.write(text)
        for line in text.splitlines():
            if line.startswith('epoch '):
                print('  %s: %s' % (name, line))
        if p.returncode != 0 or not os.path.exists(log_path):
            raise CompareError('%s failed (exit %d): %s; full output in %s' % (
                name, p.returncode, (text.strip().splitlines() or ['no output'])[-1],
                os.path.join(args.out, '%s.log' % name)))
        with open(log_path) as f:
            logs[name] = json.load(f)
        print('  %s: %d iterations in %.1f s' % (name, len(logs[name]['losses']), time.time() - t0))
    diffs, problems = compare_logs(logs, args.tolerance, {'rev1': args.tolerance_rev1})
    title = ('IRNN, seed %d, %d iterations at batch 16, lr %g, weights N(0, %g), clip %s, %s '
             '(%d train / %d test)' % (args.seed, args.iterations, args.lr, args.init_std,
                                       args.clip or 'off', d.source, len(d.train_x), len(d.test_x)))
    md, csv_path, png = write_outputs(logs, diffs, args.out, title, args.tolerance, {'rev1': args.tolerance_rev1})
    with open(md) as f:
        print(f.read())
    print('wrote %s, %s, %s' % (md, csv_path, png))
    if problems:
        for prob in problems:
            print('compare: DISAGREE: %s' % prob)
        return 1
    print('compare: all programs agree (max relative difference: %s; tolerance %g, rev1 %g)'
          % (', '.join('%s %.1e' % kv for kv in sorted(diffs.items()) if kv[0] != 'library'),
             args.tolerance, args.tolerance_rev1))
    return 0


def main(argv=None):
    """``python -m irnn_chainer.compare [library ARGS | ARGS]``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['library']:
        return run_library(argv[1:])
    p = add_arguments(argparse.ArgumentParser(prog='irnn-chainer compare'))
    args = p.parse_args(argv)
    try:
        return run(args)
    except CompareError as e:
        print('irnn-chainer: error: %s' % e, file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
