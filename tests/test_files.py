"""irnn_chainer.files: the one atomic writer (files with the user's umask, nothing half-written)
and what a file is when it is not what was expected; errors.shown (values as typed)."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from irnn_chainer import files
from irnn_chainer.errors import shown


def mode(path):
    return os.stat(path).st_mode & 0o777


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_every_writer_gives_the_mode_of_an_ordinary_new_file(tmp_path, umask):
    """What ``open(path, 'w')`` gives under the same umask (0644 under 022, 0600 under 077):
    the temporary file's 0600 is not kept."""
    plain = tmp_path / 'plain'
    plain.write_text('x')
    want = mode(plain)
    assert want == 0o666 & ~umask
    writers = {
        'config.json': lambda p: files.write_json(p, {'a': 1}),
        'model.bin': lambda p: files.write_bytes(p, b'\0' * 10),
        'report.md': lambda p: files.write_text(p, 'text\n'),
        'permutation.npy': lambda p: files.save_npy(p, np.arange(5)),
        'plot.png': lambda p: files.write_atomic(p, lambda tmp: open(tmp, 'wb').write(b'\x89PNG'), suffix='.png'),
    }
    for name, write in writers.items():
        path = str(tmp_path / name)
        write(path)
        assert mode(path) == want, (name, oct(mode(path)), oct(want))
        write(path)  # replacing a file: the same
        assert mode(path) == want, name
    assert sorted(os.listdir(str(tmp_path))) == sorted(list(writers) + ['plain'])  # no temporary left


def test_run_folder_files_follow_the_umask(tmp_path):
    """A real (tiny) run under umask 022 then 077: config.json, model.npz, the log, the
    snapshot, the plots all get what the user's other files get."""
    code = ('import os, sys; os.umask(int(sys.argv[2], 8)); from irnn_chainer.commands import cli; '
            'sys.exit(cli.main(["train", "--dataset", "adding", "--length", "4", "--train-limit", "32", '
            '"--test-limit", "16", "--unit", "4", "-b", "16", "--epoch", "1", "--no-progress", "-o", sys.argv[1]]))')
    for mask in (0o022, 0o077):
        out = str(tmp_path / ('run%o' % mask))
        p = subprocess.run([sys.executable, '-c', code, out, '%o' % mask], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=300)
        assert p.returncode == 0, p.stdout[-2000:]
        names = [n for n in os.listdir(out) if not n.startswith('.')]
        for must in ('config.json', 'model.npz', 'log'):
            assert must in names, names
        wrong = {n: oct(mode(os.path.join(out, n))) for n in names if mode(os.path.join(out, n)) != 0o666 & ~mask}
        assert not wrong, (oct(mask), wrong)


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = str(tmp_path / 'config.json')
    files.write_json(path, {'old': True})

    def half(tmp):
        open(tmp, 'w').write('{"new": ')
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        files.write_atomic(path, half)
    assert files.read_json(path) == {'old': True} and os.listdir(str(tmp_path)) == ['config.json']


@pytest.mark.parametrize('make, words', [
    (lambda p: np.save(open(p, 'wb'), np.arange(3)), 'found a single .npy array (not a .npz archive'),
    (lambda p: open(p, 'w').write('seq,t,x0,label\n0,0,1,1\n'), "found a text file (first line 'seq,t,x0,label')"),
    (lambda p: pickle.dump({'x': [1, 2]}, open(p, 'wb')), 'found a Python pickle'),
    (lambda p: open(p, 'wb').close(), 'found an empty file'),
    (lambda p: open(p, 'wb').write(b'\x89PNG\r\n\x1a\n' + b'\0' * 20), 'found a PNG image'),
    (lambda p: open(p, 'wb').write(bytes(range(200, 256))), 'found a file of another kind (first bytes c8c9'),
])
def test_load_npz_says_what_the_file_is(tmp_path, make, words):
    path = str(tmp_path / 'data.npz')
    make(path)
    with pytest.raises(files.FileError) as e:
        files.load_npz(path, 'a .npz file with arrays x and y')
    msg = str(e.value)
    assert msg.startswith('%s: expected a .npz file with arrays x and y, ' % path) and words in msg, msg
    assert '\n' not in msg and 'TypeError' not in msg and 'pickle' not in msg.replace('a Python pickle', '')


def test_load_npy_says_what_the_file_is(tmp_path):
    path = str(tmp_path / 'perm.npy')
    np.savez(open(path, 'wb'), a=np.arange(3))
    with pytest.raises(files.FileError, match=r'perm.npy: expected 784 integers, found a .npz archive$'):
        files.load_npy(path, '784 integers')
    os.remove(path)
    with pytest.raises(files.FileError, match=r'perm.npy: missing: expected 784 integers, found no such file$'):
        files.load_npy(path, '784 integers')


def test_a_missing_file_is_called_missing(tmp_path):
    with pytest.raises(files.FileError) as e:
        files.read_json(str(tmp_path / 'config.json'))
    assert str(e.value) == '%s: missing: expected a JSON object, found no such file' % (tmp_path / 'config.json')


@pytest.mark.parametrize('value, text', [
    (np.str_('abc'), "'abc'"), ('abc', "'abc'"), (np.int64(3), '3'), (np.float32(0.5), '0.5'),
    (7, '7'), (np.bool_(True), 'True'), (None, 'None'),
])
def test_shown_is_the_value_as_typed(value, text):
    assert shown(value) == text
