"""On a CUDA device (``pytest -m gpu``): the CUDA whole update (cuda.WholeUpdate) at the
real size (H 100, V 256, T 784) against Chainer's own update on the CPU over several
updates, and the same bits run to run. The same comparison runs on the CPU emulator in
tests/test_cuda_whole.py."""
import numpy as np
import pytest

import irnn_chainer  # noqa: F401
from irnn_chainer.compat import api
from irnn_chainer.kernels import cuda

import test_cuda_whole as whole

pytestmark = pytest.mark.gpu


@pytest.fixture(scope='module')
def be():
    ok, why = api.cuda_status(0)
    if not ok:
        pytest.skip('needs a CUDA device: %s' % why)
    return cuda.CupyBackend()


@pytest.mark.parametrize('dtype, B, optimizer, lr, clip', [
    (np.float32, 16, 'sgd', 0.05, 1.0), (np.float32, 16, 'rmsprop', 1e-3, 1.0),
    (np.float64, 16, 'rmsprop', 1e-3, 1.0), (np.float32, 256, 'sgd', 0.05, 1.0)])
def test_whole_update_on_gpu_equals_chainers(be, dtype, B, optimizer, lr, clip):
    params, data, labels = whole.problem(100, 256, 784, 512, dtype)
    ref, got, u = whole.run_pair(be, params, data, labels, whole.batches_of(512, B, 3), 'relu', optimizer, lr, clip)
    worst = whole.compare(ref, got, whole.TOL[dtype])
    print(np.dtype(dtype).name, B, optimizer, u.plan, ' '.join('%s %.2g' % kv for kv in sorted(worst.items())))


def test_whole_update_checks_itself_on_the_device(be):
    for activation in ('relu', 'tanh'):
        diffs = cuda.whole_self_check(be, cuda.whole_plan(100, 256, 10, 784, np.float32, be.max_shared()), activation)
        print(activation, ' '.join('%s %.2g' % kv for kv in diffs.items()))
        assert max(diffs.values()) <= 1e-5


def test_whole_update_on_gpu_same_bits_run_to_run(be):
    runs = []
    for _ in range(2):
        params, data, labels = whole.problem(100, 256, 784, 64, np.float32)
        _, got, _ = whole.run_pair(be, params, data, labels, whole.batches_of(64, 16, 3), 'relu', 'rmsprop', 1e-3, 1.0)
        runs.append(got)
    for a, b in zip(*runs):
        for x, y in zip(a[2] + a[3], b[2] + b[3]):
            assert x.tobytes() == y.tobytes()


def test_whole_update_for_a_chainer_model_on_gpu(be):
    """The plug-in path on a device: whole_update_for() on a Chainer model moved to the GPU,
    against a twin updated by Chainer on the CPU (RMSprop, clipping, float32)."""
    import cupy
    params, data, labels = whole.problem(100, 256, 784, 64, np.float32)
    model, opt, byname = whole.chainer_setup(params, 'rmsprop')
    twin, topt, tbyname = whole.chainer_setup(params, 'rmsprop')
    api.to_device(model, api.get_device('@cupy:0'))
    u = cuda.whole_update_for(opt, 16, 784, backend=be)
    batches = whole.batches_of(64, 16, 3)
    ddata, dlabels = cupy.asarray(data), cupy.asarray(labels)
    order = cupy.asarray(np.concatenate(batches).astype(np.int32))
    for i, rows in enumerate(batches):
        u.update(ddata, dlabels, order, offset=16 * i, lr=opt.lr)
        cuda.finish_chainer_update(opt)
        loss = twin(data[rows], labels[rows])
        twin.cleargrads()
        loss.backward()
        topt.update()
    for n in cuda.WHOLE_PARAMS:
        p, q = byname['/' + n], tbyname['/' + n]
        assert whole.max_rel(p.array.get(), q.array) <= 1e-5, n
        assert whole.max_rel(p.update_rule.state['ms'].get(), q.update_rule.state['ms']) <= 1e-5, n
    s = u.read_stats()
    assert s['updates'] == 3 and s['skipped'] == 0
