"""The run's data: one record (:class:`~irnn_chainer.data.sources.Data`) whatever the source:
pixel MNIST (``mnist.py``: the IDX reader, Chainer's cache, the download, the embedded subset),
the user's own sequences and the adding problem (``sequences.py``); ``sources.py`` picks the
source a run's settings name and builds the record.

May import: :mod:`irnn_chainer.compat`, the top-level helpers (``errors``, ``files``) and the run
folder's file names; never the model, a run or a command.
"""
