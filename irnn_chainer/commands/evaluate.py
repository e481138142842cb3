"""``irnn-chainer evaluate``: a run's test loss and accuracy (regression: MSE and the
constant prediction's), on its own test split, with its newest weights."""
import time

import chainer
from chainer.training import extensions

from irnn_chainer.run import runfolder
from irnn_chainer import settings
from irnn_chainer.data import sources
from irnn_chainer.compat import api
from irnn_chainer.run.train import convert
from irnn_chainer.model.weights import load_run_model, split_run


def evaluate(run_dir, data_dir=None, dataset=None, batchsize=1000, device=None, log=print,
             allow_changed_data=False):
    """Test loss and accuracy of a run, on its own test split, with its newest weights: the
    newest snapshot (a killed run's model.npz is older), else model.npz. ``run_dir`` may also
    be one snapshot file of the run. Data that differ from the run's (config.json's sha256)
    are refused unless ``allow_changed_data``."""
    folder, _ = split_run(run_dir)
    cfg = runfolder.read_config(folder)
    settings.check_evaluate_flags(cfg, data_dir, dataset)
    if data_dir is not None:
        cfg['data_dir'] = data_dir
    if dataset is not None:
        cfg['dataset'] = dataset
    if device is not None:
        cfg['device'] = device
    dev = api.get_device(cfg['device'])
    data = sources.load(cfg, folder, log=log)
    sources.check_same(cfg, data, allow_changed_data)
    _, model, model_path = load_run_model(run_dir, device=cfg['device'], data=data, cfg=cfg)
    it = chainer.iterators.SerialIterator(data.test, batchsize, repeat=False, shuffle=False)
    t0 = time.time()
    reporter = chainer.Reporter()  # Evaluator reports through the current reporter
    reporter.add_observer('main', model)
    with reporter:
        result = extensions.Evaluator(it, model, converter=convert, device=dev).evaluate()
    out = {'loss': float(result['main/loss']), 'accuracy': float(result.get('main/accuracy', float('nan'))),
           'n': len(data.test), 'model': model_path, 'seconds': time.time() - t0}
    if 'main/baseline' in result:  # regression: MSE of the constant prediction
        out['baseline'] = float(result['main/baseline'])
    return out
