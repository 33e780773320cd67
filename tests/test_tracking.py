"""Experiment tracking: TensorBoard event files read back, one-line errors, bench run names."""

from __future__ import annotations

import importlib.util
import os

import pytest

from selfplay.bench.config import BenchConfig, arm_config
from selfplay.config import ConfigError
from selfplay.engine.loop import run
from selfplay.engine.tracking import check_tracking, flat_scalars, log_stage, trainer_tracking
from tests.test_loop import micro_config


def _scalars(directory):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.slow  # a whole (micro) loop: minutes on a shared 2-core machine
def test_tensorboard_logs_training_curves_and_round_metrics(tmp_path):
    cfg = micro_config(tmp_path, tracking={"backend": "tensorboard"}, loop={"iterations": 1})
    rows = run(cfg, progress=False)
    root = cfg.run_dir / "tracking" / "micro"
    rounds = _scalars(root)
    # Step = round (0: the seed model); the logged values are the metrics.json values.
    acc = rounds["round/eval/accuracy_in"]
    assert [s for s, _ in acc] == [0, 1]
    assert [v for _, v in acc] == pytest.approx([r["eval"]["accuracy_in"] for r in rows])
    assert [s for s, _ in rounds["round/generate/pass_rate"]] == [1]
    assert any(t.startswith("round/cumulative/") for t in rounds)
    # Training curves of every stage survive the trainer's work directory being removed.
    for stage in ("seed", "iter_001"):
        curves = _scalars(root / "train" / stage)
        assert curves["train/loss"], stage
        assert not (cfg.run_dir / stage / ".trainer").exists()
    # A rerun (resume of a finished run) logs nothing twice.
    run(cfg, progress=False)
    assert [s for s, _ in _scalars(root)["round/eval/accuracy_in"]] == [0, 1]


def test_round_metrics_are_logged_once_per_run_name(tmp_path):
    cfg = micro_config(tmp_path, tracking={"backend": "tensorboard", "run_name": "arm/seed_0"})
    stage = tmp_path / "iter_001"
    stage.mkdir()
    metrics = {"stage": "iter_001", "iteration": 1, "eval": {"accuracy_in": 0.75}, "n": 3}
    log_stage(cfg, stage, metrics)
    log_stage(cfg, stage, {**metrics, "n": 4})  # a resumed run: already logged
    got = _scalars(cfg.run_dir / "tracking" / "arm" / "seed_0")
    assert got == {"round/eval/accuracy_in": [(1, 0.75)], "round/n": [(1, 3.0)]}
    # Another run name (another arm sharing the seed directory's files) logs its own.
    other = micro_config(tmp_path, tracking={"backend": "tensorboard", "run_name": "b/seed_0"})
    log_stage(other, stage, metrics)
    assert _scalars(other.run_dir / "tracking" / "b" / "seed_0")["round/n"] == [(1, 3.0)]


def test_trainer_tracking_points_trl_at_the_log_dir(tmp_path):
    cfg = micro_config(tmp_path, tracking={"backend": "tensorboard"})
    with trainer_tracking(cfg, "iter_002") as args:
        assert args == {"report_to": ["tensorboard"], "run_name": "micro/iter_002"}
        logdir = os.environ["TENSORBOARD_LOGGING_DIR"]
        assert logdir == str(cfg.run_dir / "tracking" / "micro" / "train" / "iter_002")
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ or os.environ[
        "TENSORBOARD_LOGGING_DIR"] != logdir  # fmt: skip
    with trainer_tracking(micro_config(tmp_path), "seed") as args:
        assert args == {}


def test_missing_backend_is_one_line(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    cfg = micro_config(tmp_path, tracking={"backend": "wandb"})
    with pytest.raises(ConfigError, match=r"tracking.backend=wandb: the wandb package is not"):
        check_tracking(cfg)
    with pytest.raises(ConfigError, match="tracking.backend"):
        run(cfg, progress=False)
    assert not cfg.run_dir.exists()  # refused before anything was written
    cfg = micro_config(tmp_path, train={"sft": {"report_to": "tensorboard"}})
    with pytest.raises(ConfigError, match="train.sft.report_to: set tracking.backend"):
        check_tracking(cfg)


def test_bench_names_one_tracking_run_per_arm_and_seed(tmp_path):
    bench = BenchConfig(
        name="b",
        output_dir=str(tmp_path / "b"),
        seeds=[0, 1],
        arms={"raw-repeat": ["loop.data_source=raw-repeat"], "sp": []},
    )
    bench.tracking.backend = "tensorboard"
    names = {arm_config(bench, a, s).tracking.run_name for a in bench.arms for s in bench.seeds}
    assert names == {"b/raw-repeat/seed_0", "b/raw-repeat/seed_1", "b/sp/seed_0", "b/sp/seed_1"}
    assert arm_config(bench, "sp", 0).tracking.dir == str(tmp_path / "b" / "tracking")


def test_flat_scalars_keeps_numbers_only():
    m = {"eval": {"accuracy": {"1": 0.5, "all": 0.25}, "note": "x"}, "ok": True, "n": float("nan")}
    assert flat_scalars(m) == {"eval/accuracy/1": 0.5, "eval/accuracy/all": 0.25}
