#!/usr/bin/env python3
"""The Chainer x NumPy matrix: Chainer 1.0.1 ... 7.8.1 x NumPy 1.26.4 and 2.x.

One virtualenv per cell, cached outside the repository (``--cache-dir``, env
``IRNN_MATRIX_CACHE``, default ``~/.cache/irnn-chainer/matrix``) and rebuilt only when its
recipe changes. In each cell a fixed-seed check runs through ``irnn_chainer.compat``:
build the IRNN, 3 SGD updates (lr 1e-8, clip 1.0) at batch 16 over all 784 timesteps on
fixed data, an eval without a graph, save + reload into a differently seeded model (same
eval loss), the input-validation error, and the same 3 updates at lr 1e-4 (so parameter
changes are visible). Prints a table and exits 1 if any cell fails or its losses differ
from the reference cell (Chainer 7.8.1 + NumPy 2) by more than ``--tolerance`` (relative).

    python tools/matrix.py                      # all 18 cells, 2 at a time
    python tools/matrix.py --cells 1.0.1-np2 7.8.1-np2
    python tools/matrix.py --ensure 1.3.0-np2   # build (if needed), print the venv's python

The project is not installed into the venvs: a ``.pth`` hook maps ``irnn_chainer`` to
``$IRNN_CHAINER_ROOT/irnn_chainer`` and ``irnn_chainer.compat`` to ``$IRNN_CHAINER_ROOT/compat``
(as setup.py does), so the cached venvs always run the current checkout.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHAINERS = ('1.0.1', '1.3.0', '1.24.0', '2.1.0', '3.5.0', '4.5.0', '5.4.0', '6.7.0', '7.8.1')
NUMPYS = {'np1': '1.26.4', 'np2': '2.4.6'}
REFERENCE = '7.8.1-np2'
#: the second check's learning rate: large enough to move every parameter (lr 1e-8 cannot
#: move the identity diagonal in float32), small enough to stay stable over 3 updates
BIG_LR = 1e-4
RECIPE_VERSION = 4  # bump to force every cell to rebuild

# Imported by a .pth file at interpreter start in every matrix venv: maps the package
# the way setup.py's package_dir does, from the checkout named by $IRNN_CHAINER_ROOT.
FINDER = '''\
"""irnn-chainer matrix: import irnn_chainer from $IRNN_CHAINER_ROOT (written by tools/matrix.py)."""
import importlib.abc
import importlib.util
import os
import sys


class _IrnnChainerFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        root = os.environ.get('IRNN_CHAINER_ROOT')
        sub = {'irnn_chainer': 'irnn_chainer', 'irnn_chainer.compat': 'compat'}.get(name)
        if not root or sub is None:
            return None
        folder = os.path.join(root, sub)
        return importlib.util.spec_from_file_location(
            name, os.path.join(folder, '__init__.py'), submodule_search_locations=[folder])


sys.meta_path.insert(0, _IrnnChainerFinder())
'''


def default_cache_dir():
    return os.environ.get('IRNN_MATRIX_CACHE') or os.path.join(
        os.path.expanduser('~'), '.cache', 'irnn-chainer', 'matrix')


def all_cells():
    # np2 cells first: the two workers then never build the same Chainer at once.
    return ['%s-%s' % (c, n) for n in ('np2', 'np1') for c in CHAINERS]


def parse_cell(cell):
    chainer, _, np_key = cell.rpartition('-')
    if chainer not in CHAINERS or np_key not in NUMPYS:
        raise SystemExit('matrix: unknown cell %r (expected e.g. 1.0.1-np2; Chainer one of %s, '
                         'numpy np1 = %s or np2 = %s)' % (cell, ', '.join(CHAINERS), NUMPYS['np1'], NUMPYS['np2']))
    return chainer, np_key


def recipe(cell):
    """The install steps of one cell, as data (its hash decides whether to rebuild).

    Each step is (constraints, pip arguments) or a named post-install action.
    """
    chainer, np_key = parse_cell(cell)
    numpy_version = NUMPYS[np_key]
    if np_key == 'np1':
        # NumPy 1.26 + setuptools >= 74 breaks `import chainer` 3.5-7.8 (numpy.distutils
        # -> distutils.msvccompiler); setuptools 73.0.1 also still has pkg_resources.
        constraints = ['setuptools==73.0.1', 'numpy==%s' % numpy_version]
        steps = [('pip', constraints, ['numpy==' + numpy_version, 'setuptools==73.0.1', 'chainer==' + chainer])]
    else:
        # Chainer's setup.py imports pkg_resources (gone in setuptools 82): the constraint
        # reaches pip's isolated build. The runtime then gets today's setuptools, so the
        # pkg_resources / numpy.distutils shims are exercised as a user would need them.
        constraints = ['setuptools<82', 'numpy==%s' % numpy_version]
        steps = [('pip', constraints, ['numpy==' + numpy_version, 'chainer==' + chainer]),
                 ('pip', ['numpy==%s' % numpy_version], ['-U', 'setuptools>=82'])]
    if chainer == '6.7.0':
        # 6.7.0 pins typing_extensions<=3.6.6, which breaks `import chainer` on Python 3.11.
        steps.append(('pip', constraints, ['-U', 'typing_extensions>=4']))
    if chainer == '1.0.1':
        steps.append(('2to3',))  # Python 2 source
    steps.append(('finder',))
    return {'cell': cell, 'python': sys.version.split()[0], 'recipe_version': RECIPE_VERSION,
            'steps': steps, 'finder': hashlib.sha256(FINDER.encode()).hexdigest()}


def recipe_hash(cell):
    return hashlib.sha256(json.dumps(recipe(cell), sort_keys=True).encode()).hexdigest()[:16]


def venv_python(cache, cell):
    return os.path.join(cache, cell, 'bin', 'python')


def site_packages(py):
    out = subprocess.check_output([py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'])
    return out.decode().strip()


def run_2to3(py, log):
    """Chainer 1.0.1 is Python 2 code: lib2to3 (Python <= 3.12), then fix the one line it
    breaks (``from . import functions.basic_math`` is not valid Python 3)."""
    pkg = os.path.join(site_packages(py), 'chainer')
    subprocess.check_call([py, '-W', 'ignore', '-m', 'lib2to3', '-w', '-n', pkg], stdout=log, stderr=log)
    init = os.path.join(pkg, '__init__.py')
    with open(init) as f:
        lines = f.read().split('\n')
    fixed = [l.replace('from . import functions.basic_math', 'from .functions import basic_math', 1)
             if l.startswith('from . import functions.basic_math') else l for l in lines]
    with open(init, 'w') as f:
        f.write('\n'.join(fixed))
    for dirpath, dirnames, _ in os.walk(pkg):  # stale Python-2 bytecode from the wheel build
        if '__pycache__' in dirnames:
            shutil.rmtree(os.path.join(dirpath, '__pycache__'))


def ensure_venv(cache, cell, rebuild=False):
    """Build the cell's venv if missing or built from another recipe. Returns
    (python path, 'cached' | 'built', seconds, log path); raises on failure.
    A lock file per cell keeps concurrent runs (CI, ``irnn-chainer compare``) apart."""
    import fcntl
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, '.%s.lock' % cell), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure_venv(cache, cell, rebuild)


def _ensure_venv(cache, cell, rebuild):
    t0 = time.time()
    path = os.path.join(cache, cell)
    marker = os.path.join(path, '.irnn-recipe')
    want = recipe_hash(cell)
    logs = os.path.join(cache, 'logs')
    os.makedirs(logs, exist_ok=True)
    log_path = os.path.join(logs, cell + '.log')
    if not rebuild and os.path.exists(marker):
        with open(marker) as f:
            if f.read().strip() == want:
                return venv_python(cache, cell), 'cached', time.time() - t0, log_path
    if os.path.exists(path):
        shutil.rmtree(path)
    py = venv_python(cache, cell)
    with open(log_path, 'w') as log:
        log.write('recipe %s\n%s\n' % (want, json.dumps(recipe(cell), indent=1)))
        log.flush()
        subprocess.check_call([sys.executable, '-m', 'venv', path], stdout=log, stderr=log)
        for step in recipe(cell)['steps']:
            log.write('\n### %s\n' % (step,))
            log.flush()
            if step[0] == 'pip':
                _, constraints, args = step
                with tempfile.NamedTemporaryFile('w', suffix='.txt', delete=False) as c:
                    c.write('\n'.join(constraints) + '\n')
                env = dict(os.environ, PIP_CONSTRAINT=c.name, PIP_DISABLE_PIP_VERSION_CHECK='1')
                try:
                    subprocess.check_call([py, '-m', 'pip', 'install', '--progress-bar', 'off'] + args,
                                          stdout=log, stderr=log, env=env)
                finally:
                    os.remove(c.name)
            elif step[0] == '2to3':
                run_2to3(py, log)
            elif step[0] == 'finder':
                sp = site_packages(py)
                with open(os.path.join(sp, '_irnn_chainer_matrix.py'), 'w') as f:
                    f.write(FINDER)
                with open(os.path.join(sp, 'irnn_chainer_matrix.pth'), 'w') as f:
                    f.write('import _irnn_chainer_matrix\n')
        with open(marker, 'w') as f:
            f.write(want + '\n')
    return py, 'built', time.time() - t0, log_path


def cell_env():
    env = dict(os.environ, IRNN_CHAINER_ROOT=ROOT, PYTHONDONTWRITEBYTECODE='1')
    env.pop('PYTHONPATH', None)
    return env


# --------------------------------------------------------------------------------------
# The check that runs inside a cell (python tools/matrix.py --cell-check).

def cell_check():
    """Run the fixed-seed check in this interpreter; print one JSON line."""
    res = {'stage': 'import'}
    t0 = time.time()
    try:
        import numpy as np
        import irnn_chainer  # noqa: F401  (environment shims)
        from irnn_chainer.compat import api, shims
        from irnn_chainer.model import eras  # the IRNN built as this Chainer builds models
        from irnn_chainer import files  # the atomic writer compat.api.save_model takes
        import chainer
        import chainer.optimizers  # not imported by ``import chainer`` in 1.0-1.3
        res.update(chainer=api.chainer_version(), numpy=np.__version__, import_s=time.time() - t0)
        res['shims'] = [name for name, _ in shims.APPLIED]

        res['stage'] = 'check'
        rng = np.random.RandomState(1234)
        x = rng.randint(0, 256, size=(16, 784)).astype(np.uint8)
        t = rng.randint(0, 10, size=16).astype(np.int32)

        def train(lr):
            model = eras.build_irnn(seed=0)
            opt = api.setup_optimizer(chainer.optimizers.SGD(lr=lr), model, clip=1.0)
            before = dict((k, v.copy()) for k, v in api.param_arrays(model).items())
            losses, secs = [], []
            for _ in range(3):
                t1 = time.perf_counter()
                loss = api.classification_loss(eras.irnn_forward(model, x), t)
                api.update(opt, model, loss)
                secs.append(time.perf_counter() - t1)
                losses.append(api.scalar(loss))
            after = api.param_arrays(model)
            changed = dict((k, int((after[k] != before[k]).sum())) for k in sorted(after))
            return model, losses, secs, changed

        model, res['losses'], secs, changed = train(1e-8)
        res['iter_s'] = sorted(secs)[1]
        diag = np.diag(api.param_arrays(model)['h_to_h/W'])
        res['changed_small'] = changed
        res['diag_changed_1e-8'] = int((diag != 1).sum())
        with api.no_graph():
            ev = api.classification_loss(eras.irnn_forward(model, x), t)
        res['eval_loss'] = api.scalar(ev)
        res['eval_graph'] = ev.creator is not None
        tmp = tempfile.mkdtemp()
        try:
            path = os.path.join(tmp, 'model')
            api.save_model(path, model, files.write_atomic)
            other = api.load_model(path, eras.build_irnn(seed=1))
            with api.no_graph():
                res['reload_loss'] = api.scalar(api.classification_loss(eras.irnn_forward(other, x), t))
            res['save_format'] = api.SAVE_FORMAT
        finally:
            shutil.rmtree(tmp)
        try:
            eras.irnn_forward(model, x[0].astype(np.float32))
            res['bad_input_error'] = 'no error'
        except (TypeError, ValueError) as e:
            res['bad_input_error'] = '%s: %s' % (type(e).__name__, e)
        _, res['losses_big'], _, changed = train(BIG_LR)
        res['changed_big'] = changed
        res['model_kind'] = api.model_kind(model)
        # the GRU baseline's link (compat.api.stateless_gru): which Chainers have one
        try:
            gru = api.stateless_gru(3, 4)
            h = gru(api.as_input(np.zeros((2, 4), np.float32)), api.as_input(np.ones((2, 3), np.float32)))
            shape = tuple(api.array_of(h).shape)
            res['gru'] = type(gru).__name__ if shape == (2, 4) else 'wrong shape %s' % (shape,)
        except NotImplementedError:
            res['gru'] = 'none'
        res['stage'] = 'done'
    except BaseException as e:  # report any failure as data
        import traceback
        res['error'] = '%s: %s' % (type(e).__name__, str(e).splitlines()[0] if str(e) else '')
        res['traceback'] = traceback.format_exc()
    print('MATRIX-RESULT ' + json.dumps(res))


# --------------------------------------------------------------------------------------
# The driver.

def run_cell(cache, cell, rebuild=False, timeout=900):
    row = {'cell': cell}
    try:
        py, how, secs, log = ensure_venv(cache, cell, rebuild)
        row.update(install=how, install_s=secs)
    except Exception as e:
        row.update(install='FAILED', error='install: %s (log: %s)' % (e, os.path.join(cache, 'logs', cell + '.log')))
        return row
    t0 = time.time()
    try:
        p = subprocess.run([py, os.path.abspath(__file__), '--cell-check'], env=cell_env(), cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        out, err = p.stdout.decode(errors='replace'), p.stderr.decode(errors='replace')
    except subprocess.TimeoutExpired:
        row['error'] = 'check: timed out after %d s' % timeout
        return row
    row['check_s'] = time.time() - t0
    lines = [l for l in out.splitlines() if l.startswith('MATRIX-RESULT ')]
    if not lines:
        row['error'] = 'check: no result (exit %d): %s' % (p.returncode, err.strip().splitlines()[-1:] or '')
        return row
    row.update(json.loads(lines[-1][len('MATRIX-RESULT '):]))
    return row


def rel_diff(a, b):
    return max(abs(x - y) / max(abs(y), 1e-30) for x, y in zip(a, b)) if len(a) == len(b) else float('inf')


def judge(rows, tolerance):
    """Set each row's status; returns the number of failed cells."""
    ref = next((r for r in rows if r['cell'] == REFERENCE and 'losses' in r and 'error' not in r), None)
    failed = 0
    for r in rows:
        problems = []
        if 'error' in r:
            problems.append(r['error'])
        else:
            if r.get('eval_graph'):
                problems.append('eval built a graph')
            if r.get('reload_loss') != r.get('eval_loss'):
                problems.append('reload loss %r != eval loss %r' % (r.get('reload_loss'), r.get('eval_loss')))
            if ref is None:
                problems.append('no reference cell %s to compare with' % REFERENCE)
            else:
                for key in ('losses', 'losses_big'):
                    r['rel_' + key] = d = rel_diff(r[key] + [r['eval_loss']] if key == 'losses' else r[key],
                                                   ref[key] + [ref['eval_loss']] if key == 'losses' else ref[key])
                    if d > tolerance:
                        problems.append('%s differ from %s by %.2e relative' % (key, REFERENCE, d))
                if r['bad_input_error'] != ref['bad_input_error']:
                    problems.append('input error differs: %s' % r['bad_input_error'])
        r['status'] = 'FAIL: ' + '; '.join(problems) if problems else 'ok'
        failed += bool(problems)
    return failed


#: the shims' letters in shared/notes/chainer-versions.md and compat/shims.py
SHIM_LETTERS = (('numpy.sctypes', 'A'), ('collections ABCs', 'B'), ('pkg_resources', 'C'),
                ('numpy.distutils', 'D'), ('chainer 1.0', 'E'))
SHIM_LEGEND = ('shims: A np.sctypes (NumPy 2), B collections ABCs (Python 3.10+), C pkg_resources '
               'stand-in (setuptools 82+), D numpy.distutils stub, E Chainer 1.0.1 after 2to3 '
               '(integer division, Function ordering)')


def shim_letters(names):
    out = []
    for name in names:
        out.append(next((l for prefix, l in SHIM_LETTERS if name.startswith(prefix)), name))
    return ' '.join(out) or 'none'


def table(rows):
    head = ['chainer', 'numpy', 'install', 'import', 'model', 'GRU link', 'shims', 'losses (lr 1e-8)', 'eval',
            'losses (lr %g)' % BIG_LR, 's/iter', 'max rel diff', 'status']
    out = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        chainer, np_key = parse_cell(r['cell'])
        fmt = lambda v: ', '.join('%.9f' % x for x in v) if v else '-'  # noqa: E731
        diffs = [r[k] for k in ('rel_losses', 'rel_losses_big') if k in r]
        out.append('| ' + ' | '.join([
            chainer, r.get('numpy', NUMPYS[np_key]),
            '%s (%.0f s)' % (r['install'], r.get('install_s', 0)) if 'install' in r else '-',
            ('ok (%.1f s)' % r['import_s']) if 'import_s' in r else 'FAILED',
            r.get('model_kind', '-'), r.get('gru', '-'),
            shim_letters(r.get('shims', [])),
            fmt(r.get('losses')), '%.9f' % r['eval_loss'] if 'eval_loss' in r else '-',
            fmt(r.get('losses_big')),
            '%.2f' % r['iter_s'] if 'iter_s' in r else '-',
            '%.1e' % max(diffs) if diffs else '-',
            r.get('status', '-')]) + ' |')
    out += ['', SHIM_LEGEND]
    return '\n'.join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--cells', nargs='+', metavar='CELL',
                   help='cells to run, e.g. 1.0.1-np2 7.8.1-np1 (default: all 18; the reference '
                        '%s is always added)' % REFERENCE)
    p.add_argument('--cache-dir', default=default_cache_dir(),
                   help='where the venvs live (env IRNN_MATRIX_CACHE; default %(default)s)')
    p.add_argument('--jobs', '-j', type=int, default=2, help='cells in parallel (default 2)')
    p.add_argument('--rebuild', action='store_true', help='rebuild the venvs even if cached')
    p.add_argument('--tolerance', type=float, default=1e-6, help='max relative loss difference (default 1e-6)')
    p.add_argument('--markdown', metavar='FILE', help='also write the table to FILE')
    p.add_argument('--json', metavar='FILE', help='also write every result to FILE')
    p.add_argument('--ensure', metavar='CELL', help='only build CELL if needed and print its python')
    p.add_argument('--cell-check', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.cell_check:
        cell_check()
        return 0
    cache = os.path.abspath(args.cache_dir)
    if args.ensure:
        parse_cell(args.ensure)
        py, how, secs, log = ensure_venv(cache, args.ensure, args.rebuild)
        print(py)
        return 0
    cells = args.cells or all_cells()
    for c in cells:
        parse_cell(c)
    if REFERENCE not in cells:
        cells = [REFERENCE] + list(cells)
    t0 = time.time()
    print('matrix: %d cells, %d at a time, venvs in %s' % (len(cells), args.jobs, cache), flush=True)
    rows = {}
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = dict((pool.submit(run_cell, cache, c, args.rebuild), c) for c in cells)
        for fut in concurrent.futures.as_completed(futures):
            r = fut.result()
            rows[r['cell']] = r
            print('  %-11s install %-7s check %5.1f s  %s' % (
                r['cell'], r.get('install', '-'), r.get('check_s', 0),
                r.get('error') or ' '.join('%.9f' % x for x in r.get('losses', []))), flush=True)
    ordered = [rows[c] for c in sorted(rows, key=lambda c: (CHAINERS.index(parse_cell(c)[0]), parse_cell(c)[1]))]
    failed = judge(ordered, args.tolerance)
    text = table(ordered)
    print()
    print(text)
    print('\n%d of %d cells ok; reference %s; tolerance %g relative; %.0f s in all'
          % (len(ordered) - failed, len(ordered), REFERENCE, args.tolerance, time.time() - t0))
    for r in ordered:
        if 'traceback' in r:
            print('\n--- %s\n%s' % (r['cell'], r['traceback']))
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(text + '\n')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(ordered, f, indent=1)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
