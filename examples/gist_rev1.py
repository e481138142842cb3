#!/usr/bin/env python
"""IRNN on pixel-by-pixel MNIST, as revision 1 of the 2015 gist wrote it for Chainer 1.0.

Chainer 1.0 had no type checks, so this revision feeds what it has: raw uint8 pixel values
as EmbedID ids, 64-bit labels, and a float64 initial state (the sum with EmbedID's float32
output then runs in float64). Revision 2 (gist_rev2.py) is the same program with the
dtypes Chainer 1.3's type checks demand.

The model is a ``FunctionSet`` of parameterised Functions whose weight arrays are set in
place; the optimizer is set up with ``collect_parameters()``; every update is
``zero_grads()``, forward, ``backward()``, ``update()`` (the blog ran without the gist's
``clip_grads(1.0)``: ``--clip 1`` puts it back, with ``--init-std 0.001``, for the paper's setting); evaluation
uses ``volatile`` Variables.

Runs on Chainer 1.0.1 (on today's Python after 2to3; see tools/matrix.py), e.g.::

    PY=$(python tools/matrix.py --ensure 1.0.1-np2)
    $PY examples/gist_rev1.py --dataset mnist --data-dir /path/to/idx --iterations 100

Only the first lines below are not 2015 code: they make Chainer 1.0 importable on
today's Python and NumPy (irnn_chainer.compat.shims) and share the data loading, output
lines and JSON log with ``irnn-chainer compare`` (irnn_chainer.compare).
"""
import argparse
import os
import time

import numpy as np

# -- not part of the gist: today's Python/NumPy, data, log ------------------------------
# In a tools/matrix.py venv, irnn_chainer is imported from the checkout this names.
os.environ.setdefault('IRNN_CHAINER_ROOT', os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import irnn_chainer  # noqa: E402,F401  (environment shims A-D)
from irnn_chainer.commands import compare as harness  # noqa: E402
from irnn_chainer.compat import api  # noqa: E402  (shim E; api.scalar = shim F)
harness.require_gist_chainer('rev1')  # on a later Chainer: one line, not an ImportError
# ----------------------------------------------------------------------------------------

from chainer import cuda, FunctionSet, Variable, optimizers  # noqa: E402
import chainer.functions as F  # noqa: E402

parser = harness.add_program_arguments(argparse.ArgumentParser(description=__doc__.split('\n')[0]))
args = parser.parse_args()

x_train, y_train, x_test, y_test = harness.load_data(args)
y_train = y_train.astype(np.int64)  # labels as 2015 code had them
y_test = y_test.astype(np.int64)

n_units = 100
batchsize = args.batchsize

model = FunctionSet(pixel_to_h=F.EmbedID(256, n_units),
                    h_to_h=F.Linear(n_units, n_units),
                    h_to_y=F.Linear(n_units, 10))
np.random.seed(args.seed)
model.pixel_to_h.W[...] = np.random.normal(0, args.init_std, model.pixel_to_h.W.shape)
model.h_to_h.W[...] = np.identity(n_units)
model.h_to_h.b[...] = 0
model.h_to_y.W[...] = np.random.normal(0, args.init_std, model.h_to_y.W.shape)
model.h_to_y.b[...] = 0
if args.gpu >= 0:
    cuda.init(args.gpu)
    model.to_gpu()


def forward(x_data, y_data, train=True):
    volatile = not train
    if args.gpu >= 0:
        x_data, y_data = cuda.to_gpu(x_data), cuda.to_gpu(y_data)
    h = Variable(np.zeros((len(y_data), n_units)), volatile=volatile)
    if args.gpu >= 0:
        h = Variable(cuda.to_gpu(h.data), volatile=volatile)
    for pixel in x_data.T:
        x = Variable(pixel.copy(), volatile=volatile)
        h = F.relu(model.pixel_to_h(x) + model.h_to_h(h))
    y = model.h_to_y(h)
    t = Variable(y_data, volatile=volatile)
    return F.softmax_cross_entropy(y, t), F.accuracy(y, t)


optimizer = optimizers.SGD(lr=args.lr)
optimizer.setup(model.collect_parameters())

log = harness.RunLog('rev1', api.chainer_version())
N, N_test = len(x_train), len(x_test)
iteration = 0
for epoch in range(1, harness.n_epochs(args, N) + 1):
    perm = np.random.permutation(N)
    sum_loss = sum_accuracy = seen = 0
    for i in range(0, N, batchsize):
        if args.iterations and iteration >= args.iterations:
            break
        x_batch = x_train[perm[i:i + batchsize]]
        y_batch = y_train[perm[i:i + batchsize]]
        start = time.perf_counter()
        optimizer.zero_grads()
        loss, acc = forward(x_batch, y_batch)
        loss.backward()
        if args.clip:  # the blog's own run had none (the default); the paper's: 1.0
            optimizer.clip_grads(args.clip)
        optimizer.update()
        log.iteration(api.scalar(loss), time.perf_counter() - start)
        iteration += 1
        sum_loss += api.scalar(loss) * len(y_batch)
        sum_accuracy += api.scalar(acc) * len(y_batch)
        seen += len(y_batch)

    sum_test_loss = sum_test_accuracy = 0
    for i in range(0, N_test, args.eval_batchsize):
        x_batch = x_test[i:i + args.eval_batchsize]
        y_batch = y_test[i:i + args.eval_batchsize]
        loss, acc = forward(x_batch, y_batch, train=False)
        sum_test_loss += api.scalar(loss) * len(y_batch)
        sum_test_accuracy += api.scalar(acc) * len(y_batch)
    log.epoch(epoch, sum_loss / seen, sum_accuracy / seen,
              sum_test_loss / N_test, sum_test_accuracy / N_test)

log.write(args.log_json)
