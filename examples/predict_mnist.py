#!/usr/bin/env python
"""Predict MNIST test images with a trained run: no training, a few lines.

    python examples/predict_mnist.py                              # the best committed model (97.07 %)
    python examples/predict_mnist.py --run result/demo -n 20      # the run ./dev.sh demo made
    python examples/predict_mnist.py --data-dir MNIST_FOLDER      # the real t10k test set
                                                                  # (or set IRNN_MNIST_DIR)

``irnn_chainer.load(RUN)`` reads the run's settings and newest weights (as ``irnn-chainer
evaluate`` does); ``.predict(images)`` takes (N, 784) uint8 pixels in their natural order
(a permuted run's permutation is applied inside) and returns the (N, 10) class probabilities.
With ``--data-dir`` (or ``$IRNN_MNIST_DIR``) the images are MNIST's own test set; without,
the embedded subset's 2000 test images, which come from MNIST's test set too, so a score
on them is a test score for any run, one trained on all of MNIST included.
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

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'results')
# The best committed model: the fast recipe, 100 epochs on all of MNIST, 97.07 % on its test
# set (results/ keeps it with the runs of the paper's table)
BEST_RUN = next((p for p in (os.path.join(RESULTS, 'paper', 'pull1-irnn-pixel'),
                             os.path.join(RESULTS, 'pull1-irnn-pixel')) if os.path.isdir(p)),
                os.path.join(RESULTS, 'paper', 'pull1-irnn-pixel'))


def _count(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError('expected a positive number of images, got %s' % text)
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description='predict MNIST test images with a trained IRNN run')
    parser.add_argument('--run', default=os.path.relpath(BEST_RUN),
                        help='run folder (or one of its weight files) of irnn-chainer train (default: %s, '
                             'the best committed model: 97.07 %% on MNIST\'s test set)' % os.path.relpath(BEST_RUN))
    parser.add_argument('-n', type=_count, default=10, help='how many test images (default 10)')
    parser.add_argument('--data-dir', help='folder with the MNIST IDX files (default: $IRNN_MNIST_DIR if set, '
                                           'else the embedded subset\'s test images)')
    parser.add_argument('--device', '-d', default=None, help="Chainer device: '@numpy', '@cupy:0', ...")
    args = parser.parse_args(argv)

    try:
        given = args.data_dir or os.environ.get('IRNN_MNIST_DIR') or None
        if given:
            mnist = data.get_mnist('mnist', given, test_limit=args.n, log=lambda *a: None)
        else:
            mnist = data.get_mnist('embedded', test_limit=args.n, log=lambda *a: None)
        run = irnn_chainer.load(args.run, device=args.device)
    except (files.FileError, UsageError, api.DeviceError, data.DataError) as e:
        # a missing run or data folder, a folder without weights, no such device: one line
        sys.exit('predict_mnist.py: %s' % str(e).strip().splitlines()[0])

    probs = run.predict(mnist.test_x)               # (N, 10) probabilities
    predicted = probs.argmax(axis=1)
    print('%s (%s)' % (args.run, run.describe()))
    print('%-6s %-6s %-9s %s' % ('image', 'label', 'predicted', 'probability'))
    for i, (label, p) in enumerate(zip(mnist.test_y, probs)):
        print('%-6d %-6d %-9d %.3f%s' % (i, label, p.argmax(), p.max(), '' if p.argmax() == label else '  x'))
    print('accuracy %.3f on %d test images (%s)' % (np.mean(predicted == mnist.test_y), len(predicted),
                                                    mnist.source))
    return 0


if __name__ == '__main__':
    sys.exit(main())
