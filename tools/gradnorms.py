#!/usr/bin/env python3
"""A trained run's gradient norms on its own training batches, against its clip threshold.

Why a run's loss spikes, measured: for --batches random training batches of the run's size
(the run's data, permutation included, in training mode, so h_0 noise too), the global
gradient norm (median, 10th/90th percentile, range), how many batches the run's --clip would
rescale and by how much, each parameter's own gradient norm, and for each recurrent matrix
(h_to_h, h1_to_h1, ...) its spectral radius and mean diagonal.

    python tools/gradnorms.py results/ablations/recipe-irnn-pixel-2 --data-dir DIR

RUN is a run folder (its newest weights) or a snapshot file in one.
"""
import argparse
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import irnn_chainer  # noqa: E402,F401  (compat shims first)
import chainer  # noqa: E402

from irnn_chainer import files  # noqa: E402
from irnn_chainer.data import sources
from irnn_chainer.model import weights
from irnn_chainer.errors import DataError, UsageError  # noqa: E402
from irnn_chainer.run.train import convert  # noqa: E402

RECURRENT = re.compile(r'/(h\d*)_to_\1/W$')


def measure(run, data_dir=None, batches=40, seed=1, log=print):
    """{'norms': global norm per batch, 'params': {name: norms}, 'recurrent': {name: (radius,
    diagonal mean)}, 'clip': the run's threshold or None, 'nonfinite': how many batches had an
    inf or NaN gradient}; prints a summary with ``log``."""
    cfg, model, path = weights.load_run_model(run)
    run_dir = weights.split_run(run)[0]
    if data_dir is not None:
        cfg['data_dir'] = data_dir
    data = sources.load(cfg, run_dir, log=lambda line: None)
    rng = np.random.RandomState(seed)
    b = cfg['batchsize']
    norms, params = [], {}
    for _ in range(batches):
        x, t = convert([data.train[int(i)] for i in rng.choice(len(data.train), b, replace=False)])
        model.cleargrads()
        # an overflow is counted below, not warned about once per operation
        with chainer.using_config('train', True), np.errstate(over='ignore', invalid='ignore'):
            loss = model(x, t)
            loss.backward()
        total = 0.0
        for name, p in model.namedparams():
            if p.grad is None:
                continue
            sq = float(np.square(np.asarray(p.grad, np.float64)).sum())
            params.setdefault(name, []).append(np.sqrt(sq))
            total += sq
        norms.append(np.sqrt(total))
    norms = np.array(norms)
    clip = cfg.get('clip') or None
    ok = np.isfinite(norms)  # an overflowing forward pass gives inf / NaN (--skip-nonfinite skips them)
    log('%s (%s): %d training batches of %d, seed %d' % (run, path, batches, b, seed))
    if not ok.all():
        log('%d of %d batches have a non-finite gradient (the figures below are of the other %d)'
            % ((~ok).sum(), len(norms), ok.sum()))
    if ok.any():
        fin = norms[ok]
        log('global gradient norm: median %.3g, 10-90 %% %.3g .. %.3g, range %.3g .. %.3g'
            % (np.median(fin), np.percentile(fin, 10), np.percentile(fin, 90), fin.min(), fin.max()))
        if clip:
            log('clip %g rescales %d of %d batches (median factor %.3g)'
                % (clip, (fin > clip).sum(), len(fin), np.median(np.minimum(1.0, clip / fin))))
        else:
            log('no clipping in this run')
        for name in sorted(params):
            v = np.array(params[name])[ok]
            log('  %-28s median %.3g, max %.3g' % (name, np.median(v), v.max()))
    recurrent = {}
    for name, p in sorted(model.namedparams()):
        if RECURRENT.search(name) and p.ndim == 2 and p.shape[0] == p.shape[1]:
            w = np.asarray(p.array, np.float64)
            recurrent[name] = (float(np.abs(np.linalg.eigvals(w)).max()), float(np.diag(w).mean()))
            log('  %-28s spectral radius %.4f, diagonal mean %.4f' % ((name,) + recurrent[name]))
    return {'norms': norms, 'params': params, 'recurrent': recurrent, 'clip': clip,
            'nonfinite': int((~ok).sum())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('run', metavar='RUN', help='a run folder or a snapshot file in one')
    p.add_argument('--data-dir', help="the MNIST folder (default: the run's)")
    p.add_argument('--batches', type=int, default=40, help='training batches to measure (default 40)')
    p.add_argument('--seed', type=int, default=1, help='which batches (default 1)')
    a = p.parse_args(argv)
    if a.batches < 1:
        p.error('--batches: expected a positive integer, got %d' % a.batches)
    try:
        measure(a.run, a.data_dir, a.batches, a.seed)
    except (UsageError, DataError, files.FileError) as e:
        sys.exit('gradnorms.py: error: %s' % e)


if __name__ == '__main__':
    main()
