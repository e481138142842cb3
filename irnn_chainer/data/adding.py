"""The adding problem (``--dataset adding --length T``): sequences generated from the seed.

Hochreiter & Schmidhuber (1997); Le, Jaitly & Hinton (2015), section 4.1. The same record as
own files (:class:`.own.Sequences`), a regression of one target from two real inputs.
"""
import numpy as np

from irnn_chainer.data.own import SequenceDataError, Sequences

ADDING_BASELINE = 1.0 / 6    # MSE of always predicting 1: Var(U + U') = 2/12
ADDING_TRAIN, ADDING_TEST = 100000, 10000   # the paper's sizes


def adding_problem(n, length, seed=0):
    """The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015, section 4.1).

    x: (n, length, 2) float32; x[..., 0] uniform in [0, 1], x[..., 1] a marker that is 1
    at exactly two steps, one in the first half and one in the second half, else 0.
    y: (n, 1) float32, the sum of the two marked values. Always predicting 1 gives an
    expected MSE of Var(U + U') = 1/6 ~ 0.167 (:data:`ADDING_BASELINE`).
    """
    if length < 2:
        raise SequenceDataError('--length: expected at least 2 steps for the adding problem, found %s' % length)
    rng = np.random.RandomState(seed)
    x = np.zeros((n, length, 2), np.float32)
    y = np.empty((n, 1), np.float32)
    half = length // 2
    chunk = 10000  # generated in blocks of this many sequences (fixed: it decides the draws)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        values = rng.uniform(0, 1, (m, length))
        a = rng.randint(0, half, m)
        b = rng.randint(half, length, m)
        rows = np.arange(m)
        x[s:s + m, :, 0] = values
        x[s + rows, a, 1] = 1
        x[s + rows, b, 1] = 1
        y[s:s + m, 0] = values[rows, a] + values[rows, b]
    return x, y


def adding_data(length, n_train=ADDING_TRAIN, n_test=ADDING_TEST, seed=0):
    """Train and test sets of the adding problem (the test set from its own seed stream)."""
    x, y = adding_problem(n_train, length, seed=2 * seed)
    xt, yt = adding_problem(n_test, length, seed=2 * seed + 1)
    return Sequences(x, y, xt, yt, 'real', 'regression', 2, 1, 'adding problem T=%d' % length)
