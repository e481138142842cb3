"""compat (shims and api), tools/matrix.py and ``irnn-chainer compare`` on the installed Chainer.

Each adapter is checked against an independent truth (clipping by hand, a graph that is or
is not there, a file round trip, ...). The other Chainer versions are covered by the matrix:
``IRNN_MATRIX=1 pytest tests/test_compat.py -k matrix`` runs tools/matrix.py (all 18 cells,
or the cells in ``IRNN_MATRIX_CELLS``) and a short ``irnn-chainer compare``.
"""
import collections
import importlib.util
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import irnn_chainer  # noqa: F401  (compat shims first)
import chainer
import chainer.functions as F
import chainer.links as L

from irnn_chainer.commands import compare
from irnn_chainer.model import eras
from irnn_chainer import files
from irnn_chainer.compat import api, shims
from irnn_chainer.model import IRNN, check_ids

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
import matrix  # noqa: E402

needs_matrix = pytest.mark.skipif(os.environ.get('IRNN_MATRIX') != '1',
                                  reason='set IRNN_MATRIX=1 to build/run the Chainer x NumPy matrix')


def small_irnn(seed=0, n_units=5):
    return eras.build_irnn(seed=seed, n_units=n_units, n_in=256, n_out=3)


def ids(rng, batch=4, length=7):
    return rng.randint(0, 256, size=(batch, length)).astype(np.uint8)


# ---------------------------------------------------------------------------- building

def test_build_irnn_has_the_drawn_weights_and_the_library_init_draws_the_same():
    m = eras.build_irnn(seed=3)
    w = eras.draw_irnn_weights(3)
    got = api.param_arrays(m)
    assert sorted(got) == sorted(w) == ['h_to_h/W', 'h_to_h/b', 'h_to_y/W', 'h_to_y/b', 'pixel_to_h/W']
    for k in w:
        assert got[k].dtype == np.float32
        np.testing.assert_array_equal(got[k], w[k].astype(np.float32))
    np.testing.assert_array_equal(got['h_to_h/W'], np.eye(100))
    # the gist's recipe and the library's own initializers give the same numbers
    rs = np.random.RandomState(3)
    np.testing.assert_array_equal(w['pixel_to_h/W'], rs.normal(0, 0.001, (256, 100)))
    np.testing.assert_array_equal(w['h_to_y/W'], rs.normal(0, 0.001, (10, 100)))
    np.random.seed(3)
    lib = api.param_arrays(IRNN())
    for k in w:
        np.testing.assert_array_equal(lib[k], got[k])


def test_model_kind_and_register_links():
    m = small_irnn()
    assert api.model_kind(m) == 'Chain+init_scope'
    assert not api.is_function_set(m)
    c = chainer.Chain()
    api.register_links(c, b=L.Linear(2, 2), a=L.Linear(3, 2))
    assert sorted(p for p, _ in c.namedparams()) == ['/a/W', '/a/b', '/b/W', '/b/b']


def test_build_in_dtype_float64():
    m = api.build_in_dtype(lambda: IRNN(n_units=4), 'float64')
    assert {p.dtype for p in m.params()} == {np.dtype('float64')}


def test_set_param_arrays_round_trip_and_errors():
    m = small_irnn()
    new = {k: np.full(v.shape, 0.5) for k, v in api.param_arrays(m).items()}
    api.set_param_arrays(m, new)
    assert all((v == 0.5).all() for v in api.param_arrays(m).values())
    with pytest.raises(ValueError, match='missing'):
        api.set_param_arrays(m, {'h_to_h/W': np.eye(5)})
    bad = dict(new, **{'h_to_h/W': np.eye(4)})
    with pytest.raises(ValueError, match='h_to_h/W: expected shape'):
        api.set_param_arrays(m, bad)


# ---------------------------------------------------------------------------- forward, validation

def test_irnn_forward_is_the_models_forward():
    rng = np.random.RandomState(0)
    m = small_irnn()
    x = ids(rng)
    np.testing.assert_array_equal(eras.irnn_forward(m, x).array, m(x).array)


def test_check_ids_needs_no_chainer_and_is_the_one_every_era_uses():
    """1.0-1.3 cannot import model.py; the check lives in a Chainer-free module instead,
    which the IRNN of every era (eras.py) uses."""
    import subprocess
    import sys
    code = ('import sys, irnn_chainer.model.checks as c, numpy as np; '
            'assert "chainer" not in sys.modules, "checks imported chainer"; '
            'print(c.check_ids(np.array([[0, 255, 3]], np.uint8), 256).dtype)')
    out = subprocess.run([sys.executable, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == 'int32', out.stderr
    good = np.array([[0, 255, 3]], np.uint8)
    np.testing.assert_array_equal(eras.check_ids(chainer.Variable(good.astype(np.int32)), 256), good)
    bad_inputs = [np.zeros(784, np.float32), np.zeros(784, np.int32), np.zeros((2, 0), np.int32),
                  np.array([[256]]), 'pixels', np.zeros((1, 2, 3), np.int64)]
    for bad in bad_inputs:
        with pytest.raises((TypeError, ValueError)) as want:
            check_ids(bad, 256)
        with pytest.raises(type(want.value)) as got:
            eras.check_ids(bad, 256)
        assert str(got.value) == str(want.value)


def test_forward_gives_the_clear_error_not_chainers():
    m = small_irnn()
    with pytest.raises(TypeError, match=r'expected integer pixel ids \(int32\)'):
        eras.irnn_forward(m, np.zeros((2, 784), np.float32))
    with pytest.raises(ValueError, match=r'for one sequence use x\[None\]'):
        eras.irnn_forward(m, np.zeros(784, np.int32))
    with pytest.raises(TypeError, match='1-D integer array of class labels'):
        api.classification_loss(eras.irnn_forward(m, np.zeros((2, 3), np.int32)), np.zeros(2, np.float32))


# ---------------------------------------------------------------------------- no graph

def test_no_graph_builds_no_graph_and_sets_test_mode():
    m = small_irnn()
    x = np.zeros((2, 3), np.int32)
    y = eras.irnn_forward(m, x)
    assert y.creator is not None and chainer.config.train
    with api.no_graph():
        assert not chainer.config.train
        y = eras.irnn_forward(m, x)
        v = api.as_input(np.zeros(2, np.float32))
        assert y.creator is None
        assert (v * 2).creator is None
    assert api._no_graph_depth[0] == 0
    assert (api.as_input(np.zeros(2, np.float32)) * 2).creator is not None


def test_no_graph_nests_and_unwinds_on_error():
    with pytest.raises(RuntimeError):
        with api.no_graph():
            with api.no_graph():
                assert api._no_graph_depth[0] == 2
                raise RuntimeError
    assert api._no_graph_depth[0] == 0 and chainer.config.train


def test_volatile_inputs_where_chainer_has_no_config(monkeypatch):
    """1.x: no_graph makes volatile Variables (2.x+ rejects the argument, so fake it)."""
    made = []

    class FakeVariable(object):
        def __init__(self, data, volatile=None):
            made.append(volatile)

    monkeypatch.setattr(api, 'HAS_CONFIG', False)
    monkeypatch.setattr(chainer, 'Variable', FakeVariable)
    api.as_input(np.zeros(1))
    with api.no_graph():
        api.as_input(np.zeros(1))
    assert made == [None, True]


# ---------------------------------------------------------------------------- scalars

@pytest.mark.parametrize('value', [np.float32(2.5), np.array(2.5, np.float32), np.array([2.5]),
                                   2.5, chainer.Variable(np.array(2.5, np.float32)),
                                   chainer.Variable(np.array([2.5], np.float32))])
def test_scalar(value):
    out = api.scalar(value)
    assert type(out) is float and out == 2.5


# ---------------------------------------------------------------------------- optimizer, clipping

def manual_clipped_sgd(params, grads, lr, threshold):
    norm = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads.values()))
    rate = min(1.0, threshold / norm)
    return {k: params[k] - lr * grads[k] * rate for k in params}, norm


@pytest.mark.parametrize('threshold', [1e-3, 1e6])
def test_update_with_clipping_hook_equals_manual_global_norm_clipping(threshold):
    rng = np.random.RandomState(1)
    m = api.build_in_dtype(lambda: IRNN(n_units=4), 'float64')
    x, t = ids(rng), rng.randint(0, 10, 4)
    opt = api.setup_optimizer(chainer.optimizers.SGD(lr=0.1), m, clip=threshold)
    before = {k: v.copy() for k, v in api.param_arrays(m).items()}
    loss = api.classification_loss(eras.irnn_forward(m, x), t)
    # the gradients, independently of the optimizer
    m2 = api.build_in_dtype(lambda: IRNN(n_units=4), 'float64')
    api.set_param_arrays(m2, before)
    m2.cleargrads()
    api.classification_loss(m2(x), t).backward()
    grads = {p.lstrip('/'): v.grad.copy() for p, v in m2.namedparams()}
    m.cleargrads()
    m.pixel_to_h.W.grad = np.full_like(m.pixel_to_h.W.array, 7.0)  # stale grads must be cleared
    api.update(opt, m, loss)
    want, norm = manual_clipped_sgd(before, grads, 0.1, threshold)
    assert (norm > threshold) == (threshold < 1)
    for k, v in api.param_arrays(m).items():
        np.testing.assert_allclose(v, want[k], rtol=1e-12, atol=1e-15)


def test_gradient_clipping_is_the_current_hook():
    hook = api.gradient_clipping(2.0)
    assert type(hook).__name__ == 'GradientClipping' and hook.threshold == 2.0
    assert type(hook).__module__.startswith('chainer.optimizer_hooks')


def test_functionset_era_optimizer_path(monkeypatch):
    """1.0-1.3 (no hooks): setup with collect_parameters(), zero_grads(), clip_grads() after
    backward, then update() -- in this order."""
    calls = []

    class FakeFunctionSet(object):
        def collect_parameters(self):
            return ('params', 'grads')

    class FakeOptimizer(object):
        def setup(self, arg):
            calls.append(('setup', arg))

        def zero_grads(self):
            calls.append('zero_grads')

        def clip_grads(self, c):
            calls.append(('clip_grads', c))

        def update(self):
            calls.append('update')

    class FakeLoss(object):
        def backward(self):
            calls.append('backward')

    monkeypatch.setattr(api, 'HAS_HOOKS', False)
    model, opt = FakeFunctionSet(), FakeOptimizer()
    assert api.is_function_set(model) and api.model_kind(model) == 'FunctionSet'
    api.setup_optimizer(opt, model, clip=1.0)
    api.update(opt, model, FakeLoss())
    assert calls == [('setup', ('params', 'grads')), 'zero_grads', 'backward', ('clip_grads', 1.0), 'update']


# ---------------------------------------------------------------------------- save / load

def test_save_load_model_round_trip(tmp_path):
    rng = np.random.RandomState(2)
    m = small_irnn(seed=0)
    api.set_param_arrays(m, {k: rng.randn(*v.shape) for k, v in api.param_arrays(m).items()})
    path = str(tmp_path / 'model')
    api.save_model(path, m, files.write_atomic)
    assert os.listdir(str(tmp_path)) == ['model']  # exactly that name, no temp files
    other = api.load_model(path, small_irnn(seed=1))
    for k, v in api.param_arrays(m).items():
        np.testing.assert_array_equal(api.param_arrays(other)[k], v)
    x = ids(rng)
    with api.no_graph():
        assert api.scalar(F.sum(eras.irnn_forward(other, x))) == api.scalar(F.sum(eras.irnn_forward(m, x)))


def test_save_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / 'model.npz')
    api.save_model(path, small_irnn(seed=0), files.write_atomic)
    old = open(path, 'rb').read()

    def broken(file, obj, **kw):
        with open(file, 'wb') as f:
            f.write(b'half')
        raise KeyboardInterrupt

    monkeypatch.setattr(chainer.serializers, 'save_npz', broken)
    with pytest.raises(KeyboardInterrupt):
        api.save_model(path, small_irnn(seed=1), files.write_atomic)
    assert os.listdir(str(tmp_path)) == ['model.npz'] and open(path, 'rb').read() == old


class Fn(object):
    """A 1.0-style parameterised Function (module level: pickled by reference)."""
    parameter_names = ('W',)

    def __init__(self, w):
        self.W = w


class FakeSet(object):
    """A 1.0-style FunctionSet."""

    def collect_parameters(self):
        return (), ()


def test_functionset_models_are_saved_as_npz_not_pickle(tmp_path):
    """1.0-1.3 programs pickled their FunctionSet; we save its parameter arrays as an npz
    (a pickle can run code when loaded) and load copies them in place."""
    a, b = FakeSet(), FakeSet()
    a.f, b.f = Fn(np.arange(3.0)), Fn(np.zeros(3))
    keep = b.f.W
    path = str(tmp_path / 'm')
    api.save_model(path, a, files.write_atomic)
    assert os.listdir(str(tmp_path)) == ['m']
    with np.load(path, allow_pickle=False) as z:  # a plain npz of numeric arrays
        assert z.files == ['f/W'] and (z['f/W'] == np.arange(3.0)).all()
    api.load_model(path, b)
    assert b.f.W is keep and (keep == np.arange(3.0)).all()


# ---------------------------------------------------------------------------- devices, versions

def test_cpu_device_and_versions():
    dev = api.get_device(api.device_spec(gpu=-1))
    m = api.to_device(small_irnn(), dev)
    assert api.array_module(m.h_to_h.W) is np
    v = api.versions()
    assert v['chainer'] == chainer.__version__ == api.chainer_version()
    assert v['numpy'] == np.__version__


def test_legacy_device_object():
    d = api._LegacyDevice('@numpy')
    assert d.xp is np and d.id == -1
    assert api._LegacyDevice('@cupy:1').id == 1


# ---------------------------------------------------------------------------- shims

def test_shim_sctypes_only_when_missing(monkeypatch):
    monkeypatch.setattr(shims, 'APPLIED', [])
    if hasattr(np, 'sctypes'):
        assert shims.shim_numpy_sctypes() is False
        monkeypatch.delattr(np, 'sctypes')
    assert shims.shim_numpy_sctypes() is True
    assert np.float32 in np.sctypes['float'] and np.uint8 in np.sctypes['uint']
    assert [n for n, _ in shims.APPLIED] == ['numpy.sctypes']
    assert shims.shim_numpy_sctypes() is False


def test_shim_collections_only_when_missing(monkeypatch):
    monkeypatch.setattr(shims, 'APPLIED', [])
    for name in shims._ABC_NAMES:
        monkeypatch.setattr(collections, name, getattr(collections.abc, name), raising=False)
    assert shims.shim_collections_abcs() is False and shims.APPLIED == []
    monkeypatch.delattr(collections, 'Iterable')
    assert shims.shim_collections_abcs() is True
    assert collections.Iterable is collections.abc.Iterable


def test_shim_pkg_resources_stand_in(monkeypatch):
    monkeypatch.setattr(shims, 'APPLIED', [])
    monkeypatch.setitem(sys.modules, 'pkg_resources', types.ModuleType('pkg_resources'))
    assert shims.shim_pkg_resources() is False  # already there
    monkeypatch.delitem(sys.modules, 'pkg_resources')
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'pkg_resources' else real_find_spec(name, *a))
    assert shims.shim_pkg_resources() is True
    pr = sys.modules['pkg_resources']
    assert pr.get_distribution('numpy').version == np.__version__
    assert pr.require('anything>=99') == []
    with pytest.raises(pr.DistributionNotFound):
        pr.get_distribution('no-such-distribution-xyz')


def test_shim_numpy_distutils_stub(monkeypatch):
    monkeypatch.setattr(shims, 'APPLIED', [])
    for name in ('numpy.distutils', 'numpy.distutils.system_info'):
        if name in sys.modules:
            monkeypatch.setitem(sys.modules, name, sys.modules[name])
        else:
            monkeypatch.setitem(sys.modules, name, None)
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(np, 'distutils', getattr(np, 'distutils', None), raising=False)
    monkeypatch.setattr(shims, '_numpy_distutils_works', lambda: False)
    assert shims.shim_numpy_distutils() is True
    assert sys.modules['numpy.distutils.system_info'].get_info('blas_opt') == {}


def test_shim_e_patches_nothing_on_this_chainer():
    assert shims._patch_linear_as_mat(chainer) is False
    assert shims._patch_accuracy(chainer) is False
    assert shims._patch_function_order(chainer) is False
    assert not any(n.startswith('chainer 1.0') for n, _ in shims.APPLIED)


def test_shim_e_fixes_integer_division_where_broken(monkeypatch):
    """A module with 1.0.1's _as_mat (``x.size / x.shape[0]``) gets the fixed one."""
    fake = types.ModuleType('chainer.functions.linear')
    fake._as_mat = lambda x: x.reshape(x.shape[0], x.size / x.shape[0])
    monkeypatch.setitem(sys.modules, 'chainer.functions.linear', fake)
    assert shims._patch_linear_as_mat(chainer) is True
    assert fake._as_mat(np.zeros((2, 3, 4))).shape == (2, 12)


def test_shims_in_a_fresh_interpreter():
    """What a fresh process records: only things missing here, and never shim E on 7.8.1."""
    code = ('import irnn_chainer, json; from irnn_chainer.compat import api, shims; '
            'print(json.dumps([n for n, _ in shims.APPLIED]))')
    out = subprocess.check_output([sys.executable, '-c', code], cwd=ROOT, stderr=subprocess.DEVNULL)
    names = json.loads(out.decode().strip().splitlines()[-1])
    assert ('collections ABCs' in names) == (sys.version_info >= (3, 10))
    assert ('numpy.sctypes' in names) == (int(np.__version__.split('.')[0]) >= 2)
    assert not any(n.startswith('chainer 1.0') for n in names)


# ---------------------------------------------------------------------------- tools/matrix.py

def test_matrix_cells_and_recipes():
    cells = matrix.all_cells()
    assert len(cells) == 18 and matrix.REFERENCE in cells
    r = matrix.recipe('1.0.1-np2')
    assert ('2to3',) in r['steps']
    assert any('typing_extensions>=4' in s[2] for s in matrix.recipe('6.7.0-np1')['steps'] if s[0] == 'pip')
    assert 'setuptools==73.0.1' in matrix.recipe('7.8.1-np1')['steps'][0][1]
    assert matrix.recipe_hash('2.1.0-np1') == matrix.recipe_hash('2.1.0-np1')
    assert matrix.recipe_hash('2.1.0-np1') != matrix.recipe_hash('2.1.0-np2')
    with pytest.raises(SystemExit):
        matrix.parse_cell('9.9.9-np2')


def test_matrix_judge_flags_differences():
    ok = {'losses': [2.0, 2.0, 2.0], 'eval_loss': 2.0, 'reload_loss': 2.0, 'losses_big': [2.0, 1.9, 1.8],
          'eval_graph': False, 'bad_input_error': 'TypeError: x'}
    rows = [dict(ok, cell=matrix.REFERENCE), dict(ok, cell='1.3.0-np1'),
            dict(ok, cell='1.0.1-np2', losses=[2.0, 2.0, 2.0 * (1 + 1e-5)]),
            dict(ok, cell='2.1.0-np2', reload_loss=2.1),
            dict(ok, cell='3.5.0-np2', eval_graph=True),
            {'cell': '4.5.0-np2', 'error': 'install: boom'}]
    assert matrix.judge(rows, 1e-6) == 4
    assert [r['status'] == 'ok' for r in rows] == [True, True, False, False, False, False]
    assert 'differ from' in rows[2]['status']
    assert '| 1.3.0 |' in matrix.table(rows)


def test_matrix_finder_maps_the_package_like_setup_py(tmp_path):
    (tmp_path / '_irnn_chainer_matrix.py').write_text(matrix.FINDER)
    code = ('import sys; sys.path.insert(0, %r); import _irnn_chainer_matrix; '
            'import irnn_chainer.compat.shims as s; print(s.__file__)' % str(tmp_path))
    env = dict(os.environ, IRNN_CHAINER_ROOT=ROOT)
    out = subprocess.check_output([sys.executable, '-c', code], env=env, cwd=str(tmp_path))
    assert out.decode().strip() == os.path.join(ROOT, 'compat', 'shims.py')


def test_matrix_cell_check_here():
    """The check each cell runs, in this interpreter (the reference's Chainer)."""
    out = subprocess.check_output([sys.executable, os.path.join(ROOT, 'tools', 'matrix.py'), '--cell-check'],
                                  env=matrix.cell_env(), cwd=ROOT, stderr=subprocess.DEVNULL)
    res = json.loads([l for l in out.decode().splitlines() if l.startswith('MATRIX-RESULT ')][-1][14:])
    assert res['stage'] == 'done', res.get('traceback')
    assert res['eval_graph'] is False and res['reload_loss'] == res['eval_loss']
    assert res['diag_changed_1e-8'] == 0  # lr 1e-8 cannot move the identity diagonal in float32
    assert all(n > 0 for n in res['changed_big'].values())
    assert res['bad_input_error'].startswith('TypeError: x: expected integer pixel ids')


# ---------------------------------------------------------------------------- compare

def _log(program, losses, test_loss=2.3, acc=0.1):
    return {'program': program, 'chainer': '7.8.1', 'numpy': '2', 'python': '3', 'losses': losses,
            'seconds': [0.1] * len(losses), 'epochs': [{'epoch': 1, 'iteration': len(losses),
                                                        'train_loss': 2.3, 'train_accuracy': acc,
                                                        'test_loss': test_loss, 'test_accuracy': acc}]}


def test_compare_logs_tolerance():
    logs = {'library': _log('library', [2.3, 2.2]), 'rev1': _log('rev1', [2.3, 2.2 * (1 + 5e-7)]),
            'rev2': _log('rev2', [2.3, 2.2])}
    diffs, problems = compare.compare_logs(logs, 1e-6)
    assert problems == [] and diffs['rev2'] == 0 and 4e-7 < diffs['rev1'] < 6e-7
    logs['rev2'] = _log('rev2', [2.3, 2.3])
    assert 'rev2 differs from library' in compare.compare_logs(logs, 1e-6)[1][0]
    logs['rev2'] = _log('rev2', [2.3])
    assert 'rev2 ran 1 iterations' in compare.compare_logs(logs, 1e-6)[1][0]


def test_compare_logs_rev1_has_its_own_tolerance():
    mk = lambda losses: {'program': 'p', 'losses': losses, 'epochs': []}  # noqa: E731
    logs = {'library': mk([2.0, 2.0]), 'rev1': mk([2.0, 2.0 * (1 + 5e-6)]), 'rev2': mk([2.0, 2.0])}
    assert compare.compare_logs(logs, 1e-6, {'rev1': 1e-4})[1] == []
    assert 'rev1 differs from p by 5.00e-06 relative (tolerance 1e-06)' in compare.compare_logs(logs, 1e-6)[1]
    logs['rev2'] = mk([2.0, 2.0 * (1 + 5e-6)])   # rev2 keeps the tight one
    assert compare.compare_logs(logs, 1e-6, {'rev1': 1e-4})[1] == [
        'rev2 differs from p by 5.00e-06 relative (tolerance 1e-06)']


def test_compare_outputs(tmp_path):
    logs = {'library': _log('library', [2.3, 2.2]), 'rev1': _log('rev1', [2.3, 2.2])}
    md, csv_path, png = compare.write_outputs(logs, {'library': 0.0, 'rev1': 0.0}, str(tmp_path), 't')
    assert open(csv_path).read().splitlines()[0] == 'iteration,library_loss,rev1_loss'
    assert '| 2 | 2.200000000 | 2.200000000 |' in open(md).read()
    assert open(png, 'rb').read(8) == b'\x89PNG\r\n\x1a\n'


def test_compare_library_program_losses_are_the_models(tmp_path):
    """The library program's first loss is the IRNN's loss on the first shuffled batch."""
    rng = np.random.RandomState(0)
    data = str(tmp_path / 'd.npz')
    arrays = dict(train_x=rng.randint(0, 256, (8, 20)).astype(np.uint8), train_y=rng.randint(0, 10, 8).astype(np.int32),
                  test_x=rng.randint(0, 256, (5, 20)).astype(np.uint8), test_y=rng.randint(0, 10, 5).astype(np.int32))
    np.savez(data, **arrays)
    log = str(tmp_path / 'l.json')
    assert compare.run_library(['--data-npz', data, '--iterations', '3', '--batchsize', '4', '--seed', '5',
                                '--lr', '0.1', '--log-json', log]) == 0
    got = json.load(open(log))
    assert len(got['losses']) == 3 and len(got['epochs']) == 2  # 2 batches per epoch
    np.random.seed(5)
    m = IRNN(init_std=0.01)  # the programs' default: the blog's own run
    perm = np.random.permutation(8)[:4]
    want = api.scalar(F.softmax_cross_entropy(m(arrays['train_x'][perm]), arrays['train_y'][perm]))
    assert got['losses'][0] == want
    # and the paper's setting when asked
    assert compare.run_library(['--data-npz', data, '--iterations', '1', '--batchsize', '4', '--seed', '5',
                                '--lr', '0.1', '--init-std', '0.001', '--clip', '1', '--log-json', log]) == 0
    np.random.seed(5)
    m = IRNN(init_std=0.001)
    perm = np.random.permutation(8)[:4]
    want = api.scalar(F.softmax_cross_entropy(m(arrays['train_x'][perm]), arrays['train_y'][perm]))
    assert json.load(open(log))['losses'][0] == want


def test_compare_cli_registered():
    from irnn_chainer.commands import cli
    args = cli.build_parser().parse_args(['compare', '--iterations', '3', '--out', 'x'])
    assert args.command == 'compare' and args.iterations == 3 and args.train_limit == 320


# ---------------------------------------------------------------------------- opt-in: the matrix

@needs_matrix
def test_matrix_all_cells(tmp_path):
    cells = os.environ.get('IRNN_MATRIX_CELLS', '').split()
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'matrix.py'), '--json', str(tmp_path / 'm.json')]
    if cells:
        cmd += ['--cells'] + cells
    p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert p.returncode == 0, p.stdout.decode(errors='replace')[-5000:]
    rows = json.load(open(str(tmp_path / 'm.json')))
    assert all(r['status'] == 'ok' for r in rows)
    assert len(rows) == (len(set(cells) | {matrix.REFERENCE}) if cells else 18)


@needs_matrix
def test_compare_against_the_gists(tmp_path):
    from irnn_chainer.commands import cli
    out = str(tmp_path / 'cmp')
    assert cli.main(['compare', '--iterations', '3', '--train-limit', '48', '--test-limit', '100',
                     '--out', out]) == 0
    for name in ('compare.md', 'compare.csv', 'compare.png', 'library.json', 'rev1.json', 'rev2.json'):
        assert os.path.exists(os.path.join(out, name))


def test_compare_says_what_it_will_install_before_it_installs(tmp_path):
    """Read from tools/matrix.py's own recipe and cache: the packages and their size before a
    build; once the cell's marker holds the recipe's hash, that the venv is reused."""
    cache = str(tmp_path / 'cache')
    line = compare.install_plan(ROOT, '1.3.0-np2', cache)
    packages = [a for step in matrix.recipe('1.3.0-np2')['steps'] if step[0] == 'pip' for a in step[2]
                if not a.startswith('-')]
    assert 'chainer==1.3.0' in packages
    assert line.startswith('installing a venv for Chainer 1.3.0, once, into %s' % os.path.join(cache, '1.3.0-np2'))
    assert ', '.join(packages) in line and 'about %d MB on disk' % compare.VENV_MB in line
    assert not os.path.exists(cache)  # nothing built by asking
    os.makedirs(os.path.join(cache, '1.3.0-np2'))
    with open(os.path.join(cache, '1.3.0-np2', '.irnn-recipe'), 'w') as f:
        f.write(matrix.recipe_hash('1.3.0-np2') + '\n')
    assert compare.install_plan(ROOT, '1.3.0-np2', cache).startswith('using the Chainer 1.3.0 venv built before')
    with open(os.path.join(cache, '1.3.0-np2', '.irnn-recipe'), 'w') as f:
        f.write('an older recipe\n')  # matrix.py rebuilds it: so it says
    assert compare.install_plan(ROOT, '1.3.0-np2', cache).startswith('installing')


def test_compare_png_draws_each_revisions_own_tolerance(tmp_path, monkeypatch):
    import matplotlib.figure
    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, 'savefig', lambda fig, *a, **k: saved.append(fig))
    logs = {'library': _log('library', [2.3, 2.2]), 'rev1': _log('rev1', [2.3, 2.2 * (1 + 5e-6)]),
            'rev2': _log('rev2', [2.3, 2.2])}
    compare.write_outputs(logs, {'rev1': 5e-6, 'rev2': 0.0}, str(tmp_path), 't', 1e-6, {'rev1': 1e-4})
    ax2 = saved[0].axes[1]
    lines = {l.get_label(): l for l in ax2.get_lines()}
    assert list(lines['rev1 tolerance 0.0001'].get_ydata()) == [1e-4, 1e-4]
    assert list(lines['rev2 tolerance 1e-06'].get_ydata()) == [1e-6, 1e-6]
    # in the colour of the revision's own curve
    assert lines['rev1 tolerance 0.0001'].get_color() == lines['rev1'].get_color()
    assert lines['rev2 tolerance 1e-06'].get_color() == lines['rev2'].get_color()


@pytest.mark.parametrize('script, version', [('gist_rev1.py', '1.0.1'), ('gist_rev2.py', '1.3.0')])
def test_gist_scripts_on_todays_chainer_say_which_chainer_they_need(script, version):
    p = subprocess.run([sys.executable, os.path.join(ROOT, 'examples', script), '--help'], cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    if hasattr(chainer, 'FunctionSet'):
        assert p.returncode == 0 and 'usage' in p.stdout  # a Chainer of its own era: its --help
        return
    err = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(err) == 1 and 'Traceback' not in p.stderr, p.stderr
    assert err[0].startswith('%s: needs Chainer %s' % (script, version)) and 'matrix.py --ensure' in err[0]


def test_compare_finds_the_checkout_it_runs_from():
    """compare builds the gists' venvs with tools/matrix.py of the source checkout: from
    irnn_chainer/commands/ it is three folders up (runs without IRNN_MATRIX)."""
    from irnn_chainer.commands import compare
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert compare.repo_root() == root
