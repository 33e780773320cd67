"""The stages of the loop. Each is a function of explicit inputs that writes its artifact into a
stage directory (``seed/`` or ``iter_<k>/``) under a temporary name and renames it into place, and
returns at once, reading the artifact back, when it already exists: a killed run resumes at the
first stage whose artifact is missing.

    stage       reads                               writes
    generate    model_dir, problems                 completions.parquet, generate.json
    verify      completions.parquet, problems       verified.parquet, verify.json
    filter      verified.parquet                    samples.parquet (every chain, its verdict and
                                                    the filter's decision), kept.parquet
    train       init_dir, examples, token budget    model/, train.json
    evaluate    model_dir, test problems            eval.json, eval_samples.parquet (the greedy
                                                    generations, with verdicts)

Once ``filter`` has written ``samples.parquet`` the two intermediate chain files are removed
(``samples.parquet`` holds all they held). ``selfplay.engine.loop`` calls the stages in this order.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from selfplay.config import FilterConfig, RunConfig, TrainConfig
from selfplay.engine import artifacts
from selfplay.engine.evaluation import evaluate
from selfplay.engine.filters import filter_samples
from selfplay.engine.metrics import eval_block, merge_generation_stats
from selfplay.engine.models import (
    count_params,
    init_model,
    load_for_generation,
    load_for_training,
)
from selfplay.engine.sampling import generate_samples, needs_verdicts, sample_record, verify_samples
from selfplay.engine.sources import unique_tokens
from selfplay.engine.tracking import trainer_tracking
from selfplay.tasks import Example, Problem, Task
from selfplay.training import Mixture, fit

# The committee's j-th model runs on seed ``seed + MEMBER_SEED * j``: far from other runs' seeds.
MEMBER_SEED = 10007

STOP_ENV = "SELFPLAY_STOP_AFTER"
"""Name of a stage (e.g. ``iter_001/generate``) after which the run stops as if killed: for tests."""


class StageInterrupt(RuntimeError):
    """Raised after the stage named in ``SELFPLAY_STOP_AFTER`` finishes."""


def mark_done(stage_dir: Path, stage: str) -> None:
    """Called when a stage has written its artifact; stops the run here if ``STOP_ENV`` says so."""
    name = f"{Path(stage_dir).name}/{stage}"
    if os.environ.get(STOP_ENV) == name:
        raise StageInterrupt(f"stopped after {name} ({STOP_ENV})")


ARTIFACTS = {
    "generate": ("completions.parquet", "generate.json"),
    "verify": ("verified.parquet", "verify.json"),
    "filter": ("samples.parquet", "kept.parquet"),
    "train": ("model", "train.json"),
    "evaluate": ("eval.json",),
}
_CHAIN_STAGES = ("generate", "verify", "filter")


def is_done(stage: str, stage_dir: Path) -> bool:
    """Whether ``stage``'s artifact is in ``stage_dir`` (for generate and verify: or the artifact of
    a later chain stage, since filter removes the intermediate files)."""
    later = _CHAIN_STAGES[_CHAIN_STAGES.index(stage) :] if stage in _CHAIN_STAGES else (stage,)
    return any(all((Path(stage_dir) / a).exists() for a in ARTIFACTS[s]) for s in later)


# A Parquet file needs a schema: an empty kept set is stored as one placeholder row with no problem.
EMPTY_KEPT = {
    "problem_id": "",
    "difficulty": 0,
    "prompt": "",
    "text": "",
    "kept": False,
    "filter_reason": "placeholder: nothing kept",
}


# ------------------------------------------------------------------------------------------------
# generate -> verify -> filter


@dataclass
class Fill:
    """Fill the budget (``loop.fill_budget``): after the first draw, keep drawing new problems
    until the kept chains hold ``quota_tokens`` unique tokens (``earlier_tokens`` of them from
    earlier rounds' kept sets) or ``max_draws`` extra draws were made."""

    quota_tokens: int
    earlier_tokens: int
    max_draws: int
    draw: Callable[[int, set[str]], list[Problem]]
    """``(draw number from 1, ids drawn so far) -> new problems`` (none: stop)."""


def _kept_tokens(tok, samples: list[dict]) -> int:
    kept = [Example(s["prompt"], s["text"], "", 0, "") for s in samples if s["kept"]]
    return unique_tokens(tok, kept)


def generate_chains(
    cfg: RunConfig,
    task: Task,
    model_dirs: list[Path],
    problems: list[Problem],
    stage_dir: Path,
    *,
    seed: int,
    device: str,
    progress: bool = True,
    fill: Fill | None = None,
    greedy: bool = False,
    note: dict | None = None,
) -> dict:
    """Sample ``generation.n`` chains per problem (one greedy chain with ``greedy``) from each
    checkpoint in ``model_dirs`` (a committee: each sample records its ``model``, and the ``j``-th
    model samples on ``seed + MEMBER_SEED * j``), plus the configured resampling, rationalization
    and ``fill``; returns the generation stats.

    Strategies that decide by verdicts verify as they go (:func:`selfplay.engine.sampling.needs_verdicts`);
    otherwise the verdicts are left to :func:`verify_chains`. ``note`` is stored with the stats."""
    stage_dir = Path(stage_dir)
    if is_done("generate", stage_dir):
        return artifacts.read_json(stage_dir / "generate.json")
    verify = needs_verdicts(cfg)
    samples, stats = [], None
    for j, model_dir in enumerate(model_dirs):
        model, tok = load_for_generation(cfg, model_dir, device)
        got, got_stats = generate_samples(
            model, tok, task, problems, cfg, seed=seed + MEMBER_SEED * j, progress=progress,
            verify=verify, greedy=greedy,
        )  # fmt: skip
        for s in got:
            s["model"] = j
            s["sample_idx"] += j * (1 if greedy else cfg.generation.n)
        samples += got
        stats = got_stats if stats is None else merge_generation_stats(stats, got_stats)
    if fill is not None:
        stats = _fill_budget(cfg, task, model, tok, problems, samples, stats, fill, seed, progress)
    stats["prefill_tokens"] = prefill_tokens(tok, samples)
    artifacts.write_parquet(stage_dir / "completions.parquet", samples)
    artifacts.write_json(stage_dir / "generate.json", {**stats, **(note or {})})
    mark_done(stage_dir, "generate")
    return artifacts.read_json(stage_dir / "generate.json")


def prefill_tokens(tok, samples: list[dict]) -> int:
    """Prompt tokens of every sample (what each generation call prefilled)."""
    prompts = [s["generation_prompt"] or s["prompt"] for s in samples]
    return sum(map(len, tok(prompts, add_special_tokens=False)["input_ids"])) if prompts else 0


def _fill_budget(cfg, task, model, tok, problems, samples, stats, fill: Fill, seed, progress):
    """Draw new problems and sample them until the kept chains hold ``fill.quota_tokens``."""
    filter_samples(samples, cfg.filters)
    drawn = {p.id for p in problems}
    draws = 0
    have = fill.earlier_tokens + _kept_tokens(tok, samples)
    while have < fill.quota_tokens and draws < fill.max_draws:
        draws += 1
        more = fill.draw(draws, drawn)
        if not more:
            break
        drawn |= {p.id for p in more}
        extra, more_stats = generate_samples(
            model, tok, task, more, cfg, seed=seed + 7_777 * draws, progress=progress
        )
        samples += extra
        filter_samples(samples, cfg.filters)
        stats = merge_generation_stats(stats, more_stats)
        have = fill.earlier_tokens + _kept_tokens(tok, samples)
    stats["fill"] = {"quota_tokens": fill.quota_tokens, "unique_tokens": have, "extra_draws": draws}
    return stats


def verify_chains(task: Task, problems: list[Problem], stage_dir: Path) -> dict:
    """Give every generated chain that has no verdict yet its verdict (step by step), against its
    problem among ``problems``; returns ``{"verified": n, "seconds": s}``."""
    stage_dir = Path(stage_dir)
    if is_done("verify", stage_dir):
        path = stage_dir / "verify.json"
        return artifacts.read_json(path) if path.exists() else {"verified": 0, "seconds": 0.0}
    samples = artifacts.read_parquet(stage_dir / "completions.parquet")
    t0 = time.perf_counter()
    n = verify_samples(task, samples, problems)
    out = {"verified": n, "seconds": time.perf_counter() - t0}
    artifacts.write_parquet(stage_dir / "verified.parquet", samples)
    artifacts.write_json(stage_dir / "verify.json", out)
    mark_done(stage_dir, "verify")
    return out


def filter_chains(
    select: FilterConfig | Callable[[list[dict]], list[dict]], stage_dir: Path
) -> list[dict]:
    """Mark every verified chain kept or not, with its reason (``samples.parquet``), and write
    the kept ones (``kept.parquet``); returns all samples. ``select``: the filters of
    :func:`selfplay.engine.filters.filter_samples`, or a function that marks the samples and returns
    the kept ones (e.g. :func:`selfplay.engine.filters.choose_labels`)."""
    stage_dir = Path(stage_dir)
    if not is_done("filter", stage_dir):
        samples = artifacts.read_parquet(stage_dir / "verified.parquet")
        kept = select(samples) if callable(select) else filter_samples(samples, select)
        artifacts.write_parquet(stage_dir / "samples.parquet", samples)
        artifacts.write_parquet(stage_dir / "kept.parquet", kept or [EMPTY_KEPT])
        for name in ("completions.parquet", "verified.parquet"):
            (stage_dir / name).unlink(missing_ok=True)
        mark_done(stage_dir, "filter")
    return artifacts.read_parquet(stage_dir / "samples.parquet")


# ------------------------------------------------------------------------------------------------
# train, evaluate


def train_model(
    cfg: RunConfig,
    train_cfg: TrainConfig,
    init_dir: Path | None,
    data: list[Example] | Mixture,
    budget: int,
    tokens_per_step: float,
    stage_dir: Path,
    *,
    seed: int,
    device: str,
    progress: str | None = None,
    lora=None,
    note: dict | None = None,
) -> dict:
    """Train the checkpoint in ``init_dir`` (``None``: a new model as ``cfg.model`` says, on
    ``cfg.seed``) with ``train_cfg.trainer`` on ``data``: a list of examples for ``budget``
    supervised tokens in steps of about ``tokens_per_step`` supervised tokens each
    (:func:`selfplay.training.plan_matched`: the same budget and step size give the same steps
    and supervised tokens whatever the data, at most ``train_cfg.max_epochs`` passes), or a
    :class:`~selfplay.training.Mixture` for ``budget`` tokens. Saves ``model/`` and returns
    ``train.json``: the trainer's account, the model's size and how much of the data was unique.
    With nothing to train the model is saved unchanged. ``note`` is stored with the record."""
    stage_dir = Path(stage_dir)
    if is_done("train", stage_dir):
        return artifacts.read_json(stage_dir / "train.json")
    if init_dir is None:
        model, tok = init_model(cfg, device)
    else:
        model, tok = load_for_training(cfg, init_dir, device)
    with trainer_tracking(cfg, stage_dir.name) as report:
        # Tracking comes first so that a value set in train.sft still wins.
        tracked = dataclasses.replace(train_cfg, sft={**report, **train_cfg.sft})
        result = fit(
            model, tok, data, tracked, budget=budget, tokens_per_step=tokens_per_step, seed=seed,
            work_dir=stage_dir / ".trainer", device=device, progress=progress, lora=lora,
            chat_template=cfg.model.chat_template,
        )  # fmt: skip
    artifacts.save_model_dir(stage_dir / "model", model, tok)
    examples = data.examples() if isinstance(data, Mixture) else data
    distinct = {(e.prompt, e.completion) for e in examples}
    result |= {
        "params": count_params(model),
        "budget": budget,
        "selfplay_examples": sum(e.source == "selfplay" for e in examples),
        "distinct_examples": len(distinct),
        "unique_tokens": unique_tokens(tok, examples),
        # How often the average distinct example was seen (1.0: each once).
        "reuse": result["steps"] * result["batch_size"] / len(distinct) if distinct else 0.0,
        **(note or {}),
    }
    artifacts.write_json(stage_dir / "train.json", result)
    shutil.rmtree(stage_dir / ".trainer", ignore_errors=True)
    mark_done(stage_dir, "train")
    return result


def evaluate_model(
    cfg: RunConfig,
    task: Task,
    tests: list[Problem],
    model_dir: Path,
    stage_dir: Path,
    *,
    seed: int,
    device: str,
    progress: bool = True,
) -> dict:
    """Greedy accuracy (and pass@k, maj@k) of the checkpoint in ``model_dir`` on ``tests``;
    returns ``eval.json``: ``{"eval": metrics, "seconds": s}``."""
    stage_dir = Path(stage_dir)
    if is_done("evaluate", stage_dir):
        return artifacts.read_json(stage_dir / "eval.json")
    model, tok = load_for_generation(cfg, model_dir, device)
    t0 = time.perf_counter()
    greedy: list = []
    metrics = evaluate(model, tok, task, tests, cfg, seed=seed, progress=progress, samples=greedy)
    greedy = [sample_record(p, c, v, 0, "eval-greedy", p.prompt) for p, c, v in greedy]
    out = {"eval": eval_block(cfg, metrics), "seconds": time.perf_counter() - t0}
    # The greedy generations behind the accuracies, so that "acc d4 = 0.00" can be read.
    if greedy:
        artifacts.write_parquet(stage_dir / "eval_samples.parquet", greedy)
    artifacts.write_json(stage_dir / "eval.json", out)
    mark_done(stage_dir, "eval")
    return out


def seed_train_config(cfg: RunConfig) -> TrainConfig:
    """The seed stage trains with the round settings but its own learning rate, and repeats U as
    often as its budget asks (``train.max_epochs`` is for the rounds)."""
    return dataclasses.replace(cfg.train, lr=cfg.seed_train.lr, max_epochs=None)
