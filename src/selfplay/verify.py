"""Verdicts: what a verifier says about one completion.

A verifier is a pure function ``(problem, completion) -> Verdict``. It parses model text itself
(never ``eval``), and is bounded in time and memory on any input: a megabyte of garbage gets a
verdict, not a hang or a crash.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["correct", "wrong", "unparseable", "timeout", "error"]
STATUSES: tuple[str, ...] = ("correct", "wrong", "unparseable", "timeout", "error")


@dataclass(frozen=True)
class StepMark:
    """One step of a chain and whether it checks out."""

    text: str
    ok: bool
    why: str = ""


@dataclass(frozen=True)
class Verdict:
    status: Status
    """``correct``: the final answer matches the gold answer; ``wrong``: it does not;
    ``unparseable``: no answer could be read; ``timeout``/``error``: the verifier gave up."""
    answer: str | None = None
    """The answer extracted from the completion, if any."""
    steps: tuple[StepMark, ...] = field(default_factory=tuple)
    why: str = ""
    """A one-line reason for any status other than ``correct``."""

    @property
    def steps_ok(self) -> bool:
        return all(s.ok for s in self.steps)

    @property
    def valid(self) -> bool:
        """Right answer reached by a chain whose every step checks out (and that has steps)."""
        return self.status == "correct" and len(self.steps) > 0 and self.steps_ok

    @property
    def first_bad_step(self) -> int | None:
        return next((i for i, s in enumerate(self.steps) if not s.ok), None)


class Deadline:
    """A wall-clock budget a verifier checks between steps."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def expired(self) -> bool:
        return time.monotonic() > self.end
