#!/usr/bin/env python3
"""Build irnn_chainer/data/embedded/mnist_subset.npz, the embedded MNIST subset, from MNIST's IDX files.

The subset is a seeded stratified draw (numpy's RandomState(0), legacy and stable across
NumPy versions): 2000 images of each class from MNIST's training set (20000 training images)
and 200 of each class from MNIST's test set (2000 test images, so a score on them is a
test score). Drawn over the whole of each set, not its first rows: the first 5000 images of
MNIST's test set are the cleaner half. The procedure, which tests/test_data.py repeats:

    rs = RandomState(0)
    for the training set (2000 per class), then the test set (200 per class):
        for class 0, 1, ..., 9:  sorted(rs.permutation(rows of that class)[:k])
        the 10 lists concatenated, then reordered by rs.permutation (classes mixed)

The .npz holds, deflate-compressed with fixed zip timestamps (the same input gives the same
bytes with the same zlib): ``train_x`` (20000, 784) uint8, ``train_y`` (20000,) uint8,
``train_index`` (20000,) uint16 (each image's row in MNIST's training set), and ``test_x``,
``test_y``, ``test_index`` likewise (2000 rows, rows of MNIST's test set). It prints the
sha256 that ``irnn_chainer.data.subset.SHA256`` must be set to.

    python tools/make_embedded.py MNIST_FOLDER      # the four IDX files, .gz or raw
"""
import argparse
import hashlib
import io
import os
import sys
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from irnn_chainer.data import mnist  # the IDX reader, with its MD5-checked table (installed package)

OUT = os.path.join(ROOT, 'irnn_chainer', 'data', 'embedded', 'mnist_subset.npz')
SEED = 0
TRAIN_PER_CLASS = 2000
TEST_PER_CLASS = 200


def draw(labels, per_class, rs):
    """Row numbers: ``per_class`` of each class, drawn by ``rs``, then the classes mixed."""
    parts = [np.sort(rs.permutation(np.flatnonzero(labels == c))[:per_class]) for c in range(10)]
    rows = np.concatenate(parts)
    return rows[rs.permutation(len(rows))]


def subset(train_x, train_y, test_x, test_y):
    rs = np.random.RandomState(SEED)
    tr = draw(train_y, TRAIN_PER_CLASS, rs)
    te = draw(test_y, TEST_PER_CLASS, rs)
    return [('train_x', train_x[tr]), ('train_y', train_y[tr].astype(np.uint8)),
            ('train_index', tr.astype(np.uint16)),
            ('test_x', test_x[te]), ('test_y', test_y[te].astype(np.uint8)),
            ('test_index', te.astype(np.uint16))]


def check_official(folder):
    """Every IDX file's decompressed bytes must have MNIST's official MD5."""
    for name, (_, raw_md5) in mnist.MNIST_FILES.items():
        path = mnist._find_idx(folder, name)
        got = hashlib.md5(mnist._read_bytes(path)).hexdigest()
        if got != raw_md5:
            sys.exit('%s: expected MNIST\'s official md5 %s (decompressed), found %s'
                     % (path, raw_md5, got))


def npz_bytes(arrays):
    """An .npz (as np.load reads it) with fixed timestamps: reproducible bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED) as z:
        for name, a in arrays:
            info = zipfile.ZipInfo(name + '.npy', date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(a), allow_pickle=False)
            z.writestr(info, member.getvalue(), compresslevel=9)
    return buf.getvalue()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('mnist_dir', help='folder with the four MNIST IDX files (.gz or raw)')
    p.add_argument('--out', default=OUT)
    args = p.parse_args(argv)
    try:
        train_x, train_y, test_x, test_y = mnist.load_idx_dir(args.mnist_dir)
    except mnist.DataError as e:
        sys.exit('make_embedded: %s' % e)
    check_official(args.mnist_dir)
    blob = npz_bytes(subset(train_x, train_y, test_x, test_y))
    d = os.path.dirname(os.path.abspath(args.out))
    tmp = os.path.join(d, '.%s.part' % os.path.basename(args.out))
    with open(tmp, 'wb') as f:  # an ordinary file: the user's umask
        f.write(blob)
    os.replace(tmp, args.out)
    print('%s: %d bytes, sha256 %s' % (args.out, len(blob), hashlib.sha256(blob).hexdigest()))


if __name__ == '__main__':
    main()
