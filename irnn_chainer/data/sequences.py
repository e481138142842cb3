"""Sequences other than pixel MNIST: the user's own files (:mod:`.own`) and the adding
problem (:mod:`.adding`), with the same record (:class:`Sequences`). Their public names are
importable from here, as before the two had modules of their own; the rules between the
own-data settings are here.
"""
from irnn_chainer.data.own import (  # noqa: F401
    INPUTS, MAX_IDS, NPZ_KEYS, TASKS, SequenceDataError, Sequences, load, read_csv, read_npz, split,
    validate, with_test_split, write_csv, _check_x, _check_y)
from irnn_chainer.data.adding import (  # noqa: F401
    ADDING_BASELINE, ADDING_TEST, ADDING_TRAIN, adding_data, adding_problem)
from irnn_chainer.errors import UsageError


# ---- the rules between settings that are own data's (settings.RULES lists them) -----------

def uses_own_data(cfg):
    """--data FILE or --dataset adding, not MNIST."""
    return bool(cfg.get('data')) or cfg.get('dataset') == 'adding'


def check_own_data(cfg, given, saved):
    """The rules between the own-data flags (settings.RULES lists this one), one line each."""
    if cfg.get('data') and cfg.get('dataset') not in (None, 'auto'):
        raise UsageError('--data %s and --dataset %s: give one of them' % (cfg['data'], cfg['dataset']))
    if cfg.get('permute') and uses_own_data(cfg):
        raise UsageError('--permute: only for pixel MNIST, not with %s (permute your sequences '
                         'in the file)' % ('--data' if cfg.get('data') else '--dataset adding'))
    if cfg.get('length') is not None and cfg.get('dataset') != 'adding':
        raise UsageError('--length: only for --dataset adding')
    if cfg.get('dataset') == 'adding':
        for key, want in (('input', 'real'), ('task', 'regression')):
            if cfg.get(key) not in (None, want):
                raise UsageError('--%s %s: the adding problem is %s' % (key, cfg[key], want))
        if cfg.get('test_split') is not None:
            raise UsageError('--test-split: the adding problem generates its own test set '
                             '(size: --test-limit)')
        if cfg.get('length') is not None and int(cfg['length']) < 2:
            raise UsageError('--length: expected at least 2, got %s' % cfg['length'])
    if given.get('layers') and given.get('unit'):
        raise UsageError('--unit %s and --layers %s: give one of them (--layers 100 is --unit 100)'
                         % (given['unit'], ','.join(map(str, given['layers']))))
    if cfg.get('test_split') is not None and not uses_own_data(cfg):
        raise UsageError('--test-split: only for --data files without a test set')
    for key in ('input', 'task'):
        if cfg.get(key) is not None and not uses_own_data(cfg):
            raise UsageError('--%s: only with --data or --dataset adding' % key)
