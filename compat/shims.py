"""Environment shims applied before ``import chainer``.

Each shim is applied only when the thing it provides is missing, and is recorded in
:data:`APPLIED` so ``irnn-chainer info`` can list what this interpreter needed.
Nothing here imports Chainer.
"""
import collections
import collections.abc
import importlib.util
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
    if 'pkg_resources' in sys.modules or importlib.util.find_spec('pkg_resources'):
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
    return APPLIED
