"""``python -m irnn_chainer`` works like the ``irnn-chainer`` console script."""
import sys

from irnn_chainer.commands.cli import main

if __name__ == '__main__':
    sys.exit(main())
