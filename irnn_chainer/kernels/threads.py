"""How many threads the C kernels split a batch over.

Default: the cores this process may run on (``os.sched_getaffinity``), so ``taskset`` and
container limits are honoured. ``IRNN_THREADS=N`` in the environment or ``--threads N``
(:func:`set_threads`, which wins) override it; under ``--communicator`` every MPI process
takes one thread unless told otherwise (train.py). The kernels give the same bits for any
thread count: it changes speed only.

The BLAS library under NumPy is capped too (:func:`blas_cap`, :func:`limit_blas`, through
threadpoolctl): the dense layers outside the kernels (the output layer, the LSTM's
input-to-gate product) and the stepwise path multiply matrices there, and OpenBLAS starts a
thread per core for them, whose idle threads then spin for a while on the cores. Where the C
kernels run the recurrence, BLAS gets one thread: its products are small, and its spinning
threads took the cores the kernel's own threads needed (the fused LSTM update on 2 cores:
52 ms with OpenBLAS on 2 threads, 26 ms on 1). Elsewhere a chosen count caps it: two runs side
by side on 2 cores were four busy threads (the LSTM at 10.0 updates/s and the IRNN beside it at
43.6; with the LSTM's BLAS held to one thread, 14.6 and 56.4).
"""
import os

ENV = 'IRNN_THREADS'
_chosen = None  # set_threads(); None: environment or default
_blas_limit = None  # limit_blas()'s threadpoolctl handle, kept so that the cap holds


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


def blas_cap(chosen, c_kernel_runs):
    """The thread count to cap NumPy's BLAS at, or None to leave it: 1 where the C kernels run
    the recurrences (``c_kernel_runs``), else ``chosen`` (a count that was chosen, or None)."""
    return 1 if c_kernel_runs else chosen


def limit_blas(n):
    """Cap the BLAS libraries loaded in this process at ``n`` threads, for the process's life.
    Returns the libraries capped, as threadpoolctl describes them (an empty list where
    threadpoolctl is not installed: the version matrix's bare venvs)."""
    global _blas_limit
    import numpy  # noqa: F401  (threadpoolctl caps only the libraries already loaded)
    try:
        import threadpoolctl
    except ImportError:
        return []
    _blas_limit = threadpoolctl.threadpool_limits(limits=n, user_api='blas')
    return [i for i in threadpoolctl.threadpool_info() if i.get('user_api') == 'blas']


def blas_threads():
    """Thread counts of the loaded BLAS libraries (by library name), or None without threadpoolctl."""
    import numpy  # noqa: F401
    try:
        import threadpoolctl
    except ImportError:
        return None
    return {i.get('internal_api', '?'): i['num_threads'] for i in threadpoolctl.threadpool_info()
            if i.get('user_api') == 'blas'}


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
    blas = blas_threads()
    return '%d (%s; %d available); BLAS under NumPy: %s' % (
        n, why, available(), 'threadpoolctl not installed, not capped' if blas is None else
        ', '.join('%s %d' % kv for kv in sorted(blas.items())) or 'none loaded')
