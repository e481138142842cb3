"""The models and what runs them: the IRNN and its baselines (``rnn.py``, one registry,
``MODELS``), the fused recurrence as one Chainer FunctionNode (``fused.py``, over the C /
NumPy / CUDA kernels of :mod:`irnn_chainer.kernels`), a run's saved weights (``weights.py``),
the input checks every model shares (``checks.py``) and the IRNN as every Chainer era builds
it, for the version matrix (``eras.py``).

May import: :mod:`irnn_chainer.kernels`, :mod:`irnn_chainer.compat`, the top-level helpers
(``errors``, ``files``) and, in ``weights.py`` only, the run folder and the data record.
"""


import importlib
import importlib.util


def __getattr__(name):
    # ``irnn_chainer.model.IRNN`` and the rest come from rnn.py, imported on first use: the
    # models are Chain subclasses, and eras.py / checks.py must import on Chainer 1.0 too
    # (import_module, not ``from irnn_chainer.model import rnn``, which would ask this hook).
    # ``from irnn_chainer.model import eras`` asks this hook too, before it imports the
    # submodule: a submodule is imported as itself, not through rnn.py.
    if importlib.util.find_spec('%s.%s' % (__name__, name)) is not None:
        return importlib.import_module('%s.%s' % (__name__, name))
    rnn = importlib.import_module('irnn_chainer.model.rnn')
    try:
        return getattr(rnn, name)
    except AttributeError:
        raise AttributeError('module %r has no attribute %r' % (__name__, name)) from None
