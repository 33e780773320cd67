"""What a schedule plans with and what it returns: the run's context, a round's plan, and the
protocol every schedule follows (:mod:`selfplay.schedules.rounds`,
:mod:`selfplay.schedules.frontier`). The runner (:mod:`selfplay.engine.loop`) executes the plans."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from selfplay.engine import artifacts
from selfplay.engine.rundir import round_dir
from selfplay.errors import ConfigError

if TYPE_CHECKING:
    from selfplay.sections import RunConfig
    from selfplay.tasks import Example, Problem, Task
    from selfplay.training import Mixture


@dataclass
class RunContext:
    """What every stage of a run reads: the config, the task, the fixed test set, U."""

    cfg: RunConfig
    task: Task
    tests: list[Problem]
    device: str
    raw: list[Example]
    u: dict
    """U's size, tokens and supervised tokens (``seed/raw.json``)."""
    progress: bool = True
    console: Any = None

    @property
    def run_dir(self) -> Path:
        return self.cfg.run_dir

    def record(self, k: int) -> dict:
        """The metrics of finished stage ``k`` (0: the seed stage)."""
        return artifacts.read_json(round_dir(self.run_dir, k) / "metrics.json")

    def checkpoint(self, k: int) -> Path:
        """Stage ``k``'s checkpoint (0: the seed model); a finished stage's that is gone is an error."""
        d = round_dir(self.run_dir, k) / "model"
        if not (d / "config.json").exists():
            hint = artifacts.repair_hint(d / "config.json")
            raise ConfigError(
                f"{d}: the checkpoint of a finished stage is missing"
                + (f"; {hint}" if hint else "")
            )
        return d

    def log(self, msg: str) -> None:
        if self.console is not None:
            self.console.print(msg)


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
    """A :class:`selfplay.engine.stages.Fill` (keep drawing problems until the budget is met), or None."""
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

    def after_seed(self, ctx: RunContext) -> None:
        """Work after the seed stage (e.g. the climb's start in the seed record, a committee's
        other seed models)."""

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
