"""Experiment tracking: TensorBoard event files read back (curves, round metrics, the config as
hparams and text), the tracked run's id, one-line errors, bench run names. wandb and trackio
themselves: tests/test_tracking_backends.py."""

from __future__ import annotations

import importlib.util
import os

import pytest

from selfplay.bench.config import BenchConfig, arm_config
from selfplay.config import ConfigError
from selfplay.engine.loop import run
from selfplay.engine.rundir import environment
from selfplay.engine.tracking import (
    check_tracking,
    flat_config,
    flat_scalars,
    hparams,
    log_stage,
    run_id,
    run_name,
    trainer_tracking,
)
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
    # The advice installs this project's extra, not PyPI's unrelated package of the same name.
    with pytest.raises(ConfigError, match=r"tracking.backend=wandb: the wandb package is not") as e:
        check_tracking(cfg)
    assert "pip install wandb; in a checkout of this project: pip install -e '.[wandb]'" in str(
        e.value
    )
    assert "selfplay[" not in str(e.value)
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


def test_wandb_project_names_it_refuses_are_one_line(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(  # installed or not: the name is checked without importing it
        importlib.util, "find_spec", lambda name, *a: name == "wandb" or real(name, *a)
    )
    cfg = micro_config(tmp_path, tracking={"backend": "wandb", "project": "a/b"})
    with pytest.raises(ConfigError, match=r"tracking.project='a/b': a wandb project name"):
        check_tracking(cfg)


def test_run_id_is_the_name_plus_a_hash_of_the_run_directory(tmp_path, monkeypatch):
    a = micro_config(tmp_path, "a")
    # Same name and config, another directory (another output_dir or other overrides): its own.
    b = micro_config(tmp_path, "b")
    assert run_name(a) == run_name(b) == "micro"  # the readable name stays the config's
    assert run_id(a) != run_id(b)
    assert run_id(a).startswith("micro-") and run_id(b).startswith("micro-")
    # The same directory, however it is written, is the same tracked run (a rerun resumes it).
    assert run_id(micro_config(tmp_path, "a")) == run_id(a)
    monkeypatch.chdir(tmp_path)
    relative = micro_config(tmp_path, "a")
    relative.output_dir = "a"
    assert run_id(relative) == run_id(a)
    # A long name with characters a backend refuses: cut, cleaned, hash kept.
    long = micro_config(tmp_path, tracking={"run_name": "x/" * 40})
    assert len(run_id(long)) <= 64 and not set(run_id(long)) & set("/\\#?%:;,' ")
    assert run_id(long)[-9:] == run_id(micro_config(tmp_path))[-9:]


def test_bench_arms_keep_their_names_and_get_one_id_each(tmp_path):
    bench = BenchConfig(
        name="b", output_dir=str(tmp_path / "b"), seeds=[0, 1], arms={"x": [], "y": []}
    )
    bench.tracking.backend = "wandb"
    cfgs = [arm_config(bench, a, s) for a in bench.arms for s in bench.seeds]
    assert [run_name(c) for c in cfgs] == ["b/x/seed_0", "b/x/seed_1", "b/y/seed_0", "b/y/seed_1"]
    ids = [run_id(c) for c in cfgs]
    assert len(set(ids)) == 4 and ids[0].startswith("b-x-seed_0-")


def test_hparams_hold_the_resolved_config_the_commit_and_the_versions(tmp_path):
    cfg = micro_config(tmp_path, train={"lr": 0.0123})
    hp = hparams(cfg)
    env = environment()
    assert hp["train.lr"] == 0.0123 and hp["loop.iterations"] == cfg.loop.iterations
    assert hp["eval.difficulties"] == [1, 2, 3] and hp["model.preset"] == cfg.model.preset
    assert hp["train.sft"] == {}  # an empty mapping is kept, as a value
    assert hp["commit"] == env["git"]
    assert hp["versions.torch"] == env["torch"] and hp["versions.trl"] == env["trl"]
    assert hp["run.id"] == run_id(cfg) and hp["run.dir"] == str(cfg.run_dir.resolve())
    assert not any(isinstance(v, dict) and v for v in hp.values())  # one level: dotted keys


def test_flat_config_dots_nested_keys():
    assert flat_config({"a": {"b": {"c": 1}, "d": []}, "e": None}) == {
        "a.b.c": 1,
        "a.d": [],
        "e": None,
    }


def _hparams_and_text(directory):
    """The hparams (name -> value) and the text summaries TensorBoard holds for a run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    acc = EventAccumulator(str(directory), size_guidance={"tensors": 0})
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = HParamsPluginData.FromString(content).session_start_info
    values = {}
    for k, v in start.hparams.items():
        kind = v.WhichOneof("kind")
        values[k] = getattr(v, kind)
    texts = {
        tag: [t.tensor_proto.string_val[0].decode() for t in acc.Tensors(tag)]
        for tag in acc.Tags()["tensors"]
        if tag.startswith("config")
    }
    return values, texts


def test_tensorboard_logs_the_config_as_hparams_and_text(tmp_path):
    cfg = micro_config(tmp_path, tracking={"backend": "tensorboard"}, train={"lr": 0.0123})
    seed = tmp_path / "seed"
    seed.mkdir()
    log_stage(cfg, seed, {"stage": "seed", "iteration": 0, "eval": {"accuracy_in": 0.5}})
    root = cfg.run_dir / "tracking" / "micro"
    values, texts = _hparams_and_text(root)
    expected = hparams(cfg)
    assert values["train.lr"] == pytest.approx(0.0123)
    assert values["model.preset"] == cfg.model.preset
    assert values["commit"] == expected["commit"]
    assert values["versions.transformers"] == expected["versions.transformers"]
    assert values["run.id"] == run_id(cfg)
    assert values["eval.difficulties"] == "[1, 2, 3]"  # a list, as text
    # The Text tab: the config as config.yaml holds it, under the commit and versions.
    (text,) = texts["config/text_summary"]
    assert f"commit {expected['commit']}" in text and "lr: 0.0123" in text
    assert _scalars(root) == {"round/eval/accuracy_in": [(0, 0.5)]}
