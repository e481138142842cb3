"""Environment shims: A-D, F and G before ``import chainer``, E after it.

Each shim is applied only when the thing it provides is missing or broken (found by
probing, not by version numbers), and is recorded in :data:`APPLIED` so
``irnn-chainer info`` and ``tools/matrix.py`` can list what this interpreter needed.
:func:`apply` (A-D) imports nothing from Chainer; :func:`apply_after_import` (E) is
called by :mod:`.api` right after it imports Chainer.
"""
import collections
import collections.abc
import glob
import importlib.util
import os
import sys
import types
import warnings

#: (name, why) for each shim applied in this process, in order.
APPLIED = []

_done = False


def _record(name, why):
    APPLIED.append((name, why))


def shim_numpy_sctypes():
    """A. ``np.sctypes`` was removed in NumPy 2.0; Chainer 6.7 and 7.8 read it at
    import (``functions/array/as_strided.py``)."""
    import numpy as np
    try:
        np.sctypes
        return False
    except AttributeError:
        pass
    np.sctypes = {
        'int': [np.int8, np.int16, np.int32, np.int64],
        'uint': [np.uint8, np.uint16, np.uint32, np.uint64],
        'float': [np.float16, np.float32, np.float64, np.longdouble],
        'complex': [np.complex64, np.complex128, np.clongdouble],
        'others': [bool, object, bytes, str, np.void],
    }
    _record('numpy.sctypes', 'removed in NumPy 2.0; Chainer 6.7/7.8 read it at import')
    return True


_ABC_NAMES = ('Iterable', 'Iterator', 'Sequence', 'MutableSequence', 'Mapping',
              'MutableMapping', 'Set', 'MutableSet', 'Callable', 'Hashable', 'Sized',
              'Container')


def shim_collections_abcs():
    """B. ``collections.Iterable`` etc. moved to ``collections.abc`` (gone from
    ``collections`` in Python 3.10); Chainer 1.0.1 uses them at import, 1.24 when a
    Chain is built."""
    missing = [n for n in _ABC_NAMES if not hasattr(collections, n)]
    if not missing:
        return False
    for name in missing:
        setattr(collections, name, getattr(collections.abc, name))
    _record('collections ABCs', 'removed from collections in Python 3.10; Chainer 1.x uses them')
    return True


def shim_pkg_resources():
    """C. setuptools >= 82 has no ``pkg_resources``; Chainer 1.3, 1.24, 2.1, 6.7 and
    7.8 import it (version checks of optional dependencies). A stand-in backed by
    ``importlib.metadata`` that never raises from ``require``."""
    if 'pkg_resources' in sys.modules:
        return False
    if importlib.util.find_spec('pkg_resources'):
        # setuptools 67-81 warn "pkg_resources is deprecated" on import, which Chainer's
        # import would print on every run: import it once here, quietly.
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            import pkg_resources  # noqa: F401
        return False
    import importlib.metadata as md

    mod = types.ModuleType('pkg_resources')
    mod.__doc__ = 'irnn_chainer stand-in for setuptools\' pkg_resources (removed in setuptools 82)'

    class DistributionNotFound(Exception):
        pass

    class VersionConflict(Exception):
        pass

    class _Dist(object):
        def __init__(self, name, version):
            self.project_name = name
            self.key = name.lower()
            self.version = version

    def get_distribution(name):
        try:
            return _Dist(name, md.version(name))
        except md.PackageNotFoundError:
            raise DistributionNotFound(name)

    def require(*requirements):
        return []

    mod.DistributionNotFound = DistributionNotFound
    mod.VersionConflict = VersionConflict
    mod.get_distribution = get_distribution
    mod.require = require
    sys.modules['pkg_resources'] = mod
    _record('pkg_resources stand-in', 'setuptools >= 82 removed it; Chainer imports it')
    return True


def _numpy_distutils_works():
    if importlib.util.find_spec('numpy.distutils') is None:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            import numpy.distutils.system_info  # noqa: F401
        return True
    except Exception:
        # NumPy 1.26 with setuptools >= 74: 'No module named distutils.msvccompiler'.
        for name in list(sys.modules):
            if name == 'numpy.distutils' or name.startswith('numpy.distutils.'):
                del sys.modules[name]
        return False


def shim_numpy_distutils():
    """D. Chainer 3.5-7.8 import ``numpy.distutils.system_info`` at import time (only
    used on macOS). It is gone in Python 3.12+ and broken with NumPy 1.26 +
    setuptools >= 74: a stub whose ``get_info`` returns ``{}``."""
    if _numpy_distutils_works():
        return False
    import numpy
    pkg = types.ModuleType('numpy.distutils')
    pkg.__path__ = []
    info = types.ModuleType('numpy.distutils.system_info')
    info.get_info = lambda name, notfound_action=0: {}
    pkg.system_info = info
    sys.modules['numpy.distutils'] = pkg
    sys.modules['numpy.distutils.system_info'] = info
    numpy.distutils = pkg
    _record('numpy.distutils stub', 'missing or broken (Python 3.12+, or NumPy 1.26 + setuptools >= 74)')
    return True


def cupy_has_cudnn():
    """Whether the installed CuPy (if any) ships its cuDNN module, found without importing
    CuPy: ``cupy/cuda/cudnn*`` next to CuPy's package files (CuPy 14 removed it).
    None when CuPy is not installed."""
    try:
        spec = importlib.util.find_spec('cupy')
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        if glob.glob(os.path.join(folder, 'cuda', 'cudnn*')):
            return True
    return False


def shim_chainer_cudnn():
    """F. CuPy 14 has no cuDNN; Chainer then warns at import ("cuDNN is not enabled")
    and skips its cuDNN branches anyway. Set ``CHAINER_CUDNN=0`` (before Chainer reads it)
    when CuPy is installed without cuDNN, unless the user set the variable."""
    if 'CHAINER_CUDNN' in os.environ or cupy_has_cudnn() is not False:
        return False
    os.environ['CHAINER_CUDNN'] = '0'
    _record('CHAINER_CUDNN=0', 'the installed CuPy has no cuDNN (CuPy 14 removed it)')
    return True


def shim_cupy_nccl_warning():
    """G. CuPy without NCCL prints a 7-line warning at import, on every run; only
    ChainerMN's multi-GPU communicators need NCCL (this project's ``--communicator naive``
    uses MPI). Filter that one message when CuPy is installed."""
    if cupy_has_cudnn() is None:
        return False
    warnings.filterwarnings('ignore', message=r'\s*nccl library could not be loaded', category=UserWarning)
    _record('CuPy NCCL warning hidden', 'only multi-GPU communicators need NCCL (nvidia-nccl-cu12)')
    return True


def apply():
    """Apply every environment shim that this interpreter needs (idempotent)."""
    global _done
    if _done:
        return APPLIED
    _done = True
    if 'chainer' in sys.modules:
        warnings.warn('chainer was imported before irnn_chainer: the compat shims may come too late')
    shim_numpy_sctypes()
    shim_collections_abcs()
    shim_pkg_resources()
    shim_numpy_distutils()
    shim_chainer_cudnn()
    shim_cupy_nccl_warning()
    return APPLIED


# --------------------------------------------------------------------------------------
# E. Chainer 1.0.1 after 2to3 (applied after ``import chainer``).
#
# 1.0.1 is Python 2 code; lib2to3 converts the syntax but not the semantics of ``/`` on
# ints, nor Python 2's habit of ordering arbitrary objects. Each patch below probes for
# the broken behaviour first, so on 1.3+ (already Python 3 code) nothing is patched.

def _as_mat(x):
    """``x`` as a (batch, features) matrix; 1.0.1 wrote ``x.size / x.shape[0]`` (a float)."""
    return x.reshape(x.shape[0], x.size // x.shape[0])


def _patch_linear_as_mat(chainer):
    import importlib
    import numpy as np
    try:
        linear = importlib.import_module('chainer.functions.linear')
    except ImportError:
        return False
    as_mat = getattr(linear, '_as_mat', None)
    if as_mat is None:
        return False
    try:
        as_mat(np.zeros((2, 3, 2), np.float32))
        return False
    except TypeError:  # 'float' object cannot be interpreted as an integer
        linear._as_mat = _as_mat
        return True
    except Exception:
        return False


def _patch_accuracy(chainer):
    import importlib
    import numpy as np
    try:
        # importlib, not ``import chainer.functions.accuracy``: the ``accuracy`` function
        # re-exported by chainer.functions hides the submodule of the same name.
        mod = importlib.import_module('chainer.functions.accuracy')
    except ImportError:
        return False
    cls = getattr(mod, 'Accuracy', None)
    if cls is None or not hasattr(cls, 'forward_cpu'):
        return False
    try:
        cls.forward_cpu(cls(), (np.zeros((2, 3), np.float32), np.zeros(2, np.int32)))
        return False
    except TypeError:
        pass
    except Exception:  # a later Accuracy that cannot be probed this way is not 1.0's
        return False

    def forward_cpu(self, inputs):
        y, t = inputs
        y = y.reshape(y.shape[0], y.size // y.shape[0])
        return np.asarray((y.argmax(axis=1) == t).mean(dtype=np.float32)),

    cls.forward_cpu = forward_cpu
    return True


def _patch_function_order(chainer):
    """1.0.1's backward keeps a heap of ``(-rank, function)``: Python 2 broke rank ties by
    comparing the objects (by address); Python 3 raises TypeError. Probe with two
    functions of equal rank, then order functions by id as Python 2 did."""
    import numpy as np
    Function = getattr(chainer, 'Function', None)
    if Function is None or Function.__lt__ is not object.__lt__:
        return False
    try:
        x = chainer.Variable(np.ones((1, 1), np.float32))
        y = (x * 2) + (x * 3)
        y.grad = np.ones((1, 1), np.float32)
        y.backward()
        return False
    except TypeError:
        Function.__lt__ = lambda a, b: id(a) < id(b)
        return True


_after_done = False


def apply_after_import():
    """E: patch what Chainer 1.0.1 gets wrong on Python 3 (after 2to3). Idempotent."""
    global _after_done
    if _after_done:
        return APPLIED
    _after_done = True
    import chainer
    fixed = [name for name, patch in (('Linear _as_mat', _patch_linear_as_mat),
                                      ('Accuracy.forward_cpu', _patch_accuracy),
                                      ('Function ordering', _patch_function_order))
             if patch(chainer)]
    if fixed:
        _record('chainer 1.0 py3 fixes (%s)' % ', '.join(fixed),
                'Python 2 integer division and object ordering in Chainer 1.0 after 2to3')
    return APPLIED
