"""The climb bench: ``selfplay bench`` over arms on the frontier schedule."""

from __future__ import annotations

import json

import pytest

from selfplay import artifacts
from selfplay.bench import run_bench
from selfplay.bench_config import load_bench_config
from selfplay.climb_bench import arm_kind
from selfplay.errors import ConfigError
from selfplay.publish import copy_results, resummarize

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
    assert "selfplay-majority (no ground truth) reaches" in report
    assert (out / "climb_heatmaps.png").stat().st_size > 0
    assert (out / "climb_frontier.png").stat().st_size > 0
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
