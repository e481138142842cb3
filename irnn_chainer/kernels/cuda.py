"""CUDA kernel of the fused IRNN / RNN recurrence (CuPy arrays), same interface as
:mod:`.numpy_kernel`.

The time loop runs inside one kernel launch (``irnn_cuda.cu``, compiled by
``cupy.RawKernel``): one block per ``rows`` batch rows, W in shared memory when it fits,
one ``__syncthreads`` per step. Backward runs the reverse loop the same way and writes
dL/d(pre-activation) of every step; dW is then one cuBLAS product over all steps
(``xp.matmul``), db a sum, dE a scatter-add (``cupyx.scatter_add``).

The first use of each compiled variant in a process checks itself against the
array-module path (:mod:`.numpy_kernel` on CuPy arrays) on a small random problem and
raises :class:`KernelCheckError` (one line) when they differ, so a GPU this code never ran
on cannot give silently wrong results.

The Python side takes a *backend* (``xp``, ``kernel(name, plan)``, ``scatter_add``):
:class:`CupyBackend` here; the tests give it a NumPy one whose kernels are the same ``.cu``
source compiled with g++ (``tests/cuda_emu.h``).
"""
import collections
import os
import threading

import numpy

from irnn_chainer.compat.api import DeviceError
from irnn_chainer.kernels import numpy_kernel
from irnn_chainer.kernels.numpy_kernel import check_activation

name = 'cuda'
SOURCE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'irnn_cuda.cu')
#: static shared memory a block may use without an opt-in
SHARED_LIMIT = 48 * 1024
#: batch rows per block: 1 while every block fits on the device at once
ROWS_BLOCKS = 1024
MAX_ROWS = 8
ACTS = {'relu': 0, 'tanh': 1}
REALS = {'float32': 'float', 'float64': 'double'}

Plan = collections.namedtuple('Plan', 'real H rows w_shared threads')


class KernelCheckError(DeviceError):
    """The CUDA kernel disagreed with the array-module path on this device."""


def source():
    with open(SOURCE_PATH) as f:
        return f.read()


def plan(B, H, dtype, rows=None, threads=None):
    """Launch parameters of the kernel for a (B, H) problem in ``dtype``."""
    dtype = numpy.dtype(dtype)
    if dtype.name not in REALS:
        raise TypeError('the CUDA kernel takes float32 or float64, got %s' % dtype)
    size = dtype.itemsize
    if rows is None:
        rows = min(MAX_ROWS, max(1, -(-B // ROWS_BLOCKS)))
    while rows > 1 and 2 * rows * H * size > SHARED_LIMIT:
        rows -= 1
    if 2 * rows * H * size > SHARED_LIMIT:
        raise NotImplementedError('the CUDA kernel holds 2 x %d units per row in shared memory (%d '
                                  'bytes > %d): use impl=\'stepwise\'' % (H, 2 * H * size, SHARED_LIMIT))
    w_shared = (H * H + 2 * rows * H) * size <= SHARED_LIMIT
    if threads is None:
        threads = min(1024, -(-H // 32) * 32)
    return Plan(REALS[dtype.name], H, rows, w_shared, threads)


def options(p):
    return ('-DREAL=%s' % p.real, '-DH_UNITS=%d' % p.H, '-DROWS=%d' % p.rows,
            '-DW_SHARED=%d' % int(p.w_shared))


class CupyBackend(object):
    """CuPy arrays, ``cupy.RawKernel`` (compiled by NVRTC at first launch, cached)."""

    def __init__(self):
        import cupy
        import cupyx
        self.xp = cupy
        self._cupyx = cupyx
        self._kernels = {}
        self._source = source()

    def kernel(self, fn, p):
        key = (fn, options(p))
        k = self._kernels.get(key)
        if k is None:
            k = self._kernels[key] = self.xp.RawKernel(self._source, fn, options=options(p))
        return k

    def scatter_add(self, out, index, rows):
        self._cupyx.scatter_add(out, index, rows)


_backend = None
_checked = {}
_lock = threading.Lock()


def default_backend():
    global _backend
    if _backend is None:
        _backend = CupyBackend()
    return _backend


def _launch(be, fn, p, B, args):
    i32 = numpy.int32
    be.kernel(fn, p)((-(-B // p.rows),), (p.threads,), tuple(
        a if hasattr(a, 'shape') else i32(a) for a in args))


def _forward(be, p, ids, E, W, b, keep, act):
    xp = be.xp
    B, T = ids.shape
    H = E.shape[1]
    ids = xp.ascontiguousarray(ids, dtype=xp.int32)
    EB = xp.ascontiguousarray(E + b)
    MT = xp.ascontiguousarray(W.T)
    hT = xp.empty((B, H), dtype=E.dtype)
    hs = xp.empty((T, B, H), dtype=E.dtype) if keep else None
    dummy = xp.empty((1,), dtype=E.dtype)
    _launch(be, 'irnn_forward', p, B, (ids, EB, MT, hs if keep else dummy, hT, B, T, int(keep), act))
    return hs, hT


def _backward(be, p, ids, hs, W, gT, gseq, n_vocab, act):
    xp = be.xp
    T, B, H = hs.shape
    dtype = hs.dtype
    hs = xp.ascontiguousarray(hs)
    dpre = xp.empty((T, B, H), dtype=dtype)
    dummy = xp.empty((1,), dtype=dtype)
    gT = dummy if gT is None else xp.ascontiguousarray(gT, dtype=dtype)
    gseq_ = dummy if gseq is None else xp.ascontiguousarray(gseq, dtype=dtype)
    _launch(be, 'irnn_backward', p, B, (hs, xp.ascontiguousarray(W), gT, gseq_, dpre, B, T,
                                        int(gT is not dummy), int(gseq is not None), act))
    if T > 1:  # one product over all steps: dW = sum_t dpre_t^T h_{t-1}
        dW = xp.matmul(dpre[1:].reshape(-1, H).T, hs[:-1].reshape(-1, H))
    else:
        dW = xp.zeros((H, H), dtype=dtype)
    flat = dpre.reshape(T * B, H)
    db = flat.sum(axis=0)
    dE = xp.zeros((n_vocab, H), dtype=dtype)
    be.scatter_add(dE, xp.ascontiguousarray(xp.asarray(ids, dtype=xp.int32).T).ravel(), flat)
    return dE, dW, db


def _max_rel(a, b):
    a, b = (numpy.asarray(x.get() if hasattr(x, 'get') else x, dtype=numpy.float64) for x in (a, b))
    scale = max(float(numpy.abs(b).max()), 1e-30)
    return float(numpy.abs(a - b).max()) / scale


def self_check(be, p, activation, tol=None):
    """The kernel variant ``p`` against :mod:`.numpy_kernel` on ``be.xp`` arrays: a random
    problem of 2 blocks (the second one partial), T = 6, both gradients given; raises
    KernelCheckError naming the worst array. Returns the differences."""
    xp = be.xp
    dtype = numpy.float32 if p.real == 'float' else numpy.float64
    tol = tol or (1e-5 if dtype == numpy.float32 else 1e-11)
    rng = numpy.random.RandomState(1234)
    B, T, V, H = p.rows + 1, 6, 7, p.H
    ids = rng.randint(0, V, size=(B, T)).astype(numpy.int32)
    E = rng.normal(0, 0.5, (V, H))
    W = numpy.eye(H) * 0.6 + rng.normal(0, 0.3 / numpy.sqrt(H), (H, H))
    b = rng.normal(0, 0.1, H)
    b[::4] = -5.0  # units that stay off (relu)
    gT = rng.normal(0, 1, (B, H))
    gseq = rng.normal(0, 1, (T, B, H))
    ids, E, W, b, gT, gseq = (xp.asarray(a if a.dtype == numpy.int32 else a.astype(dtype))
                              for a in (ids, E, W, b, gT, gseq))
    act = ACTS[activation]
    hs, hT = _forward(be, p, ids, E, W, b, True, act)
    dE, dW, db = _backward(be, p, ids, hs, W, gT, gseq, V, act)
    ref_hs, ref_hT = numpy_kernel.forward(ids, E, W, b, True, activation)
    ref = numpy_kernel.backward(ids, ref_hs, W, gT, gseq, V, activation)
    diffs = collections.OrderedDict(
        [('hs', _max_rel(hs, ref_hs)), ('hT', _max_rel(hT, ref_hT))] +
        [(k, _max_rel(a, r)) for k, a, r in zip(('dE', 'dW', 'db'), (dE, dW, db), ref)])
    worst = max(diffs, key=diffs.get)
    if not diffs[worst] <= tol:
        raise KernelCheckError(
            'the CUDA kernel of the fused recurrence disagrees with the array-module path on this '
            'device (%s: relative difference %.3g > %g; H=%d, %s, %s); refusing to use it: run with '
            'IRNN_FUSED_KERNEL=numpy (array-module path) or --impl stepwise'
            % (worst, diffs[worst], tol, H, p.real, activation))
    return diffs


def _checked_plan(be, B, H, dtype, activation):
    p = plan(B, H, dtype, **getattr(be, 'plan_args', {}))
    # the backend itself, not id(be): a backend that is gone can leave its id to a new one,
    # which would then skip its own check (seen: a broken test backend passed unchecked)
    key = (be, p, activation)
    if key not in _checked:
        with _lock:
            if key not in _checked:
                _checked[key] = self_check(be, p, activation)
    return p


def check(H, dtype, activation='relu', B=1, backend=None):
    """Compile and self-check the variant a (B, H) problem uses, now (before a training
    loop, so a failure is one line, not a traceback from inside it)."""
    be = backend or default_backend()
    _checked_plan(be, B, H, dtype, check_activation(activation))


def forward(ids, E, W, b, keep, activation='relu', backend=None):
    act = ACTS[check_activation(activation)]
    be = backend or default_backend()
    p = _checked_plan(be, ids.shape[0], E.shape[1], E.dtype, activation)
    return _forward(be, p, ids, E, W, b, keep, act)


def backward(ids, hs, W, gT, gseq, n_vocab, activation='relu', backend=None):
    act = ACTS[check_activation(activation)]
    be = backend or default_backend()
    p = _checked_plan(be, hs.shape[1], hs.shape[2], hs.dtype, activation)
    return _backward(be, p, ids, hs, W, gT, gseq, n_vocab, act)


# ----------------------------------------------------------------------------- whole update
#
# The whole training update of the single-layer IRNN / rnn-relu / rnn-tanh with an EmbedID
# input and a Linear readout, in three launches and no host transfer (irnn_whole.cu):
# forward, readout, softmax cross entropy and backward per batch row; the sum of the rows'
# partial gradients in a fixed order; skip-if-non-finite, global-norm clipping and the SGD
# or RMSprop step, in place on the parameters (and the optimizer state), so Chainer's
# Parameters, snapshots and extensions see them as they are. The loss, accuracy, update
# and skip counts accumulate on the device until read_stats().

WHOLE_SOURCE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'irnn_whole.cu')
#: the parameters, in the kernels' flat gradient order (Chainer's link/param names)
WHOLE_PARAMS = ('pixel_to_h/W', 'h_to_h/W', 'h_to_h/b', 'h_to_y/W', 'h_to_y/b')
WHOLE_OPTIMIZERS = ('sgd', 'rmsprop')
#: dynamic shared memory one block may opt into (H100/H200: 227 KB; A100: 163 KB);
#: CupyBackend asks the device
OPTIN_SHARED_LIMIT = 227 * 1024
WHOLE_SPLIT = 4
REDUCE_THREADS = 256
STATS = ('loss_sum', 'accuracy_sum', 'updates', 'skipped', 'last_loss', 'last_norm')

WholePlan = collections.namedtuple('WholePlan', 'real H V O split threads eb_shared min_blocks')


def whole_source():
    with open(WHOLE_SOURCE_PATH) as f:
        return f.read()


def _whole_sizes(H, O, split):
    per_warp = 32 // split
    slots = -(-H // per_warp) * per_warp
    kp = -(-H // split)
    hpad = max(kp * split, slots)
    return slots * split, hpad


def whole_shared_bytes(p, T):
    """Dynamic shared memory of irnn_whole_rows for ``T`` steps (the kernel's layout)."""
    size = 4 if p.real == 'float' else 8
    _, hpad = _whole_sizes(p.H, p.O, p.split)
    table = p.V * p.H * size if p.eb_shared else 0
    return table + (4 * hpad + p.O + hpad) * size + 4 * T


def whole_plan(H, V, O, T, dtype, shared_limit=OPTIN_SHARED_LIMIT, split=WHOLE_SPLIT, min_blocks=1):
    """Launch parameters of the whole-update kernels; NotImplementedError (one line) for
    a model they do not hold. ``min_blocks``: blocks of irnn_whole_rows per SM that ptxas
    must leave registers for (2: at most 78 per thread at 416 threads; H100/H200 also have
    the shared memory for two E + b tables per SM)."""
    dtype = numpy.dtype(dtype)
    if dtype.name not in REALS:
        raise TypeError('the CUDA whole update takes float32 or float64, got %s' % dtype)
    threads, _ = _whole_sizes(H, O, split)
    if threads > 1024 or H < 1:
        raise NotImplementedError('the CUDA whole update holds up to %d units (%d threads per unit), '
                                  'got %d' % (1024 // split, split, H))
    # float64 (a check of the numbers, not a speed path) reads E + b from global memory and
    # keeps dE there: with the 200 KB table in shared memory ptxas spills its registers
    p = WholePlan(REALS[dtype.name], H, V, O, split, threads, dtype == numpy.float32, int(min_blocks))
    if whole_shared_bytes(p, T) > shared_limit:
        p = p._replace(eb_shared=False)  # E + b read from global memory, dE kept there
    if whole_shared_bytes(p, T) > shared_limit:
        raise NotImplementedError('the CUDA whole update needs %d bytes of shared memory for %d steps '
                                  '(> %d)' % (whole_shared_bytes(p, T), T, shared_limit))
    return p


def whole_options(p):
    return ('-DREAL=%s' % p.real, '-DH_UNITS=%d' % p.H, '-DV_ROWS=%d' % p.V, '-DN_OUT=%d' % p.O,
            '-DSPLIT=%d' % p.split, '-DEB_SHARED=%d' % int(p.eb_shared), '-DMIN_BLOCKS=%d' % p.min_blocks)


def _part_size(p):
    return p.V * p.H + p.H * p.H + p.H + p.O * p.H + p.O + 2


class _CupyWhole(object):
    """cupy.RawKernel of irnn_whole.cu with its dynamic shared memory opted into."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.opted = 0

    def __call__(self, grid, block, args, shared_mem=0):
        if shared_mem > self.opted and shared_mem > SHARED_LIMIT:
            self.kernel.max_dynamic_shared_size_bytes = shared_mem
            self.opted = shared_mem
        self.kernel(grid, block, args, shared_mem=shared_mem)


def _cupy_whole_kernel(self, fn, p):
    key = ('whole', fn, whole_options(p))
    k = self._kernels.get(key)
    if k is None:
        k = self._kernels[key] = _CupyWhole(self.xp.RawKernel(whole_source(), fn, options=whole_options(p)))
    return k


def _cupy_max_shared(self):
    # cudaDevAttrMaxSharedMemoryPerBlockOptin
    return int(self.xp.cuda.Device().attributes['MaxSharedMemoryPerBlockOptin'])


CupyBackend.whole_kernel = _cupy_whole_kernel
CupyBackend.max_shared = _cupy_max_shared
CupyBackend.zeros = lambda self, shape, dtype: self.xp.zeros(shape, dtype=dtype)
CupyBackend.to_host = staticmethod(lambda a: a.get())
CupyBackend.upload = lambda self, a: self.xp.asarray(a)


def reference_update(params, state, ids, labels, optimizer='sgd', lr=0.01, clip=0.0, skip_nonfinite=True,
                     activation='relu', alpha=0.9, eps=1e-7):
    """The same update on host NumPy arrays, through :mod:`.numpy_kernel` and the formulas
    of Chainer's softmax_cross_entropy, SkipNonFinite, GradientClipping and GPU update
    rules: (new params, new state, loss, accuracy, gradients before clipping). The truth
    the whole update checks itself against."""
    E, W, b, Wy, by = (numpy.array(a) for a in params)
    real = E.dtype.type
    B = ids.shape[0]
    hs, hT = numpy_kernel.forward(ids, E, W, b, True, activation)
    y = hT @ Wy.T + by
    z = y - y.max(axis=1, keepdims=True)
    logp = z - numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))
    rows = numpy.arange(B)
    loss = -logp[rows, labels].sum() / B
    accuracy = float((y.argmax(axis=1) == labels).mean())
    dy = numpy.exp(logp)
    dy[rows, labels] -= 1
    dy *= real(1) / real(B)
    dE, dW, db = numpy_kernel.backward(ids, hs, W, dy @ Wy, None, E.shape[0], activation)
    grads = [dE, dW, db, dy.T @ hT, dy.sum(axis=0)]
    used = [g.copy() for g in grads]
    if skip_nonfinite and not all(numpy.isfinite(g).all() for g in used):
        used = [numpy.zeros_like(g) for g in used]
    if clip:
        norm = numpy.sqrt(sum(real((g * g).sum()) for g in used))
        with numpy.errstate(divide='ignore', invalid='ignore'):
            rate = real(clip) / norm
        if not rate >= 1:
            used = [g * rate for g in used]
    new = [E, W, b, Wy, by]
    state = [numpy.array(s) for s in state] if state is not None else None
    for i, g in enumerate(used):
        if optimizer == 'rmsprop':
            state[i] = real(alpha) * state[i] + (1 - real(alpha)) * g * g
            new[i] = new[i] - real(lr) * g / (numpy.sqrt(state[i]) + real(eps))
        else:
            new[i] = new[i] - real(lr) * g
    return new, state, float(loss), accuracy, grads


_whole_checked = {}


def whole_self_check(be, p, activation, tol=None):
    """The compiled variant ``p`` against :func:`reference_update`: one RMSprop update with
    clipping reached on a random problem of 2 rows and 6 steps; KernelCheckError (one
    line) naming the worst array. Returns the differences."""
    dtype = numpy.float32 if p.real == 'float' else numpy.float64
    tol = tol or (1e-5 if dtype == numpy.float32 else 1e-11)
    rng = numpy.random.RandomState(4321)
    H, V, O, T, B = p.H, p.V, p.O, 6, 2
    params = [rng.normal(0, 0.5, (V, H)), numpy.eye(H) * 0.6 + rng.normal(0, 0.3 / numpy.sqrt(H), (H, H)),
              rng.normal(0, 0.1, H), rng.normal(0, 0.5, (O, H)), rng.normal(0, 0.1, O)]
    params[2][::4] = -5.0  # units that stay off (relu)
    params = [a.astype(dtype) for a in params]
    state = [numpy.abs(rng.normal(0, 0.01, a.shape)).astype(dtype) for a in params]
    ids = rng.randint(0, V, size=(B, T)).astype(numpy.int32)
    labels = rng.randint(0, O, size=B).astype(numpy.int32)
    kw = dict(optimizer='rmsprop', lr=1e-3, clip=0.1, activation=activation)
    want, want_state, _, _, want_grads = reference_update(params, state, ids, labels, **kw)
    dev = [be.upload(a) for a in params]
    dstate = [be.upload(a) for a in state]
    u = WholeUpdate(dev, B, T, state=dstate, backend=be, check=False, plan=p, **kw)
    u.update(be.upload(ids), be.upload(labels), be.upload(numpy.arange(B, dtype=numpy.int32)))
    grads, _ = u.gradients()
    diffs = collections.OrderedDict()
    for name, a, r in zip(WHOLE_PARAMS, grads, want_grads):
        diffs['d' + name] = _max_rel(be.to_host(a), r)
    for name, a, r in zip(WHOLE_PARAMS, dev, want):
        diffs[name] = _max_rel(be.to_host(a), r)  # a step of lr 1e-3 is ~2e-3 of their scale
    for name, a, r in zip(WHOLE_PARAMS, dstate, want_state):
        diffs['ms ' + name] = _max_rel(be.to_host(a), r)
    worst = max(diffs, key=diffs.get)
    if not diffs[worst] <= tol:
        raise KernelCheckError(
            'the CUDA whole update disagrees with the NumPy reference on this device (%s: relative '
            'difference %.3g > %g; H=%d, %s, %s); refusing to use it: train without it (the fused '
            'path)' % (worst, diffs[worst], tol, H, p.real, activation))
    return diffs


class WholeUpdate(object):
    """The whole update of one model on the device, buffers allocated once.

    ``params``: the five arrays of :data:`WHOLE_PARAMS` (E (V, H), W (H, H), b (H,),
    Wy (O, H), by (O,)), C-contiguous, one float dtype, on the device; they are updated
    in place. ``optimizer`` 'sgd' or 'rmsprop' (``alpha``, ``eps``: Chainer's RMSprop
    hyperparameters; ``state``: its five 'ms' arrays, updated in place, zeros when None).
    ``clip``: the global-norm threshold (0: none); ``skip_nonfinite``: a gradient with a
    non-finite element becomes zero for that update (the SkipNonFinite hook).

    ``update(data, labels, order, offset, lr)``: one update on the batch of the ``batch``
    examples ``order[offset:offset + batch]`` of ``data`` (N, T) int32 ids and ``labels``
    (N,) int32, all on the device: three kernel launches, nothing read back.
    ``read_stats()``: the one device-to-host copy (loss, accuracy summed since the last
    read, updates, skipped, the last update's loss and gradient norm)."""

    def __init__(self, params, batch, T, optimizer='sgd', lr=0.01, clip=0.0, skip_nonfinite=True,
                 activation='relu', alpha=0.9, eps=1e-7, state=None, backend=None, check=True, plan=None):
        be = self.backend = backend or default_backend()
        if len(params) != len(WHOLE_PARAMS):
            raise ValueError('the whole update takes %d parameters (%s), got %d'
                             % (len(WHOLE_PARAMS), ', '.join(WHOLE_PARAMS), len(params)))
        E, W, b, Wy, by = params
        V, H = E.shape
        O = Wy.shape[0]
        want = ((V, H), (H, H), (H,), (O, H), (O,))
        for name, a, shape in zip(WHOLE_PARAMS, params, want):
            if tuple(a.shape) != shape or a.dtype != E.dtype:
                raise ValueError('whole update: %s should be %s %s, got %s %s'
                                 % (name, shape, E.dtype, tuple(a.shape), a.dtype))
        if optimizer not in WHOLE_OPTIMIZERS:
            raise NotImplementedError('the CUDA whole update runs %s, got %r'
                                      % (' or '.join(WHOLE_OPTIMIZERS), optimizer))
        self.params = tuple(params)
        self.dtype = numpy.dtype(E.dtype)
        self.real = self.dtype.type
        self.B, self.T = int(batch), int(T)
        self.optimizer, self.lr, self.clip = optimizer, float(lr), float(clip or 0.0)
        self.skip = bool(skip_nonfinite)
        self.alpha, self.eps = float(alpha), float(eps)
        self.act = ACTS[check_activation(activation)]
        limit = be.max_shared() if hasattr(be, 'max_shared') else OPTIN_SHARED_LIMIT
        self.plan = plan or whole_plan(H, V, O, self.T, self.dtype, shared_limit=limit)
        self.shared = whole_shared_bytes(self.plan, self.T)
        if self.shared > limit:
            raise NotImplementedError('the CUDA whole update needs %d bytes of shared memory for %d steps '
                                      '(> %d on this device)' % (self.shared, self.T, limit))
        # the first use of each compiled variant with a backend checks it (see self_check)
        key = (be, self.plan, activation)
        if check and key not in _whole_checked:
            with _lock:
                if key not in _whole_checked:
                    _whole_checked[key] = whole_self_check(be, self.plan, activation)
        if optimizer == 'rmsprop':
            if state is None:
                state = tuple(be.zeros(a.shape, self.dtype) for a in params)
            if len(state) != len(params) or any(tuple(s.shape) != tuple(a.shape)
                                                for s, a in zip(state, params)):
                raise ValueError('whole update: the RMSprop state should be one ms array per parameter')
            self.state = tuple(state)
        else:
            self.state = None
        n = _part_size(self.plan)
        self.n_part = n
        self.n_reduce = -(-n // REDUCE_THREADS)
        self.n_apply = -(-(n - 2) // REDUCE_THREADS)
        self.part = be.zeros((self.B, n), self.dtype)
        self.grad = be.zeros((n,), self.dtype)
        self.hs = be.zeros((self.B, self.T, H), self.dtype)
        self.blocksq = be.zeros((self.n_reduce,), self.dtype)
        self.blockbad = be.zeros((self.n_reduce,), numpy.int32)
        self.stats = be.zeros((len(STATS),), numpy.float64)
        self._dummy = be.zeros((1,), self.dtype)
        self._k = [be.whole_kernel(fn, self.plan)
                   for fn in ('irnn_whole_rows', 'irnn_whole_reduce', 'irnn_whole_apply')]

    def update(self, data, labels, order, offset=0, lr=None):
        """One update (three launches); ``lr`` overrides the rate for this and later ones."""
        if lr is not None:
            self.lr = float(lr)
        i32, real = numpy.int32, self.real
        E, W, b, Wy, by = self.params
        rows, reduce_, apply_ = self._k
        rows((self.B,), (self.plan.threads,),
             (data, labels, order, i32(offset), E, W, b, Wy, by, self.hs, self.part,
              i32(self.B), i32(self.T), i32(self.act)), shared_mem=self.shared)
        reduce_((self.n_reduce,), (REDUCE_THREADS,), (self.part, self.grad, self.blocksq, self.blockbad,
                                                      i32(self.B)))
        ms = self.state or (self._dummy,) * 5
        apply_((self.n_apply,), (REDUCE_THREADS,),
               (self.grad, self.blocksq, self.blockbad, i32(self.n_reduce), E, W, b, Wy, by) + tuple(ms) +
               (self.stats, i32(self.B), i32(self.optimizer == 'rmsprop'), i32(self.skip),
                real(self.clip), real(self.lr), real(self.alpha), real(self.eps)))

    __call__ = update

    def gradients(self):
        """The last update's summed gradient (before clipping), one device array view per
        parameter, and the summed loss and correct count."""
        p, g = self.plan, self.grad
        sizes = [p.V * p.H, p.H * p.H, p.H, p.O * p.H, p.O]
        shapes = [(p.V, p.H), (p.H, p.H), (p.H,), (p.O, p.H), (p.O,)]
        out, at = [], 0
        for n, s in zip(sizes, shapes):
            out.append(g[at:at + n].reshape(s))
            at += n
        return out, g[at:at + 2]

    def read_stats(self, reset=True):
        """The statistics since the last read, copied to the host once: mean loss and
        accuracy over the updates, their count, how many were skipped, the last update's
        loss and gradient norm."""
        s = self.backend.to_host(self.stats)
        if reset:
            self.stats[...] = 0
        n = s[2]
        return {'loss': s[0] / n if n else float('nan'), 'accuracy': s[1] / n if n else float('nan'),
                'updates': int(n), 'skipped': int(s[3]), 'last_loss': float(s[4]),
                'last_norm': float(s[5])}


def whole_update(params, state, data, labels, order, offset=0, optimizer='sgd', lr=0.01, clip=0.0,
                 skip_nonfinite=True, activation='relu', alpha=0.9, eps=1e-7, backend=None):
    """One whole update (see :class:`WholeUpdate`; a training loop keeps one of those
    instead, so its buffers are allocated once). ``order``: the batch's example indices
    (at ``offset``), its length the batch size. Returns the WholeUpdate."""
    u = WholeUpdate(params, order.shape[0] - offset, data.shape[1], optimizer=optimizer, lr=lr,
                    clip=clip, skip_nonfinite=skip_nonfinite, activation=activation, alpha=alpha,
                    eps=eps, state=state, backend=backend)
    u.update(data, labels, order, offset)
    return u


def _chainer_params(model):
    """The five Parameters of a Classifier over a one-layer RNN of ids, in WHOLE_PARAMS
    order, or NotImplementedError naming what the whole update does not run."""
    import chainer.functions as F
    predictor = getattr(model, 'predictor', None)
    names = getattr(predictor, '_names', None)
    if predictor is None or names is None:
        raise NotImplementedError('the whole update runs a Classifier over the project\'s RNN, got %s'
                                  % type(predictor or model).__name__)
    if getattr(model, 'lossfun', None) is not F.softmax_cross_entropy:
        raise NotImplementedError('the whole update computes softmax cross entropy, the model\'s loss is %s'
                                  % getattr(model.lossfun, '__name__', model.lossfun))
    why = []
    if len(predictor.layers) != 1:
        why.append('%d layers' % len(predictor.layers))
    if predictor.input != 'ids':
        why.append('input %r' % predictor.input)
    if predictor.activation not in ACTS:
        why.append('activation %r' % predictor.activation)
    for opt in ('dropout', 'input_dropout', 'h0_noise'):
        if getattr(predictor, opt, 0):
            why.append('%s %s' % (opt, getattr(predictor, opt)))
    into, rec = names[0]
    byname = dict(predictor.namedparams())
    want = ['/%s/W' % into, '/%s/W' % rec, '/%s/b' % rec, '/h_to_y/W', '/h_to_y/b']
    if sorted(byname) != sorted(want):
        why.append('parameters %s' % ', '.join(sorted(byname)))
    if why:
        raise NotImplementedError('the whole update runs one layer of ids (relu or tanh) without dropout '
                                  'or h0 noise, got %s' % '; '.join(why))
    return [byname[n] for n in want], predictor.activation


def whole_update_for(optimizer, batch, T, backend=None, check=True):
    """A :class:`WholeUpdate` on a set-up Chainer optimizer's model, its arrays and
    RMSprop's 'ms' state shared (updated in place, so the model, the optimizer's
    serialization and every extension see them); NotImplementedError (one line) naming
    what it does not run: another model, optimizer (SGD and RMSprop only, eps outside the
    square root), or hook (SkipNonFinite and GradientClipping only). Per update the
    caller passes ``lr=optimizer.lr`` (extensions may change it) and then calls
    :func:`finish_chainer_update`."""
    import chainer
    from irnn_chainer.compat import api
    params, activation = _chainer_params(optimizer.target)
    if type(optimizer) is chainer.optimizers.SGD:
        name, kw = 'sgd', {}
    elif type(optimizer) is chainer.optimizers.RMSprop:
        if optimizer.eps_inside_sqrt:
            raise NotImplementedError('the whole update runs RMSprop with eps outside the square root')
        name, kw = 'rmsprop', {'alpha': optimizer.alpha, 'eps': optimizer.eps}
    else:
        raise NotImplementedError('the whole update runs SGD or RMSprop, got %s' % type(optimizer).__name__)
    clip, skip = 0.0, False
    for hook_name, hook in api.optimizer_hooks(optimizer):
        if hook_name == 'SkipNonFinite':
            skip = True
        elif hook_name == 'GradientClipping':
            clip = float(hook.threshold)
        else:
            raise NotImplementedError('the whole update runs the hooks SkipNonFinite and GradientClipping, '
                                      'got %s' % hook_name)
    if skip and clip and [n for n, _ in api.optimizer_hooks(optimizer)][0] != 'SkipNonFinite':
        raise NotImplementedError('the whole update skips a non-finite gradient before clipping it; '
                                  'the hooks run the other way round')
    for p in params:
        rule = p.update_rule
        if rule is None or not rule.enabled or rule.hyperparam.lr != optimizer.lr or api.optimizer_hooks(rule):
            raise NotImplementedError('the whole update runs the optimizer\'s own rule on every parameter, '
                                      '%s has another (disabled, its own lr or hooks)' % p.name)
    state = [api.init_rule_state(p)['ms'] for p in params] if name == 'rmsprop' else None
    return WholeUpdate([p.array for p in params], batch, T, optimizer=name, lr=optimizer.lr, clip=clip,
                       skip_nonfinite=skip, activation=activation, state=state, backend=backend,
                       check=check, **kw)


def finish_chainer_update(optimizer):
    """What Chainer's ``Optimizer.update`` does besides the step: count it in the
    optimizer's and every rule's ``t`` (snapshots and schedules read them)."""
    optimizer.t += 1
    for p in optimizer.target.params():
        if p.update_rule is not None and p.update_rule.enabled:
            p.update_rule.t += 1
