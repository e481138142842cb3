"""Milliseconds per IRNN training update on a CUDA device, every variant side by side.

One update = forward + backward + clipped SGD step (lr 1e-8, global-norm clipping at 1,
softmax cross entropy on a 10-way readout of h_T), T = 784, H = 100, float32, random
pixel ids; at each batch size:

- ``stepwise-gpu``: the faithful Chainer graph (one EmbedID + Linear + ReLU per pixel) on CuPy;
- ``fused-xp-gpu``: the fused recurrence, NumPy kernel on CuPy arrays (``IRNN_FUSED_KERNEL=numpy``);
- ``fused-cuda``: the fused recurrence, CUDA kernel (``irnn_cuda.cu``);
- ``fused-cpu``: the fused recurrence on the CPU (the C kernel when built).

Medians over the timed updates after two warm-up updates (the device synchronised after
each). Each variant stops after ``--budget`` seconds of timed updates.

    python benchmarks/bench_gpu.py --batch 16 256 --json out.json
"""
import argparse
import json
import os
import statistics
import time

import numpy as np

import irnn_chainer  # noqa: F401  (compat shims first)
import chainer
import chainer.links as L

from irnn_chainer import kernels
from irnn_chainer.model import rnn as model_mod
from irnn_chainer.compat import api

VARIANTS = [  # name, impl, device, IRNN_FUSED_KERNEL
    ('stepwise-gpu', 'stepwise', '@cupy:0', 'auto'),
    ('fused-xp-gpu', 'fused', '@cupy:0', 'numpy'),
    ('fused-cuda', 'fused', '@cupy:0', 'auto'),
    ('fused-cpu', 'fused', '@numpy', 'auto'),
]


def measure(impl, device, kernel, B, repeat, budget, T=784):
    os.environ[kernels.ENV] = kernel
    dev = api.get_device(device)
    np.random.seed(0)
    model = L.Classifier(model_mod.build('irnn', n_units=100, impl=impl))
    api.to_device(model, dev)
    opt = api.setup_optimizer(chainer.optimizers.SGD(lr=1e-8), model)
    opt.add_hook(api.gradient_clipping(1.0))
    rng = np.random.default_rng(1)
    xp = dev.xp
    x = xp.asarray(rng.integers(0, 256, (B, T)).astype(np.int32))
    t = xp.asarray(rng.integers(0, 10, B).astype(np.int32))
    sync = (lambda: xp.cuda.Device().synchronize()) if xp is not np else (lambda: None)
    times = []
    spent = 0.0
    for i in range(repeat + 2):
        sync()
        t0 = time.perf_counter()
        loss = model(x, t)
        model.cleargrads()
        loss.backward()
        opt.update()
        sync()
        dt = time.perf_counter() - t0
        if i >= 2:
            times.append(dt)
            spent += dt
            if spent > budget:
                break
    name = kernels.get_kernel(xp).name if impl == 'fused' else impl
    return {'ms': 1000 * statistics.median(times), 'n': len(times), 'kernel': name}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batch', type=int, nargs='+', default=[16, 256])
    p.add_argument('--repeat', type=int, default=20)
    p.add_argument('--budget', type=float, default=8.0, help='seconds of timed updates per variant')
    p.add_argument('--json', help='write the rows here')
    args = p.parse_args()
    rows = []
    print('%-14s %6s %10s %6s  %s' % ('variant', 'batch', 'ms/update', 'n', 'kernel'))
    for B in args.batch:
        for name, impl, device, kernel in VARIANTS:
            try:
                r = measure(impl, device, kernel, B, args.repeat, args.budget)
            except Exception as e:  # noqa: BLE001  (a row that failed says why; the others go on)
                r = {'ms': None, 'n': 0, 'kernel': '-', 'error': '%s: %s' % (type(e).__name__, str(e).splitlines()[0])}
            r.update(variant=name, batch=B)
            rows.append(r)
            print('%-14s %6d %10s %6d  %s' % (name, B, '-' if r['ms'] is None else '%.2f' % r['ms'], r['n'],
                                              r.get('error', r['kernel'])), flush=True)
    if args.json:
        tmp = args.json + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(rows, f, indent=1)
        os.replace(tmp, args.json)
    return 1 if any(r['ms'] is None for r in rows) else 0


if __name__ == '__main__':
    raise SystemExit(main())
