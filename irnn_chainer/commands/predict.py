"""Use a trained run: ``irnn-chainer predict RUN INPUT...`` and ``irnn_chainer.load(RUN)``.

A run's settings (config.json), its model and its newest weights (the newest snapshot,
else model.npz, as ``irnn-chainer evaluate`` takes them) are loaded by
:func:`irnn_chainer.weights.load_run_model`; :class:`Predictor` applies them to new sequences, in batches, on
the run's device (or another), through the fused recurrence where the run's model has one,
with no graph (``chainer.using_config('train', False)`` and ``no_backprop_mode``).

Inputs (:func:`read_inputs`):

* a pixel-MNIST run (also ``--permute``: the run's ``permutation.npy`` is applied here, so
  images are given in their natural pixel order): 28x28 grayscale PNG or JPEG images (one
  sequence each), IDX image files (``t10k-images-idx3-ubyte[.gz]``), ``.npy`` arrays of shape
  (N, 784) or (N, 28, 28), uint8. The model was trained on MNIST's white digits on a black
  background: an input that looks inverted (a light background) is refused unless ``invert``.
* a run on your own data (``--data``, ``--dataset adding``): ``.npz`` or ``.csv`` files in
  the training format (sequences.py), the labels optional; a .npz's x and x_test are both read.

Output (:func:`write_csv`): one row per sequence: its name, then for classification the
predicted class and one probability column per class (``p0 .. p{C-1}``), for regression
the outputs (``y0 .. y{K-1}``); a ``label`` (or ``target0 ..``) column when the inputs
carry labels. Every problem is one line naming the file, what was expected and what was found.
"""
import csv
import io
import os
import sys
import time

import numpy as np

import chainer
import chainer.functions as F

from irnn_chainer.data import mnist as data_mod
from irnn_chainer import files
from irnn_chainer import progress as progress_mod
from irnn_chainer.model import rnn as model_mod
from irnn_chainer.run import runfolder
from irnn_chainer.data import sequences as seq_mod
from irnn_chainer.data import sources
from irnn_chainer.compat import api
from irnn_chainer.errors import UsageError
from irnn_chainer.model.weights import load_run_model

SIDE = 28                       # MNIST images: 28 x 28 pixels
BORDER = 2                      # the frame that :func:`looks_inverted` reads (MNIST: ~0 there)
INVERTED_ABOVE = 127            # mean (or frame mean) pixel above this: a light background
IMAGE_MAGIC = (b'\x89PNG\r\n\x1a\n', b'\xff\xd8\xff')   # PNG, JPEG
NPY_MAGIC = b'\x93NUMPY'
MNIST_INPUTS = 'a 28x28 grayscale PNG/JPEG image, an IDX images file or a .npy array (N, 784) uint8'
# Pillow's modes, in words (for the one-line error)
MODE_WORDS = {'1': '1-bit black and white', 'L': 'grayscale', 'LA': 'grayscale with alpha',
              'P': 'palette', 'RGB': 'RGB colour', 'RGBA': 'RGB colour with alpha', 'CMYK': 'CMYK colour',
              'I': '32-bit integer grayscale', 'I;16': '16-bit grayscale', 'F': 'floating-point grayscale'}


class PredictError(UsageError):
    """A bad input for predict (one line naming the file or array, expected, found; exit 2)."""


# --------------------------------------------------------------------------- the run

def load(run, device=None):
    """A :class:`Predictor` for the run folder ``run`` (or one of its weight files: a snapshot,
    model.npz, model_ema.npz) on ``device``
    (a Chainer device spec such as '@numpy' or '@cupy:0'; default: the run's own)."""
    return Predictor(*load_run_model(run, api.device_spec(device) if device is not None else None))


def _to_numpy(a):
    return np.asarray(a.get() if hasattr(a, 'get') else a)  # a CuPy array has .get()


class Predictor(object):
    """A trained run, ready to predict.

    ``predict(x)``: class probabilities (N, C), or the regression outputs (N, K), as a NumPy
    array; ``model``: the Chainer link (``model(x)`` gives the logits or outputs of a batch of
    model inputs: int32 ids, or float features in the run's dtype); ``cfg``: the run's
    settings; ``weights``: the file the weights came from; ``task``: 'classification' or
    'regression'; ``n_out``: classes or outputs.
    """

    def __init__(self, cfg, model, weights):
        self.cfg, self.weights, self.classifier = cfg, weights, model
        self.model = model.predictor
        self.run_dir = os.path.dirname(os.path.abspath(weights))
        self.device = api.get_device(cfg['device'])
        spec = sources.from_config(cfg)  # what the model takes and gives (the run's data record)
        self.mnist = spec.kind == 'mnist'
        self.task, self.input, self.n_in, self.n_out = spec.task, spec.input, int(spec.n_in), int(spec.n_out)
        self.dtype = np.dtype(cfg.get('dtype') or 'float32')
        self.permutation = None
        if self.mnist and cfg.get('permute'):
            path = os.path.join(self.run_dir, runfolder.PERMUTATION_FILE)
            perm = files.load_npy(path, 'the run\'s pixel permutation (784 integers; a --permute run)')
            try:
                data_mod.apply_permutation(np.zeros((1, data_mod.N_PIXELS), np.uint8), perm)
            except data_mod.DataError as e:
                raise files.FileError('%s: %s' % (path, e)) from None
            self.permutation = perm

    def describe(self):
        what = ('pixel MNIST%s' % (' (permuted)' if self.permutation is not None else '') if self.mnist
                else '%s input' % self.input)
        out = ('%d classes' % self.n_out if self.task == 'classification'
               else '%d output%s' % (self.n_out, 's' if self.n_out > 1 else ''))
        return '%s, %s, %s, weights %s' % (self.cfg['model'], what, out, self.weights)

    def prepare(self, x, name='x'):
        """``x`` checked and made a model input (NumPy): pixel-MNIST runs take (N, 784) or
        (N, 28, 28) integer pixels 0..255 in their natural order (permuted here for a
        --permute run); own-data runs take ids (N, T) or float features (N, T, n_in).
        Raises PredictError naming ``name``, what was expected and what was found."""
        x = _to_numpy(x)
        if self.mnist:
            if x.ndim == 3 and x.shape[1:] == (SIDE, SIDE):
                x = x.reshape(len(x), data_mod.N_PIXELS)
            if x.ndim != 2 or x.shape[1] != data_mod.N_PIXELS:
                raise PredictError('%s: expected MNIST images of shape (N, 784) or (N, 28, 28), found '
                                   'shape %s%s' % (name, x.shape, '; for one image use x[None]'
                                                   if x.shape in ((784,), (SIDE, SIDE)) else ''))
            if x.dtype.kind not in 'iu':
                raise PredictError('%s: expected integer pixel values 0..255 (uint8), found %s%s'
                                   % (name, x.dtype, '; scaled to 0..1? use (x * 255).round().astype'
                                      '(np.uint8)' if x.dtype.kind == 'f' else ''))
            if x.size and (x.min() < 0 or x.max() > 255):
                raise PredictError('%s: expected pixel values 0..255, found values %d..%d'
                                   % (name, x.min(), x.max()))
            if self.permutation is not None:
                x = data_mod.apply_permutation(x, self.permutation)
        elif self.input == 'real':
            try:
                x = model_mod.check_real(x, self.n_in, self.dtype, name)
            except (TypeError, ValueError) as e:
                raise PredictError(str(e)) from None
            if not np.isfinite(x).all():
                raise PredictError('%s: expected finite numbers, found %d NaN or inf value(s)'
                                   % (name, int((~np.isfinite(x)).sum())))
            return np.ascontiguousarray(x)
        try:
            return model_mod.check_ids(x, self.n_in, name)
        except (TypeError, ValueError) as e:
            raise PredictError(str(e)) from None

    def predict(self, x, batchsize=1000, progress=None, name='x'):
        """Probabilities (N, C) of every class (classification) or the outputs (N, K)
        (regression), as a NumPy array in the run's dtype. ``x``: see :meth:`prepare`;
        ``progress``: None or a callable ``progress(done, total)`` called after each batch."""
        x = self.prepare(x, name)
        if int(batchsize) < 1:
            raise PredictError('batchsize: expected a positive integer, got %s' % batchsize)
        out = np.empty((len(x), self.n_out), self.dtype)
        with api.no_graph():
            for start in range(0, len(x), int(batchsize)):
                batch = chainer.dataset.to_device(self.device, x[start:start + int(batchsize)])
                y = self.model(batch)
                if self.task == 'classification':
                    y = F.softmax(y)
                out[start:start + len(batch)] = _to_numpy(api.array_of(y))
                if progress is not None:
                    progress(min(start + len(batch), len(x)), len(x))
        return out


# --------------------------------------------------------------------------- inputs

class Inputs(object):
    """What :func:`read_inputs` read: ``names`` (one per sequence), ``x`` (the raw inputs,
    for :meth:`Predictor.predict`), ``labels`` (None unless every input carried them)."""

    def __init__(self, names, x, labels, n_files):
        self.names, self.x, self.labels, self.n_files = names, x, labels, n_files


def looks_inverted(image):
    """(mean, frame mean) of a 28x28 image if it looks like a dark digit on a light background
    (either above 127: MNIST's digits are white on black, their mean at most ~101 and the
    2-pixel frame's at most ~11 over all 70000 images), else None."""
    image = np.asarray(image, np.float64).reshape(SIDE, SIDE)
    frame = np.concatenate([image[:BORDER].ravel(), image[-BORDER:].ravel(),
                            image[BORDER:-BORDER, :BORDER].ravel(), image[BORDER:-BORDER, -BORDER:].ravel()])
    mean, edge = image.mean(), frame.mean()
    return (mean, edge) if mean > INVERTED_ABOVE or edge > INVERTED_ABOVE else None


def _sniff(path):
    try:
        with open(path, 'rb') as f:
            return f.read(8)
    except OSError as e:
        raise files.os_error(e, path, 'cannot read it') from None


def read_image(path):
    """A 28x28 grayscale PNG/JPEG as (784,) uint8, or PredictError naming the size and mode
    found and the conversion needed."""
    from PIL import Image  # Pillow comes with matplotlib
    try:
        with Image.open(path) as im:
            im.load()
            mode, size, fmt = im.mode, im.size, im.format
            pixels = np.asarray(im)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise PredictError('%s: expected %s, found an image Pillow cannot read (%s)'
                           % (path, MNIST_INPUTS, str(e).strip().splitlines()[0] if str(e).strip()
                              else type(e).__name__)) from None
    if size != (SIDE, SIDE) or mode != 'L':
        todo = []
        if mode != 'L':
            todo.append(".convert('L')")
        if size != (SIDE, SIDE):
            todo.append('.resize((28, 28))')
        raise PredictError('%s: expected a 28x28 grayscale image (as MNIST), found a %dx%d %s %s (mode %s); '
                           'convert it first, e.g. PIL.Image.open(path)%s.save(...)%s'
                           % (path, size[0], size[1], MODE_WORDS.get(mode, mode), fmt or 'image', mode,
                              ''.join(todo), ' (MNIST digits fill the middle 20x20)'
                              if size != (SIDE, SIDE) else ''))
    return pixels.reshape(data_mod.N_PIXELS).astype(np.uint8)


def read_npy_images(path):
    a = files.load_npy(path, 'a .npy array of MNIST images, (N, 784) or (N, 28, 28) uint8')
    if a.dtype != np.uint8:
        hint = ('; scaled to 0..1? save (x * 255).round().astype(np.uint8)' if a.dtype.kind == 'f'
                else '; with values 0..255 save x.astype(np.uint8)' if a.dtype.kind in 'iu' else '')
        raise PredictError('%s: expected MNIST images as uint8 (pixels 0..255), found dtype %s%s'
                           % (path, a.dtype, hint))
    if a.ndim == 3 and a.shape[1:] == (SIDE, SIDE):
        a = a.reshape(len(a), data_mod.N_PIXELS)
    if a.ndim != 2 or a.shape[1] != data_mod.N_PIXELS or len(a) == 0:
        raise PredictError('%s: expected MNIST images of shape (N, 784) or (N, 28, 28), N >= 1, found shape %s%s'
                           % (path, a.shape, '; save one image as x[None]' if a.shape in ((784,), (SIDE, SIDE))
                              else ''))
    return a


def _read_mnist_file(path):
    """(names, (n, 784) uint8) of one input of a pixel-MNIST run."""
    files.require_file(path, MNIST_INPUTS)
    head = _sniff(path)
    ext = os.path.splitext(path)[1].lower()
    if head.startswith(IMAGE_MAGIC) or ext in ('.png', '.jpg', '.jpeg'):
        return [path], read_image(path)[None]
    if head.startswith(NPY_MAGIC) or ext == '.npy':
        a = read_npy_images(path)
        return ['%s[%d]' % (path, i) for i in range(len(a))], a
    if ext in ('.npz', '.csv'):
        raise PredictError('%s: expected %s for this pixel-MNIST run, found a %s file (own-data runs '
                           'read those)' % (path, MNIST_INPUTS, ext))
    try:
        a = data_mod.read_idx(path, 'images')
    except data_mod.DataError as e:
        raise PredictError('%s (predict reads %s)' % (e, MNIST_INPUTS)) from None
    if len(a) == 0:
        raise PredictError('%s: expected at least one image, found an IDX images file of 0' % path)
    return ['%s[%d]' % (path, i) for i in range(len(a))], a.reshape(len(a), data_mod.N_PIXELS)


def _read_own_file(path, predictor):
    """(names, x, labels or None) of one .npz/.csv input of an own-data run."""
    expected = 'a .npz or .csv file in the training format (docs/own-data.md)'
    files.require_file(path, expected)
    input, n_feat = predictor.input, 1 if predictor.input == 'ids' else predictor.n_in
    head, is_csv = _sniff(path), path.lower().endswith('.csv')
    if not is_csv and not head.startswith(b'PK') and not path.lower().endswith('.npz'):
        found = ('a PNG/JPEG image' if head.startswith(IMAGE_MAGIC) else 'a .npy array' if
                 head.startswith(NPY_MAGIC) else 'a file that is neither')
        raise PredictError('%s: expected %s for this run on %s, found %s' % (
            path, expected, predictor.cfg.get('data') or 'its own data', found))
    if is_csv:
        try:  # the first row's width says whether there is a label column
            with open(path, newline='') as f:
                first = next((r for r in csv.reader(f) if any(c.strip() for c in r)), [])
        except (UnicodeDecodeError, csv.Error):
            first = None  # read_csv says what is wrong
        width = len(first) if first else 3 + n_feat  # unreadable or empty: read_csv says so
        if width not in (2 + n_feat, 3 + n_feat):
            raise PredictError('%s: expected %d columns (seq, t, %s) or %d (and a label), as the run, '
                               'found %d' % (path, 2 + n_feat, '%d features' % n_feat if input == 'real'
                                             else 'an id', 3 + n_feat, width))
        arrays = seq_mod.read_csv(path, labels=width == 3 + n_feat)
        x = arrays['x']
        if input == 'real' and x.ndim == 2:   # one whole-number feature column, as numbers
            x = x[:, :, None].astype(np.float64)
        if input == 'ids' and x.ndim == 3 and x.shape[2] == 1:
            x = x[:, :, 0]
        parts = [('x', x, arrays.get('y'), ['%s:%s' % (path, s) for s in arrays['seq']])]
    else:
        arrays = seq_mod.read_npz(path, labels=False)
        parts = [(k, arrays[k], arrays.get('y' + k[1:]), None) for k in ('x', 'x_test') if k in arrays]
    names, xs, ys = [], [], []
    for key, x, y, row_names in parts:
        x = seq_mod._check_x(path, key, np.asarray(x), input)
        x = predictor.prepare(x, '%s: %s' % (path, key))
        if y is not None:
            y = seq_mod._check_y(path, 'y' + key[1:], np.asarray(y), len(x), predictor.task,
                                 n_classes=predictor.n_out)
        names += row_names or ['%s:%s[%d]' % (path, key, i) for i in range(len(x))]
        xs.append(x)
        ys.append(y)
    return names, xs, ys


def read_inputs(paths, predictor, invert=False):
    """Every sequence of the input files ``paths`` for ``predictor``'s run (see the module
    docstring) as :class:`Inputs`. ``invert``: MNIST inputs are dark digits on a light
    background; use 255 - pixel."""
    names, xs, ys = [], [], []
    if not paths:
        raise PredictError('expected one or more input files, found none')
    for path in paths:
        if predictor.mnist:
            n, x = _read_mnist_file(path)
            if invert:
                x = 255 - x
            for name, image in zip(n, x):
                seen = looks_inverted(image)
                if seen:
                    raise PredictError('%s: looks inverted (a dark digit on a light background: mean pixel '
                                       '%.0f, border %.0f of 255): the model was trained on MNIST\'s white '
                                       'digits on black; invert it (255 - pixels) or pass --invert%s'
                                       % ((name,) + seen + (' (given: the inverted image looks inverted)'
                                                             if invert else '',)))
            names += n
            xs.append(x)
            ys.append(None)
        else:
            n, x, y = _read_own_file(path, predictor)
            names += n
            xs += x
            ys += y
    lengths = sorted(set(a.shape[1] for a in xs))
    if len(lengths) > 1:  # own data: every file's sequences have one length, but files may differ
        raise PredictError('%s: expected sequences of one length (they are predicted in batches), found '
                           'lengths %s; predict them one file at a time'
                           % (', '.join(paths), ', '.join(map(str, lengths))))
    x = np.concatenate(xs)
    labels = np.concatenate(ys) if ys and all(y is not None for y in ys) else None
    return Inputs(names, x, labels, len(paths))


# --------------------------------------------------------------------------- output

def _fmt(a):
    return np.char.mod('%.9g' if a.dtype.itemsize <= 4 else '%.17g', a)


def write_csv(stream, names, result, task, labels=None):
    """One row per sequence: name, predicted class and p0..p{C-1} (classification) or
    y0..y{K-1} (regression), then label / target0.. when ``labels`` is given."""
    n_out = result.shape[1]
    w = csv.writer(stream, lineterminator='\n')
    if task == 'classification':
        head = ['input', 'predicted'] + ['p%d' % c for c in range(n_out)]
        cols = [np.asarray(names, dtype=object), result.argmax(axis=1).astype(str)]
    else:
        head = ['input'] + ['y%d' % k for k in range(n_out)]
        cols = [np.asarray(names, dtype=object)]
    cols += [_fmt(result[:, k]) for k in range(n_out)]
    if labels is not None:
        if task == 'classification':
            head.append('label')
            cols.append(np.asarray(labels).astype(np.int64).astype(str))
        else:
            labels = np.asarray(labels).reshape(len(result), -1)
            head += ['target%d' % k for k in range(labels.shape[1])]
            cols += [_fmt(labels[:, k]) for k in range(labels.shape[1])]
    w.writerow(head)
    w.writerows(zip(*cols))


def Progress(stream=None, every=1.0):
    """``progress(done, total)`` for :meth:`Predictor.predict`: the package's progress line
    (:mod:`irnn_chainer.progress`), in sequences, at most every ``every`` seconds (also when
    the output is not a terminal), and nothing at all for work done before the first line."""
    return progress_mod.Progress('predict', unit='sequences', stream=stream, every=every, every_plain=every,
                                 always_finish=False)


def check_output(out, force):
    """Refuse ``-o out`` when it exists (unless ``force``) or is not a file's place."""
    if out is None:
        return
    if os.path.isdir(out):
        raise PredictError('-o %s: expected a file name for the CSV, found a folder' % out)
    if os.path.lexists(out) and not force:
        raise PredictError('-o %s: the file exists; give another name, or --force to replace it' % out)
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise PredictError('-o %s: expected an existing folder for it, found no folder %s' % (out, parent))


def predict_files(run, inputs, out=None, force=False, batchsize=1000, device=None, invert=False,
                  progress=True, stdout=None):
    """``irnn-chainer predict``: the CSV to ``out`` (atomically; refused if it exists unless
    ``force``) or to ``stdout``; returns the one-line summary."""
    check_output(out, force)
    t0 = time.time()
    predictor = load(run, device)
    got = read_inputs(inputs, predictor, invert=invert)
    t1 = time.time()
    result = predictor.predict(got.x, batchsize=batchsize, progress=Progress() if progress else None)
    seconds = time.time() - t1
    text = io.StringIO()
    write_csv(text, got.names, result, predictor.task, got.labels)
    if out is None:
        (stdout or sys.stdout).write(text.getvalue())
    else:
        def write(tmp):
            with open(tmp, 'w', newline='') as f:
                f.write(text.getvalue())
        files.write_atomic(out, write, suffix='.csv')
    n = len(got.names)
    line = 'predict: %d sequence%s from %d file%s, %s; %.1f s (%.1f s loading)' % (
        n, '' if n == 1 else 's', got.n_files, '' if got.n_files == 1 else 's', predictor.describe(),
        seconds, t1 - t0)
    if predictor.task == 'classification':
        counts = np.bincount(result.argmax(axis=1), minlength=predictor.n_out)
        line += '; predicted %s' % ' '.join('%d:%d' % (c, k) for c, k in enumerate(counts) if k)
        if got.labels is not None:
            line += '; accuracy %.4f against the inputs\' labels' % float(
                (result.argmax(axis=1) == got.labels).mean())
    elif got.labels is not None:
        line += '; MSE %.6g against the inputs\' targets' % float(
            ((result.astype(np.float64) - np.asarray(got.labels).reshape(result.shape)) ** 2).mean())
    return line + ' -> %s' % (out or 'stdout')
