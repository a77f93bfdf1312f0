"""A small progress bar for training epochs, on stderr.

On a terminal it redraws one line in place (``\\r``), at most every ``min_interval`` seconds::

    epoch 1/3 [########----------------]  156/469  33% 41.2 it/s eta 0:07  loss 0.412  acc 0.871

When the stream is not a terminal (a log file, a pipe, CI) it prints plain lines instead, at
most one every ``plain_interval`` seconds, plus a last one when the bar closes, so logs stay
short and readable. ``enabled=False`` turns it off entirely.
"""

from __future__ import annotations

import sys
import time


def format_duration(seconds):
    """``m:ss`` (or ``h:mm:ss``) for a number of seconds."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Progress over ``total`` steps, with running metrics.

    Parameters
    ----------
    total : int
        Number of steps in the whole bar (e.g. batches in the epoch).
    desc : str
        Label at the start of the line (``"epoch 1/3"``).
    initial : int
        Steps already done (a resumed epoch starts part-way).
    stream : file, default ``sys.stderr``
    enabled : bool
        False: print nothing.
    min_interval : float
        Seconds between redraws on a terminal.
    plain_interval : float
        Seconds between lines when the stream is not a terminal.
    clock : callable
        Returns seconds (``time.monotonic``); tests pass a fake one.

    Use as a context manager, or call :meth:`close`::

        with Progress(len(batches), desc="epoch 1/3") as bar:
            for ...:
                bar.update(loss=running_loss, acc=running_acc)
    """

    def __init__(
        self,
        total,
        desc="",
        *,
        initial=0,
        stream=None,
        enabled=True,
        min_interval=0.1,
        plain_interval=10.0,
        width=24,
        clock=time.monotonic,
    ):
        self.total = max(int(total), 0)
        self.desc = desc
        self.count = int(initial)
        self.stream = sys.stderr if stream is None else stream
        self.enabled = bool(enabled)
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.interval = min_interval if self.tty else plain_interval
        self.width = int(width)
        self.clock = clock
        self.metrics = {}
        self._start = clock()
        self._start_count = self.count
        # a terminal shows the bar at once; plain lines wait one interval (short epochs then
        # log just their final line)
        self._last_draw = None if self.tty else self._start
        self._closed = False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.close()
        else:
            self.abandon()

    def abandon(self):
        """Stop without a final line (an error is about to be reported): a terminal line is
        ended so the message starts on a fresh one."""
        if self._closed:
            return
        self._closed = True
        if self.enabled and self.tty and self._last_draw is not None:
            self.stream.write("\n")
            self.stream.flush()

    def update(self, n=1, **metrics):
        """Advance by ``n`` steps and set the running metrics shown on the line."""
        self.count += n
        self.metrics.update(metrics)
        if not self.enabled:
            return
        now = self.clock()
        due = self._last_draw is None or now - self._last_draw >= self.interval
        if due and self.count < self.total:
            self._draw(now)

    def close(self):
        """Draw the final state (and end the terminal line)."""
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        self._draw(self.clock(), final=True)

    def line(self, now=None):
        """The text of the current state (without ``\\r`` or newline)."""
        now = self.clock() if now is None else now
        elapsed = now - self._start
        done = self.count - self._start_count
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [self.desc] if self.desc else []
        if self.tty:
            filled = int(self.width * self.count / self.total) if self.total else self.width
            parts.append("[" + "#" * filled + "-" * (self.width - filled) + "]")
        digits = len(str(self.total))
        percent = 100 * self.count / self.total if self.total else 100.0
        parts.append(f"{self.count:>{digits}}/{self.total} {percent:3.0f}%")
        if rate > 0:
            parts.append(f"{rate:.1f} it/s")
            remaining = self.total - self.count
            if remaining > 0:
                parts.append(f"eta {format_duration(remaining / rate)}")
            else:
                parts.append(f"in {format_duration(elapsed)}")
        parts += [f"{name} {value:.4g}" for name, value in self.metrics.items()]
        return " ".join(parts)

    def _draw(self, now, final=False):
        self._last_draw = now
        text = self.line(now)
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K" + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
