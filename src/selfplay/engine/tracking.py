"""Experiment tracking: training curves through TRL's ``report_to`` and every round's metrics,
under one run name per run (a bench: per arm x seed), in local files by default.

    tracking: {backend: none | tensorboard | wandb | trackio, dir, project, run_name}

TensorBoard layout under ``dir``: ``<run_name>/`` holds the round metrics (step = round, 0 is
the seed model) and ``<run_name>/train/<stage>/`` each stage's training curves (step = optimizer
step), so the dashboard groups a run's curves under its name.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selfplay.config import RunConfig
from selfplay.errors import ConfigError

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}
"""Backend -> the module it needs (also its PyPI name)."""

_LOGGED = ".tracked-{}"
"""Marker in a stage directory whose metrics this run name has logged, so a resumed run does not
log twice (named per run: a bench's arms share one seed directory's files)."""


def check_tracking(cfg: RunConfig) -> None:
    """One-line error, before anything runs, when the backend's package is missing."""
    if cfg.train.sft.get("report_to") not in (None, "none", []):
        raise ConfigError(
            "train.sft.report_to: set tracking.backend instead (it also keeps the logs)"
        )
    backend = cfg.tracking.backend
    module = PACKAGES.get(backend)
    if module and importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"tracking.backend={backend}: the {module} package is not installed "
            f"(pip install {module}, or pip install 'selfplay[tracking]')"
        )


def log_dir(cfg: RunConfig) -> Path:
    return Path(cfg.tracking.dir) if cfg.tracking.dir else cfg.run_dir / "tracking"


def run_name(cfg: RunConfig) -> str:
    return cfg.tracking.run_name or cfg.name


@contextmanager
def trainer_tracking(cfg: RunConfig, stage: str) -> Iterator[dict]:
    """``trl.SFTConfig`` arguments that send a training stage's curves to the backend; the
    environment the integrations read is set for the duration (and inherited by launched workers)."""
    backend = cfg.tracking.backend
    if backend == "none":
        yield {}
        return
    name, root = run_name(cfg), log_dir(cfg)
    env = {
        "tensorboard": {"TENSORBOARD_LOGGING_DIR": str(root / name / "train" / stage)},
        "wandb": {
            "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
            "WANDB_DIR": str(root),
            "WANDB_PROJECT": cfg.tracking.project,
        },
        "trackio": {"TRACKIO_DIR": str(root)},
    }[backend]
    root.mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        args = {"report_to": [backend], "run_name": f"{name}/{stage}"}
        if backend == "trackio":
            args["project"] = cfg.tracking.project
        yield args
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def flat_scalars(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Every finite number in a metrics record, keyed ``eval/accuracy/3``, ``generate/pass_rate``."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= flat_scalars(v, key + "/")
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[key] = float(v)
    return out


def log_stage(cfg: RunConfig, stage_dir: Path, metrics: dict) -> None:
    """Log a finished stage's metrics (step = its iteration) once; a no-op with no backend."""
    backend = cfg.tracking.backend
    marker = Path(stage_dir) / _LOGGED.format(_safe_id(run_name(cfg)))
    if backend == "none" or marker.exists():
        return
    scalars = flat_scalars({k: metrics[k] for k in metrics if k not in ("stage", "iteration")})
    step, name, root = int(metrics["iteration"]), run_name(cfg), log_dir(cfg)
    root.mkdir(parents=True, exist_ok=True)
    if backend == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(log_dir=str(root / name)) as writer:
            for k, v in scalars.items():
                writer.add_scalar(f"round/{k}", v, step)
    elif backend == "wandb":
        import wandb

        mode = os.environ.get("WANDB_MODE", "offline")
        # One wandb run per arm x seed, resumed for each round.
        run = wandb.init(
            project=cfg.tracking.project, name=name, id=_safe_id(name), resume="allow",
            dir=str(root), mode=mode, reinit="finish_previous",
        )  # fmt: skip
        run.log({f"round/{k}": v for k, v in scalars.items()} | {"round": step})
        run.finish()
    elif backend == "trackio":
        import trackio

        os.environ.setdefault("TRACKIO_DIR", str(root))
        trackio.init(project=cfg.tracking.project, name=name, resume="allow")
        trackio.log({f"round/{k}": v for k, v in scalars.items()}, step=step)
        trackio.finish()
    marker.touch()


def _safe_id(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:64]
