"""The run folder: one run in it, ours alone, and every file in it checked as it is read.

A run folder is marked as ours by ``config.json``, which a run writes first (atomically)
and which carries the run's ``run_id``. :func:`claim` is the one way a run gets a folder:

- it creates the folder and holds a lock (``.lock``, ``fcntl.flock``) until the run ends;
  a second process gets one line naming the holder's pid;
- it removes the leftovers of a killed run of ours (``tmpsnapshot_iter_*``, Chainer's
  ``log*`` temporary folders, hidden ``.tmp-*`` files);
- a new run refuses a folder with anything that is not ours, or a run of ours that reached a
  snapshot, unless ``force``; then, and when our previous run never reached a snapshot, it
  removes our previous run's files (config, log, plots, snapshots, model, permutation) and
  nothing else before it starts;
- a resumed run writes into its own folder, into an empty one, or into one holding the
  same run (same ``run_id``), never over another run.

Errors are :class:`irnn_chainer.files.FileError`: one line naming the folder or file and
what was expected.
"""
import errno
import fcntl
import os
import re
import shutil
import uuid

from irnn_chainer import files
from irnn_chainer import settings

CONFIG_FILE = 'config.json'
LOG_FILE = 'log'
MODEL_FILE = 'model.npz'
EMA_MODEL_FILE = 'model_ema.npz'  # --ema's averaged weights (averaging.py), as model.npz
PERMUTATION_FILE = 'permutation.npy'
SNAPSHOT_PREFIX = 'snapshot_iter_'
LOCK_FILE = '.lock'
SWEEP_LOG = 'train.out'   # a sweep trial's output (sweep.py writes it before the run starts)
#: what a run writes (besides snapshots)
RUN_FILES = (CONFIG_FILE, LOG_FILE, 'loss.png', 'accuracy.png', MODEL_FILE, EMA_MODEL_FILE, PERMUTATION_FILE,
             SWEEP_LOG)
# temporary names: Chainer's snapshot writer (tmp + name), LogReport's tempdir (log + 8
# random characters), compat.api / files.write_atomic (.tmp-*), older .tmp suffixes
_LEFTOVER = re.compile(r'^(tmp%s\d+.*|%s[a-z0-9_]{8}|\.tmp-.*|.*\.tmp(\.png)?)$'
                       % (SNAPSHOT_PREFIX, LOG_FILE))

def snapshot_number(name):
    rest = name[len(SNAPSHOT_PREFIX):]
    return int(rest) if name.startswith(SNAPSHOT_PREFIX) and rest.isdigit() else None


def snapshots(run_dir):
    """The snapshot files of a run folder, newest (highest iteration) first."""
    try:
        names = os.listdir(run_dir)
    except OSError:
        return []
    snaps = [n for n in names if snapshot_number(n) is not None]
    return [os.path.join(run_dir, n) for n in sorted(snaps, key=snapshot_number, reverse=True)]


SNAPSHOT_EXPECTED = 'a trainer snapshot written by irnn-chainer train (npz)'


def load_snapshot(path):
    """The arrays of a snapshot; if it is unreadable, the error names the last good one."""
    try:
        return files.load_npz(path, SNAPSHOT_EXPECTED)
    except files.FileError as e:
        run_dir = os.path.dirname(os.path.abspath(path))
        n = snapshot_number(os.path.basename(path))
        good = None
        for other in snapshots(run_dir):
            if n is not None and snapshot_number(os.path.basename(other)) >= n:
                continue
            try:
                files.load_npz(other, SNAPSHOT_EXPECTED)
                good = other
                break
            except files.FileError:
                continue
        hint = ('; the last good snapshot is %s: continue from it with --resume %s' % (good, good)
                if good else '; no older readable snapshot in %s' % run_dir)
        raise files.FileError('%s%s' % (str(e), hint)) from None


def last_good_snapshot(run_dir):
    for path in snapshots(run_dir):
        try:
            files.load_npz(path, SNAPSHOT_EXPECTED)
            return path
        except files.FileError:
            continue
    return None


def read_config(run_dir):
    """The run's config.json, checked: a JSON object whose settings have the right types."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.lexists(path):
        raise files.FileError('%s: not an irnn-chainer run folder (no %s)' % (run_dir, CONFIG_FILE))
    cfg = files.read_json(path, "a run's settings (a JSON object)")
    for key, value in cfg.items():  # the types settings.py declares
        want = settings.config_type_error(key, value)
        if want:
            raise files.FileError('%s: %s: expected %s, found %s' % (path, key, want, json_repr(value)))
    return cfg


def json_repr(value):
    import json
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + '...'


class Claim(object):
    """A run folder held by this process (the lock is released by :meth:`release`).

    ``fresh``: the folder held none of this run's files before (a new run, or a resume into
    an empty folder); ``started``: set when training begins. A fresh claim abandoned before
    it started (bad flags or data found after the claim) leaves nothing: :meth:`abandon`."""

    def __init__(self, path, fd, fresh=False, created=False, made_lock=False):
        self.path, self.fd, self.fresh, self.created, self.started = path, fd, fresh, created, False
        self.made_lock = made_lock

    def abandon(self):
        """Remove what this claim wrote (only when fresh and not started), then release."""
        try:
            if self.fresh and not self.started:
                names = [n for n in os.listdir(self.path) if _ours(n) and n != SWEEP_LOG]
                _remove(self.path, names)
            if (self.fresh and not self.started) or self.made_lock:
                os.remove(os.path.join(self.path, LOCK_FILE))
            if self.created and not self.started and not os.listdir(self.path):
                os.rmdir(self.path)
        except OSError:
            pass
        finally:
            self.release()

    def release(self):
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None


def _lock(out):
    path = os.path.join(out, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise files.os_error(e, out, 'cannot write in it') from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        try:
            holder = os.pread(fd, 64, 0).decode('ascii', 'replace').strip() or '?'
        finally:
            os.close(fd)
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise files.FileError('%s: in use by another irnn-chainer run (pid %s holds %s); wait for '
                                  'it to end or choose another --out' % (out, holder, path)) from None
        raise files.os_error(e, path, 'cannot lock it') from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, ('%d\n' % os.getpid()).encode(), 0)
    except OSError as e:
        os.close(fd)
        raise files.os_error(e, path, 'cannot write in it') from None
    return fd


def _remove(out, names):
    for name in names:
        path = os.path.join(out, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def _ours(name):
    return name in RUN_FILES or snapshot_number(name) is not None or bool(_LEFTOVER.match(name))


def _few(names):
    names = sorted(names)
    return ', '.join(names[:3]) + (' and %d more' % (len(names) - 3) if len(names) > 3 else '')


def claim(out, force=False, resume_from=None, run_id=None, log=print):
    """Make ``out`` this run's folder (see the module docstring); returns a :class:`Claim`.

    ``resume_from``: the folder of the resumed run (None for a new run); ``run_id``: the
    resumed run's id. A new run's folder is empty of our files afterwards, so that the
    caller writes config.json, the mark, first."""
    if os.path.lexists(out) and not os.path.isdir(out):
        raise files.FileError('--out %s: expected a folder for the run, found %s'
                              % (out, files.kind_of(out)))
    created = not os.path.isdir(out)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise files.os_error(e, out, 'cannot create the run folder') from None
    made_lock = not os.path.lexists(os.path.join(out, LOCK_FILE))
    fd = _lock(out)
    held = Claim(out, fd, created=created, made_lock=made_lock)
    try:
        held.fresh = _check_and_clear(out, force, resume_from, run_id, log)
    except BaseException:
        held.fresh = created
        held.abandon()
        raise
    return held


def _check_and_clear(out, force, resume_from, run_id, log):
    try:
        names = [n for n in os.listdir(out) if n != LOCK_FILE]
    except OSError as e:
        raise files.os_error(e, out, 'cannot list it') from None
    marked = CONFIG_FILE in names
    if marked:  # our killed runs' temporary files: ours to remove, now that we hold the lock
        leftovers = [n for n in names if _LEFTOVER.match(n)]
        if leftovers:
            _remove(out, leftovers)
            log('%s: removed the leftovers of an interrupted run (%s)' % (out, _few(leftovers)))
            names = [n for n in names if n not in leftovers]
    same = resume_from is not None and os.path.abspath(resume_from) == os.path.abspath(out)
    if same:
        return False
    if resume_from is not None:  # resuming into another folder: empty, or this same run
        others = [n for n in names if n != SWEEP_LOG]
        if not others:
            return True
        if marked:
            theirs = read_config(out).get('run_id')
            if run_id is not None and theirs == run_id:
                return False
            raise files.FileError('--out %s holds another run (its own %s): resuming writes only into '
                                  'the run\'s own folder or an empty one' % (out, CONFIG_FILE))
        raise files.FileError('--out %s holds files that are not an irnn-chainer run\'s (%s): resuming '
                              'writes only into the run\'s own folder or an empty one' % (out, _few(others)))
    foreign = [n for n in names if not (marked and _ours(n)) and n != SWEEP_LOG]
    snaps = [n for n in names if snapshot_number(n) is not None]
    if not force:
        if foreign:
            raise files.FileError('%s holds files that are not an irnn-chainer run\'s (%s): choose an '
                                  'empty folder, or --force to start a run beside them' % (out, _few(foreign)))
        if marked and snaps:
            raise files.FileError('%s already holds a run (up to %s): use --resume %s to continue it, '
                                  'or --force to start over in it' % (out, max(snaps, key=snapshot_number), out))
    # --force, or our run that never reached a snapshot: remove our previous run's files
    previous = [n for n in names if n != SWEEP_LOG and (
        _ours(n) if marked else (n in RUN_FILES or snapshot_number(n) is not None))]
    if previous:
        _remove(out, previous)
        log('%s: starting over: removed the previous run\'s %s' % (out, _few(previous)))
    return True


def new_run_id():
    return uuid.uuid4().hex
