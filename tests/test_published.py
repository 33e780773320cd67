"""Published numbers come from checked-in files: every results directory under
benchmarks/results/ re-derives its summary, and every published table in README.md and docs/
equals what its files give."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from selfplay.engine import artifacts
from selfplay.errors import ConfigError
from selfplay.views.publish import (
    RESULTS,
    render_block,
    render_file,
    result_files,
    resummarize,
    stale_blocks,
)

REPO = Path(__file__).resolve().parents[1]
RESULT_DIRS = sorted(p.parent for p in RESULTS.glob("*/summary.json"))
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("d", RESULT_DIRS, ids=[p.name for p in RESULT_DIRS])
def test_a_results_directory_is_complete_and_its_summary_re_derives(d):
    files = result_files(d)
    for f in files:
        assert (d / f).exists(), f
    prov = artifacts.read_json(d / "provenance.json")
    assert len(prov["commit"]) == 40 and prov["versions"]["torch"] and prov["machine"]["cpus"]
    assert sum((d / f).stat().st_size for f in files) < 2_000_000  # small: no checkpoints
    # The summary (and so report.md and every published table) is what results.parquet gives.
    stored = artifacts.read_json(d / "summary.json")
    assert json.loads(json.dumps(resummarize(d))) == stored


def test_every_published_table_equals_its_files():
    assert stale_blocks(DOCS) == []


def test_a_published_table_that_differs_from_its_files_is_found(tmp_path):
    root = tmp_path / "results"
    (root / "x").mkdir(parents=True)
    summary = {
        "title": "t",
        "verdict": "a is **better**.",
        "sections": [{"heading": "Main", "columns": ["arm", "acc"], "rows": [["a", "0.5"]]}],
    }
    (root / "x" / "summary.json").write_text(json.dumps(summary))
    good = "intro\n<!-- results: x | Main -->\n| arm | acc |\n|---|---|\n| a | 0.5 |\n<!-- /results -->\n"
    doc = tmp_path / "doc.md"
    doc.write_text(good)
    assert stale_blocks([doc], root) == []
    doc.write_text(good.replace("0.5", "0.9"))  # hand-edited number
    assert stale_blocks([doc], root) == [f"{doc}: x | Main"]
    assert render_file(doc.read_text(), root) == good
    assert render_block("x", "verdict", root) == "**Verdict.** a is **better**.\n"
    with pytest.raises(ConfigError, match="no section"):
        render_block("x", "Nope", root)


def _git(*args: str) -> str:
    import subprocess

    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO).stdout.strip()


def _fake_run(run_dir: Path, stages: int, schedule: str = "rounds", sha: str = "") -> None:
    """A run directory as ``selfplay run`` leaves it, minus models: config.yaml (whose header
    names the commit it ran at) and the stages' metrics.json."""
    sha = sha or _git("rev-parse", "--short", "HEAD")
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(
        f"# resolved config of this run; selfplay 0.1.0, git {sha}, torch 2.13.0\n"
        f"name: toy\nseed: 3\nloop:\n  iterations: 2\n  schedule: {schedule}\n"
    )
    for k in range(stages):
        d = run_dir / ("seed" if k == 0 else f"iter_{k:03d}")
        d.mkdir()
        row = {
            "stage": d.name,
            "iteration": k,
            "eval": {"accuracy": {"1": 0.5 + k / 10, "2": 0.25, "all": 0.4},
                     "accuracy_in": 0.5 + k / 10, "accuracy_harder": 0.0},
            "train": {"tokens": 1000 * (k + 1)},
            "seconds": {"total": 60.0},
        }  # fmt: skip
        if k:
            row["generate"] = {"pass_rate": 0.5, "valid_rate": 0.4, "generated_tokens": 777}
            row["filter"] = {"kept": 12}
        (d / "metrics.json").write_text(json.dumps(row))


def test_a_published_run_renders_its_stage_table_from_its_files(tmp_path):
    from selfplay.views.publish import RUN_FILES, copy_run, result_files

    # Ran at an older commit than the one publishing it.
    ran_at = _git("rev-parse", "HEAD~1") or pytest.skip("needs the repository's history")
    run = tmp_path / "runs" / "toy"
    _fake_run(run, stages=3, sha=ran_at[:9])
    root = tmp_path / "results"
    out = copy_run(run, "toy-run", root)
    assert result_files(out) == RUN_FILES
    for f in RUN_FILES:
        assert (out / f).exists(), f
    summary = artifacts.read_json(out / "summary.json")
    assert summary["kind"] == "run" and json.loads(json.dumps(resummarize(out))) == summary
    assert "`toy`, seed 3, 2 rounds after the seed stage: 3.0 min" in summary["intro"][0]
    # The commit the run ran at (its config.yaml's header), resolved to its full name.
    assert artifacts.read_json(out / "provenance.json")["commit"] == ran_at
    table = render_block("toy-run", "Stages", root)
    lines = table.splitlines()
    assert lines[0] == (
        "| stage | pass | valid | kept | acc d1 | acc d2 | in | harder | train tok | gen tok | sec |"
    )
    assert lines[2] == "| seed | - | - | - | 0.50 | 0.25 | 0.50 | 0.00 | 1,000 | 0 | 60 |"
    assert (
        lines[4] == "| iter_002 | 0.50 | 0.40 | 12 | 0.70 | 0.25 | 0.70 | 0.00 | 3,000 | 777 | 60 |"
    )
    assert "## Stages" in (out / "report.md").read_text()


def test_publishing_a_run_needs_a_finished_plain_run(tmp_path):
    from selfplay.views.publish import copy_run

    _fake_run(tmp_path / "half", stages=2)
    with pytest.raises(ConfigError, match="not a finished run \\(2 of 3 stages\\)"):
        copy_run(tmp_path / "half", "x", tmp_path / "results")
    _fake_run(tmp_path / "climb", stages=3, schedule="frontier")
    with pytest.raises(ConfigError, match="a frontier run; publish it through its bench"):
        copy_run(tmp_path / "climb", "x", tmp_path / "results")
    assert not (tmp_path / "results" / "x").exists()


def test_published_plots_are_drawn_again_from_the_files_alone(tmp_path, monkeypatch):
    """``publish_results.py --plots``: a published bench's plots from its results.parquet and
    bench.yaml (nothing trained), listed in its summary (derived again: every number as it
    was), copied to docs/ under its prefix with its report beside them."""
    import shutil

    from selfplay.views.publish import PUBLISHED_PLOTS, publish_plots

    root, docs = tmp_path / "results", tmp_path / "docs"
    shutil.copytree(RESULTS / "bench-grpo", root / "bench-grpo")
    docs.mkdir()
    before = artifacts.read_json(root / "bench-grpo" / "summary.json")
    monkeypatch.setitem(PUBLISHED_PLOTS, "bench-grpo", ("grpo_bench_", None, "grpo-report.md"))
    written = publish_plots("bench-grpo", root, docs)
    after = artifacts.read_json(root / "bench-grpo" / "summary.json")
    assert after["plots"] == [
        "paired_differences.png", "accuracy_vs_tokens.png", "accuracy_by_difficulty.png",
        "selfplay_yield.png",
    ]  # fmt: skip
    assert {k: v for k, v in after.items() if k != "plots"} == {
        k: v for k, v in before.items() if k != "plots"
    }
    assert json.loads(json.dumps(resummarize(root / "bench-grpo"))) == after
    assert sorted(p.name for p in written) == sorted(
        ["grpo-report.md", *(f"grpo_bench_{n}" for n in after["plots"])]
    )
    for name in after["plots"]:
        assert (docs / f"grpo_bench_{name}").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (docs / "grpo-report.md").read_text()
    assert "![paired_differences.png](grpo_bench_paired_differences.png)" in report
    assert report.replace("](grpo_bench_", "](") == (root / "bench-grpo" / "report.md").read_text()


@pytest.mark.parametrize("d", RESULT_DIRS, ids=lambda d: d.name)
def test_published_configs_hold_paths_relative_to_the_repository(d):
    import yaml

    for path in d.glob("*.yaml"):
        text = path.read_text()
        assert str(REPO) not in text, path
        out = (yaml.safe_load(text) or {}).get("output_dir")
        assert out is None or not str(out).startswith("/"), (path, out)


def test_no_published_file_names_the_machine_it_ran_on():
    """Every text file under benchmarks/results (configs inside JSON records too): no absolute
    path of the repository (the checkout a result ran in)."""
    for path in RESULTS.rglob("*"):
        if path.suffix in (".json", ".yaml", ".md", ".csv", ".txt", ".jsonl"):
            text = path.read_text(errors="replace")
            assert str(REPO) not in text, path
            assert not re.search(r"output_dir: /|selfplay (?:run|bench) /", text), path


def test_publishing_rewrites_paths_under_the_repository(tmp_path):
    from selfplay.views.publish import repo_relative

    repo = tmp_path / "repo"
    f = tmp_path / "bench.yaml"
    f.write_text(f"output_dir: {repo}/runs/b\nother: /elsewhere/x\n")
    repo_relative(f, repo)
    assert f.read_text() == "output_dir: runs/b\nother: /elsewhere/x\n"


def test_publishing_rewrites_paths_of_the_checkout_the_result_ran_in(tmp_path):
    """A bench run in another checkout (a worktree of one commit) is published with its paths
    relative to that checkout too."""
    from selfplay.views.publish import repo_relative

    f = tmp_path / "bench.yaml"
    f.write_text(f"output_dir: {tmp_path}/wt/runs/b\n")
    repo_relative(f, tmp_path / "repo", ran_in=tmp_path / "wt")
    assert f.read_text() == "output_dir: runs/b\n"
