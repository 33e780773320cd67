"""The loop end to end on a micro budget: artifacts, accounting, resume, CLI errors."""

from __future__ import annotations

import json

import pytest
import torch

from selfplay.cli import main
from selfplay.config import ConfigError, config_from_dict
from selfplay.engine import artifacts
from selfplay.engine.loop import STOP_ENV, StageInterrupt, run

MICRO = {
    "name": "micro",
    "raw": {"size": 200, "difficulties": [1, 2]},
    "seed_train": {"tokens": 4000},
    "loop": {"iterations": 2, "pool_difficulties": [1, 2, 3], "problems_per_iter": 12},
    "generation": {"n": 2, "batch_size": 32},
    # Keep every sample, so the round really trains on self-generated data even from a weak model.
    "filters": {"verified": False, "max_per_problem": 0},
    "train": {"tokens": 3000, "batch_size": 16},
    "eval": {"difficulties": [1, 2, 3], "n_per_difficulty": 4, "k": 2},
}


def micro_config(tmp_path, name="run", **sections):
    data = json.loads(json.dumps(MICRO))
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    data["output_dir"] = str(tmp_path / name)
    return config_from_dict(data)


def model_state(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path)).state_dict()


def test_one_iteration_writes_every_artifact(tmp_path):
    cfg = micro_config(tmp_path, loop={"iterations": 1})
    rows = run(cfg, progress=False)
    d = cfg.run_dir
    for rel in [
        "config.yaml",
        "metrics.jsonl",
        "seed/raw.parquet",
        "seed/model/config.json",
        "seed/metrics.json",
        "iter_001/samples.parquet",
        "iter_001/kept.parquet",
        "iter_001/model/model.safetensors",
        "iter_001/metrics.json",
        "seed/eval_samples.parquet",
        "iter_001/eval_samples.parquet",
    ]:
        assert (d / rel).exists(), rel
    evals = artifacts.read_parquet(d / "iter_001" / "eval_samples.parquet")
    assert len(evals) == 3 * 4 and {e["origin"] for e in evals} == {"eval-greedy"}
    assert [r["stage"] for r in rows] == ["seed", "iter_001"]
    samples = artifacts.read_parquet(d / "iter_001" / "samples.parquet")
    assert len(samples) == 12 * 2
    for s in samples:
        assert s["status"] in {"correct", "wrong", "unparseable", "timeout", "error"}
        assert s["finish_reason"] in {"stop", "length"}
        assert s["tokens"] >= 1
        assert s["filter_reason"]
    it = rows[1]
    # The round trained on its own samples and the accounting adds up.
    assert it["train"]["selfplay_examples"] == it["filter"]["kept"] > 0
    assert it["cumulative"]["train_tokens"] == rows[0]["train"]["tokens"] + it["train"]["tokens"]
    assert (
        it["cumulative"]["generated_tokens"]
        == sum(s["tokens"] for s in samples)
        == it["generate"]["generated_tokens"]
    )
    assert 2000 <= it["train"]["tokens"] <= 6000
    # Training changed every parameter tensor of the model.
    before, after = model_state(d / "seed" / "model"), model_state(d / "iter_001" / "model")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert set(changed) == {k for k in before if before[k].is_floating_point()} - {
        k for k in before if "rotary" in k
    }
    # metrics.jsonl has one line per stage.
    lines = (d / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["stage"] for x in lines] == ["seed", "iter_001"]
    ev = it["eval"]
    assert set(ev["accuracy"]) == {"1", "2", "3", "all"}
    assert {"pass@1", "pass@2", "maj@2", "valid"} <= set(ev)


def test_verified_filter_keeps_only_valid_chains(tmp_path):
    cfg = micro_config(
        tmp_path, loop={"iterations": 1}, filters={"verified": True, "max_per_problem": 1}
    )
    run(cfg, progress=False)
    samples = artifacts.read_parquet(cfg.run_dir / "iter_001" / "samples.parquet")
    for s in samples:
        assert s["kept"] == (s["valid"] and s["filter_reason"] == "kept")
        if not s["kept"]:
            assert s["filter_reason"] != "kept"


@pytest.mark.parametrize(
    "stop_after",
    [
        "seed/raw",
        "seed/train",
        "iter_001/generate",
        "iter_001/verify",
        "iter_001/filter",
        "iter_001/train",
        "iter_001/eval",
        "iter_002/eval",
    ],
)
def test_resume_after_interrupt_gives_same_artifacts(tmp_path, monkeypatch, stop_after):
    ref_cfg = micro_config(tmp_path, "ref")
    ref = run(ref_cfg, progress=False)

    cfg = micro_config(tmp_path, "resumed")
    monkeypatch.setenv(STOP_ENV, stop_after)
    with pytest.raises(StageInterrupt):
        run(cfg, progress=False)
    # A temporary left by a kill in the middle of a write must not survive or count as done.
    (cfg.run_dir / "seed" / ".raw.parquet.tmp-999").write_text("half")
    monkeypatch.delenv(STOP_ENV)
    rows = run(cfg, progress=False)

    assert not list(cfg.run_dir.rglob("*.tmp-*"))
    assert [r["eval"] for r in rows] == [r["eval"] for r in ref]
    assert [r["train"]["tokens"] for r in rows] == [r["train"]["tokens"] for r in ref]
    for k in (1, 2):
        a = artifacts.read_parquet(ref_cfg.run_dir / f"iter_{k:03d}" / "samples.parquet")
        b = artifacts.read_parquet(cfg.run_dir / f"iter_{k:03d}" / "samples.parquet")
        assert a == b
    sa, sb = (
        model_state(ref_cfg.run_dir / "iter_002" / "model"),
        model_state(cfg.run_dir / "iter_002" / "model"),
    )
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_rerun_of_finished_run_is_a_no_op(tmp_path):
    cfg = micro_config(tmp_path, loop={"iterations": 1})
    first = run(cfg, progress=False)
    mtime = (cfg.run_dir / "iter_001" / "metrics.json").stat().st_mtime_ns
    done = []
    again = run(cfg, progress=False, on_stage=lambda m: done.append(m["stage"]))
    assert again == first
    assert done == ["seed", "iter_001"]  # each "done" line names its own stage
    assert (cfg.run_dir / "iter_001" / "metrics.json").stat().st_mtime_ns == mtime
    # A finished stage whose checkpoint was deleted is found, not passed over.
    import shutil

    shutil.rmtree(cfg.run_dir / "iter_001" / "model")
    with pytest.raises(ConfigError, match="iter_001/model: missing from the finished stage") as e:
        run(cfg, progress=False)
    assert "--redo iter_001` redoes iter_001" in str(e.value)


def test_resume_with_another_config_is_refused(tmp_path):
    run(micro_config(tmp_path, loop={"iterations": 1}), progress=False)
    with pytest.raises(ConfigError, match="train.lr"):
        run(micro_config(tmp_path, loop={"iterations": 1}, train={"lr": 0.01}), progress=False)


def test_cli_bad_config_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("train:\n  lrr: 0.1\n")
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "train.lrr" in err and "train.lr" in err
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["run", str(cfg).replace("bad", "x"), "generation.n=zero"]) == 2


def test_cli_run_prints_summary(tmp_path, capsys):
    cfg = tmp_path / "micro.yaml"
    import yaml

    data = {
        **MICRO,
        "loop": {**MICRO["loop"], "iterations": 1},
        "output_dir": str(tmp_path / "out"),
    }
    cfg.write_text(yaml.safe_dump(data))
    assert main(["run", str(cfg), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "iter_001" in out and "acc d3" in out
    assert main(["summary", str(tmp_path / "out")]) == 0
    assert main(["summary", str(tmp_path)]) == 2


def test_model_loaded_by_path(tmp_path):
    """Any causal LM saved with save_pretrained can seed a run (here: a tiny one saved locally)."""
    from selfplay.engine.models import build_char_tokenizer, build_model

    tok = build_char_tokenizer()
    model = build_model("tiny", tok, seed=7)
    model.save_pretrained(tmp_path / "local-lm")
    tok.save_pretrained(tmp_path / "local-lm")
    cfg = micro_config(
        tmp_path, model={"name_or_path": str(tmp_path / "local-lm")}, loop={"iterations": 1}
    )
    rows = run(cfg, progress=False)
    assert rows[-1]["stage"] == "iter_001"
    trained = model_state(cfg.run_dir / "seed" / "model")
    assert any(
        not torch.equal(trained[k], v) for k, v in model.state_dict().items() if k in trained
    )


def test_a_run_saved_by_an_older_version_resumes(tmp_path):
    """A saved config without a key added since reads as that key's default; a real change is refused."""
    import yaml

    from selfplay.engine.rundir import prepare_run_dir

    cfg = micro_config(tmp_path)
    prepare_run_dir(cfg)
    path = cfg.run_dir / "config.yaml"
    saved = yaml.safe_load(path.read_text())
    del saved["loop"]["fill_budget"], saved["model"]["lora"]
    path.write_text(yaml.safe_dump(saved))
    prepare_run_dir(cfg)  # accepted
    saved["train"]["lr"] = 0.5
    path.write_text(yaml.safe_dump(saved))
    with pytest.raises(ConfigError, match="train.lr"):
        prepare_run_dir(cfg)


def test_a_second_writer_of_one_run_directory_is_refused_and_a_killed_one_leaves_no_lock(tmp_path):
    import subprocess
    import sys

    from selfplay.config import dump_config
    from selfplay.engine.rundir import writer_lock

    cfg = micro_config(tmp_path, loop={"iterations": 1})
    (tmp_path / "cfg.yaml").write_text(dump_config(cfg))
    second = (
        "import sys; from selfplay.engine.loop import run; from selfplay.config import load_config\n"
        "from selfplay.errors import ConfigError\n"
        "try: run(load_config(sys.argv[1]), progress=False)\n"
        "except ConfigError as e: print(e); sys.exit(2)"
    )
    with writer_lock(cfg.run_dir):  # this process writes it (the kernel lock is per open file)
        held = subprocess.run(
            [sys.executable, "-c", second, str(tmp_path / "cfg.yaml")],
            capture_output=True, text=True,
        )  # fmt: skip
    assert held.returncode == 2, held.stderr
    assert "is being written by selfplay pid" in held.stdout
    assert not (cfg.run_dir / "seed").exists()  # refused before touching anything
    # A process killed while holding it leaves nothing that blocks the rerun.
    holder = (
        "import sys, time; from pathlib import Path; from selfplay.engine.rundir import writer_lock\n"
        "with writer_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)"
    )
    killed = subprocess.Popen(
        [sys.executable, "-c", holder, str(cfg.run_dir)], stdout=subprocess.PIPE, text=True
    )
    assert killed.stdout.readline().strip() == "held"
    killed.kill()
    killed.wait()
    rows = run(cfg, progress=False)
    assert [r["stage"] for r in rows] == ["seed", "iter_001"]


def test_a_broken_run_warns_and_fails_with_strict(tmp_path, capsys):
    from selfplay.config import dump_config

    cfg = micro_config(tmp_path, seed_train={"tokens": 0}, loop={"iterations": 1})
    path = tmp_path / "broken.yaml"
    path.write_text(dump_config(cfg))
    assert main(["run", str(path), "--no-progress", "--strict"]) == 3
    out = capsys.readouterr()
    assert "the seed model solves nothing" in out.out
    assert "--strict: the run looks broken" in out.err
    # Without --strict the same finished run warns and exits 0 (it resumes: nothing reruns).
    assert main(["run", str(path), "--no-progress"]) == 0
    assert "the seed model solves nothing" in capsys.readouterr().out


def test_run_warnings_name_mostly_truncated_evaluations_and_samples():
    from selfplay.views.run import run_warnings

    seed = {"stage": "seed", "iteration": 0, "eval": {"accuracy": {"1": 0.5}}}
    round_ = {
        "stage": "iter_001", "iteration": 1, "train": {"tokens": 10}, "filter": {"kept": 3},
        "eval": {"accuracy": {"1": 0.5}, "truncated": {"all": 0.6}},
        "generate": {"samples": 10, "truncated": 7},
    }  # fmt: skip
    warnings = run_warnings([seed, round_])
    assert any("60% of the evaluation generations were cut" in w for w in warnings)
    assert any("70% of the round's samples were cut" in w for w in warnings)
    round_["eval"]["truncated"]["all"], round_["generate"]["truncated"] = 0.1, 1
    assert run_warnings([seed, round_]) == []
