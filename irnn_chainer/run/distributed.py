"""Data-parallel training with ChainerMN (``mpiexec -n N irnn-chainer train --communicator naive``).

Every process trains the same model on its own slice of the training set with the same
per-process ``--batchsize``; gradients are averaged over the processes (an all-reduce)
before the optimizer's hooks and step, so N processes at batch b follow exactly the
updates of one process at batch N x b that sees the union of their batches. Rank 0 alone
writes the log, plots, config and snapshots and prints; all ranks evaluate their slice of
the test set and the results are averaged.

Resume: every rank loads rank 0's snapshot. That is exact because the ranks' states are
equal: the parameters and optimizer state by the all-reduce, and the iterators because
each rank shuffles a slice of equal length with the same seed, so their positions and
RNG states match. The run folder must therefore be visible to every rank (one machine, or
a shared file system).

ChainerMN ships inside Chainer 7 as the ``chainermn`` package; it needs mpi4py and an MPI
(Debian: ``apt-get install openmpi-bin libopenmpi-dev``; ``pip install mpi4py``).
"""

#: Communicators that work without GPUs ('flat' and the NCCL ones need CuPy; untested here).
COMMUNICATORS = ('naive',)


class DistributedError(Exception):
    """--communicator without MPI, or a communicator this build cannot use: one line."""


def create_communicator(name):
    """The ChainerMN communicator ``name`` over MPI_COMM_WORLD."""
    if name not in COMMUNICATORS:
        raise DistributedError('--communicator: expected %s (the CPU communicator), got %r'
                               % (' or '.join(COMMUNICATORS), name))
    try:
        import mpi4py.MPI  # noqa: F401  (initialises MPI)
    except ImportError as e:
        raise DistributedError('--communicator %s needs mpi4py and an MPI library (%s): '
                               'apt-get install openmpi-bin libopenmpi-dev; pip install mpi4py; '
                               'then run under mpiexec -n N' % (name, e))
    import chainermn
    try:
        comm = chainermn.create_communicator(name)
    except Exception as e:  # e.g. a communicator that wants CuPy
        raise DistributedError('--communicator %s: cannot create it (%s)' % (name, str(e).splitlines()[0]))
    if comm.size > 1:
        _abort_on_uncaught_exception()
    return comm


def _abort_on_uncaught_exception():
    """A rank that dies of an exception takes the job with it (MPI_Abort) instead of
    leaving the other ranks waiting for it in a collective call forever."""
    import sys
    from mpi4py import MPI
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(1)
    sys.excepthook = hook


def scatter(dataset, comm):
    """Rank r's contiguous slice of ``dataset`` (given on rank 0; None elsewhere). Slices
    have equal length (the last is filled up from the start when N does not divide the
    size), which the exact resume relies on."""
    import chainermn
    return chainermn.scatter_dataset(dataset, comm, shuffle=False, force_equal_length=True)


def multi_node_optimizer(optimizer, model, comm):
    """``optimizer`` (set up on ``model``, hooks added) whose updates average the gradients
    over all ranks first. ChainerMN's first update would only broadcast the parameters
    and skip the step; broadcasting here makes update 1 a real one, as in one process."""
    import chainermn
    opt = chainermn.create_multi_node_optimizer(optimizer, comm)
    comm.bcast_data(model)
    opt.is_changed(model)  # records the parameter list, so update 1 all-reduces and steps
    return opt


def multi_node_evaluator(evaluator, comm):
    import chainermn
    return chainermn.create_multi_node_evaluator(evaluator, comm)


def quiet(*args, **kwargs):
    """The log function of ranks other than 0."""


def is_root(comm):
    return comm is None or comm.rank == 0


def size(comm):
    return 1 if comm is None else comm.size


def agree(comm, value):
    """``value`` as rank 0 has it, on every rank (e.g. an error found only on rank 0)."""
    if comm is None:
        return value
    # ChainerMN wants a non-None object on the root and None elsewhere
    return comm.bcast_obj((value,) if comm.rank == 0 else None, root=0)[0]

