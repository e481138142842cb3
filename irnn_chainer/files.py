"""Every file irnn-chainer reads or writes goes through here: no pickles, one line per problem.

- :func:`load_npz` / :func:`load_npy`: NumPy files read with ``allow_pickle=False`` (a pickle
  can run any code when it is loaded; snapshots, models, permutations and users' data are
  shared and downloaded), every array read at once, so a truncated, empty, garbage or
  pickle-bearing file is a :class:`FileError` naming the file and what was expected.
- :func:`read_json`: a JSON object, or one line.
- :func:`require_file`: a regular file, or one line saying what is there instead (a folder,
  a FIFO, nothing): opening a FIFO would block, and "no such file" would be wrong.
- :func:`os_error`: an ``OSError`` (full disk, read-only file system, no permission) as one
  line naming the path and the system's words; the CLI uses it for any OSError that leaves
  a command.
- :func:`write_atomic` (and :func:`write_json`, :func:`write_bytes`, :func:`write_text`,
  :func:`save_npy`): a temporary file in the same folder, then ``os.replace``: a reader never
  sees half a file. Files get the user's umask, as any file they make.

This module imports NumPy only (irnn_chainer.data, which must not import Chainer, uses it too).
"""
import hashlib
import json
import os
import secrets
import stat

import numpy as np


class FileError(Exception):
    """A file is missing, unreadable, unwritable or not what it should be (one line)."""


def kind_of(path):
    """'a file', 'a folder', 'a FIFO (named pipe)', ..., or 'no such file' for ``path``."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return 'no such file'
    except OSError as e:
        return 'nothing readable (%s)' % (e.strerror or e)
    if stat.S_ISREG(mode):
        return 'a file'
    if stat.S_ISDIR(mode):
        return 'a folder'
    if stat.S_ISFIFO(mode):
        return 'a FIFO (named pipe)'
    if stat.S_ISSOCK(mode):
        return 'a socket'
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return 'a device'
    return 'not a regular file'


def require_file(path, expected):
    """Raise FileError unless ``path`` is a regular file (checked before opening it)."""
    kind = kind_of(path)
    if kind == 'no such file':
        raise FileError('%s: missing: expected %s, found no such file' % (path, expected))
    if kind != 'a file':
        raise FileError('%s: expected %s, found %s' % (path, expected, kind))


def os_error(e, path=None, doing=None):
    """One line for an OSError: the path, what was being done, the system's words."""
    path = path or getattr(e, 'filename', None) or '?'
    words = e.strerror or str(e) or type(e).__name__
    return FileError('%s: %s%s' % (path, (doing + ': ') if doing else '', words))


def what_is(path):
    """What a file holds, by its first bytes, for a message about a file that is not what was
    expected: 'a .npz archive', 'a single .npy array (not a .npz archive)', 'a Python pickle',
    'a text file (first line ...)', 'an empty file', ..."""
    try:
        with open(path, 'rb') as f:
            head = f.read(512)
    except OSError as e:
        return 'nothing readable (%s)' % (e.strerror or e)
    if not head:
        return 'an empty file'
    if head.startswith((b'PK\x03\x04', b'PK\x05\x06')):
        return 'a .npz (zip) archive'
    if head.startswith(b'\x93NUMPY'):
        return 'a single .npy array (not a .npz archive of named arrays)'
    if head[:1] == b'\x80' and 2 <= head[1:2][0] <= 5:
        return 'a Python pickle'
    if head.startswith(b'\x1f\x8b'):
        return 'a gzip file'
    if head.startswith(b'\x89PNG'):
        return 'a PNG image'
    if head.startswith(b'\xff\xd8\xff'):
        return 'a JPEG image'
    if head.startswith(b'\x89HDF'):
        return 'an HDF5 file'
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError as e:
        text = head[:e.start].decode('utf-8') if e.start >= len(head) - 3 else None
    if text is not None and all(c.isprintable() or c in '\t\r\n' for c in text):
        first = text.splitlines()[0] if text.strip() else ''
        return 'a text file (first line %r)' % (first[:40] + ('...' if len(first) > 40 else ''))
    return 'a file of another kind (first bytes %s)' % head[:8].hex()


def _first_line(e):
    text = str(e).strip()
    return '%s: %s' % (type(e).__name__, text.splitlines()[0]) if text else type(e).__name__


def _object_array(path, key, expected):
    if key:
        return FileError('%s: %s: expected a numeric array, found an object array, which only a pickle '
                         'can hold: refused, because loading a pickle can run code' % (path, key))
    return FileError('%s: expected %s, found an object array, which only a pickle can hold: '
                     'refused, because loading a pickle can run code' % (path, expected))


def load_npz(path, expected='a .npz file of numeric arrays'):
    """{name: ndarray} of a .npz file, every array read now, pickles refused."""
    require_file(path, expected)
    kind = what_is(path)
    if kind != 'a .npz (zip) archive':  # NumPy's own words would be of its internals
        raise FileError('%s: expected %s, found %s' % (path, expected, kind))
    try:
        with np.load(path, allow_pickle=False) as f:
            if not hasattr(f, 'files'):
                raise FileError('%s: expected %s, found a single .npy array' % (path, expected))
            arrays = {}
            for key in f.files:
                try:
                    arrays[key] = f[key]
                except ValueError as e:
                    if 'allow_pickle' in str(e) or 'Object arrays' in str(e):
                        raise _object_array(path, key, expected) from None
                    raise
    except FileError:
        raise
    except OSError as e:
        if getattr(e, 'errno', None) is not None:
            raise os_error(e, path, 'cannot read it') from None
        raise FileError('%s: expected %s, found a file NumPy cannot read (%s)'
                        % (path, expected, _first_line(e))) from None
    except Exception as e:  # BadZipFile, EOFError, ValueError, zlib.error, ...
        raise FileError('%s: expected %s, found a file NumPy cannot read (%s)'
                        % (path, expected, _first_line(e))) from None
    return arrays


def load_npy(path, expected='a .npy file of a numeric array'):
    """The ndarray of a .npy file, pickles refused."""
    require_file(path, expected)
    kind = what_is(path)
    if not kind.startswith('a single .npy array'):
        raise FileError('%s: expected %s, found %s' % (path, expected, kind.replace('(zip) ', '')))
    try:
        a = np.load(path, allow_pickle=False)
        if hasattr(a, 'files'):
            a.close()
            raise FileError('%s: expected %s, found a .npz archive' % (path, expected))
    except FileError:
        raise
    except ValueError as e:
        if 'allow_pickle' in str(e) or 'Object arrays' in str(e):
            raise _object_array(path, None, expected) from None
        raise FileError('%s: expected %s, found a file NumPy cannot read (%s)'
                        % (path, expected, _first_line(e))) from None
    except OSError as e:
        if getattr(e, 'errno', None) is not None:
            raise os_error(e, path, 'cannot read it') from None
        raise FileError('%s: expected %s, found a file NumPy cannot read (%s)'
                        % (path, expected, _first_line(e))) from None
    except Exception as e:
        raise FileError('%s: expected %s, found a file NumPy cannot read (%s)'
                        % (path, expected, _first_line(e))) from None
    return a


def read_json(path, expected='a JSON object'):
    """The dict in a JSON file, or FileError."""
    require_file(path, expected)
    try:
        with open(path, encoding='utf-8') as f:
            obj = json.load(f)
    except OSError as e:
        raise os_error(e, path, 'cannot read it') from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise FileError('%s: expected %s, found text that is not valid JSON (%s)'
                        % (path, expected, str(e).splitlines()[0])) from None
    if not isinstance(obj, dict):
        raise FileError('%s: expected %s, found a JSON %s' % (path, expected, type(obj).__name__))
    return obj


TEMP_PREFIX = '.tmp-'  # run folders know it (runfolder._LEFTOVER): an interrupted write's leftover


def _new_temp(directory, suffix):
    """A new empty file in ``directory``, created as ``open`` creates files: mode 0666 less the
    user's umask (``tempfile.mkstemp`` makes 0600, which the renamed file would keep)."""
    for _ in range(100):
        tmp = os.path.join(directory, TEMP_PREFIX + secrets.token_hex(6) + suffix)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError('%s: no free temporary name' % directory)  # pragma: no cover


def write_atomic(path, write, suffix=''):
    """``write(tmp_path)`` to a temporary file beside ``path``, then rename it to ``path``: a
    reader never sees half a file, and an interrupted write leaves the old file. The file gets
    the mode any new file of the user gets (0666 less the umask). Every file irnn-chainer
    writes whole goes through here (``compat`` takes it as an argument)."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = _new_temp(directory, suffix)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def write_bytes(path, blob, sync=True):
    """``blob`` to ``path`` atomically (flushed to disk first with ``sync``)."""
    def write(tmp):
        with open(tmp, 'wb') as f:
            f.write(blob)
            if sync:
                f.flush()
                os.fsync(f.fileno())
    write_atomic(path, write, suffix='.part')


def write_text(path, text):
    """``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode('utf-8'), sync=False)


def write_json(path, obj):
    def write(tmp):
        with open(tmp, 'w') as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write('\n')
            f.flush()
            os.fsync(f.fileno())
    write_atomic(path, write, suffix='.json')


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def sha256_arrays(*arrays):
    """sha256 over the dtypes, shapes and bytes of ``arrays``."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(('%s%s;' % (a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_npy(path, array):
    """``np.save`` written atomically (through a file object: np.save would add '.npy' to a name)."""
    def write(tmp):
        with open(tmp, 'wb') as f:
            np.save(f, array, allow_pickle=False)
    write_atomic(path, write, suffix='.npy')
