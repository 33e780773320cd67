"""`selfplay verify TASK FILE`: every line gets a verdict; bad lines get their own error verdict."""

import gzip
import json

import pyarrow.parquet as pq
import pytest

from selfplay.cli import main
from selfplay.verify_file import reason_group, summarize, verify_file

LINES = [
    '{"prompt": "Q:12+34=", "completion": "2+4=6 c0|1+3+0=4 c0|46"}',  # valid
    '{"prompt": "Q:12+34=", "completion": "2+4=6 c0|1+3+0=5 c0|56"}',  # wrong
    '{"a": 5, "op": "*", "b": 7}',  # no completion
    "not json",
    "[1, 2]",
    '{"prompt": "hello", "completion": "x"}',  # not an arith problem
    "",  # blank lines are skipped
    '{"prompt": "Q:1+1=", "completion": "' + "9" * 100_000 + '"}',  # a huge completion
]


@pytest.fixture
def jsonl(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text("\n".join(LINES) + "\n")
    return p


def test_every_line_gets_a_verdict(jsonl):
    out = verify_file("arith", jsonl, progress=False)
    by_line = {v.line: v for v in out}
    assert sorted(by_line) == [1, 2, 3, 4, 5, 6, 8]
    assert by_line[1].verdict.valid
    assert by_line[2].verdict.status == "wrong"
    assert by_line[3].verdict.status == "error" and "completion" in by_line[3].verdict.why
    assert "not valid JSON" in by_line[4].verdict.why
    assert "not an object" in by_line[5].verdict.why
    assert "bad record" in by_line[6].verdict.why
    assert by_line[8].verdict.status in ("wrong", "unparseable")
    s = summarize(out)
    assert s["total"] == 7 and s["valid"] == 1
    assert s["statuses"]["error"] == 4
    assert sum(c for _, c in s["reasons"]) == 6


def test_gold_audits_the_tasks_own_solutions(tmp_path):
    p = tmp_path / "g.jsonl.gz"
    with gzip.open(p, "wt") as f:
        for a, b in [(1, 2), (999, 1), (123456, 654321)]:
            f.write(json.dumps({"a": a, "op": "+", "b": b}) + "\n")
        f.write(json.dumps({"a": 12, "op": "*", "b": 34}) + "\n")
    out = verify_file("arith", p, gold=True, progress=False)
    assert [v.verdict.valid for v in out] == [True] * 4


def test_cli_prints_counts_and_writes_parquet(jsonl, tmp_path, capsys):
    out = tmp_path / "v.parquet"
    assert main(["verify", "arith", str(jsonl), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "correct" in text and "not valid JSON" in text
    rows = pq.read_table(out).to_pylist()
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5, 6, 8]
    assert rows[1]["first_bad_step"] == 1 and rows[1]["steps"][1]["ok"] is False


@pytest.mark.parametrize(
    "argv, message",
    [
        (["verify", "arith", "/nonexistent.jsonl"], "no such file"),
        (["verify", "nosuchtask", "x.jsonl"], "unknown task"),
    ],
)
def test_cli_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_binary_file_is_one_line_error(tmp_path, capsys):
    p = tmp_path / "b.jsonl"
    p.write_bytes(b"\xff\xfe\x00garbage\n")
    assert main(["verify", "arith", str(p), "--no-progress"]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_reason_group_drops_particulars():
    assert reason_group("invalid step 3: 48/2 is 24, not 23") == "invalid step: N/N is N, not N"


def test_a_verifier_that_raises_costs_only_its_own_line(jsonl, monkeypatch):
    from selfplay.tasks.arith import ArithTask

    real = ArithTask.verify

    def flaky(self, problem, completion):
        if problem.id == "12+34" and completion.endswith("|56"):
            raise RuntimeError("boom")
        return real(self, problem, completion)

    monkeypatch.setattr(ArithTask, "verify", flaky)
    by_line = {v.line: v.verdict for v in verify_file("arith", jsonl, progress=False)}
    assert by_line[1].valid
    assert by_line[2].status == "error" and "RuntimeError: boom" in by_line[2].why
    assert by_line[8].status in ("wrong", "unparseable")
