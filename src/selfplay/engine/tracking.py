"""Experiment tracking: training curves through TRL's ``report_to``, every round's metrics, and
the resolved config with the commit and library versions as hyperparameters, under one tracked
run per run directory (a bench: per arm x seed), in local files by default.

    tracking: {backend: none | tensorboard | wandb | trackio, dir, project, run_name}

A tracked run is named ``run_name`` (readable) and identified by :func:`run_id`: the name plus
a short hash of the absolute run directory, so a rerun of one directory resumes its tracked run
and the same config run into another directory (other overrides, another ``output_dir``) gets
its own.

- TensorBoard, under ``dir``: ``<run_name>/`` holds the round metrics (step = round, 0 is the
  seed model), the config as text and as hparams; ``<run_name>/train/<stage>/`` each stage's
  training curves (step = optimizer step), so the dashboard groups a run's curves under its name.
- wandb (offline unless ``WANDB_MODE`` says otherwise; ``dir/wandb/``): the round metrics in run
  ``<id>`` (step = round), each stage's curves in run ``<id>-<stage>`` named
  ``<run_name>/<stage>``; all of them in group ``<id>`` and with the config.
- trackio (``dir/<project>.db``, SQLite): run ``<id>`` in group ``<run_name>`` holds the round
  metrics and the config, run ``<id>/<stage>`` each stage's curves.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selfplay.config import RunConfig, config_to_dict, dump_config
from selfplay.engine.models import launches_training
from selfplay.engine.rundir import environment
from selfplay.errors import ConfigError

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}
"""Backend -> the module it needs (also its PyPI name and this project's extra)."""

_LOGGED = ".tracked-{}-{}"
"""Marker in a stage directory whose metrics this backend and tracked run have logged, so a
resumed run does not log twice (named per run: a bench's arms share one seed directory's files)."""


def check_tracking(cfg: RunConfig) -> None:
    """One-line error, before anything runs, when the backend's package is missing or the
    project name is one the backend refuses."""
    if cfg.train.sft.get("report_to") not in (None, "none", []):
        raise ConfigError(
            "train.sft.report_to: set tracking.backend instead (it also keeps the logs)"
        )
    backend = cfg.tracking.backend
    module = PACKAGES.get(backend)
    if module is None:
        return
    if importlib.util.find_spec(module) is None:
        extra = "tracking" if backend == "tensorboard" else backend
        raise ConfigError(
            f"tracking.backend={backend}: the {module} package is not installed "
            f"(pip install {module}; in a checkout of this project: pip install -e '.[{extra}]')"
        )
    project = cfg.tracking.project
    if backend == "wandb" and (not project or any(c in project for c in "/\\#?%:")):
        raise ConfigError(
            f"tracking.project={project!r}: a wandb project name must be non-empty "
            "and without / \\ # ? % :"
        )
    if backend == "trackio":
        _trackio(log_dir(cfg))  # imported pointing at this run's directory
        from trackio.sqlite_storage import SQLiteStorage

        try:
            SQLiteStorage.validate_project_name(project)
        except ValueError as e:
            raise ConfigError(f"tracking.project={project!r}: {e}") from None


def log_dir(cfg: RunConfig) -> Path:
    """Where the backend writes (absolute): ``tracking.dir``, else ``<run dir>/tracking``."""
    return (Path(cfg.tracking.dir) if cfg.tracking.dir else cfg.run_dir / "tracking").absolute()


def run_name(cfg: RunConfig) -> str:
    """The tracked run's readable name: ``tracking.run_name``, else the run's ``name``."""
    return cfg.tracking.run_name or cfg.name


def run_id(cfg: RunConfig) -> str:
    """The tracked run's identity: its name (characters a backend allows, at most 55) and 8 hex
    digits of a hash of the absolute run directory; at most 64 characters.

    >>> from selfplay.config import config_from_dict
    >>> run_id(config_from_dict({"name": "x", "output_dir": "/runs/a"}))
    'x-704e1951'
    """
    where = str(cfg.run_dir.resolve())
    digest = hashlib.sha256(where.encode()).hexdigest()[:8]
    return f"{_safe_id(run_name(cfg))[:55]}-{digest}"


def hparams(cfg: RunConfig) -> dict:
    """The hyperparameters every backend logs: the resolved config under dotted keys
    (``train.lr``), the commit and library versions (``commit``, ``versions.torch``), and the
    tracked run (``run.id``, ``run.dir``)."""
    env = environment()
    out = flat_config(config_to_dict(cfg))
    out["commit"] = env.pop("git")
    out |= {f"versions.{k}": v for k, v in env.items()}
    out |= {"run.id": run_id(cfg), "run.dir": str(cfg.run_dir.resolve())}
    return out


def flat_config(d: dict, prefix: str = "") -> dict:
    """A nested config as one level of dotted keys; an empty mapping stays a value.

    >>> flat_config({"train": {"lr": 0.1, "sft": {}}, "seed": 0})
    {'train.lr': 0.1, 'train.sft': {}, 'seed': 0}
    """
    out: dict = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out |= flat_config(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


@contextmanager
def trainer_tracking(cfg: RunConfig, stage: str) -> Iterator[dict]:
    """``trl.SFTConfig`` arguments that send a training stage's curves to the backend; the
    environment the integrations read is set for the duration (and inherited by launched
    workers). wandb: the stage's run is opened here with its id, group and the config, and TRL
    logs into it (in launched workers the environment names the id and group instead)."""
    backend = cfg.tracking.backend
    if backend == "none":
        yield {}
        return
    name, root, rid = run_name(cfg), log_dir(cfg), run_id(cfg)
    launched = launches_training(cfg)
    env = {
        "tensorboard": {"TENSORBOARD_LOGGING_DIR": str(root / name / "train" / stage)},
        # Read by wandb in a launched worker (a fresh process); in this one the run is opened
        # below with explicit arguments (wandb reads its environment once per process).
        "wandb": {
            "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
            "WANDB_DIR": str(root),
            "WANDB_PROJECT": cfg.tracking.project,
            "WANDB_RUN_ID": f"{rid}-{stage}",
            "WANDB_RUN_GROUP": rid,
            "WANDB_RESUME": "allow",
        }
        if launched
        else {},
        "trackio": {"TRACKIO_DIR": str(root)},
    }[backend]
    root.mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    run = None
    try:
        args = {"report_to": [backend], "run_name": f"{name}/{stage}"}
        if backend == "wandb" and not launched:
            # TRL's callback logs into the open run instead of opening its own.
            run = _wandb_init(cfg, name=f"{name}/{stage}", id=f"{rid}-{stage}", job_type="train")
        elif backend == "trackio":
            _trackio(root)
            args |= {"project": cfg.tracking.project, "run_name": f"{rid}/{stage}"}
        yield args
    finally:
        if run is not None:
            run.finish()
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
    """Log a finished stage's metrics (step = its iteration) once, with the config (TensorBoard:
    with the seed stage's); a no-op with no backend."""
    backend = cfg.tracking.backend
    if backend == "none":
        return
    marker = Path(stage_dir) / _LOGGED.format(backend, run_id(cfg))
    if marker.exists():
        return
    scalars = flat_scalars({k: metrics[k] for k in metrics if k not in ("stage", "iteration")})
    rounds = {f"round/{k}": v for k, v in scalars.items()}
    step, name, root = int(metrics["iteration"]), run_name(cfg), log_dir(cfg)
    root.mkdir(parents=True, exist_ok=True)
    if backend == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(log_dir=str(root / name)) as writer:
            if step == 0:
                _tensorboard_config(writer, cfg, list(rounds))
            for k, v in rounds.items():
                writer.add_scalar(k, v, step)
    elif backend == "wandb":
        # One wandb run per run directory, resumed for each round.
        run = _wandb_init(cfg, name=name, id=run_id(cfg), job_type="rounds")
        run.log(rounds | {"round": step}, step=step)
        run.finish()
    elif backend == "trackio":
        trackio = _trackio(root)
        trackio.init(
            project=cfg.tracking.project, name=run_id(cfg), group=name, config=hparams(cfg),
            resume="allow", embed=False, auto_log_cpu=False, auto_log_gpu=False,
        )  # fmt: skip
        trackio.log(rounds, step=step)
        trackio.finish()
    marker.touch()


def _tensorboard_config(writer, cfg: RunConfig, metrics: list[str]) -> None:
    """The config as text (the Text tab) and as hparams (the HParams tab, beside ``metrics``)."""
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    hp = {
        k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v)
        for k, v in hparams(cfg).items()
    }
    header = ", ".join(f"{k} {v}" for k, v in hp.items() if k == "commit" or k[:9] == "versions.")
    text = f"# {header}\n# run {hp['run.id']} in {hp['run.dir']}\n{dump_config(cfg)}"
    # Indented: a code block in the dashboard's markdown.
    writer.add_text("config", "\n".join("    " + line for line in text.splitlines()), 0)
    for summary in hparams_summaries(hp, dict.fromkeys(metrics, 0.0)):
        writer.file_writer.add_summary(summary)


def _wandb_init(cfg: RunConfig, *, name: str, id: str, job_type: str):
    """A wandb run (offline unless ``WANDB_MODE`` says otherwise) in ``log_dir``, resumed if it
    exists, in the group of this run directory, with the config."""
    import wandb

    return wandb.init(
        project=cfg.tracking.project, name=name, id=id, group=run_id(cfg), job_type=job_type,
        config=hparams(cfg), dir=str(log_dir(cfg)), mode=os.environ.get("WANDB_MODE", "offline"),
        resume="allow", reinit="finish_previous",
    )  # fmt: skip


def _trackio(root: Path):
    """trackio, writing under ``root``. trackio reads ``TRACKIO_DIR`` once, when it is first
    imported (TRL may import it before any run starts); a process that logs to several
    directories (a sweep's regimes in one process) points its module-level paths at ``root``."""
    saved = os.environ.get("TRACKIO_DIR")
    os.environ["TRACKIO_DIR"] = str(root)
    try:
        import trackio
        import trackio.utils
    finally:
        if saved is None:
            os.environ.pop("TRACKIO_DIR", None)
        else:
            os.environ["TRACKIO_DIR"] = saved
    old = trackio.utils.TRACKIO_DIR
    if old != root:
        moved = {old: root, old / "media": root / "media", old / "artifacts": root / "artifacts"}
        for mod in [m for n, m in sys.modules.items() if n.split(".")[0] == "trackio"]:
            for attr in ("TRACKIO_DIR", "MEDIA_DIR", "ARTIFACTS_DIR"):
                value = getattr(mod, attr, None)
                if isinstance(value, Path) and value in moved:
                    setattr(mod, attr, moved[value])
    return trackio


def _safe_id(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:64]
