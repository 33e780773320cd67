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
    evaluate    model_dir, test problems            eval.json

Once ``filter`` has written ``samples.parquet`` the two intermediate chain files are removed
(``samples.parquet`` holds all they held). ``selfplay.loop`` calls the stages in this order.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from selfplay import artifacts
from selfplay.config import FilterConfig, RunConfig, TrainConfig
from selfplay.evaluation import evaluate
from selfplay.filters import filter_samples
from selfplay.metrics import eval_block, merge_generation_stats
from selfplay.models import count_params, init_model, load_for_generation, load_for_training
from selfplay.sampling import generate_samples, needs_verdicts, verify_samples
from selfplay.sources import unique_tokens
from selfplay.tasks import Example, Problem, Task
from selfplay.training import count_tokens, train_sft

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
    model_dir: Path,
    problems: list[Problem],
    stage_dir: Path,
    *,
    seed: int,
    device: str,
    progress: bool = True,
    fill: Fill | None = None,
    note: dict | None = None,
) -> dict:
    """Sample ``generation.n`` chains per problem from the checkpoint in ``model_dir`` (plus the
    configured resampling, rationalization and ``fill``); returns the generation stats.

    Strategies that decide by verdicts verify as they go (:func:`selfplay.sampling.needs_verdicts`);
    otherwise the verdicts are left to :func:`verify_chains`. ``note`` is stored with the stats."""
    stage_dir = Path(stage_dir)
    if is_done("generate", stage_dir):
        return artifacts.read_json(stage_dir / "generate.json")
    model, tok = load_for_generation(cfg, model_dir, device)
    verify = needs_verdicts(cfg)
    samples, stats = generate_samples(
        model, tok, task, problems, cfg, seed=seed, progress=progress, verify=verify
    )
    if fill is not None:
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
        stats["fill"] = {
            "quota_tokens": fill.quota_tokens,
            "unique_tokens": have,
            "extra_draws": draws,
        }
    artifacts.write_parquet(stage_dir / "completions.parquet", samples)
    artifacts.write_json(stage_dir / "generate.json", {**stats, **(note or {})})
    mark_done(stage_dir, "generate")
    return artifacts.read_json(stage_dir / "generate.json")


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


def filter_chains(filters: FilterConfig, stage_dir: Path) -> list[dict]:
    """Mark every verified chain kept or not, with its reason (``samples.parquet``), and write
    the kept ones (``kept.parquet``); returns all samples."""
    stage_dir = Path(stage_dir)
    if not is_done("filter", stage_dir):
        samples = artifacts.read_parquet(stage_dir / "verified.parquet")
        kept = filter_samples(samples, filters)
        artifacts.write_parquet(stage_dir / "samples.parquet", samples)
        artifacts.write_parquet(stage_dir / "kept.parquet", kept or [EMPTY_KEPT])
        for name in ("completions.parquet", "verified.parquet"):
            (stage_dir / name).unlink(missing_ok=True)
        mark_done(stage_dir, "filter")
    return artifacts.read_parquet(stage_dir / "samples.parquet")


# ------------------------------------------------------------------------------------------------
# train, evaluate

NOTHING_TRAINED = {
    "tokens": 0,
    "steps": 0,
    "examples": 0,
    "epochs": 0.0,
    "final_loss": None,
    "seconds": 0.0,
    "note": "nothing kept: model unchanged",
}


def train_model(
    cfg: RunConfig,
    train_cfg: TrainConfig,
    init_dir: Path | None,
    examples: list[Example],
    budget_tokens: int,
    stage_dir: Path,
    *,
    seed: int,
    device: str,
    progress: str | None = None,
    lora=None,
    note: dict | None = None,
) -> dict:
    """Train the checkpoint in ``init_dir`` (``None``: a new model as ``cfg.model`` says) on
    ``examples`` for ``budget_tokens`` tokens with ``train_cfg``; save it as ``model/`` and return
    ``train.json``: the trainer's account, the model's size and how much of the data was unique.
    With no examples the model is saved unchanged. ``note`` is stored with the record."""
    stage_dir = Path(stage_dir)
    if is_done("train", stage_dir):
        return artifacts.read_json(stage_dir / "train.json")
    if init_dir is None:
        model, tok = init_model(cfg, device)
    else:
        model, tok = load_for_training(cfg, init_dir, device)
    if examples:
        result = asdict(
            train_sft(
                model,
                tok,
                examples,
                train_cfg,
                budget_tokens=budget_tokens,
                seed=seed,
                work_dir=stage_dir / ".trainer",
                device=device,
                progress=progress,
                lora=lora,
                chat_template=cfg.model.chat_template,
            )
        )
    else:
        result = dict(NOTHING_TRAINED)
    artifacts.save_model_dir(stage_dir / "model", model, tok)
    unique = unique_tokens(tok, examples)
    result |= {
        "params": count_params(model),
        "selfplay_examples": sum(e.source == "selfplay" for e in examples),
        "distinct_examples": len({(e.prompt, e.completion) for e in examples}),
        "unique_tokens": unique,
        # How often each unique training token was seen (1.0: no repeats).
        "reuse": result["tokens"] / unique if unique else 0.0,
        **(note or {}),
    }
    artifacts.write_json(stage_dir / "train.json", result)
    shutil.rmtree(stage_dir / ".trainer", ignore_errors=True)
    mark_done(stage_dir, "train")
    return result


def capped_budget(
    budget_tokens: int, max_epochs: float | None, examples: list[Example], tok
) -> int:
    """``budget_tokens``, but at most ``max_epochs`` passes over ``examples`` (``None``: no cap)."""
    if max_epochs is None or not examples:
        return budget_tokens
    return min(budget_tokens, round(max_epochs * sum(count_tokens(tok, examples))))


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
    metrics = evaluate(model, tok, task, tests, cfg, seed=seed, progress=progress)
    out = {"eval": eval_block(cfg, metrics), "seconds": time.perf_counter() - t0}
    artifacts.write_json(stage_dir / "eval.json", out)
    mark_done(stage_dir, "eval")
    return out


def seed_train_config(cfg: RunConfig) -> TrainConfig:
    """The seed stage trains with the round settings but its own learning rate."""
    return dataclasses.replace(cfg.train, lr=cfg.seed_train.lr)
