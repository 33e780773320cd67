"""Run configuration: YAML -> validated dataclasses, with ``key=value`` overrides.

Every field is documented where it is declared. A wrong key or type raises :class:`ConfigError`
with one line that names the key, e.g. ``train.lrr: unknown key (did you mean 'train.lr'?)``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A configuration problem, reported to the user as one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


@dataclass
class ModelConfig:
    preset: Literal["tiny", "small", "base"] = "tiny"
    """Size of a from-scratch Llama with a character tokenizer: tiny ~1M, small ~10M, base ~100M params."""
    name_or_path: str | None = None
    """Any Hugging Face causal LM (hub name or local directory); overrides ``preset`` when set."""


@dataclass
class TaskConfig:
    name: str = "arith"
    """Task name; see ``selfplay.tasks.TASKS``."""
    ops: list[str] = field(default_factory=lambda: ["add"])
    """Operations of the ``arith`` task: ``add`` (column addition with carries), ``mul`` (partial products)."""


@dataclass
class RawConfig:
    """The raw corpus U: a limited, capped-difficulty stand-in for scraped data."""

    size: int = 2000
    """Number of problems in U."""
    difficulties: list[int] = field(default_factory=lambda: [1, 2, 3])
    """Difficulties (for ``arith``: digit counts) drawn uniformly for U."""
    slip_rate: float = 0.0
    """Fraction of U whose chain carries a realistic slip (dropped carry, wrong digit sum) that propagates."""
    answer_only_rate: float = 0.0
    """Fraction of U that carries only the final answer, no chain."""
    hint_rate: float = 0.0
    """Fraction of U shown with its answer as a hint in the prompt, so a from-scratch model learns to
    read hints (needed for ``loop.rationalize``)."""


@dataclass
class SeedConfig:
    """Supervised training on U that produces model_0."""

    tokens: int = 600_000
    """Training-token budget for the seed model (U is repeated as needed)."""
    lr: float = 3e-3
    """Learning rate from scratch; the rounds use ``train.lr`` (lower: they continue a trained model)."""


@dataclass
class LoopConfig:
    iterations: int = 3
    """Number of expert-iteration rounds K."""
    pool_difficulties: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    """Difficulties of the problems the model practises on in each round."""
    problems_per_iter: int = 1000
    """Problems drawn (from the training split) per round."""
    data_source: Literal["selfplay", "raw-repeat", "raw-fresh"] = "selfplay"
    """What each round trains on. ``selfplay``: the model's own filtered chains. The baselines
    generate nothing: ``raw-repeat`` walks through U again (the data wall); ``raw-fresh`` through a
    fresh corpus of ``fresh_multiplier x raw.size`` problems from the same source (more internet)."""
    fresh_multiplier: float = 1.0
    """Size of the ``raw-fresh`` corpus, in multiples of U."""
    rationalize: bool = False
    """STaR's rationalization: problems with no correct sample are retried with the answer given as a
    hint (``task.hint_prompt``); chains that verify are trained on with the plain prompt."""
    curriculum: bool = False
    """Practise mostly at a frontier difficulty that moves up the pool as the model passes it."""
    curriculum_threshold: float = 0.5
    """Pass rate at the frontier that moves it one pool difficulty up for the next round."""
    curriculum_easy_mix: float = 0.3
    """With ``curriculum``: fraction of the round's problems from easier pool difficulties."""


@dataclass
class GenerationConfig:
    backend: Literal["hf"] = "hf"
    """Generation backend."""
    n: int = 4
    """Samples per problem."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int | None = None
    """Upper bound on completion length; ``null`` asks the task for a bound that fits the hardest problem."""
    batch_size: int = 256
    """Sequences per forward pass (prompts x n)."""
    adaptive_max_n: int = 0
    """Difficulty-aware sampling (DART-Math): keep sampling problems with fewer than
    ``adaptive_target`` valid chains, ``n`` at a time, up to this many samples (0 = off)."""
    adaptive_target: int = 1
    """Valid chains wanted per problem before adaptive sampling stops for it."""


@dataclass
class FilterConfig:
    verified: bool = True
    """Keep only samples the verifier accepts. ``false`` keeps everything (model-collapse control)."""
    require_valid_steps: bool = True
    """With ``verified``: also require every step to check out, not only the final answer."""
    dedup: bool = True
    """Drop a chain identical to one already kept for the same problem."""
    max_per_problem: int = 2
    """Cap on kept chains per problem (0 = no cap)."""
    majority: bool = False
    """Keep only samples whose answer wins the vote among the problem's samples (no ground truth
    needed; combine with ``verified: false`` for the label-free arm)."""
    majority_min_votes: int = 2
    """The winning answer needs at least this many votes."""
    balance_difficulty: bool = False
    """Cap every difficulty's kept chains at the count of the difficulty with the fewest (among
    those with any), so easy problems do not dominate the training set."""


@dataclass
class TrainConfig:
    init_from: Literal["base", "previous"] = "previous"
    """``previous``: continue from model_{k-1}; ``base``: restart each round from the seed model (ReST-EM)."""
    data: Literal["accumulate", "replace"] = "accumulate"
    """``accumulate``: train on every round's kept chains so far; ``replace``: this round's only."""
    raw_mix: float = 0.0
    """Fraction of each round's training examples drawn from the raw corpus U."""
    tokens: int = 300_000
    """Training-token budget per round."""
    max_epochs: float | None = None
    """Cap on passes over a round's training set: spend at most ``max_epochs x its tokens`` of the
    budget (``null``: always spend the whole budget, repeating a small kept set as often as needed)."""
    lr: float = 1e-3
    batch_size: int = 64
    max_length: int = 128
    sft: dict[str, Any] = field(default_factory=dict)
    """Passed through to ``trl.SFTConfig`` (overrides the values above)."""


@dataclass
class EvalConfig:
    difficulties: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    """Difficulties evaluated; include ones harder than the raw corpus."""
    n_per_difficulty: int = 100
    """Held-out test problems per difficulty (fewer if the split has fewer)."""
    k: int = 4
    """Samples per problem for pass@k and maj@k (0 = greedy only)."""
    temperature: float = 1.0


@dataclass
class RunConfig:
    name: str = "run"
    output_dir: str | None = None
    """Run directory; default ``runs/<name>``."""
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    raw: RawConfig = field(default_factory=RawConfig)
    seed_train: SeedConfig = field(default_factory=SeedConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path("runs") / self.name


# ---------------------------------------------------------------------------------------------
# Parsing and validation


_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{origin.__name__}[{args}]"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` checked against annotation ``tp``; raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _build(tp, value, key + ".")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise bad
    if origin is list:
        if not isinstance(value, list):
            raise bad
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        # YAML 1.1 reads 1e-3 (no dot) as a string: accept it where a float is expected.
        if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise bad


def _build(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigError(f"{prefix}{key}: unknown key{hint}")
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    return cls(**kwargs)


def _check_ranges(cfg: RunConfig) -> None:
    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise ConfigError(f"{key}: {what}")

    need(cfg.raw.size > 0, "raw.size", "must be > 0")
    need(0.0 <= cfg.raw.slip_rate <= 1.0, "raw.slip_rate", "must be in [0, 1]")
    need(0.0 <= cfg.raw.answer_only_rate <= 1.0, "raw.answer_only_rate", "must be in [0, 1]")
    need(
        cfg.raw.slip_rate + cfg.raw.answer_only_rate <= 1.0,
        "raw.slip_rate",
        "slip_rate + answer_only_rate must be <= 1",
    )
    for key, ds in [
        ("raw.difficulties", cfg.raw.difficulties),
        ("loop.pool_difficulties", cfg.loop.pool_difficulties),
        ("eval.difficulties", cfg.eval.difficulties),
    ]:
        need(
            len(ds) > 0 and all(d >= 1 for d in ds),
            key,
            "must be a non-empty list of integers >= 1",
        )
    need(cfg.seed_train.tokens >= 0, "seed_train.tokens", "must be >= 0")
    need(cfg.loop.iterations >= 0, "loop.iterations", "must be >= 0")
    need(cfg.loop.problems_per_iter > 0, "loop.problems_per_iter", "must be > 0")
    need(cfg.generation.n >= 1, "generation.n", "must be >= 1")
    need(cfg.generation.temperature > 0, "generation.temperature", "must be > 0")
    need(0 < cfg.generation.top_p <= 1, "generation.top_p", "must be in (0, 1]")
    need(cfg.generation.batch_size >= 1, "generation.batch_size", "must be >= 1")
    need(
        cfg.generation.max_new_tokens is None or cfg.generation.max_new_tokens >= 1,
        "generation.max_new_tokens",
        "must be >= 1",
    )
    need(cfg.loop.fresh_multiplier > 0, "loop.fresh_multiplier", "must be > 0")
    need(
        0.0 <= cfg.loop.curriculum_threshold <= 1.0,
        "loop.curriculum_threshold",
        "must be in [0, 1]",
    )
    need(0.0 <= cfg.loop.curriculum_easy_mix < 1.0, "loop.curriculum_easy_mix", "must be in [0, 1)")
    need(
        cfg.generation.adaptive_max_n == 0 or cfg.generation.adaptive_max_n > cfg.generation.n,
        "generation.adaptive_max_n",
        "must be 0 (off) or more than generation.n",
    )
    need(cfg.generation.adaptive_target >= 1, "generation.adaptive_target", "must be >= 1")
    need(0.0 <= cfg.raw.hint_rate <= 1.0, "raw.hint_rate", "must be in [0, 1]")
    need(cfg.filters.majority_min_votes >= 1, "filters.majority_min_votes", "must be >= 1")
    need(cfg.filters.max_per_problem >= 0, "filters.max_per_problem", "must be >= 0")
    need(0.0 <= cfg.train.raw_mix < 1.0, "train.raw_mix", "must be in [0, 1)")
    need(cfg.train.tokens >= 0, "train.tokens", "must be >= 0")
    need(cfg.train.lr > 0, "train.lr", "must be > 0")
    need(cfg.seed_train.lr > 0, "seed_train.lr", "must be > 0")
    need(
        cfg.train.max_epochs is None or cfg.train.max_epochs > 0,
        "train.max_epochs",
        "must be > 0 or null",
    )
    need(cfg.train.batch_size >= 1, "train.batch_size", "must be >= 1")
    need(cfg.train.max_length >= 8, "train.max_length", "must be >= 8")
    need(cfg.eval.n_per_difficulty >= 1, "eval.n_per_difficulty", "must be >= 1")
    need(cfg.eval.k >= 0, "eval.k", "must be >= 0")
    need(cfg.eval.temperature > 0, "eval.temperature", "must be > 0")
    need(bool(cfg.name) and "/" not in cfg.name, "name", "must be a non-empty name without '/'")
    from selfplay.tasks import TASKS

    need(
        cfg.task.name in TASKS,
        "task.name",
        f"unknown task {cfg.task.name!r}; valid: {', '.join(sorted(TASKS))}",
    )
    TASKS[cfg.task.name].check_config(cfg)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'train.lr=3e-4'`` -> (['train', 'lr'], 0.0003). Values are parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"{text}: an override must look like key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{text}: an override must look like key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def config_from_dict(data: dict, overrides: list[str] = ()) -> RunConfig:
    data = copy.deepcopy(dict(data or {}))
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"{'.'.join(path)}: '{part}' is not a section")
            node = child
        node[path[-1]] = value
    cfg = _build(RunConfig, data)
    _check_ranges(cfg)
    return cfg


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Load and validate a YAML run config; the default ``name`` is the file's stem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    data.setdefault("name", path.stem)
    return config_from_dict(data, overrides)


def config_to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
