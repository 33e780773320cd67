"""The learning rate of the rounds, chosen the same way for every arm of a bench (``lr_grid``).

For each arm and each learning rate of the grid, the arm's first ``lr_rounds`` rounds run from the
seed model of the bench's first seed (``<bench>/lr_search/<arm>/lr=<value>/``, ordinary resumable
run directories sharing that seed model by hard links). Each resulting model answers a validation
set carved out of the task's train split: the fixed hash-based validation quarter at U's
difficulties, minus U, the evaluation set (twins included) and every problem any of the grid's
runs generated on or could train on. The evaluation set never enters the choice. An arm's rounds
then train at the grid value its model answered best (ties: the first in the grid's order), for
every seed; ``lr_search.json`` records every accuracy and the choice, and the report shows it.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from selfplay import artifacts
from selfplay.bench_config import BenchConfig, arm_config
from selfplay.config import RunConfig
from selfplay.errors import ConfigError

GRID_EVAL = ["eval.n_per_difficulty=10", "eval.n_intermediate=null", "eval.k=0"]
"""A grid run's own test-set measurement is never read; kept small so it costs little."""


def grid_config(bench: BenchConfig, arm: str, lr: float) -> RunConfig:
    """One arm at one learning rate, its first ``lr_rounds`` rounds, on the first seed."""
    seed = bench.seeds[0]
    out = bench.bench_dir / "lr_search" / arm / f"lr={lr:g}"
    sub = replace(
        bench,
        arms={
            arm: [
                *bench.arms[arm],
                f"train.lr={lr}",
                f"loop.iterations={bench.lr_rounds}",
                *GRID_EVAL,
            ]
        },
    )
    return replace(arm_config(sub, arm, seed), output_dir=str(out))


def chosen_overrides(bench: BenchConfig, chosen: dict[str, float]) -> BenchConfig:
    """The bench with each arm's chosen learning rate appended to its overrides."""
    return replace(
        bench,
        arms={
            a: [*o, f"train.lr={chosen[a]}"] if a in chosen else o for a, o in bench.arms.items()
        },
    )


def validation_problems(
    task, difficulties: list[int], n: int, u_ids: list[str], tests, trained_ids: set[str]
) -> tuple[list, int]:
    """Up to ``n`` validation-side train problems per difficulty that share no problem (twins
    included) with U, the evaluation set or ``trained_ids``; returns them and how many
    candidates were dropped for having been generated on or trained on."""
    from selfplay.frontier import draw_problems
    from selfplay.tasks.generated import overlap_key

    key = getattr(task, "overlap_key", overlap_key)
    banned = {key(i) for i in u_ids} | {key(p.id) for p in tests}
    trained = {key(i) for i in trained_ids}
    out, dropped = [], 0
    for d in difficulties:
        drawn = draw_problems(task, d, 4 * n, random.Random(f"lr-validation-{d}"), validation=True)
        drawn = [p for p in drawn if key(p.id) not in banned]
        kept = [p for p in drawn if key(p.id) not in trained]
        dropped += len(drawn) - len(kept)
        out += kept[:n]
    return out, dropped


def _ids(run_dir: Path) -> set[str]:
    """Problems a grid run generated on or could train on (beyond U): its fresh corpus and
    every round's sampled problems."""
    ids: set[str] = set()
    if (run_dir / "fresh.parquet").exists():
        ids |= {r["problem_id"] for r in artifacts.read_parquet(run_dir / "fresh.parquet")}
    for path in sorted(run_dir.glob("iter_*/samples.parquet")):
        ids |= {r["problem_id"] for r in artifacts.read_parquet(path)}
    return ids


def run_lr_search(bench: BenchConfig, arms: dict[str, RunConfig], run_all, console=None) -> dict:
    """Run the grid (``run_all(list of (label, config))`` runs them, resumably), measure every
    model on the validation set, write ``<bench>/lr_search.json`` and return it."""
    from selfplay.evaluation import test_problems
    from selfplay.loop import run
    from selfplay.models import resolve_device, setup_device
    from selfplay.rundir import round_dir, seed_dir, share_seed
    from selfplay.stages import evaluate_model
    from selfplay.tasks import make_task

    grid = [(a, lr, grid_config(bench, a, lr)) for a in arms for lr in bench.lr_grid]
    # The first seed's seed model (its first arm's seed stage, evaluated on the full evaluation
    # set as usual), trained once and shared by every run of the grid and by the bench's arms.
    first = arm_config(bench, next(iter(arms)), bench.seeds[0])
    owner = replace(
        first,
        output_dir=str(bench.bench_dir / "lr_search" / "seed"),
        loop=replace(first.loop, iterations=0),
    )
    run(owner, console=None, progress=False)
    for cfg in [first, *(c for _, _, c in grid)]:
        share_seed(seed_dir(owner.run_dir), seed_dir(cfg.run_dir))
    run_all([(f"lr search: [cyan]{a}[/] lr {lr:g}", cfg) for a, lr, cfg in grid])

    ref = next(iter(arms.values()))
    task = make_task(ref)
    tests = test_problems(task, ref)
    u_ids = [
        r["problem_id"] for r in artifacts.read_parquet(seed_dir(owner.run_dir) / "raw.parquet")
    ]
    trained = set().union(*(_ids(cfg.run_dir) for _, _, cfg in grid))
    val, dropped = validation_problems(
        task, ref.raw.difficulties, bench.lr_validation_per_difficulty, u_ids, tests, trained
    )
    if not val:
        raise ConfigError("lr_grid: no validation problems left at U's difficulties")
    device = resolve_device(ref.device)
    setup_device(device)
    out = {
        "seed": bench.seeds[0],
        "rounds": bench.lr_rounds,
        "grid": list(bench.lr_grid),
        "validation": {
            "problems": len(val),
            "by_difficulty": {
                str(d): sum(p.difficulty == d for p in val) for d in ref.raw.difficulties
            },
            "candidates_dropped_as_generated_or_trained_on": dropped,
        },
        "arms": {},
    }
    for arm in arms:
        acc = {}
        for a, lr, cfg in grid:
            if a != arm:
                continue
            model = round_dir(cfg.run_dir, bench.lr_rounds) / "model"
            ev = evaluate_model(
                replace(cfg, eval=replace(cfg.eval, k=0)), task, val, model,
                cfg.run_dir / "validation", seed=cfg.seed, device=device, progress=False,
            )  # fmt: skip
            acc[f"{lr:g}"] = ev["eval"]["accuracy"]["all"]
        best = max(bench.lr_grid, key=lambda lr: (acc[f"{lr:g}"], -bench.lr_grid.index(lr)))
        out["arms"][arm] = {"accuracy": acc, "chosen": best}
    artifacts.write_json(bench.bench_dir / "lr_search.json", out)
    return out


def lr_section(search: dict) -> dict:
    """The report's table of the search: validation accuracy per arm and grid value."""
    grid = [f"{lr:g}" for lr in search["grid"]]
    v = search["validation"]
    rows = [
        [arm, *[f"{r['accuracy'][g]:.3f}" for g in grid], f"{r['chosen']:g}"]
        for arm, r in search["arms"].items()
    ]
    return {
        "heading": "Learning rate of the rounds (chosen on validation)",
        "text": [
            f"Every arm ran its first {search['rounds']} round(s) on seed {search['seed']} at each "
            "learning rate of the grid; its rounds then train, for every seed, at the value whose "
            f"model answered best a validation set of {v['problems']} train-split problems at U's "
            "difficulties ("
            + ", ".join(f"d{d} {n}" for d, n in v["by_difficulty"].items())
            + "), disjoint from U, the evaluation set and everything the grid's runs generated "
            f"on or could train on ({v['candidates_dropped_as_generated_or_trained_on']} "
            "candidates dropped for that). "
            "The evaluation set never enters the choice."
        ],
        "columns": ["arm", *[f"lr {g}" for g in grid], "chosen"],
        "rows": rows,
    }


__all__ = ["chosen_overrides", "grid_config", "lr_section", "run_lr_search", "validation_problems"]
