"""`selfplay verify TASK FILE`: every line gets a verdict; bad lines get their own error verdict."""

import gzip
import json

import pyarrow.parquet as pq
import pytest

from selfplay.cli import main
from selfplay.views.verify_file import reason_group, summarize, verify_file

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


def test_a_line_that_is_not_utf8_gets_its_own_verdict(tmp_path, capsys):
    p = tmp_path / "b.jsonl"
    p.write_bytes(
        (LINES[0] + "\n").encode()
        + b'{"prompt": "Q:1+1=", "completion": "\xff"}\n'
        + b"\xff\xfe\x00garbage\n"
        + (LINES[1] + "\n").encode()
    )
    out = verify_file("arith", p, progress=False)
    by_line = {v.line: v.verdict for v in out}
    assert sorted(by_line) == [1, 2, 3, 4]  # the lines around the bad ones keep their verdicts
    assert by_line[1].valid and by_line[4].status == "wrong"
    for line in (2, 3):
        assert by_line[line].status == "error"
        assert by_line[line].why.startswith(f"line {line}: not UTF-8 text (byte 0xff")
    assert any("not UTF" in reason for reason, _ in summarize(out)["reasons"])
    assert main(["verify", "arith", str(p), "--no-progress"]) == 0
    assert "wrong" in capsys.readouterr().out


def test_a_truncated_gzip_keeps_the_lines_before_the_break(tmp_path):
    whole = gzip.compress(("\n".join([LINES[0]] * 2000) + "\n").encode())
    p = tmp_path / "cut.jsonl.gz"
    p.write_bytes(whole[: len(whole) // 2])
    out = verify_file("arith", p, progress=False)
    assert len(out) > 10 and all(v.verdict.valid for v in out[:-1])
    assert out[-1].verdict.status == "error" and "breaks off" in out[-1].verdict.why
    assert out[-1].line == out[-2].line + 1


@pytest.mark.parametrize("content", [b"", b"\n  \n\n"], ids=["empty", "blank"])
def test_a_file_with_nothing_to_verify_is_a_one_line_error(content, tmp_path, capsys):
    p = tmp_path / "e.jsonl"
    p.write_bytes(content)
    assert main(["verify", "arith", str(p), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no lines to verify" in err and len(err.splitlines()) == 1


def test_progress_counts_lines_verified_not_read(jsonl, monkeypatch):
    import tqdm.auto

    import selfplay.views.verify_file as vf

    bars = []

    class Bar:
        def __init__(self, *args, **kwargs):
            self.n = 0
            bars.append(self)

        def update(self, n=1):
            self.n += n

        def close(self):
            pass

    seen = []  # the bar's count each time a chunk is handed to the verifier
    real_chunk = vf._verify_chunk

    def chunk(task, items):
        seen.append((bars[0].n, len(items)))
        return real_chunk(task, items)

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    monkeypatch.setattr(vf, "_verify_chunk", chunk)
    monkeypatch.setattr(vf, "CHUNK", 1)
    out = verify_file("arith", jsonl, progress=True)
    assert bars[0].n == len(out) == 7
    # lines 1 and 2 are verified one at a time: when line 2 goes, only line 1 is counted
    assert seen[:2] == [(0, 1), (1, 1)]


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
