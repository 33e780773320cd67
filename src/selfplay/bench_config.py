"""Bench configs: arms (config overrides of one shared run), seeds, the reference arm and, for a
sweep, regime axes. Loading resolves and validates every arm's run config before any work."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path

from selfplay.config import (
    RunConfig,
    apply_overrides,
    build_dataclass,
    config_from_dict,
    config_to_dict,
    read_yaml_mapping,
)
from selfplay.errors import ConfigError

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
)


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
    for name, _, regime_overrides in regimes(bench) if bench.sweep else []:
        sub = sub_bench(bench, name, regime_overrides)
        for arm in sub.arms:
            try:
                arm_config(sub, arm, bench.seeds[0])
            except ConfigError as exc:
                raise ConfigError(f"sweep regime {name}, arm {arm}: {exc}") from None
    return bench, arms


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


def arm_config(bench: BenchConfig, arm: str, seed: int) -> RunConfig:
    """One arm's run config for one seed, in ``<bench>/seed_<seed>/<arm>/``."""
    out = bench.bench_dir / f"seed_{seed}" / arm
    return config_from_dict(
        bench.run, [*bench.arms[arm], f"seed={seed}", f"name={arm}", f"output_dir={out}"]
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
