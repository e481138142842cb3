"""The ``irnn-chainer`` sub-commands: ``cli.py`` (the parser and dispatch), ``evaluate``,
``predict`` (also :func:`irnn_chainer.load`), ``compare`` (against the 2015 gist revisions),
``report`` and ``sweep``.

Commands sit on top: they may import everything else; nothing imports them (except
:func:`irnn_chainer.load`, which imports ``predict`` when called).
"""
