"""Tasks by name. A task supplies problems, gold chains, the raw corpus and its verifier."""

from __future__ import annotations

from typing import TYPE_CHECKING

from selfplay.tasks.arith import ArithTask
from selfplay.tasks.base import Example, Problem, Task, split_of

if TYPE_CHECKING:
    from selfplay.config import RunConfig

TASKS = {"arith": ArithTask}


def make_task(cfg: RunConfig) -> Task:
    return TASKS[cfg.task.name].from_config(cfg)


__all__ = ["TASKS", "Example", "Problem", "Task", "make_task", "split_of"]
