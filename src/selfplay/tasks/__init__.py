"""Tasks by name. A task supplies problems, gold chains, the raw corpus and its verifier."""

from __future__ import annotations

from typing import TYPE_CHECKING

from selfplay.tasks.arith import ArithTask
from selfplay.tasks.base import Example, Problem, Task, split_of, verify_all
from selfplay.tasks.code import CodeTask
from selfplay.tasks.countdown import CountdownTask
from selfplay.tasks.gsm8k import GSM8KTask
from selfplay.tasks.mathtask import MathTask

if TYPE_CHECKING:
    from selfplay.config import RunConfig

TASKS = {
    "arith": ArithTask,
    "code": CodeTask,
    "countdown": CountdownTask,
    "gsm8k": GSM8KTask,
    "math": MathTask,
}


def make_task(cfg: RunConfig) -> Task:
    return TASKS[cfg.task.name].from_config(cfg)


__all__ = ["TASKS", "Example", "Problem", "Task", "make_task", "split_of", "verify_all"]
