"""A run's weights: find them, load them into a model, and a run's model with its newest
weights (:func:`load_run_model`, for evaluate and predict).

Every file is read by the safe loaders (files.py, runfolder.py: pickles refused); weights
that do not fit the model are one line naming the file.
"""
import os

from irnn_chainer import files
from irnn_chainer.model import rnn as model_mod
from irnn_chainer.run import runfolder
from irnn_chainer.data import sources
from irnn_chainer.compat import api
from irnn_chainer.errors import UsageError

#: what a model.npz is, for the one-line errors of the safe loader
MODEL_EXPECTED = 'model weights (a model.npz of irnn-chainer train)'
#: where the model lives inside a trainer snapshot
IN_SNAPSHOT = 'updater/model:main/'


def find_snapshot(path):
    """The snapshot file for ``--resume PATH``: the file itself, or the latest one in a run folder."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise UsageError('--resume %s: not found (expected a run folder or a snapshot file)' % path)
    snaps = runfolder.snapshots(path)
    if not snaps:
        raise UsageError('--resume: no %s* file in %s (the run never reached a snapshot: start it '
                         'again with the same command, no --force needed)' % (runfolder.SNAPSHOT_PREFIX, path))
    return snaps[0]


def load_weights(arrays, target, source, path_in_file=''):
    """Deserialize the (safely read) arrays of ``source`` into ``target``; one line when they
    do not fit (another --model, --unit or layers)."""
    try:
        api.load_npz(arrays, target, path_in_file=path_in_file)
    except (KeyError, ValueError, TypeError) as e:
        raise files.FileError('%s: its weights do not fit this model (expected the --model, --unit and '
                              'layers it was trained with; %s)' % (source, str(e).strip().splitlines()[0][:160]))


def load_file(model, path):
    """Load ``path`` (a trainer snapshot or a model.npz) into the loss-wrapped ``model``."""
    if os.path.basename(path).startswith(runfolder.SNAPSHOT_PREFIX):
        load_weights(runfolder.load_snapshot(path), model, path, IN_SNAPSHOT)
    else:
        load_weights(files.load_npz(path, MODEL_EXPECTED), model.predictor, path)
    return path


def init_weights(model, path, log=print):
    """Load the weights of another run (its folder, a snapshot or a model.npz) into
    ``model``: a new run that starts where that one was, with its own settings."""
    source = path
    if os.path.isdir(path):
        source = os.path.join(path, runfolder.MODEL_FILE)
        if not os.path.exists(source):
            snaps = runfolder.snapshots(path)
            if not snaps:
                raise UsageError('--init-from %s: expected a run folder with weights (its %s or a %s* file), '
                                 'found none' % (path, runfolder.MODEL_FILE, runfolder.SNAPSHOT_PREFIX))
            source = snaps[0]
    if not os.path.exists(source):
        raise UsageError('--init-from %s: not found (expected a run folder, a snapshot or a model.npz)' % path)
    load_file(model, source)
    log('initial weights from %s' % source)
    return source


#: weight files of a run that may be named instead of its folder (evaluate, predict, load)
WEIGHT_FILES = (runfolder.MODEL_FILE, runfolder.EMA_MODEL_FILE)


def split_run(path):
    """(run folder, weights file or None) for a run folder or one of its weight files: a
    snapshot, its model.npz or its model_ema.npz (--ema's averaged weights)."""
    if os.path.isfile(path):
        name = os.path.basename(path)
        if runfolder.snapshot_number(name) is not None or name in WEIGHT_FILES:
            return os.path.dirname(os.path.abspath(path)), path
        raise UsageError('%s: expected a run folder or one of its weight files (%s*, %s), got another file'
                         % (path, runfolder.SNAPSHOT_PREFIX, ', '.join(WEIGHT_FILES)))
    return path, None


def newest_weights(run_dir):
    """The run's newest weights: its newest snapshot (a killed run's model.npz is older),
    else model.npz."""
    snaps = runfolder.snapshots(run_dir)
    if snaps:
        return snaps[0]
    path = os.path.join(run_dir, runfolder.MODEL_FILE)
    if not os.path.lexists(path):
        raise files.FileError('%s: expected a trained run, found no weights (no %s* and no %s): train '
                              'it first, or give the folder of a run that has them'
                              % (run_dir, runfolder.SNAPSHOT_PREFIX, runfolder.MODEL_FILE))
    return path


def load_run_model(run_dir, device=None, data=None, cfg=None):
    """(cfg, model, weights_path): the run's settings (its config.json) and its model, loss
    wrapper included, with its newest weights (or those of the weights file ``run_dir``
    names: a snapshot, model.npz or model_ema.npz), on ``device`` (default: the run's).
    ``data``: the :class:`sources.RunData` the model is for (default: what config.json says of
    the run's data; nothing is read). ``cfg``: the run's settings, when the caller has
    already read them (config.json is then not read again)."""
    run_dir, weights_file = split_run(run_dir)
    cfg = dict(cfg) if cfg is not None else runfolder.read_config(run_dir)
    if device is not None:
        cfg['device'] = device
    model = model_mod.for_run(cfg, data if data is not None else sources.from_config(cfg))
    path = load_file(model, weights_file or newest_weights(run_dir))
    api.to_device(model, api.get_device(cfg['device']))
    return cfg, model, path
