#!/usr/bin/env python
"""Pixel-by-pixel MNIST with an IRNN, written like Chainer's own examples/mnist.

This is the whole experiment on one screen: the model comes from irnn_chainer.model,
the data from irnn_chainer.data.mnist; everything else is a standard Chainer Trainer.
`irnn-chainer train` is the same loop with resume, permutation and run-folder handling.
"""
import argparse

import irnn_chainer  # noqa: F401  (applies the compat shims before Chainer is imported)
import chainer
import chainer.links as L
from chainer import training
from chainer.training import extensions

from irnn_chainer.compat import api
from irnn_chainer.data.mnist import get_mnist
from irnn_chainer.model import IRNN
from irnn_chainer.run.train import ShuffledIterator, convert


def main():
    parser = argparse.ArgumentParser(description='Chainer example: IRNN on pixel MNIST')
    parser.add_argument('--batchsize', '-b', type=int, default=16)
    parser.add_argument('--epoch', '-e', type=int, default=1)
    parser.add_argument('--lr', type=float, default=1e-8)
    parser.add_argument('--unit', '-u', type=int, default=100)
    parser.add_argument('--device', '-d', type=str, default='@numpy',
                        help='Device specifier: @numpy, @cupy:0, ...')
    parser.add_argument('--gpu', '-g', dest='device', type=lambda n: api.device_spec(gpu=int(n)),
                        help='GPU ID (alias of --device)')
    parser.add_argument('--out', '-o', default='result')
    parser.add_argument('--resume', '-r', default='', help='Resume from a snapshot file')
    parser.add_argument('--dataset', default='embedded', choices=('auto', 'mnist', 'embedded'))
    parser.add_argument('--data-dir', default=None)
    parser.add_argument('--train-limit', type=int, default=None)
    parser.add_argument('--test-limit', type=int, default=None)
    args = parser.parse_args()

    device = api.get_device(args.device)
    print('Device: {}  # unit: {}  # minibatch: {}  # epoch: {}'.format(
        device, args.unit, args.batchsize, args.epoch))

    # The paper's setting: SGD lr 1e-8 with the gradient's global L2 norm clipped at 1.
    model = L.Classifier(IRNN(n_units=args.unit))
    api.to_device(model, device)
    optimizer = api.setup_optimizer(chainer.optimizers.SGD(lr=args.lr), model, clip=1.0)

    data = get_mnist(args.dataset, args.data_dir, args.train_limit, args.test_limit)
    train = chainer.datasets.TupleDataset(data.train_x, data.train_y)
    test = chainer.datasets.TupleDataset(data.test_x, data.test_y)
    train_iter = ShuffledIterator(train, args.batchsize, seed=0)
    test_iter = chainer.iterators.SerialIterator(test, 1000, repeat=False, shuffle=False)

    updater = training.updaters.StandardUpdater(train_iter, optimizer, converter=convert, device=device)
    trainer = training.Trainer(updater, (args.epoch, 'epoch'), out=args.out)
    trainer.extend(extensions.Evaluator(test_iter, model, converter=convert, device=device))
    trainer.extend(extensions.snapshot(filename='snapshot_iter_{.updater.iteration}'), trigger=(1, 'epoch'))
    trainer.extend(extensions.LogReport())
    trainer.extend(extensions.PlotReport(['main/loss', 'validation/main/loss'], 'epoch', file_name='loss.png'))
    trainer.extend(extensions.PlotReport(['main/accuracy', 'validation/main/accuracy'], 'epoch',
                                         file_name='accuracy.png'))
    trainer.extend(extensions.PrintReport(['epoch', 'iteration', 'main/loss', 'validation/main/loss',
                                           'main/accuracy', 'validation/main/accuracy', 'elapsed_time']))
    trainer.extend(extensions.ProgressBar(update_interval=10))
    if args.resume:
        api.load_npz(args.resume, trainer)  # Chainer's load_npz, but pickles refused
    trainer.run()


if __name__ == '__main__':
    main()
