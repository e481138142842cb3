"""How much memory a run needs at least, checked before anything is allocated.

A batch of 100000 sequences, 100000 hidden units or an adding problem of 10^8 steps used to
end in a MemoryError traceback after minutes; :func:`check` refuses them first, with the
figure. The estimate is a lower bound (what must be held at once, nothing else):

- the data: pixel MNIST 70000 x 784 bytes; the adding problem (N_train + N_test) x T x 2
  float32 (plus one float64 block of 10000 x T while it is generated); a ``--data`` file
  at least its size on disk;
- the parameters x 4 (weights, gradients, up to two optimizer slots);
- the training batch's states: T x batch x (sum of the layer sizes) floats, which the
  backward pass needs, fused or stepwise.
"""
import os


def available_bytes():
    """Memory available to a new allocation (MemAvailable), or None if unknown."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (ValueError, OSError, AttributeError):
        return None


def estimate(cfg):
    """(bytes, what): the least memory the run ``cfg`` needs, and the biggest part's name."""
    item = 8 if cfg.get('dtype') == 'float64' else 4
    layers = [int(h) for h in (cfg.get('layers') or [cfg.get('unit') or 100])]
    batch = int(cfg.get('batchsize') or 16)
    parts = {}
    if cfg.get('dataset') == 'adding':
        steps = int(cfg.get('length') or 150)
        n = int(cfg.get('train_limit') or 100000) + int(cfg.get('test_limit') or 10000)
        parts['the adding data (--length, --train-limit)'] = n * steps * 2 * 4 + min(n, 10000) * steps * 8
        n_in, n_out = 2, 1
    elif cfg.get('data'):
        steps = 1  # unknown before the file is read
        try:
            parts['the --data file'] = os.path.getsize(cfg['data'])
        except OSError:
            pass
        n_in, n_out = 256, 10
    else:
        steps = 784
        parts['MNIST'] = 70000 * 784
        n_in, n_out = 256, 10
    params, prev = 0, n_in
    for h in layers:
        params += prev * h + h * h + h
        prev = h
    params += prev * n_out + n_out
    parts['the parameters (--unit, --layers)'] = params * item * 4
    parts['the training batch\'s states (--batchsize x --unit x T)'] = steps * batch * sum(layers) * item
    return sum(parts.values()), max(parts, key=parts.get)


def gib(n):
    return '%.1f GiB' % (n / 2.0 ** 30)


def refusal(cfg, available=None):
    """Why the run ``cfg`` cannot fit in the memory available (one line), or None."""
    available = available_bytes() if available is None else available
    if not available:
        return None
    need, biggest = estimate(cfg)
    if need > available:
        return ('this run needs at least %s of memory (mostly %s) and %s is available: '
                'lower --batchsize, --unit/--layers or --length' % (gib(need), biggest, gib(available)))
    return None
