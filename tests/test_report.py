"""irnn-chainer report on hand-made run folders: figures checked by hand."""
import json
import os

import pytest

from irnn_chainer.commands import report


def make_run(root, name, cfg, log):
    d = os.path.join(str(root), name)
    os.makedirs(d)
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump(cfg, f)
    with open(os.path.join(d, 'log'), 'w') as f:
        json.dump(log, f)
    return d


def record(epoch, acc, seconds, per_epoch=100):
    return {'epoch': epoch, 'iteration': epoch * per_epoch, 'main/loss': 1.0,
            'validation/main/loss': 2.0 - acc, 'validation/main/accuracy': acc, 'elapsed_time': seconds}


def test_report_table_plots_and_projection(tmp_path):
    a = make_run(tmp_path, 'irnn-pixel', {'model': 'irnn', 'permute': False, 'optimizer': 'adam', 'lr': 1e-4,
                                          'clip': 1.0, 'batchsize': 16, 'preset': 'fast'},
                 [record(1, 0.50, 3600), record(2, 0.60, 7200), record(3, 0.70, 10800)])
    b = make_run(tmp_path, 'lstm-perm', {'model': 'lstm', 'permute': True, 'optimizer': 'sgd', 'lr': 0.01,
                                         'clip': 1.0, 'batchsize': 16, 'lr_decay': 0.5, 'lr_decay_every': 8,
                                         'init_from': '/x/runs/old-run/snapshot_iter_300'},
                 [record(1, 0.40, 100), record(2, 0.30, 200)])
    out = str(tmp_path / 'rep')
    path, rows = report.write_report([a, b], out)
    assert os.path.exists(os.path.join(out, 'accuracy.png')) and os.path.exists(os.path.join(out, 'loss.png'))
    ra, rb = rows
    assert (ra['model'], ra['task'], ra['paper']) == ('irnn', 'pixel', 97.0)
    assert ra['best'] == pytest.approx(70.0) and ra['final'] == pytest.approx(70.0)
    assert (ra['epochs'], ra['iterations']) == (3, 300)
    # the 3 evaluations lie on a line of +10 points per 3600 s; 27 points to go -> 2.7 h
    assert '+10.00 points/h' in ra['projection'] and '2.7 h more' in ra['projection']
    assert (rb['task'], rb['paper'], rb['best']) == ('permuted', 36.0, pytest.approx(40.0))
    assert rb['projection'] == ''  # above the paper's 36 %: nothing to project
    assert rb['setting'] == ('sgd lr 0.01 x 0.5 every 8 epochs, clip 1.0, batch 16, float32; '
                             'from the weights of old-run/snapshot_iter_300')
    text = open(path).read()
    assert '| irnn-pixel | irnn | pixel |' in text and '97.00 %' in text and '70.00 %' in text
    assert 'accuracy.png' in text


def test_a_noisy_plateau_is_not_projected_as_a_climb(tmp_path):
    """A curve that rose, then jitters between 47 and 52 %: the last five evaluations
    (47 -> 52) would read as a steep climb; the slope over the last quarter is flat."""
    rise = [record(e, 0.02 * e, 60 * e) for e in range(1, 30)]
    flat = [record(e, 0.52 if e % 2 == 0 else 0.47, 60 * e) for e in range(30, 41)]
    d = make_run(tmp_path, 'blog', {'model': 'irnn', 'permute': False}, rise + flat)
    _, rows = report.write_report([d], str(tmp_path / 'rep'))
    # 40 evaluations: the last quarter is 10 intervals, 11 evaluations, symmetric about its middle
    assert rows[0]['projection'] == 'not improving over the last 11 evaluations'


def test_report_rejects_non_run(tmp_path):
    with pytest.raises(report.ReportError, match='no config.json'):
        report.write_report([str(tmp_path)], str(tmp_path / 'o'))


def test_report_regression_run(tmp_path):
    log = [{'epoch': 1, 'iteration': 10, 'main/loss': 0.2, 'validation/main/loss': 0.05,
            'validation/main/baseline': 0.167, 'elapsed_time': 5.0},
           {'epoch': 2, 'iteration': 20, 'main/loss': 0.1, 'validation/main/loss': 0.02,
            'validation/main/baseline': 0.167, 'elapsed_time': 10.0}]
    d = make_run(tmp_path, 'adding', {'task': 'regression', 'dataset': 'adding', 'length': 150,
                                      'optimizer': 'adam', 'lr': 1e-3, 'clip': 1.0, 'batchsize': 32}, log)
    path, rows = report.write_report([d], str(tmp_path / 'rep'))
    r = rows[0]
    assert r['task'] == 'adding T=150' and r['best'] is None and r['iterations'] == 20
    assert 'best 0.02, final 0.02' in r['projection'] and 'baseline 0.167' in r['projection']


def test_report_names_a_collapsed_run_instead_of_projecting(tmp_path):
    d = make_run(tmp_path, 'blew-up', {'model': 'irnn', 'permute': True},
                 [record(1, 0.50, 100), record(2, 0.59, 200), record(3, 0.13, 300), record(4, 0.19, 400)])
    _, rows = report.write_report([d], str(tmp_path / 'rep'))
    assert rows[0]['projection'] == ('dropped: final 19.00 % against the best 59.00 % at epoch 2, iteration 200 '
                                     '(40.0 points below its best; no projection)')
    d = make_run(tmp_path, 'at-chance', {'model': 'irnn', 'permute': True},
                 [record(1, 0.50, 100), record(2, 0.59, 200), record(3, 0.098, 300)])
    _, rows = report.write_report([d], str(tmp_path / 'rep2'))
    assert rows[0]['projection'] == ('collapsed: final 9.80 % against the best 59.00 % at epoch 2, iteration 200 '
                                     '(at chance: the training diverged; no projection)')


def test_a_finished_decayed_run_below_the_paper_is_not_projected(tmp_path):
    """Its rate has decayed to its end: the slope of its last, smallest steps says nothing of
    more epochs. The same log with epochs still planned, or at a constant rate, is projected."""
    log = [record(e, 0.90 + 0.01 * e, 3600 * e) for e in range(1, 6)]
    cosine = {'model': 'irnn', 'lr_schedule': 'cosine', 'per_epoch': 100}
    done = make_run(tmp_path, 'done', dict(cosine, epoch=5), log)
    going = make_run(tmp_path, 'going', dict(cosine, epoch=9), log)
    by_iters = make_run(tmp_path, 'by-iters', {'model': 'irnn', 'lr_decay': 0.5, 'iteration': 500}, log)
    constant = make_run(tmp_path, 'constant', {'model': 'irnn', 'epoch': 5, 'per_epoch': 100}, log)
    _, rows = report.write_report([done, going, by_iters, constant], str(tmp_path / 'rep'))
    assert rows[0]['projection'] == ("finished 2.00 points below the paper's 97.0 % (no projection: its rate "
                                     "has decayed to its end)")
    # +1 point an hour, 2 points to go
    assert rows[1]['projection'].startswith('+1.00 points/h over the last 5 evaluations') and '2 h more' in rows[1]['projection']
    assert rows[2]['projection'] == rows[0]['projection']
    assert rows[3]['projection'] == rows[1]['projection']


FULL = {'train_size': 60000, 'test_size': 10000}  # all of MNIST, as the paper


def curve(accs, seconds=60):
    """A log of one evaluation per epoch with these accuracies, ``seconds`` per epoch."""
    return [record(e, a, seconds * e) for e, a in enumerate(accs, 1)]


def test_report_opens_with_the_papers_table(tmp_path):
    """Each cell: the paper / the best --preset paper run / the best of our other runs by the
    final model (ours-b's 94 % beats ours-a's 93 %, though ours-a's best epoch scored 95 %), with
    its epochs, updates and time (hand-made logs); the blog's run beside the table, its best
    epoch beside its final figure. Only runs on all of MNIST of at least 10 epochs are in it: a
    2-epoch run and a run on a subset, though they score higher, are not."""
    runs = [
        make_run(tmp_path, 'paper-irnn-pixel', dict(FULL, model='irnn', preset='paper', epoch=50),
                 curve([0.098] * 12)),
        make_run(tmp_path, 'ours-a', dict(FULL, model='irnn', optimizer='rmsprop', epoch=12),
                 curve([0.5] * 10 + [0.95, 0.93])),
        make_run(tmp_path, 'ours-b', dict(FULL, model='irnn', optimizer='adam', epoch=12),
                 curve([0.85] * 11 + [0.94])),
        make_run(tmp_path, 'ours-short', dict(FULL, model='irnn', optimizer='sgd', epoch=2), curve([0.99] * 2)),
        make_run(tmp_path, 'ours-subset', dict(model='irnn', optimizer='sgd', epoch=12, train_size=20000,
                                               test_size=2000), curve([0.99] * 12)),
        make_run(tmp_path, 'lstm-perm', dict(FULL, model='lstm', permute=True, preset='paper', epoch=40),
                 curve([0.30] * 10, seconds=720)),
        make_run(tmp_path, 'blog', dict(FULL, model='irnn', preset='blog', epoch=200),
                 curve([0.11] * 9 + [0.105], 300)),
    ]
    with open(os.path.join(runs[5], 'snapshot_iter_1000'), 'wb') as f:
        f.write(b'x')
    path, rows = report.write_report(runs, str(tmp_path / 'rep'), command='irnn-chainer report r/* -o rep')
    text = open(path).read()
    assert 'Built by `irnn-chainer report r/* -o rep`.' in text
    assert text.index("## The paper's table") < text.index('## Every run')
    assert "on MNIST's 10000 test images" in text and '(5 of the 7 runs;' in text
    assert 'test sets of 2000 / 10000 images' in text  # the subset's run is tested on 2000
    lines = {l.split(' | ')[0]: l for l in text.splitlines() if l.startswith('| ')}
    assert lines['| IRNN'] == (
        '| IRNN | 97.0 % / 9.80 % (12 epochs, 1200 updates, 12.0 min, of 50 planned: stopped there; '
        '`paper-irnn-pixel`) / 94.00 % (12 epochs, 1200 updates, 12.0 min; `ours-b`) '
        '| 82.0 % / not run yet / not run yet |')
    assert lines['| LSTM'] == (
        '| LSTM | 65.0 % / not run yet / not run yet | 36.0 % / 30.00 % (10 epochs, 1000 updates, '
        '2.0 h, of 40 planned: continues (its snapshot is kept); `lstm-perm`) / not run yet |')
    assert lines['| RNN + ReLU'].startswith('| RNN + ReLU | not reported / not run yet')
    assert 'the 2015 blog\'s own setting' in text
    assert ('pixel 10.50 % (10 epochs, 1000 updates, 50.0 min, of 200 planned: stopped there; best epoch '
            '11.00 % (epoch 1); `blog`)') in text
    # the short and the subset's runs are in "Every run" only
    assert lines['| ours-short'].startswith('| ours-short | irnn | pixel |') and 'ours-short`' not in text
    assert '| ours-subset | irnn | pixel |' in text and '20000 train / 2000 test' in lines['| ours-subset']
    # table.png draws exactly the runs in the table: the model's colour, the column's style
    assert os.path.exists(os.path.join(str(tmp_path / 'rep'), 'table.png')) and '![the paper\'s table](table.png)' in text
    _, drawn = report.plot_table([report.load_run(d) for d in runs], rows, str(tmp_path / 'rep'))
    assert sorted(drawn) == sorted([('ours-b', 'tab:red', '-'), ('paper-irnn-pixel', 'tab:red', '--'),
                                    ('blog', 'tab:red', ':'), ('lstm-perm', 'tab:blue', '--')])


def test_runs_that_differ_only_by_seed_are_one_cell_mean_and_spread(tmp_path):
    """Three seeds of one setting (final 90, 91, 95 %: mean 92, sample s.d. sqrt(7) = 2.65;
    seed 2's best epoch 96 %, so best epochs 90, 91, 96: mean 92.33, s.d. sqrt(31/3) = 3.21;
    averaged weights 91, 92, 93 %: 92 ± 1) against one run of another setting at 91.5 %: the
    cell is the group's, with n and each seed; the same seeds on another device are one group."""
    base = dict(FULL, model='irnn', optimizer='rmsprop', lr=1e-4, epoch=10, ema=0.999)
    runs = []
    for seed, best, ema, device in ((0, 0.90, 0.91, '@numpy'), (1, 0.91, 0.92, '@cupy:0'), (2, 0.95, 0.93, '@numpy')):
        accs = [0.5] * 8 + [0.96 if seed == 2 else 0.5, best]
        log = [dict(r, **{'ema/main/accuracy': ema}) for r in curve(accs)]
        runs.append(make_run(tmp_path, 's%d' % seed, dict(base, seed=seed, device=device), log))
    runs.append(make_run(tmp_path, 'other-lr', dict(base, lr=2e-4), curve([0.915] * 10)))
    path, rows = report.write_report(runs, str(tmp_path / 'rep'))
    irnn = [l for l in open(path).read().splitlines() if l.startswith('| IRNN')][0]
    assert irnn == ('| IRNN | 97.0 % / not run yet / 92.00 ± 2.65 % over 3 seeds (seed 0: 90.00, seed 1: 91.00, '
                    'seed 2: 95.00; 10 epochs, 10.0 min on average; best epochs 92.33 ± 3.21 %; averaged '
                    'weights 92.00 ± 1.00 %; '
                    '`s0`, `s1`, `s2`) | 82.0 % / not run yet / not run yet |')
    assert [len(g) for g in report.group_runs(rows)] == [3, 1]


def test_report_takes_results_star_and_skips_what_is_not_a_run(tmp_path, capsys):
    """As `report results/*` gives them: run folders, folders of runs (results/ grouped), and
    a notes file, a folder of no runs and a missing name, each skipped with one line."""
    from irnn_chainer.commands import cli
    results = tmp_path / 'results'
    results.mkdir()
    a = make_run(results, 'a', dict(FULL, model='irnn'), curve([0.5]))
    (results / 'paper').mkdir()
    b = make_run(results / 'paper', 'b', dict(FULL, model='lstm'), curve([0.4]))
    (results / 'paper' / 'notes.md').write_text('not a run')
    (results / 'RUNS.md').write_text('# runs')
    (results / 'compare').mkdir()
    (results / 'compare' / 'compare.png').write_bytes(b'png')
    lines = []
    found = report.collect_runs([a, str(results / 'RUNS.md'), str(results / 'compare'), str(results / 'paper'),
                                 str(results / 'gone')], log=lines.append)
    assert found == [a, b]
    assert lines == ['report: skipping %s: not a run folder (no config.json; a file)' % (results / 'RUNS.md'),
                     'report: skipping %s: not a run folder (no config.json, and no run folder inside)'
                     % (results / 'compare'),
                     'report: skipping %s: missing (no such file or folder)' % (results / 'gone')]
    code = cli.main(['report', a, str(results / 'RUNS.md'), str(results / 'paper'), '-o', str(tmp_path / 'rep')])
    out, err = capsys.readouterr()
    assert code == 0 and err.strip().splitlines() == [lines[0]]
    assert '| a | irnn |' in open(str(tmp_path / 'rep' / 'report.md')).read() and '| b | lstm |' in \
        open(str(tmp_path / 'rep' / 'report.md')).read()
    with pytest.raises(report.ReportError, match='found none in'):
        report.collect_runs([str(results / 'RUNS.md')], log=lines.append)


@pytest.mark.parametrize('log, words', [
    ({'epoch': 1}, ['a JSON list of records', 'found a JSON dict']),
    ([1, 2], ['record 0', 'expected an object', 'found a JSON int']),
    ([{'iteration': 10, 'validation/main/loss': 1.0, 'validation/main/accuracy': 0.5}], ['record 0', 'epoch',
                                                                                        'found none']),
    ([{'epoch': 1, 'iteration': 10, 'validation/main/loss': 1.0, 'validation/main/accuracy': '0.5'}],
     ['record 0', 'validation/main/accuracy', 'expected a number', '"0.5"']),
    ('[{"epoch": 1,', ['a JSON list of records']),                    # cut short
])
def test_a_malformed_log_is_one_line_and_a_failure(tmp_path, capsys, log, words):
    from irnn_chainer.commands import cli
    d = os.path.join(str(tmp_path), 'bad')
    os.makedirs(d)
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump(dict(FULL, model='irnn'), f)
    with open(os.path.join(d, 'log'), 'w') as f:
        f.write(log if isinstance(log, str) else json.dumps(log))
    code = cli.main(['report', d, '-o', str(tmp_path / 'rep')])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and 'Traceback' not in err[0], err
    assert os.path.join(d, 'log') in err[0]
    for w in words:
        assert w in err[0], (w, err[0])
    assert not os.path.exists(str(tmp_path / 'rep' / 'report.md'))


def test_report_gives_the_averaged_weights_beside_the_trained_ones(tmp_path):
    log = [dict(record(e, a, 60 * e), **{'ema/main/accuracy': b})
           for e, a, b in ((1, 0.50, 0.40), (2, 0.60, 0.65), (3, 0.55, 0.62))]
    run = make_run(tmp_path, 'ema', {'model': 'irnn', 'optimizer': 'rmsprop', 'lr': 1e-4, 'clip': 1.0,
                                     'batchsize': 16, 'ema': 0.999, 'identity_decay': 0.5}, log)
    _, (row,) = report.write_report([run], str(tmp_path / 'rep'))
    assert row['best'] == pytest.approx(60.0)  # the table's figure stays the trained weights'
    assert row['setting'] == ('rmsprop lr 0.0001, identity decay 0.5, clip 1.0, batch 16, float32; averaged '
                              'weights (--ema 0.999): best 65.00 % (epoch 2), final 62.00 %')


def test_a_best_epoch_is_named_only_where_it_prints_higher():
    """47.694 and 47.691 both print as 47.69 %: no 'best epoch 47.69 %' beside a final 47.69 %."""
    assert not report._higher({'best': 47.694, 'final': 47.691})
    assert report._higher({'best': 47.70, 'final': 47.69})
