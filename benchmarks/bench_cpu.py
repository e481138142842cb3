"""CPU benchmark: one training update of each model and peer, each variant in a process of its own.

One update = forward + backward + global-norm clipping at 1.0 + SGD step, softmax cross entropy
on a 10-way readout of h_T, batch 16, T = 784, H = 100, float32, on real MNIST training images
(MNIST-like synthetic ids when the folder $IRNN_MNIST_DIR of the four IDX files is not set):

- irnn-stepwise: the faithful Chainer graph, one EmbedID + Linear + add + ReLU per pixel;
- irnn-numpy / irnn-c-1 / irnn-c-N: the fused recurrence with the NumPy kernel, the C kernel
  on one thread and on N threads (N = the cores this process may use, or --threads);
- irnn-avx2-N / irnn-base-N: irnn-c-N with the C kernel held at its AVX2 level (what a CPU
  without AVX-512 runs) or its SSE2 baseline (a CPU without AVX2), where this CPU has them;
- tanh-c-N: the rnn-tanh baseline fused (the C kernel's own vector tanh);
- lstm-numpy / lstm-c-N: the LSTM baseline (EmbedID + Chainer's LSTM) fused;
- torch-rnn / torch-lstm: PyTorch ``nn.RNN(nonlinearity='relu')`` on one-hot input and
  ``nn.Embedding`` + ``nn.LSTM`` (when torch imports), N threads;
- jax-rnn: JAX, the recurrence as ``jax.lax.scan``, the whole update under ``jax.jit`` (when
  jax imports);
- irnn-whole-N: the same update as irnn-c-N through the whole-update path that
  ``irnn-chainer train`` runs (irnn_chainer.fused_update: no graph, hooks and step on the arrays);
- jax-lstm: JAX, Chainer's LSTM cell (EmbedID + the lateral product) under ``lax.scan``, the
  whole update under ``jax.jit``;
- eval-c-N: forward-only evaluation of 10000 test sequences at batch 1000 (no graph);
- matmul-1 / matmul-N: NumPy's float32 matrix product (1024 x 1024) on 1 and N threads,
  the machine's matrix-product rate, from which the limit of an update is its FLOPs at that
  rate (0.75 GFLOP for the IRNN: three products of 2 B T H^2 each; 3.0 for the LSTM).

JAX and PyTorch may live in another virtual environment: ``--peer-python PATH`` runs their
variants with that interpreter (they need only NumPy and the library itself).

A library's idle thread pool slows the next library in the same process (PyTorch measured
11-24x slower right after a NumPy-heavy step), so the driver runs each variant in a fresh
process, in interleaved rounds so machine noise hits all alike, and reports medians over all
timed updates. For its children it unsets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE together
(the environment of these machines forces OpenBLAS's AVX2 kernels with them; NumPy's BLAS
only matters to the NumPy kernels and to Chainer's small products): --keep-openblas-env keeps
them. Peak memory (tracemalloc) of one irnn-c-N update is measured in its process.

    python benchmarks/bench_cpu.py                  # the table (a few minutes)
    python benchmarks/bench_cpu.py --quick          # one round, fewer repetitions
    python benchmarks/bench_cpu.py --only irnn-c-1,irnn-c-N
    pip install "jax[cpu]" torch                    # the peers (not needed otherwise)
    python benchmarks/bench_cpu.py --peer-python .venv-jax/bin/python   # peers from another venv
"""
import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))
MNIST = os.environ.get('IRNN_MNIST_DIR', '')  # the four MNIST IDX files (.gz)
EPOCH_ITERS = 60000 // 16
B, T, H = 16, 784, 100

# name: (what it is, warm-up updates, timed updates per round (full, quick))
VARIANTS = {
    'irnn-stepwise': ('IRNN, Chainer graph step by step (the gist)', 1, (2, 1)),
    'irnn-numpy': ('IRNN fused, NumPy kernel', 2, (8, 3)),
    'irnn-c-1': ('IRNN fused, C kernel, 1 thread', 10, (120, 40)),
    'irnn-c-N': ('IRNN fused, C kernel, N threads', 10, (120, 40)),
    'irnn-avx2-N': ('IRNN fused, C kernel at its AVX2 level, N threads', 10, (120, 40)),
    'irnn-base-N': ('IRNN fused, C kernel at its SSE2 level, N threads', 5, (40, 15)),
    'tanh-c-N': ('rnn-tanh fused, C kernel, N threads', 10, (80, 30)),
    'lstm-numpy': ('LSTM fused, NumPy kernel', 2, (6, 3)),
    'lstm-c-N': ('LSTM fused, C kernel, N threads', 5, (40, 15)),
    'torch-rnn': ('PyTorch nn.RNN(relu), one-hot input', 3, (15, 6)),
    'torch-lstm': ('PyTorch nn.Embedding + nn.LSTM', 3, (15, 6)),
    'jax-rnn': ('JAX lax.scan ReLU RNN, jitted update', 3, (40, 15)),
    'irnn-whole-N': ('IRNN, whole update in one pass (fused_update), N threads', 10, (120, 40)),
    'jax-lstm': ('JAX lax.scan LSTM (Chainer\'s cell), jitted update', 2, (10, 4)),
    'eval-c-N': ('evaluation of 10000 sequences, batch 1000, C kernel, N threads', 1, (5, 3)),
    'matmul-1': ('NumPy float32 1024x1024 product, 1 thread', 3, (20, 10)),
    'matmul-N': ('NumPy float32 1024x1024 product, N threads', 3, (20, 10)),
}
PEERS = ('torch', 'jax')
LEVEL_VARIANTS = {'irnn-avx2-N': 'avx2', 'irnn-base-N': 'base'}  # the C kernel held at a level
MATMUL_N = 1024
IRNN_FLOP = 3 * 2 * B * T * H * H       # forward, dL/dh_{t-1}, dW
LSTM_FLOP = 3 * 2 * B * T * H * 4 * H   # the same with 4H gates


def load_pixels(n, split='train', seed=0):
    """Pixel ids (n, 784) int32 and labels of real MNIST images, or synthetic MNIST-like ids
    (80 % zeros) when the files are not there; and a word saying which."""
    import numpy as np
    rng = np.random.default_rng(seed)
    prefix = 'train' if split == 'train' else 't10k'
    path = os.path.join(MNIST, '%s-images-idx3-ubyte.gz' % prefix)
    if os.path.exists(path):
        with gzip.open(path, 'rb') as f:
            raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 784)
        with gzip.open(os.path.join(MNIST, '%s-labels-idx1-ubyte.gz' % prefix), 'rb') as f:
            labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
        idx = rng.choice(len(raw), n, replace=False) if n < len(raw) else np.arange(len(raw))
        return raw[idx].astype(np.int32), labels[idx].astype(np.int32), 'MNIST'
    x = np.where(rng.random((n, 784)) < 0.8, 0, rng.integers(1, 256, (n, 784))).astype(np.int32)
    return x, rng.integers(0, 10, n).astype(np.int32), 'synthetic'


# ------------------------------------------------------------------ the variants

def chainer_update(model_name, impl, kernel, x, y):
    """One update of the project's own model (irnn_chainer.model) with Chainer's SGD and
    GradientClipping: what `irnn-chainer train` runs, minus the Trainer."""
    import numpy as np
    os.environ['IRNN_FUSED_KERNEL'] = kernel
    import irnn_chainer  # noqa: F401  (compat shims first)
    import chainer
    import chainer.functions as F
    from irnn_chainer.model import rnn as model_mod
    np.random.seed(0)
    model = model_mod.build(model_name, n_units=H, init_std=0.001, impl=impl)
    opt = chainer.optimizers.SGD(lr=1e-8)
    opt.setup(model)
    opt.add_hook(chainer.optimizer_hooks.GradientClipping(1.0))

    def step():
        model.cleargrads()
        loss = F.softmax_cross_entropy(model(x), y)
        loss.backward()
        opt.update()
        return float(loss.array)
    return step


def torch_update(kind, x, y, n_threads):
    import torch
    torch.set_num_threads(n_threads)
    torch.manual_seed(0)
    if kind == 'rnn':
        rnn = torch.nn.RNN(256, H, nonlinearity='relu', batch_first=True)
        with torch.no_grad():
            torch.nn.init.normal_(rnn.weight_ih_l0, 0, 0.001)
            rnn.weight_hh_l0.copy_(torch.eye(H))
            rnn.bias_ih_l0.zero_()
            rnn.bias_hh_l0.zero_()
        inp = torch.nn.functional.one_hot(torch.from_numpy(x).long(), 256).float()
        layers = [rnn]

        def final_state():
            return rnn(inp)[1][0]
    else:
        emb = torch.nn.Embedding(256, H)
        lstm = torch.nn.LSTM(H, H, batch_first=True)
        ids = torch.from_numpy(x).long()
        layers = [emb, lstm]

        def final_state():
            return lstm(emb(ids))[1][0][0]
    readout = torch.nn.Linear(H, 10)
    params = [p for m in layers + [readout] for p in m.parameters()]
    opt = torch.optim.SGD(params, lr=1e-8)
    target = torch.from_numpy(y).long()

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(readout(final_state()), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()
    return step, 'torch %s, %d threads' % (torch.__version__, torch.get_num_threads())


def jax_update(x, y):
    import jax
    import jax.numpy as jnp
    import numpy as np
    rng = np.random.default_rng(0)
    params = (jnp.asarray(rng.normal(0, 0.001, (256, H)), jnp.float32), jnp.eye(H, dtype=jnp.float32),
              jnp.zeros(H, jnp.float32), jnp.asarray(rng.normal(0, 0.001, (10, H)), jnp.float32),
              jnp.zeros(10, jnp.float32))
    xs, ys = jnp.asarray(x.T), jnp.asarray(y)

    def loss_fn(p, xs, ys):
        E, W, b, R, c = p

        def cell(h, xt):
            return jax.nn.relu(E[xt] + h @ W.T + b), None
        h, _ = jax.lax.scan(cell, jnp.zeros((xs.shape[1], H), jnp.float32), xs)
        logits = h @ R.T + c
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(ys.shape[0]), ys])

    @jax.jit
    def update(p, xs, ys):
        loss, g = jax.value_and_grad(loss_fn)(p, xs, ys)
        norm = jnp.sqrt(sum(jnp.sum(gi * gi) for gi in g))
        rate = jnp.minimum(1.0, 1.0 / norm)
        return tuple(pi - 1e-8 * rate * gi for pi, gi in zip(p, g)), loss

    state = [params]

    def step():
        state[0], loss = update(state[0], xs, ys)
        return float(loss)  # waits for the result
    return step, 'jax %s' % jax.__version__


def whole_update(x, y):
    """irnn-c-N's update through the whole-update path (what the trainer's FusedUpdater runs)."""
    import numpy as np
    os.environ['IRNN_FUSED_KERNEL'] = 'c'
    import irnn_chainer  # noqa: F401
    import chainer
    import chainer.links as L
    from irnn_chainer.run import fused_update
    from irnn_chainer.model import rnn as model_mod
    np.random.seed(0)
    clf = L.Classifier(model_mod.build('irnn', n_units=H, init_std=0.001, impl='fused'))
    opt = chainer.optimizers.SGD(lr=1e-8)
    opt.setup(clf)
    opt.add_hook(chainer.optimizer_hooks.GradientClipping(1.0))
    obs = {}
    reporter = chainer.Reporter()
    reporter.add_observer('main', clf)

    def step():
        with reporter.scope(obs):
            fused_update.whole_update(opt, x, y)
        return float(obs['main/loss'])
    return step


def jax_lstm_update(x, y):
    """Chainer's LSTM (gates a, i, f, o; sigmoid, tanh) over EmbedID rows, lax.scan, jitted."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    rng = np.random.default_rng(0)
    f32 = jnp.float32
    params = (jnp.asarray(rng.normal(0, 0.001, (256, H)), f32),           # EmbedID
              jnp.asarray(rng.normal(0, 0.1, (4 * H, H)), f32),            # upward W
              jnp.zeros(4 * H, f32),                                       # upward b
              jnp.asarray(rng.normal(0, 0.1, (4 * H, H)), f32),            # lateral W
              jnp.asarray(rng.normal(0, 0.001, (10, H)), f32), jnp.zeros(10, f32))
    xs, ys = jnp.asarray(x.T), jnp.asarray(y)

    def loss_fn(p, xs, ys):
        E, Wu, bu, Wl, R, c = p
        G = E @ Wu.T + bu  # the upward Linear on every embedding row, as the fused path does

        def cell(state, xt):
            h, cc = state
            z = G[xt] + h @ Wl.T
            a, i, f, o = jnp.split(z, 4, axis=1)
            cc = jnp.tanh(a) * jax.nn.sigmoid(i) + jax.nn.sigmoid(f) * cc
            h = jax.nn.sigmoid(o) * jnp.tanh(cc)
            return (h, cc), None
        zero = jnp.zeros((xs.shape[1], H), f32)
        (h, _), _ = jax.lax.scan(cell, (zero, zero), xs)
        logits = h @ R.T + c
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(ys.shape[0]), ys])

    @jax.jit
    def update(p, xs, ys):
        loss, g = jax.value_and_grad(loss_fn)(p, xs, ys)
        norm = jnp.sqrt(sum(jnp.sum(gi * gi) for gi in g))
        rate = jnp.minimum(1.0, 1.0 / norm)
        return tuple(pi - 1e-8 * rate * gi for pi, gi in zip(p, g)), loss

    state = [params]

    def step():
        state[0], loss = update(state[0], xs, ys)
        return float(loss)
    return step, 'jax %s' % jax.__version__


def matmul(n_threads):
    import numpy as np
    try:
        import threadpoolctl
        limit = threadpoolctl.threadpool_limits(limits=n_threads, user_api='blas')
    except ImportError:
        limit = None
    a = np.random.default_rng(0).normal(size=(MATMUL_N, MATMUL_N)).astype(np.float32)

    def step():
        return float((a @ a)[0, 0])
    return step, '%d threads' % n_threads


def eval_pass():
    import numpy as np
    os.environ['IRNN_FUSED_KERNEL'] = 'c'
    import irnn_chainer  # noqa: F401
    import chainer
    from irnn_chainer.model import rnn as model_mod
    x, y, _ = load_pixels(10000, 'test')
    np.random.seed(0)
    model = model_mod.build('irnn', n_units=H, impl='fused')

    def step():
        correct = 0
        with chainer.no_backprop_mode(), chainer.using_config('train', False):
            for i in range(0, len(x), 1000):
                logits = model(x[i:i + 1000]).array
                correct += int((logits.argmax(1) == y[i:i + 1000]).sum())
        return correct / len(x)
    return step


def peak_memory(step):
    """Peak bytes allocated (tracemalloc: Python and NumPy) during one update beyond what was
    allocated before it, with the C kernel's buffer pool emptied first so its buffers count."""
    import tracemalloc
    from irnn_chainer import kernels
    step()
    if kernels.c_kernel is not None:
        kernels.c_kernel._pool.clear()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base


def run_variant(name, reps, n_threads):
    """In the child process: build the variant, warm up, time `reps` updates; a JSON line."""
    x, y, source = load_pixels(B, 'train')
    info = ''
    if name.startswith(('irnn', 'tanh', 'lstm-', 'eval')):
        from irnn_chainer.kernels import threads
        threads.set_threads(1 if name.endswith('-1') else n_threads)
        from irnn_chainer import kernels
        if name in LEVEL_VARIANTS:
            kernels.c_kernel.set_level(LEVEL_VARIANTS[name])
        info = '%d threads%s' % (threads.get_threads(),
                                 ', %s code' % kernels.c_kernel.level() if kernels.c_kernel else '')
    if name == 'irnn-stepwise':
        step = chainer_update('irnn', 'stepwise', 'auto', x, y)
    elif name == 'irnn-numpy':
        step = chainer_update('irnn', 'fused', 'numpy', x, y)
    elif name in ('irnn-c-1', 'irnn-c-N') or name in LEVEL_VARIANTS:
        step = chainer_update('irnn', 'fused', 'c', x, y)
    elif name == 'tanh-c-N':
        step = chainer_update('rnn-tanh', 'fused', 'c', x, y)
    elif name == 'lstm-numpy':
        step = chainer_update('lstm', 'fused', 'numpy', x, y)
    elif name == 'lstm-c-N':
        step = chainer_update('lstm', 'fused', 'c', x, y)
    elif name in ('torch-rnn', 'torch-lstm'):
        step, info = torch_update(name.split('-')[1], x, y, n_threads)
    elif name == 'jax-rnn':
        step, info = jax_update(x, y)
    elif name == 'jax-lstm':
        step, info = jax_lstm_update(x, y)
    elif name == 'irnn-whole-N':
        step = whole_update(x, y)
    elif name in ('matmul-1', 'matmul-N'):
        step, info = matmul(1 if name.endswith('-1') else n_threads)
    elif name == 'eval-c-N':
        step = eval_pass()
    else:
        raise SystemExit('unknown variant %r' % name)
    if name.startswith(('irnn', 'tanh', 'lstm-', 'eval')):
        # the thread counts as `irnn-chainer train --threads N` sets them (NumPy's BLAS
        # included); after the variant is built, which chose its kernel
        from irnn_chainer.commands import cli
        cli.set_threads(argparse.Namespace(threads=1 if name.endswith('-1') else n_threads,
                                           communicator=None))
    first = None
    for _ in range(VARIANTS[name][1]):
        first = step() if first is None else first
        step()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    out = {'times': times, 'first': first, 'info': info, 'source': source}
    if name == 'irnn-c-N':
        out['peak_bytes'] = peak_memory(step)
    print(json.dumps(out))


# ------------------------------------------------------------------ the driver

def python_for(name, peer_python):
    return peer_python if peer_python and name.split('-')[0] in PEERS else sys.executable


def child(name, reps, n_threads, env, peer_python=None):
    cmd = [python_for(name, peer_python), os.path.abspath(__file__), '--variant', name, '--reps', str(reps),
           '--threads', str(n_threads)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in p.stdout.splitlines() if line.startswith('{')]
    if p.returncode != 0 or not lines:
        err = (p.stderr.strip().splitlines() or ['exit %d' % p.returncode])[-1]
        return None, err
    return json.loads(lines[-1]), None


def available(name, peer_python=None):
    """Whether a peer's library imports, or the C kernel has the variant's level on this CPU
    (checked in a child, so this process stays clean)."""
    if name in LEVEL_VARIANTS:
        code = ('from irnn_chainer.kernels import c_kernel; '
                'raise SystemExit(%r not in c_kernel.levels())' % LEVEL_VARIANTS[name])
        return subprocess.run([sys.executable, '-c', code], capture_output=True,
                              cwd=os.path.join(HERE, '..')).returncode == 0
    mod = {'torch': 'torch', 'jax': 'jax'}.get(name.split('-')[0])
    if not mod:
        return True
    return subprocess.run([python_for(name, peer_python), '-c', 'import %s' % mod],
                          capture_output=True).returncode == 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--rounds', type=int, default=3, help='interleaved rounds (default 3)')
    p.add_argument('--quick', action='store_true', help='1 round, fewer repetitions')
    p.add_argument('--only', help='comma-separated variants (default: all)')
    p.add_argument('--skip', help='comma-separated variants to leave out')
    p.add_argument('--threads', type=int, default=None, help='N (default: the cores this process may use)')
    p.add_argument('--keep-openblas-env', action='store_true',
                   help='keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for the children')
    p.add_argument('--peer-python', help='the Python that runs the jax-* and torch-* variants '
                   '(a virtual environment of their own; default: this one)')
    p.add_argument('--variant', help=argparse.SUPPRESS)
    p.add_argument('--reps', type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    n_threads = a.threads or len(os.sched_getaffinity(0))
    if a.variant:
        return run_variant(a.variant, a.reps, n_threads)

    names = a.only.split(',') if a.only else list(VARIANTS)
    skip = set(a.skip.split(',')) if a.skip else set()
    unknown = [n for n in names + list(skip) if n not in VARIANTS]
    if unknown:
        p.error('unknown variant(s) %s; known: %s' % (', '.join(unknown), ', '.join(VARIANTS)))
    names = [n for n in names if n not in skip]
    if a.peer_python and not os.path.exists(a.peer_python):
        p.error('--peer-python: expected a Python interpreter, got %r (no such file)' % a.peer_python)
    ok = {n: available(n, a.peer_python) for n in names}
    notes = ['%s skipped: %s' % (n, 'the C kernel has no %s level on this CPU' % LEVEL_VARIANTS[n]
                                 if n in LEVEL_VARIANTS else '%s does not import' % n.split('-')[0])
             for n in names if not ok[n]]
    names = [n for n in names if ok[n]]
    env = dict(os.environ)
    if not a.keep_openblas_env:
        env.pop('OPENBLAS_CORETYPE', None)
        env.pop('OPENBLAS_L2_SIZE', None)
    rounds = 1 if a.quick else a.rounds
    times = {n: [] for n in names}
    meta = {}
    t_start = time.time()
    for r in range(rounds):
        for n in names:
            reps = VARIANTS[n][2][1 if a.quick else 0]
            out, err = child(n, reps, n_threads, env, a.peer_python)
            if out is None:
                notes.append('%s failed in round %d: %s' % (n, r + 1, err))
                continue
            times[n] += out['times']
            meta[n] = out
            sys.stderr.write('round %d/%d %-14s median %8.2f ms  (%.0f s so far)\n'
                             % (r + 1, rounds, n, 1e3 * statistics.median(out['times']),
                                time.time() - t_start))
    med = {n: statistics.median(v) for n, v in times.items() if v}

    import numpy as np
    import irnn_chainer  # noqa: F401  (compat shims before chainer)
    import chainer
    print('One update: batch %d, T %d, H %d, float32, forward + backward + clip 1 + SGD; each variant '
          'in its own process, %d interleaved round(s), medians' % (B, T, H, rounds))
    print('python %s, numpy %s, chainer %s; %s; N = %d threads; %s; %s' % (
        platform.python_version(), np.__version__, chainer.__version__, platform.processor() or
        platform.machine(), n_threads, 'data: %s' % next(iter(meta.values()))['source'] if meta else '',
        'OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE kept' if a.keep_openblas_env else
        'OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for the children'))
    for n in ('irnn-c-N',) + tuple(LEVEL_VARIANTS) + ('torch-rnn', 'jax-rnn', 'jax-lstm'):
        if n in meta:
            print('%s: %s' % (n, meta[n]['info']))
    rate = {k: (2.0 * MATMUL_N ** 3 / med[k]) for k in ('matmul-1', 'matmul-N') if k in med}
    for k, r in sorted(rate.items()):
        print('%s: %.1f GFLOP/s (NumPy float32 product, %s)' % (k, r / 1e9, meta[k]['info']))
    limit = {}
    if 'matmul-N' in rate:
        limit = {'irnn': IRNN_FLOP / rate['matmul-N'], 'lstm': LSTM_FLOP / rate['matmul-N']}
        print('matrix-product limit at the N-thread rate: IRNN update %.2f ms (%.2f GFLOP), LSTM update '
              '%.2f ms (%.2f GFLOP)' % (limit['irnn'] * 1e3, IRNN_FLOP / 1e9, limit['lstm'] * 1e3, LSTM_FLOP / 1e9))
    print()
    ref = med.get('irnn-c-N')
    head = '| variant | what | n | median ms | min ms | s per 3750 updates | vs irnn-c-N | vs limit |'
    print(head)
    print('|' + '---|' * (head.count('|') - 1))
    for n in names:
        if n not in med:
            continue
        update = not n.startswith(('eval', 'matmul'))
        per_epoch = '%.1f' % (med[n] * EPOCH_ITERS) if update else '-'
        lim = limit.get('lstm' if 'lstm' in n else 'irnn' if update else None)
        print('| %s | %s | %d | %.2f | %.2f | %s | %s | %s |' % (
            n, VARIANTS[n][0], len(times[n]), med[n] * 1e3, min(times[n]) * 1e3, per_epoch,
            '%.2fx' % (med[n] / ref) if ref and update else '-', '%.2fx' % (med[n] / lim) if lim else '-'))
    print()
    if 'irnn-c-N' in meta and 'peak_bytes' in meta['irnn-c-N']:
        print('peak memory of one irnn-c-N update (tracemalloc, beyond data and parameters): %.1f MB'
              % (meta['irnn-c-N']['peak_bytes'] / 2 ** 20))
    for note in notes:
        print(note)

    def ratio(a_, b_):
        return med[a_] / med[b_] if a_ in med and b_ in med else None
    checks = []
    if ref:
        checks.append(('IRNN update <= 3.0 ms', ref * 1e3 <= 3.0, '%.2f ms' % (ref * 1e3)))
    if 'irnn-whole-N' in med:
        w = med['irnn-whole-N']
        checks.append(('whole update <= 3.0 ms', w * 1e3 <= 3.0, '%.2f ms' % (w * 1e3)))
        if limit:
            checks.append(('whole update <= 1.2x the limit', w <= 1.2 * limit['irnn'], '%.2fx' % (w / limit['irnn'])))
    for peer, need in (('jax-rnn', 6), ('torch-rnn', 20)):
        r = ratio(peer, 'irnn-c-N')
        if r:
            checks.append(('IRNN >= %dx %s' % (need, peer), r >= need, '%.1fx' % r))
    r = ratio('irnn-c-1', 'irnn-c-N')
    if r:
        checks.append(('N threads >= 1.6x 1 thread', r >= 1.6, '%.2fx' % r))
    r = ratio('tanh-c-N', 'irnn-c-N')
    if r:
        checks.append(('rnn-tanh <= 1.1x IRNN', r <= 1.1, '%.2fx' % r))
    if 'lstm-c-N' in med:
        checks.append(('LSTM <= 15 ms', med['lstm-c-N'] * 1e3 <= 15, '%.1f ms' % (med['lstm-c-N'] * 1e3)))
    r = ratio('jax-lstm', 'lstm-c-N')
    if r:
        checks.append(('LSTM >= 3x jax-lstm', r >= 3, '%.1fx' % r))
    if 'eval-c-N' in med:
        checks.append(('evaluation of 10000 <= 0.7 s', med['eval-c-N'] <= 0.7, '%.2f s' % med['eval-c-N']))
    if 'irnn-c-N' in meta and 'peak_bytes' in meta['irnn-c-N']:
        mb = meta['irnn-c-N']['peak_bytes'] / 2 ** 20
        checks.append(('update memory < 100 MB', mb < 100, '%.1f MB' % mb))
    if checks:
        print('targets: ' + '; '.join('%s: %s (%s)' % (c, 'met' if ok else 'MISSED', v) for c, ok, v in checks))


if __name__ == '__main__':
    main()
