"""How many threads the C kernels split a batch over.

Default: the cores this process may run on (``os.sched_getaffinity``), so ``taskset`` and
container limits are honoured. ``IRNN_THREADS=N`` in the environment or ``--threads N``
(:func:`set_threads`, which wins) override it; under ``--communicator`` every MPI process
takes one thread unless told otherwise (train.py). The kernels give the same bits for any
thread count: it changes speed only.
"""
import os

ENV = 'IRNN_THREADS'
_chosen = None  # set_threads(); None: environment or default


def available():
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def parse(value, what):
    """A positive thread count from ``value`` (text or int), or ValueError naming ``what``."""
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1 or str(value).strip() != str(n):
        raise ValueError('%s: expected a positive integer number of threads, got %r' % (what, value))
    return n


def set_threads(n):
    """Use ``n`` threads from now on (None: back to ``IRNN_THREADS`` or the default)."""
    global _chosen
    _chosen = None if n is None else parse(n, '--threads')


def get_threads():
    """The thread count the kernels use now."""
    if _chosen is not None:
        return _chosen
    env = os.environ.get(ENV, '').strip()
    if env:
        return parse(env, ENV)
    return available()


def describe():
    """One line for ``irnn-chainer info``."""
    n = get_threads()
    if _chosen is not None:
        why = 'set by --threads'
    elif os.environ.get(ENV, '').strip():
        why = 'from %s' % ENV
    else:
        why = 'the cores this process may use'
    return '%d (%s; %d available)' % (n, why, available())
