"""Never lose a run, never run a stranger's code, never show a traceback.

Every file we read (snapshots, model.npz, config.json, permutation.npy, --data) is loaded
with pickles refused and checked; the run folder holds one run, ours, locked while it runs.
Each test below fails on the code before irnn_chainer/files.py and runfolder.py.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import irnn_chainer  # noqa: F401
from irnn_chainer.commands import cli
from irnn_chainer.model import eras
from irnn_chainer import files
from irnn_chainer.run import runfolder
from irnn_chainer.run import train as train_mod
from irnn_chainer.commands import evaluate as evaluate_mod
from irnn_chainer.compat import api

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(dataset='embedded', train_limit=48, test_limit=32, batchsize=16, unit=8, lr=0.01, clip=1.0,
             seed=3)
SMALL_ARGS = ['--dataset', 'embedded', '--train-limit', '48', '--test-limit', '32', '--batchsize', '16',
              '--unit', '8', '--lr', '0.01', '--seed', '3', '--no-progress']


def quiet(*args):
    pass


def main(capsys, *argv):
    """The CLI in this process: (exit status, stdout, stderr lines)."""
    try:
        code = cli.main(list(argv))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, [l for l in err.strip().splitlines() if l.strip()]


def one_line(code, err, *words):
    assert code == 2, err
    assert len(err) == 1 and 'Traceback' not in err[0], err
    for w in words:
        assert w in err[0], (w, err[0])
    return err[0]


def run(tmp_path, name='run', **kw):
    out = str(tmp_path / name)
    train_mod.train(dict(SMALL, **kw), out, progress=False, log=quiet)
    return out


# ------------------------------------------------------------------ 1. no file can run code

class _Evil(object):
    """Unpickling this creates the marker file: what a crafted snapshot could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def crafted_npz(path, marker, keys=('x',)):
    with open(path, 'wb') as f:  # np.savez pickles object arrays (allow_pickle is on for saving)
        np.savez(f, **{k: np.array([_Evil(marker)], dtype=object) for k in keys})
    # the file really is a pickle bomb: loading it the way Chainer does creates the marker
    probe = marker + '.probe'
    with open(path + '.probe', 'wb') as f:
        np.savez(f, x=np.array([_Evil(probe)], dtype=object))
    with np.load(path + '.probe', allow_pickle=True) as z:
        z['x']
    assert os.path.exists(probe)
    os.remove(probe)
    os.remove(path + '.probe')


def test_pickle_bearing_files_never_run_code(tmp_path, capsys):
    marker = str(tmp_path / 'PWNED')
    a = run(tmp_path, 'a', iteration=1, permute=True)
    evil = str(tmp_path / 'evil.npz')
    crafted_npz(evil, marker, keys=('updater/model:main/predictor/h_to_h/W', 'x'))

    # --resume: the newest snapshot of a run folder is the crafted file
    shutil.copy(evil, os.path.join(a, 'snapshot_iter_9'))
    code, _, err = main(capsys, 'train', '--resume', a, '--iteration', '10', '--no-progress')
    one_line(code, err, 'snapshot_iter_9', 'object array', 'pickle', 'the last good snapshot is',
             'snapshot_iter_1')
    os.remove(os.path.join(a, 'snapshot_iter_9'))
    # evaluate: a run folder whose only weights are a crafted model.npz
    b = str(tmp_path / 'b')
    shutil.copytree(a, b)
    for f in runfolder.snapshots(b):
        os.remove(f)
    shutil.copy(evil, os.path.join(b, 'model.npz'))
    code, _, err = main(capsys, 'evaluate', b)
    one_line(code, err, 'model.npz', 'object array', 'pickle')
    # --init-from a downloaded model
    code, _, err = main(capsys, 'train', *SMALL_ARGS, '--iteration', '1', '--init-from', evil,
                        '-o', str(tmp_path / 'c'))
    one_line(code, err, 'evil.npz', 'object array')
    # the run's permutation.npy
    with open(os.path.join(a, 'permutation.npy'), 'wb') as f:
        np.save(f, np.array([_Evil(marker)], dtype=object), allow_pickle=True)
    code, _, err = main(capsys, 'evaluate', a)
    one_line(code, err, 'permutation.npy', 'object array')
    # a user's --data file
    code, _, err = main(capsys, 'train', '--data', evil, '--iteration', '1', '-o', str(tmp_path / 'd'))
    one_line(code, err, 'evil.npz', 'object array')
    # the compat API itself (what tools/matrix.py and examples/ use)
    for load in (lambda: api.load_npz(evil, eras.build_irnn(n_units=4)),
                 lambda: api.load_model(evil, eras.build_irnn(n_units=4))):
        with pytest.raises(ValueError, match='allow_pickle'):
            load()
    assert not os.path.exists(marker)


def test_crafted_snapshot_through_the_real_command(tmp_path):
    marker = str(tmp_path / 'PWNED')
    a = run(tmp_path, 'a', iteration=1)
    crafted_npz(os.path.join(a, 'snapshot_iter_5'), marker, keys=('updater/iteration',))
    p = subprocess.run([sys.executable, '-m', 'irnn_chainer', 'evaluate', a], cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    err = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(err) == 1 and 'Traceback' not in p.stderr, p.stderr
    assert 'snapshot_iter_5' in err[0] and 'pickle' in err[0]
    assert not os.path.exists(marker)


# ------------------------------------------------------------------ 2. the run folder is ours alone

def test_foreign_folder_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / 'theirs'
    out.mkdir()
    (out / 'log').write_text('their log')
    (out / 'model.npz').write_bytes(b'their model')
    code, _, err = main(capsys, 'train', *SMALL_ARGS, '--iteration', '1', '-o', str(out))
    one_line(code, err, 'not an irnn-chainer run', 'log', 'model.npz', '--force')
    assert (out / 'log').read_text() == 'their log' and (out / 'model.npz').read_bytes() == b'their model'
    assert sorted(os.listdir(out)) == ['log', 'model.npz']
    (out / 'notes.txt').write_text('keep me')
    code, _, _ = main(capsys, 'train', *SMALL_ARGS, '--iteration', '1', '-o', str(out), '--force')
    assert code == 0
    assert (out / 'notes.txt').read_text() == 'keep me'  # --force never removes what is not a run's


def test_resume_never_writes_over_another_run(tmp_path, capsys):
    a = run(tmp_path, 'a', iteration=2)
    b = run(tmp_path, 'b', iteration=1, seed=5)
    before = {n: open(os.path.join(b, n), 'rb').read() for n in os.listdir(b) if n != '.lock'}
    code, _, err = main(capsys, 'train', '--resume', a, '--out', b, '--iteration', '3', '--no-progress')
    one_line(code, err, b, 'holds another run', 'empty')
    assert {n: open(os.path.join(b, n), 'rb').read() for n in os.listdir(b) if n != '.lock'} == before
    # into an empty folder: fine, and then again into that same run's folder
    c = str(tmp_path / 'c')
    code, _, _ = main(capsys, 'train', '--resume', a, '--out', c, '--iteration', '3', '--no-progress')
    assert code == 0 and os.path.exists(os.path.join(c, 'snapshot_iter_3'))
    code, _, _ = main(capsys, 'train', '--resume', a, '--out', c, '--iteration', '4', '--no-progress')
    assert code == 0


def test_force_clears_the_previous_run(tmp_path):
    out = run(tmp_path, 'r', iteration=6, log_interval=2)
    assert os.path.exists(os.path.join(out, 'snapshot_iter_6'))
    train_mod.train(dict(SMALL, iteration=1, seed=4), out, force=True, progress=False, log=quiet)
    assert sorted(f for f in os.listdir(out) if f.startswith('snapshot_iter_')) == ['snapshot_iter_1']
    assert [r['iteration'] for r in json.load(open(os.path.join(out, 'log')))] == [1]
    # resuming continues the NEW run (seed 4), not the old weights
    t = train_mod.train({'iteration': 2}, None, resume=out, progress=False, log=quiet)
    assert t.updater.iteration == 2 and json.load(open(os.path.join(out, 'config.json')))['seed'] == 4


def test_second_run_in_a_locked_folder_names_the_holder(tmp_path):
    out = str(tmp_path / 'busy')
    held = runfolder.claim(out, log=quiet)
    try:
        with pytest.raises(files.FileError) as e:
            train_mod.train(dict(SMALL, iteration=1), out, progress=False, log=quiet)
        assert 'in use by another irnn-chainer run (pid %d' % os.getpid() in str(e.value)
        assert '\n' not in str(e.value)
    finally:
        held.release()
    train_mod.train(dict(SMALL, iteration=1), out, progress=False, log=quiet)


def test_report_never_writes_over_a_run(tmp_path, capsys):
    a = run(tmp_path, 'a', iteration=1)
    plots = {n: open(os.path.join(a, n), 'rb').read() for n in ('loss.png', 'accuracy.png')}
    code, _, err = main(capsys, 'report', a, '-o', a)
    one_line(code, err, 'run folder', 'choose another folder')
    assert {n: open(os.path.join(a, n), 'rb').read() for n in plots} == plots


def test_a_run_that_never_reached_a_snapshot_restarts_without_force(tmp_path, capsys):
    out = run(tmp_path, 'crashed', iteration=1)
    for name in os.listdir(out):  # as a crash before the first snapshot leaves it
        if name not in ('config.json', 'log'):
            os.remove(os.path.join(out, name))
    code, _, err = main(capsys, 'train', '--resume', out, '--no-progress')
    one_line(code, err, 'never reached a snapshot', 'no --force needed')
    code, _, _ = main(capsys, 'train', *SMALL_ARGS, '--iteration', '2', '-o', out)
    assert code == 0 and os.path.exists(os.path.join(out, 'snapshot_iter_2'))


def test_leftovers_of_a_killed_run_are_removed_by_the_next(tmp_path):
    out = run(tmp_path, 'r', iteration=1)
    junk = ['tmpsnapshot_iter_7abc123', 'logq8x_2k9a', '.tmp-3kd9s.npz', 'config.json.tmp']
    os.mkdir(os.path.join(out, junk[0]))
    open(os.path.join(out, junk[0], 'snapshot_iter_7'), 'wb').write(b'half')
    os.mkdir(os.path.join(out, junk[1]))
    for name in junk[2:]:
        open(os.path.join(out, name), 'wb').write(b'half')
    lines = []
    train_mod.train({'iteration': 2}, None, resume=out, progress=False, log=lines.append)
    assert not set(junk) & set(os.listdir(out)), os.listdir(out)
    assert any('leftovers' in l for l in lines)


def test_bad_flags_leave_no_folder_behind(tmp_path, capsys):
    out = str(tmp_path / 'never')
    code, _, err = main(capsys, 'train', '--data', str(tmp_path / 'none.npz'), '-o', out)
    one_line(code, err, 'none.npz', 'no such file')
    assert not os.path.exists(out)


# ------------------------------------------------------------------ 3. corrupt or mismatched files

@pytest.mark.parametrize('damage, words', [
    (lambda p: open(p, 'wb').close(), ['expected', 'found an empty file']),           # empty
    (lambda p: open(p, 'r+b').truncate(os.path.getsize(p) // 2), ['NumPy cannot read']),  # truncated
    (lambda p: open(p, 'wb').write(b'garbage' * 100), ['found a text file (first line \'garbage']),  # garbage
])
def test_unreadable_newest_snapshot_names_the_last_good_one(tmp_path, capsys, damage, words):
    out = run(tmp_path, 'r', iteration=4, log_interval=2)
    newest = os.path.join(out, 'snapshot_iter_4')
    damage(newest)
    code, _, err = main(capsys, 'train', '--resume', out, '--iteration', '6', '--no-progress')
    good = os.path.join(out, 'snapshot_iter_2')
    one_line(code, err, newest, *words + ['the last good snapshot is %s' % good])
    # ... and continues from it when asked
    code, out_text, _ = main(capsys, 'train', '--resume', good, '--iteration', '6', '--no-progress')
    assert code == 0 and 'iteration 6' in out_text
    # evaluate says the same of the (now newest) snapshot 6? no: that one is good; damage it
    damage(os.path.join(out, 'snapshot_iter_6'))
    code, _, err = main(capsys, 'evaluate', out)
    one_line(code, err, 'snapshot_iter_6', 'the last good snapshot')


def test_corrupt_model_npz_is_one_line(tmp_path, capsys):
    out = run(tmp_path, 'r', iteration=1)
    for f in runfolder.snapshots(out):
        os.remove(f)
    with open(os.path.join(out, 'model.npz'), 'r+b') as f:
        f.truncate(100)
    code, _, err = main(capsys, 'evaluate', out)
    one_line(code, err, 'model.npz', 'NumPy cannot read')


@pytest.mark.parametrize('text, words', [
    ('{"batchsize": 16,', ['not valid JSON']),
    ('[1, 2, 3]', ['a JSON object', 'found a JSON list']),
    ('{"batchsize": "sixteen", "unit": 8}', ['batchsize', 'expected an integer', '"sixteen"']),
    ('{"lr": "fast"}', ['lr', 'expected a number']),
])
def test_bad_config_json_is_one_line(tmp_path, capsys, text, words):
    out = run(tmp_path, 'r', iteration=1)
    open(os.path.join(out, 'config.json'), 'w').write(text)
    for argv in (['train', '--resume', out, '--no-progress'], ['evaluate', out]):
        code, _, err = main(capsys, *argv)
        one_line(code, err, os.path.join(out, 'config.json'), *words)


def test_corrupt_permutation_is_one_line(tmp_path, capsys):
    out = run(tmp_path, 'r', iteration=1, permute=True)
    path = os.path.join(out, 'permutation.npy')
    np.save(path, np.arange(700))
    code, _, err = main(capsys, 'evaluate', out)
    one_line(code, err, path, 'permutation', '784')
    open(path, 'wb').write(b'\x93NUMPY garbage')
    code, _, err = main(capsys, 'train', '--resume', out, '--iteration', '2', '--no-progress')
    one_line(code, err, path, 'NumPy cannot read')


def test_snapshot_of_another_model_is_one_line(tmp_path, capsys):
    a = run(tmp_path, 'a', iteration=1)
    b = run(tmp_path, 'b', iteration=1, unit=9)
    shutil.copy(os.path.join(b, 'snapshot_iter_1'), os.path.join(a, 'snapshot_iter_2'))
    code, _, err = main(capsys, 'train', '--resume', a, '--iteration', '3', '--no-progress')
    one_line(code, err, 'snapshot_iter_2', 'do not fit this model')
    code, _, err = main(capsys, 'evaluate', a)
    one_line(code, err, 'snapshot_iter_2', 'do not fit this model')


def test_changed_data_is_refused_unless_allowed(tmp_path, capsys):
    rng = np.random.RandomState(0)
    data = str(tmp_path / 'd.npz')
    np.savez(data, x=rng.rand(40, 5, 2).astype(np.float32), y=rng.randint(0, 2, 40))
    out = str(tmp_path / 'r')
    code, _, _ = main(capsys, 'train', '--data', data, '--test-split', '0.25', '--unit', '4',
                      '--iteration', '2', '--no-progress', '-o', out)
    assert code == 0
    cfg = json.load(open(os.path.join(out, 'config.json')))
    assert cfg['data_sha256'] == files.sha256_file(data) and cfg['data_bytes'] == os.path.getsize(data)
    np.savez(data, x=rng.rand(40, 5, 2).astype(np.float32), y=rng.randint(0, 2, 40))  # changed
    for argv in (['evaluate', out], ['train', '--resume', out, '--iteration', '3', '--no-progress']):
        code, _, err = main(capsys, *argv)
        one_line(code, err, 'data differ', cfg['data_sha256'][:16], '--allow-changed-data')
        code, _, _ = main(capsys, *argv + ['--allow-changed-data'])
        assert code == 0


def test_mnist_data_checksum_is_of_the_arrays(tmp_path, capsys):
    out = run(tmp_path, 'r', iteration=1)
    cfg = json.load(open(os.path.join(out, 'config.json')))
    from irnn_chainer.data import mnist as data
    s = data.get_mnist('embedded', train_limit=48, test_limit=32, log=quiet)
    assert cfg['data_sha256'] == files.sha256_arrays(s.train_x, s.train_y, s.test_x, s.test_y)


def test_evaluate_uses_the_newest_weights(tmp_path, capsys):
    a = run(tmp_path, 'a', iteration=2)        # model.npz and snapshot at iteration 2
    b = run(tmp_path, 'b', iteration=4)        # the same run, further
    shutil.copy(os.path.join(b, 'snapshot_iter_4'), os.path.join(a, 'snapshot_iter_4'))  # "killed" after 4
    ra, rb = evaluate_mod.evaluate(a, log=quiet), evaluate_mod.evaluate(b, log=quiet)
    assert ra['model'].endswith('snapshot_iter_4')
    assert ra['loss'] == rb['loss'] and ra['accuracy'] == rb['accuracy']
    old = evaluate_mod.evaluate(os.path.join(a, 'snapshot_iter_2'), log=quiet)  # or one snapshot, when asked
    assert old['loss'] != ra['loss']


def test_flags_evaluate_cannot_honour_are_refused(tmp_path, capsys):
    out = run(tmp_path, 'r', iteration=1)
    code, _, err = main(capsys, 'evaluate', out, '--data-dir', str(tmp_path))
    one_line(code, err, '--data-dir', 'embedded')


def test_killed_run_leaves_a_resumable_folder_no_force(tmp_path):
    """kill -9 in the middle: the next run in the folder (resume) cleans and continues."""
    out = str(tmp_path / 'k')
    cmd = [sys.executable, '-m', 'irnn_chainer', 'train'] + SMALL_ARGS + [
        '--iteration', '100000', '--log-interval', '3', '-o', out]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    import time
    deadline = time.time() + 120
    while time.time() < deadline and not runfolder.snapshots(out):
        time.sleep(0.2)
    p.kill()
    p.communicate()
    assert runfolder.snapshots(out)
    t = train_mod.train({'iteration': runfolder.snapshot_number(os.path.basename(runfolder.snapshots(out)[0])) + 1},
                        None, resume=out, progress=False, log=quiet)
    assert t.updater.iteration >= 4


# ------------------------------------------------------------------ 4. files and disks

@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount_tmpfs(options) -> a fresh tmpfs folder (root only; skipped with the reason)."""
    mounted = []

    def mount(options):
        if os.geteuid() != 0:
            pytest.skip('mounting a small tmpfs needs root (this test runs as uid %d)' % os.geteuid())
        where = tmp_path / ('mnt%d' % len(mounted))
        where.mkdir()
        p = subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', str(where)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            pytest.skip('cannot mount a tmpfs here: %s' % p.stdout.strip())
        mounted.append(where)
        return str(where)
    yield mount
    for where in mounted:
        subprocess.run(['umount', '-l', str(where)])


def test_out_is_a_file_or_cannot_be_created(tmp_path, capsys):
    f = tmp_path / 'afile'
    f.write_text('x')
    code, _, err = main(capsys, 'train', *SMALL_ARGS, '--iteration', '1', '-o', str(f))
    one_line(code, err, str(f), 'expected a folder', 'found a file')
    code, _, err = main(capsys, 'train', *SMALL_ARGS, '--iteration', '1', '-o', str(f / 'sub'))
    one_line(code, err, str(f / 'sub'), 'cannot create the run folder', 'Not a directory')
    assert f.read_text() == 'x'


def test_read_only_file_system(mount_tmpfs, capsys):
    ro = mount_tmpfs('ro,size=1m')
    code, _, err = main(capsys, 'train', *SMALL_ARGS, '--iteration', '1', '-o', os.path.join(ro, 'run'))
    one_line(code, err, os.path.join(ro, 'run'), 'Read-only file system')


def test_full_disk_keeps_the_previous_snapshot_and_says_so(mount_tmpfs, capsys):
    import chainer
    disk = mount_tmpfs('size=3m')
    out = os.path.join(disk, 'run')
    filler = os.path.join(disk, 'filler')

    @chainer.training.make_extension(trigger=(2, 'iteration'), priority=10 ** 6)
    def fill_disk(trainer):  # after the snapshot of iteration 1, before anything of iteration 2
        with open(filler, 'wb') as f:
            try:
                while True:
                    f.write(b'\0' * 65536)
                    f.flush()
            except OSError:
                pass

    with pytest.raises(files.FileError) as e:
        train_mod.train(dict(SMALL, iteration=3, log_interval=1), out, progress=False, log=quiet,
                        extra_extensions=[fill_disk])
    msg = str(e.value)
    kept = os.path.join(out, 'snapshot_iter_1')
    assert '\n' not in msg and 'No space left on device' in msg, msg
    assert 'the previous good snapshot %s is kept' % kept in msg and '--resume' in msg, msg
    assert runfolder.snapshots(out) == [kept]
    os.remove(filler)  # free space: the run continues from the kept snapshot
    t = train_mod.train({'iteration': 3}, None, resume=kept, progress=False, log=quiet)
    assert t.updater.iteration == 3


def test_fifo_as_data_and_a_config_that_is_a_folder(tmp_path, capsys):
    fifo = str(tmp_path / 'pipe.npz')
    os.mkfifo(fifo)
    code, _, err = main(capsys, 'train', '--data', fifo, '--iteration', '1', '-o', str(tmp_path / 'r'))
    one_line(code, err, fifo, 'FIFO')
    out = run(tmp_path, 'r2', iteration=1)
    os.remove(os.path.join(out, 'config.json'))
    os.mkdir(os.path.join(out, 'config.json'))
    code, _, err = main(capsys, 'evaluate', out)
    one_line(code, err, 'config.json', 'found a folder')


def test_flags_train_cannot_honour_are_refused(tmp_path, capsys):
    out = run(tmp_path, 'r', iteration=1)
    code, _, err = main(capsys, 'train', '--resume', out, '--data-dir', str(tmp_path), '--no-progress')
    one_line(code, err, '--data-dir', '--dataset embedded', 'refused')
    code, _, err = main(capsys, 'train', *SMALL_ARGS, '--data-dir', str(tmp_path), '-o', str(tmp_path / 'n'))
    one_line(code, err, '--data-dir', '--dataset embedded')


# ------------------------------------------------------------------ --force loses nothing to a run that cannot start

def _files_of(out):
    return {n: open(os.path.join(out, n), 'rb').read() for n in os.listdir(out)
            if os.path.isfile(os.path.join(out, n))}


@pytest.mark.parametrize('bad, words', [
    (['--device', '@cupy:0'], ['@cupy:0']),                                            # no CUDA here
    (['--dataset', 'mnist', '--data-dir', 'no-such-mnist'], ['no-such-mnist']),        # missing data
    (['--init-from', 'EMPTY'], ['--init-from EMPTY', 'expected a run folder with weights', 'found none']),
])
def test_force_keeps_the_previous_run_when_the_new_one_cannot_start(tmp_path, capsys, monkeypatch, bad, words):
    if bad[0] == '--device' and api.cuda_status(0)[0]:
        pytest.skip('CUDA works here: @cupy:0 is not a bad device')
    monkeypatch.chdir(tmp_path)
    out = run(tmp_path, 'r', iteration=2)
    before = _files_of(out)
    assert 'snapshot_iter_2' in before and 'config.json' in before and '.lock' not in before
    (tmp_path / 'EMPTY').mkdir()
    bad = [str(tmp_path / 'EMPTY') if a == 'EMPTY' else a for a in bad]
    code, _, err = main(capsys, 'train', *SMALL_ARGS, '--iteration', '1', '-o', out, '--force', *bad)
    line = one_line(code, err, *[w.replace('EMPTY', str(tmp_path / 'EMPTY')) for w in words])
    assert '--resume' not in line  # a folder without weights, given to --init-from: no talk of resuming
    assert _files_of(out) == before
    assert sorted(os.listdir(out)) == sorted(before)  # no aside folder, no lock left behind
    # and the kept run still resumes
    t = train_mod.train({'iteration': 3}, None, resume=out, progress=False, log=quiet)
    assert t.updater.iteration == 3


def test_force_removes_the_previous_run_once_the_new_one_starts(tmp_path):
    out = run(tmp_path, 'r', iteration=4, log_interval=2)
    lines = []
    train_mod.train(dict(SMALL, iteration=1, seed=4), out, force=True, progress=False, log=lines.append)
    assert sorted(os.listdir(out)) == sorted(['config.json', 'log', 'loss.png', 'accuracy.png', 'model.npz',
                                              'snapshot_iter_1'])
    started = [l for l in lines if 'starting over' in l]
    # the old run's 7 files: accuracy.png, config.json, log, loss.png, model.npz, 2 snapshots
    assert len(started) == 1 and "previous run's accuracy.png, config.json, log and 4 more" in started[0]
    assert lines.index(started[0]) > [i for i, l in enumerate(lines) if l.startswith('training:')][0]


def test_a_run_killed_before_it_started_gets_the_previous_run_put_back(tmp_path):
    out = run(tmp_path, 'r', iteration=2)
    before = _files_of(out)
    held = runfolder.claim(out, force=True, log=quiet)   # --force: the old run set aside ...
    files.write_json(os.path.join(out, 'config.json'), {'seed': 99})  # ... the new run's mark written ...
    assert sorted(os.listdir(out)) == ['.lock', '.previous-run', 'config.json']
    os.close(held.fd)                                     # ... and killed: no abandon, the lock file stays
    lines = []
    runfolder.claim(out, resume_from=out, log=lines.append).release()  # the next claim (a resume) puts it back
    assert _files_of(out) == before and not os.path.exists(os.path.join(out, '.previous-run'))
    assert any("put back the previous run's accuracy.png, config.json, log and 3 more" in l for l in lines)


def test_a_finished_run_leaves_no_lock_file(tmp_path):
    out = run(tmp_path, 'r', iteration=1)
    assert '.lock' not in os.listdir(out)
    # the next run takes the folder (a new lock), and again leaves none
    train_mod.train({'iteration': 2}, None, resume=out, progress=False, log=quiet)
    assert '.lock' not in os.listdir(out) and os.path.exists(os.path.join(out, 'snapshot_iter_2'))
    # while a run holds the folder, its lock file is there with its pid
    held = runfolder.claim(str(tmp_path / 'busy'), log=quiet)
    try:
        assert open(os.path.join(str(tmp_path / 'busy'), '.lock')).read().strip() == str(os.getpid())
    finally:
        held.release()
    assert os.listdir(str(tmp_path / 'busy')) == []


def test_a_missing_resume_is_named_as_given(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = main(capsys, 'train', '--resume', 'no-such-run', '--no-progress')
    line = one_line(code, err, '--resume no-such-run: not found')
    assert "'" not in line  # the path as typed, not a Python repr
