"""The real training loop: updates per second of `irnn-chainer train --preset fast` on the full
MNIST, and one whole epoch including the evaluation of the 10000 test images.

Runs the same code as the command line (train.train with the CLI's defaults, the progress
bar on, its output to /dev/null) with one extra extension that notes the time of every update;
nothing else changes. Two runs, each in a process of its own:

- `--iteration 2000` with `--log-interval 2000` (no evaluation inside): updates per second
  over iterations 100..2000 (median of the per-update times and the mean rate);
- `--epoch 1`: the wall time of the epoch from the first update to the end of its
  evaluation, log, plots and snapshot (Chainer's elapsed_time in the log).

Also the same updates with the kernel's work removed (the C kernel returns precomputed
arrays, the divergence guard off: the same gradient every update drives the weights away),
which is the cost of everything outside the kernel; the same updates through Chainer's
standard update (graph, backward, hooks and update rules: `--standard` forces it), the
reference the whole-update path replaces; and a breakdown of one update into its parts
(the kernel's forward and backward, the rest of the whole update, converter and iterator,
the Trainer's extensions), medians over the timed updates.

    python benchmarks/bench_loop.py [--data-dir DIR (default $IRNN_MNIST_DIR)] [--threads N]
    python benchmarks/bench_loop.py --breakdown-only      # the breakdown alone
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# IRNN_CHAINER_ROOT: measure the checkout there instead (e.g. the version before a change)
sys.path.insert(0, os.environ.get('IRNN_CHAINER_ROOT') or os.path.join(HERE, '..'))
DATA = os.environ.get('IRNN_MNIST_DIR')  # the four MNIST IDX files


def child(a):
    import numpy as np
    import irnn_chainer  # noqa: F401  (shims)
    import chainer
    from irnn_chainer import settings
    from irnn_chainer.run import train as train_mod
    from irnn_chainer.kernels import c_kernel
    try:
        from irnn_chainer.kernels import threads
    except ImportError:  # a version before the threaded kernels (for before/after runs)
        threads = None
    try:  # the thread counts as the command line sets them (NumPy's BLAS included)
        from irnn_chainer.commands import cli
    except ImportError:  # a version before the package by role
        cli = None
    if cli is not None and hasattr(cli, 'set_threads'):
        cli.set_threads(argparse.Namespace(threads=a.threads, communicator=None))
    elif a.threads and threads:
        threads.set_threads(a.threads)
    parts = {}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                parts.setdefault(name, []).append(time.perf_counter() - t0)
        return wrapper
    fused_update = None
    try:
        from irnn_chainer.run import fused_update
    except ImportError:  # a version before the whole-update path
        pass
    if a.standard and fused_update is not None:
        fused_update.why_not = lambda updater: 'forced by bench_loop --standard'
    if a.mode == 'breakdown':
        c_kernel.forward = timed('kernel forward', c_kernel.forward)
        c_kernel.backward = timed('kernel backward', c_kernel.backward)
        train_mod.convert = timed('converter', train_mod.convert)
        if fused_update is not None:
            fused_update.whole_update = timed('whole update', fused_update.whole_update)
            cls = fused_update.FusedUpdater
        else:
            cls = chainer.training.updaters.StandardUpdater
        cls.update_core = timed('update_core', cls.update_core)
    if a.stub:  # precomputed results: only the work outside the kernel remains
        cache = {}
        real_f, real_b = c_kernel.forward, c_kernel.backward

        def forward(ids, E, W, b, keep, activation='relu'):
            key = ('f', ids.shape, keep)
            if key not in cache:
                cache[key] = real_f(ids, E, W, b, keep, activation)
            hs, hT = cache[key]
            return hs, hT.copy()

        def backward(ids, hs, W, gT, gseq, n_vocab, activation='relu'):
            if 'b' not in cache:
                cache['b'] = real_b(ids, hs, W, gT, gseq, n_vocab, activation)
            return tuple(g.copy() for g in cache['b'])
        c_kernel.forward, c_kernel.backward = forward, backward
        c_kernel.release = lambda buf: None
    stamps = []

    class Stamp(chainer.training.Extension):
        trigger = (1, 'iteration')
        priority = chainer.training.PRIORITY_WRITER + 1  # first after the update

        def __call__(self, trainer):
            stamps.append(time.perf_counter())
    cli = {k: None for k in settings.DEFAULTS}
    cli.update(preset='fast', data_dir=a.data_dir, dataset='mnist')
    if a.stub:
        cli.update(on_divergence='ignore')
    if a.mode in ('updates', 'breakdown'):
        cli.update(iteration=a.updates, log_interval=a.updates)
    else:
        cli.update(epoch=1)
    out = tempfile.mkdtemp(prefix='bench-loop-')
    trainer_ref = [None]
    with open(os.devnull, 'w') as null:
        stdout = sys.stdout
        sys.stdout = null  # the progress bar and the table, as a user sees them, but not here
        try:
            trainer_ref[0] = train_mod.train(cli, out, force=True, progress=True, log=lambda *x: None,
                                             extra_extensions=[Stamp()], table_out=null)
        finally:
            sys.stdout = stdout
    d = np.diff(stamps)
    with open(os.path.join(out, 'log')) as f:
        log = json.load(f)
    res = {'threads': threads.get_threads() if threads else 1, 'n': len(stamps)}
    if fused_update is not None:
        res['path'] = 'standard' if getattr(trainer_ref[0].updater, 'fallback_reason', 'x') else 'whole'
    else:
        res['path'] = 'standard'
    if a.mode == 'breakdown':
        body = d[100:-1]
        res['parts'] = {k: float(np.median(v[100:-1]) * 1e3) for k, v in parts.items()}
        res['parts']['whole iteration'] = float(np.median(body) * 1e3)
    elif a.mode == 'updates':
        body = d[100:-1]  # after warm-up; the last one holds the evaluation
        res.update(median_ms=float(np.median(body) * 1e3), rate=float(len(body) / body.sum()))
    else:
        res.update(epoch_s=float(log[-1]['elapsed_time']),
                   updates_s=float(stamps[-1] - stamps[0]), accuracy=log[-1].get('validation/main/accuracy'))
    print(json.dumps(res))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data-dir', default=DATA, help='the four MNIST IDX files (default $IRNN_MNIST_DIR)')
    p.add_argument('--threads', type=int, help='kernel threads (default: the cores this process may use)')
    p.add_argument('--updates', type=int, default=2000, help='timed updates (default 2000)')
    p.add_argument('--skip-epoch', action='store_true', help='only the updates per second')
    p.add_argument('--breakdown-only', action='store_true', help='only the breakdown of an update')
    p.add_argument('--mode', choices=('updates', 'epoch', 'breakdown'), help=argparse.SUPPRESS)
    p.add_argument('--stub', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--standard', action='store_true', help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if not a.data_dir or not os.path.exists(os.path.join(a.data_dir, 'train-images-idx3-ubyte.gz')):
        p.error('--data-dir: expected the four MNIST IDX files in %s, got none' % a.data_dir)
    if a.mode:
        return child(a)
    env = dict(os.environ)
    env.pop('OPENBLAS_CORETYPE', None)
    env.pop('OPENBLAS_L2_SIZE', None)
    # (mode, stub, standard): each in a process of its own
    runs = [('breakdown', False, False)] if a.breakdown_only else (
        [('updates', False, False), ('updates', True, False), ('updates', False, True),
         ('breakdown', False, False)] + ([] if a.skip_epoch else [('epoch', False, False)]))
    results = {}
    for mode, stub, standard in runs:
        cmd = [sys.executable, os.path.abspath(__file__), '--mode', mode, '--data-dir', a.data_dir,
               '--updates', str(a.updates)] + (['--stub'] if stub else []) + \
              (['--standard'] if standard else []) + (['--threads', str(a.threads)] if a.threads else [])
        p_ = subprocess.run(cmd, env=env, capture_output=True, text=True)
        lines = [x for x in p_.stdout.splitlines() if x.startswith('{')]
        what = mode + (' (stub)' if stub else '') + (' (standard update)' if standard else '')
        if p_.returncode or not lines:
            print('%s failed: %s' % (what, (p_.stderr.strip().splitlines() or ['?'])[-1]))
            continue
        results[(mode, stub, standard)] = json.loads(lines[-1])
    print('irnn-chainer train --preset fast, full MNIST, batch 16 (OPENBLAS_CORETYPE and '
          'OPENBLAS_L2_SIZE unset)')
    r = results.get(('updates', False, False))
    if r:
        print('updates: %.1f per second (median %.2f ms per update, %d threads, iterations 100..%d, %s update)'
              % (r['rate'], r['median_ms'], r['threads'], a.updates, r.get('path', 'standard')))
    s = results.get(('updates', True, False))
    if s:
        print('outside the kernel (kernel stubbed): median %.2f ms per update' % s['median_ms'])
    c = results.get(('updates', False, True))
    if c:
        print("Chainer's standard update (graph, backward, hooks, update rules): %.1f per second "
              "(median %.2f ms per update)%s" % (c['rate'], c['median_ms'],
                                                 ', whole update %.2fx faster' % (c['median_ms'] / r['median_ms'])
                                                 if r else ''))
    k = results.get(('breakdown', False, False))
    if k:
        print('breakdown of an update (%s update; medians, ms):' % k.get('path', 'standard'))
        parts = k['parts']
        order = ['kernel forward', 'kernel backward', 'whole update', 'converter', 'update_core',
                 'whole iteration']
        for name in order:
            if name in parts:
                print('  %-16s %6.3f' % (name, parts[name]))
        if 'whole update' in parts and 'kernel forward' in parts:
            print('  %-16s %6.3f  (readout, loss, accuracy, backward outside the kernel, hooks, step)'
                  % ('of which not kernel', parts['whole update'] - parts['kernel forward'] - parts['kernel backward']))
        if 'update_core' in parts:
            print('  %-16s %6.3f  (Trainer, extensions, reporting, progress bar)'
                  % ('outside update_core', parts['whole iteration'] - parts['update_core']))
    e = results.get(('epoch', False, False))
    if e:
        print('one epoch: %.1f s including evaluation of the 10000 test images (updates %.1f s), '
              'test accuracy %.4f' % (e['epoch_s'], e['updates_s'], e['accuracy']))
    checks = []
    if r:
        checks.append(('>= 300 updates/s', r['rate'] >= 300, '%.0f' % r['rate']))
    if e:
        checks.append(('epoch <= 14 s', e['epoch_s'] <= 14, '%.1f s' % e['epoch_s']))
    if checks:
        print('targets: ' + '; '.join('%s: %s (%s)' % (c, 'met' if ok else 'MISSED', v) for c, ok, v in checks))


if __name__ == '__main__':
    main()
