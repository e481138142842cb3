"""irnn-chainer: Le, Jaitly & Hinton's IRNN on pixel-by-pixel MNIST, in Chainer.

``compat/`` is installed as ``irnn_chainer.compat`` so no top-level ``compat``
module lands in site-packages.
"""
from setuptools import setup

setup(
    name='irnn-chainer',
    version='0.1.0',
    description="IRNN (identity-initialised ReLU RNN) on pixel-by-pixel MNIST, "
                "a faithful port of the 2015 Chainer gist",
    long_description=open('README.md').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    license='MIT',
    python_requires='>=3.8',
    packages=['irnn_chainer', 'irnn_chainer.compat'],
    package_dir={'irnn_chainer': 'irnn_chainer', 'irnn_chainer.compat': 'compat'},
    install_requires=[
        'chainer>=1.0,<=7.8.1',
        'numpy',
        'matplotlib',
    ],
    extras_require={
        # CuPy for --gpu; pick the wheel matching your CUDA (cupy-cuda11x / 12x / 13x).
        'gpu': ['cupy-cuda12x'],
        'test': ['pytest'],
    },
    entry_points={'console_scripts': ['irnn-chainer = irnn_chainer.cli:main']},
)
