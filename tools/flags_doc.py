#!/usr/bin/env python3
"""Write docs/flags.md, the reference of every command's flags, from the parser
(``irnn_chainer.commands.cli.flags_reference``). tests/test_settings.py fails when the
committed file is out of date: run this after changing a setting or a flag."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('MPLBACKEND', 'Agg')

from irnn_chainer.commands import cli  # noqa: E402

PATH = os.path.join(ROOT, 'docs', 'flags.md')

if __name__ == '__main__':
    with open(PATH, 'w') as f:
        f.write(cli.flags_reference() + '\n')
    print('wrote %s' % PATH)
