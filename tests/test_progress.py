"""irnn_chainer.progress: the one progress line for downloads and predict, with its ETA;
rewritten in place on a terminal, plain lines (no control codes) anywhere else."""
import io
import os
import pty
import re

import pytest

from irnn_chainer import progress


class Clock(object):
    def __init__(self, monkeypatch):
        self.now = 1000.0
        monkeypatch.setattr(progress.time, 'time', lambda: self.now)


class TTY(io.StringIO):
    def isatty(self):
        return True


def test_plain_output_has_no_control_codes_and_few_lines(monkeypatch):
    clock = Clock(monkeypatch)
    out = io.StringIO()
    p = progress.Progress('predict', 100, unit='sequences', stream=out, every=1, every_plain=10)
    for done in range(1, 101):
        clock.now += 0.5  # 50 s in all: a line every 10 s, then the last
        p.update(done)
    text = out.getvalue()
    assert '\r' not in text and '\x1b' not in text
    lines = text.splitlines()
    assert len(lines) == 5 and text.endswith('\n'), lines
    # at 10 s, 20 of 100 done: 0.5 s each, 80 left -> ETA 40 s; then at 20, 30, 40 s
    assert lines[0] == 'predict: 20 / 100 sequences ( 20 %), 10.0 s, ETA 40.0 s'
    assert lines[3] == 'predict: 80 / 100 sequences ( 80 %), 40.0 s, ETA 10.0 s'
    assert lines[-1] == 'predict: 100 / 100 sequences (100 %), 50.0 s'


def test_terminal_output_is_one_line_rewritten_in_place(monkeypatch):
    clock = Clock(monkeypatch)
    out = TTY()
    p = progress.Progress('t10k-images-idx3-ubyte.gz', 2000000, size=True, stream=out, every=0.25)
    for _ in range(20):
        clock.now += 0.125  # 100 kB every 1/8 s: 800 kB/s, a line every other chunk
        p.add(100000)
    text = out.getvalue()
    assert text.count('\n') == 1 and text.endswith('\n') and '\x1b' not in text
    updates = text.split('\r')
    assert len(updates) == 10, updates  # 9 updates (every 0.25 s), then the last line
    # at 0.5 s: 400 kB of 2 MB; 1.6 MB left at 800 kB/s -> 2 s
    assert updates[1] == 't10k-images-idx3-ubyte.gz: 400.0 kB / 2.0 MB ( 20 %), 800.0 kB/s, 0.5 s, ETA 2.0 s'
    assert updates[-1] == 't10k-images-idx3-ubyte.gz: 2.0 MB / 2.0 MB (100 %), 800.0 kB/s, 2.5 s\n'


def test_unknown_total_and_a_failure_note(monkeypatch):
    clock = Clock(monkeypatch)
    out = io.StringIO()
    p = progress.Progress('file.gz', None, size=True, stream=out)
    clock.now += 2
    p.add(5000)
    p.finish('failed')
    assert out.getvalue() == 'file.gz: 5.0 kB, 2.5 kB/s, 2.0 s failed\n'
    p.finish('again')  # written once
    assert out.getvalue().count('\n') == 1


def test_short_work_can_stay_silent(monkeypatch):
    Clock(monkeypatch)
    out = io.StringIO()
    p = progress.Progress('predict', 40, stream=out, every=60, every_plain=60, always_finish=False)
    for done in (10, 20, 30, 40):
        p(done, 40)
    assert out.getvalue() == ''


def test_a_real_terminal_is_detected():
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, 'w') as stream:
            assert progress.Progress('x', 1, stream=stream).tty
        assert not progress.Progress('x', 1, stream=io.StringIO()).tty
    finally:
        os.close(master)


@pytest.mark.parametrize('n, text', [(0, '0 B'), (999, '999 B'), (1000, '1.0 kB'), (9912422, '9.9 MB')])
def test_sizes(n, text):
    assert progress.fmt_size(n) == text
