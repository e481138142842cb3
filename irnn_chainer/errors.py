"""The errors the user sees as one line (``irnn-chainer: error: ...``, exit 2).

Raised by the readers (data.py, sequences.py), the settings (settings.py), the model
factory and train.py (also a run that diverged and is not rolled back), and caught in one
place, ``cli.main``. Files' own errors are ``files.FileError``; devices' are
``compat.api.DeviceError``. This module imports nothing.
"""


class UsageError(Exception):
    """Bad flags or run folder: one line for the user, exit code 2."""


class DataError(Exception):
    """A data file or source is missing or not what it should be (one-line, user-facing)."""


class TrainingDiverged(Exception):
    """A diverged run that is not rolled back (recovery.py, train.py): one line, exit code 2."""


def shown(value):
    """A value in a message as the user typed it: text quoted ('abc'), numbers plain (3, 0.5),
    NumPy scalars as the Python values they hold (``'abc'``, not ``np.str_('abc')``)."""
    item = getattr(value, 'item', None)
    if callable(item) and getattr(value, 'shape', None) == ():
        value = item()
    return repr(value) if isinstance(value, str) else str(value)
