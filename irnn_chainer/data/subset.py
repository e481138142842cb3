"""The embedded MNIST subset: real MNIST images shipped inside the package (package data).

``embedded/mnist_subset.npz``: 20000 training images (2000 of each class, drawn from MNIST's
training set) and 2000 test images (200 of each class, drawn from MNIST's test set, so a
score on them is a test score), SHA-256 checked at every load. How they were drawn and
their licence (CC BY-SA 3.0, as MNIST): ``embedded/README.md``; tools/make_embedded.py
builds the file from MNIST's IDX files. Imports NumPy only.
"""
import hashlib
import io
import os

import numpy as np

from irnn_chainer.errors import DataError

FOLDER = 'embedded'
FILE = 'mnist_subset.npz'
SHA256 = 'fbc39b6ce2b0033f762a31dd9fb4e300f5dedea3a097688b5121501dad284983'
TRAIN_SIZE = 20000  # 2000 per class, from MNIST's training set
TEST_SIZE = 2000  # 200 per class, from MNIST's test set
#: the source phrase of the data line and of a run's config.json
SOURCE = 'embedded MNIST subset (package data; its test images are from the MNIST test set)'
#: the subset in a sentence (the fallback's messages)
NAME = 'the embedded MNIST subset (%d training, %d test images)' % (TRAIN_SIZE, TEST_SIZE)


def path():
    """Where the embedded subset lives: ``embedded/mnist_subset.npz`` inside the package."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), FOLDER, FILE)


def read(where):
    """The .npz's arrays (train_x, train_y, test_x, test_y) as stored, sha256 checked."""
    try:
        with open(where, 'rb') as f:
            blob = f.read()
    except FileNotFoundError:
        raise DataError('embedded MNIST subset %s: missing; the package was installed without its '
                        'data file: reinstall irnn-chainer' % where) from None
    except OSError as e:
        raise DataError('embedded MNIST subset %s: cannot read it (%s); the package was installed '
                        'without its data file: reinstall irnn-chainer'
                        % (where, e.strerror or e)) from None
    got = hashlib.sha256(blob).hexdigest()
    if got != SHA256:
        raise DataError('embedded MNIST subset %s: expected sha256 %s, found %s (modified or '
                        'damaged file); reinstall irnn-chainer' % (where, SHA256, got))
    with np.load(io.BytesIO(blob), allow_pickle=False) as f:  # the sha256 vouches for its content
        return f['train_x'], f['train_y'], f['test_x'], f['test_y']


def load():
    """(train_x, train_y, test_x, test_y): x (N, 784) uint8, y (N,) int32, each split in the
    file's fixed shuffled order (the classes mixed)."""
    train_x, train_y, test_x, test_y = read(path())
    return train_x, train_y.astype(np.int32), test_x, test_y.astype(np.int32)
