"""CLI conveniences: --version, config printing and keys, --dry-run, bench directories, --out."""

from __future__ import annotations

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
