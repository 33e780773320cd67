"""Progress of long work that a person can follow wherever the output goes.

On a terminal, a tqdm bar (rate and ETA). Elsewhere (a log file, CI, a cluster job's output),
one plain line every :data:`LINE_EVERY` seconds and one at the end, so a log never sits silent
for a whole stage; ``SELFPLAY_PROGRESS_LINES`` (seconds) changes the interval.
"""

from __future__ import annotations

import os
import sys
import time

LINE_EVERY = 30.0


class LineBar:
    """tqdm's ``update`` / ``set_postfix`` / ``close``, written as a line now and then."""

    def __init__(self, total: int | None, desc: str, unit: str, every: float, file=None):
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.file = file or sys.stderr
        self.n, self.postfix = 0, ""
        self.t0 = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._line()

    def set_postfix(self, **kw) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kw.items())

    def close(self) -> None:
        if self.n:
            self._line(done=True)

    def _line(self, done: bool = False) -> None:
        spent = time.monotonic() - self.t0
        rate = self.n / spent if spent > 0 else 0.0
        of = f"/{self.total}" if self.total else ""
        eta = ""
        if not done and self.total and rate > 0:
            eta = f", ETA {max(0.0, (self.total - self.n) / rate):.0f}s"
        tail = f", {self.postfix}" if self.postfix else ""
        state = f"done in {spent:.0f}s" if done else f"{spent:.0f}s"
        print(
            f"{self.desc}: {self.n}{of} {self.unit} ({rate:.1f} {self.unit}/s, {state}{eta}{tail})",
            file=self.file,
            flush=True,
        )


def bar(total: int | None, desc: str | None, unit: str):
    """A progress bar for ``total`` units of work; ``desc=None``: none at all."""
    from tqdm.auto import tqdm

    if desc is None:
        return tqdm(total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit, leave=False)
    every = float(os.environ.get("SELFPLAY_PROGRESS_LINES", LINE_EVERY))
    return LineBar(total, desc, unit, every)
