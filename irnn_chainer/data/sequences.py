"""Sequences other than pixel MNIST: the user's own files (:mod:`.own`) and the adding
problem (:mod:`.adding`), with the same record (:class:`Sequences`). Their public names are
importable from here, as before the two had modules of their own; the rules between the
own-data settings are here.
"""
from irnn_chainer.data.own import (  # noqa: F401
    INPUTS, MAX_IDS, NPZ_KEYS, TASKS, SequenceDataError, Sequences, load, read_csv, read_npz, split,
    validate, with_test_split, write_csv, _check_x, _check_y, uses_own_data, check_own_data)
from irnn_chainer.data.adding import (  # noqa: F401
    ADDING_BASELINE, ADDING_TEST, ADDING_TRAIN, adding_data, adding_problem)
