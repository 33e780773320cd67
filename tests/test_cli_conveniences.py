"""CLI conveniences: --version, config printing and keys, --dry-run, bench directories, --out,
the examples under --help."""

from __future__ import annotations

import shlex

import pytest
import yaml

from selfplay.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.startswith("selfplay ")


def test_config_prints_resolved_config_with_overrides(capsys):
    assert main(["config", "configs/arith/rounds.yaml", "train.lr=3e-4", "loop.iterations=5"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["train"]["lr"] == 3e-4 and cfg["loop"]["iterations"] == 5
    assert cfg["tracking"]["backend"] == "none"  # defaults are filled in
    assert main(["config", "configs/arith/rounds.yaml", "train.lrr=1"]) == 2
    assert "train.lrr" in capsys.readouterr().err


def test_config_keys_lists_every_key_with_its_doc(capsys):
    assert main(["config", "--keys"]) == 0
    out = capsys.readouterr().out
    assert "train.lr: float = 0.001" in out
    assert "tracking.backend: 'none' | 'tensorboard' | 'wandb' | 'trackio' = 'none'" in out
    # The doc under a field is printed under its key.
    lines = out.splitlines()
    i = lines.index(next(line for line in lines if line.startswith("train.tokens:")))
    assert lines[i + 1].strip() == "Training-token budget per round."


def test_dry_run_writes_nothing(tmp_path, capsys):
    out_dir = tmp_path / "r"
    args = ["configs/arith/rounds.yaml", f"output_dir={out_dir}", "--dry-run"]
    assert main(["run", *args]) == 0
    out = capsys.readouterr().out
    assert "3 rounds" in out and "228,000 supervised tokens each" in out and "6,000 chains" in out
    assert not out_dir.exists()
    bench = ["bench", "configs/arith/bench-quick.yaml", f"output_dir={tmp_path / 'b'}", "--dry-run"]
    assert main(bench) == 0
    out = capsys.readouterr().out
    assert "arm selfplay-verified" in out and "x 2 seeds" in out
    assert not (tmp_path / "b").exists()


def test_dry_run_says_what_the_real_run_would_do_with_its_directory(tmp_path, capsys):
    from selfplay.config import dump_config, load_config

    d = tmp_path / "r"

    def dry_run(*overrides):
        return main(
            ["run", "configs/arith/rounds.yaml", f"output_dir={d}", *overrides, "--dry-run"]
        )

    assert dry_run() == 0
    assert capsys.readouterr().out.startswith(f"run {d} (new);")
    # The directory of this run, as the run writes it: resumed, from where it got to.
    d.mkdir()
    (d / "config.yaml").write_text(
        dump_config(load_config("configs/arith/rounds.yaml", [f"output_dir={d}"]))
    )
    assert dry_run() == 0
    assert "(resumes: no stage finished yet)" in capsys.readouterr().out
    for stage in ("seed", "iter_001"):
        (d / stage).mkdir()
        (d / stage / "metrics.json").write_text("{}")
    before = sorted(d.rglob("*"))
    assert dry_run() == 0
    assert "(resumes: 1 of 3 rounds finished)" in capsys.readouterr().out
    assert dry_run("loop.iterations=1") == 0  # a key a rerun may change
    assert "(resumes: 1 of 1 rounds finished; nothing left to run)" in capsys.readouterr().out
    # Another config there: the real run's one-line refusal, not "(resumes)".
    assert dry_run("train.lr=0.01") == 2
    captured = capsys.readouterr()
    assert not captured.out and captured.err.count("\n") == 1
    assert f"{d} holds a run with another config (train.lr:" in captured.err
    (d / "config.yaml").write_text("[not: a mapping")
    assert dry_run() == 2
    assert "not a readable config" in capsys.readouterr().err
    assert sorted(d.rglob("*")) == before  # the dry runs wrote nothing


@pytest.mark.parametrize("command", ["run", "bench"])
def test_the_help_examples_run_as_written(command, tmp_path, capsys):
    """Each example under --help, split as a shell splits it, parses and resolves (dry run)."""
    from selfplay.cli import BENCH_EXAMPLES, RUN_EXAMPLES

    with pytest.raises(SystemExit):
        main([command, "--help"])
    shown = capsys.readouterr().out
    examples = {"run": RUN_EXAMPLES, "bench": BENCH_EXAMPLES}[command]
    for i, example in enumerate(examples):
        assert f"  {example}\n" in shown
        words = shlex.split(example)
        assert words[:2] == ["selfplay", command]
        flags = [w for w in words[2:] if w.startswith("--")]
        rest = [w for w in words[2:] if not w.startswith("--")]
        out_dir = f"output_dir={tmp_path / str(i)}"  # after the example's own: nothing is reused
        assert main([command, *rest, out_dir, *flags, "--dry-run"]) == 0, example
        assert not (tmp_path / str(i)).exists()
    capsys.readouterr()
    # One seed with a verdict is refused in one line; the example turns the verdict off.
    assert main(["bench", "configs/arith/bench-quick.yaml", "seeds=[0]", "--dry-run"]) == 2
    assert "a verdict needs at least 2 seeds" in capsys.readouterr().err


def test_bench_directory_points_at_its_arms(tmp_path, capsys):
    b = tmp_path / "b"
    (b / "seed_0" / "sp").mkdir(parents=True)
    (b / "bench.yaml").write_text("name: b\n")
    (b / "seed_0" / "sp" / "config.yaml").write_text("name: sp\n")
    assert main(["inspect", str(b)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "bench directory" in err and str(b / "seed_0" / "sp") in err
    assert main(["summary", str(b)]) == 2
    assert "arms have not started" in capsys.readouterr().err


def test_report_out(tmp_path, capsys):
    from tests.test_report import make_run

    run_dir = make_run(tmp_path / "run")
    out = tmp_path / "pages" / "r.html"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    assert "<html" in out.read_text().lower() and not (run_dir / "report.html").exists()


def test_the_cli_leaves_hub_offline_mode_to_the_user(monkeypatch, capsys):
    import os

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert main(["config", "configs/arith/rounds.yaml"]) == 0
    assert "HF_HUB_OFFLINE" not in os.environ


def test_a_bench_config_given_to_run_and_a_run_config_given_to_bench_say_which_command(capsys):
    assert main(["run", "configs/arith/climb-demo.yaml"]) == 2
    assert (
        "a bench config (it has arms: and run:); run it with selfplay bench"
        in capsys.readouterr().err
    )
    assert main(["bench", "configs/arith/rounds.yaml"]) == 2
    assert "a run config (no arms:); run it with selfplay run" in capsys.readouterr().err
