"""The climb bench: ``selfplay bench`` over arms on the frontier schedule."""

from __future__ import annotations

import json

import pytest

from selfplay.bench.climb import arm_kind
from selfplay.bench.config import load_bench_config
from selfplay.bench.runner import run_bench
from selfplay.engine import artifacts
from selfplay.errors import ConfigError
from selfplay.views.publish import copy_results, resummarize

RUN = {
    "model": {"preset": "tiny", "position": "nope"},
    "task": {"name": "arith", "ops": ["add"], "reversed": True},
    "raw": {"size": 200, "difficulties": [1, 2], "answer_only_rate": 1.0},
    "seed_train": {"tokens": 5_000, "lr": 0.003},
    "loop": {
        "schedule": "frontier",
        "iterations": 2,
        "problems_per_iter": 30,
        "frontier": {"threshold": 0.0, "val_per_difficulty": 10, "stall_rounds": 10},
    },
    "generation": {"n": 1},
    "filters": {"verified": True},
    "train": {"tokens": 1_000, "batch_size": 16},
    "eval": {"difficulties": [1, 2, 3, 4, 5, 6], "n_per_difficulty": 8, "k": 0},
}
ARMS = {
    "raw-repeat": ["loop.data_source=raw-repeat"],
    "raw-fresh": ["loop.data_source=raw-fresh"],
    "selfplay-verified": [],
    "selfplay-majority": [
        "filters.verified=false",
        "filters.majority=true",
        "generation.n=3",
        "generation.temperature=0.7",
    ],
    "labelfree-unfiltered": [
        "filters.verified=false",
        "loop.frontier.probe=agreement",
        "loop.frontier.probe_samples=2",
        "generation.temperature=0.7",
    ],
}


def _bench(tmp_path, **extra):
    data = {
        "name": "climb-test",
        "output_dir": str(tmp_path / "bench"),
        "seeds": [0, 1],
        "reference": "raw-fresh",
        "run": RUN,
        "arms": ARMS,
        **extra,
    }
    path = tmp_path / "climb.yaml"
    path.write_text(json.dumps(data))
    return load_bench_config(path)


def test_climb_bench_reports_frontiers_labels_and_claims(tmp_path):
    bench, arms = _bench(tmp_path)
    assert arm_kind(arms["selfplay-majority"]) == "majority (2 of 3 samples) + length"
    rows = run_bench(bench, arms, progress=False)
    out = tmp_path / "bench"
    final = [r for r in rows if r["stage"] == "final"]
    assert sorted((r["arm"], r["seed"]) for r in final) == sorted(
        (a, s) for a in ARMS for s in (0, 1)
    )
    # Final rows measure every evaluation difficulty; rounds only up to what they practised + 2.
    assert all(f"acc_{d}" in r for r in final for d in range(1, 7))
    # Equal training per round: every arm trains the same tokens (to within a batch).
    for k in (1, 2):
        tokens = [r["train_tokens"] for r in rows if r["iteration"] == k and r["stage"] != "final"]
        assert max(tokens) - min(tokens) < 2 * 16 * 30
    raw = [r for r in rows if r["arm"].startswith("raw") and r["stage"] != "final"]
    assert all(r["generated_tokens"] == 0 and r["trained_max"] == 2 for r in raw)
    play = [r for r in rows if r["arm"] == "selfplay-verified" and r["iteration"] == 1]
    assert play[0]["kept_accuracy"] in (1.0, None)  # the verifier keeps only correct labels
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "climb-bench"
    assert {c["arm"] for c in summary["comparisons"]} == set(ARMS) - {"raw-fresh"}
    assert all(c["verdict"] in {"better", "worse", "equivalent", "inconclusive"}
               for c in summary["comparisons"])  # fmt: skip
    report = (out / "report.md").read_text()
    assert "largest difficulty solved" in report and "What self-play trained on" in report
    assert "raw-repeat: best accuracy beyond 3 digits" in report
    # The majority arm's labels need no ground truth, but its probe is the verifier's; the
    # label-free arm's probe scores agreement, and the report shows what accuracy would have said.
    assert "selfplay-majority (labels without ground truth, verifier's probe) reaches" in report
    assert "labelfree-unfiltered (no ground truth) reaches" in report
    assert "probe checked" in report and "wrong labels kept" in report
    free = [r for r in rows if r["arm"] == "labelfree-unfiltered" and r["iteration"]]
    assert {r["probe_kind"] for r in free if r["stage"] != "final"} == {"agreement"}
    assert all(r["probe_accuracy_solved"] is not None for r in free if r["stage"] != "final")
    assert all(r["wrong_kept"] == 0 for r in play)  # the verifier keeps no wrong label
    assert arm_kind(arms["labelfree-unfiltered"]) == "unfiltered + length; label-free probe"
    for plot in ("climb_heatmaps.png", "climb_frontier.png", "climb_wrong_labels.png"):
        assert (out / plot).stat().st_size > 0
    parquet = artifacts.read_parquet(out / "results.parquet")
    assert len(parquet) == len(rows)
    # Published files re-derive the summary (the check tests/test_published.py makes).
    published = copy_results(out, "climb", tmp_path / "results")
    assert json.loads(json.dumps(resummarize(published))) == summary


def test_climb_bench_arms_share_the_schedule_and_margin_is_positive(tmp_path):
    with pytest.raises(ConfigError, match="loop.schedule"):
        _bench(tmp_path, arms={**ARMS, "rounds": ["loop.schedule=rounds"]})
    with pytest.raises(ConfigError, match="frontier_margin"):
        _bench(tmp_path, frontier_margin=0)


def test_arm_kind_names_a_committee_by_its_models():
    from selfplay.config import config_from_dict

    base = {"loop": {"schedule": "frontier"}, "task": {"name": "arith", "reversed": True}}
    committee = config_from_dict(
        base,
        ["filters.verified=false", "filters.majority=true", "filters.majority_models=3",
         "filters.majority_min_votes=2", "generation.n=1"],
    )  # fmt: skip
    assert arm_kind(committee) == "committee (2 of 3 models) + length"
    sampled = config_from_dict(
        base,
        ["filters.verified=false", "filters.majority=true", "filters.majority_models=3",
         "filters.majority_min_votes=4", "generation.n=2", "generation.temperature=0.7"],
    )  # fmt: skip
    assert arm_kind(sampled) == "committee (4 of 3 models x 2 samples) + length"


def _one_seed(tmp_path, name="demo"):
    data = {
        "name": name,
        "output_dir": str(tmp_path / name),
        "seeds": [0],
        "reference": "raw-fresh",
        "jobs": 2,
        "verdict": False,
        "see_also": "Over seeds: the climb bench.",
        "run": RUN,
        "arms": {"selfplay-verified": [], "raw-fresh": ["loop.data_source=raw-fresh"]},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(data))
    return path


def _rounds(summary: dict) -> dict:
    return next(s for s in summary["sections"] if s["heading"] == "The climb, round by round")


def test_one_seed_bench_trains_its_seed_model_once_then_runs_the_arms_side_by_side(tmp_path):
    bench, arms = load_bench_config(_one_seed(tmp_path))
    run_bench(bench, arms, progress=False)
    out = tmp_path / "demo"
    seeds = [out / "seed_0" / a / "seed" / "metrics.json" for a in arms]
    assert seeds[0].stat().st_ino == seeds[1].stat().st_ino  # one seed model, shared
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"].startswith("One seed, a demonstration and not a test")
    assert "`selfplay-verified` solves every length 1.." in summary["verdict"]
    assert summary["verdict"].endswith("Over seeds: the climb bench.")
    rounds = _rounds(summary)
    assert [r[:2] for r in rounds["rows"]] == [[a, k] for a in arms for k in ("seed", "1", "2")]
    # Self-play rows say what it labelled and kept; a raw arm's have no labels.
    by = {(r[0], r[1]): dict(zip(rounds["columns"], r, strict=True)) for r in rounds["rows"]}
    assert by[("selfplay-verified", "1")]["kept"] != ""
    assert by[("raw-fresh", "1")]["kept"] == "" and by[("raw-fresh", "1")]["practised"] == "1,2"
    # Each worker reported its bars to its run directory for the driver to show.
    for a in arms:
        state = json.loads((out / "seed_0" / a / "progress.json").read_text())
        assert state["done"] and state["n"] > 0 and state["desc"]


def _cli_bench(path, env=None):
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "selfplay.cli", "bench", str(path)]
    return subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.slow
def test_a_killed_one_seed_bench_rerun_ends_with_the_same_table(tmp_path):
    import os
    import signal
    import time

    whole = _cli_bench(_one_seed(tmp_path, "whole"))
    assert whole.wait(timeout=600) == 0, whole.stderr.read()
    path = _one_seed(tmp_path, "killed")
    first_round = tmp_path / "killed" / "seed_0" / "selfplay-verified" / "iter_001" / "metrics.json"
    proc = _cli_bench(path)
    deadline = time.monotonic() + 600
    while not first_round.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, mid-bench
    proc.wait()
    assert not (tmp_path / "killed" / "summary.json").exists()
    rerun = _cli_bench(path)
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read()
    a, b = (json.loads((tmp_path / n / "summary.json").read_text()) for n in ("whole", "killed"))
    assert _rounds(a)["rows"] == _rounds(b)["rows"]
    assert a["verdict"] == b["verdict"]


def test_an_oracle_arm_trains_on_gold_labels_of_the_problems_it_practises(tmp_path):
    bench, arms = _bench(
        tmp_path,
        seeds=[0],
        verdict=False,
        arms={
            "raw-fresh": ["loop.data_source=raw-fresh"],
            "selfplay-verified": [],
            "oracle": ["loop.data_source=oracle"],
        },
    )
    assert arm_kind(arms["oracle"]).startswith("gold labels")
    rows = run_bench(bench, arms, progress=False)
    run_dir = tmp_path / "bench" / "seed_0" / "oracle"
    labels = artifacts.read_parquet(run_dir / "iter_001" / "oracle.parquet")
    assert labels and not (run_dir / "iter_001" / "samples.parquet").exists()  # nothing generated
    for r in labels:  # the gold answer, reversed as U writes it: a + b read back from the label
        a, b = r["problem_id"].split("+")
        assert int(r["completion"][::-1]) == int(a) + int(b) and r["source"] == "oracle"
    oracle_rows = [
        r for r in rows if r["arm"] == "oracle" and r["stage"] != "final" and r["iteration"]
    ]
    assert all(r["label_accuracy"] == 1.0 and r["kept"] == r["labelled"] > 0 for r in oracle_rows)
    assert all(r["generated_tokens"] == 0 for r in oracle_rows)
    report = (tmp_path / "bench" / "report.md").read_text()
    assert (
        "selfplay-verified captures" in report and "of the oracle's gain over raw-fresh" in report
    )


def test_an_oracle_needs_the_frontier_schedule(tmp_path):
    from selfplay.config import config_from_dict

    with pytest.raises(ConfigError, match="loop.schedule: must be frontier"):
        config_from_dict({"loop": {"data_source": "oracle"}, "output_dir": str(tmp_path / "r")})


def test_the_claims_say_so_when_the_verified_arm_solves_no_length(tmp_path):
    from selfplay.bench.climb import _goal_section

    bench, arms = _bench(tmp_path)
    final = {(a, s): {"solved": 0 if a != "selfplay-majority" else 1} for a in arms for s in (0, 1)}
    lines = "\n".join(_goal_section(bench, arms, final, top=2)["text"])
    assert "selfplay-verified solves no length (1.0 vs 0.0), so there is no share" in lines
