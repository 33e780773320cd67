"""wandb (offline) and trackio for real: a micro run logged to each, then read back from the files
they wrote (wandb: its transaction log, run-<id>.wandb; trackio: its SQLite store): the config as
hyperparameters (with the commit and versions), every round's metrics
and each training stage's loss per step. Skipped where the package is not installed (``make
test-slow`` installs both)."""

from __future__ import annotations

import json
import sqlite3
import struct
from pathlib import Path

import pytest

from selfplay.engine.loop import run
from selfplay.engine.tracking import hparams, log_stage, run_id, run_name, trainer_tracking
from tests.test_loop import micro_config

# wandb's transaction log (run-<id>.wandb): LevelDB's log format, 32 KiB blocks of chunks, each
# with a 7-byte header (crc32, length, type), around serialized protobuf Records.
BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def wandb_records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    ident, _magic, _version = struct.unpack("<4sHB", data[:HEADER])
    assert ident == b":W&B", path
    records, chunk, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0:  # zeros: the rest of the block is unused
            pos += left
            continue
        chunk += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def wandb_history(run_dirs: list[Path]) -> list[dict]:
    """Every history row (key -> value, with ``_step``) of a wandb run's offline directories."""
    rows = []
    for d in run_dirs:
        for record in wandb_records(next(d.glob("run-*.wandb"))):
            if record.WhichOneof("record_type") == "history":
                row = {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
                rows.append({"_step": record.history.step.num} | row)
    return rows


def wandb_config(run_dir: Path) -> dict:
    """A wandb run's config (key -> value): the run record's, then every later update (TRL adds
    its arguments so)."""
    config = {}
    for record in wandb_records(next(run_dir.glob("run-*.wandb"))):
        kind = record.WhichOneof("record_type")
        items = {"run": record.run.config.update, "config": record.config.update}.get(kind, [])
        for item in items:
            config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return config


def wandb_runs(root: Path, wandb_id: str) -> list[Path]:
    """The offline directories of one wandb run, in order (a resumed run writes one per resume,
    ``offline-run-<time>-<id>``, a suffix added where two share a second)."""
    dirs = sorted((root / "wandb").glob("offline-run-*"))
    return [d for d in dirs if _wandb_run_id(d) == wandb_id]


def _wandb_run_id(run_dir: Path) -> str:
    records = wandb_records(next(run_dir.glob("run-*.wandb")))
    return next(r.run.run_id for r in records if r.WhichOneof("record_type") == "run")


@pytest.fixture
def wandb_offline(monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_RUN_ID", "WANDB_RUN_GROUP", "WANDB_RESUME", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.slow  # needs the wandb / trackio extras, which the slow suite installs
def test_wandb_run_ids_follow_the_run_directory(tmp_path, wandb_offline):
    """The round metrics go to the run ``run_id``: the same directory resumes it, another
    directory with the same config name opens its own."""
    a, b = micro_config(tmp_path, "a"), micro_config(tmp_path, "b")
    for cfg in (a, b):
        cfg.tracking.backend = "wandb"
        for k in (0, 1):
            stage = cfg.run_dir / f"stage_{k}"
            stage.mkdir(parents=True)
            log_stage(cfg, stage, {"stage": stage.name, "iteration": k, "eval": {"acc": k / 2}})
    for cfg in (a, b):
        dirs = wandb_runs(cfg.run_dir / "tracking", run_id(cfg))
        assert len(dirs) == 2  # one per round: the run resumed
        rows = wandb_history(dirs)
        assert [(r["_step"], r["round/eval/acc"]) for r in rows] == [(0, 0.0), (1, 0.5)]
        assert wandb_config(dirs[0])["run.dir"] == str(cfg.run_dir.resolve())
    assert run_id(a) != run_id(b) and run_name(a) == run_name(b)


@pytest.mark.slow  # a whole micro loop: a minute or more on a shared 2-core machine
def test_wandb_offline_logs_config_rounds_and_curves(tmp_path, wandb_offline):
    cfg = micro_config(tmp_path, tracking={"backend": "wandb"}, loop={"iterations": 1})
    rows = run(cfg, progress=False)
    root, rid = cfg.run_dir / "tracking", run_id(cfg)
    expected = hparams(cfg)
    # The round metrics: one run, resumed per round, step = round.
    history = wandb_history(wandb_runs(root, rid))
    assert [h["_step"] for h in history] == [0, 1]
    assert [h["round/eval/accuracy_in"] for h in history] == pytest.approx(
        [r["eval"]["accuracy_in"] for r in rows]
    )
    assert "round/generate/pass_rate" in history[1] and "round/cumulative/flops" in history[1]
    # Each training stage: its own run in the group, loss per optimizer step, with the config.
    for stage in ("seed", "iter_001"):
        (d,) = wandb_runs(root, f"{rid}-{stage}")
        history = wandb_history([d])
        curve = [(h["train/global_step"], h["train/loss"]) for h in history if "train/loss" in h]
        assert len(curve) >= 2 and [s for s, _ in curve] == sorted({s for s, _ in curve}), stage
        if stage == "seed":  # from a random model: the loss falls
            assert curve[-1][1] < curve[0][1]
        config = wandb_config(d)
        assert config["train.lr"] == cfg.train.lr and config["commit"] == expected["commit"]
        # TRL's own arguments beside ours: the stage's learning rate as it trained.
        lr = cfg.seed_train.lr if stage == "seed" else cfg.train.lr
        assert config["learning_rate"] == pytest.approx(lr)
    config = wandb_config(wandb_runs(root, rid)[0])
    for key in ("train.lr", "loop.iterations", "commit", "versions.torch", "run.id"):
        assert config[key] == expected[key], key


def _trackio_db(root: Path) -> sqlite3.Connection:
    (db,) = root.glob("*.db")
    return sqlite3.connect(db)


@pytest.mark.slow  # needs the wandb / trackio extras, which the slow suite installs
def test_trackio_logs_each_run_directory_in_its_own_store(tmp_path):
    """trackio reads its directory once per process; two runs in one process (a sweep's regimes)
    still each write under their own ``tracking.dir``."""
    pytest.importorskip("trackio")
    for name in ("a", "b"):
        cfg = micro_config(tmp_path, name, tracking={"backend": "trackio"})
        stage = cfg.run_dir / "seed"
        stage.mkdir(parents=True)
        log_stage(cfg, stage, {"stage": "seed", "iteration": 0, "eval": {"acc": 0.25}})
        with _trackio_db(cfg.run_dir / "tracking") as db:
            names = {n for (n,) in db.execute("SELECT run_name FROM metrics")}
            (config,) = db.execute("SELECT config FROM configs").fetchone()
        assert names == {run_id(cfg)}
        assert json.loads(config)["run.dir"] == str(cfg.run_dir.resolve())
    with trainer_tracking(cfg, "iter_001") as args:
        assert args["run_name"] == f"{run_id(cfg)}/iter_001"
        assert args["project"] == cfg.tracking.project


@pytest.mark.slow  # a whole micro loop: a minute or more on a shared 2-core machine
def test_trackio_logs_config_rounds_and_curves(tmp_path):
    pytest.importorskip("trackio")
    cfg = micro_config(tmp_path, tracking={"backend": "trackio"}, loop={"iterations": 1})
    rows = run(cfg, progress=False)
    rid, expected = run_id(cfg), hparams(cfg)
    with _trackio_db(cfg.run_dir / "tracking") as db:
        logged = db.execute("SELECT run_name, step, metrics FROM metrics ORDER BY id").fetchall()
        configs = dict(db.execute("SELECT run_name, config FROM configs").fetchall())
    rounds = [(step, json.loads(m)) for name, step, m in logged if name == rid]
    assert [s for s, _ in rounds] == [0, 1]
    assert [m["round/eval/accuracy_in"] for _, m in rounds] == pytest.approx(
        [r["eval"]["accuracy_in"] for r in rows]
    )
    assert "round/generate/pass_rate" in rounds[1][1]
    config = json.loads(configs[rid])
    for key in ("train.lr", "loop.iterations", "commit", "versions.torch", "run.dir"):
        assert config[key] == expected[key], key
    assert config["_Group"] == run_name(cfg)
    # Each training stage: its own run, TRL's loss per optimizer step and its arguments.
    for stage in ("seed", "iter_001"):
        logs = [json.loads(m) for name, _, m in logged if name == f"{rid}/{stage}"]
        curve = [(m["train/global_step"], m["train/loss"]) for m in logs if "train/loss" in m]
        assert len(curve) >= 2 and [s for s, _ in curve] == sorted({s for s, _ in curve}), stage
        if stage == "seed":  # from a random model: the loss falls
            assert curve[-1][1] < curve[0][1]
        lr = cfg.seed_train.lr if stage == "seed" else cfg.train.lr
        assert json.loads(configs[f"{rid}/{stage}"])["learning_rate"] == pytest.approx(lr)


@pytest.mark.slow  # needs the wandb / trackio extras, which the slow suite installs
def test_wandb_stage_runs_are_opened_with_their_id_and_group(tmp_path, wandb_offline):
    """TRL's callback logs into the run opened here (wandb reads its environment once per
    process); a launched worker, a fresh process, is told the same through the environment."""
    import os

    import wandb

    cfg = micro_config(tmp_path, tracking={"backend": "wandb"})
    rid = run_id(cfg)
    with trainer_tracking(cfg, "iter_002") as args:
        assert args == {"report_to": ["wandb"], "run_name": "micro/iter_002"}
        assert wandb.run.id == f"{rid}-iter_002" and wandb.run.group == rid
        assert wandb.run.config["train.lr"] == cfg.train.lr
    assert wandb.run is None  # finished with the stage
    launched = micro_config(tmp_path, tracking={"backend": "wandb"}, train={"num_processes": 2})
    with trainer_tracking(launched, "seed"):
        assert wandb.run is None
        assert os.environ["WANDB_RUN_ID"] == f"{rid}-seed"
        assert os.environ["WANDB_RUN_GROUP"] == rid
        assert os.environ["WANDB_DIR"] == str(launched.run_dir / "tracking")
    assert "WANDB_RUN_ID" not in os.environ
