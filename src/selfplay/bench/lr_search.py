"""The learning rate of the rounds, chosen the same way for every arm of a bench (``lr_factors``).

Each factor scales an arm's own learning rate of the rounds (``train.lr``; ``grpo.lr`` for an arm
that trains by GRPO, whose scale is another). For each arm and each factor, the arm's first
``lr_rounds`` rounds run from the seed model of the bench's first seed
(``<bench>/lr_search/<arm>/x<factor>/``, ordinary resumable run directories sharing that seed
model by hard links). Each resulting model answers a validation
set carved out of the task's train split: the fixed hash-based validation quarter at U's
difficulties, minus U, the evaluation set (twins included) and every problem any of the grid's
runs generated on or could train on. The evaluation set never enters the choice. An arm's rounds
then train at the learning rate its model answered best (ties: the first factor in the list's
order), for every seed; ``lr_search.json`` records every accuracy and the choice, and the report shows it.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from selfplay.bench.config import BenchConfig, arm_config
from selfplay.config import RunConfig
from selfplay.engine import artifacts
from selfplay.errors import ConfigError

GRID_EVAL = ["eval.n_per_difficulty=10", "eval.n_intermediate=null", "eval.k=0"]
"""A grid run's own test-set measurement is never read; kept small so it costs little."""


LR_KEYS = {"expert_iteration": "train.lr", "grpo": "grpo.lr"}
"""The learning rate each practice method's rounds train with."""


def lr_key(cfg: RunConfig) -> str:
    """The learning rate an arm's rounds train with."""
    return LR_KEYS[cfg.loop.method]


def base_lr(cfg: RunConfig) -> float:
    section, name = lr_key(cfg).split(".")
    return getattr(getattr(cfg, section), name)


def grid_config(bench: BenchConfig, arm: str, cfg: RunConfig, factor: float) -> RunConfig:
    """One arm at one factor of its learning rate, its first ``lr_rounds`` rounds, on the first
    seed."""
    out = bench.bench_dir / "lr_search" / arm / f"x{factor:g}"
    overrides = [
        *bench.arms[arm],
        f"{lr_key(cfg)}={base_lr(cfg) * factor!r}",
        f"loop.iterations={bench.lr_rounds}",
        *GRID_EVAL,
    ]
    sub = replace(bench, arms={arm: overrides})
    return replace(arm_config(sub, arm, bench.seeds[0]), output_dir=str(out))


def chosen_overrides(bench: BenchConfig, search: dict) -> BenchConfig:
    """The bench with each arm's chosen learning rate appended to its overrides."""
    chosen = {a: f"{r['key']}={r['chosen']!r}" for a, r in search["arms"].items()}
    return replace(
        bench, arms={a: [*o, chosen[a]] if a in chosen else o for a, o in bench.arms.items()}
    )


def validation_problems(
    task, difficulties: list[int], n: int, u_ids: list[str], tests, trained_ids: set[str]
) -> tuple[list, int]:
    """Up to ``n`` validation-side train problems per difficulty that share no problem (twins
    included) with U, the evaluation set or ``trained_ids``; returns them and how many
    candidates were dropped for having been generated on or trained on."""
    from selfplay.engine.sampling import draw_problems
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


def seed_owner(bench: BenchConfig, arm: str, seed: int) -> RunConfig:
    """The seed stage alone of ``arm``'s run at ``seed``, in the search's directory
    (``lr_search/seed`` for the first seed, ``lr_search/seed_<s>`` for the others)."""
    cfg = arm_config(bench, arm, seed)
    where = "seed" if seed == bench.seeds[0] else f"seed_{seed}"
    return replace(
        cfg,
        output_dir=str(bench.bench_dir / "lr_search" / where),
        loop=replace(cfg.loop, iterations=0),
    )


def run_lr_search(bench: BenchConfig, arms: dict[str, RunConfig], run_all) -> dict:
    """Run the grid (``run_all(list of (label, config))`` runs them, resumably), measure every
    model on the validation set, write ``<bench>/lr_search.json`` and return it."""
    from selfplay.engine.evaluation import test_problems
    from selfplay.engine.loop import run
    from selfplay.engine.models import resolve_device, setup_device
    from selfplay.engine.rundir import round_dir, seed_dir, share_seed
    from selfplay.engine.stages import evaluate_model
    from selfplay.tasks import make_task

    factors = bench.lr_factors
    grid = [(a, f, grid_config(bench, a, cfg, f)) for a, cfg in arms.items() for f in factors]
    # The first seed's seed model (its first arm's seed stage, evaluated on the full evaluation
    # set as usual), trained once and shared by every run of the grid and by the bench's arms.
    # With jobs > 1 the other seeds' seed models train alongside it and the grid, so no worker
    # waits on the first one; each is its seed's first arm's seed stage, shared the same way.
    name = next(iter(arms))
    owners = {s: seed_owner(bench, name, s) for s in bench.seeds[: 1 if bench.jobs == 1 else None]}
    first = owners[bench.seeds[0]]
    if bench.jobs == 1:
        run(first, console=None, progress=False)
    else:
        run_all([(f"seed model, seed {s}", c) for s, c in list(owners.items())[: bench.jobs]])
    for cfg in [arm_config(bench, name, bench.seeds[0]), *(c for _, _, c in grid)]:
        share_seed(seed_dir(first.run_dir), seed_dir(cfg.run_dir))
    run_all(
        [(f"seed model, seed {s}", c) for s, c in list(owners.items())[bench.jobs :]]
        + [(f"lr search: [cyan]{a}[/] lr x{f:g}", cfg) for a, f, cfg in grid]
    )
    for s, cfg in owners.items():
        share_seed(seed_dir(cfg.run_dir), seed_dir(arm_config(bench, name, s).run_dir))

    ref = next(iter(arms.values()))
    task = make_task(ref)
    tests = test_problems(task, ref)
    u_ids = [
        r["problem_id"] for r in artifacts.read_parquet(seed_dir(first.run_dir) / "raw.parquet")
    ]
    trained = set().union(*(_ids(cfg.run_dir) for _, _, cfg in grid))
    val, dropped = validation_problems(
        task, ref.raw.difficulties, bench.lr_validation_per_difficulty, u_ids, tests, trained
    )
    if not val:
        raise ConfigError("lr_factors: no validation problems left at U's difficulties")
    device = resolve_device(ref.device)
    setup_device(device)
    out = {
        "seed": bench.seeds[0],
        "rounds": bench.lr_rounds,
        "factors": list(factors),
        "validation": {
            "problems": len(val),
            "by_difficulty": {
                str(d): sum(p.difficulty == d for p in val) for d in ref.raw.difficulties
            },
            "candidates_dropped_as_generated_or_trained_on": dropped,
        },
        "arms": {},
    }
    for arm, arm_cfg in arms.items():
        acc = {}
        for a, f, cfg in grid:
            if a != arm:
                continue
            model = round_dir(cfg.run_dir, bench.lr_rounds) / "model"
            ev = evaluate_model(  # greedy only: GRID_EVAL sets eval.k=0
                cfg, task, val, model, cfg.run_dir / "validation",
                seed=cfg.seed, device=device, progress=False,
            )  # fmt: skip
            acc[f"{f:g}"] = ev["eval"]["accuracy"]["all"]
        best = max(factors, key=lambda f: (acc[f"{f:g}"], -factors.index(f)))
        out["arms"][arm] = {
            "key": lr_key(arm_cfg),
            "base": base_lr(arm_cfg),
            "accuracy": acc,
            "chosen_factor": best,
            "chosen": base_lr(arm_cfg) * best,
        }
    artifacts.write_json(bench.bench_dir / "lr_search.json", out)
    return out


def search_seconds(bench_dir: Path) -> float:
    """Seconds the search's runs took: their rounds and their validation measurement (the seed
    model they share is the bench's own, counted with its arms)."""
    from selfplay.bench.progress import run_seconds

    total = 0.0
    for run_dir in sorted((Path(bench_dir) / "lr_search").glob("*/x*")):
        total += run_seconds(run_dir)[1]
        ev = run_dir / "validation" / "eval.json"
        if ev.exists():
            total += artifacts.read_json(ev).get("seconds", 0.0)
    return total


def edge_warning(search: dict) -> str | None:
    """A warning when arms chose the grid's lowest or highest factor (with more than one
    factor): the best rate may lie outside the grid."""
    factors = search["factors"]
    if len(factors) < 2:
        return None
    low, high = min(factors), max(factors)
    edge = {
        arm: r["chosen_factor"]
        for arm, r in search["arms"].items()
        if r["chosen_factor"] in (low, high)
    }
    if not edge:
        return None
    which = sorted({f"x{f:g}" for f in edge.values()})
    return (
        f"Learning rate: {len(edge)} of {len(search['arms'])} arms chose the edge of the grid "
        f"({' and '.join(which)}): their best rate may lie outside it (extend lr_factors)."
    )


def lr_section(search: dict) -> dict:
    """The report's table of the search: validation accuracy per arm and factor."""
    factors = [f"{f:g}" for f in search["factors"]]
    v = search["validation"]
    rows = [
        [
            arm, f"{r['key']} {r['base']:g}", *[f"{r['accuracy'][f]:.3f}" for f in factors],
            f"x{r['chosen_factor']:g} = {r['chosen']:.3g}",
        ]
        for arm, r in search["arms"].items()
    ]  # fmt: skip
    return {
        "heading": "Learning rate of the rounds (chosen on validation)",
        "text": [
            f"Every arm ran its first {search['rounds']} round(s) on seed {search['seed']} at each "
            "factor of its own learning rate; its rounds then train, for every seed, at the one "
            f"whose model answered best a validation set of {v['problems']} train-split problems "
            "at U's difficulties ("
            + ", ".join(f"d{d} {n}" for d, n in v["by_difficulty"].items())
            + "), disjoint from U, the evaluation set and everything the grid's runs generated "
            f"on or could train on ({v['candidates_dropped_as_generated_or_trained_on']} "
            "candidates dropped for that). "
            "The evaluation set never enters the choice."
        ],
        "columns": ["arm", "learning rate", *[f"x{f}" for f in factors], "chosen"],
        "rows": rows,
    }


__all__ = [
    "chosen_overrides",
    "edge_warning",
    "grid_config",
    "lr_section",
    "run_lr_search",
    "validation_problems",
]
