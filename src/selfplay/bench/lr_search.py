"""The learning rate of the rounds, chosen the same way for every arm of a bench (``lr_factors``).

Each factor scales an arm's own learning rate of the rounds (``train.lr``; ``grpo.lr`` for an arm
that trains by GRPO, whose scale is another). For each arm, each factor and each seed of
``lr_seeds`` (default: the bench's first seed), the arm's first ``lr_rounds`` rounds run from that
seed's seed model (``<bench>/lr_search/<arm>/x<factor>/`` on the bench's first seed,
``x<factor>-seed<s>/`` on another; ordinary resumable run directories sharing the seed model by
hard links). Each resulting model answers one validation set carved out of the task's train
split: ``lr_validation_problems`` problems of the fixed hash-based validation quarter, spread over
U's difficulties, minus every search seed's U, the evaluation set (twins included) and every
problem any of the grid's runs generated on or could train on. The evaluation set never enters
the choice. An arm's rounds then train at the factor whose models answered best on average over
the seeds (ties: the first factor in the list's order), for every seed; ``lr_search.json``
records every accuracy, the choice and whether it is the grid's lowest or highest factor
(``edge``), and the report shows it and calls no verdict on a comparison with such an arm.
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


def search_seeds(bench: BenchConfig) -> list[int]:
    """The seeds the learning rate is chosen on: ``lr_seeds``, or the bench's first seed."""
    return list(bench.lr_seeds) or [bench.seeds[0]]


def grid_config(
    bench: BenchConfig, arm: str, cfg: RunConfig, factor: float, seed: int | None = None
) -> RunConfig:
    """One arm at one factor of its learning rate, its first ``lr_rounds`` rounds, on ``seed``
    (default: the bench's first)."""
    seed = bench.seeds[0] if seed is None else seed
    name = f"x{factor:g}" + ("" if seed == bench.seeds[0] else f"-seed{seed}")
    overrides = [
        *bench.arms[arm],
        f"{lr_key(cfg)}={base_lr(cfg) * factor!r}",
        f"loop.iterations={bench.lr_rounds}",
        *GRID_EVAL,
    ]
    sub = replace(bench, arms={arm: overrides})
    out = bench.bench_dir / "lr_search" / arm / name
    return replace(arm_config(sub, arm, seed), output_dir=str(out))


def choose_factor(
    factors: list[float], by_seed: dict[str, dict[str, float]]
) -> tuple[dict[str, float], float]:
    """Each factor's validation accuracy averaged over the seeds (``by_seed``: seed -> factor as
    ``f"{f:g}"`` -> accuracy) and the factor with the best average (ties: the first in
    ``factors``' order).

    >>> choose_factor([0.5, 1], {"0": {"0.5": 0.75, "1": 1.0}, "1": {"0.5": 0.75, "1": 0.25}})
    ({'0.5': 0.75, '1': 0.625}, 0.5)
    """
    acc = {f"{f:g}": sum(a[f"{f:g}"] for a in by_seed.values()) / len(by_seed) for f in factors}
    return acc, max(factors, key=lambda f: (acc[f"{f:g}"], -factors.index(f)))


def edge_of(factors: list[float], chosen: float) -> str | None:
    """``lowest`` or ``highest`` when ``chosen`` is that end of a grid of two or more factors (the
    best rate may lie beyond it), else ``None``."""
    if len(factors) < 2:
        return None
    if chosen == min(factors):
        return "lowest"
    if chosen == max(factors):
        return "highest"
    return None


def chosen_overrides(bench: BenchConfig, search: dict) -> BenchConfig:
    """The bench with each arm's chosen learning rate appended to its overrides."""
    chosen = {a: f"{r['key']}={r['chosen']!r}" for a, r in search["arms"].items()}
    return replace(
        bench, arms={a: [*o, chosen[a]] if a in chosen else o for a, o in bench.arms.items()}
    )


def validation_size(bench: BenchConfig, difficulties: list[int]) -> int:
    """The validation problems asked for: ``lr_validation_problems``, or
    ``lr_validation_per_difficulty`` for each of U's difficulties where a bench sets it."""
    per = bench.lr_validation_per_difficulty
    return bench.lr_validation_problems if per is None else per * len(difficulties)


def spread(total: int, available: dict[int, int]) -> dict[int, int]:
    """``total`` split as evenly as the keys' ``available`` counts allow: a key with fewer than
    its share takes them all and the rest goes to the others.

    >>> spread(1000, {1: 0, 2: 900, 3: 900})
    {1: 0, 2: 500, 3: 500}
    >>> spread(10, {1: 2, 2: 20})
    {1: 2, 2: 8}
    """
    counts = dict.fromkeys(available, 0)
    room = [k for k in available if available[k] > 0]
    while room and sum(counts.values()) < total:
        each, extra = divmod(total - sum(counts.values()), len(room))
        for i, k in enumerate(room):
            counts[k] += min(each + (i < extra), available[k] - counts[k])
        room = [k for k in room if counts[k] < available[k]]
    return counts


def validation_problems(
    task, difficulties: list[int], total: int, u_ids: list[str], tests, trained_ids: set[str]
) -> tuple[list, int]:
    """Up to ``total`` validation-side train problems, spread evenly over ``difficulties`` (one
    with too few left gives the rest to the others), that share no problem (twins included) with
    U (``u_ids``: every search seed's), the evaluation set or ``trained_ids``; returns them and
    how many candidates were dropped for having been generated on or trained on."""
    from selfplay.engine.sampling import draw_problems
    from selfplay.tasks.generated import overlap_key_of

    key = overlap_key_of(task)
    banned = {key(i) for i in u_ids} | {key(p.id) for p in tests}
    trained = {key(i) for i in trained_ids}
    share = -(-total // len(difficulties))  # ceil
    eligible, dropped = {}, 0
    for d in difficulties:
        rng = random.Random(f"lr-validation-{d}")
        drawn = draw_problems(task, d, 4 * share, rng, validation=True)
        drawn = [p for p in drawn if key(p.id) not in banned]
        eligible[d] = [p for p in drawn if key(p.id) not in trained]
        dropped += len(drawn) - len(eligible[d])
    counts = spread(total, {d: len(ps) for d, ps in eligible.items()})
    return [p for d in difficulties for p in eligible[d][: counts[d]]], dropped


def validation_dir(problems) -> str:
    """A grid run's validation measurement's directory, named by the problems it answers, so a
    bench resumed with another validation set never reads the old set's accuracies."""
    import hashlib

    digest = hashlib.blake2b("\n".join(sorted(p.id for p in problems)).encode(), digest_size=4)
    return f"validation-{digest.hexdigest()}"


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
    seeds = search_seeds(bench)
    grid = [
        (a, f, s, grid_config(bench, a, cfg, f, s))
        for s in seeds
        for a, cfg in arms.items()
        for f in factors
    ]
    # Each search seed's seed model (its first arm's seed stage, evaluated on the full evaluation
    # set as usual), trained once and shared by that seed's grid runs and by the bench's arms.
    # With jobs > 1 the bench's other seeds' seed models train alongside them and the grid, so
    # no worker waits on the first ones; each is its seed's first arm's seed stage, shared the
    # same way.
    name = next(iter(arms))
    others = [s for s in bench.seeds if s not in seeds] if bench.jobs > 1 else []
    owners = {s: seed_owner(bench, name, s) for s in [*seeds, *others]}
    first = max(bench.jobs, len(seeds))
    if bench.jobs == 1:
        for s in seeds:
            run(owners[s], console=None, progress=False)
    else:
        run_all([(f"seed model, seed {s}", c) for s, c in list(owners.items())[:first]])
    for _, _, s, cfg in grid:
        share_seed(seed_dir(owners[s].run_dir), seed_dir(cfg.run_dir))
    label = "lr search: [cyan]{}[/] lr x{:g}" + (", seed {}" if len(seeds) > 1 else "")
    run_all(
        [(f"seed model, seed {s}", c) for s, c in list(owners.items())[first:]]
        + [(label.format(a, f, s), cfg) for a, f, s, cfg in grid]
    )
    for s, cfg in owners.items():
        if s in bench.seeds:
            share_seed(seed_dir(cfg.run_dir), seed_dir(arm_config(bench, name, s).run_dir))

    ref = next(iter(arms.values()))
    task = make_task(ref)
    tests = test_problems(task, ref)
    u_ids = [
        r["problem_id"]
        for s in seeds
        for r in artifacts.read_parquet(seed_dir(owners[s].run_dir) / "raw.parquet")
    ]
    trained = set().union(*(_ids(cfg.run_dir) for *_, cfg in grid))
    difficulties = ref.raw.difficulties
    asked = validation_size(bench, difficulties)
    val, dropped = validation_problems(task, difficulties, asked, u_ids, tests, trained)
    if not val:
        raise ConfigError("lr_factors: no validation problems left at U's difficulties")
    where = validation_dir(val)
    device = resolve_device(ref.device)
    setup_device(device)
    out = {
        "seeds": seeds,
        "rounds": bench.lr_rounds,
        "factors": list(factors),
        "validation": {
            "requested": asked,
            "problems": len(val),
            "by_difficulty": {str(d): sum(p.difficulty == d for p in val) for d in difficulties},
            "candidates_dropped_as_generated_or_trained_on": dropped,
        },
        "arms": {},
    }
    for arm, arm_cfg in arms.items():
        by_seed: dict[str, dict[str, float]] = {}
        for a, f, s, cfg in grid:
            if a != arm:
                continue
            model = round_dir(cfg.run_dir, bench.lr_rounds) / "model"
            ev = evaluate_model(  # greedy only: GRID_EVAL sets eval.k=0
                cfg, task, val, model, cfg.run_dir / where,
                seed=cfg.seed, device=device, progress=False,
            )  # fmt: skip
            by_seed.setdefault(str(s), {})[f"{f:g}"] = ev["eval"]["accuracy"]["all"]
        acc, best = choose_factor(factors, by_seed)
        out["arms"][arm] = {
            "key": lr_key(arm_cfg),
            "base": base_lr(arm_cfg),
            "accuracy": acc,
            "accuracy_by_seed": by_seed,
            "chosen_factor": best,
            "chosen": base_lr(arm_cfg) * best,
            "edge": edge_of(factors, best),
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
        for ev in sorted(run_dir.glob("validation*/eval.json")):
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


def edge_choices(search: dict | None) -> dict[str, float]:
    """Arm -> chosen factor, for the arms whose choice the search recorded as the grid's lowest
    or highest factor (``edge``; a search written before it recorded that gives none)."""
    if not search:
        return {}
    return {a: r["chosen_factor"] for a, r in search["arms"].items() if r.get("edge")}


def _seeds_text(seeds: list[int]) -> str:
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    return "seeds " + ", ".join(str(s) for s in seeds[:-1]) + f" and {seeds[-1]}"


def _best_by_seed(search: dict, r: dict) -> str:
    """The factor each search seed alone would have chosen, in the seeds' order."""
    factors = search["factors"]
    return ", ".join(
        f"x{max(factors, key=lambda f: (acc[f'{f:g}'], -factors.index(f))):g}"
        for acc in (r["accuracy_by_seed"][str(s)] for s in search["seeds"])
    )


def lr_section(search: dict) -> dict:
    """The report's table of the search: validation accuracy per arm and factor (the mean over
    the search's seeds), and the choice."""
    factors = [f"{f:g}" for f in search["factors"]]
    v = search["validation"]
    seeds = search.get("seeds") or [search["seed"]]
    several = len(seeds) > 1
    rows = [
        [
            arm, f"{r['key']} {r['base']:g}", *[f"{r['accuracy'][f]:.3f}" for f in factors],
            *([_best_by_seed(search, r)] if several else []),
            f"x{r['chosen_factor']:g} = {r['chosen']:.3g}"
            + (f" ({r['edge']} factor)" if r.get("edge") else ""),
        ]
        for arm, r in search["arms"].items()
    ]  # fmt: skip
    whose = (
        "models answered best, on average over those seeds," if several else "model answered best"
    )
    text = (
        f"Every arm ran its first {search['rounds']} round(s) on {_seeds_text(seeds)} at each "
        "factor of its own learning rate; its rounds then train, for every seed, at the one "
        f"whose {whose} a validation set of {v['problems']} train-split problems "
        "at U's difficulties ("
        + ", ".join(f"d{d} {n}" for d, n in v["by_difficulty"].items())
        + "), disjoint from U, the evaluation set and everything the grid's runs generated "
        f"on or could train on ({v['candidates_dropped_as_generated_or_trained_on']} "
        "candidates dropped for that). "
        "The evaluation set never enters the choice."
    )
    empty = [d for d, n in v["by_difficulty"].items() if not n]
    if "requested" in v and empty:
        text += (
            " "
            + " and ".join(f"d{d}" for d in empty)
            + (" have" if len(empty) > 1 else " has")
            + " no problem left once those are left out; the other difficulties take the share."
        )
    edge = edge_choices(search)
    if edge:
        text += (
            f" {len(edge)} of {len(search['arms'])} arms chose the lowest or highest factor: "
            "their best rate may lie outside the grid, so no comparison with them gets a verdict "
            "(widen lr_factors)."
        )
    return {
        "heading": "Learning rate of the rounds (chosen on validation)",
        "text": [text],
        "columns": [
            "arm", "learning rate", *[f"x{f}" for f in factors],
            *(["each seed's best"] if several else []), "chosen",
        ],
        "rows": rows,
    }  # fmt: skip


__all__ = [
    "choose_factor",
    "chosen_overrides",
    "edge_choices",
    "edge_of",
    "edge_warning",
    "grid_config",
    "lr_section",
    "run_lr_search",
    "search_seeds",
    "validation_problems",
]
