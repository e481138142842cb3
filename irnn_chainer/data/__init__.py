"""Where a run's sequences come from, by role; one record (:class:`.sources.RunData`) whatever
the source.

- ``sources.py``: the record and the registry of sources (``adding``, ``file``, ``mnist``);
  adding a source is one ``@source(...)`` declaration above its reader;
- pixel MNIST: ``idx.py`` (the IDX reader, MNIST's four files and their MD5s), ``mnist.py``
  (the order the sources are tried, Chainer's cache, the pixel permutation), ``download.py``
  (mirrors, checksums, timeouts), ``subset.py`` (the embedded subset, ``embedded/``);
- other sequences: ``own.py`` (the user's own ``--data`` file), ``adding.py`` (the adding
  problem); ``sequences.py`` re-exports both.

May import: :mod:`irnn_chainer.compat`, the top-level helpers (``errors``, ``files``,
``progress``) and the run folder's file names; never the model, a run or a command. Only
``sources.py`` imports Chainer.
"""
