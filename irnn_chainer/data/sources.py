"""A run's data, whichever the source, as one record (:class:`RunData`), and the registry of
sources (:data:`SOURCES`): adding a source is one :func:`source` declaration above its reader.

The sources, in the order a run's settings are matched against them:

* ``adding``: the adding problem (``--dataset adding --length T``, :mod:`.adding`);
* ``file``: the user's own file (``--data FILE``), ``.npz`` or long-format ``.csv``
  (:mod:`.own`), with ``--test-split``;
* ``mnist``: pixel MNIST (:mod:`.mnist`: IDX files, Chainer's cache, a download, the embedded
  subset), with ``--permute``'s fixed permutation kept in the run folder.

(Words: "data" alone is this package; the user's ``--data`` file is their *own file*; the
record is :class:`RunData`; what is logged first is the *data line*.)

Every one gives the same record: the train and test datasets, the input (``ids`` with
``n_in`` of them, or ``real`` with ``n_in`` features per step), the task (``classification``
into ``n_out`` classes, or ``regression`` of ``n_out`` targets with the constant
prediction's value as ``baseline``), a one-line description of what was read, what the
run's config.json records of it (``settings``, ``source``, ``fingerprint``). The model
factory (:func:`irnn_chainer.model.for_run`) builds the model from it.
"""
import copy
import os

import numpy as np

import chainer

from irnn_chainer.data import mnist
from irnn_chainer import files
from irnn_chainer.run import runfolder
from irnn_chainer.data import adding, own
from irnn_chainer.errors import UsageError

#: what pixel MNIST is, for the model: 256 pixel ids in, 10 classes out
MNIST_SPEC = {'input': 'ids', 'n_in': 256, 'task': 'classification', 'n_out': 10, 'baseline': None}


class RunData(object):
    """One run's data. ``train``/``test``: TupleDatasets (None in a record made by
    :func:`from_config`, which knows only what the model needs); ``kind``: the source
    (``mnist``, ``file``, ``adding``); ``settings``: what the run's config.json records of
    what was inferred (the input kind, task and sizes of own data; nothing for MNIST, whose
    are fixed); ``fingerprint``: the data's sha256 and size for config.json."""

    def __init__(self, kind, train, test, input, n_in, task, n_out, baseline=None, source='',
                 description='', settings=None, fingerprint=None):
        self.kind, self.train, self.test = kind, train, test
        self.input, self.n_in, self.task, self.n_out, self.baseline = input, n_in, task, n_out, baseline
        self.source, self.description = source, description
        self.settings = dict(settings or {})
        self.fingerprint = dict(fingerprint or {})
        self.train_size = None if train is None else len(train)

    def spec(self):
        """The record without its datasets (small: what ranks other than 0 get under MPI;
        ``train_size`` stays the whole training set's)."""
        spec = copy.copy(self)
        spec.train = spec.test = None
        return spec


Data = RunData  # the record's earlier name


class Source(object):
    """A source: its ``name`` (the record's ``kind``), ``applies(cfg)`` (do a run's settings
    name it), ``read(cfg, run_dir, log)`` (the :class:`RunData`), and ``spec``: what the model
    needs of it when fixed (pixel MNIST's), else None (inferred from the data, kept in
    config.json)."""

    def __init__(self, name, applies, read, spec=None, fallback=False):
        self.name, self.applies, self.read, self.spec, self.fallback = name, applies, read, spec, fallback


#: the registry, in the order of declaration; the first source that applies is used, a
#: ``fallback`` one (pixel MNIST, the default) only when no other does
SOURCES = []


def source(name, applies, spec=None, fallback=False):
    """Declare the function below as the reader of source ``name``."""
    def register(read):
        SOURCES.append(Source(name, applies, read, spec, fallback))
        return read
    return register


def _of(cfg):
    for src in sorted(SOURCES, key=lambda s: s.fallback):  # a stable sort: declaration order kept
        if src.applies(cfg):
            return src
    raise UsageError('no data source for these settings')  # pragma: no cover (mnist applies always)


def kind_of(cfg):
    """The source a run's settings name: ``adding``, ``file`` or ``mnist``."""
    return _of(cfg).name


def load(cfg, run_dir, log=print):
    """The run's :class:`RunData` (``run_dir`` keeps the ``--permute`` permutation)."""
    return _of(cfg).read(cfg, run_dir, log)


def from_config(cfg):
    """What a run's model needs of its data, from its config.json alone (no data read)."""
    src = _of(cfg)
    spec = src.spec
    if spec is None:
        spec = {k: cfg.get(k) for k in ('input', 'n_in', 'task', 'n_out', 'baseline')}
        missing = [k for k in ('input', 'n_in', 'task', 'n_out') if spec[k] is None]
        if missing:
            raise UsageError('the run\'s config.json lacks %s: expected the values its training '
                             'inferred from the data' % ', '.join(missing))
    return RunData(src.name, None, None, source=cfg.get('source', ''), **spec)


def check_same(saved, data, allow, flag='--allow-changed-data'):
    """Refuse data whose checksum differs from the run's config.json (unless ``allow``)."""
    want = (saved or {}).get('data_sha256')
    got = data.fingerprint.get('data_sha256')
    if want and got and got != want and not allow:
        raise UsageError('the data differ from the run\'s: expected sha256 %s (%s bytes, %s), found %s '
                         '(%s bytes); give the run\'s data, or %s to go on anyway'
                         % (want[:16], saved.get('data_bytes', '?'), saved.get('source', '?'),
                            got[:16], data.fingerprint.get('data_bytes', '?'), flag))


def _datasets(x, y, x_test, y_test):
    return chainer.datasets.TupleDataset(x, y), chainer.datasets.TupleDataset(x_test, y_test)


def _arrays_fingerprint(*arrays):
    """The sha256 and size of the arrays as the run uses them (MNIST, after --train-limit,
    --test-limit and --permute)."""
    arrays = [np.asarray(a) for a in arrays]
    return {'data_sha256': files.sha256_arrays(*arrays), 'data_bytes': int(sum(a.nbytes for a in arrays))}


# ---------------------------------------------------------------------------- sources

@source('adding', lambda cfg: cfg.get('dataset') == 'adding')
def _adding(cfg, run_dir, log):
    """The adding problem, generated from the seed (nothing to fingerprint)."""
    length = int(cfg.get('length') or 150)
    seqs = adding.adding_data(length, int(cfg.get('train_limit') or adding.ADDING_TRAIN),
                                 int(cfg.get('test_limit') or adding.ADDING_TEST), seed=int(cfg['seed']))
    description = ('adding problem: T=%d, %d train / %d test sequences (seed %d); always predicting 1 '
                   'gives MSE %.4f on this test set (1/6 = %.4f expected)'
                   % (length, len(seqs.x), len(seqs.x_test), cfg['seed'],
                      float(((seqs.y_test - 1.0) ** 2).mean()), adding.ADDING_BASELINE))
    log(description)
    return _own(cfg, seqs, 'adding', 1.0, description, {'length': length}, {})


@source('file', lambda cfg: bool(cfg.get('data')))
def _file(cfg, run_dir, log):
    """The user's own file (--data), with --test-split, --train-limit and --test-limit."""
    seqs = own.load(cfg['data'], cfg.get('input'), cfg.get('task'))
    seqs = own.with_test_split(seqs, cfg.get('test_split'), seed=int(cfg['seed']))
    if cfg.get('train_limit'):
        seqs.x, seqs.y = seqs.x[:cfg['train_limit']], seqs.y[:cfg['train_limit']]
    if cfg.get('test_limit'):
        seqs.x_test, seqs.y_test = seqs.x_test[:cfg['test_limit']], seqs.y_test[:cfg['test_limit']]
    baseline = None
    if seqs.task == 'regression':
        mean = seqs.y.mean(axis=0)
        baseline = mean.tolist()
        log('regression: always predicting the training mean gives test MSE %.4f'
            % float(((seqs.y_test - mean) ** 2).mean()))
    description = ('data: %s; %d train / %d test sequences%s'
                   % (seqs.describe(), len(seqs.x), len(seqs.x_test),
                      ' (held out %g, %s, seed %d)' % (cfg['test_split'], 'stratified' if seqs.task ==
                                                         'classification' else 'random', cfg['seed'])
                      if cfg.get('test_split') else ''))
    log(description)
    fingerprint = {'data_sha256': files.sha256_file(cfg['data']), 'data_bytes': os.path.getsize(cfg['data'])}
    return _own(cfg, seqs, 'file', baseline, description, {}, fingerprint)


def _own(cfg, seqs, kind, baseline, description, settings, fingerprint):
    """Own sequences in the run's dtype (ids and class labels as int32)."""
    dtype = np.dtype(cfg.get('dtype') or 'float32')
    x_dtype = np.int32 if seqs.input == 'ids' else dtype
    y_dtype = np.int32 if seqs.task == 'classification' else dtype
    train, test = _datasets(seqs.x.astype(x_dtype), seqs.y.astype(y_dtype),
                            seqs.x_test.astype(x_dtype), seqs.y_test.astype(y_dtype))
    settings = dict(settings, input=seqs.input, task=seqs.task, n_in=seqs.n_in, n_out=seqs.n_out)
    if baseline is not None:
        settings['baseline'] = baseline
    return RunData(kind, train, test, seqs.input, seqs.n_in, seqs.task, seqs.n_out, baseline,
                source=seqs.path, description=description, settings=settings, fingerprint=fingerprint)


@source('mnist', lambda cfg: True, spec=MNIST_SPEC, fallback=True)  # what no other source claims
def _mnist(cfg, run_dir, log):
    """Pixel MNIST: uint8 pixels (ids 0..255, int32 at the model, train.convert), 10 classes."""
    lines = []

    def note(line):  # the reader logs its data line first, then why other sources were skipped
        lines.append(line)
        log(line)

    splits = mnist.get_mnist(cfg['dataset'], cfg['data_dir'], cfg['train_limit'], cfg['test_limit'], log=note)
    train_x, test_x = splits.train_x, splits.test_x
    train_y, test_y = splits.train_y, splits.test_y
    description = lines[0]
    if cfg.get('validation'):  # the last N training images stand in for the test set
        n = int(cfg['validation'])
        if n >= len(train_x):
            raise UsageError('--validation %d: expected fewer than the %d training images' % (n, len(train_x)))
        train_x, train_y, test_x, test_y = train_x[:-n], train_y[:-n], train_x[-n:], train_y[-n:]
        description += '; validation: the last %d training images (the test set unused)' % n
        log('validation: holding out the last %d of the training images; evaluating on them, '
            'not on the test set' % n)
    if cfg['permute']:
        path = os.path.join(run_dir, runfolder.PERMUTATION_FILE)
        if os.path.lexists(path):
            perm = files.load_npy(path, 'the run\'s pixel permutation (784 integers)')
        else:
            perm = mnist.make_permutation(cfg['seed'])
            files.save_npy(path, perm)
        log('permuted pixel MNIST: one fixed permutation (seed %d, %s)' % (cfg['seed'], path))
        try:
            train_x = mnist.apply_permutation(train_x, perm)
            test_x = mnist.apply_permutation(test_x, perm)
        except mnist.DataError as e:
            raise files.FileError('%s: %s' % (path, e)) from None
        description += '; permuted (seed %d)' % cfg['seed']
    train, test = _datasets(train_x, train_y, test_x, test_y)
    return RunData('mnist', train, test, source=splits.source, description=description,
                fingerprint=_arrays_fingerprint(train_x, train_y, test_x, test_y),
                **MNIST_SPEC)
