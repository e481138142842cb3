"""Why SGD at lr 1e-8 learns so slowly, measured: the paper's setting against the blog's own.

For each setting (paper: weights N(0, 0.001), clipping at 1; blog: N(0, 0.01), no clipping)
on real MNIST training batches of 16, from the initial weights of seed 0:

- the global gradient norm (median and range over --batches batches), after clipping too;
- the largest |dL/dW_ii| on the identity diagonal of h_to_h, and the largest step
  lr * |g_ii| an update makes there, against half of float32's spacing at 1.0 (2^-24 =
  5.96e-8): a smaller step rounds back to exactly 1.0;
- after --updates real SGD updates (the library's model and Chainer's SGD, float32), how
  many of the 100 diagonal entries differ from 1.0, and the largest change off the diagonal.

    python tools/lr_1e8.py --data-dir MNIST_DIR [--permute]

``--permute``: the pixels in the order of ``--permute`` runs of that seed (the library's
permutation).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import irnn_chainer  # noqa: E402,F401  (compat shims first)
import chainer  # noqa: E402
import chainer.functions as F  # noqa: E402

from irnn_chainer.data import mnist  # noqa: E402
from irnn_chainer.compat import api  # noqa: E402
from irnn_chainer.model import IRNN  # noqa: E402

SETTINGS = (('paper', 0.001, 1.0), ('blog', 0.01, 0.0))
HALF_SPACING = 2.0 ** -24


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data-dir', default=os.environ.get('IRNN_MNIST_DIR'),
                   help='the four MNIST IDX files (default $IRNN_MNIST_DIR)')
    p.add_argument('--batches', type=int, default=20)
    p.add_argument('--updates', type=int, default=300)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--permute', action='store_true', help="permuted MNIST (the runs' permutation of --seed)")
    a = p.parse_args(argv)
    if not a.data_dir:
        sys.exit('lr_1e8.py: --data-dir: expected the folder of the four MNIST IDX files, got none '
                 '(nor IRNN_MNIST_DIR)')
    try:
        x, y, _, _ = mnist.load_idx_dir(a.data_dir)
    except mnist.DataError as e:
        sys.exit('lr_1e8.py: %s' % e)
    x = x.astype(np.int32)
    if a.permute:
        x = mnist.apply_permutation(x, mnist.make_permutation(a.seed))
    rng = np.random.RandomState(a.seed)
    order = rng.permutation(len(x))
    print('lr 1e-8, batch 16, real %sMNIST training batches, float32, seed %d'
          % ('permuted ' if a.permute else '', a.seed))
    for name, std, clip in SETTINGS:
        np.random.seed(a.seed)
        model = IRNN(n_units=100, init_std=std, impl='fused')
        norms, diag = [], []
        for i in range(a.batches):
            idx = order[16 * i:16 * (i + 1)]
            model.cleargrads()
            F.softmax_cross_entropy(model(x[idx]), y[idx]).backward()
            g = [prm.grad.ravel() for _, prm in sorted(model.namedparams())]
            norm = float(np.sqrt(sum(float(v.astype(np.float64) @ v) for v in g)))
            rate = min(1.0, clip / norm) if clip else 1.0
            norms.append(norm)
            diag.append(float(np.abs(np.diag(model.h_to_h.W.grad)).max()) * rate)
        step = 1e-8 * max(diag)
        print('%-5s N(0, %g), clip %-3s: gradient norm median %.3g (%.3g .. %.3g) over %d batches%s; '
              'largest |g_ii| %.3g -> largest diagonal step %.3g, %s half the float32 spacing at 1 (%.3g)'
              % (name, std, clip or 'off', np.median(norms), min(norms), max(norms), a.batches,
                 ', after clipping %.3g' % min(clip, np.median(norms)) if clip else '', max(diag), step,
                 'below' if step < HALF_SPACING else 'above', HALF_SPACING))
        np.random.seed(a.seed)
        model = IRNN(n_units=100, init_std=std, impl='fused')
        opt = api.setup_optimizer(chainer.optimizers.SGD(lr=1e-8), model, clip=clip or None)
        for i in range(a.updates):
            idx = order[16 * i:16 * (i + 1)]
            api.update(opt, model, F.softmax_cross_entropy(model(x[idx]), y[idx]))
        W = model.h_to_h.W.array
        off = W - np.diag(np.diag(W))
        print('      after %d updates: %d of 100 diagonal entries of h_to_h differ from 1.0; largest '
              'off-diagonal |W_ij| %.3g' % (a.updates, int((np.diag(W) != 1).sum()), np.abs(off).max()))


if __name__ == '__main__':
    main()
