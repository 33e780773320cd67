"""``scripts/agreement_precision.py``: what a k-vote filter keeps and how much of it is right."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from selfplay.engine import artifacts

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location(
        "agreement_precision", REPO / "scripts/agreement_precision.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def _samples(pid: str, answers: list[str], right: str) -> list[dict]:
    return [
        {
            "problem_id": pid,
            "prompt": f"Q:{pid}=",
            "difficulty": 2,
            "text": a,
            "status": "correct" if a == right else "wrong",
            "kept": False,
            "filter_reason": "",
        }
        for a in answers
    ]


def test_precision_and_yield_per_vote_count(tmp_path):
    it = tmp_path / "bench" / "seed_3" / "labelfree" / "iter_001"
    rows = (
        _samples("a", ["12", "12", "12"], "12")  # 3 votes, right
        + _samples("b", ["7", "7", "8"], "8")  # 2 votes for a wrong answer; one sample right
        + _samples("c", ["1", "2", "3"], "9")  # no two agree, none right
    )
    artifacts.write_parquet(it / "samples.parquet", rows)
    artifacts.write_json(it / "probe.json", {"1": 1.0, "2": 0.5})
    artifacts.write_json(
        it / "probe_accuracy.json", {"accuracy": {"1": 1.0, "2": 0.25}, "generated_tokens": 9}
    )
    script = _script()
    assert script.main([str(tmp_path / "bench"), str(tmp_path / "out" / "agree")]) == 0
    (row,) = json.loads((tmp_path / "out" / "agree.json").read_text())
    assert (row["arm"], row["seed"], row["round"], row["votes"]) == ("labelfree", 3, 1, 3)
    assert row["pass_at_n"] == 2 / 3
    assert (row["kept_1"], row["precision_1"]) == (1.0, 1 / 3)  # the first answer of c is kept
    assert (row["kept_2"], row["precision_2"]) == (2 / 3, 1 / 2)
    assert (row["kept_3"], row["precision_3"]) == (1 / 3, 1.0)
    md = (tmp_path / "out" / "agree.md").read_text()
    assert "| labelfree | 1 | 2 | 0.50 | 0.25 |" in md  # agreement against accuracy


def test_a_missing_bench_directory_is_one_line(tmp_path, capsys):
    assert _script().main([str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
