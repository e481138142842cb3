"""The real MNIST files for the tests: the folder named by ``$IRNN_MNIST_DIR``.

The product reads ``$IRNN_MNIST_DIR`` as a data source too, so it is taken out of the
environment as the tests start (conftest.py imports this module first): a test, and the
commands it starts, get full MNIST only where they ask for it. Without it the tests on real
MNIST skip, saying why; with ``IRNN_REQUIRE_MNIST=1`` (CI) they fail instead.
"""
import os

import pytest

MNIST_DIR = os.environ.pop('IRNN_MNIST_DIR', None) or None
NAMES = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
         't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']


def available():
    return MNIST_DIR is not None and all(os.path.isfile(os.path.join(MNIST_DIR, n)) for n in NAMES)


def why_not():
    if MNIST_DIR is None:
        return 'IRNN_MNIST_DIR is not set (the folder of the four real MNIST IDX files)'
    return 'IRNN_MNIST_DIR=%s lacks some of the four MNIST IDX files %s' % (MNIST_DIR, ', '.join(NAMES))


def folder():
    """The real MNIST folder; skips the test without it (fails under IRNN_REQUIRE_MNIST=1)."""
    if not available():
        if os.environ.get('IRNN_REQUIRE_MNIST') == '1':
            pytest.fail(why_not() + ' and IRNN_REQUIRE_MNIST=1')
        pytest.skip(why_not())
    return MNIST_DIR


def path(name):
    """One of the four files, by its standard name (skips as :func:`folder`)."""
    return os.path.join(folder(), name)
