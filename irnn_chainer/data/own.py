"""Your own sequences (``--data FILE``): reading, checking and splitting the file.

The file:

* ``.npz`` with arrays ``x`` and ``y`` and optionally ``x_test`` and ``y_test``:

  - ``x``: integer ids, shape (N, T) (``--input ids``: an EmbedID, as pixel MNIST), or
    float features, shape (N, T, D) (``--input real``: a Linear input projection).
    The default input kind follows x's dtype.
  - ``y``: class labels 0..K-1, shape (N,) (``--task classification``; K from the labels),
    or real targets, shape (N,) or (N, K) (``--task regression``, MSE). The default task
    follows y's dtype: integer -> classification, float -> regression.

* ``.csv`` in long format, one row per timestep::

      seq,t,x0,x1,x2,label
      0,0,0.12,0.50,-1.3,1
      0,1,0.07,0.41,-1.1,1
      ...

  column 1: the sequence id (any text); column 2: the time step 0..T-1; then one column
  per feature; last column: the sequence's label (the same on each of its rows). A header
  row is optional. Sequences keep the order of their first row; rows may come in any
  order. Every sequence has the same T. One feature column of whole numbers reads as
  ids, anything else as real features; whole-number labels read as classes, others as
  regression targets (``--input`` / ``--task`` override). A CSV holds no test set.

Without a test set, ``--test-split F`` holds out a seeded fraction F (stratified by class
for classification). (The adding problem, ``--dataset adding``: :mod:`.adding`.)

Every problem in a file is reported as one line naming the file, the array, what was
expected and what was found (:class:`SequenceDataError`).
"""
import csv

import numpy as np

from irnn_chainer import files
from irnn_chainer.errors import DataError, UsageError, shown

INPUTS = ('ids', 'real')
TASKS = ('classification', 'regression')
NPZ_KEYS = ('x', 'y', 'x_test', 'y_test')
MAX_IDS = 1000000            # ids index EmbedID rows: a larger max id is almost surely not ids


class SequenceDataError(DataError):
    """A problem in the user's data or data flags: one line for the CLI (exit 2)."""


def _err(path, array, expected, found):
    return SequenceDataError('%s: %s: expected %s, found %s' % (path, array, expected, found))


class Sequences(object):
    """Validated data: arrays ready for the model and what was inferred from them."""

    def __init__(self, x, y, x_test, y_test, input, task, n_in, n_out, path):
        self.x, self.y, self.x_test, self.y_test = x, y, x_test, y_test
        self.input, self.task, self.n_in, self.n_out, self.path = input, task, n_in, n_out, path

    def describe(self):
        shape = 'x %s %s' % (self.x.dtype, 'x'.join(str(s) for s in self.x.shape))
        what = ('%d classes' % self.n_out if self.task == 'classification'
                else '%d target%s' % (self.n_out, 's' if self.n_out > 1 else ''))
        return '%s (%s, input %s, %s %s)' % (self.path, shape, self.input, self.task, what)


# ----------------------------------------------------------------------------- reading

def load(path, input=None, task=None):
    """Read and validate a ``.npz`` or long-format ``.csv`` file; see the module docstring."""
    if input not in (None,) + INPUTS:
        raise SequenceDataError('--input: expected one of %s, found %s' % (', '.join(INPUTS), shown(input)))
    if task not in (None,) + TASKS:
        raise SequenceDataError('--task: expected one of %s, found %s' % (', '.join(TASKS), shown(task)))
    try:
        files.require_file(path, 'a .npz or .csv data file')  # a folder, a FIFO, nothing: say so
    except files.FileError as e:
        raise SequenceDataError(str(e)) from None
    if path.lower().endswith('.csv'):
        arrays, hints = read_csv(path), {'csv': True}
    else:
        arrays, hints = read_npz(path), {}
    return validate(arrays, path, input, task, **hints)


def read_npz(path, labels=True):
    """The arrays of a .npz file (no pickles), with one-line errors for anything else.
    ``labels=False``: y (and y_test) may be missing (irnn-chainer predict)."""
    try:  # the one safe loader (files.py): pickles refused
        arrays = files.load_npz(path, 'a .npz file (np.savez) with arrays x and y, or a .csv file')
    except files.FileError as e:
        raise SequenceDataError(str(e)) from None
    unknown = [k for k in arrays if k not in NPZ_KEYS]
    if unknown:
        raise SequenceDataError('%s: expected only arrays x, y, x_test, y_test, found %s'
                                % (path, ', '.join(sorted(arrays))))
    missing = [k for k in (('x', 'y') if labels else ('x',)) if k not in arrays]
    if missing:
        raise SequenceDataError('%s: expected arrays x%s, found %s'
                                % (path, ' and y (optionally x_test, y_test)' if labels else
                                   ' (optionally y, x_test, y_test)', ', '.join(sorted(arrays)) or 'none'))
    if labels and ('x_test' in arrays) != ('y_test' in arrays):
        have, lack = ('x_test', 'y_test') if 'x_test' in arrays else ('y_test', 'x_test')
        raise _err(path, lack, 'an array alongside %s' % have, 'none')
    return arrays


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_csv(path, labels=True):
    """Long format -> {'x': (N, T, D) or (N, T), 'y': (N,)} (as text-typed numbers).
    ``labels=False``: the rows have no label column ("seq,t,feature..."; irnn-chainer
    predict), and the result has no 'y'."""
    n_fixed = 3 if labels else 2   # seq, t (and the label)
    row_format = '"seq,t,feature...,label"' if labels else '"seq,t,feature..."'

    try:
        with open(path, newline='') as f:
            numbered = [(n, r) for n, r in enumerate(csv.reader(f), 1) if any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise SequenceDataError('%s: expected a text file of rows %s, found one '
                                'that cannot be read as CSV (%s)' % (path, row_format, str(e).splitlines()[0]))
    header = None
    if numbered and not (_is_number(numbered[0][1][1]) if len(numbered[0][1]) > 1 else False):
        header_line, header = numbered.pop(0)
        header = [c.strip() for c in header]
    lineno = [n for n, _ in numbered]   # file row of each data row (blank rows skipped)
    rows = [r for _, r in numbered]
    if not rows:
        raise SequenceDataError('%s: expected rows %s (one per timestep), '
                                'found no data rows' % (path, row_format))
    width = len(header) if header else len(rows[0])
    if width < n_fixed + 1:
        raise SequenceDataError('%s: row %d: expected at least %d columns (seq, t, one or more features%s), '
                                'found %d' % (path, header_line if header else lineno[0], n_fixed + 1,
                                              ', label' if labels else '', width))
    names = header or (['seq', 't'] + ['x%d' % i for i in range(width - n_fixed)] + ['label'] * labels)
    for i, r in enumerate(rows):
        if len(r) != width:
            raise SequenceDataError('%s: row %d: expected %d columns (%s), found %d'
                                    % (path, lineno[i], width, ','.join(names), len(r)))
    table = np.array(rows, dtype=str)
    table = np.char.strip(table)

    def column(j, kind):
        col = table[:, j]
        try:
            return col.astype(kind)
        except ValueError:
            for i, v in enumerate(col):
                try:
                    kind(v) if kind is not float else float(v)
                except ValueError:
                    raise SequenceDataError(
                        '%s: column %s, row %d: expected %s, found %s'
                        % (path, names[j], lineno[i], 'an integer time step' if j == 1 else 'a number',
                           shown(v)))
            raise

    def whole_numbers(j):
        try:
            table[:, j].astype(np.int64)
            return True
        except ValueError:
            return False

    seq_ids = table[:, 0]
    steps = column(1, np.int64)
    n_feat = width - n_fixed
    feats = np.stack([column(j, np.float64) for j in range(2, 2 + n_feat)], axis=1)
    with_labels, labels = labels, (column(width - 1, np.float64) if labels else None)
    uniq, first, inverse = np.unique(seq_ids, return_index=True, return_inverse=True)
    order = np.argsort(first)              # sequences in order of their first row
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    seq = rank[inverse.ravel()]
    counts = np.bincount(seq)
    if counts.min() != counts.max():
        s = int(np.argmax(counts != counts[0]))
        raise SequenceDataError('%s: column %s: expected every sequence to have the same number of '
                                'steps (%d, as sequence %r), found %d rows for sequence %r'
                                % (path, names[0], counts[0], str(uniq[order[0]]), counts[s],
                                   str(uniq[order[s]])))
    T = int(counts[0])
    bad = (steps < 0) | (steps >= T)
    if bad.any():
        i = int(np.argmax(bad))
        raise SequenceDataError('%s: column %s, row %d: expected a time step 0..%d, found %d'
                                % (path, names[1], lineno[i], T - 1, steps[i]))
    N = len(counts)
    filled = np.zeros((N, T), bool)
    filled[seq, steps] = True
    if not filled.all():
        s, t = np.argwhere(~filled)[0]
        raise SequenceDataError('%s: column %s: expected steps 0..%d once each per sequence, found '
                                'step %d missing (and another repeated) in sequence %r'
                                % (path, names[1], T - 1, t, str(uniq[order[s]])))
    x = np.empty((N, T, n_feat))
    x[seq, steps] = feats
    if n_feat == 1 and whole_numbers(2):
        x = x[:, :, 0].astype(np.int64)
    x = x if x.dtype.kind in 'iu' else x.astype(np.float64)
    seq_names = uniq[order]                # the sequence ids (column 1), in the sequences' order
    if not with_labels:
        return {'x': x, 'seq': seq_names}
    y = labels[first[order]]   # each sequence's label from its first row
    differs = labels != y[seq]
    if differs.any():
        i = int(np.argmax(differs))
        j = int(np.argmax(seq == seq[i]))  # the sequence's first row
        raise SequenceDataError('%s: column %s, row %d: expected the same label on every row of '
                                'sequence %r (%s, as row %d), found %s'
                                % (path, names[-1], lineno[i], str(seq_ids[i]), table[j, -1],
                                   lineno[j], table[i, -1]))
    if whole_numbers(width - 1):
        y = y.astype(np.int64)
    return {'x': x, 'y': y, 'seq': seq_names}


def write_csv(path, x, y):
    """Write ``x`` ((N, T) ids or (N, T, D) features) and ``y`` ((N,) labels or targets) in
    the long format that :func:`read_csv` reads; floats always carry a '.' so they read
    back as real features / regression targets."""
    x, y = np.asarray(x), np.asarray(y).reshape(len(x))
    N, T = x.shape[:2]
    feats = x.reshape(N * T, -1)

    def text(a):
        if a.dtype.kind in 'iub':
            return a.astype(np.int64).astype(str)
        s = np.char.mod('%.9g' if a.dtype.itemsize <= 4 else '%.17g', a)
        plain = (np.char.find(s, '.') < 0) & (np.char.find(s, 'e') < 0) & (np.char.find(s, 'n') < 0)
        return np.where(plain, np.char.add(s, '.0'), s)

    cols = ([np.repeat(np.arange(N), T).astype(str), np.tile(np.arange(T), N).astype(str)]
            + [text(feats[:, j]) for j in range(feats.shape[1])] + [np.repeat(text(y), T)])
    header = ['seq', 't'] + ['x%d' % j for j in range(feats.shape[1])] + ['label']
    with open(path, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(zip(*cols))


# -------------------------------------------------------------------------- validation

def _finite(path, name, a):
    if a.dtype.kind == 'f':
        bad = ~np.isfinite(a)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            kinds = ' and '.join(k for k, m in (('NaN', np.isnan(a)), ('inf', np.isinf(a))) if m.any())
            raise _err(path, name, 'finite numbers', '%d %s value%s, the first at %s[%s]'
                       % (bad.sum(), kinds, 's' if bad.sum() > 1 else '', name, ', '.join(map(str, where))))


def _check_x(path, name, x, input, ref=None):
    """Shape/dtype/value checks of one input array; returns int64 ids or the float features."""
    kind = x.dtype.kind
    if kind not in 'iuf':
        raise _err(path, name, 'integer ids (N, T) or float features (N, T, D)',
                   'dtype %s' % x.dtype)
    if input == 'ids':
        if kind == 'f':
            _finite(path, name, x)
            frac = x != np.round(x)
            if frac.any():
                i = tuple(int(v) for v in np.argwhere(frac)[0])
                raise _err(path, name, 'integer ids for --input ids', 'the non-integer value %r at %s[%s]'
                           % (float(x[i]), name, ', '.join(map(str, i))))
        if x.ndim != 2:
            raise _err(path, name, 'ids of shape (N, T) for --input ids',
                       '%d-D shape %s%s' % (x.ndim, x.shape, '; features (N, T, D) need --input real'
                                            if x.ndim == 3 else ''))
    else:
        if x.ndim != 3:
            hint = {2: ' (for one feature per step save x[..., None])'}.get(x.ndim, '')
            raise _err(path, name, 'real features of shape (N, T, D) for --input real',
                       '%d-D shape %s%s' % (x.ndim, x.shape, hint))
        _finite(path, name, x)
    if x.shape[0] == 0 or x.shape[1] == 0 or (x.ndim == 3 and x.shape[2] == 0):
        raise _err(path, name, 'at least one sequence of at least one step', 'shape %s' % (x.shape,))
    if ref is not None and x.ndim == 3 and x.shape[2] != ref.shape[2]:
        raise _err(path, name, '%d features per step (as x)' % ref.shape[2], 'shape %s' % (x.shape,))
    if input == 'ids':
        x = x.astype(np.int64)
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi >= MAX_IDS:
            raise _err(path, name, 'ids in 0..%d (one EmbedID row per id)' % (MAX_IDS - 1),
                       'values in %d..%d' % (lo, hi))
        return x
    return x if x.dtype.kind == 'f' else x.astype(np.float64)


def _check_y(path, name, y, n, task, n_classes=None):
    if y.dtype.kind not in 'biuf':
        raise _err(path, name, 'numeric labels or targets', 'dtype %s' % y.dtype)
    if task == 'classification':
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or y.shape[0] != n:
            raise _err(path, name, 'one class label per sequence, shape (%d,)' % n, 'shape %s' % (y.shape,))
        if y.dtype.kind == 'f':
            _finite(path, name, y)
            frac = y != np.round(y)
            if frac.any():
                i = int(np.argmax(frac))
                raise _err(path, name, 'integer class labels for --task classification',
                           'the value %r at %s[%d] (real targets need --task regression)' % (float(y[i]), name, i))
        y = y.astype(np.int64)
        lo, hi = int(y.min()), int(y.max())
        if n_classes is None:
            k = len(np.unique(y))
            if k < 2:
                raise _err(path, name, 'at least 2 classes', 'only the label %d' % lo)
            if lo != 0 or hi != k - 1:
                raise _err(path, name, 'class labels 0..%d (%d distinct labels)' % (k - 1, k),
                           'labels %d..%d; renumber them (e.g. np.unique(y, return_inverse=True)[1])'
                           % (lo, hi))
        elif lo < 0 or hi >= n_classes:
            raise _err(path, name, 'labels 0..%d (the classes in y)' % (n_classes - 1),
                       'labels %d..%d' % (lo, hi))
        return y.astype(np.int32)
    if y.ndim not in (1, 2) or y.shape[0] != n:
        raise _err(path, name, 'one target (or row of targets) per sequence, shape (%d,) or (%d, K)'
                   % (n, n), 'shape %s' % (y.shape,))
    y = y.reshape(n, -1).astype(np.float64)
    if y.shape[1] == 0:
        raise _err(path, name, 'at least one target per sequence', 'shape %s' % (y.shape,))
    _finite(path, name, y)
    if n_classes is not None and y.shape[1] != n_classes:
        raise _err(path, name, '%d targets per sequence (as y)' % n_classes, 'shape %s' % (y.shape,))
    return y


def validate(arrays, path, input=None, task=None, csv=False):
    """Check x, y (and x_test, y_test) and infer input kind, task, n_in and n_out."""
    x = np.asarray(arrays['x'])
    y = np.asarray(arrays['y'])
    if input is None:
        if x.dtype.kind in 'iu':
            input = 'ids'
        elif x.dtype.kind == 'f':
            input = 'real'
        else:
            raise _err(path, 'x', 'integer ids (N, T) or float features (N, T, D)', 'dtype %s' % x.dtype)
    if task is None:
        task = 'classification' if y.dtype.kind in 'biu' else 'regression'
    if csv and input == 'real' and x.ndim == 2:   # one whole-number feature column, as numbers
        x = x[:, :, None]
    if csv and input == 'ids' and x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    x = _check_x(path, 'x', x, input)
    y = _check_y(path, 'y', y, x.shape[0], task)
    x_test = y_test = None
    if arrays.get('x_test') is not None:
        x_test = _check_x(path, 'x_test', np.asarray(arrays['x_test']), input, ref=x)
        y_test = _check_y(path, 'y_test', np.asarray(arrays['y_test']), x_test.shape[0], task,
                          n_classes=(int(y.max()) + 1) if task == 'classification' else y.shape[1])
    if input == 'ids':
        n_in = int(max(x.max(), x_test.max() if x_test is not None else 0)) + 1
    else:
        n_in = x.shape[2]
    n_out = int(y.max()) + 1 if task == 'classification' else y.shape[1]
    return Sequences(x, y, x_test, y_test, input, task, n_in, n_out, path)


# ------------------------------------------------------------------------------ splits

def split(x, y, fraction, seed=0, stratify=True):
    """Indices (train, test) holding out ``fraction`` of the sequences, seeded; stratified
    by class when ``stratify`` (each class with >= 2 members gives at least one)."""
    n = len(x)
    rng = np.random.RandomState(seed)
    test = []
    if stratify:
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            rng.shuffle(idx)
            k = int(round(fraction * len(idx)))
            k = min(max(k, 1), len(idx) - 1) if len(idx) >= 2 else 0
            test.append(idx[:k])
        test = np.concatenate(test)
    else:
        idx = rng.permutation(n)
        k = min(max(int(round(fraction * n)), 1), n - 1)
        test = idx[:k]
    mask = np.zeros(n, bool)
    mask[test] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def with_test_split(data, fraction, seed=0):
    """``data`` with a held-out test set, or a one-line error when that cannot be done."""
    if fraction is not None and not 0 < fraction < 1:
        raise SequenceDataError('--test-split: expected a fraction between 0 and 1, found %s' % fraction)
    if data.x_test is not None:
        if fraction is not None:
            raise SequenceDataError('%s: --test-split %s: expected a file without x_test/y_test, found '
                                    'both; drop --test-split to use them' % (data.path, fraction))
        return data
    if fraction is None:
        raise SequenceDataError('%s: x_test, y_test: expected a test set, found none; hold one out '
                                'with --test-split 0.2' % data.path)
    if len(data.x) < 2:
        raise SequenceDataError('%s: x: expected at least 2 sequences to split, found %d'
                                % (data.path, len(data.x)))
    tr, te = split(data.x, data.y, fraction, seed, stratify=data.task == 'classification')
    return Sequences(data.x[tr], data.y[tr], data.x[te], data.y[te], data.input, data.task,
                     data.n_in, data.n_out, data.path)


# ---- the rules between the own-data settings (settings.RULES lists check_own_data) -------

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
