"""How the optional C kernel is built (used by setup.py and for in-place development builds).

setup.py::

    from irnn_chainer.kernels.build import extension, OptionalBuildExt   # (see setup.py)
    setup(..., ext_modules=[extension()], cmdclass={'build_ext': OptionalBuildExt})

The extension is optional: when it cannot be compiled (no C compiler, no Python headers,
a compiler without GCC vector extensions) :class:`OptionalBuildExt` prints a warning and
the install goes on; :mod:`irnn_chainer.kernels` then runs the NumPy kernel and
``backend_name()`` / ``irnn-chainer info`` say so. It needs no NumPy at build time
(arrays cross through the buffer protocol).

In-place development build (puts ``_irnn_cpu*.so`` next to this file)::

    python irnn_chainer/kernels/build.py   (as a script: importing the package first
    would import Chainer, whose numpy.distutils import breaks setuptools' compiler)
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = 'irnn_chainer.kernels._irnn_cpu'


def _source(relative_to=None):
    src = os.path.join(HERE, '_irnn_cpu.c')
    return os.path.relpath(src, relative_to) if relative_to else src


def extension(relative_to=None):
    """The setuptools Extension of the C kernel (``relative_to``: make the source path
    relative to that folder, as setup.py wants; default: absolute)."""
    from setuptools import Extension
    # -pthread: the kernels split the batch over threads (_threads.h)
    args = [] if sys.platform == 'win32' else ['-O3', '-std=gnu99', '-fno-math-errno', '-Wno-psabi',
                                               '-pthread']
    libs = [] if sys.platform == 'win32' else ['m', 'pthread']  # tanh (float64), threads
    headers = [os.path.join(os.path.dirname(_source(relative_to)), h)
               for h in ('_irnn_isa.h', '_irnn_kernels.h', '_threads.h', '_vmath.h')]
    return Extension(NAME, sources=[_source(relative_to)], depends=headers, extra_compile_args=args,
                     extra_link_args=[] if sys.platform == 'win32' else ['-pthread'], libraries=libs,
                     optional=True)


try:
    from setuptools.command.build_ext import build_ext as _build_ext
except ImportError:  # pragma: no cover
    _build_ext = object


class OptionalBuildExt(_build_ext):
    """build_ext that warns instead of failing when the optional C kernel cannot build."""

    def run(self):
        try:
            _build_ext.run(self)
        except Exception as e:  # noqa: BLE001  (compiler missing, etc.)
            self._warn(e)

    def build_extension(self, ext):
        try:
            _build_ext.build_extension(self, ext)
        except Exception as e:  # noqa: BLE001
            self._warn(e)

    @staticmethod
    def _warn(e):
        sys.stderr.write('WARNING: the optional C kernel of irnn-chainer did not build (%s); '
                         'the fused IRNN will use its NumPy kernel.\n' % e)


def build_inplace():
    """Compile the extension next to its source (development)."""
    from setuptools import Distribution
    root = os.path.dirname(os.path.dirname(HERE))
    dist = Distribution({'name': 'irnn-chainer-kernel',
                         'ext_modules': [extension(relative_to=root)]})
    cmd = dist.get_command_obj('build_ext')
    cmd.inplace = True
    cmd.ensure_finalized()
    old = os.getcwd()
    os.chdir(root)
    try:
        cmd.run()
    finally:
        os.chdir(old)
    return cmd.get_ext_fullpath(NAME)


if __name__ == '__main__':
    print(build_inplace())
