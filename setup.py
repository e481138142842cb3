"""irnn-chainer: Le, Jaitly & Hinton's IRNN on pixel-by-pixel MNIST, in Chainer.

``compat/`` is installed as ``irnn_chainer.compat`` so no top-level ``compat``
module lands in site-packages.
"""
import importlib.util
import os

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))

# The optional C kernel of the fused recurrence. build.py is loaded by path: importing the
# package would import NumPy and Chainer, which a build environment does not have.
_spec = importlib.util.spec_from_file_location(
    '_irnn_kernel_build', os.path.join(HERE, 'irnn_chainer', 'kernels', 'build.py'))
kernel_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kernel_build)

setup(
    name='irnn-chainer',
    version='0.1.0',
    description="IRNN (identity-initialised ReLU RNN) on pixel-by-pixel MNIST, "
                "a faithful port of the 2015 Chainer gist",
    long_description=open(os.path.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    license='MIT',
    python_requires='>=3.8',
    packages=['irnn_chainer', 'irnn_chainer.commands', 'irnn_chainer.data', 'irnn_chainer.kernels',
              'irnn_chainer.model', 'irnn_chainer.run', 'irnn_chainer.compat'],
    package_dir={'irnn_chainer': 'irnn_chainer', 'irnn_chainer.compat': 'compat'},
    # The embedded MNIST subset (CC BY-SA 3.0) and its provenance; data/mnist.py reads it.
    package_data={'irnn_chainer.data': ['embedded/mnist_subset.npz', 'embedded/README.md'],
                  # the CUDA kernel's source, compiled by CuPy at run time (kernels/cuda.py)
                  'irnn_chainer.kernels': ['*.cu']},
    # Optional: when it cannot compile, the install goes on and the NumPy kernel runs
    # (`irnn-chainer info` says which one).
    ext_modules=[kernel_build.extension(relative_to=HERE)],
    cmdclass={'build_ext': kernel_build.OptionalBuildExt},
    install_requires=[
        'chainer>=1.0,<=7.8.1',
        'numpy',
        'matplotlib',
        # --threads N caps NumPy's BLAS too (kernels/threads.py): OpenBLAS otherwise starts a
        # thread per core, and two runs side by side fight over the cores
        'threadpoolctl>=3',
    ],
    extras_require={
        # CuPy for --gpu with its CUDA libraries (cuBLAS, NVRTC, ...) from PyPI: without
        # them Chainer silently reports no CUDA. CUDA 13 drivers: cupy-cuda13x[ctk].
        'gpu': ['cupy-cuda12x[ctk]'],
        # irnn-chainer sweep: Optuna (>= 4.9 for RetryHeartbeatStaleTrialCallback) and the
        # PostgreSQL driver SQLAlchemy 2 uses by default, for studies shared across machines.
        'sweep': ['optuna>=4.9', 'psycopg[binary]'],
        # mpiexec -n N irnn-chainer train --communicator naive: ChainerMN (inside Chainer 7)
        # needs mpi4py and an MPI library (Debian: openmpi-bin libopenmpi-dev).
        'mpi': ['mpi4py'],
        # NVRTC (~90 MB wheel) for the CPU-only compile check of the CUDA kernel source
        # (tests/test_cuda_kernel.py); Linux x86-64 wheels only.
        'test': ['pytest', 'nvidia-cuda-nvrtc-cu12; platform_system == "Linux" and platform_machine == "x86_64"'],
    },
    entry_points={'console_scripts': ['irnn-chainer = irnn_chainer.commands.cli:main']},
)
