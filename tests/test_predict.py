"""irnn-chainer predict and irnn_chainer.load: real runs trained here, predictions checked
against evaluate's forward pass (its accuracy and loss) and a NumPy loop of the IRNN written
from the equations; every bad input is one line and exit 2 through the CLI."""
import csv
import gzip
import io
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

import irnn_chainer
from irnn_chainer.commands import cli
from irnn_chainer.data import mnist as data_mod
from irnn_chainer.commands import predict as predict_mod
from irnn_chainer.data import sequences as seq_mod
from irnn_chainer.commands import evaluate as evaluate_mod
from irnn_chainer import files
from irnn_chainer.run import runfolder
from irnn_chainer.run import train as train_mod

import realmnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNAP_PREFIX = 'updater/model:main/predictor/'
N_TEST = 200


def quiet(*args):
    pass


def train_run(out, **cfg):
    with open(os.devnull, 'w') as table:
        train_mod.train(cfg, str(out), progress=False, log=quiet, table_out=table)
    return str(out)


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    return tmp_path_factory.mktemp('predict')


@pytest.fixture(scope='module')
def mnist_test():
    """The embedded subset's first 200 test images (what the runs below evaluate on)."""
    return data_mod.get_mnist('embedded', test_limit=N_TEST, log=quiet)


@pytest.fixture(scope='module')
def mnist_run(work):
    """A short real run on the embedded subset that learned above chance (35.5 % on 200
    test images, ~8 s; 27.5 % and 30 % with seeds 1 and 2): 600 RMSprop updates of a 32-unit IRNN."""
    return train_run(work / 'mnist', dataset='embedded', train_limit=2400, test_limit=N_TEST, unit=32,
                     optimizer='rmsprop', lr=5e-4, clip=1.0, iteration=600, batchsize=16, seed=0,
                     skip_nonfinite=True)


@pytest.fixture(scope='module')
def permuted_run(work):
    return train_run(work / 'perm', dataset='embedded', train_limit=320, test_limit=N_TEST, unit=16,
                     optimizer='rmsprop', lr=3e-4, clip=1.0, iteration=40, batchsize=16, seed=5, permute=True,
                     init_std=0.05)


@pytest.fixture(scope='module')
def test_npy(work, mnist_test):
    path = str(work / 'test.npy')
    np.save(path, mnist_test.test_x)
    return path


def read_predictions(path_or_text):
    text = open(path_or_text).read() if os.path.exists(path_or_text) else path_or_text
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def probabilities(rows, n_classes=10):
    return np.array([[float(v) for v in r[2:2 + n_classes]] for r in rows])


def run_cli(*args):
    """The CLI in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = cli.main([str(a) for a in args])
    finally:
        sys.stdout, sys.stderr = old
    return code, out.getvalue(), err.getvalue()


def run_process(*args, cwd=ROOT):
    p = subprocess.run([sys.executable] + [str(a) for a in args], cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def one_line_error(code, err, *words):
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert code == 2 and len(lines) == 1 and 'Traceback' not in err, (code, err)
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def numpy_irnn_probs(run_dir, x, perm=None):
    """The IRNN from its equations, in float64, with the weights read from the run's newest
    snapshot by plain np.load: h_t = relu(E[x_t] + W h_{t-1} + b), softmax(V h_T + c)."""
    snap = runfolder.snapshots(run_dir)[0]
    with np.load(snap) as f:
        E, W, b, V, c = (f[SNAP_PREFIX + k].astype(np.float64) for k in
                         ('pixel_to_h/W', 'h_to_h/W', 'h_to_h/b', 'h_to_y/W', 'h_to_y/b'))
    x = np.asarray(x).reshape(len(x), 784)
    if perm is not None:
        x = x[:, perm]
    h = np.zeros((len(x), W.shape[0]))
    for t in range(x.shape[1]):
        h = np.maximum(0, E[x[:, t]] + h @ W.T + b)
    z = h @ V.T + c
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def write_idx_images(path, images):
    images = np.asarray(images, np.uint8).reshape(-1, 28, 28)
    raw = struct.pack('>IIII', 2051, len(images), 28, 28) + images.tobytes()
    with open(path, 'wb') as f:
        f.write(gzip.compress(raw) if path.endswith('.gz') else raw)


def write_png(path, image, mode='L'):
    from PIL import Image
    im = Image.fromarray(np.asarray(image, np.uint8).reshape(28, 28), mode='L')
    if mode != 'L':
        im = im.convert(mode)
    im.save(path)


# ------------------------------------------------------------------ pixel MNIST runs

def test_predict_csv_gives_evaluates_accuracy_and_loss(work, mnist_run, mnist_test, test_npy):
    """The CSV of `irnn-chainer predict` (a real process) on the run's own test images:
    accuracy and mean cross-entropy recomputed from it equal evaluate's, and the
    probabilities equal the IRNN's equations computed in NumPy."""
    out = str(work / 'pred.csv')
    code, stdout, err = run_process('-m', 'irnn_chainer', 'predict', mnist_run, test_npy, '-o', out)
    assert code == 0, err
    assert stdout == ''
    summary = err.strip().splitlines()
    assert len(summary) == 1 and summary[0].startswith('predict: 200 sequences from 1 file'), err
    assert 'snapshot_iter_600' in summary[0] and summary[0].endswith('-> %s' % out)
    head, rows = read_predictions(out)
    assert head == ['input', 'predicted'] + ['p%d' % c for c in range(10)]
    assert [r[0] for r in rows] == ['%s[%d]' % (test_npy, i) for i in range(N_TEST)]
    p = probabilities(rows)
    predicted = np.array([int(r[1]) for r in rows])
    np.testing.assert_array_equal(predicted, p.argmax(axis=1))
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-6)
    y = mnist_test.test_y
    ev = evaluate_mod.evaluate(mnist_run, log=quiet)
    assert ev['n'] == N_TEST and ev['accuracy'] > 0.15, ev  # the run learned: above chance
    assert (predicted == y).mean() == pytest.approx(ev['accuracy'], abs=1e-6)  # float32: 1 image = 5e-3
    assert -np.log(p[np.arange(N_TEST), y]).mean() == pytest.approx(ev['loss'], rel=1e-5)
    ref = numpy_irnn_probs(mnist_run, mnist_test.test_x[:40])
    np.testing.assert_allclose(p[:40], ref, rtol=1e-4, atol=1e-6)


def test_python_api_matches_the_cli(work, mnist_run, mnist_test, test_npy):
    import chainer
    run = irnn_chainer.load(mnist_run)
    assert isinstance(run.model, chainer.Link) and run.task == 'classification' and run.n_out == 10
    probs = run.predict(mnist_test.test_x)
    assert probs.shape == (N_TEST, 10) and probs.dtype == np.float32
    _, rows = read_predictions(run_cli('predict', mnist_run, test_npy, '--no-progress')[1])
    np.testing.assert_allclose(probs, probabilities(rows), rtol=1e-6)
    # (N, 28, 28) and any batch size give the same; .model gives the logits
    np.testing.assert_allclose(run.predict(mnist_test.test_x.reshape(-1, 28, 28)[:10], batchsize=3),
                               probs[:10], rtol=1e-5, atol=1e-7)
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        logits = run.model(mnist_test.test_x[:5].astype(np.int32)).array
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), probs[:5], rtol=1e-5)
    with pytest.raises(predict_mod.PredictError, match=r'x: expected integer pixel values 0\.\.255'):
        run.predict(mnist_test.test_x / 255.0)
    with pytest.raises(predict_mod.PredictError, match=r'x: expected MNIST images of shape \(N, 784\)'):
        run.predict(mnist_test.test_x[0])


def test_png_of_a_real_test_image_reads_back_the_same_ids_and_prediction(work, mnist_run, mnist_test):
    images = mnist_test.test_x[:3]
    pngs = []
    for i, image in enumerate(images):
        pngs.append(str(work / ('digit%d.png' % i)))
        write_png(pngs[-1], image)
        np.testing.assert_array_equal(predict_mod.read_image(pngs[-1]), image)
    code, stdout, err = run_cli('predict', mnist_run, *pngs)
    assert code == 0, err
    _, rows = read_predictions(stdout)
    assert [r[0] for r in rows] == pngs
    np.testing.assert_allclose(probabilities(rows), numpy_irnn_probs(mnist_run, images), rtol=1e-4, atol=1e-6)
    run = irnn_chainer.load(mnist_run)
    np.testing.assert_allclose(probabilities(rows), run.predict(mnist_test.test_x)[:3], rtol=1e-5, atol=1e-7)
    # a JPEG (lossy) of the same digit is read too, close to the original pixels
    jpg = str(work / 'digit0.jpg')
    from PIL import Image
    Image.fromarray(images[0].reshape(28, 28), mode='L').save(jpg, quality=95)
    assert np.abs(predict_mod.read_image(jpg).astype(int) - images[0]).mean() < 10
    assert run_cli('predict', mnist_run, jpg)[0] == 0


def test_real_mnist_t10k_idx_file(work, mnist_run):
    """The full MNIST test set's IDX file (gzip) as input: 10000 rows; a PNG of its first
    image (a 7) predicts as that row."""
    idx = realmnist.path('t10k-images-idx3-ubyte.gz')
    out = str(work / 't10k.csv')
    code, _, err = run_cli('predict', mnist_run, idx, '-o', out, '--no-progress')
    assert code == 0, err
    _, rows = read_predictions(out)
    assert len(rows) == 10000 and rows[0][0] == idx + '[0]'
    first = data_mod.read_idx(idx, 'images')[0]
    png = str(work / 't10k0.png')
    write_png(png, first)
    _, prow = read_predictions(run_cli('predict', mnist_run, png)[1])
    np.testing.assert_allclose(probabilities(prow), probabilities(rows[:1]), rtol=1e-5, atol=1e-7)


def test_idx_files_raw_and_gzip(work, mnist_run, mnist_test, test_npy):
    raw, gz = str(work / 'imgs-idx3-ubyte'), str(work / 'imgs-idx3-ubyte.gz')
    write_idx_images(raw, mnist_test.test_x[:7])
    write_idx_images(gz, mnist_test.test_x[7:12])
    code, stdout, err = run_cli('predict', mnist_run, raw, gz)
    assert code == 0, err
    _, rows = read_predictions(stdout)
    assert [r[0] for r in rows] == ['%s[%d]' % (raw, i) for i in range(7)] + ['%s[%d]' % (gz, i) for i in range(5)]
    _, ref = read_predictions(run_cli('predict', mnist_run, test_npy)[1])
    np.testing.assert_allclose(probabilities(rows), probabilities(ref[:12]), rtol=1e-5, atol=1e-7)


def test_permuted_run_predicts_through_its_permutation(work, permuted_run, mnist_test, test_npy):
    perm = np.load(os.path.join(permuted_run, 'permutation.npy'))
    assert not (perm == np.arange(784)).all()
    code, stdout, err = run_cli('predict', permuted_run, test_npy)
    assert code == 0, err
    assert 'pixel MNIST (permuted)' in err
    _, rows = read_predictions(stdout)
    p = probabilities(rows)
    ev = evaluate_mod.evaluate(permuted_run, log=quiet)
    y = mnist_test.test_y
    assert (p.argmax(axis=1) == y).mean() == pytest.approx(ev['accuracy'], abs=1e-6)  # float32: 1 image = 5e-3
    assert -np.log(p[np.arange(N_TEST), y]).mean() == pytest.approx(ev['loss'], rel=1e-5)
    x = mnist_test.test_x[:20]
    permuted = numpy_irnn_probs(permuted_run, x, perm)
    np.testing.assert_allclose(p[:20], permuted, rtol=1e-4, atol=1e-6)
    # the same images without the permutation: far off (the check above can tell them apart)
    assert np.abs(numpy_irnn_probs(permuted_run, x) - p[:20]).max() > 100 * np.abs(permuted - p[:20]).max()


def test_inverted_image_is_refused_and_invert_flag_reads_it(work, mnist_run, mnist_test):
    image = mnist_test.test_x[0]
    png = str(work / 'inverted.png')
    write_png(png, 255 - image)
    one_line_error(*run_cli('predict', mnist_run, png)[::2], png, 'looks inverted', 'white digits on black',
                   '--invert')
    code, stdout, err = run_cli('predict', mnist_run, png, '--invert')
    assert code == 0, err
    _, rows = read_predictions(stdout)
    np.testing.assert_allclose(probabilities(rows), numpy_irnn_probs(mnist_run, image[None]), rtol=1e-4,
                               atol=1e-6)
    # no image of the real MNIST test set looks inverted (the rule's margin, measured: docs/predict.md)
    assert not any(predict_mod.looks_inverted(im) for im in mnist_test.test_x)


def test_output_file_is_refused_when_it_exists_unless_force(work, mnist_run, test_npy):
    out = str(work / 'exists.csv')
    with open(out, 'w') as f:
        f.write('keep me\n')
    one_line_error(*run_cli('predict', mnist_run, test_npy, '-o', out)[::2], out, 'exists', '--force')
    assert open(out).read() == 'keep me\n'
    code, _, err = run_cli('predict', mnist_run, test_npy, '-o', out, '--force')
    assert code == 0, err
    head, rows = read_predictions(out)
    assert head[:2] == ['input', 'predicted'] and len(rows) == N_TEST
    assert not [n for n in os.listdir(str(work)) if n.startswith('.tmp-')]  # written atomically
    one_line_error(*run_cli('predict', mnist_run, test_npy, '-o', str(work))[::2], 'a folder')


def test_progress_line_with_eta(mnist_run, mnist_test):
    stream = io.StringIO()
    run = irnn_chainer.load(mnist_run)
    run.predict(mnist_test.test_x[:40], batchsize=10, progress=predict_mod.Progress(stream, every=0))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4 and lines[0].startswith('predict: 10 / 40 sequences ( 25 %)') and 'ETA' in lines[0]
    assert lines[-1].startswith('predict: 40 / 40 sequences (100 %)')
    quiet_stream = io.StringIO()  # short inputs: no line at all
    run.predict(mnist_test.test_x[:40], batchsize=10, progress=predict_mod.Progress(quiet_stream, every=60))
    assert quiet_stream.getvalue() == ''


def _bad_mnist_inputs(work, mnist_test):
    """(name, path or None, argv extras, words in the one line)."""
    image = mnist_test.test_x[0]
    from PIL import Image
    big = str(work / 'big.png')
    Image.fromarray(np.zeros((32, 32), np.uint8), mode='L').save(big)
    rgb = str(work / 'rgb.png')
    write_png(rgb, image, mode='RGB')
    garbage = str(work / 'garbage.png')
    with open(garbage, 'w') as f:
        f.write('not an image\n')
    truncated = str(work / 'cut-idx3-ubyte')
    write_idx_images(truncated, mnist_test.test_x[:2])
    with open(truncated, 'r+b') as f:
        f.truncate(16 + 784 + 100)
    labels = str(work / 'labels-idx1-ubyte')
    with open(labels, 'wb') as f:
        f.write(struct.pack('>II', 2049, 3) + bytes([1, 2, 3]))
    shape = str(work / 'shape.npy')
    np.save(shape, np.zeros((5, 100), np.uint8))
    dtype = str(work / 'dtype.npy')
    np.save(dtype, (mnist_test.test_x[:3] / 255.0).astype(np.float32))
    pickled = str(work / 'pickled.npy')
    np.save(pickled, np.array([{'a': 1}], dtype=object), allow_pickle=True)
    npz = str(work / 'own.npz')
    np.savez(npz, x=np.zeros((2, 5, 3), np.float32))
    return [
        ('wrong size', big, ['32x32', 'grayscale', '28x28', 'resize((28, 28))']),
        ('RGB', rgb, ['28x28 RGB colour', "convert('L')"]),
        ('not an image', garbage, ['Pillow cannot read']),
        ('truncated IDX', truncated, ['truncated IDX images file']),
        ('IDX labels', labels, ['IDX labels file', 'predict reads']),
        ('npy shape', shape, ['(N, 784) or (N, 28, 28)', 'shape (5, 100)']),
        ('npy dtype', dtype, ['uint8', 'float32', '* 255']),
        ('npy pickle', pickled, ['pickle', 'refused']),
        ('own-data file', npz, ['pixel-MNIST run', '.npz']),
        ('missing', str(work / 'nothing.png'), ['no such file']),
    ]


def test_every_bad_mnist_input_is_one_line_and_exit_2(work, mnist_run, mnist_test):
    for name, path, words in _bad_mnist_inputs(work, mnist_test):
        code, stdout, err = run_cli('predict', mnist_run, path, '-o', str(work / 'never.csv'))
        line = one_line_error(code, err, path, *words)
        assert line.startswith('irnn-chainer: error: '), (name, line)
        assert stdout == '' and not os.path.exists(str(work / 'never.csv')), name


def test_run_folder_without_weights_and_not_a_run(work, mnist_run, test_npy):
    empty = str(work / 'no-weights')
    os.makedirs(empty)
    shutil.copy(os.path.join(mnist_run, 'config.json'), empty)
    one_line_error(*run_cli('predict', empty, test_npy)[::2], empty, 'no weights', 'model.npz')
    one_line_error(*run_cli('predict', str(work / 'nowhere'), test_npy)[::2], 'not an irnn-chainer run folder')
    one_line_error(*run_cli('predict', mnist_run, test_npy, '--device', 'tpu')[::2], "'tpu'")
    with pytest.raises(files.FileError, match='no weights'):
        irnn_chainer.load(empty)


# ------------------------------------------------------------------ own data

def own_classification_data(n, T=6, seed=0):
    """3 features per step; the class: whether feature 0 sums to more than 0 (learnable)."""
    rs = np.random.RandomState(seed)
    x = rs.normal(0, 1, (n, T, 3)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    return x, y


@pytest.fixture(scope='module')
def own_run(work):
    x, y = own_classification_data(160)
    xt, yt = own_classification_data(40, seed=1)
    path = str(work / 'own.npz')
    np.savez(path, x=x, y=y, x_test=xt, y_test=yt)
    run = train_run(work / 'own-run', data=path, unit=8, optimizer='adam', lr=1e-2, batchsize=16, epoch=3,
                    init_std=0.1, seed=1)
    return run, xt, yt


def numpy_real_probs(run_dir, x):
    snap = runfolder.snapshots(run_dir)[0]
    with np.load(snap) as f:
        U, W, b, V, c = (f[SNAP_PREFIX + k].astype(np.float64) for k in
                         ('x_to_h1/W', 'h1_to_h1/W', 'h1_to_h1/b', 'h_to_y/W', 'h_to_y/b'))
    h = np.zeros((len(x), W.shape[0]))
    for t in range(x.shape[1]):
        h = np.maximum(0, x[:, t] @ U.T + h @ W.T + b)
    z = h @ V.T + c
    if V.shape[0] == 1:  # regression: the outputs themselves
        return z
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def test_own_data_classification_npz_and_csv(work, own_run):
    run, xt, yt = own_run
    ev = evaluate_mod.evaluate(run, log=quiet)
    # without labels: x only
    nolabel = str(work / 'own-x.npz')
    np.savez(nolabel, x=xt)
    code, stdout, err = run_cli('predict', run, nolabel)
    assert code == 0, err
    head, rows = read_predictions(stdout)
    assert head == ['input', 'predicted', 'p0', 'p1'] and rows[0][0] == nolabel + ':x[0]'
    p = probabilities(rows, 2)
    assert (p.argmax(axis=1) == yt).mean() == pytest.approx(ev['accuracy'], abs=1e-6)  # float32: 1 image = 5e-3
    assert -np.log(p[np.arange(len(yt)), yt]).mean() == pytest.approx(ev['loss'], rel=1e-5)
    np.testing.assert_allclose(p, numpy_real_probs(run, xt.astype(np.float64)), rtol=1e-4, atol=1e-6)
    # with labels, in the training file format: a label column and the accuracy in the summary
    code, stdout, err = run_cli('predict', run, os.path.join(str(work), 'own.npz'))
    assert code == 0, err
    head, rows = read_predictions(stdout)
    assert head[-1] == 'label' and len(rows) == 200  # x (160) then x_test (40)
    assert rows[160][0].endswith('own.npz:x_test[0]')
    np.testing.assert_allclose(probabilities(rows[160:], 2), p, rtol=1e-6)
    assert ("accuracy %.4f against the inputs' labels" % np.mean([int(r[1]) == int(r[-1]) for r in rows])) in err
    # CSV, long format, with and without the label column
    with_labels = str(work / 'own.csv')
    seq_mod.write_csv(with_labels, xt, yt)
    no_labels = str(work / 'own-nolabel.csv')
    with open(no_labels, 'w') as f:
        f.write('seq,t,a,b,c\n')
        for i in range(len(xt)):
            for t in range(xt.shape[1]):
                f.write('s%d,%d,%s\n' % (i, t, ','.join('%.9g' % v for v in xt[i, t])))
    for path, has_label in ((with_labels, True), (no_labels, False)):
        code, stdout, err = run_cli('predict', run, path)
        assert code == 0, err
        head, rows = read_predictions(stdout)
        assert (head[-1] == 'label') == has_label
        assert rows[3][0] == '%s:%s' % (path, '3' if has_label else 's3')
        np.testing.assert_allclose(probabilities(rows, 2), p, rtol=1e-5, atol=1e-7)
    # the Python API on (N, T, F) floats
    api_p = irnn_chainer.load(run).predict(xt)
    np.testing.assert_allclose(api_p, p, rtol=1e-6)


def test_own_data_bad_inputs(work, own_run, mnist_test):
    run, xt, yt = own_run
    features = str(work / 'own-4.npz')
    np.savez(features, x=np.zeros((2, 6, 4), np.float32))
    columns = str(work / 'own-wide.csv')
    seq_mod.write_csv(columns, np.zeros((2, 3, 5)), np.zeros(2))
    nan = str(work / 'own-nan.npz')
    bad = xt.copy()
    bad[1, 2, 0] = np.nan
    np.savez(nan, x=bad)
    labels = str(work / 'own-labels.npz')
    np.savez(labels, x=xt, y=np.full(len(xt), 7))
    png = str(work / 'own-digit.png')
    write_png(png, mnist_test.test_x[0])
    empty = str(work / 'own-empty.csv')
    open(empty, 'w').close()
    for path, words in ((features, ['3 features per step', '(2, 6, 4)']),
                        (empty, ['no data rows']),
                        (columns, ['expected 5 columns', 'or 6 (and a label)', 'found 8']),
                        (nan, ['finite numbers', 'NaN']),
                        (labels, ['labels 0..1', '7..7']),
                        (png, ['.npz or .csv', 'found']),
                        (str(work / 'none.npz'), ['no such file'])):
        one_line_error(*run_cli('predict', run, path)[::2], path, *words)
    with pytest.raises(predict_mod.PredictError, match=r'x: expected float features'):
        irnn_chainer.load(run).predict(np.zeros((2, 6, 3), np.int32))


def test_own_data_ids_input_csv_without_labels(work):
    """An own-data run on integer ids (N, T) through an EmbedID: a CSV of one id column
    (no label) predicts as the API on the array; an id beyond the run's table is refused."""
    rs = np.random.RandomState(3)
    x = rs.randint(0, 5, (60, 7))
    y = (x == 4).any(axis=1).astype(np.int64)
    path = str(work / 'ids.npz')
    np.savez(path, x=x, y=y)
    run = train_run(work / 'ids-run', data=path, test_split=0.25, unit=6, optimizer='adam', lr=1e-2,
                    batchsize=15, epoch=2, init_std=0.1, seed=0)
    csv_path = str(work / 'ids.csv')
    with open(csv_path, 'w') as f:
        for i in range(10):
            for t in range(7):
                f.write('%d,%d,%d\n' % (i, t, x[i, t]))
    code, stdout, err = run_cli('predict', run, csv_path)
    assert code == 0, err
    head, rows = read_predictions(stdout)
    assert head == ['input', 'predicted', 'p0', 'p1'] and len(rows) == 10
    pred = irnn_chainer.load(run)
    assert pred.input == 'ids' and pred.n_in == 5
    np.testing.assert_allclose(probabilities(rows, 2), pred.predict(x[:10]), rtol=1e-6)
    big = str(work / 'ids-big.npz')
    np.savez(big, x=np.full((2, 7), 9))
    one_line_error(*run_cli('predict', run, big)[::2], big, 'ids in 0..4', '9..9')


def test_own_data_regression_adding_problem(work):
    run = train_run(work / 'adding', dataset='adding', length=10, train_limit=64, test_limit=32, unit=8,
                    iteration=8, batchsize=16, optimizer='adam', lr=1e-2, seed=2)
    ev = evaluate_mod.evaluate(run, log=quiet)
    data = seq_mod.adding_data(10, 64, 32, seed=2)  # the run's own test set, generated again
    path = str(work / 'adding-test.npz')
    np.savez(path, x=data.x_test, y=data.y_test)
    code, stdout, err = run_cli('predict', run, path)
    assert code == 0, err
    head, rows = read_predictions(stdout)
    assert head == ['input', 'y0', 'target0'] and len(rows) == 32
    out = np.array([float(r[1]) for r in rows])
    np.testing.assert_allclose([float(r[2]) for r in rows], data.y_test[:, 0], rtol=1e-7)
    assert ((out - data.y_test[:, 0]) ** 2).mean() == pytest.approx(ev['loss'], rel=1e-5)
    assert "MSE %.6g against the inputs' targets" % ((out - data.y_test[:, 0].astype(np.float64)) ** 2).mean() in err
    np.testing.assert_allclose(out, numpy_real_probs(run, data.x_test.astype(np.float64))[:, 0], rtol=1e-4,
                               atol=1e-6)
    api_out = irnn_chainer.load(run).predict(data.x_test)
    assert api_out.shape == (32, 1)
    np.testing.assert_allclose(api_out[:, 0], out, rtol=1e-6)


# ------------------------------------------------------------------ the example

def test_example_predicts_the_first_test_images(work, mnist_run, mnist_test):
    code, stdout, err = run_process(os.path.join(ROOT, 'examples', 'predict_mnist.py'), '--run', mnist_run,
                                    '-n', '20')
    assert code == 0, err
    probs = irnn_chainer.load(mnist_run).predict(mnist_test.test_x[:20])
    acc = (probs.argmax(axis=1) == mnist_test.test_y[:20]).mean()
    assert 'accuracy %.3f on 20 images (embedded' % acc in stdout
    lines = stdout.splitlines()
    assert lines[2].split()[:3] == ['0', str(mnist_test.test_y[0]), str(probs[0].argmax())]
    empty = str(work / 'example-no-weights')
    os.makedirs(empty)
    shutil.copy(os.path.join(mnist_run, 'config.json'), empty)
    code, stdout, err = run_process(os.path.join(ROOT, 'examples', 'predict_mnist.py'), '--run', empty)
    assert code == 1 and 'no weights' in err and 'Traceback' not in err, err
