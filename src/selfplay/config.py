"""Run configuration: YAML -> validated dataclasses, with ``key=value`` overrides.

The sections are declared, each field documented, in :mod:`selfplay.sections`. A wrong key or
type raises :class:`ConfigError` with one line that names the key, e.g. ``train.lrr: unknown key
(did you mean 'train.lr'?)``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import shlex
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from selfplay.errors import ConfigError
from selfplay.sections import (  # noqa: F401  (re-exported: the config's types)
    EvalConfig,
    FilterConfig,
    FrontierConfig,
    GenerationConfig,
    GrpoConfig,
    LoopConfig,
    LoraConfig,
    ModelConfig,
    RawConfig,
    RunConfig,
    SeedConfig,
    TaskConfig,
    TrackingConfig,
    TrainConfig,
    need,
)

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
        return build_dataclass(tp, value, key + ".")
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


def build_dataclass(cls: type, data: dict, prefix: str = "") -> Any:
    """``cls(**data)`` with every value checked against its annotation; unknown keys and wrong
    types raise a one-line :class:`ConfigError` that names the key (``prefix`` + key)."""
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
    """Every section's own ranges (``check`` beside its dataclass), then what spans sections."""
    for name in ("model", "task", "raw", "seed_train", "loop", "generation", "filters", "train"):
        getattr(cfg, name).check()
    cfg.eval.check()
    cfg.grpo.check()
    need(bool(cfg.name) and "/" not in cfg.name, "name", "must be a non-empty name without '/'")
    need(
        cfg.model.position == "rope" or not cfg.model.name_or_path,
        "model.position",
        "nope is for the from-scratch presets (a pretrained model keeps its own)",
    )
    need(
        cfg.generation.adaptive_max_n == 0 or cfg.generation.adaptive_max_n > cfg.generation.n,
        "generation.adaptive_max_n",
        "must be 0 (off) or more than generation.n",
    )
    need(
        cfg.train.batch_size % cfg.train.num_processes == 0,
        "train.batch_size",
        f"must be a multiple of train.num_processes ({cfg.train.num_processes})",
    )
    from selfplay.schedules import EPOCH_CAPS

    caps = EPOCH_CAPS[cfg.loop.schedule]
    need(
        not cfg.train.max_epochs or cfg.train.trainer in caps,
        "train.max_epochs",
        f"caps {cfg.loop.schedule} rounds' data with train.trainer: {' or '.join(sorted(caps))} "
        "only",
    )
    be = cfg.train.budget_epochs
    need(
        be is None or len(be) == cfg.loop.iterations,
        "train.budget_epochs",
        f"needs one budget >= 0 per round (loop.iterations = {cfg.loop.iterations})",
    )
    fr = cfg.loop.frontier
    need(
        fr.probe != "agreement" or fr.probe_samples + cfg.filters.majority_models >= 2,
        "loop.frontier.probe_samples",
        "must be >= 1 with probe: agreement (one answer always agrees with itself), "
        "unless filters.majority_models >= 2",
    )
    for (key, value), required in REQUIRED.items():
        if _lookup(cfg, key) == value:
            for name, want, what in required:
                need(_lookup(cfg, name) == want, name, f"{what} with {key}: {value}")


REQUIRED = {
    ("loop.data_source", "oracle"): (
        (
            "loop.schedule",
            "frontier",
            "must be frontier (the oracle labels what a round practises)",
        ),
        ("loop.method", "expert_iteration", "must be expert_iteration"),
    ),
    ("loop.method", "grpo"): (
        ("loop.data_source", "selfplay", "must be selfplay"),
        ("train.init_from", "previous", "must be previous"),
        ("generation.backend", "hf", "must be hf (vLLM: grpo.trl)"),
        ("loop.rationalize", False, "is an expert-iteration option"),
        ("loop.fill_budget", False, "is an expert-iteration option"),
        ("generation.adaptive_max_n", 0, "must be 0"),
    ),
}
"""``(key, value) -> (other key, the value it needs, why)``: GRPO trains while it samples, from
the previous model, on its own samples, with TRL's generation."""


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


def apply_overrides(data: dict, overrides: list[str] = ()) -> dict:
    """A copy of a config mapping with ``key=value`` overrides applied."""
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
    return data


def config_from_dict(data: dict, overrides: list[str] = ()) -> RunConfig:
    """A validated run config: types and ranges here, then the task's own checks."""
    # Tasks sit below the config (they import only selfplay.errors at run time), so this is a
    # one-way arrow; imported here so that reading a config does not load every task module.
    from selfplay.tasks import check_config

    data = _renamed(apply_overrides(data, overrides))
    cfg = build_dataclass(RunConfig, data)
    _schedule_defaults(cfg)
    _check_ranges(cfg)
    _check_unread(cfg)
    check_config(cfg)
    return cfg


UNREAD = {
    ("loop.schedule", "rounds"): ("loop.frontier", "filters.majority_models"),
    ("loop.schedule", "frontier"): (
        "loop.pool_difficulties",
        "loop.rationalize",
        "loop.curriculum",
        "loop.curriculum_threshold",
        "loop.curriculum_easy_mix",
        "loop.fill_budget",
        "loop.fill_max_draws",
        "generation.adaptive_max_n",
        "generation.adaptive_target",
        "filters.dedup",
        "filters.max_per_problem",
        "filters.balance_difficulty",
        "train.data",
        "train.raw_mix",
        "train.budget_epochs",
        "eval.n_intermediate",
    ),
    ("loop.frontier.probe", "verifier"): ("loop.frontier.probe_samples",),
    ("generation.backend", "hf"): (
        "generation.tensor_parallel_size",
        "generation.data_parallel_size",
        "generation.gpu_memory_utilization",
        "generation.vllm",
    ),
    ("generation.backend", "vllm"): (
        "generation.batch_size",
        "generation.cache",
        "generation.compile",
        "generation.refill",
    ),
    ("train.trainer", "plain"): (
        "train.sft",
        "train.packing",
        "train.compile",
        "train.num_processes",
        "train.accelerate_config",
        "model.lora",
    ),
    ("train.trainer", "trl"): ("train.warmup", "train.decay"),
}
"""``(key, value) -> keys that code path does not read``: the frontier plans its own pool,
mixture and budget; each backend and trainer has options the other lacks. Setting one of them
to anything but its default is an error, never silently ignored."""


def _lookup(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _check_unread(cfg: RunConfig) -> None:
    default = RunConfig()
    for (key, value), unread in UNREAD.items():
        if _lookup(cfg, key) != value:
            continue
        for name in unread:
            if _lookup(cfg, name) != _lookup(default, name):
                raise ConfigError(
                    f"{name}: not read with {key}: {value} (remove it, or choose another {key})"
                )


RENAMED = {
    ("loop", "frontier", "trainer"): ("train", "trainer"),
    ("loop", "frontier", "loss"): ("train", "loss"),
    ("loop", "frontier", "warmup"): ("train", "warmup"),
    ("loop", "frontier", "decay"): ("train", "decay"),
}
"""Keys that moved (old -> new): the trainer's options are the training stage's, for every
schedule. A config (or an older run's config.yaml) that uses the old name means the new one."""


def _renamed(data: dict) -> dict:
    for old, new in RENAMED.items():
        *parents, leaf = old
        node = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            continue
        value = node.pop(leaf)
        target = data.setdefault(new[0], {})
        if not isinstance(target, dict):
            raise ConfigError(f"{new[0]}: expected a mapping, got {target!r}")
        if new[1] in target and target[new[1]] != value:
            raise ConfigError(f"{'.'.join(old)}: renamed {'.'.join(new)}, which is set too")
        target[new[1]] = value
    return data


def _schedule_defaults(cfg: RunConfig) -> None:
    """Fill the keys whose ``null`` means "the schedule's choice" (``train.trainer``, ``train.loss``)."""
    from selfplay.schedules import TRAINING_DEFAULTS

    for key, value in TRAINING_DEFAULTS[cfg.loop.schedule].items():
        if getattr(cfg.train, key) is None:
            setattr(cfg.train, key, value)


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Load and validate a YAML run config; the default ``name`` is the file's stem."""
    path = Path(path)
    try:
        data = read_yaml_mapping(path)
    except ConfigError as exc:
        if path.name == "config.yaml" and (path.parent / "seed").is_dir():  # a run's own copy
            raise ConfigError(
                f"{exc}; it is the run's copy of its config: write it again from the config "
                f"the run was started with (`selfplay config CONFIG [key=value ...] > "
                f"{shlex.quote(str(path))}`)"
            ) from None
        raise
    if "arms" in data and "run" in data:
        raise ConfigError(
            f"{path}: a bench config (it has arms: and run:); run it with selfplay bench {path}"
        )
    data.setdefault("name", path.stem)
    return config_from_dict(data, overrides)


def read_yaml_mapping(path: str | Path) -> dict:
    """A YAML file whose top level is a mapping (empty file: ``{}``); one-line errors otherwise."""
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
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return data


def config_to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def _field_docs(cls: type) -> dict[str, str]:
    """A dataclass's field docstrings (the string literal under each field), read from source."""
    import ast
    import inspect
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def config_keys(cls: type = RunConfig, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """Every config key as ``(dotted key, type, default, doc)``, in declaration order."""
    hints = typing.get_type_hints(cls)
    docs = _field_docs(cls)
    defaults = cls()
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += config_keys(tp, f"{prefix}{f.name}.")
        else:
            out.append(
                (prefix + f.name, _type_name(tp), getattr(defaults, f.name), docs.get(f.name, ""))
            )
    return out
