"""Version shims and adapters: the only place in irnn-chainer that knows Chainer,
NumPy, CuPy and Python differ between releases.

Installed as ``irnn_chainer.compat`` (setup.py maps this folder there).

- :mod:`.shims` patches the environment *before* Chainer is imported
  (``irnn_chainer/__init__.py`` calls :func:`shims.apply`).
- :mod:`.api` is one API over Chainer 1.0 ... 7.8.1 for the things the project does.
"""
