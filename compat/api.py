"""One API over Chainer 1.0.1 ... 7.8.1 for what irnn-chainer does.

The rest of the package calls these functions and never tests version numbers itself.
Features are detected (``HAS_LINKS``, ``HAS_CONFIG``, ``HAS_HOOKS``, ``SAVE_FORMAT``, probes
in :mod:`.shims`), never parsed from version strings; each adapter says which releases
need it and why. tools/matrix.py runs the same fixed-seed check through this module (and irnn_chainer/model/eras.py,
the IRNN built in every era) on
9 Chainer releases x NumPy 1.26 / 2.x.

What differs, in short: models are ``FunctionSet`` s of parameterised Functions in 1.0-1.3,
Chains later (1.24 tested: ``add_link``; from 2.0 ``init_scope``); evaluation without a graph
is ``volatile`` Variables in 1.x, ``no_backprop_mode`` + ``using_config`` from 2.0;
clipping is ``optimizer.clip_grads`` in 1.0-1.3, an optimizer hook in the Link era; saving
is an npz everywhere (of the parameter arrays in 1.0-1.3, never a pickle); losses have shape (1,) in 1.0.1.
"""
import contextlib
import inspect
import os

import numpy as np

import chainer
import chainer.functions as F

from . import shims as _shims

_shims.apply_after_import()  # E: Chainer 1.0.1's Python-2 leftovers (no-op elsewhere)

# Feature flags, each found by looking for the feature (never by version number).
#: The Link era (1.24, ... 7.8.1 here) has Link/Chain; 1.0-1.3 build models as FunctionSet of parameterised Functions.
HAS_LINKS = hasattr(chainer, 'Chain')
#: Chainer >= 2 has ``using_config``/``no_backprop_mode`` for every Variable; 1.x needs
#: ``volatile`` Variables to evaluate without a graph.
HAS_CONFIG = hasattr(chainer, 'using_config')
#: The Link era has ``serializers`` (Chainer's npz); 1.0-1.3 FunctionSets are saved as an npz of
#: their parameter arrays (1.0-1.3 programs pickled them; a pickle can run code when loaded).
SAVE_FORMAT = 'npz' if hasattr(chainer, 'serializers') else 'npz (parameter arrays)'
#: Link-era optimizers take hooks (GradientClipping); 1.0-1.3 call clip_grads().
HAS_HOOKS = hasattr(chainer.optimizer.Optimizer, 'add_hook')

_no_graph_depth = [0]


class DeviceError(Exception):
    """A device spec that cannot be used here (one line, for the CLI)."""


def chainer_version():
    """Chainer's version string (1.0.1 has no ``chainer.__version__``: ask the installed
    distribution's metadata)."""
    version = getattr(chainer, '__version__', None)
    if version is None:
        try:
            import importlib.metadata as md
            version = md.version('chainer')
        except Exception:
            version = 'unknown'
    return version


def versions():
    """Versions of the libraries that decide behaviour, as strings ('-' if absent)."""
    import platform
    out = {'python': platform.python_version(), 'numpy': np.__version__,
           'chainer': chainer_version(), 'cupy': '-'}
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


def stateless_gru(n_in, n_units):
    """A GRU link called as ``gru(h, x)`` -> the next h (h and x: (batch, units / n_in)).

    Chainer >= 2: ``L.StatelessGRU(in_size, out_size)``. 1.x: ``L.GRU(n_units, n_inputs)``,
    which was the stateless one then (2.0 made ``L.GRU`` stateful and added StatelessGRU).
    1.0 and 1.3 have no links at all.
    """
    try:
        import chainer.links as L
    except ImportError:  # 1.0 and 1.3: FunctionSet, no links
        raise NotImplementedError('Chainer %s has no GRU link' % chainer_version())
    if hasattr(L, 'StatelessGRU'):
        return L.StatelessGRU(n_in, n_units)
    if hasattr(L, 'GRU'):
        return L.GRU(n_units, n_in)
    raise NotImplementedError('Chainer %s has no GRU link' % chainer_version())


@contextlib.contextmanager
def no_graph():
    """Evaluate without building a graph and in test mode.

    Chainer >= 2: ``no_backprop_mode()`` + ``using_config('train', False)``.
    1.24 has ``no_backprop_mode`` but it only affects ``volatile='auto'`` Variables, and
    1.0-1.3 have neither: there the inputs must be ``volatile`` Variables, which
    :func:`as_input` makes while this context is active.
    """
    _no_graph_depth[0] += 1
    try:
        if HAS_CONFIG:
            with chainer.no_backprop_mode(), chainer.using_config('train', False):
                yield
        elif hasattr(chainer, 'no_backprop_mode'):
            with chainer.no_backprop_mode():
                yield
        else:
            yield
    finally:
        _no_graph_depth[0] -= 1


def training_mode():
    """True while training (Chainer >= 2: ``config.train``; 1.x has no such switch: the
    Trainer and this package's evaluation both go through ``no_graph`` there, so True)."""
    return bool(chainer.config.train) if HAS_CONFIG else True


def as_input(array):
    """A Variable holding ``array`` for a model input.

    Inside :func:`no_graph` on Chainer 1.x it is ``volatile`` (1.x's way of not building a
    graph; 2.x removed the argument and raises on it).
    """
    if not HAS_CONFIG and _no_graph_depth[0]:
        return chainer.Variable(array, volatile=True)
    return chainer.Variable(array)


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
    if hasattr(getattr(chainer, 'config', None), 'dtype'):  # no chainer.config before 2.0
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


def optimizer_hooks(optimizer):
    """[(name, hook)] of an optimizer's (or an update rule's) hooks, 'pre' then 'post'
    (``_pre_update_hooks`` / ``_post_update_hooks`` from 4.x on, on a rule inside its
    ``_hookable``; one ``_hooks`` dict before)."""
    holder = getattr(optimizer, '_hookable', optimizer)
    out = []
    for attr in ('_pre_update_hooks', '_post_update_hooks', '_hooks'):
        out += list(getattr(holder, attr, {}).items())
    return out


def init_rule_state(param):
    """The update rule's state dict of ``param``, created now if the rule has not yet run
    (Chainer 2+ creates it at a rule's first update, in ``UpdateRule._init_states``)."""
    rule = param.update_rule
    if rule.state is None:
        rule._init_states(param)
    return rule.state


try:  # StandardUpdater's converter call (honours input_device for either converter style)
    from chainer.dataset.convert import _call_converter as _converter_call
except ImportError:  # before Chainer 7
    _converter_call = None


def hand_update_missing(optimizer):
    """None when this Chainer exposes what an update made by hand needs (the updater's
    converter call, the rules' state creation, pre/post optimizer hooks and ``call_hook``),
    else a short phrase saying what it lacks."""
    if _converter_call is None:
        return "this Chainer's updater has no converter call (Chainer 7 has)"
    if not hasattr(chainer.optimizer.UpdateRule, '_init_states'):
        return 'this Chainer creates no update-rule state on demand (UpdateRule._init_states)'
    hookable = getattr(optimizer, '_hookable', None)
    if hookable is None or not hasattr(hookable, '_pre_update_hooks') or not hasattr(optimizer, 'call_hook'):
        return 'this Chainer has no pre/post optimizer hooks'
    return None


def call_converter(converter, batch, device):
    """The arrays of ``batch`` as StandardUpdater converts them (see hand_update_missing)."""
    return _converter_call(converter, batch, device)


def update_hooks(optimizer):
    """(pre, post): the optimizer's hooks in registration order, those Optimizer.update calls
    before the rules' step and those after (see hand_update_missing)."""
    hookable = optimizer._hookable
    return list(hookable._pre_update_hooks.values()), list(hookable._post_update_hooks.values())


def call_hook(optimizer, hook):
    """One optimizer hook as Optimizer.update calls it (per parameter where it asks to be)."""
    optimizer.call_hook(hook)


def setup_optimizer(optimizer, model, clip=None):
    """``optimizer.setup(model)`` plus gradient clipping when ``clip`` is set.

    A FunctionSet (1.0-1.3) is set up as ``setup(model.collect_parameters())``, the only
    form 1.0 accepts (1.3 takes both). Without optimizer hooks (1.0-1.3) the threshold
    is kept on the optimizer and :func:`update` calls ``clip_grads`` after backward.
    """
    if is_function_set(model):
        optimizer.setup(model.collect_parameters())
    else:
        optimizer.setup(model)
    if clip:
        if HAS_HOOKS:
            optimizer.add_hook(gradient_clipping(clip))
        else:
            optimizer._irnn_clip = float(clip)
    return optimizer


def clear_grads(optimizer, model):
    """Zero (or drop) the gradients before backward.

    ``Link.cleargrads`` (1.24 has it; the only way from 2.0, where ``zero_grads`` is gone);
    ``Link.zerograds`` in the early Link era; ``optimizer.zero_grads()`` for 1.0-1.3.
    """
    if hasattr(model, 'cleargrads'):
        model.cleargrads()
    elif hasattr(model, 'zerograds'):
        model.zerograds()
    else:
        optimizer.zero_grads()


def update(optimizer, model, loss):
    """One update from ``loss``: clear grads, backward, clip (1.0-1.3 by hand), step."""
    clear_grads(optimizer, model)
    loss.backward()
    clip = getattr(optimizer, '_irnn_clip', None)
    if clip:
        optimizer.clip_grads(clip)
    optimizer.update()


def array_of(v):
    """The array inside a Variable (``.array`` from Chainer 3 on, ``.data`` before); an array
    is returned as it is."""
    if isinstance(v, chainer.Variable):
        return v.array if hasattr(v, 'array') else v.data
    return v


def array_module(x):
    """numpy or cupy, for an array or Variable (``chainer.backend`` 5.x+,
    ``cuda.get_array_module`` 1.3+; 1.0 has PyCUDA arrays and no such helper)."""
    backend = getattr(chainer, 'backend', None)
    if backend is not None and hasattr(backend, 'get_array_module'):
        return backend.get_array_module(x)
    if hasattr(chainer.cuda, 'get_array_module'):
        return chainer.cuda.get_array_module(x)
    return np


def _chainer_cuda():
    try:
        from chainer.backends import cuda
    except ImportError:  # Chainer < 5
        from chainer import cuda
    return cuda


def _first_line(e):
    """``Type: message`` in one line. CuPy's import errors are a banner of ``=`` lines
    around 'Failed to import CuPy ... Original error: <the error>': that one is taken."""
    lines = [l.strip() for l in str(e).splitlines() if any(c.isalnum() for c in l)]
    if not lines:
        return type(e).__name__
    for i, line in enumerate(lines[:-1]):
        if line.startswith('Original error'):
            return '%s: %s' % (type(e).__name__, lines[i + 1])
    return '%s: %s' % (type(e).__name__, lines[0])


#: pip's name for CuPy with its CUDA libraries (cuBLAS, NVRTC, ...) from PyPI.
CUPY_HINT = 'pip install "cupy-cuda12x[ctk]" (CUDA 12 drivers) or "cupy-cuda13x[ctk]" (CUDA 13)'


def cuda_status(device_id=None):
    """(usable, reason): whether CuPy can run kernels on a CUDA device here (device
    ``device_id`` when given). Each reason is the real one: CuPy missing, Chainer's own
    reason for not using it (``cuda._resolution_error``, e.g. a CUDA library not found),
    no usable driver, no such device. Asks the driver (device count), so a Chainer that
    reports CUDA available on a machine without a driver still gets its one-line reason."""
    cuda = _chainer_cuda()
    if not getattr(cuda, 'available', False):
        try:
            import cupy  # noqa: F401
        except Exception as e:  # not installed, or its import failed
            return False, 'CuPy is not usable (%s); %s' % (_first_line(e), CUPY_HINT)
        why = getattr(cuda, '_resolution_error', None)
        if why is not None:
            return False, 'Chainer cannot use CuPy (%s); %s' % (_first_line(why), CUPY_HINT)
        return False, 'CuPy is installed but Chainer cannot use it (CUDA not available)'
    try:
        n = cuda.cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        return False, 'no usable CUDA driver (%s)' % _first_line(e)
    if n < 1:
        return False, 'no CUDA device found'
    if device_id is not None and device_id >= n:
        return False, 'no CUDA device %d (%d device(s): 0 .. %d)' % (device_id, n, n - 1)
    return True, '%d CUDA device(s)' % n


def cuda_details():
    """(name, value) lines for ``irnn-chainer info``: CuPy and its wheel, whether Chainer
    sees CUDA (and Chainer's reason when not), driver and runtime versions, device count,
    cuDNN."""
    rows = [('cupy', versions()['cupy'])]
    cuda = _chainer_cuda()
    available = bool(getattr(cuda, 'available', False))
    why = getattr(cuda, '_resolution_error', None)
    rows.append(('chainer sees CUDA', 'yes' if available else
                 'no (%s)' % (_first_line(why) if why is not None else 'CuPy not importable')))
    cupy = getattr(cuda, 'cupy', None) if available else None
    if cupy is not None:
        runtime = cupy.cuda.runtime
        try:
            rows.append(('CUDA runtime', str(runtime.runtimeGetVersion())))
        except Exception as e:
            rows.append(('CUDA runtime', 'unknown (%s)' % _first_line(e)))
        try:
            version = runtime.driverGetVersion()
            rows.append(('CUDA driver', str(version) if version else 'none (driverGetVersion() = 0)'))
        except Exception as e:
            rows.append(('CUDA driver', 'none (%s)' % _first_line(e)))
        try:
            rows.append(('devices', str(runtime.getDeviceCount())))
        except Exception as e:
            rows.append(('devices', '0 (%s)' % _first_line(e)))
    enabled = bool(getattr(cuda, 'cudnn_enabled', False))
    has = _shims.cupy_has_cudnn()
    rows.append(('cuDNN', 'on' if enabled else 'off (%s; CHAINER_CUDNN=%s)' % (
        {None: 'no CuPy', False: 'CuPy has no cuDNN'}.get(has, 'not enabled'),
        os.environ.get('CHAINER_CUDNN', 'unset'))))
    return rows


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
    """A Chainer device object for a normalised spec, or DeviceError with one line.

    A CUDA device is also used once (selected, one array allocated): that first device
    call is where a missing driver or library shows itself, so it fails here, in one line,
    and not as a traceback inside the training loop."""
    spec = device_spec(spec)
    if spec.startswith('@cupy:'):
        n = int(spec[6:])
        ok, why = cuda_status(n)
        if not ok:
            raise DeviceError('--gpu/--device %s: %s; or run on the CPU (--device @numpy)' % (spec, why))
        try:
            cupy = _chainer_cuda().cupy
            with cupy.cuda.Device(n):
                cupy.zeros(1, dtype=np.float32).sum().get()
        except Exception as e:
            raise DeviceError('--gpu/--device %s: the first CUDA call failed (%s); or run on the '
                              'CPU (--device @numpy)' % (spec, _first_line(e)))
    if hasattr(chainer, 'get_device'):
        return chainer.get_device(spec)
    return _LegacyDevice(spec)


class _LegacyDevice(object):
    """What this project uses of a Chainer device (``chainer.get_device`` is 6.x+)."""

    def __init__(self, spec):
        self.spec = spec
        self.id = int(spec.split(':')[1]) if spec.startswith('@cupy:') else -1
        if self.id < 0:
            self.xp = np
        else:
            try:
                import cupy
                self.xp = cupy
            except ImportError:  # 1.0-1.3 use PyCUDA, not CuPy
                self.xp = None

    def __repr__(self):
        return '<device %s>' % self.spec


def to_device(link, device):
    """Move a link's (or FunctionSet's) parameters to ``device``.

    ``to_device`` from 6.x; ``to_gpu(id)`` / ``to_cpu()`` before. Chainer 1.0-1.3 run on
    PyCUDA and need ``cuda.init(id)`` first.
    """
    if hasattr(link, 'to_device'):
        link.to_device(device)
        return link
    dev_id = getattr(device, 'id', None)
    if dev_id is None:
        dev_id = device.device.id if getattr(device, 'xp', np) is not np else -1
    if dev_id < 0:
        link.to_cpu()
    else:
        cuda = chainer.cuda
        if hasattr(cuda, 'init'):  # PyCUDA era
            cuda.init(dev_id)
        link.to_gpu(dev_id)
    return link


def run_trainer(trainer, quiet_errors=False):
    """``trainer.run()``; ``quiet_errors``: do not print the traceback of an exception that
    leaves the loop (an expected one, e.g. a pruned sweep trial). Chainer 7 prints it
    unless ``show_loop_exception_msg=False``, a parameter older Trainers do not have."""
    if quiet_errors:
        try:
            params = inspect.signature(trainer.run).parameters
        except (TypeError, ValueError):
            params = {}
        if 'show_loop_exception_msg' in params:
            return trainer.run(show_loop_exception_msg=False)
    return trainer.run()


def save_npz(path, obj, write_atomic):
    """``serializers.save_npz`` (Link era) written atomically by ``write_atomic(path,
    write(tmp), suffix)`` (the package's ``irnn_chainer.files.write_atomic``: this module
    imports nothing of the package, so the writer comes as an argument)."""
    write_atomic(path, lambda tmp: chainer.serializers.save_npz(tmp, obj), suffix='.npz')


def load_npz(source, obj, path_in_file=''):
    """Load ``obj`` from a ``serializers.save_npz`` file with pickles refused.

    ``source``: a path, or the {name: array} mapping of an npz already read (e.g. by
    ``irnn_chainer.files.load_npz``, which gives one-line errors). Chainer's own
    ``load_npz`` opens files with ``allow_pickle=True`` (on every release that has the
    flag), so a crafted file would run code: here a Chainer ``NpzDeserializer`` reads from
    ``np.load(..., allow_pickle=False)`` instead. ``path_in_file`` selects e.g. the model
    inside a trainer snapshot ('updater/model:main/'), walked with ``deserializer[key]``,
    which every release's NpzDeserializer has.
    """
    if isinstance(source, (str, bytes, os.PathLike)):
        with np.load(source, allow_pickle=False) as f:
            source = {k: f[k] for k in f.files}
    deserializer = chainer.serializers.NpzDeserializer(source)
    for key in [k for k in path_in_file.split('/') if k]:
        deserializer = deserializer[key]
    deserializer.load(obj)
    return obj


# --------------------------------------------------------------------------------------
# Models of every era: FunctionSet (1.0-1.3), Chain via add_link (1.24), Chain via
# init_scope (2.0+). (The IRNN built in each of them: irnn_chainer/model/eras.py.)

def is_function_set(model):
    """True for a 1.0-1.3 style ``FunctionSet`` (no Links: parameters live on Functions)."""
    return not (HAS_LINKS and isinstance(model, chainer.Link)) and hasattr(model, 'collect_parameters')


def model_kind(model):
    """'FunctionSet', 'Chain+add_link' or 'Chain+init_scope': how this Chainer built ``model``."""
    if is_function_set(model):
        return 'FunctionSet'
    return 'Chain+init_scope' if hasattr(model, 'init_scope') else 'Chain+add_link'


def param_arrays(model):
    """{'pixel_to_h/W': ndarray, ...} of ``model`` (FunctionSet or Link), sorted by name.

    The arrays are the model's own (not copies): 1.0-1.3 keep ndarrays on the Functions,
    Links keep Variables (``.data``; ``.array`` from 3.x, same object).
    """
    out = {}
    if is_function_set(model):
        for name, fn in sorted(vars(model).items()):
            for pname in getattr(fn, 'parameter_names', ()):
                out['%s/%s' % (name, pname)] = getattr(fn, pname)
    else:
        for path, param in model.namedparams():
            out[path.lstrip('/')] = param.data
    return dict(sorted(out.items()))


def set_param_arrays(model, arrays):
    """Copy ``arrays`` (as from :func:`param_arrays`) into ``model``'s parameters in place."""
    own = param_arrays(model)
    missing = sorted(set(own) - set(arrays))
    if missing:
        raise ValueError('parameters missing from the given arrays: %s' % ', '.join(missing))
    for name, dst in own.items():
        src = np.asarray(arrays[name])
        if src.shape != dst.shape:
            raise ValueError('%s: expected shape %s, got %s' % (name, dst.shape, src.shape))
        if isinstance(dst, np.ndarray):
            dst[...] = src
        else:  # a GPU array
            dst.set(src.astype(dst.dtype)) if hasattr(dst, 'set') else dst.__setitem__(Ellipsis, src)


def classification_loss(y, t):
    """Mean softmax cross-entropy of logits ``y`` against int labels ``t`` (int32 on every
    version: 1.3-1.24 reject other integer types). 1.0.1's loss has shape (1,), later ()
    — read it with :func:`scalar`."""
    t = np.asarray(getattr(t, 'data', t))
    if t.dtype.kind not in 'iu' or t.ndim != 1:
        raise TypeError('t: expected a 1-D integer array of class labels, got %s %s array'
                        % (t.dtype, t.shape))
    return F.softmax_cross_entropy(y, as_input(t.astype(np.int32)))


def save_model(path, model, write_atomic):
    """Save ``model``'s parameters to ``path``, atomically by ``write_atomic`` (as
    :func:`save_npz`): Chainer's npz where it has ``serializers`` (Link era), else (1.0-1.3
    FunctionSets) an npz of :func:`param_arrays`: not the pickle those programs wrote,
    because loading a pickle can run code."""
    if is_function_set(model):
        def write(tmp):
            with open(tmp, 'wb') as f:  # a file object: np.savez would append '.npz' to a name
                np.savez(f, **param_arrays(model))
        write_atomic(path, write)
    else:
        write_atomic(path, lambda tmp: chainer.serializers.save_npz(tmp, model), suffix='.npz')


def load_model(path, model):
    """Load parameters saved by :func:`save_model` into ``model`` (in place, pickles refused);
    returns it."""
    if is_function_set(model):
        with np.load(path, allow_pickle=False) as f:
            set_param_arrays(model, {k: f[k] for k in f.files})
    else:
        load_npz(path, model)
    return model
