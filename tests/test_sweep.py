"""irnn-chainer sweep: search spaces, the pruning extension, SQLite and a real PostgreSQL
server with two workers, and a worker killed mid-trial (its trial re-queued and resumed)."""
import json
import os
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

optuna = pytest.importorskip('optuna')

from irnn_chainer.commands import sweep  # noqa: E402
from irnn_chainer.run import train as train_mod  # noqa: E402
from irnn_chainer.commands.cli import main  # noqa: E402

from pgserver import new_database, postgres_server  # noqa: E402

TINY = ['--dataset', 'embedded', '--train-limit', '64', '--test-limit', '100', '--unit', '8',
        '--epoch', '2']
TINY_CLI = dict(dataset='embedded', train_limit=64, test_limit=100, unit=8, epoch=2)


def quiet(*a):
    pass


def last_accuracy(run_dir):
    log = json.load(open(os.path.join(run_dir, 'log')))
    return [e['validation/main/accuracy'] for e in log if 'validation/main/accuracy' in e][-1]


def wait_for_a_snapshot(worker, trial_dir, seconds=300):
    """Wait until the worker's trial folder holds a snapshot (the worker still running)."""
    deadline = time.time() + seconds
    while not (os.path.isdir(trial_dir) and any(f.startswith('snapshot_iter_') for f in os.listdir(trial_dir))):
        assert worker.poll() is None, worker.communicate()[0]
        assert time.time() < deadline
        time.sleep(0.05)
    return trial_dir


def steady_space(tmp_path):
    """A search space whose every draw trains through the long (60-epoch) trials below: they
    test re-queueing and resuming, which a trial pruned for a draw that diverged would skip.
    The default space (lr up to 1e-3, clip up to 5) can draw one whose 784-step recurrence
    overflows (CI, Python 3.13: the retry ended PRUNED instead of COMPLETE)."""
    path = tmp_path / 'steady.json'
    path.write_text(json.dumps({'lr': {'log': [1e-4, 1.2e-4]}, 'clip': {'uniform': [0.9, 1.1]},
                                'optimizer': {'choice': ['rmsprop']}}))
    return ['--space', str(path)]


def trial_outputs(out, *texts):
    """What the workers printed and each trial's train.out, for an assertion's message."""
    parts = list(texts)
    for d in sorted(os.listdir(out)) if os.path.isdir(out) else []:
        path = os.path.join(out, d, 'train.out')
        if os.path.exists(path):
            parts.append('--- %s:\n%s' % (path, open(path).read()[-3000:]))
    return '\n'.join(parts)


def worker_cmd(out, storage, *extra):
    return [sys.executable, '-m', 'irnn_chainer', 'sweep', '--out', out, '--storage', storage,
            '--study', 's'] + TINY + list(extra)


# --------------------------------------------------------------------------- search space

@pytest.mark.parametrize('space, words', [
    ({}, 'expected a JSON object'),
    ({'dropout': {'uniform': [0, 1]}}, "cannot sweep 'dropout'"),
    ({'lr': {'normal': [0, 1]}}, 'expected one of {"log"'),
    ({'lr': {'log': [0, 1e-3]}}, 'needs low > 0'),
    ({'lr': {'log': [1e-3, 1e-5]}}, 'low < high'),
    ({'lr': {'uniform': [1e-3]}}, 'low < high'),
    ({'unit': {'int': [10.5, 20]}}, 'needs integers'),
    ({'optimizer': {'choice': []}}, 'non-empty list'),
])
def test_bad_search_spaces_are_refused_in_one_line(tmp_path, capsys, space, words):
    path = tmp_path / 'space.json'
    path.write_text(json.dumps(space))
    rc = main(['sweep', '--out', str(tmp_path / 'sw'), '--space', str(path)] + TINY)
    err = capsys.readouterr().err
    assert rc == 2 and words in err and len(err.strip().splitlines()) == 1, err


def test_space_file_and_sweep_flag_conflicts(tmp_path, capsys):
    (tmp_path / 'bad.json').write_text('{"lr": ')
    assert main(['sweep', '--space', str(tmp_path / 'bad.json')] + TINY) == 2
    assert 'not valid JSON' in capsys.readouterr().err
    assert main(['sweep', '--space', str(tmp_path / 'missing.json')] + TINY) == 2
    assert 'cannot read' in capsys.readouterr().err
    # a flag that the space sweeps cannot also be fixed
    assert main(['sweep', '--out', str(tmp_path / 'sw'), '--lr', '1e-3'] + TINY) == 2
    assert '--lr is both given as a flag and swept' in capsys.readouterr().err
    assert main(['sweep', '--resume', 'x'] + TINY) == 2
    assert '--resume does not apply to a sweep' in capsys.readouterr().err
    assert main(['sweep', '--communicator', 'naive'] + TINY) == 2
    assert '--communicator does not apply to a sweep' in capsys.readouterr().err


def test_the_example_space_file_is_valid():
    here = os.path.dirname(os.path.abspath(__file__))
    space = sweep.load_space(os.path.join(here, '..', 'examples', 'sweep_space.json'))
    assert 'lr' in space


def test_bad_storage_urls_give_one_line(tmp_path, capsys):
    assert main(['sweep', '--out', str(tmp_path), '--storage', 'nonsense'] + TINY) == 2
    assert 'expected a URL' in capsys.readouterr().err
    with __import__('socket').socket() as s:  # a port where nothing listens
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    assert main(['sweep', '--out', str(tmp_path), '--storage',
                 'postgresql://u:secret@127.0.0.1:%d/db' % port] + TINY) == 2
    err = capsys.readouterr().err
    assert 'cannot open' in err and 'secret' not in err and len(err.strip().splitlines()) == 1
    assert main(['sweep', '--summary', '--out', str(tmp_path), '--study', 'nope']) == 2
    assert "no study 'nope'" in capsys.readouterr().err


# --------------------------------------------------------------------------- pruning

def test_pruning_extension_reports_and_prunes_below_the_median():
    study = optuna.create_study(direction='maximize',
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    key = 'validation/main/accuracy'

    def fake_trainer(epoch_detail, value):
        return types.SimpleNamespace(observation={key: value},
                                     updater=types.SimpleNamespace(epoch_detail=epoch_detail))

    t0 = study.ask()
    ext = sweep.OptunaPruning(t0, key)
    for epoch, acc in ((1, 0.5), (2, 0.7)):
        ext(fake_trainer(epoch, acc))
    study.tell(t0, 0.7)
    assert study.trials[0].intermediate_values == {100: 0.5, 200: 0.7}  # hundredths of an epoch

    better = study.ask()
    sweep.OptunaPruning(better, key)(fake_trainer(1, 0.6))  # above the median (0.5): goes on
    study.tell(better, 0.8)
    worse = study.ask()
    with pytest.raises(optuna.TrialPruned, match='epoch 1.00'):
        sweep.OptunaPruning(worse, key)(fake_trainer(1, 0.4))
    # no observation this iteration (no evaluation): nothing reported
    quiet_trial = study.ask()
    sweep.OptunaPruning(quiet_trial, key)(types.SimpleNamespace(observation={}, updater=None))
    assert study.trials[-1].intermediate_values == {}


# --------------------------------------------------------------------------- SQLite

def test_sqlite_sweep_records_each_trial_and_summary_ranks_them(tmp_path, capsys):
    out = str(tmp_path / 'sw')
    study = sweep.run_worker(TINY_CLI, out, 'one', 3, log=quiet)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ['COMPLETE'] * 3
    for t in trials:
        run_dir = os.path.join(out, 'trial-%04d' % t.number)
        assert t.user_attrs['out'] == os.path.abspath(run_dir)
        # the value Optuna holds is the run's own last test accuracy
        assert t.value == pytest.approx(last_accuracy(run_dir))
        cfg = json.load(open(os.path.join(run_dir, 'config.json')))
        assert cfg['lr'] == pytest.approx(t.params['lr']) and cfg['optimizer'] == t.params['optimizer']
    assert os.path.exists(os.path.join(out, 'optuna.db'))
    # a second worker on a study that is complete runs nothing
    again = sweep.run_worker(TINY_CLI, out, 'one', 3, log=quiet)
    assert len(again.get_trials()) == 3

    capsys.readouterr()
    assert main(['sweep', '--summary', '--out', out, '--study', 'one']) == 0
    text = capsys.readouterr().out
    assert "study 'one': 3 trials (3 complete)" in text
    best = max(trials, key=lambda t: t.value)
    first_row = [l for l in text.splitlines() if l[:1].isdigit()][0].split()
    assert int(first_row[0]) == best.number and float(first_row[1]) == pytest.approx(best.value, abs=1e-4)
    with open(os.path.join(out, 'sweep.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


# --------------------------------------------------------------------------- PostgreSQL

@pytest.fixture(scope='module')
def pg_url():
    with postgres_server() as url:
        yield url


def _study(url, name='s'):
    return optuna.load_study(study_name=name, storage=url)


def test_workers_starting_together_on_an_empty_database_all_get_in(pg_url):
    # They race to create Optuna's tables; the losers must retry, not fail.
    code = ('import sys; from irnn_chainer.commands import sweep; '
            'sweep.make_study(sweep.open_storage(sys.argv[1]), "race", "maximize"); print("ok")')
    for round_ in range(2):
        url = new_database(pg_url, 'race%d' % round_)
        procs = [subprocess.Popen([sys.executable, '-c', code, url], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, universal_newlines=True) for _ in range(4)]
        outs = [p.communicate(timeout=300)[0] for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, outs
        assert len(optuna.get_all_study_summaries(url)) == 1


def test_two_workers_share_one_postgres_study(tmp_path, pg_url):
    out = str(tmp_path / 'sw')
    cmd = worker_cmd(out, pg_url, '--trials', '4', '--study', 'two')
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    trials = _study(pg_url, 'two').get_trials()
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(numbers)))          # each trial once
    states = [t.state.name for t in trials]
    assert 'RUNNING' not in states and 'WAITING' not in states and 'FAIL' not in states
    counted = sum(s in ('COMPLETE', 'PRUNED') for s in states)
    assert 4 <= counted <= 5                                     # N, + (workers - 1) at most
    # both workers ran trials, and every trial ran in exactly one of them
    ran = [sorted(int(l.split()[1].rstrip(':')) for l in o.splitlines()
                  if l.startswith('trial ') and '=' in l) for o in outputs]
    assert all(ran) and sorted(ran[0] + ran[1]) == numbers
    for t in trials:
        if t.state.name == 'COMPLETE':
            assert t.value == pytest.approx(last_accuracy(os.path.join(out, 'trial-%04d' % t.number)))


def test_killed_worker_trial_is_requeued_and_resumed_exactly(tmp_path, pg_url):
    out = str(tmp_path / 'sw')
    long_run = ['--epoch', '60', '--train-limit', '160', '--test-limit', '50']
    cmd = (worker_cmd(out, pg_url, '--trials', '1', '--study', 'kill', '--heartbeat', '1') + long_run
           + steady_space(tmp_path))
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, start_new_session=True)
    trial0 = wait_for_a_snapshot(first, os.path.join(out, 'trial-0000'))
    os.killpg(first.pid, signal.SIGKILL)                         # no chance to clean up
    first.communicate()
    killed_at = max(int(f.split('_')[-1]) for f in os.listdir(trial0) if f.startswith('snapshot_iter_'))
    assert _study(pg_url, 'kill').trials[0].state.name == 'RUNNING'  # as the dead worker left it
    time.sleep(3)                                                # > the 2 s grace period

    second = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, timeout=600)
    assert second.returncode == 0, second.stdout
    trials = _study(pg_url, 'kill').get_trials()
    assert [t.state.name for t in trials] == ['FAIL', 'COMPLETE'], trial_outputs(out, second.stdout)
    retry = trials[1]
    assert retry.system_attrs['failed_trial'] == 0 and retry.params == trials[0].params
    assert 'retry of trial 0, resuming its snapshot' in second.stdout
    train_out = open(os.path.join(out, 'trial-0001', 'train.out')).read()
    assert 'resumed from' in train_out and 'trial-0000' in train_out
    assert killed_at < retry.user_attrs['iterations'] == 600

    # the resumed trial ends with exactly the parameters of one uninterrupted run
    straight = str(tmp_path / 'straight')
    cli = dict(TINY_CLI, epoch=60, train_limit=160, test_limit=50, **retry.params)
    train_mod.train(cli, straight, progress=False, log=quiet, table_out=open(os.devnull, 'w'))
    a = np.load(os.path.join(out, 'trial-0001', 'model.npz'))
    b = np.load(os.path.join(straight, 'model.npz'))
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k])


def test_ctrl_c_requeues_the_trial_and_the_next_run_resumes_it(tmp_path):
    out = str(tmp_path / 'sw')
    storage = 'sqlite:///%s' % (tmp_path / 'study.db')
    cmd = worker_cmd(out, storage, '--trials', '1', '--study', 'int', '--epoch', '60', '--train-limit',
                     '160', '--test-limit', '50', *steady_space(tmp_path))
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, start_new_session=True)
    trial0 = wait_for_a_snapshot(first, os.path.join(out, 'trial-0000'))
    first.send_signal(signal.SIGINT)
    text = first.communicate(timeout=120)[0]
    assert first.returncode == 0, text
    assert 'trial 0 interrupted: marked failed and queued again' in text
    trials = _study(storage, 'int').get_trials()
    assert [t.state.name for t in trials] == ['FAIL', 'WAITING']
    stopped_at = trials[0].user_attrs['iterations']
    assert 0 < stopped_at < 600
    # the interrupted trial left a snapshot of the very update it stopped after
    assert os.path.exists(os.path.join(trial0, 'snapshot_iter_%d' % stopped_at))

    second = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, timeout=600)
    assert second.returncode == 0, second.stdout
    trials = _study(storage, 'int').get_trials()
    assert [t.state.name for t in trials] == ['FAIL', 'COMPLETE'], trial_outputs(out, second.stdout)
    assert 'resumed from' in open(os.path.join(out, 'trial-0001', 'train.out')).read()
    assert trials[1].user_attrs['iterations'] == 600


def test_a_trial_that_diverges_is_pruned_and_the_sweep_goes_on(tmp_path):
    """The divergence guard (recovery.py) stops a sweep trial instead of rolling it back at a
    rate that was not drawn; the trial is PRUNED with the reason and the worker goes on."""
    path = tmp_path / 'space.json'
    path.write_text(json.dumps({'lr': {'log': [1e-3, 1.1e-3]}, 'optimizer': {'choice': ['adam']}}))
    space = sweep.load_space(str(path))
    cli = dict(dataset='embedded', train_limit=64, test_limit=16, iteration=4, log_interval=2,
               clip=0.0, skip_nonfinite=True)  # Adam ~1e-3 unclipped, 100 units: blows up at once
    out = str(tmp_path / 'sw')
    study = sweep.run_worker(cli, out, 'div', 2, space=space, log=quiet)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ['PRUNED', 'PRUNED']
    for t in trials:
        events = json.load(open(os.path.join(out, 'trial-%04d' % t.number, 'rollbacks.json')))['rollbacks']
        assert [e['action'] for e in events] == ['stop']
