"""No import circle among the package's modules.

Every module of the package (``irnn_chainer/**.py``, and ``compat/*.py``, installed as
``irnn_chainer.compat``) is parsed with ``ast``; every import in it counts, at the top or
inside a function, relative ones resolved. ``from P import X`` is an import of the module
``P.X`` when that is a module of ours, else of ``P``. Importing a submodule also runs its
package's ``__init__``; that implicit step is not counted (a package's ``__init__`` that
imports its own submodules is not a circle).
"""
import ast
import subprocess
import sys
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = 'irnn_chainer'


def package_modules(root=ROOT):
    """{dotted module name: path} of every module of the installed package; a C extension
    (``X.c`` defining ``PyInit_X``) is a module too, with no imports of ours (path None)."""
    out = {}
    for top, dotted in ((os.path.join(root, 'irnn_chainer'), PACKAGE),
                        (os.path.join(root, 'compat'), PACKAGE + '.compat')):
        for folder, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d != '__pycache__')
            rel = os.path.relpath(folder, top)
            prefix = dotted if rel == '.' else dotted + '.' + rel.replace(os.sep, '.')
            if '__init__.py' not in files:
                continue
            for name in sorted(files):
                if name.endswith('.py'):
                    mod = prefix if name == '__init__.py' else prefix + '.' + name[:-3]
                    out[mod] = os.path.join(folder, name)
                elif name.endswith('.c'):
                    with open(os.path.join(folder, name), errors='replace') as f:
                        if 'PyInit_%s(' % name[:-2] in f.read():
                            out[prefix + '.' + name[:-2]] = None
    return out


def imports_of(module, path, modules):
    """The package's modules that ``module`` (at ``path``) imports anywhere in its code."""
    if path is None:  # a C extension
        return set()
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    is_package = os.path.basename(path) == '__init__.py'
    here = module if is_package else module.rpartition('.')[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = here.split('.')
                anchor = parts[:len(parts) - (node.level - 1)]
                base = '.'.join(anchor + ([base] if base else []))
            targets = []
            for a in node.names:
                sub = base + '.' + a.name
                targets.append(sub if sub in modules else base)
        else:
            continue
        for t in targets:
            while t and t not in modules:  # `import irnn_chainer.x.y` where y is not a module
                t = t.rpartition('.')[0]
            if t and t != module:
                found.add(t)
    return found


def import_graph(root=ROOT):
    modules = package_modules(root)
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def find_cycles(graph):
    """One cycle (a list of modules, first == last) per strongly connected component."""
    index, low, stack, on, comps = {}, {}, [], set(), []

    def connect(v):  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(set(comp))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    cycles = []
    for comp in comps:  # a shortest way back to the component's first module
        start = min(comp)
        paths, seen = [[start]], {start}
        while paths:
            path = paths.pop(0)
            nxt = sorted(w for w in graph[path[-1]] if w in comp)
            if start in nxt:
                cycles.append(path + [start])
                break
            for w in nxt:
                if w not in seen:
                    seen.add(w)
                    paths.append(path + [w])
    return sorted(cycles)


def test_the_graph_sees_imports_inside_functions_and_relative_ones(tmp_path):
    pkg = tmp_path / 'irnn_chainer'
    (pkg / 'sub').mkdir(parents=True)
    (tmp_path / 'compat').mkdir()
    (pkg / '__init__.py').write_text('from .compat import shims\n')
    (pkg / 'a.py').write_text('def f():\n    from irnn_chainer.b import thing\n')
    (pkg / 'b.py').write_text('from irnn_chainer import a\nimport irnn_chainer.sub.c\n')
    (pkg / 'sub' / '__init__.py').write_text('')
    (pkg / 'sub' / 'c.py').write_text('from .. import b  # noqa\nfrom ..compat.api import x\n'
                                      'from irnn_chainer.sub import _ext\n')
    (pkg / 'sub' / '_ext.c').write_text('PyMODINIT_FUNC PyInit__ext(void) {}\n')  # a C extension
    (tmp_path / 'compat' / '__init__.py').write_text('')
    (tmp_path / 'compat' / 'shims.py').write_text('')
    (tmp_path / 'compat' / 'api.py').write_text('def g():\n    from irnn_chainer import a\n')
    graph = import_graph(str(tmp_path))
    assert graph['irnn_chainer'] == {'irnn_chainer.compat.shims'}
    assert graph['irnn_chainer.a'] == {'irnn_chainer.b'}
    assert graph['irnn_chainer.b'] == {'irnn_chainer.a', 'irnn_chainer.sub.c'}
    assert graph['irnn_chainer.sub.c'] == {'irnn_chainer.b', 'irnn_chainer.compat.api',
                                           'irnn_chainer.sub._ext'}
    assert graph['irnn_chainer.sub._ext'] == set()
    assert graph['irnn_chainer.compat.api'] == {'irnn_chainer.a'}
    cycles = find_cycles(graph)
    # a <-> b <-> sub.c <- ... one component, reported as one shortest cycle through its first module
    assert cycles == [['irnn_chainer.a', 'irnn_chainer.b', 'irnn_chainer.a']]
    del graph['irnn_chainer.b']
    graph['irnn_chainer.a'] = set()
    assert find_cycles({k: v - {'irnn_chainer.b'} for k, v in graph.items()}) == []


def test_no_import_circle_among_the_packages_modules():
    graph = import_graph()
    assert 'irnn_chainer.compat.api' in graph and 'irnn_chainer.run.train' in graph
    cycles = find_cycles(graph)
    if cycles:
        pytest.fail('import circles: %s' % '; '.join(' -> '.join(c) for c in cycles))


def test_compat_is_a_leaf():
    """compat knows Chainer's versions and nothing of ours: it imports only compat."""
    graph = import_graph()
    ours = {m: sorted(t for t in deps if not t.startswith(PACKAGE + '.compat'))
            for m, deps in graph.items() if m.startswith(PACKAGE + '.compat')}
    assert ours == {m: [] for m in ours}, ours


def test_the_era_and_check_modules_import_without_the_models():
    """tools/matrix.py imports ``from irnn_chainer.model import eras`` on Chainer 1.0 and 1.3,
    which have no chainer.links: the package's lazy hook must hand out the submodule itself,
    not import rnn.py (the models) on the way."""
    code = ('import sys\n'
            'from irnn_chainer.model import eras, checks\n'
            'assert "irnn_chainer.model.rnn" not in sys.modules, "rnn.py was imported"\n'
            'import irnn_chainer.model as m\n'
            'assert m.IRNN.__module__ == "irnn_chainer.model.rnn"\n')
    r = subprocess.run([sys.executable, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    assert r.returncode == 0, r.stdout
