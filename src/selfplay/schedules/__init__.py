"""Schedules: what each round of the loop does. One runner (:mod:`selfplay.loop`) executes the
same stages for every schedule; a schedule only plans.

- ``rounds`` (:mod:`selfplay.schedules.rounds`): a fixed number of rounds on a fixed pool of
  difficulties (optionally a curriculum over it, or filling each round's budget).
- ``frontier`` (:mod:`selfplay.schedules.frontier`): the climb past U: probe accuracy per
  difficulty, practise just past the largest difficulty solved, stop when it stalls.

Either runs with either practice method (``loop.method``: expert iteration or GRPO), any backend,
any trainer and any task. This module holds only names and data, so that the config can read
a schedule's defaults without importing the schedules (which import the config).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from selfplay.loop import RunContext
    from selfplay.tasks import Example, Problem
    from selfplay.training import Mixture

SCHEDULES = {
    "rounds": "selfplay.schedules.rounds:RoundsSchedule",
    "frontier": "selfplay.schedules.frontier:FrontierSchedule",
}

TRAINING_DEFAULTS = {
    "rounds": {"trainer": "trl", "loss": "answer"},
    "frontier": {"trainer": "plain", "loss": "sequence"},
}
"""What ``train.trainer: null`` and ``train.loss: null`` mean on each schedule."""

SUPPORTS = {
    "rounds": {"lr_factors", "compute_match", "publish"},
    "frontier": set(),
}
"""Bench and publishing options each schedule's runs support: a learning-rate search and a
compute-matched continuation need rounds of equal shape; a climb is published through its bench
(its final model, ``final.json``, is part of the result)."""


def supports(schedule: str, option: str) -> bool:
    return option in SUPPORTS[schedule]


PRACTISED = {
    "rounds": ("loop.pool_difficulties", lambda loop: list(loop.pool_difficulties)),
    "frontier": ("loop.frontier.max_difficulty", lambda loop: [loop.frontier.max_difficulty]),
}
"""``(key, loop config -> difficulties)``: the practice difficulties a schedule may ask a task for
(the frontier: up to its ``max_difficulty``), for the task's config check."""


@dataclass
class RoundPlan:
    """What round ``k`` practises and trains (a schedule's answer to "what next?")."""

    problems: list[Problem]
    """Practice problems (none: the round generates nothing, e.g. a raw-data arm)."""
    select: Any
    """The filter stage: a ``FilterConfig`` or a function that marks samples and returns the kept."""
    model_dirs: list[Path]
    """The checkpoints that generate (the run's model first, then a committee's others)."""
    seed: int = 0
    """The round's generation seed."""
    train_seed: int = 0
    """The round's training seed (data order, mixture draws)."""
    greedy: bool = False
    """One greedy sample per problem and model (instead of ``generation.n`` sampled ones)."""
    fill: Any = None
    """A :class:`selfplay.stages.Fill` (keep drawing problems until the budget is met), or None."""
    note: dict = field(default_factory=dict)
    """Stored with the round's generation stats and its record (e.g. the curriculum's frontier)."""
    members: list[tuple[Path, Path]] = field(default_factory=list)
    """A committee's other models: ``(previous checkpoint, stage directory)`` each; they train on
    the same data as the run's model."""


class Schedule(Protocol):
    """A schedule plans; the runner runs the stages. Every method is a pure function of the run's
    config and its finished artifacts, so a resumed run plans the same rounds."""

    def seed_data(self, ctx: RunContext) -> tuple[list[Example] | Mixture, int]:
        """The seed stage's training data and budget."""

    def seed_eval(self, ctx: RunContext) -> list[Problem]:
        """The problems the seed model is evaluated on."""

    def after_seed(self, ctx: RunContext) -> dict:
        """Work after the seed stage (e.g. a committee's other seed models); returns the extra
        keys of the seed record, or what to add to it."""

    def plan(self, ctx: RunContext, k: int) -> RoundPlan | str:
        """Round ``k``'s plan, or why the run stops before it."""

    def training_data(self, ctx: RunContext, k: int, plan: RoundPlan) -> tuple[Any, int]:
        """Round ``k``'s training data (examples or a mixture) and budget, after its filter."""

    def eval_problems(
        self, ctx: RunContext, k: int, plan: RoundPlan, practice: dict
    ) -> list[Problem]:
        """The problems round ``k``'s model is evaluated on (``practice``: what the round's
        practice step returned, e.g. ``new_difficulty``)."""

    def summarize(
        self, ctx: RunContext, k: int, plan: RoundPlan, practice: dict, evaluation: dict
    ) -> dict:
        """The schedule's own keys of round ``k``'s record (they override the runner's;
        ``evaluation``: the round's evaluation block)."""

    def finish(self, ctx: RunContext, stop: str | None) -> None:
        """After the last round (``stop``: why the run stopped early, or None)."""


def make_schedule(name: str) -> Schedule:
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}")
    module, cls = SCHEDULES[name].split(":")
    return getattr(importlib.import_module(module), cls)()


__all__ = [
    "PRACTISED",
    "SCHEDULES",
    "SUPPORTS",
    "TRAINING_DEFAULTS",
    "RoundPlan",
    "Schedule",
    "make_schedule",
    "supports",
]
