"""CPU benchmark of one IRNN training iteration, all variants side by side in one run.

One iteration = forward + backward + clipped SGD update (lr 1e-8, global-norm clipping at
1.0, softmax cross entropy on a 10-way readout of h_T) at batch 16, T = 784, H = 100:

- stepwise: the faithful Chainer graph, one EmbedID + Linear + add + ReLU per pixel;
- fused-numpy / fused-c: :func:`irnn_chainer.fused.irnn_recurrence` with each CPU kernel;
- torch: ``nn.RNN(nonlinearity='relu')`` on one-hot input (only when torch imports).

Variants are run in interleaved rounds so machine noise hits them alike; medians over all
timed iterations after warm-up. Also the peak memory (tracemalloc) of one fused training
iteration beyond the data and parameters.

    python benchmarks/bench_cpu.py            # full table (about a minute)
    python benchmarks/bench_cpu.py --quick    # fewer repetitions
"""
import argparse
import gzip
import os
import platform
import statistics
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import irnn_chainer  # noqa: E402,F401  (compat shims first)
import chainer  # noqa: E402
import chainer.functions as F  # noqa: E402
import chainer.links as L  # noqa: E402
from chainer import initializers  # noqa: E402

from irnn_chainer import kernels  # noqa: E402
from irnn_chainer.fused import irnn_recurrence  # noqa: E402

EPOCH_ITERS = 60000 // 16
MNIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'data',
                     'mnist', 'train-images-idx3-ubyte.gz')


def load_batch(batch, T, seed):
    """Pixel ids of `batch` MNIST training images (the first T pixels), or MNIST-like
    synthetic ids (80% zeros) when the data is not there."""
    rng = np.random.default_rng(seed)
    if T <= 784 and os.path.exists(MNIST):
        with gzip.open(MNIST, 'rb') as f:
            raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 784)
        x = raw[rng.choice(len(raw), batch, replace=False), :T].astype(np.int32)
        source = 'MNIST train images'
    else:
        x = np.where(rng.random((batch, T)) < 0.8, 0, rng.integers(1, 256, (batch, T)))
        x = x.astype(np.int32)
        source = 'synthetic MNIST-like ids'
    return x, rng.integers(0, 10, batch).astype(np.int32), source


class Net(chainer.Chain):
    def __init__(self, H, impl):
        super().__init__()
        normal = initializers.Normal(0.001)
        with self.init_scope():
            self.pixel_to_h = L.EmbedID(256, H, initialW=normal)
            self.h_to_h = L.Linear(H, H, initialW=initializers.Identity(), initial_bias=0)
            self.h_to_y = L.Linear(H, 10, initialW=normal, initial_bias=0)
        self.impl = impl

    def forward(self, x):
        if self.impl == 'stepwise':
            xs = np.ascontiguousarray(x.T)
            h = chainer.Variable(np.zeros((x.shape[0], self.h_to_h.W.shape[0]), np.float32))
            for t in range(xs.shape[0]):
                h = F.relu(self.pixel_to_h(xs[t]) + self.h_to_h(h))
        else:
            h = irnn_recurrence(x, self.pixel_to_h.W, self.h_to_h.W, self.h_to_h.b)
        return self.h_to_y(h)


def chainer_step(impl, H, x, y, kernel=None):
    np.random.seed(0)
    model = Net(H, impl)
    opt = chainer.optimizers.SGD(lr=1e-8)
    opt.setup(model)
    opt.add_hook(chainer.optimizer_hooks.GradientClipping(1.0))

    def step():
        if kernel:
            os.environ[kernels.ENV] = kernel
        model.cleargrads()
        loss = F.softmax_cross_entropy(model(x), y)
        loss.backward()
        opt.update()
        return float(loss.array)
    return step


def torch_step(H, x, y):
    import torch
    torch.manual_seed(0)
    rnn = torch.nn.RNN(256, H, nonlinearity='relu', batch_first=True)
    with torch.no_grad():
        torch.nn.init.normal_(rnn.weight_ih_l0, 0, 0.001)
        rnn.weight_hh_l0.copy_(torch.eye(H))
        rnn.bias_ih_l0.zero_()
        rnn.bias_hh_l0.zero_()
    readout = torch.nn.Linear(H, 10)
    with torch.no_grad():
        torch.nn.init.normal_(readout.weight, 0, 0.001)
        readout.bias.zero_()
    params = list(rnn.parameters()) + list(readout.parameters())
    opt = torch.optim.SGD(params, lr=1e-8)
    onehot = torch.nn.functional.one_hot(torch.from_numpy(x).long(), 256).float()
    target = torch.from_numpy(y).long()

    def step():
        opt.zero_grad()
        _, h = rnn(onehot)
        loss = torch.nn.functional.cross_entropy(readout(h[0]), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()
    return step, torch.__version__, torch.get_num_threads()


def fused_peak_memory(step):
    """Peak bytes allocated (tracemalloc: Python and NumPy) during one fused iteration,
    with the C kernel's buffer pool emptied first so its buffers are counted."""
    step()
    if kernels.c_kernel is not None:
        kernels.c_kernel._pool.clear()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--T', type=int, default=784)
    p.add_argument('--H', type=int, default=100)
    p.add_argument('--rounds', type=int, default=3, help='interleaved rounds')
    p.add_argument('--quick', action='store_true', help='1 round, fewer repetitions')
    p.add_argument('--no-torch', action='store_true')
    p.add_argument('--no-stepwise', action='store_true')
    a = p.parse_args(argv)
    rounds = 1 if a.quick else a.rounds
    per_round = {'stepwise': 1 if a.quick else 2, 'fused-numpy': 5 if a.quick else 10,
                 'fused-c': 10 if a.quick else 40, 'torch': 3 if a.quick else 6}
    warmup = {'stepwise': 1, 'fused-numpy': 2, 'fused-c': 5, 'torch': 2}

    x, y, source = load_batch(a.batch, a.T, seed=0)
    env_kernel = os.environ.get(kernels.ENV)
    steps, notes = {}, []
    if not a.no_stepwise:
        steps['stepwise'] = chainer_step('stepwise', a.H, x, y)
    steps['fused-numpy'] = chainer_step('fused', a.H, x, y, kernel='numpy')
    if kernels.c_kernel is not None:
        steps['fused-c'] = chainer_step('fused', a.H, x, y, kernel='c')
    else:
        notes.append('fused-c skipped: %s' % kernels.backend_description())
    torch_info = None
    if not a.no_torch:
        try:
            steps['torch'], tv, tthreads = torch_step(a.H, x, y)
            torch_info = 'torch %s, %d threads' % (tv, tthreads)
        except ImportError as e:
            notes.append('torch skipped: %s' % e)

    times = {k: [] for k in steps}
    losses = {}
    for k, step in steps.items():
        for _ in range(warmup[k]):
            losses[k] = step()
    for r in range(rounds):
        for k, step in steps.items():
            for _ in range(per_round[k]):
                t0 = time.perf_counter()
                step()
                times[k].append(time.perf_counter() - t0)
    mem = {}
    for k in ('fused-c', 'fused-numpy'):
        if k in steps:
            mem[k] = fused_peak_memory(steps[k])
    if env_kernel is None:
        os.environ.pop(kernels.ENV, None)
    else:
        os.environ[kernels.ENV] = env_kernel

    med = {k: statistics.median(v) for k, v in times.items()}
    print('IRNN training iteration: batch %d, T %d, H %d, forward + backward + clipped SGD '
          '(%s)' % (a.batch, a.T, a.H, source))
    print('python %s, numpy %s, chainer %s%s; C kernel: %s'
          % (platform.python_version(), np.__version__, chainer.__version__,
             ', ' + torch_info if torch_info else '', kernels.backend_description()
             if kernels.c_kernel is not None else 'not built'))
    print('OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s' % (os.environ.get('OPENBLAS_CORETYPE', '-'),
                                                      os.environ.get('OPENBLAS_L2_SIZE', '-')))
    print()
    head = '| variant | n | median ms/iter | min ms | s per 60000-image epoch | vs stepwise | vs torch | first loss |'
    print(head)
    print('|' + '---|' * (head.count('|') - 1))
    for k in steps:
        vs_step = '%.1fx' % (med['stepwise'] / med[k]) if 'stepwise' in med else '-'
        vs_torch = '%.2fx' % (med['torch'] / med[k]) if 'torch' in med else '-'
        print('| %s | %d | %.2f | %.2f | %.1f | %s | %s | %.6f |'
              % (k, len(times[k]), med[k] * 1e3, min(times[k]) * 1e3, med[k] * EPOCH_ITERS,
                 vs_step, vs_torch, losses[k]))
    print()
    for k, v in mem.items():
        print('peak memory of one %s training iteration (tracemalloc, beyond data and '
              'parameters): %.1f MB' % (k, v / 2**20))
    import resource
    print('max RSS of this process (all variants, incl. Python, Chainer%s): %.0f MB'
          % (', torch' if 'torch' in steps else '',
             resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    for n in notes:
        print(n)
    if 'fused-c' in med:
        c = med['fused-c']
        checks = [('<= 15 ms/iteration', c * 1e3 <= 15)]
        if 'stepwise' in med:
            checks.append(('>= 40x stepwise', med['stepwise'] / c >= 40))
        if 'torch' in med:
            checks.append(('>= 10x torch', med['torch'] / c >= 10))
        if 'fused-c' in mem:
            checks.append(('< 100 MB', mem['fused-c'] < 100 * 2**20))
        print('targets (fused-c): ' + ', '.join('%s %s' % (n, 'met' if ok else 'MISSED')
                                                for n, ok in checks))


if __name__ == '__main__':
    main()
