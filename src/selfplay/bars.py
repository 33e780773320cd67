"""Progress of long work that a person can follow wherever the output goes.

On a terminal, a tqdm bar (rate and ETA). Elsewhere (a log file, CI, a cluster job's output),
one plain line every :data:`LINE_EVERY` seconds and one at the end, so a log never sits silent
for a whole stage; ``SELFPLAY_PROGRESS_LINES`` (seconds) changes the interval. In a process that
runs for someone else (a bench's worker), :func:`report_to` sends every bar to a small JSON file
instead, which the driver reads to show that run's progress (:func:`read_report`);
:func:`mirror_to` writes that file beside the bar a person sees (``selfplay run``: so that
``selfplay summary`` and ``inspect`` in another shell can say what the run is doing).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

LINE_EVERY = 30.0
PROGRESS_FILE = "progress.json"  # where a run reports its bars for a bench driver
REPORT_EVERY = 1.0  # seconds between a reporting bar's writes
_report: Path | None = None
_mirror: Path | None = None


def mirror_to(path: str | Path | None) -> None:
    """Every bar made after this in this process also writes its state to ``path`` (``None``:
    stop), while it shows as it would."""
    global _mirror
    _mirror = Path(path) if path is not None else None


def report_to(path: str | Path | None) -> None:
    """Every bar made after this in this process writes its state to ``path`` (``None``: stop)."""
    global _report
    _report = Path(path) if path is not None else None


def read_report(path: str | Path) -> dict | None:
    """The last state a reporting bar wrote (``desc``, ``n``, ``total``, ``unit``, ``rate``,
    ``eta``, ``time``), or ``None`` if there is none or it cannot be read yet."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def describe(state: dict) -> str:
    """A reporting bar's state in a few words: ``train 3: 1,200/5,000 step, 45/s, ETA 80s``."""
    of = f"/{state['total']:,}" if state.get("total") else ""
    text = f"{state['desc']}: {state['n']:,}{of} {state['unit']}, {state['rate']:.1f}/s"
    if state.get("eta") is not None:
        text += f", ETA {state['eta']:.0f}s"
    return text


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

    def _measure(self, done: bool) -> tuple[float, float, float | None]:
        """``(seconds spent, units per second, seconds left or None)``."""
        spent = time.monotonic() - self.t0
        rate = self.n / spent if spent > 0 else 0.0
        left = None
        if not done and self.total and rate > 0:
            left = max(0.0, (self.total - self.n) / rate)
        return spent, rate, left

    def _line(self, done: bool = False) -> None:
        spent, rate, left = self._measure(done)
        of = f"/{self.total}" if self.total else ""
        eta = "" if left is None else f", ETA {left:.0f}s"
        tail = f", {self.postfix}" if self.postfix else ""
        state = f"done in {spent:.0f}s" if done else f"{spent:.0f}s"
        print(
            f"{self.desc}: {self.n}{of} {self.unit} ({rate:.1f} {self.unit}/s, {state}{eta}{tail})",
            file=self.file,
            flush=True,
        )


class ReportBar(LineBar):
    """A :class:`LineBar` whose "line" replaces a JSON file (atomically) about once a second."""

    def __init__(self, total: int | None, desc: str, unit: str, path: Path):
        super().__init__(total, desc, unit, REPORT_EVERY)
        self.path = path
        self._line()

    def close(self) -> None:
        self._line(done=True)

    def _line(self, done: bool = False) -> None:
        _, rate, left = self._measure(done)
        state = {
            "desc": self.desc, "n": self.n, "total": self.total, "unit": self.unit,
            "rate": rate, "eta": left, "done": done, "time": time.time(),
        }  # fmt: skip
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(state))
            os.replace(tmp, self.path)
        except OSError:  # progress is a courtesy: never the reason a run fails
            pass


class TeeBar:
    """A bar shown as usual that also reports its state to a file (:func:`mirror_to`)."""

    def __init__(self, shown, report: ReportBar):
        self.shown, self.report = shown, report

    def update(self, n: int = 1) -> None:
        self.shown.update(n)
        self.report.update(n)

    def set_postfix(self, **kw) -> None:
        self.shown.set_postfix(**kw)
        self.report.set_postfix(**kw)

    def close(self) -> None:
        self.shown.close()
        self.report.close()


def bar(total: int | None, desc: str | None, unit: str):
    """A progress bar for ``total`` units of work; ``desc=None``: none at all."""
    from tqdm.auto import tqdm

    if desc is None:
        return tqdm(total=total, disable=True)
    if _report is not None:
        return ReportBar(total, desc, unit, _report)
    if sys.stderr.isatty():
        shown = tqdm(total=total, desc=desc, unit=unit, leave=False)
    else:
        shown = LineBar(total, desc, unit, line_every())
    if _mirror is not None:
        return TeeBar(shown, ReportBar(total, desc, unit, _mirror))
    return shown


def line_every() -> float:
    """Seconds between progress lines off a terminal (``SELFPLAY_PROGRESS_LINES``)."""
    try:
        return float(os.environ.get("SELFPLAY_PROGRESS_LINES", LINE_EVERY))
    except ValueError:
        return LINE_EVERY
