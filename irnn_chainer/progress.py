"""The progress line of work outside training (a download, ``predict``): done of total, the
percentage, the rate and the time left.

On a terminal the line is rewritten in place (``\\r``) at most every ``every`` seconds. On
anything else (a pipe, a log file) it has no terminal control codes: whole lines, at most one
every ``every_plain`` seconds, so a log gets a few lines rather than a line a second.
Training has its own display (Chainer's ProgressBar). This module imports nothing of ours.
"""
import sys
import time


def fmt_size(n):
    """Bytes for people: '512 B', '9.9 MB' (powers of 1000, as download sizes are given)."""
    for unit in ('B', 'kB', 'MB', 'GB'):
        if n < 1000 or unit == 'GB':
            return ('%d %s' % (n, unit)) if unit == 'B' else ('%.1f %s' % (n, unit))
        n /= 1000.0


def is_terminal(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress(object):
    """``label: done / total unit (pct %), rate, elapsed s, ETA s`` on ``stream`` (stderr).

    ``update(done)`` (or calling the object with ``(done, total)``, the callback form
    ``Predictor.predict`` takes) reports progress; ``finish(note)`` ends the line. ``size``:
    the counts are bytes (shown as kB/MB). ``total`` may be unknown (0 or None): then no
    percentage or ETA. ``always_finish``: the last line is written even when the work ended
    before the first line was due (a download says it is done; a short predict says nothing).
    """

    def __init__(self, label, total=None, unit='', size=False, stream=None, every=1.0, every_plain=10.0,
                 always_finish=True):
        self.label, self.total, self.unit, self.size = label, total or 0, unit, size
        self.stream = stream or sys.stderr
        self.tty = is_terminal(self.stream)
        self.every = every if self.tty else every_plain
        self.always_finish = always_finish
        self.start = self.last = time.time()
        self.done, self.shown, self.open_line = 0, False, False

    def _count(self, n):
        return fmt_size(n) if self.size else '%d' % n

    def line(self, now=None):
        """The progress line as it stands (no control codes, no newline)."""
        elapsed = max((now or time.time()) - self.start, 0.0)
        unit = (' ' + self.unit) if self.unit else ''
        if self.total:
            text = '%s: %s / %s%s (%3.0f %%)' % (self.label, self._count(self.done), self._count(self.total), unit,
                                                 100.0 * self.done / self.total)
        else:
            text = '%s: %s%s' % (self.label, self._count(self.done), unit)
        if self.size and elapsed > 0:
            text += ', %s/s' % fmt_size(self.done / elapsed)
        text += ', %.1f s' % elapsed
        if self.total and self.done < self.total:
            eta = elapsed / self.done * (self.total - self.done) if self.done else float('nan')
            text += ', ETA %.1f s' % eta
        return text

    def _write(self, text, end):
        self.stream.write(('\r' if self.tty and self.open_line else '') + text + ('\n' if end else ''))
        self.stream.flush()
        self.open_line = self.tty and not end
        self.shown = True

    def update(self, done, total=None):
        if total is not None:
            self.total = total
        self.done = done
        now = time.time()
        if self.total and done >= self.total:
            if self.shown or self.always_finish:
                self.finish()
            return
        if now - self.last >= self.every:
            self.last = now
            self._write(self.line(now), end=not self.tty)

    __call__ = update

    def add(self, n):
        self.update(self.done + n)

    def finish(self, note=''):
        """The last line (with ``note``, e.g. 'failed'), then a newline; written once."""
        if getattr(self, 'finished', False):
            return
        self.finished = True
        self._write(self.line() + ((' ' + note) if note else ''), end=True)
