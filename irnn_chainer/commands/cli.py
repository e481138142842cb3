"""The ``irnn-chainer`` command: train, evaluate, predict, info, report, sweep, compare.

Errors the user can fix (bad flags, data, devices, run folders) print one line
``irnn-chainer: error: ...`` and exit with code 2, never a traceback.
"""
import argparse
import math
import os
import sys

os.environ.setdefault('MPLBACKEND', 'Agg')  # plots are written to files; no display needed

import irnn_chainer  # noqa: E402  (applies the compat shims before Chainer is imported)


class Parser(argparse.ArgumentParser):
    """argparse with a flag error as one line plus one hint, not the whole usage block."""

    def error(self, message):
        sys.stderr.write('irnn-chainer: error: %s\nsee %s --help\n' % (message, self.prog))
        sys.exit(2)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('expected a positive integer, got %r' % text)
    if value < 1:
        raise argparse.ArgumentTypeError('expected a positive integer, got %r' % text)
    return value


def _typed(setting):
    """argparse's ``type`` for a declared setting: its parse, errors as one line."""
    def parse(text):
        try:
            value = setting.parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e))
        return os.path.abspath(value) if setting.kind == 'path' else value
    parse.__name__ = setting.kind  # argparse names the type in some messages
    return parse


def add_setting(p, setting, **extra):
    """One declared setting (settings.SETTINGS) as a flag. Run-defining flags default to
    None, "not given", so that --resume keeps the run's own and a preset fills them."""
    names = [setting.flag] + ([setting.short] if setting.short else [])
    kwargs = dict(help=setting.help + (' [--resume may change it]' if setting.resumable else ''),
                  default=None, dest=setting.name)
    if setting.kind == 'bool':
        kwargs['action'] = 'store_true'
    else:
        kwargs['type'] = _typed(setting)
        if setting.choices is not None:
            kwargs['choices'] = setting.choices
            kwargs['type'] = str
        if setting.metavar:
            kwargs['metavar'] = setting.metavar
    kwargs.update(extra)
    return p.add_argument(*names, **kwargs)


def add_train_arguments(p):
    """Every run setting, in its --help group, then the options of the command itself."""
    from irnn_chainer import settings
    groups = {name: p.add_argument_group(name) for name in settings.GROUPS}
    length = groups[settings.TRAINING].add_mutually_exclusive_group()
    device = groups[settings.DEVICE].add_mutually_exclusive_group()
    for s in settings.SETTINGS:
        where = length if s.name in ('epoch', 'iteration') else device if s.name == 'device' else groups[s.group]
        add_setting(where, s)
    device.add_argument('--gpu', '-g', type=int, help='GPU id (alias of --device @cupy:N; -1 = CPU)')
    add_threads_argument(groups[settings.DEVICE])
    g = p.add_argument_group('the run folder')
    g.add_argument('--out', '-o', help='output folder (default: result; with --resume: the run folder)')
    g.add_argument('--resume', '-r', help='continue a run: its folder or one of its snapshot files')
    g.add_argument('--force', action='store_true', help='start a new run in a folder that holds one '
                   '(removes that run\'s files, once the new run has been checked) or files that are not a run\'s')
    g.add_argument('--allow-changed-data', action='store_true',
                   help='resume although the data differ from the run\'s (config.json\'s sha256)')
    g.add_argument('--no-progress', action='store_true', help='no progress bar')


def add_threads_argument(p):
    p.add_argument('--threads', type=_positive_int, metavar='N',
                   help='threads of the C kernels, and at most N for the BLAS under NumPy (default: '
                        'env IRNN_THREADS, else the cores this process may use, BLAS uncapped; 1 '
                        'per process under --communicator); the kernels give the same results for any N')


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value >= 0:
        raise argparse.ArgumentTypeError('expected a number >= 0, got %r' % text)
    return value


def add_sweep_arguments(p):
    g = p.add_argument_group('sweep (docs/sweeps.md)')
    g.add_argument('--study', default='irnn', help='study name (default irnn); every worker of a '
                   'sweep uses the same')
    g.add_argument('--trials', type=_positive_int, default=20,
                   help='finished (complete or pruned) trials the study should hold (default 20)')
    g.add_argument('--storage', help='Optuna storage URL (default sqlite:///OUT/optuna.db); '
                   'postgresql://user:password@host:5432/db for workers on several machines')
    g.add_argument('--space', metavar='FILE', help='search space, JSON (default: lr log 1e-5..1e-3, '
                   'clip 0.5..5, optimizer rmsprop/adam; see examples/sweep_space.json)')
    g.add_argument('--heartbeat', type=_positive_int, default=60, metavar='S',
                   help='seconds between a worker\'s heartbeats; a trial silent for 2 x S is taken '
                        'as dead, marked failed and queued again (default 60)')
    g.add_argument('--pruner-startup', type=int, default=5, metavar='N',
                   help='finished trials before the median pruner prunes anything (default 5)')
    g.add_argument('--prune-after', type=_positive_float, default=1.0, metavar='EPOCHS',
                   help='never prune a trial before this many epochs (default 1)')
    g.add_argument('--summary', action='store_true',
                   help='print the best trials and write OUT/sweep.png; runs no trial')
    g.add_argument('--top', type=_positive_int, default=5, help='trials --summary prints (default 5)')
    add_train_arguments(p)
    p.set_defaults(out='sweep')


# evaluate's and predict's RUN: a folder, or one of its weight files (weights.split_run)
RUN_HELP = ('run folder written by irnn-chainer train (or one of its snapshots, its model.npz or its '
            'model_ema.npz)')


def build_parser():
    parser = Parser(
        prog='irnn-chainer',
        description="IRNN (Le, Jaitly & Hinton 2015) on pixel-by-pixel MNIST, in Chainer")
    parser.add_argument('--version', action='version', version='irnn-chainer %s' % irnn_chainer.__version__,
                        help='print the version and exit')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', parser_class=Parser)
    sub.required = True
    p = sub.add_parser('train', help='train an IRNN (log, plots and snapshots in --out)')
    add_train_arguments(p)
    p = sub.add_parser('evaluate', help='test loss and accuracy of a saved run')
    p.add_argument('run', help=RUN_HELP)
    p.add_argument('--allow-changed-data', action='store_true',
                   help='evaluate although the data differ from the run\'s (config.json\'s sha256)')
    p.add_argument('--data-dir', help='folder with the MNIST IDX files, if not the run\'s own')
    p.add_argument('--dataset', choices=('auto', 'mnist', 'embedded'),
                   help="where the test images come from, if not the run's own source (see train --dataset)")
    p.add_argument('--batchsize', '-b', type=_positive_int, default=1000,
                   help='sequences per evaluation batch (default 1000)')
    dev = p.add_mutually_exclusive_group()
    dev.add_argument('--device', '-d', help="Chainer device spec (default: the run's), e.g. '@numpy', '@cupy:0'")
    dev.add_argument('--gpu', '-g', type=int, help='GPU id (alias of --device @cupy:N; -1 = CPU)')
    add_threads_argument(p)
    p = sub.add_parser('predict', help='apply a trained run to new inputs: one CSV row per sequence')
    p.add_argument('run', help=RUN_HELP)
    p.add_argument('inputs', nargs='+', metavar='INPUT',
                   help='pixel-MNIST runs: 28x28 grayscale PNG/JPEG images (RGB/RGBA with equal channels, '
                        'as matplotlib saves grey, count as grayscale), IDX image files, .npy (N, 784) uint8; '
                        'own-data runs: .npz/.csv in the training format, labels optional. Every input is '
                        'checked first: one bad file refuses the whole batch and nothing is written')
    p.add_argument('--out', '-o', help='CSV file to write (default: standard output)')
    p.add_argument('--force', action='store_true', help='replace the -o file if it exists')
    p.add_argument('--invert', action='store_true',
                   help='the images are dark digits on a light background: use 255 - pixel')
    p.add_argument('--batchsize', '-b', type=_positive_int, default=1000,
                   help='sequences per batch (default 1000)')
    dev = p.add_mutually_exclusive_group()
    dev.add_argument('--device', '-d', help="Chainer device spec (default: the run's)")
    dev.add_argument('--gpu', '-g', type=int, help='GPU id (alias of --device @cupy:N; -1 = CPU)')
    add_threads_argument(p)
    p.add_argument('--no-progress', action='store_true', help='no progress line on stderr')
    sub.add_parser('info', help='versions, compat shims applied, CUDA and kernel availability')
    p = sub.add_parser('report', help='Markdown report and plots comparing runs with the paper')
    p.add_argument('runs', nargs='+', help='run folders written by irnn-chainer train, or folders of them '
                   '(e.g. results/*); anything else is skipped with one line')
    p.add_argument('--out', '-o', default='report', help='folder for report.md and the plots')
    p = sub.add_parser('sweep', help='hyperparameter sweep with Optuna (SQLite here, PostgreSQL '
                                     'across machines); training flags stay fixed for every trial')
    add_sweep_arguments(p)
    from irnn_chainer.commands import compare
    compare.add_arguments(sub.add_parser(
        'compare', help='the library vs the 2015 gist revisions (Chainer 1.0.1, 1.3.0): '
                        'same seed and data, per-iteration losses side by side'))
    return parser


def flags_reference():
    """docs/flags.md: every sub-command's flags by --help group, from the parser itself (so
    from settings.SETTINGS); tools/flags_doc.py writes it and a test keeps it current."""
    parser = build_parser()
    lines = ['# Flags', '', 'Every flag of every `irnn-chainer` command, as `--help` gives them. Generated from '
             'the declarations in `irnn_chainer/settings.py` and `irnn_chainer/commands/cli.py` by '
             '`python tools/flags_doc.py`; do not edit by hand.', '']
    commands = parser._subparsers._group_actions[0]
    for action in commands._choices_actions:
        sub = commands.choices[action.dest]
        lines += ['## irnn-chainer %s' % action.dest, '', action.help + '.', '']
        for group in sub._action_groups:
            rows = [a for a in group._group_actions if a.help is not argparse.SUPPRESS and a.dest != 'help']
            if not rows:
                continue
            title = group.title if group.title not in ('options', 'optional arguments') else 'options'
            lines += ['### %s' % title, '', '| flag | |', '|---|---|']
            for a in rows:
                names = ', '.join('`%s`' % n for n in a.option_strings) or '`%s`' % (a.metavar or a.dest)
                if a.choices is not None:
                    names += ' {%s}' % ', '.join(str(c) for c in a.choices)
                elif a.nargs != 0 and a.option_strings:
                    names += ' %s' % (a.metavar or a.dest.upper())
                lines.append('| %s | %s |' % (names, (a.help or '').replace('|', '\\|')))
            lines.append('')
    return '\n'.join(lines)


def cmd_train(args):
    from irnn_chainer import settings
    from irnn_chainer.run import train as train_mod
    from irnn_chainer.compat import api
    cli = {k: getattr(args, k, None) for k in settings.DEFAULTS}
    cli['device'] = api.device_spec(args.device, args.gpu) if (args.device or args.gpu is not None) else None
    trainer = train_mod.train(cli, args.out, resume=args.resume, force=args.force,
                              progress=not args.no_progress, allow_changed_data=args.allow_changed_data)
    # Ctrl-C: the snapshot is saved; exit 130 (128 + SIGINT) so that `train && evaluate` and
    # job schedulers see the run did not finish
    status = 130 if trainer.stop_trigger.interrupted else 0
    try:
        log = trainer.get_extension('LogReport').log
    except ValueError:  # ranks other than 0 of a data-parallel run keep no log
        return status
    if log:
        last = log[-1]
        if 'validation/main/baseline' in last:  # regression (model.Regressor)
            print('final: epoch %s, iteration %s, test MSE %.4f (constant-prediction baseline %.4f) -> %s'
                  % (last['epoch'], last['iteration'], last.get('validation/main/loss', float('nan')),
                     last['validation/main/baseline'], trainer.out))
        else:
            labels = train_mod.column_labels(trainer.run_cfg)  # 'test', or 'validation' under --validation
            print('final: epoch %s, iteration %s, %s %.4f, %s %.4f -> %s'
                  % (last['epoch'], last['iteration'], labels['validation/main/accuracy'],
                     last.get('validation/main/accuracy', float('nan')), labels['validation/main/loss'],
                     last.get('validation/main/loss', float('nan')), trainer.out))
    return status


def cmd_evaluate(args):
    from irnn_chainer.commands import evaluate
    from irnn_chainer.compat import api
    device = api.device_spec(args.device, args.gpu) if (args.device or args.gpu is not None) else None
    r = evaluate.evaluate(args.run, data_dir=args.data_dir, dataset=args.dataset,
                          batchsize=args.batchsize, device=device,
                          allow_changed_data=args.allow_changed_data)
    if 'baseline' in r:  # regression (model.Regressor)
        print('test MSE %.4f (constant-prediction baseline %.4f) on %d sequences (%s, %.1f s)'
              % (r['loss'], r['baseline'], r['n'], r['model'], r['seconds']))
    else:
        print('test accuracy %.4f, test loss %.4f on %d images (%s, %.1f s)'
              % (r['accuracy'], r['loss'], r['n'], r['model'], r['seconds']))
    return 0


def cmd_predict(args):
    from irnn_chainer.commands import predict
    from irnn_chainer.compat import api
    device = api.device_spec(args.device, args.gpu) if (args.device or args.gpu is not None) else None
    summary = predict.predict_files(args.run, args.inputs, out=args.out, force=args.force,
                                    batchsize=args.batchsize, device=device, invert=args.invert,
                                    progress=not args.no_progress)
    sys.stderr.write(summary + '\n')
    return 0


def cmd_sweep(args):
    from irnn_chainer import settings
    from irnn_chainer.commands import sweep
    from irnn_chainer.compat import api
    if args.resume or args.force:
        raise sweep.SweepError('--%s does not apply to a sweep: run the same sweep command again to '
                               'continue a study' % ('resume' if args.resume else 'force'))
    if args.communicator:
        raise sweep.SweepError('--communicator does not apply to a sweep: run more sweep workers '
                               'instead (each trial is one process)')
    if args.summary:
        sweep.summary(args.study, args.storage, args.out, top=args.top)
        return 0
    cli = {k: getattr(args, k, None) for k in settings.DEFAULTS}
    cli['device'] = api.device_spec(args.device, args.gpu) if (args.device or args.gpu is not None) else None
    sweep.run_worker(cli, args.out, args.study, args.trials, storage_url=args.storage,
                     space=sweep.load_space(args.space), heartbeat=args.heartbeat,
                     pruner_startup=args.pruner_startup, prune_after=args.prune_after)
    return 0


def cmd_info(args):
    from irnn_chainer.compat import api, shims
    for key, value in api.versions().items():
        print('%-8s %s' % (key, value))
    print('shims    %s' % ('none' if not shims.APPLIED else ''))
    for name, why in shims.APPLIED:
        print('  - %s: %s' % (name, why))
    ok, why = api.cuda_status()
    print('cuda     %s' % (('usable: ' if ok else 'not usable: ') + why))
    for name, value in api.cuda_details():
        print('  - %s: %s' % (name, value))
    from irnn_chainer.model import rnn as model
    print('models   fused path: %s; stepwise only: %s' % (
        ', '.join(m for m, v in model.MODELS.items() if v[2]),
        ', '.join(m for m, v in model.MODELS.items() if not v[2]) or 'none'))
    try:
        from irnn_chainer import kernels
        print('fused    CPU kernel: %s' % kernels.backend_description())
        print('         GPU kernel: %s' % kernels.gpu_description())
    except ImportError as e:
        print('fused    not available (%s)' % e)
    from irnn_chainer.kernels import threads
    print('threads  %s' % threads.describe())
    return 0


def set_threads(args):
    """--threads, IRNN_THREADS, or one thread per process of a data-parallel run (MPI ranks
    on one machine would otherwise each start a thread per core); ValueError for a bad one."""
    from irnn_chainer.kernels import threads
    n = getattr(args, 'threads', None)
    if n is None and getattr(args, 'communicator', None) and not os.environ.get(threads.ENV, '').strip():
        n = 1
    threads.set_threads(n)
    chosen = threads.get_threads()  # a bad IRNN_THREADS is refused here, before any work
    explicit = n is not None or os.environ.get(threads.ENV, '').strip()
    cap = threads.blas_cap(chosen if explicit else None, _c_kernel_runs())
    if cap:
        threads.limit_blas(cap)  # else OpenBLAS takes every core beside the kernels' threads


def _c_kernel_runs():
    """Whether the fused path's CPU kernel is the compiled one (IRNN_FUSED_KERNEL honoured)."""
    try:
        from irnn_chainer import kernels
        return kernels.cpu_kernel() is kernels.c_kernel
    except (ImportError, RuntimeError, ValueError):  # not built, or a bad IRNN_FUSED_KERNEL
        return False


def cmd_report(args):
    from irnn_chainer.commands import report
    runs = report.collect_runs(args.runs, log=lambda line: sys.stderr.write(line + '\n'))
    path, rows = report.write_report(runs, args.out, command='irnn-chainer report %s -o %s' % (
        ' '.join(args.runs), args.out))
    for r in rows:
        print('%-24s %-9s %-8s best %s  (%s epochs, %s iterations)' % (
            r['name'], r['model'], r['task'], '-' if r['best'] is None else '%.2f %%' % r['best'],
            r['epochs'], r['iterations']))
    print('report: %s' % path)
    return 0


def main(argv=None):
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the hint names the sub-command's --help, not the top level's
        parser._subparsers._group_actions[0].choices[args.command].error(
            'unrecognized arguments: %s' % ' '.join(extra))
    from irnn_chainer.commands import compare
    from irnn_chainer import files
    from irnn_chainer.commands import report
    from irnn_chainer.commands import sweep
    from irnn_chainer.compat import api
    from irnn_chainer.errors import DataError, TrainingDiverged, UsageError
    try:
        set_threads(args)
    except ValueError as e:  # IRNN_THREADS not a positive integer
        sys.stderr.write('irnn-chainer: error: %s\n' % e)
        return 2
    try:
        return {'train': cmd_train, 'evaluate': cmd_evaluate, 'predict': cmd_predict, 'info': cmd_info,
                'report': cmd_report,
                'sweep': cmd_sweep, 'compare': compare.run}[args.command](args)
    except (DataError, UsageError, TrainingDiverged, api.DeviceError, report.ReportError,
            compare.CompareError, sweep.SweepError, files.FileError) as e:
        sys.stderr.write('irnn-chainer: error: %s\n' % str(e).strip().splitlines()[0])
        return 2
    except OSError as e:  # the one place an OSError (disk full, read-only, ...) becomes one line
        sys.stderr.write('irnn-chainer: error: %s\n' % files.os_error(e))
        return 2


if __name__ == '__main__':
    sys.exit(main())
