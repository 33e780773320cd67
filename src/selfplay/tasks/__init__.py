"""Tasks by name. A task supplies problems, gold chains, the raw corpus and its verifier.

A new task implements :class:`selfplay.tasks.base.Task` (everything it needs is in that file) and
is added to ``TASKS`` here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from selfplay.errors import ConfigError
from selfplay.tasks.arith import ArithTask
from selfplay.tasks.base import (
    Example,
    Problem,
    Task,
    configured_difficulties,
    split_of,
    verify_all,
)
from selfplay.tasks.code import CodeTask
from selfplay.tasks.countdown import CountdownTask
from selfplay.tasks.gsm8k import GSM8KTask
from selfplay.tasks.mathtask import MathTask

if TYPE_CHECKING:
    from selfplay.sections import RunConfig

TASKS = {
    "arith": ArithTask,
    "code": CodeTask,
    "countdown": CountdownTask,
    "gsm8k": GSM8KTask,
    "math": MathTask,
}


def check_config(cfg: RunConfig) -> None:
    """The task-specific checks of a run config (its name, difficulties, options): a one-line
    :class:`ConfigError`, before any data is read."""
    if cfg.task.name not in TASKS:
        valid = ", ".join(sorted(TASKS))
        raise ConfigError(f"task.name: unknown task {cfg.task.name!r}; valid: {valid}")
    TASKS[cfg.task.name].check_config(cfg.task, cfg.raw, configured_difficulties(cfg))


def make_task(cfg: RunConfig) -> Task:
    """The configured task, after :func:`check_config`."""
    check_config(cfg)
    return TASKS[cfg.task.name].from_config(cfg.task)


__all__ = [
    "TASKS",
    "Example",
    "Problem",
    "Task",
    "check_config",
    "make_task",
    "split_of",
    "verify_all",
]
