"""One API over the Chainer releases for what irnn-chainer does.

The rest of the package calls these functions and never tests version numbers itself.
Feature detection is used wherever possible; each adapter says which releases need it.
"""
import contextlib
import os
import tempfile

import numpy as np

import chainer


class DeviceError(Exception):
    """A device spec that cannot be used here (one line, for the CLI)."""


def versions():
    """Versions of the libraries that decide behaviour, as strings ('-' if absent)."""
    import platform
    out = {'python': platform.python_version(), 'numpy': np.__version__,
           'chainer': chainer.__version__, 'cupy': '-'}
    try:
        import importlib.metadata as md
        for dist in ('cupy', 'cupy-cuda12x', 'cupy-cuda13x', 'cupy-cuda11x'):
            try:
                out['cupy'] = '%s (%s)' % (md.version(dist), dist)
                break
            except md.PackageNotFoundError:
                continue
    except ImportError:
        pass
    return out


def register_links(chain, **links):
    """Register child links on ``chain``.

    Chainer >= 2 registers links assigned inside ``init_scope()``; 1.x (no
    init_scope) needs ``add_link``: a plain attribute there registers nothing.
    """
    if hasattr(chain, 'init_scope'):
        with chain.init_scope():
            for name in sorted(links):
                setattr(chain, name, links[name])
    else:
        for name in sorted(links):
            chain.add_link(name, links[name])


@contextlib.contextmanager
def no_graph():
    """Evaluate without building a graph and in test mode.

    Chainer >= 2: ``no_backprop_mode()`` + ``using_config('train', False)``.
    1.x has neither: there ``volatile`` Variables do the job (see :func:`as_input`).
    """
    if hasattr(chainer, 'using_config'):
        with chainer.no_backprop_mode(), chainer.using_config('train', False):
            yield
    else:
        yield


def scalar(value):
    """A Python float from a 0-d (or 1.0.1's shape-(1,)) Variable or array.

    ``float(v.data)`` fails for 1-element 1-D arrays on NumPy >= 2.4 and on GPU arrays.
    """
    data = getattr(value, 'data', value)
    if hasattr(data, 'get'):  # CuPy array
        data = data.get()
    return np.asarray(data).item()


def build_in_dtype(build, dtype):
    """Call ``build()`` so that the link it returns has ``dtype`` parameters.

    Chainer >= 5 initializers read ``config.dtype``; older releases always make float32,
    so the parameters are cast after building.
    """
    dtype = np.dtype(dtype)
    if hasattr(chainer.config, 'dtype'):
        with chainer.using_config('dtype', dtype):
            link = build()
    else:
        link = build()
    for param in link.params():
        if param.data is not None and param.data.dtype != dtype:
            param.data = param.data.astype(dtype)
    return link


def gradient_clipping(threshold):
    """The global-L2-norm clipping hook (``optimizer_hooks`` from 4.x, ``optimizer`` before)."""
    hooks = getattr(chainer, 'optimizer_hooks', None)
    if hooks is not None and hasattr(hooks, 'GradientClipping'):
        return hooks.GradientClipping(threshold)
    return chainer.optimizer.GradientClipping(threshold)


def setup_optimizer(optimizer, model, clip=None):
    """``optimizer.setup(model)`` plus gradient clipping when ``clip`` is set."""
    optimizer.setup(model)
    if clip:
        optimizer.add_hook(gradient_clipping(clip))
    return optimizer


def array_module(x):
    """numpy or cupy, for an array or Variable."""
    backend = getattr(chainer, 'backend', None)
    if backend is not None and hasattr(backend, 'get_array_module'):
        return backend.get_array_module(x)
    return chainer.cuda.get_array_module(x)


def cuda_status():
    """(usable, reason): whether CuPy can run kernels on a CUDA device here."""
    try:
        from chainer.backends import cuda
    except ImportError:
        from chainer import cuda
    if not getattr(cuda, 'available', False):
        try:
            import cupy  # noqa: F401
        except Exception as e:  # not installed, or its import failed
            return False, 'CuPy is not usable (%s)' % (str(e).splitlines()[0] if str(e) else type(e).__name__)
        return False, 'CuPy is installed but Chainer cannot use it (CUDA not available)'
    try:
        n = cuda.cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        return False, 'CUDA not available (%s)' % str(e).splitlines()[0]
    if n < 1:
        return False, 'CUDA not available (no CUDA device found)'
    return True, '%d CUDA device(s)' % n


def device_spec(device=None, gpu=None):
    """Normalise ``--device`` / ``--gpu`` to a Chainer device spec string.

    ``--gpu N`` (N >= 0) is Chainer's old spelling of ``--device @cupy:N``; -1 is the CPU.
    """
    if gpu is not None and device is not None:
        raise DeviceError('give --device or --gpu, not both (got --device %s --gpu %s)' % (device, gpu))
    if gpu is not None:
        return '@numpy' if int(gpu) < 0 else '@cupy:%d' % int(gpu)
    if device is None:
        return '@numpy'
    spec = str(device).strip()
    try:
        n = int(spec)
        return '@numpy' if n < 0 else '@cupy:%d' % n
    except ValueError:
        pass
    if spec in ('@numpy', 'native', 'cpu'):
        return '@numpy'
    if spec.startswith('@cupy:') and spec[6:].isdigit():
        return spec
    raise DeviceError("unknown device %r: expected '@numpy', '@cupy:N', N (a GPU id) or -1 (CPU)" % device)


def get_device(spec):
    """A Chainer device object for a normalised spec, or DeviceError with one line."""
    spec = device_spec(spec)
    if spec.startswith('@cupy:'):
        ok, why = cuda_status()
        if not ok:
            raise DeviceError('--gpu/--device %s: %s; run on the CPU (--device @numpy) '
                              'or install CuPy for your CUDA (pip install cupy-cuda12x)' % (spec, why))
    return chainer.get_device(spec)


def to_device(link, device):
    """Move a link's parameters to ``device`` (``to_device`` from 6.x, to_gpu/to_cpu before)."""
    if hasattr(link, 'to_device'):
        link.to_device(device)
    elif getattr(device, 'xp', np) is np:
        link.to_cpu()
    else:
        link.to_gpu(device.device.id)
    return link


def save_npz(path, obj):
    """``serializers.save_npz`` written atomically: a temp file in the same folder, then
    ``os.replace``, so an interrupted save never leaves a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='.npz', dir=directory)
    os.close(fd)
    try:
        chainer.serializers.save_npz(tmp, obj)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_npz(path, obj, path_in_file=''):
    """``serializers.load_npz``; ``path_in_file`` selects e.g. the model inside a trainer snapshot."""
    if path_in_file:
        chainer.serializers.load_npz(path, obj, path=path_in_file)
    else:
        chainer.serializers.load_npz(path, obj)
    return obj
