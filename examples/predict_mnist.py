#!/usr/bin/env python
"""Predict the first MNIST test images with a trained run: no training, a few lines.

    python examples/predict_mnist.py                              # the committed blog run
    python examples/predict_mnist.py --run result/demo -n 20
    python examples/predict_mnist.py --data-dir ../shared/data/mnist   # the real t10k test set

``irnn_chainer.load(RUN)`` reads the run's settings and newest weights (as ``irnn-chainer
evaluate`` does); ``.predict(images)`` takes (N, 784) uint8 pixels in their natural order
(a permuted run's permutation is applied inside) and returns the (N, 10) class probabilities.
Without ``--data-dir`` the images are the embedded subset's test split, which needs no
download: note that those 1000 images come from MNIST's *training* set (the subset is
what the package ships), so a run trained on the full MNIST has seen them.
"""
import argparse
import os
import sys

import numpy as np

import irnn_chainer
from irnn_chainer import files
from irnn_chainer.data import mnist as data
from irnn_chainer.errors import UsageError
from irnn_chainer.compat import api

BLOG_RUN = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'results', 'blog', 'blog-own-irnn-pixel')


def main(argv=None):
    parser = argparse.ArgumentParser(description='predict MNIST test images with a trained IRNN run')
    parser.add_argument('--run', default=os.path.relpath(BLOG_RUN),
                        help='run folder (or snapshot) of irnn-chainer train (default: results/blog/'
                             'blog-own-irnn-pixel, the blog\'s own setting after 96 epochs)')
    parser.add_argument('-n', type=int, default=10, help='how many test images (default 10)')
    parser.add_argument('--data-dir', help='folder with the MNIST IDX files (default: the embedded subset)')
    parser.add_argument('--device', '-d', default=None, help="Chainer device: '@numpy', '@cupy:0', ...")
    args = parser.parse_args(argv)

    if args.data_dir:
        mnist = data.get_mnist('mnist', args.data_dir, test_limit=args.n, log=lambda *a: None)
    else:
        mnist = data.get_mnist('embedded', test_limit=args.n, log=lambda *a: None)
    try:
        run = irnn_chainer.load(args.run, device=args.device)
    except (files.FileError, UsageError, api.DeviceError, data.DataError) as e:
        # a missing run, a folder without weights, no such device: one line
        sys.exit('predict_mnist.py: %s' % str(e).strip().splitlines()[0])

    probs = run.predict(mnist.test_x)               # (N, 10) probabilities
    predicted = probs.argmax(axis=1)
    print('%s (%s)' % (args.run, run.describe()))
    print('%-6s %-6s %-9s %s' % ('image', 'label', 'predicted', 'probability'))
    for i, (label, p) in enumerate(zip(mnist.test_y, probs)):
        print('%-6d %-6d %-9d %.3f%s' % (i, label, p.argmax(), p.max(), '' if p.argmax() == label else '  x'))
    print('accuracy %.3f on %d images (%s)' % (np.mean(predicted == mnist.test_y), len(predicted), mnist.source))
    return 0


if __name__ == '__main__':
    sys.exit(main())
