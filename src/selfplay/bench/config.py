"""Bench configs: arms (config overrides of one shared run), seeds, the reference arm and, for a
sweep, regime axes. Loading resolves and validates every arm's run config before any work."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path

from selfplay.config import (
    RunConfig,
    TrackingConfig,
    apply_overrides,
    build_dataclass,
    config_from_dict,
    config_to_dict,
    read_yaml_mapping,
)
from selfplay.errors import ConfigError
from selfplay.schedules import supports

# Keys that decide the seed model: arms of a bench must agree on them to share it.
SEED_KEYS = (
    "seed",
    "model",
    "task",
    "raw",
    "seed_train",
    "eval",
    "train.batch_size",
    "train.max_length",
    "train.sft",
    "train.packing",
    "train.compile",
    "generation.backend",
    # The frontier schedule trains and measures its seed model with these.
    "loop.schedule",
    "train.trainer",
    "train.loss",
    "train.warmup",
    "train.decay",
    "loop.frontier.probe_ahead",
)


@dataclass
class RayConfig:
    """Where and how a bench's runs go on a Ray cluster (``executor: ray``)."""

    address: str | None = None
    """The cluster: ``host:port`` of its head (``ray start --head`` prints it), ``auto`` (the
    cluster this machine has joined), or null (``RAY_ADDRESS`` if set, else a Ray started on this
    machine for the bench and stopped after it)."""
    cpus: float = 1.0
    """CPUs each run reserves (and its torch threads: the whole part of it, at least one)."""
    gpus: float = 0.0
    """GPUs each run reserves; a fraction shares one GPU (each run gets that part of its memory)."""
    memory_gb: float = 0.0
    """Memory each run reserves, in GiB (Ray schedules by it; 0: no reservation)."""
    max_retries: int = 3
    """Times a run is started again when its worker process or its node is lost; each retry
    resumes from the run's last finished stage."""
    lock_wait_s: float = 300.0
    """How long a retried run waits for an earlier attempt that still holds its run directory
    (a node that lost touch but still runs) before it fails with a one-line error."""


@dataclass
class BenchConfig:
    name: str = "bench"
    output_dir: str | None = None
    """Bench directory; default ``runs/<name>``."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """One seed model per seed; every arm is paired with the others through it."""
    run: dict = field(default_factory=dict)
    """The run config every arm starts from (same keys as ``selfplay run``)."""
    arms: dict = field(default_factory=dict)
    """Arm name -> list of ``key=value`` overrides of ``run``."""
    reference: str = "raw-fresh-1x"
    """The arm that paired differences are taken against."""
    also_against: list[str] = field(default_factory=list)
    """More arms to pair every other arm with, e.g. ``[raw-repeat]``: self-play against training
    on U again, the baseline at a data wall where no fresh data exists. Every arm but the
    reference and that arm is compared with it; these comparisons join the reference's in one
    Holm family."""
    primary: list[str] = field(default_factory=list)
    """Pre-registered primary comparisons, each ``"arm vs other"`` (any two arms, e.g.
    ``["selfplay-verified vs raw-repeat", "selfplay-verified vs raw-fresh-1x"]``): they form the
    primary family, Holm-corrected on their own, which the verdict line reads; every other
    comparison is a secondary family, corrected on its own. Empty: one family of every
    comparison."""
    margin: float = 0.02
    """Equivalence margin: a comparison whose difference of final in-distribution accuracy lies
    within ±margin (two one-sided tests, after Holm's correction) is *equivalent*."""
    frontier_margin: float = 1.0
    """A climb bench's equivalence margin (arms on the frontier schedule), in difficulties: a
    final frontier within ±frontier_margin of the reference's is *equivalent*."""
    alpha: float = 0.05
    """Level of every test, after Holm's correction across the bench's comparisons."""
    verdict: bool = True
    """Say better / worse / equivalent / inconclusive per comparison (needs >= 2 seeds)."""
    quick: bool = False
    """A smoke-size bench: its report says it is not a result."""
    see_also: str = ""
    """A sentence the verdict ends with: where the fuller test is (e.g. the same bench over
    seeds, and its published report)."""
    jobs: int = 1
    """Arm x seed runs going at once, each in its own process with an equal share of the CPU
    threads (or of the GPU); the other arms of a seed wait for the run that trains its seed model."""
    executor: str = "local"
    """Where the runs go: ``local`` (``jobs`` processes on this machine) or ``ray`` (every run a
    Ray task with ``ray``'s resources on a Ray cluster; ``pip install 'selfplay[ray]'``). With
    ``ray`` the bench directory must be on storage every node mounts at the same path
    (docs/cluster.md); ``jobs`` is then the cluster's: as many runs as its resources hold."""
    ray: RayConfig = field(default_factory=RayConfig)
    """The cluster and each run's resources with ``executor: ray``."""
    compute_match: bool = False
    """Also compare at equal total compute: after its rounds, every raw arm is continued (more
    rounds of the same data stream, in ``<arm>@compute/``) until its training FLOPs reach the
    most expensive self-play arm's training + generation FLOPs of the same seed. Whole rounds,
    so a continued arm ends at or just past that compute."""
    compute_match_arms: list[str] = field(default_factory=list)
    """The raw arms ``compute_match`` continues, e.g. ``[raw-fresh-1x]`` (the reference, which
    the comparisons at equal compute need) to spend less time; empty: every raw arm."""
    lr_factors: list[float] = field(default_factory=list)
    """Learning rates of the rounds to choose from, the same way for every arm
    (:mod:`selfplay.bench.lr_search`): factors of each arm's own rate (``train.lr``, or ``grpo.lr`` for
    a GRPO arm), e.g. ``[0.5, 1, 2]``. Each arm runs its first ``lr_rounds`` rounds on each seed
    of ``lr_seeds`` at each, and trains every seed at the one whose models answer a validation
    split of the train source best on average (never the evaluation set). An arm whose choice is
    the grid's lowest or highest factor gets no verdict: its best rate may lie outside the grid.
    Empty: every arm uses its own rate."""
    lr_rounds: int = 1
    """Rounds each factor of ``lr_factors`` is tried for."""
    lr_seeds: list[int] = field(default_factory=list)
    """Seeds whose seed models the learning rate is chosen on (their validation accuracies
    averaged), e.g. ``[0, 1]``; empty: the bench's first seed alone."""
    lr_validation_problems: int = 1000
    """Validation problems that choose the learning rate, spread evenly over U's difficulties (a
    difficulty with too few left gives the rest to the others)."""
    lr_validation_per_difficulty: int | None = None
    """Instead of ``lr_validation_problems``: this many per difficulty of U (older benches)."""
    eval_min_problems: int = 0
    """Fewest in-distribution evaluation problems (over U's difficulties) the verdict needs; a
    smaller evaluation set is an error before any training."""
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    """Tracking for every arm (same keys as a run's ``tracking``): one run per arm x seed, named
    ``<bench>/<arm>/seed_<s>``, logged under ``dir`` (default ``<bench dir>/tracking``)."""
    sweep: dict = field(default_factory=dict)
    """Regime axes: axis -> {level -> list of ``key=value`` overrides of ``run``}. Every
    combination of levels (one per axis) is a regime, and every arm runs in every regime, in
    ``<bench>/<level>-<level>/``. Empty: a single regime (the plain bench)."""

    @property
    def bench_dir(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path("runs") / self.name


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def load_bench_config(
    path: str | Path, overrides: list[str] = ()
) -> tuple[BenchConfig, dict[str, RunConfig]]:
    """Parse a bench YAML, and resolve and validate every arm's run config (for seed ``seeds[0]``)."""
    path = Path(path)
    data = read_yaml_mapping(path)
    if "arms" not in data and {"model", "task", "loop", "seed_train", "train"} & set(data):
        raise ConfigError(f"{path}: a run config (no arms:); run it with selfplay run {path}")
    data.setdefault("name", path.stem)
    # run.<key>=... lands in the arms' shared run config like any other key.
    bench = build_dataclass(BenchConfig, apply_overrides(data, overrides))
    if not bench.seeds:
        raise ConfigError("seeds: need at least one seed")
    if not bench.arms:
        raise ConfigError("arms: need at least one arm")
    arms = {}
    for name, arm_overrides in bench.arms.items():
        if not isinstance(arm_overrides, list) or not all(
            isinstance(o, str) for o in arm_overrides
        ):
            raise ConfigError(f"arms.{name}: expected a list of key=value overrides")
        if "/" in str(name) or not str(name):
            raise ConfigError(f"arms.{name}: an arm name must be non-empty, without '/'")
        try:
            arms[name] = arm_config(bench, name, bench.seeds[0])
        except ConfigError as exc:
            raise ConfigError(f"arms.{name}: {exc}") from None
    check_shared_seed(arms)
    if bench.reference not in arms:
        raise ConfigError(f"reference: {bench.reference!r} is not an arm; arms: {', '.join(arms)}")
    for other in bench.also_against:
        if other not in arms:
            raise ConfigError(f"also_against: {other!r} is not an arm; arms: {', '.join(arms)}")
        if other == bench.reference:
            raise ConfigError(f"also_against: {other!r} is the reference already")
    if len(set(bench.also_against)) < len(bench.also_against):
        raise ConfigError("also_against: names an arm twice")
    primary_pairs(bench, list(arms))
    if not bench.margin > 0:
        raise ConfigError(f"margin: must be > 0 (an accuracy difference), got {bench.margin}")
    if not bench.frontier_margin > 0:
        raise ConfigError(
            f"frontier_margin: must be > 0 (difficulties), got {bench.frontier_margin}"
        )
    if not 0 < bench.alpha < 1:
        raise ConfigError(f"alpha: must be in (0, 1), got {bench.alpha}")
    if bench.verdict and len(bench.seeds) < 2:
        raise ConfigError(
            f"seeds: a verdict needs at least 2 seeds, got {len(bench.seeds)}; add seeds or set "
            "verdict: false"
        )
    if bench.jobs < 1:
        raise ConfigError(f"jobs: must be >= 1, got {bench.jobs}")
    check_executor(bench)
    if bench.eval_min_problems < 0:
        raise ConfigError("eval_min_problems: must be >= 0")
    check_eval_size(bench, next(iter(arms.values())))
    if bench.compute_match:
        check_compute_match(arms, bench.compute_match_arms)
        raw_reference = arms[bench.reference].loop.data_source != "selfplay"
        if raw_reference and bench.reference not in continued_arms(arms, bench.compute_match_arms):
            raise ConfigError(
                f"compute_match_arms: leaves out the reference {bench.reference!r}, which the "
                "comparisons at equal compute are made against; add it"
            )
    elif bench.compute_match_arms:
        raise ConfigError("compute_match_arms: needs compute_match: true")
    if bench.lr_factors:
        check_lr_factors(bench, arms)
    elif bench.lr_seeds:
        raise ConfigError("lr_seeds: needs lr_factors (the learning rates to choose from)")
    for name, _, regime_overrides in regimes(bench) if bench.sweep else []:
        sub = sub_bench(bench, name, regime_overrides)
        for arm in sub.arms:
            try:
                arm_config(sub, arm, bench.seeds[0])
            except ConfigError as exc:
                raise ConfigError(f"sweep regime {name}, arm {arm}: {exc}") from None
    return bench, arms


def primary_pairs(bench: BenchConfig, arms: list[str] | None = None) -> list[tuple[str, str]]:
    """``primary`` as (arm, other) pairs; a one-line ConfigError for an entry that is not
    ``"arm vs other"`` of two different arms (of ``arms``, where given), or that names a pair
    twice."""
    pairs = []
    for entry in bench.primary:
        parts = [p.strip() for p in str(entry).split(" vs ")]
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"primary: {entry!r} is not 'arm vs other'")
        for arm in parts:
            if arms is not None and arm not in arms:
                raise ConfigError(f"primary: {arm!r} is not an arm; arms: {', '.join(arms)}")
        if parts[0] == parts[1]:
            raise ConfigError(f"primary: {entry!r} compares an arm with itself")
        if {tuple(parts), tuple(reversed(parts))} & set(pairs):
            raise ConfigError(f"primary: {entry!r} names a comparison twice")
        pairs.append((parts[0], parts[1]))
    return pairs


def comparison_pairs(bench: BenchConfig, arms: list[str]) -> list[tuple[str, str]]:
    """(arm, against) for every comparison of a bench: the ``primary`` ones as written, then each
    arm against the reference, then each arm but the reference against every arm of
    ``also_against`` (a pair the primary ones already make, in either order, only once)."""
    ref = bench.reference
    primary = primary_pairs(bench, arms)
    pairs = [(a, ref) for a in arms if a != ref]
    for other in bench.also_against:
        pairs += [(a, other) for a in arms if a not in (ref, other)]
    taken = set(primary) | {(b, a) for a, b in primary}
    return primary + [p for p in pairs if p not in taken]


EXECUTORS = ("local", "ray")


def check_executor(bench: BenchConfig) -> None:
    """``executor`` and its ``ray`` section: known, in range, and Ray installed when asked for."""
    if bench.executor not in EXECUTORS:
        raise ConfigError(
            f"executor: must be one of {', '.join(EXECUTORS)}, got {bench.executor!r}"
        )
    r = bench.ray
    if not r.cpus >= 1:
        raise ConfigError(f"ray.cpus: must be >= 1 (a run's threads), got {r.cpus}")
    for key in ("gpus", "memory_gb", "lock_wait_s"):
        if not getattr(r, key) >= 0:
            raise ConfigError(f"ray.{key}: must be >= 0, got {getattr(r, key)}")
    if r.max_retries < 0:
        raise ConfigError(f"ray.max_retries: must be >= 0, got {r.max_retries}")
    if bench.executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ConfigError(
                "executor: ray needs Ray, which is not installed: pip install 'selfplay[ray]'"
            )


def check_shared_seed(arms: dict[str, RunConfig]) -> None:
    """Every arm must agree on the keys the seed model depends on (``SEED_KEYS``)."""
    first_name, first = next(iter(arms.items()))
    first_dict = config_to_dict(first)
    for name, cfg in arms.items():
        cfg_dict = config_to_dict(cfg)
        for key in SEED_KEYS:
            if _get(first_dict, key) != _get(cfg_dict, key):
                raise ConfigError(
                    f"arms.{name}: changes {key}, which the seed model depends on; arms must "
                    f"share it with '{first_name}'"
                )


def _supported(option: str, arms: dict[str, RunConfig]) -> None:
    for c in arms.values():
        if not supports(c.loop.schedule, option):
            raise ConfigError(f"{option}: not available for arms on the {c.loop.schedule} schedule")


def check_lr_factors(bench: BenchConfig, arms: dict[str, RunConfig]) -> None:
    f = bench.lr_factors
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in f):
        raise ConfigError(f"lr_factors: factors of a learning rate must be numbers > 0, got {f}")
    if len(set(f)) != len(f):
        raise ConfigError(f"lr_factors: a factor appears twice in {f}")
    _supported("lr_factors", arms)
    iterations = min(c.loop.iterations for c in arms.values())
    if not 1 <= bench.lr_rounds <= iterations:
        raise ConfigError(
            f"lr_rounds: must be in 1..{iterations} (the arms' rounds), got {bench.lr_rounds}"
        )
    if bench.lr_validation_problems < 1:
        raise ConfigError("lr_validation_problems: must be >= 1")
    per = bench.lr_validation_per_difficulty
    if per is not None and per < 1:
        raise ConfigError("lr_validation_per_difficulty: must be >= 1")
    if len(set(bench.lr_seeds)) != len(bench.lr_seeds):
        raise ConfigError(f"lr_seeds: a seed appears twice in {bench.lr_seeds}")


COMPUTE_SUFFIX = "@compute"
"""A raw arm continued to the self-play arms' compute: ``<arm>@compute``."""


def check_compute_match(arms: dict[str, RunConfig], only: list[str] = ()) -> None:
    """``compute_match`` needs raw and self-play arms on the plain schedule, the raw ones it
    continues with a per-round token budget (a list of ``train.budget_epochs`` has no round past
    its end); ``only`` (``compute_match_arms``) names raw arms."""
    raw = [n for n, c in arms.items() if c.loop.data_source != "selfplay"]
    if not raw or len(raw) == len(arms):
        raise ConfigError("compute_match: needs at least one raw arm and one self-play arm")
    _supported("compute_match", arms)
    for name in only:
        if name not in raw:
            raise ConfigError(
                f"compute_match_arms: {name!r} is not a raw arm; raw arms: {', '.join(raw)}"
            )
    for name in continued_arms(arms, only):
        if arms[name].train.budget_epochs is not None:
            raise ConfigError(
                f"compute_match: arm {name} sets train.budget_epochs, which has no round past "
                "its last; give its rounds train.tokens"
            )


def continued_arms(arms: dict[str, RunConfig], only: list[str] = ()) -> list[str]:
    """The raw arms ``compute_match`` continues, in the arms' order: those in ``only``
    (``compute_match_arms``), or every raw arm when it is empty."""
    return [
        n for n, c in arms.items() if c.loop.data_source != "selfplay" and (not only or n in only)
    ]


def check_eval_size(bench: BenchConfig, cfg: RunConfig) -> int:
    """The number of in-distribution evaluation problems; an error if fewer than
    ``eval_min_problems`` (every arm shares the evaluation set: ``eval`` is a seed key)."""
    if not bench.eval_min_problems:
        return 0
    from selfplay.engine.evaluation import test_problems
    from selfplay.tasks import make_task

    top = max(cfg.raw.difficulties)
    n = sum(p.difficulty <= top for p in test_problems(make_task(cfg), cfg))
    if n < bench.eval_min_problems:
        raise ConfigError(
            f"eval: the in-distribution evaluation set has {n} problems (difficulties <= {top}), "
            f"fewer than eval_min_problems = {bench.eval_min_problems}; raise "
            "run.eval.n_per_difficulty or lower eval_min_problems"
        )
    return n


def arm_config(bench: BenchConfig, arm: str, seed: int) -> RunConfig:
    """One arm's run config for one seed, in ``<bench>/seed_<seed>/<arm>/``."""
    out = bench.bench_dir / f"seed_{seed}" / arm
    tracking = []
    if bench.tracking.backend != "none":
        t = bench.tracking
        tracking = [
            f"tracking.backend={t.backend}",
            f"tracking.dir={t.dir or bench.bench_dir / 'tracking'}",
            f"tracking.project={t.project}",
            f"tracking.run_name={t.run_name or bench.name}/{arm}/seed_{seed}",
        ]
    return config_from_dict(
        bench.run,
        [*bench.arms[arm], f"seed={seed}", f"name={arm}", f"output_dir={out}", *tracking],
    )


def arm_configs(bench: BenchConfig, seed: int) -> dict[str, RunConfig]:
    return {arm: arm_config(bench, arm, seed) for arm in bench.arms}


def regimes(bench: BenchConfig) -> list[tuple[str, dict[str, str], list[str]]]:
    """``(name, {axis: level}, overrides)`` for every combination of the sweep's levels."""
    axes = []
    for axis, levels in bench.sweep.items():
        if not isinstance(levels, dict) or not levels:
            raise ConfigError(f"sweep.{axis}: expected a mapping of level -> list of overrides")
        for level, overrides in levels.items():
            if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
                raise ConfigError(f"sweep.{axis}.{level}: expected a list of key=value overrides")
            if not str(level) or "/" in str(level):
                raise ConfigError(f"sweep.{axis}.{level}: a level name must be non-empty, no '/'")
        axes.append((str(axis), list(levels.items())))
    out = []
    for combo in itertools.product(*(levels for _, levels in axes)):
        name = "-".join(str(level) for level, _ in combo)
        levels = {axis: str(level) for (axis, _), (level, _) in zip(axes, combo, strict=True)}
        out.append((name, levels, [o for _, overrides in combo for o in overrides]))
    return out


def sub_bench(bench: BenchConfig, name: str, overrides: list[str]) -> BenchConfig:
    """One regime of a sweep as a plain bench of its own, in ``<bench>/<regime>/``."""
    return replace(
        bench,
        name=f"{bench.name}/{name}",
        output_dir=str(bench.bench_dir / name),
        run=apply_overrides(bench.run, overrides),
        sweep={},
    )
