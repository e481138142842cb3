"""A training run and what it is made of: the steps of a run (``train.py``), its folder
(``runfolder.py``: config.json, snapshots, the lock), what happens when it diverges
(``recovery.py``), the learning-rate schedule and the per-update hooks (``schedule.py``), the
averaged weights (``averaging.py``), data parallelism (``distributed.py``) and the memory
check made before anything is allocated (``memory.py``).

May import: :mod:`irnn_chainer.model`, :mod:`irnn_chainer.data`, :mod:`irnn_chainer.settings`,
:mod:`irnn_chainer.compat` and the top-level helpers; never :mod:`irnn_chainer.commands`.
"""
