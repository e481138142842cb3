"""Milliseconds per IRNN training update on a CUDA device, every variant side by side.

One update = forward + backward + clipped SGD step (lr 1e-8, global-norm clipping at 1,
softmax cross entropy on a 10-way readout of h_T), T = 784, H = 100, float32, random
pixel ids; at each batch size:

- ``stepwise-gpu``: the faithful Chainer graph (one EmbedID + Linear + ReLU per pixel) on CuPy;
- ``fused-xp-gpu``: the fused recurrence, NumPy kernel on CuPy arrays (``IRNN_FUSED_KERNEL=numpy``);
- ``fused-cuda``: the fused recurrence, CUDA kernel (``irnn_cuda.cu``);
- ``fused-cpu``: the fused recurrence on the CPU (the C kernel when built);
- ``whole-cuda``: the whole update in three launches (``irnn_whole.cu``, ``cuda.WholeUpdate``:
  4 threads per unit), the training set on the device, nothing read back;
  ``whole-cuda-split8``: the same with 8 threads per unit; ``whole-cuda-2pb``: with
  registers capped for two blocks per SM;
- peers, the same model and update (embedding of the pixel id, ReLU recurrence, 10-way
  readout, softmax cross entropy, global-norm clipping, SGD), float32:
  ``torch-cudnn``: PyTorch ``nn.Embedding`` + ``nn.RNN(nonlinearity='relu')`` (cuDNN) +
  ``nn.Linear``, ``clip_grad_norm_``, ``torch.optim.SGD``; ``jax-scan``: a jitted update
  with ``lax.scan`` over the steps.

Chainer variants: medians over the timed updates after two warm-up updates (the device
synchronised after each, host time). ``whole-cuda`` and ``torch-cudnn``: CUDA events
around chunks of 10 updates after 5 warm-up updates, median per update over the chunks;
``jax-scan``: host time around chunks of 10 updates ending in ``block_until_ready``
(JAX has no event API). Each variant stops after ``--budget`` seconds of timed updates.
``--epoch DIR``: one full-MNIST epoch of the whole update (batch 16, MNIST's IDX files in
DIR) and the evaluation of the test set, timed, with its test accuracy.

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
from irnn_chainer.kernels import cuda

VARIANTS = [  # name, impl, device, IRNN_FUSED_KERNEL
    ('stepwise-gpu', 'stepwise', '@cupy:0', 'auto'),
    ('fused-xp-gpu', 'fused', '@cupy:0', 'numpy'),
    ('fused-cuda', 'fused', '@cupy:0', 'auto'),
    ('fused-cpu', 'fused', '@numpy', 'auto'),
]
OTHERS = ['whole-cuda', 'whole-cuda-split8', 'whole-cuda-2pb', 'torch-cudnn', 'jax-scan']
T_STEPS, H_UNITS, V_IDS, N_OUT = 784, 100, 256, 10


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


def chunks(step, sync, budget, start=None, stop=None, warm=5, chunk=10):
    """Median ms per call of ``step`` over chunks of ``chunk`` calls after ``warm`` calls:
    timed by ``start()``/``stop() -> ms`` (CUDA events) or, without them, host time up to
    ``sync()``."""
    for _ in range(warm):
        step()
    sync()
    per, spent = [], 0.0
    while spent < budget or len(per) < 3:
        t0 = time.perf_counter()
        if start:
            start()
        for _ in range(chunk):
            step()
        if stop:
            ms = stop()
        else:
            sync()
            ms = 1000 * (time.perf_counter() - t0)
        spent += time.perf_counter() - t0
        per.append(ms / chunk)
    return {'ms': statistics.median(per), 'n': len(per) * chunk}


def problem(B, N=4096):
    rng = np.random.default_rng(1)
    data = rng.integers(0, V_IDS, (N, T_STEPS)).astype(np.int32)
    labels = rng.integers(0, N_OUT, N).astype(np.int32)
    return data, labels, rng


def cupy_events():
    import cupy
    ev = [cupy.cuda.Event(), cupy.cuda.Event()]

    def start():
        ev[0].record()

    def stop():
        ev[1].record()
        ev[1].synchronize()
        return cupy.cuda.get_elapsed_time(ev[0], ev[1])
    return start, stop, lambda: cupy.cuda.Device().synchronize()


def measure_whole(B, budget, split=cuda.WHOLE_SPLIT, min_blocks=1):
    import cupy
    data, labels, rng = problem(B)
    N = data.shape[0]
    params = [rng.normal(0, 0.001, (V_IDS, H_UNITS)), np.eye(H_UNITS), np.zeros(H_UNITS),
              rng.normal(0, 0.001, (N_OUT, H_UNITS)), np.zeros(N_OUT)]
    params = [cupy.asarray(a.astype(np.float32)) for a in params]
    be = cuda.CupyBackend()
    plan = cuda.whole_plan(H_UNITS, V_IDS, N_OUT, T_STEPS, np.float32, be.max_shared(), split=split,
                           min_blocks=min_blocks)
    u = cuda.WholeUpdate(params, B, T_STEPS, optimizer='sgd', lr=1e-8, clip=1.0, backend=be, plan=plan)
    ddata, dlabels = cupy.asarray(data), cupy.asarray(labels)
    order = cupy.asarray(rng.permutation(N).astype(np.int32))
    i = [0]

    def step():
        u.update(ddata, dlabels, order, offset=(i[0] * B) % (N - B + 1))
        i[0] += 1
    start, stop, sync = cupy_events()
    r = chunks(step, sync, budget, start, stop)
    s = u.read_stats()
    r['kernel'] = 'whole (%d threads, split %d, E+b %s, %d block(s)/SM)' % (
        u.plan.threads, u.plan.split, 'shared' if u.plan.eb_shared else 'global', u.plan.min_blocks)
    r['finite'] = bool(np.isfinite(s['loss']))
    return r


def measure_torch(B, budget):
    import torch
    import torch.nn as nn
    assert torch.backends.cudnn.is_available(), 'PyTorch has no cuDNN here'
    torch.backends.cudnn.benchmark = True
    dev = torch.device('cuda')
    data, labels, _ = problem(B)
    torch.manual_seed(0)
    emb = nn.Embedding(V_IDS, H_UNITS).to(dev)
    rnn = nn.RNN(H_UNITS, H_UNITS, nonlinearity='relu', batch_first=True).to(dev)
    out = nn.Linear(H_UNITS, N_OUT).to(dev)
    ps = list(emb.parameters()) + list(rnn.parameters()) + list(out.parameters())
    opt = torch.optim.SGD(ps, lr=1e-8)
    x = torch.as_tensor(data[:B], device=dev).long()
    t = torch.as_tensor(labels[:B], device=dev).long()
    lossf = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        h, _ = rnn(emb(x))
        loss = lossf(out(h[:, -1]), t)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ps, 1.0)
        opt.step()
    ev = [torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)]

    def stop():
        ev[1].record()
        ev[1].synchronize()
        return ev[0].elapsed_time(ev[1])
    r = chunks(step, torch.cuda.synchronize, budget, lambda: ev[0].record(), stop)
    r['kernel'] = 'torch %s, cuDNN %s' % (torch.__version__, torch.backends.cudnn.version())
    return r


def measure_jax(B, budget):
    import jax
    import jax.numpy as jnp
    data, labels, rng = problem(B)
    params = {'E': rng.normal(0, 0.001, (V_IDS, H_UNITS)), 'W': np.eye(H_UNITS), 'b': np.zeros(H_UNITS),
              'Wy': rng.normal(0, 0.001, (N_OUT, H_UNITS)), 'by': np.zeros(N_OUT)}
    params = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
    x, t = jnp.asarray(data[:B]), jnp.asarray(labels[:B])

    def loss_fn(p):
        def cell(h, ids):
            h = jax.nn.relu(p['E'][ids] + p['b'] + h @ p['W'].T)
            return h, None
        h, _ = jax.lax.scan(cell, jnp.zeros((B, H_UNITS), jnp.float32), x.T)
        y = h @ p['Wy'].T + p['by']
        return -jnp.mean(jax.nn.log_softmax(y)[jnp.arange(B), t])

    @jax.jit
    def update(p):
        g = jax.grad(loss_fn)(p)
        norm = jnp.sqrt(sum(jnp.sum(v * v) for v in jax.tree_util.tree_leaves(g)))
        rate = jnp.minimum(1.0 / norm, 1.0)
        return jax.tree_util.tree_map(lambda a, d: a - 1e-8 * d * rate, p, g)
    state = [params]

    def step():
        state[0] = update(state[0])
    r = chunks(step, lambda: jax.block_until_ready(state[0]), budget)
    r['kernel'] = 'jax %s on %s' % (jax.__version__, jax.devices()[0].device_kind)
    return r


def measure_other(name, B, budget):
    if name == 'whole-cuda':
        return measure_whole(B, budget)
    if name == 'whole-cuda-split8':
        return measure_whole(B, budget, split=8)
    if name == 'whole-cuda-2pb':
        return measure_whole(B, budget, min_blocks=2)
    if name == 'torch-cudnn':
        return measure_torch(B, budget)
    return measure_jax(B, budget)


def epoch(folder, B=16, lr=1e-8, clip=1.0):
    """One full-MNIST epoch of the whole update (the paper's setting: batch 16, SGD lr 1e-8,
    clipping at 1, the IRNN's initialisation), the training set on the device; then the
    10000 test sequences through the Chainer model (the CUDA forward kernel), batches of
    1000. Times from CUDA events; the loss and accuracy are read once, at the end."""
    import cupy
    from irnn_chainer.data import mnist as data_mod
    xtr, ytr, xte, yte = data_mod.load_idx_dir(folder)
    np.random.seed(0)
    net = model_mod.build('irnn', n_units=H_UNITS, impl='fused')
    api.to_device(net, api.get_device('@cupy:0'))
    byname = dict(net.namedparams())
    params = [byname['/' + n].array for n in cuda.WHOLE_PARAMS]
    u = cuda.WholeUpdate(params, B, T_STEPS, optimizer='sgd', lr=lr, clip=clip)
    t0 = time.perf_counter()
    data, labels = cupy.asarray(xtr.astype(np.int32)), cupy.asarray(ytr)
    order = cupy.asarray(np.random.default_rng(0).permutation(len(xtr)).astype(np.int32))
    cupy.cuda.Device().synchronize()
    upload_s = time.perf_counter() - t0
    start, stop, sync = cupy_events()
    n = len(xtr) // B
    start()
    for i in range(n):
        u.update(data, labels, order, offset=i * B)
    train_ms = stop()
    s = u.read_stats()
    start()
    correct = 0
    with chainer.using_config('train', False), chainer.using_config('enable_backprop', False):
        for i in range(0, len(xte), 1000):
            y = net(cupy.asarray(xte[i:i + 1000].astype(np.int32)))
            correct += int((y.array.argmax(axis=1) == cupy.asarray(yte[i:i + 1000])).sum())
    eval_ms = stop()
    return {'updates': n, 'train_s': train_ms / 1000, 'ms_per_update': train_ms / n, 'eval_s': eval_ms / 1000,
            'epoch_s': (train_ms + eval_ms) / 1000, 'upload_s': upload_s, 'train_loss': s['loss'],
            'train_accuracy': s['accuracy'], 'skipped': s['skipped'], 'test_accuracy': correct / len(xte)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batch', type=int, nargs='+', default=[16, 256])
    p.add_argument('--repeat', type=int, default=20)
    p.add_argument('--budget', type=float, default=8.0, help='seconds of timed updates per variant')
    p.add_argument('--only', nargs='+', help='run only these variants')
    p.add_argument('--json', help='write the rows here')
    p.add_argument('--epoch', metavar='DIR', help='instead: one full-MNIST epoch of the whole update '
                   '(the four IDX files in DIR)')
    args = p.parse_args()
    if args.epoch:
        r = epoch(args.epoch)
        print(json.dumps(r, indent=1))
        if args.json:
            with open(args.json + '.tmp', 'w') as f:
                json.dump(r, f, indent=1)
            os.replace(args.json + '.tmp', args.json)
        return 0
    rows = []
    print('%-17s %6s %10s %6s  %s' % ('variant', 'batch', 'ms/update', 'n', 'kernel'))
    for B in args.batch:
        for name, impl, device, kernel in VARIANTS + [(n, None, None, None) for n in OTHERS]:
            if args.only and name not in args.only:
                continue
            try:
                r = (measure(impl, device, kernel, B, args.repeat, args.budget) if impl else
                     measure_other(name, B, args.budget))
            except Exception as e:  # noqa: BLE001  (a row that failed says why; the others go on)
                r = {'ms': None, 'n': 0, 'kernel': '-', 'error': '%s: %s' % (type(e).__name__, str(e).splitlines()[0])}
            r.update(variant=name, batch=B)
            rows.append(r)
            print('%-17s %6d %10s %6d  %s' % (name, B, '-' if r['ms'] is None else '%.3f' % r['ms'], r['n'],
                                              r.get('error', r['kernel'])), flush=True)
    base = {r['batch']: r['ms'] for r in rows if r['variant'] == 'whole-cuda' and r['ms']}
    for r in rows:  # every row as a multiple of the whole update's time at its batch
        if r['ms'] and base.get(r['batch']):
            r['x_whole'] = r['ms'] / base[r['batch']]
    if base:
        print('\nratio to whole-cuda: ' + ', '.join('%s@%d %.1fx' % (r['variant'], r['batch'], r['x_whole'])
                                                   for r in rows if 'x_whole' in r))
    if args.json:
        tmp = args.json + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(rows, f, indent=1)
        os.replace(tmp, args.json)
    return 1 if any(r['ms'] is None for r in rows) else 0


if __name__ == '__main__':
    raise SystemExit(main())
