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


def _finite_float(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        raise argparse.ArgumentTypeError('expected a finite number, got %r' % text)
    return value


def _non_negative_float(text):
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError('expected a number >= 0, got %r' % text)
    return value


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError('expected an integer in 0 .. 2**32 - 1 (4294967295), got %r' % text)
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('expected a positive integer, got %r' % text)
    if value < 1:
        raise argparse.ArgumentTypeError('expected a positive integer, got %r' % text)
    return value


def add_train_arguments(p):
    # Run-defining flags default to None: "not given", so --resume can keep the run's own.
    p.add_argument('--model', choices=('irnn', 'rnn-relu', 'rnn-tanh', 'lstm'),
                   help='irnn (default); rnn-relu / rnn-tanh: N(0, init-std) recurrent matrix; '
                        'lstm: Chainer\'s LSTM, forget-gate bias 1')
    p.add_argument('--optimizer', choices=('sgd', 'momentum', 'rmsprop', 'adam'),
                   help='default sgd, as the paper')
    p.add_argument('--preset', choices=('blog', 'paper', 'keras', 'fast'),
                   help='fill every hyperparameter from a named setting (see README); '
                        'flags given explicitly override it')
    p.add_argument('--batchsize', '-b', type=_positive_int, help='mini-batch size (default 16, as the gist)')
    length = p.add_mutually_exclusive_group()
    length.add_argument('--epoch', '-e', type=_positive_int, help='epochs to train (default 1)')
    length.add_argument('--iteration', type=_positive_int, help='updates to train, instead of --epoch')
    p.add_argument('--lr', type=_finite_float, help='SGD learning rate (default 1e-8, as the paper)')
    p.add_argument('--lr-decay', type=_finite_float, help='multiply the learning rate by this factor every '
                   '--lr-decay-every epochs (default: no decay)')
    p.add_argument('--lr-decay-every', type=_positive_int, help='epochs between decays (default 10)')
    p.add_argument('--lr-schedule', choices=('constant', 'step', 'cosine', 'plateau'),
                   help='constant (default), step (--lr-decay every --lr-decay-every epochs; the default '
                   'when --lr-decay is given), cosine (to --lr-min over the planned updates) or plateau '
                   '(x --lr-decay, default 0.5, after --lr-patience epochs without a better training accuracy)')
    p.add_argument('--lr-min', type=_non_negative_float, help='the cosine schedule\'s last rate (default 0)')
    p.add_argument('--lr-patience', type=_positive_int, help='plateau: epochs without a new best (default 3)')
    p.add_argument('--h0-noise', type=_non_negative_float, metavar='SIGMA',
                   help='Gaussian noise of std SIGMA on h_0 while training (default 0; evaluation starts '
                   'from h_0 = 0); irnn, rnn-relu, rnn-tanh')
    p.add_argument('--identity-decay', type=_non_negative_float, metavar='LAMBDA',
                   help='after each update pull the recurrent matrix toward its identity start: '
                   'W -= lr * LAMBDA * (W - I) (default 0: off); irnn')
    p.add_argument('--dropout', type=_non_negative_float, metavar='P',
                   help='while training, zero each unit of the last hidden state h_T with probability P '
                   '(the rest x 1/(1-P)) before the classifier reads it (default 0: off)')
    p.add_argument('--input-dropout', type=_non_negative_float, metavar='P',
                   help='while training, set each input pixel to 0 (black) with probability P (default 0: '
                   'off); MNIST only')
    p.add_argument('--ema', type=_non_negative_float, metavar='DECAY',
                   help='also evaluate a moving average of the weights (e.g. 0.999; default 0: off), '
                   'logged as ema/main/*, saved as model_ema.npz')
    p.add_argument('--on-divergence', choices=('rollback', 'stop', 'ignore'),
                   help='when an epoch diverges (most updates non-finite, a non-finite test loss, or a loss above '
                   '20x that of guessing): rollback (default: back to the last good snapshot at the rate x '
                   '--rollback-factor), stop (one line, snapshot kept) or ignore')
    p.add_argument('--rollback-factor', type=_finite_float, help='rate factor per rollback (default 0.5)')
    p.add_argument('--max-rollbacks', type=int, help='rollbacks in a run before it stops (default 3)')
    p.add_argument('--clip', type=_non_negative_float, help='gradient clipping, global L2 norm (default 1.0; 0 = off)')
    p.add_argument('--unit', '-u', type=_positive_int, help='hidden units (default 100)')
    p.add_argument('--init-std', type=_non_negative_float, help='std of the N(0, s) input/output weights (default 0.001)')
    p.add_argument('--seed', type=_seed, help='seed for initial weights, shuffling and --permute (default 0)')
    p.add_argument('--permute', action='store_true', default=None,
                   help='permuted pixel MNIST: one fixed random permutation of the 784 pixels')
    p.add_argument('--dataset', choices=('auto', 'mnist', 'embedded', 'adding'),
                   help='auto (default): full MNIST if found or downloadable, else the embedded '
                        'subset (20000 training, 2000 test images); mnist: full MNIST or fail; embedded: the subset; '
                        'adding: the adding problem (--length T)')
    p.add_argument('--data-dir', help='folder with the four MNIST IDX files (or env IRNN_MNIST_DIR)')
    p.add_argument('--dtype', choices=('float32', 'float64'),
                   help='parameter dtype (default float32; lr 1e-8 cannot move the identity '
                        'diagonal in float32)')
    p.add_argument('--train-limit', type=_positive_int, help='use only the first N training images')
    p.add_argument('--test-limit', type=_positive_int, help='use only the first N test images')
    p.add_argument('--validation', type=_positive_int, metavar='N',
                   help='hold out the last N of the training images and evaluate on them instead of '
                        'the test set (to choose settings without looking at the test set)')
    p.add_argument('--impl', choices=('auto', 'stepwise', 'fused'),
                   help='stepwise: one node per pixel, as the gist; fused: the whole recurrence as '
                        'one FunctionNode; auto (default): fused where it covers the model')
    p.add_argument('--eval-batchsize', type=_positive_int, help='batch size for evaluation (default 1000)')
    p.add_argument('--skip-nonfinite', action='store_true', default=None,
                   help='zero the update when the gradient has inf/NaN (the fast preset does; '
                        'the paper\'s plain SGD does not)')
    p.add_argument('--log-interval', type=_positive_int,
                   help='evaluate, log, plot and snapshot every N iterations (default: every epoch)')
    dev = p.add_mutually_exclusive_group()
    dev.add_argument('--device', '-d', help="Chainer device spec: '@numpy' (default), '@cupy:0', ...")
    dev.add_argument('--gpu', '-g', type=int, help='GPU id (alias of --device @cupy:N; -1 = CPU)')
    p.add_argument('--init-from', metavar='RUN', type=os.path.abspath,
                   help='start from the weights of another run (its folder, a snapshot or '
                        'model.npz) with this run\'s settings and a fresh optimizer')
    p.add_argument('--communicator', metavar='NAME',
                   help='data-parallel training with ChainerMN under mpiexec -n N: naive (the CPU '
                        'communicator); --batchsize is per process (README)')
    add_threads_argument(p)
    p.add_argument('--out', '-o', help='output folder (default: result; with --resume: the run folder)')
    p.add_argument('--resume', '-r', help='continue a run: its folder or one of its snapshot files')
    p.add_argument('--force', action='store_true', help='start a new run in a folder that holds one '
                   '(removes that run\'s files) or files that are not a run\'s')
    p.add_argument('--allow-changed-data', action='store_true',
                   help='resume although the data differ from the run\'s (config.json\'s sha256)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    add_sequence_arguments(p)


def add_threads_argument(p):
    p.add_argument('--threads', type=_positive_int, metavar='N',
                   help='threads of the C kernels, and at most N for the BLAS under NumPy (default: '
                        'env IRNN_THREADS, else the cores this process may use, BLAS uncapped; 1 '
                        'per process under --communicator); the kernels give the same results for any N')


def _layers(text):
    from irnn_chainer import settings
    try:
        return settings.parse_layers(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < 1:
        raise argparse.ArgumentTypeError('expected a fraction between 0 and 1, got %r' % text)
    return value


def add_sequence_arguments(p):
    """Own data, stacked layers, the adding problem (irnn_chainer/data/sequences.py; docs/own-data.md)."""
    g = p.add_argument_group('your own sequences (docs/own-data.md)')
    g.add_argument('--data', type=os.path.abspath, metavar='FILE',
                   help='train on FILE instead of MNIST: .npz with x, y (optional x_test, y_test) '
                        'or a long-format .csv (seq, t, features..., label)')
    g.add_argument('--input', choices=('ids', 'real'),
                   help='ids: integer ids (N, T) through an EmbedID; real: float features (N, T, D) '
                        'through a Linear; default: from the dtype of x')
    g.add_argument('--task', choices=('classification', 'regression'),
                   help='classification (softmax, classes 0..K-1 from the labels) or regression '
                        '(MSE); default: from the dtype of y')
    g.add_argument('--test-split', type=_fraction, metavar='F',
                   help='hold out a seeded fraction F as the test set (stratified by class) when '
                        'the file has no x_test, y_test')
    g.add_argument('--layers', type=_layers, metavar='N1,N2,..',
                   help='stacked IRNN layers, e.g. 100,50 (instead of --unit); each layer\'s '
                        'recurrent matrix starts as (--identity-scale) x identity')
    g.add_argument('--identity-scale', type=_finite_float, metavar='S',
                   help='recurrent matrices start as S x I (default 1; the paper used 0.01 for speech)')
    g.add_argument('--input-bias', action='store_true', default=None,
                   help='give the real-valued input projection a bias (off by default, as the paper)')
    g.add_argument('--length', type=_positive_int, metavar='T',
                   help='sequence length of --dataset adding (default 150)')


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value >= 0:
        raise argparse.ArgumentTypeError('expected a number >= 0, got %r' % text)
    return value


def add_sweep_arguments(p):
    g = p.add_argument_group('sweep (irnn_chainer/commands/sweep.py; README, "Sweeps")')
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
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', parser_class=Parser)
    sub.required = True
    p = sub.add_parser('train', help='train an IRNN (log, plots and snapshots in --out)')
    add_train_arguments(p)
    p = sub.add_parser('evaluate', help='test loss and accuracy of a saved run')
    p.add_argument('run', help=RUN_HELP)
    p.add_argument('--allow-changed-data', action='store_true',
                   help='evaluate although the data differ from the run\'s (config.json\'s sha256)')
    p.add_argument('--data-dir', help='folder with the MNIST IDX files, if not the run\'s own')
    p.add_argument('--dataset', choices=('auto', 'mnist', 'embedded'))
    p.add_argument('--batchsize', '-b', type=_positive_int, default=1000)
    dev = p.add_mutually_exclusive_group()
    dev.add_argument('--device', '-d')
    dev.add_argument('--gpu', '-g', type=int)
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
    p.add_argument('--batchsize', '-b', type=_positive_int, default=1000)
    dev = p.add_mutually_exclusive_group()
    dev.add_argument('--device', '-d', help="Chainer device spec (default: the run's)")
    dev.add_argument('--gpu', '-g', type=int)
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
    if n is not None or os.environ.get(threads.ENV, '').strip():
        threads.limit_blas(chosen)  # else OpenBLAS takes every core beside the kernels' threads


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
