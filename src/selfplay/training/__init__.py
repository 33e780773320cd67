"""Training: one stage, two trainers, the same plan.

- :mod:`selfplay.training.plan`: tokens per example, steps for a budget, the order of examples.
- :mod:`selfplay.training.sft`: TRL's ``SFTTrainer`` (``train.trainer: trl``; GPU, packing,
  LoRA, chat templates, ``accelerate launch``).
- :mod:`selfplay.training.plain`: a minimal PyTorch loop (``train.trainer: plain``), several
  times faster for a ~1M-parameter model on a CPU.

:func:`fit` trains a model on a list of examples (a budget of supervised tokens in steps of
``tokens_per_step``: :func:`~selfplay.training.plan.plan_matched`, so arms match on steps and
supervised tokens) or on a :class:`Mixture` (a budget of all tokens on batches drawn from named
sources by their shares), with either trainer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from selfplay.config import LoraConfig, TrainConfig
from selfplay.engine.models import uses_chat_template
from selfplay.tasks import Example
from selfplay.training.plain import mixed_examples, train_mixture, train_planned
from selfplay.training.plan import (
    StepPlan,
    TrainResult,
    count_supervised_tokens,
    count_tokens,
    plan_matched,
    plan_order,
    plan_steps,
)
from selfplay.training.sft import (
    StepBar,
    build_trainer,
    launch_command,
    launch_training,
    packed_rows_collator,
    sync_free_trainer_class,
    train_result,
    train_sft,
)


@dataclass
class Mixture:
    """Training data drawn by shares from named sources (with replacement), e.g. the climb's
    newest round, older rounds and U; a budget over it counts all tokens, prompts included."""

    sources: dict[str, list[Example]]
    shares: dict[str, float]
    capped: tuple[str, ...] = ()
    """Sources that ``train.max_epochs`` caps (the rounds' kept sets; not U)."""

    def examples(self) -> list[Example]:
        return [e for v in self.sources.values() for e in v]


def fit(
    model,
    tok,
    data: list[Example] | Mixture,
    cfg: TrainConfig,
    *,
    budget: int,
    tokens_per_step: float,
    seed: int,
    work_dir: Path,
    device: str = "cpu",
    progress: str | None = None,
    lora: LoraConfig | None = None,
    chat_template: str = "auto",
) -> dict:
    """Train ``model`` in place with ``cfg.trainer``; returns its record: ``steps``, ``tokens``
    (all tokens processed), ``supervised_tokens``, ``batch_size``, ``final_loss`` and
    ``first_loss`` (over the last and the first steps), ``seconds``,
    ``capped_by_max_epochs`` (and the batch's ``mix`` for a mixture). Nothing to train (no
    examples, or a zero budget) trains nothing and says so in ``note``."""
    trl = dict(work_dir=work_dir, device=device, lora=lora, chat_template=chat_template)
    if isinstance(data, Mixture):
        return _fit_mixture(model, tok, data, cfg, budget, seed, progress, trl)
    supervised = count_supervised_tokens(tok, data, uses_chat_template(tok, chat_template))
    plan = plan_matched(supervised, budget, tokens_per_step, cfg.max_epochs, cfg.num_processes)
    if not plan.steps:
        return dict(NOTHING_TRAINED)
    if cfg.trainer == "plain":
        r = train_planned(
            model, tok, data, plan, seed=seed, lr=cfg.lr, warmup=cfg.warmup, decay=cfg.decay,
            loss=cfg.loss, progress=progress,
        )  # fmt: skip
        result = TrainResult(
            tokens=r["tokens"], steps=plan.steps, examples=len(data),
            epochs=plan.steps * plan.batch_size / len(data), final_loss=r["loss"],
            seconds=r["seconds"], batch_size=plan.batch_size, first_loss=r.get("first_loss"),
        )  # fmt: skip
    else:
        result = train_sft(
            model, tok, data, cfg, budget_tokens=0, seed=seed, progress=progress, plan=plan, **trl
        )
    order = plan_order(len(data), plan.steps, plan.batch_size, seed)
    return asdict(result) | {
        "supervised_tokens": sum(supervised[i] for i in order),
        # max_epochs stopped the stage short of its budget (the bench's table says so).
        "capped_by_max_epochs": plan.capped,
    }


def _fit_mixture(model, tok, data: Mixture, cfg, budget, seed, progress, trl: dict) -> dict:
    if cfg.trainer == "plain":
        r = train_mixture(
            model, tok, data.sources, data.shares, tokens=budget, batch_size=cfg.batch_size,
            lr=cfg.lr, warmup=cfg.warmup, decay=cfg.decay, seed=seed, loss=cfg.loss,
            progress=progress, max_epochs=cfg.max_epochs, capped=data.capped,
        )  # fmt: skip
        if not r["steps"]:
            return dict(NOTHING_TRAINED) | {"mix": r["mix"]}
        return {
            "tokens": r["tokens"], "steps": r["steps"], "batch_size": cfg.batch_size,
            "final_loss": r["loss"], "first_loss": r.get("first_loss"), "seconds": r["seconds"],
            "mix": r["mix"], "capped_by_max_epochs": r["capped_by_max_epochs"],
        }  # fmt: skip
    mixed = mixed_examples(data.sources, data.shares, seed)
    if not mixed:
        return dict(NOTHING_TRAINED)
    r = train_sft(model, tok, mixed, cfg, budget_tokens=budget, seed=seed, progress=progress, **trl)
    return asdict(r) | {"capped_by_max_epochs": False}


NOTHING_TRAINED = {
    "tokens": 0,
    "steps": 0,
    "examples": 0,
    "epochs": 0.0,
    "final_loss": None,
    "first_loss": None,
    "seconds": 0.0,
    "batch_size": 0,
    "supervised_tokens": 0,
    "capped_by_max_epochs": False,
    "note": "no training data (nothing kept): model unchanged",
}


__all__ = [
    "NOTHING_TRAINED",
    "Mixture",
    "StepBar",
    "StepPlan",
    "TrainResult",
    "build_trainer",
    "count_supervised_tokens",
    "count_tokens",
    "fit",
    "launch_command",
    "launch_training",
    "packed_rows_collator",
    "plan_matched",
    "plan_order",
    "plan_steps",
    "sync_free_trainer_class",
    "train_result",
    "train_sft",
]
