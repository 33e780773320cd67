"""Schedules: what each round of the loop does. One runner (:mod:`selfplay.engine.loop`) executes the
same stages for every schedule; a schedule only plans.

- ``rounds`` (:mod:`selfplay.schedules.rounds`): a fixed number of rounds on a fixed pool of
  difficulties (optionally a curriculum over it, or filling each round's budget).
- ``frontier`` (:mod:`selfplay.schedules.frontier`): the climb past U: probe accuracy per
  difficulty, practise just past the largest difficulty solved, stop when it stalls.

Either runs with either practice method (``loop.method``: expert iteration or GRPO), any backend,
any trainer and any task. This module holds only names and data, so that the config and the tasks can read a
schedule's defaults without importing the schedules (which import both);
:mod:`selfplay.schedules.base` holds what a schedule plans with and returns.
"""

from __future__ import annotations

import importlib

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
    "frontier": {"climb_report"},
}
"""Bench and publishing options each schedule's runs support: a learning-rate search and a
compute-matched continuation need rounds of equal shape; a climb is published through its bench
(its final model, ``final.json``, is part of the result), whose report is the climb's (the
frontier each arm solves, not accuracy at equal steps)."""


EPOCH_CAPS = {"rounds": {"trl", "plain"}, "frontier": {"plain"}}
"""The trainers with which ``train.max_epochs`` can cap a schedule's training data (the
frontier's mixture is drawn by the plain trainer; TRL takes a drawn list)."""


def supports(schedule: str, option: str) -> bool:
    return option in SUPPORTS[schedule]


PRACTISED = {
    "rounds": ("loop.pool_difficulties", lambda loop: list(loop.pool_difficulties)),
    "frontier": ("loop.frontier.max_difficulty", lambda loop: [loop.frontier.max_difficulty]),
}
"""``(key, loop config -> difficulties)``: the practice difficulties a schedule may ask a task for
(the frontier: up to its ``max_difficulty``), for the task's config check."""


LABELLED = {"expert_iteration": True, "grpo": False}
"""Whether a practice method (``loop.method``) trains on labels it chose (expert iteration: a
round's labels and the share of them that is right) or on rewards (GRPO: its samples, scored)."""


def make_schedule(name: str):
    """The schedule called ``name`` (a :class:`selfplay.schedules.base.Schedule`)."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}")
    module, cls = SCHEDULES[name].split(":")
    return getattr(importlib.import_module(module), cls)()


__all__ = [
    "EPOCH_CAPS",
    "LABELLED",
    "PRACTISED",
    "SCHEDULES",
    "SUPPORTS",
    "TRAINING_DEFAULTS",
    "make_schedule",
    "supports",
]
