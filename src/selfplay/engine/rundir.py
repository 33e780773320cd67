"""A run directory: its layout, the resolved config it was started with, and its metrics log.

<run>/config.yaml          resolved config (a rerun with another config is refused)
<run>/metrics.jsonl        one line per finished stage, rebuilt from the stages' metrics.json
<run>/seed/                raw.parquet (U), raw.json, model/, train.json, eval.json, metrics.json
<run>/fresh.parquet        the raw-fresh baseline's corpus (that arm only)
<run>/iter_<k>/            samples.parquet, kept.parquet, model/, train.json, eval.json, ...
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from selfplay.config import RunConfig, config_to_dict, dump_config
from selfplay.engine import artifacts
from selfplay.engine.artifacts import (  # the run's stage names: also what a damaged file's error says
    repair_hint,
    stage_dirs,
    stage_round,
)
from selfplay.errors import ConfigError

RESUMABLE_CHANGES = {
    "loop.iterations",
    "output_dir",
    *(f"tracking.{k}" for k in ("backend", "dir", "project", "run_name")),
}
"""Keys a rerun may change without invalidating finished stages."""


def seed_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "seed"


def round_dir(run_dir: Path, k: int) -> Path:
    """Round ``k``'s directory; round 0 is the seed stage."""
    return seed_dir(run_dir) if k == 0 else Path(run_dir) / f"iter_{k:03d}"


def git(*args: str) -> str:
    """``git ARGS`` in this code's repository, stripped; "" where git or the repository is not
    there."""
    import subprocess

    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def environment() -> dict:
    """Versions of the code and the libraries that decide results (written into config.yaml)."""
    import platform

    import torch
    import transformers
    import trl

    from selfplay import __version__

    sha = git("rev-parse", "--short", "HEAD")
    return {
        "selfplay": __version__,
        "git": sha or "unknown",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
    }


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "sft":
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


LOCK_FILE = ".lock"


@contextmanager
def writer_lock(run_dir: Path, wait_s: float = 0.0):
    """Hold the run directory for one writer: a second ``selfplay run`` (or a bench's retried
    job) into it while this one runs is refused with a one-line error, not interleaved; with
    ``wait_s`` it waits that long for the holder to finish first (a retried attempt whose earlier
    attempt is still dying). The lock is the kernel's (``flock``), so a killed run leaves none
    behind and a rerun resumes."""
    import fcntl

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fh = open(run_dir / LOCK_FILE, "a+")  # noqa: SIM115 (held open for the lock's lifetime)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(min(1.0, max(0.05, wait_s / 20)))
                    continue
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                waited = f" (waited {wait_s:g} s)" if wait_s else ""
                raise ConfigError(
                    f"{run_dir} is being written by {holder}{waited}; wait for it to finish "
                    "(rerunning then resumes) or use another output_dir"
                ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"selfplay pid {os.getpid()} on {socket.gethostname()}")
        fh.flush()
        yield
    finally:
        fh.close()  # releases the lock


def check_run_dir(cfg: RunConfig) -> bool:
    """Whether the run directory holds this run already (a rerun resumes it; False: there is no
    run to resume); a one-line error where it holds another run or an unreadable config. Reads
    only (``selfplay run --dry-run`` asks it too)."""
    import yaml

    run_dir = cfg.run_dir
    path = run_dir / "config.yaml"
    if not path.exists():
        return False
    try:
        saved = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError):
        saved = None
    if not isinstance(saved, dict):
        raise ConfigError(
            f"{path}: not a readable config; write it again from the config the run was started "
            f"with (`selfplay config CONFIG [key=value ...] > {shlex.quote(str(path))}`: the run "
            "then resumes), or delete the run directory"
        )
    old = _flatten(saved)
    new = _flatten(config_to_dict(cfg))
    # A key the saved config lacks (written by an older version) matches its default.
    defaults = _flatten(config_to_dict(RunConfig()))
    diff = [
        k
        for k in sorted(set(old) | set(new))
        if old.get(k, defaults.get(k)) != new.get(k) and k not in RESUMABLE_CHANGES
    ]
    if diff:
        k = diff[0]
        raise ConfigError(
            f"{run_dir} holds a run with another config ({k}: {old.get(k)!r} there, "
            f"{new.get(k)!r} now); use another output_dir or delete it"
        )
    return True


def prepare_run_dir(cfg: RunConfig) -> Path:
    """Create the run directory, or check that an existing one holds the same run."""
    run_dir = cfg.run_dir
    path = run_dir / "config.yaml"
    check_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    artifacts.clean_temporaries(run_dir)
    env = environment()
    header = (
        "# resolved config of this run; " + ", ".join(f"{k} {v}" for k, v in env.items()) + "\n"
    )
    header += f"# rerun (resumes): selfplay run {path}\n"
    artifacts.write_text(path, header + dump_config(cfg))
    return run_dir


def finished_rounds(run_dir: Path) -> list[int]:
    """Rounds (0 = seed) whose metrics.json exists, in order."""
    out = [0] if (seed_dir(run_dir) / "metrics.json").exists() else []
    names = [p.parent.name[5:] for p in Path(run_dir).glob("iter_*/metrics.json")]
    return out + sorted(int(n) for n in names if n.isdigit())


def read_metrics(run_dir: Path, require: tuple[str, ...] = ()) -> list[dict]:
    """Every finished stage's metrics, in order (reads only); a damaged one, or one without a
    field of ``require`` (e.g. :data:`selfplay.engine.artifacts.REQUIRED`), is a one-line error
    naming it and the command that redoes its stage."""
    rows = []
    for k in finished_rounds(run_dir):
        path = round_dir(run_dir, k) / "metrics.json"
        rows.append(artifacts.read_json(path))
        artifacts.check_fields(path, rows[-1], {}, require)
    return rows


def write_metrics_log(run_dir: Path, require: tuple[str, ...] = ()) -> list[dict]:
    """Rebuild ``metrics.jsonl`` from every finished stage (idempotent, so resume never duplicates)."""
    rows = read_metrics(run_dir, require)
    artifacts.write_jsonl(run_dir / "metrics.jsonl", rows)
    return rows


# ------------------------------------------------------------------------------------------------
# A damaged stage: where it is, what redoes it


def stages_to_redo(run_dir: Path, stage: str) -> list[Path]:
    """The directories that redoing ``stage`` (``seed``, ``iter_<k>`` or the round's number)
    removes: it and every later stage. A one-line error where the run has no such stage."""
    m = re.fullmatch(r"seed|(?:iter_?)?(\d+)", stage)
    k = None if m is None else int(m[1] or 0)
    dirs = stage_dirs(run_dir) if Path(run_dir).is_dir() else []
    have = ", ".join(p.name for p in dirs) or "none"
    gone = [p for p in dirs if k is not None and stage_round(p.name) >= k]
    if not gone or stage_round(gone[0].name) != k:
        raise ConfigError(
            f"--redo {stage}: {Path(run_dir)} has no such stage (give one of its stages: {have})"
        )
    return gone


def redo_stage(run_dir: Path, stage: str) -> list[str]:
    """Remove ``stage`` and every later stage (:func:`stages_to_redo`) from the run in
    ``run_dir``, so that the next run of it does them again; returns the names removed. The
    last goes first, so a run killed in the middle leaves a run that resumes where the removal
    stopped (a finished stage never follows a removed one)."""
    gone = stages_to_redo(run_dir, stage)
    # What a finished run derived from its last stage: measured or rebuilt again.
    for name in ("final.json", "metrics.jsonl"):
        (Path(run_dir) / name).unlink(missing_ok=True)
    for p in reversed(gone):
        tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")  # out of sight at once, then removed
        os.replace(p, tmp)
        shutil.rmtree(tmp)
    return [p.name for p in gone]


def missing_samples(run_dir: Path, k: int, metrics: dict | None = None) -> str | None:
    """Where round ``k`` finished having sampled (its metrics have ``generate``) but its
    ``samples.parquet`` is gone: a line naming it and the command that redoes the round."""
    path = round_dir(run_dir, k) / "samples.parquet"
    done = path.with_name("metrics.json")
    if k == 0 or path.exists() or not (metrics is not None or done.exists()):
        return None
    if "generate" not in (metrics if metrics is not None else artifacts.read_json(done)):
        return None
    return f"{path}: missing from the finished stage {path.parent.name}; {repair_hint(path)}"


MODEL_DIR = "model"


def check_stages(run_dir: Path) -> None:
    """A one-line error naming the first artifact of a finished stage that is missing or
    damaged, with the command that redoes the stage (:func:`repair_hint`); reads every record
    and checks every other file's header (a Parquet file's footer and columns, a safetensors
    file's index, a JSON file's syntax), so it is quick for a run of any size."""
    for k in finished_rounds(run_dir):
        d = round_dir(run_dir, k)
        m = artifacts.read_json(d / "metrics.json")
        # The loop reads the previous stage's cumulative costs.
        artifacts.check_fields(d / "metrics.json", m, {}, (*artifacts.REQUIRED, "cumulative"))
        needed = [MODEL_DIR]
        if "generate" in m:  # a round that sampled keeps its samples (and its labels: kept)
            needed += ["samples.parquet"] + (["kept.parquet"] if "grpo" not in m else [])
        for name in needed:
            if not (d / name).exists():
                raise artifacts.damaged(d / name, f"missing from the finished stage {d.name}")
        if not (d / MODEL_DIR / "config.json").is_file():
            raise artifacts.damaged(
                d / MODEL_DIR / "config.json", f"missing from the finished stage {d.name}"
            )
        for path in sorted(d.rglob("*")):
            check_file(path, d)


def check_file(path: Path, stage_dir: Path) -> None:
    """A one-line error where one file of a stage is damaged (a temporary is not looked at)."""
    if any(part.startswith(".") for part in path.relative_to(stage_dir).parts):
        return
    if path.suffix == ".parquet":
        artifacts.check_parquet(path)
    elif path.suffix == ".json":
        artifacts.read_json(path)
    elif path.suffix == ".safetensors":
        artifacts.check_safetensors(path)


def share_seed(src: Path, dst: Path) -> None:
    """Give an arm the seed model another arm trained (hard links; atomic rename)."""
    if (dst / "metrics.json").exists() or not (src / "metrics.json").exists():
        return
    tmp = dst.with_name(f".seed.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    # Not the writer's lock: each directory has its own (a linked one would be one lock for both).
    shutil.copytree(src, tmp, copy_function=os.link, ignore=shutil.ignore_patterns(LOCK_FILE))
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)


def link_run(src: Path, dst: Path) -> None:
    """Start a continued run from a finished one: its files hard-linked (every artifact is
    replaced atomically, never written in place, so the two never change each other)."""
    if dst.exists():
        return
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    # Not the writer's lock: each directory has its own (a linked one would be one lock for both).
    shutil.copytree(src, tmp, copy_function=os.link, ignore=shutil.ignore_patterns(LOCK_FILE))
    os.replace(tmp, dst)
