"""Kernels of the fused IRNN recurrence (:mod:`irnn_chainer.fused`).

CPU: the compiled C kernel (``_irnn_cpu``, built by setup.py when a C compiler is there;
the LSTM's through :mod:`.lstm_c`) or, when it is not built or ``IRNN_FUSED_KERNEL=numpy``
is set, the NumPy kernels (:mod:`.numpy_kernel`, :mod:`.lstm_numpy`).
:func:`backend_name` says which one runs and :func:`backend_description` why.

GPU: CuPy arrays go to the CUDA kernel :mod:`.cuda` (same interface as
:mod:`.numpy_kernel`: ``forward``, ``backward``, ``name``), or with ``IRNN_FUSED_KERNEL=numpy``
to the NumPy kernel on CuPy arrays (the array-module path). Without the CUDA module they
raise NotImplementedError, never fall back silently.

``IRNN_FUSED_KERNEL``: ``auto`` (default: C if built, else NumPy; CUDA on the GPU), ``c``
(C or an error; CPU only), ``numpy``. Read at each call, so tests can switch it.
"""
import importlib
import os

from irnn_chainer.kernels import numpy_kernel

ENV = 'IRNN_FUSED_KERNEL'
CHOICES = ('auto', 'c', 'numpy')

try:
    from irnn_chainer.kernels import c_kernel, lstm_c
    _c_error = None
except ImportError as e:  # not built (or built for another Python)
    c_kernel = lstm_c = None
    _c_error = '%s: %s' % (type(e).__name__, e)


def _choice():
    value = os.environ.get(ENV, 'auto').strip().lower() or 'auto'
    if value not in CHOICES:
        raise ValueError('%s: expected one of %s, got %r' % (ENV, ', '.join(CHOICES), value))
    return value


def cpu_kernel():
    """The CPU kernel module that runs now (honours ``IRNN_FUSED_KERNEL``)."""
    choice = _choice()
    if choice == 'numpy':
        return numpy_kernel
    if c_kernel is None:
        if choice == 'c':
            raise RuntimeError('%s=c but the C kernel is not built (%s); build it with '
                               '`python irnn_chainer/kernels/build.py` or reinstall with a C '
                               'compiler' % (ENV, _c_error))
        return numpy_kernel
    return c_kernel


def lstm_cpu_kernel():
    """The CPU kernel module of the fused LSTM (C or :mod:`.lstm_numpy`; same choice rules)."""
    if cpu_kernel() is c_kernel:
        return lstm_c
    from irnn_chainer.kernels import lstm_numpy
    return lstm_numpy


def gpu_kernel():
    """The CUDA kernel module, or NotImplementedError."""
    try:  # import_module: honours sys.modules (a module set to None is not importable)
        cuda = importlib.import_module('irnn_chainer.kernels.cuda')
    except ImportError as e:
        raise NotImplementedError(
            'fused GPU kernel not available (irnn_chainer.kernels.cuda: %s); CuPy arrays are '
            'not sent to the NumPy kernel: use impl=\'stepwise\' on the GPU' % e)
    return cuda


def get_kernel(xp):
    """The kernel for arrays of module ``xp`` (numpy or cupy)."""
    if getattr(xp, '__name__', '') == 'numpy':
        return cpu_kernel()
    choice = _choice()
    if choice == 'numpy':
        return numpy_kernel
    if choice == 'c':
        raise RuntimeError('%s=c is the CPU kernel; CuPy arrays run auto (CUDA) or numpy '
                           '(the array-module path)' % ENV)
    return gpu_kernel()


def backend_name():
    """``'c'`` or ``'numpy'``: the CPU kernel the fused recurrence runs now."""
    return cpu_kernel().name


def backend_description():
    """One line for ``irnn-chainer info``: the CPU kernel and why it is that one."""
    choice = _choice()
    if choice == 'numpy':
        return 'numpy (forced by %s=numpy)' % ENV
    if c_kernel is None:
        return 'numpy (C kernel not built: %s)' % _c_error
    return 'c (compiled extension %s, %s code)' % (os.path.basename(c_kernel._ext.__file__),
                                                  c_kernel.level())


def gpu_description():
    """One line for ``irnn-chainer info``: the kernel CuPy arrays run."""
    if _choice() == 'numpy':
        return 'numpy on CuPy arrays (forced by %s=numpy)' % ENV
    try:
        cuda = importlib.import_module('irnn_chainer.kernels.cuda')
    except ImportError as e:
        return 'none (%s)' % e
    return ('cuda (%s: NVRTC compiles it at first use, then it checks itself against the '
            'array-module path)' % os.path.basename(cuda.SOURCE_PATH))
