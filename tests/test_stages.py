"""The stages' skip-if-done rules and artifacts, on files alone (no model)."""

from __future__ import annotations

import pytest

from selfplay.config import FilterConfig
from selfplay.engine import artifacts, stages


def _touch(d, *names):
    for n in names:
        (d / n).parent.mkdir(parents=True, exist_ok=True)
        (d / n).write_text("x")


def test_a_stage_is_done_when_its_artifact_or_a_later_chain_stage_is_there(tmp_path):
    assert not any(stages.is_done(s, tmp_path) for s in stages.ARTIFACTS)
    _touch(tmp_path, "completions.parquet")
    assert not stages.is_done("generate", tmp_path)  # its stats are part of the artifact
    _touch(tmp_path, "generate.json")
    assert stages.is_done("generate", tmp_path) and not stages.is_done("verify", tmp_path)
    other = tmp_path / "filtered"
    _touch(other, "samples.parquet", "kept.parquet")  # filter removes the intermediates
    assert all(stages.is_done(s, other) for s in ("generate", "verify", "filter"))
    assert not stages.is_done("train", other) and not stages.is_done("evaluate", other)


def _sample(pid, text, valid):
    return {
        "problem_id": pid,
        "difficulty": 1,
        "prompt": f"Q:{pid}=",
        "gold": "2",
        "text": text,
        "status": "correct" if valid else "wrong",
        "answer": "2" if valid else "3",
        "valid": valid,
        "why": "" if valid else "wrong answer",
        "first_bad_step": None,
        "steps": [{"text": text, "ok": valid, "why": ""}],
    }


def test_filter_writes_every_sample_with_its_decision_and_removes_the_intermediates(tmp_path):
    samples = [
        _sample("1+1", "a|2", True),
        _sample("1+1", "a|2", True),
        _sample("1+1", "b|3", False),
    ]
    artifacts.write_parquet(tmp_path / "verified.parquet", samples)
    _touch(tmp_path, "completions.parquet")
    out = stages.filter_chains(FilterConfig(), tmp_path)
    assert [s["filter_reason"] for s in out] == ["kept", "duplicate", "wrong: wrong answer"]
    assert [k["text"] for k in artifacts.read_parquet(tmp_path / "kept.parquet")] == ["a|2"]
    assert not (tmp_path / "completions.parquet").exists()
    assert not (tmp_path / "verified.parquet").exists()
    assert stages.filter_chains(FilterConfig(), tmp_path) == out  # done: read back, not redone


def test_nothing_kept_is_a_placeholder_row(tmp_path):
    artifacts.write_parquet(tmp_path / "verified.parquet", [_sample("1+1", "b|3", False)])
    stages.filter_chains(FilterConfig(), tmp_path)
    (row,) = artifacts.read_parquet(tmp_path / "kept.parquet")
    assert row["problem_id"] == "" and not row["kept"]


def test_stop_after_a_named_stage(tmp_path, monkeypatch):
    monkeypatch.setenv(stages.STOP_ENV, "iter_002/verify")
    stages.mark_done(tmp_path / "iter_002", "generate")
    with pytest.raises(stages.StageInterrupt, match="iter_002/verify"):
        stages.mark_done(tmp_path / "iter_002", "verify")
