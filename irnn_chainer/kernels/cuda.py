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
