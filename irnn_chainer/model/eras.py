"""The IRNN in every Chainer era, for the version matrix (tools/matrix.py) and its tests.

``FunctionSet`` of parameterised Functions in 1.0-1.3, a Chain via ``add_link`` in 1.24, via
``init_scope`` from 2.0 (:func:`irnn_chainer.compat.api.register_links`). Initial weights are
drawn with NumPy, not by Chainer's initializers, so the same seed gives the same model on
every version. compat/ knows the versions; this module builds our model with it.
"""
import numpy as np

import chainer
import chainer.functions as F

from irnn_chainer.model.checks import check_ids
from irnn_chainer.compat.api import (HAS_CONFIG, HAS_LINKS, as_input, build_in_dtype, is_function_set,
                                     param_arrays, set_param_arrays)


def draw_irnn_weights(seed, n_units=100, n_in=256, n_out=10, init_std=0.001):
    """The IRNN's random initial weights, from ``np.random.RandomState(seed)`` in a fixed
    order: ``pixel_to_h/W`` (n_in, n_units), then ``h_to_y/W`` (n_out, n_units), both
    N(0, init_std) in float64. This is the stream ``np.random.seed(seed)`` followed by
    building :class:`irnn_chainer.model.IRNN` (or the gist's two ``np.random.normal``
    calls) produces."""
    rng = np.random.RandomState(seed)
    w_in = rng.normal(0, init_std, (n_in, n_units))
    w_out = rng.normal(0, init_std, (n_out, n_units))
    return {'pixel_to_h/W': w_in, 'h_to_h/W': np.eye(n_units), 'h_to_h/b': np.zeros(n_units),
            'h_to_y/W': w_out, 'h_to_y/b': np.zeros(n_out)}


def build_irnn(seed=0, n_units=100, n_in=256, n_out=10, init_std=0.001, dtype=np.float32):
    """The IRNN (``pixel_to_h`` EmbedID, ``h_to_h`` identity Linear, ``h_to_y`` Linear) as
    this Chainer builds models, with the weights of :func:`draw_irnn_weights`.

    - 1.0-1.3: ``FunctionSet(pixel_to_h=F.EmbedID, h_to_h=F.Linear, h_to_y=F.Linear)``,
      weights written into the Functions' arrays in place.
    - Link era: :class:`irnn_chainer.model.IRNN` (a Chain; :func:`register_links` uses
      ``add_link`` before 2.0 and ``init_scope`` from 2.0), parameters overwritten.
    """
    weights = draw_irnn_weights(seed, n_units, n_in, n_out, init_std)
    if HAS_LINKS:
        from irnn_chainer.model.rnn import IRNN
        model = build_in_dtype(lambda: IRNN(n_units=n_units, n_in=n_in, n_out=n_out,
                                            init_std=init_std), dtype)
    else:
        model = chainer.FunctionSet(pixel_to_h=F.EmbedID(n_in, n_units),
                                    h_to_h=F.Linear(n_units, n_units),
                                    h_to_y=F.Linear(n_units, n_out))
        for fn in (model.pixel_to_h, model.h_to_h, model.h_to_y):
            for pname, gname in zip(fn.parameter_names, fn.gradient_names):
                setattr(fn, pname, getattr(fn, pname).astype(dtype))
                setattr(fn, gname, np.zeros_like(getattr(fn, pname)))
    set_param_arrays(model, weights)
    return model


def irnn_forward(model, x):
    """Logits of the IRNN built by :func:`build_irnn` for pixel ids ``x`` (batch, time).

    ``x`` is validated by :func:`irnn_chainer.model.checks.check_ids` on every version. From 2.0 this calls the
    model; on 1.x the recurrence runs here, with :func:`as_input` Variables (volatile
    inside :func:`no_graph`) — 1.x links would otherwise build a graph during evaluation.
    """
    if not is_function_set(model) and HAS_CONFIG:
        return model(x)
    w_in = param_arrays(model)['pixel_to_h/W']
    x = check_ids(x, w_in.shape[0])
    xs = np.ascontiguousarray(x.T)
    h = as_input(np.zeros((x.shape[0], w_in.shape[1]), dtype=w_in.dtype))
    for t in range(xs.shape[0]):
        h = F.relu(model.pixel_to_h(as_input(xs[t])) + model.h_to_h(h))
    return model.h_to_y(h)
