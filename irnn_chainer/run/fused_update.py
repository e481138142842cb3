"""The whole training update in one pass on the fused path, without Chainer's graph.

:class:`FusedUpdater` is a ``StandardUpdater``: the Trainer, its extensions, snapshots and
``--resume`` see the same updater, iterator and optimizer as ever. When the model and the
optimizer are ones it covers (:func:`why_not`), each update runs

    the fused recurrence (the CPU kernel), the readout, softmax cross-entropy and accuracy,
    the backward pass, the optimizer's hooks (global-norm clipping done here; any other, e.g.
    skip-non-finite, --grad-noise or Chainer's WeightDecay, called as Chainer calls it)
    and the step of SGD, MomentumSGD, RMSprop or Adam,

on the parameter arrays directly. Every operation is the one Chainer's functions, hooks and
update rules perform, in the same order and dtype, so the two paths agree to rounding (the
tests hold them to 1e-12 in float64 and 1e-5 in float32 over 100 updates of each optimizer).
The optimizer state lives where Chainer keeps it (each parameter's ``UpdateRule.state`` and
``t``, the optimizer's ``t`` and ``epoch``), so snapshots are Chainer's own and resume on
either path. It reports ``main/loss``, ``main/accuracy`` and, with the skip hook, ``skipped``,
and leaves the final gradients in ``param.grad``, as the standard update does.

Anything else (another model, loss or optimizer, per-parameter hooks, the LSTM, several
layers, real-valued input, GPU arrays, ChainerMN's optimizer, loss scaling, debug mode) runs
the standard update, decided again at every update: the reason is in
``updater.fallback_reason`` (None while the whole-update path runs). The per-update seeded draws of ``--h0-noise``, ``--dropout`` and ``--input-dropout`` are made exactly as the
model makes them (:meth:`irnn_chainer.model.RNN.initial_state`,
:func:`~irnn_chainer.model.readout_dropout`, :func:`~irnn_chainer.model.input_dropout`), and
h_0 enters as the fused recurrence takes it (one extra table row per sequence).
"""
import numpy as np

import chainer
import chainer.functions as F
import chainer.links as L
from chainer import optimizers
from chainer.training import updaters

from irnn_chainer import kernels
from irnn_chainer.model import rnn as model_mod
from irnn_chainer.compat import api


_RULES = (optimizers.SGD, optimizers.MomentumSGD, optimizers.RMSprop, optimizers.Adam)


# Chainer's global-norm clipping hook (optimizer_hooks from 4.x, chainer.optimizer before):
# the one hook this path runs itself instead of calling it
_CLIP_TYPES = tuple(t for t in (getattr(getattr(chainer, 'optimizer_hooks', None), 'GradientClipping', None),
                                getattr(chainer.optimizer, 'GradientClipping', None)) if t is not None)


def why_not(updater):
    """None when the next update can run whole here, else a short reason (for
    ``fallback_reason``, the tests and the docs)."""
    optimizer = updater.get_optimizer('main')
    missing = api.hand_update_missing(optimizer)
    if missing is not None:
        return missing
    if type(optimizer) not in _RULES:
        return 'optimizer %s' % type(optimizer).__name__
    if updater.loss_func is not None or getattr(optimizer, '_loss_scale', None) is not None or \
            getattr(optimizer, '_loss_scaling_is_dynamic', False):
        return 'a loss function or loss scaling of its own'
    if chainer.is_debug():
        return 'debug mode'
    clf = optimizer.target
    if type(clf) is not L.Classifier or clf.lossfun is not F.softmax_cross_entropy or \
            clf.accfun is not F.accuracy or clf.label_key != -1:
        return 'not a Classifier with softmax cross-entropy and accuracy'
    rnn = clf.predictor
    if not isinstance(rnn, model_mod.RNN) or rnn.impl != 'fused' or rnn.input != 'ids' or len(rnn.layers) != 1:
        return 'not a one-layer fused RNN over ids'
    if type(rnn).forward is not model_mod.RNN.forward:
        return 'a predictor with a forward of its own'
    if rnn.xp is not np:
        return 'arrays not on the CPU'
    params = list(clf.params(False))
    for p in params:
        rule = p.update_rule
        if p.array is None or p.array.dtype not in (np.float32, np.float64):
            return 'a parameter that is not float32 or float64'
        if rule is None or api.optimizer_hooks(rule) or getattr(rule, '_use_fp32_update', False) or \
                getattr(p, '_loss_scale', None) is not None:
            return 'a per-parameter update rule hook or setting'
    hp = optimizer.hyperparam
    if isinstance(optimizer, optimizers.Adam) and (getattr(hp, 'amsgrad', False) or getattr(hp, 'adabound', False)):
        return 'Adam with amsgrad or adabound'
    if isinstance(optimizer, optimizers.RMSprop) and getattr(hp, 'eps_inside_sqrt', False):
        return 'RMSprop with eps_inside_sqrt'
    return None


class FusedUpdater(updaters.StandardUpdater):
    """``StandardUpdater`` that runs the whole update in one pass where it covers the model
    (see the module's docstring), and the standard update elsewhere."""

    fallback_reason = 'not run yet'

    def update_core(self):
        reason = why_not(self)
        self.fallback_reason = reason
        if reason is not None:
            return super(FusedUpdater, self).update_core()
        iterator = self._iterators['main']
        batch = iterator.next()
        x, t = api.call_converter(self.converter, batch, self.input_device)
        optimizer = self._optimizers['main']
        whole_update(optimizer, x, t)
        if self.auto_new_epoch and iterator.is_new_epoch:
            optimizer.new_epoch(auto=True)


def whole_update(optimizer, x, t):
    """One update of ``optimizer.target`` (a Classifier over a one-layer fused RNN, checked by
    :func:`why_not`) on ids ``x`` (B, T) and labels ``t`` (B,)."""
    clf = optimizer.target
    rnn = clf.predictor
    x = rnn.check_input(x)
    x = model_mod.input_dropout(x, rnn.input_dropout, rnn.noise_key, np)
    t = np.asarray(t)
    E = rnn.input_link(1).W.array
    rec = rnn.recurrent_link(1)
    W, b = rec.W.array, rec.b.array
    R, c = rnn.h_to_y.W.array, rnn.h_to_y.b.array
    dtype = E.dtype
    kernel = kernels.cpu_kernel()
    ids = np.ascontiguousarray(x, dtype=np.int32)
    V, n = E.shape[0], len(ids)
    h0 = rnn.initial_state(n)  # --h0-noise, drawn as the model draws it
    table = E
    if h0 is not None:  # fused._first_step_rows: the first step's rows appended to E
        first = E[ids[:, 0]] + np.matmul(h0, W.T)
        ids = ids.copy()
        ids[:, 0] = V + np.arange(n, dtype=np.int32)
        table = np.concatenate((E, first), axis=0)
    hs, hT = kernel.forward(ids, np.ascontiguousarray(table), np.ascontiguousarray(W),
                            np.ascontiguousarray(b), True, rnn.activation)
    mask = None
    if rnn.dropout:  # the mask readout_dropout draws (same key, same order)
        rng = np.random.RandomState(list(rnn.noise_key) + [1]) if rnn.noise_key is not None else np.random
        keep = rng.uniform(size=hT.shape) >= rnn.dropout
        mask = (keep / (1.0 - rnn.dropout)).astype(dtype)
        h = hT * mask
    else:
        h = hT
    # F.linear
    y = h.dot(R.T).astype(dtype, copy=False)
    y += c
    # F.softmax_cross_entropy (mean over the labels, none ignored)
    m = y.max(axis=1, keepdims=True)
    e = y - m
    np.exp(e, out=e)
    s = e.sum(axis=1, keepdims=True)
    np.log(s, out=s)
    m += s
    log_y = y - m
    coeff = 1.0 / max(n, 1)
    log_p = log_y.T[t, np.arange(n)]
    loss = (log_p.sum(keepdims=True, dtype=dtype) * (-coeff)).astype(dtype, copy=False).reshape(())
    # F.accuracy
    acc = np.asarray((y.argmax(axis=1).reshape(t.shape) == t).mean(dtype=dtype))
    # backward: softmax cross-entropy (gloss = 1), the readout, the recurrence
    gy = log_y
    np.exp(gy, out=gy)
    gy[np.arange(n), t] -= 1
    gy *= np.ones((), dtype) * coeff
    gR = gy.T.dot(h).astype(dtype, copy=False)
    gc = gy.sum(axis=0)
    gh = gy.dot(R).astype(dtype, copy=False)
    if mask is not None:
        gh = gh * mask
    gE, gW, gb = kernel.backward(ids, hs, np.ascontiguousarray(W), gh, None, table.shape[0], rnn.activation)
    if h0 is not None:  # the appended rows' gradient: back through the gather and the product
        gfirst = gE[V:]
        scatter = np.zeros_like(E)
        np.add.at(scatter, x[:, 0].astype(np.intp), gfirst)
        gE = gE[:V] + scatter
        gW = gW + np.matmul(gfirst.T, h0)
    release = getattr(kernel, 'release', None)
    if release is not None:
        release(hs)
    del hs
    grads = {id(rnn.input_link(1).W): gE, id(rec.W): gW, id(rec.b): gb, id(rnn.h_to_y.W): gR,
             id(rnn.h_to_y.b): gc}
    params = list(clf.params(False))
    if len(params) != len(grads):
        raise RuntimeError('the whole-update path: expected %d parameters, got %d' % (len(grads), len(params)))
    for p in params:
        p.grad = grads[id(p)]
    clf.y = clf.loss = clf.accuracy = None
    chainer.report({'loss': loss, 'accuracy': acc} if clf.compute_accuracy else {'loss': loss}, clf)
    # the optimizer as Optimizer.update runs it: the 'pre' hooks (clipping done here, on the
    # arrays; any other, skip-non-finite included, called as Chainer calls it), t, each
    # parameter's rule, the 'post' hooks
    pre, post = api.update_hooks(optimizer)
    for hook in pre:
        if type(hook) in _CLIP_TYPES:
            _clip(params, hook.threshold)
        else:
            api.call_hook(optimizer, hook)
    optimizer.t += 1
    for p in params:
        _step(optimizer, p)
    for hook in post:
        api.call_hook(optimizer, hook)


def _clip(params, threshold):
    """GradientClipping's arithmetic: the squared norms' sum in parameter order, then the
    gradients scaled when the rate is below 1."""
    sqnorm = sum([g.dot(g) for g in (p.grad.ravel() for p in params)])
    rate = threshold / np.sqrt(sqnorm)
    if rate >= 1:
        return
    for p in params:
        g = p.grad  # in place, as the hook does (``p.grad *= rate`` would go through the setter)
        g *= rate


def _step(optimizer, param):
    """One UpdateRule.update of ``param`` (t, state initialisation, update_core_cpu)."""
    rule = param.update_rule
    if not rule.enabled:
        return
    rule.t += 1
    api.init_rule_state(param)
    hp = rule.hyperparam
    grad, data, state = param.grad, param.array, rule.state
    if isinstance(optimizer, optimizers.MomentumSGD):
        v = state['v']
        v *= hp.momentum
        v -= hp.lr * grad
        data += v
    elif isinstance(optimizer, optimizers.Adam):
        eps = grad.dtype.type(hp.eps)
        if hp.eps != 0 and eps == 0:
            raise ValueError('eps of Adam optimizer is too small for %s (%s)' % (grad.dtype.name, hp.eps))
        m, v = state['m'], state['v']
        m += (1.0 - hp.beta1) * (grad - m)
        v += (1.0 - hp.beta2) * (grad * grad - v)
        step = rule.alpha_t / (np.sqrt(v) + hp.eps)
        decay = 1.0 - hp.eta * hp.weight_decay_rate
        if decay == 1:
            data += -hp.eta * (step * m)
        else:
            data[...] = decay * data + -hp.eta * (step * m)
    elif isinstance(optimizer, optimizers.RMSprop):
        eps = grad.dtype.type(hp.eps)
        if hp.eps != 0 and eps == 0:
            raise ValueError('eps of RMSprop optimizer is too small for %s (%s)' % (grad.dtype.name, hp.eps))
        ms = state['ms']
        ms *= hp.alpha
        ms += (1 - hp.alpha) * grad * grad
        data -= hp.lr * grad / (np.sqrt(ms) + eps)
    else:  # SGD
        data -= hp.lr * grad
