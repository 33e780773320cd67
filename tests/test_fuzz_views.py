"""Property-based fuzz of everything that reads or shows model and input text: every task's
verifier (the code task's with fewer examples: each runs in its sandbox), ``selfplay verify``,
``inspect``, ``summary`` and ``report``.

The text is hostile: any Unicode with lone surrogates, rich markup (``[/x]``, ``[bold]``), ANSI
and OSC escapes, NUL and other control characters, HTML and the report's template keys
(``__BODY__``), empty and huge. Each gets a verdict or a one-line error, never a traceback; a
terminal gets it inert (no control character but newline and tab); report.html gets it escaped
and whole (its data island parses back to the samples as written); and every artifact keeps every
field, with what UTF-8 cannot hold made U+FFFD (:func:`selfplay.engine.artifacts.clean_text`).
"""

from __future__ import annotations

import functools
import io
import json
import re
import shutil
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfplay.cli import main
from selfplay.config import FilterConfig
from selfplay.engine import artifacts
from selfplay.engine.filters import filter_samples
from selfplay.engine.sampling import sample_record
from selfplay.tasks import TASKS
from selfplay.verify import STATUSES, Verdict
from selfplay.views.html import FIELDS
from tests.test_report import make_run

FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

FRAGMENTS = [
    "[/x]", "[bold]", "[/]", "[link=file:///etc/passwd]x[/link]", "[red on white]", "\\[", "[",
    "\x1b[31m", "\x1b[2J", "\x1b]0;pwned\x07", "\x1b]8;;http://x.invalid\x1b\\", "\x9b1m", "\x07",
    "\x08", "\r", "\x7f", "\x00", "\x85", "\ud800", "\udfff", "\udcff", "\ud83d\ude00",
    "__BODY__", "__TITLE__", "<script>alert(1)</script>", "</script>", "<!--", "<fz-tag>",
    "&lt;", "\u2028", "\u202e", "\n", "\t", " ", "|", "=", "+", "*", "c1", "####", "Answer:",
    "\\boxed{", "}", "{", "<<", ">>", "12", "7", "0", "-", ".", "/",
]  # fmt: skip
"""Pieces of hostile text; joined with arbitrary characters between them."""

HUGE = ["", "9" * 100_001, "[bold]" * 20_000, "\x1b[2J" * 25_000, "\ud800" * 50_000, "x\n" * 3_000]
"""Empty and huge texts: a verifier's size cap reached, a terminal's screens filled."""

leaf = st.one_of(
    st.sampled_from(FRAGMENTS),
    st.text(max_size=6),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),  # lone surrogates
    st.characters(max_codepoint=0x9F),  # control characters
)
hostile = st.one_of(
    st.lists(leaf, max_size=12).map("".join),
    st.text(),
    st.sampled_from(HUGE),
)
short_hostile = st.lists(leaf, min_size=1, max_size=6).map("".join)
field = st.one_of(st.lists(leaf, max_size=12).map("".join), st.text(max_size=40))
"""A sample's field: hostile, of a length a view lays out (only a sample's text is ever huge)."""

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``selfplay ARGV`` in this process, with stdout and stderr as a terminal or pipe has them:
    UTF-8 with strict errors (a lone surrogate written there raises)."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="", write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="", write_through=True)
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.buffer.getvalue().decode(), err.buffer.getvalue().decode()


def _check_terminal(code: int, out: str, err: str) -> None:
    """A verdict or a one-line error, and nothing a terminal would act on."""
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) <= 1, err
    assert code == 0 or err.startswith("selfplay: error: "), err
    for text in (out, err):
        assert not _CONTROL.search(text), _CONTROL.search(text)


# ------------------------------------------------------------------------------------------------
# Every task's verifier


RECORDS = {
    "arith": {"prompt": "Q:4729+386="},
    "gsm8k": {
        "question": "Tom has 3 boxes of 4 apples and eats 2. How many are left?",
        "answer": "3*4=<<3*4=12>>12 apples\n12-2=<<12-2=10>>10\n#### 10",
    },
    "math": {"problem": "What is $1/2 + 1/4$?", "solution": "So it is $\\boxed{\\frac{3}{4}}$."},
    "countdown": {"numbers": [3, 7, 25], "target": 46},
    "code": {
        "task_id": "Fuzz/0",
        "prompt": 'def add(a, b):\n    """a + b"""\n',
        "canonical_solution": "    return a + b\n",
        "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n",
        "entry_point": "add",
    },
}
CODE_FUZZ = settings(FUZZ, max_examples=25)
"""The code task's verifier runs each example in its sandbox (tens of ms each)."""


@pytest.fixture(scope="module")
def verifiers():
    tasks = {name: TASKS[name].verifier(timeout=5.0) for name in RECORDS}
    yield {name: (task, task.problem_from_record(RECORDS[name], 0)) for name, task in tasks.items()}
    for task in tasks.values():
        if hasattr(task, "close"):
            task.close()


@functools.cache
def _gold(task_name: str) -> str:
    task = TASKS[task_name].verifier()
    return task.gold_chain(task.problem_from_record(RECORDS[task_name], 0))


@st.composite
def completions(draw, task_name: str):
    """Hostile text alone, or spliced into the task's gold solution (which reaches the steps)."""
    text = draw(hostile)
    if draw(st.booleans()):
        return text
    gold = _gold(task_name)
    i = draw(st.integers(0, len(gold)))
    j = draw(st.integers(i, min(len(gold), i + 4)))
    return gold[:i] + text[:200] + gold[j:]


def _check_verdict(v: Verdict, task_name: str) -> None:
    assert isinstance(v, Verdict) and v.status in STATUSES
    assert v.status != "error", v.why  # the verifier itself broke
    # Only math-verify and the sandbox may run out of time (a loaded machine, a pathological text).
    assert v.status != "timeout" or task_name in ("math", "code"), v.why
    assert isinstance(v.why, str) and isinstance(v.answer, str | None)
    assert all(isinstance(s.text, str) and isinstance(s.why, str) for s in v.steps)
    assert v.status == "correct" or v.why, v
    for why in (v.why, *(s.why for s in v.steps)):  # a reason: one line, never the whole text
        assert "\n" not in why and "\r" not in why and len(why) <= 1000, why


def _round_trip(problem, text: str, v: Verdict, tmp: Path) -> None:
    """The sample record the loop writes keeps every key and every value through Parquet (what
    UTF-8 cannot hold as U+FFFD), after the filter has given it a decision and a reason."""
    c = SimpleNamespace(text=text, tokens=len(text), finish_reason="stop")
    rec = sample_record(problem, c, v, 0, "sampled", problem.prompt + text[:50])
    filter_samples([rec], FilterConfig())
    path = tmp / "samples.parquet"
    artifacts.write_parquet(path, [rec])
    (back,) = artifacts.read_parquet(path)
    assert back == artifacts.clean_text(rec)
    assert list(back) == list(rec)
    for value in back.values():  # a terminal or a JSON file can hold all of it
        json.dumps(value, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("task_name", list(RECORDS))
def test_every_verifier_gives_a_verdict_that_round_trips(task_name, verifiers, tmp_path):
    task, problem = verifiers[task_name]

    @CODE_FUZZ if task_name == "code" else FUZZ
    @given(completions(task_name))
    def check(text):
        v = task.verify(problem, text)
        _check_verdict(v, task_name)
        _round_trip(problem, text, v, tmp_path)

    check()


@pytest.mark.parametrize("task_name", ["gsm8k", "math"])
@FUZZ
@given(question=short_hostile)
def test_a_question_of_any_text_is_a_problem(task_name, question):
    """A record's question with a lone surrogate or a control character is still a problem; its
    id is stable."""
    key = "question" if task_name == "gsm8k" else "problem"
    if not question.strip():
        return
    record = dict(RECORDS[task_name], **{key: question})
    task = TASKS[task_name].verifier()
    p = task.problem_from_record(record, 0)
    assert p.id == task.problem_from_record(record, 1).id
    assert p.id.isascii() and p.id.isprintable()


# ------------------------------------------------------------------------------------------------
# selfplay verify TASK FILE


@st.composite
def jsonl_lines(draw, task_name: str) -> list[bytes]:
    """Lines of a user's file: records of the task with hostile completions (and sometimes a
    hostile prompt or question), hostile non-JSON lines, lines that are not UTF-8."""
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["record", "record", "prompt", "raw"]))
        rec = dict(RECORDS[task_name], completion=draw(completions(task_name)))
        if kind == "prompt":
            key = {"gsm8k": "question", "math": "problem"}.get(task_name, "prompt")
            rec[key] = draw(short_hostile)
        if kind == "raw":
            line = draw(short_hostile).encode("utf-8", "surrogatepass")
        else:  # ensure_ascii: a lone surrogate travels as its \\ud800 escape
            line = json.dumps(rec).encode()
        lines.append(line.replace(b"\n", b" ") + b"\n")
    return lines


def _to_verify(line: bytes) -> bool:
    """Whether ``selfplay verify`` gives the line a verdict: all but the blank ones (any Unicode
    space), a line that is not UTF-8 included."""
    try:
        return bool(line.decode("utf-8").strip())
    except UnicodeDecodeError:
        return True


def _check_verify_cli(task_name: str, lines: list[bytes], name: str) -> None:
    tmp = Path(tempfile.mkdtemp())
    try:
        path = tmp / name
        path.write_bytes(b"".join(lines))
        out = tmp / "verdicts.parquet"
        argv = ["verify", task_name, str(path), "--out", str(out), "--no-progress"]
        code, stdout, err = _run_cli(argv)
        _check_terminal(code, stdout, err)
        n = sum(map(_to_verify, lines))
        if code == 0:
            rows = artifacts.read_parquet(out)
            assert len(rows) == n and all(r["status"] in STATUSES for r in rows)
        else:  # only a file with no line to verify is an error
            assert n == 0 and "no lines to verify" in err
    finally:
        shutil.rmtree(tmp)


file_names = st.text(
    st.characters(exclude_characters="/", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=40
).map(lambda s: s + ".jsonl")
"""A file's name: any text a name may hold (escapes in a path: the hostile-path tests at the end)."""


@pytest.mark.parametrize("task_name", ["arith", "gsm8k", "countdown"])
@FUZZ
@given(data=st.data(), name=st.one_of(st.just("c.jsonl"), file_names))
def test_verify_cli_gives_every_line_a_verdict(task_name, data, name):
    _check_verify_cli(task_name, data.draw(jsonl_lines(task_name)), name)


@settings(FUZZ, max_examples=6)  # every call starts math-verify's worker (about a second)
@given(data=st.data())
def test_verify_cli_math(data):
    _check_verify_cli("math", data.draw(jsonl_lines("math")), "m.jsonl")


@settings(FUZZ, max_examples=10)  # every line runs in the code task's sandbox
@given(data=st.data())
def test_verify_cli_code(data):
    _check_verify_cli("code", data.draw(jsonl_lines("code")), "c.jsonl")


# ------------------------------------------------------------------------------------------------
# A finished run directory with hostile samples: inspect, summary, report


origins = st.sampled_from(["sampled", "rationalized", "adaptive"]) | short_hostile


@st.composite
def hostile_samples(draw) -> list[dict]:
    """A round's samples whose every text field is hostile (problem ids shared by a few)."""
    pids = draw(st.lists(short_hostile, min_size=1, max_size=3))
    rows = []
    for i in range(draw(st.integers(1, 5))):
        status = draw(st.sampled_from(STATUSES))
        kept = draw(st.booleans())
        steps = draw(st.lists(st.tuples(field, st.booleans(), field), max_size=3))
        text = draw(field | st.sampled_from(HUGE))
        rows.append(
            {
                "problem_id": draw(st.sampled_from(pids)),
                "difficulty": draw(st.integers(1, 3)),
                "prompt": draw(field),
                "gold": draw(short_hostile),
                "sample_idx": i,
                "text": text,
                "tokens": draw(st.none() | st.integers(0, 10**6)),
                "finish_reason": draw(st.sampled_from(["stop", "length"])),
                "status": status,
                "answer": draw(st.none() | field),
                "valid": status == "correct" and all(ok for _, ok, _ in steps),
                "why": draw(field),
                "first_bad_step": None,
                "steps": [{"text": t, "ok": ok, "why": why} for t, ok, why in steps],
                "kept": kept,
                "filter_reason": "kept" if kept else draw(field),
                "origin": draw(origins),
                "generation_prompt": draw(field),
                "reward": draw(st.none() | st.floats(-1, 1)),
            }
        )
    return rows


def _hostile_run(samples: list[dict], progress: dict | None) -> Path:
    """A finished run (tests/test_report.make_run) whose last round's samples and evaluation
    samples are ``samples``, and which reports ``progress`` as its stage in progress."""
    d = make_run(Path(tempfile.mkdtemp()))
    artifacts.write_parquet(d / "iter_002" / "samples.parquet", samples)
    decision = ("kept", "filter_reason", "reward")  # an evaluation sample has none
    ev = [{k: v for k, v in s.items() if k not in decision} for s in samples]
    artifacts.write_parquet(d / "iter_002" / "eval_samples.parquet", ev)
    if progress is not None:
        artifacts.write_json(d / "progress.json", progress)
    return d


progress_reports = st.none() | st.fixed_dictionaries(
    {"desc": field, "n": st.integers(0, 10**6), "total": st.integers(0, 10**6),
     "unit": short_hostile, "rate": st.floats(0, 1e6), "time": st.floats(0, 2e9)}
)  # fmt: skip


@FUZZ
@given(samples=hostile_samples(), progress=progress_reports, data=st.data())
def test_inspect_shows_any_text_inert(samples, progress, data):
    d = _hostile_run(samples, progress)
    try:
        pid = artifacts.clean_text(data.draw(st.sampled_from([s["problem_id"] for s in samples])))
        reason = data.draw(short_hostile | st.sampled_from(["wrong", "zz-matches-nothing"]))
        base = ["inspect", str(d)]
        for flags in (
            [],
            ["--iter", "2", "--invalid"],
            ["--iter", "2", "--valid"],
            [f"--reason={reason}"],
            [f"--problem={pid}"],
            [f"--problem={pid}", "--compare"],
            ["--eval"],
            ["--eval", f"--problem={pid}", "--compare"],
            ["--decision", "rejected", "--limit", "2"],
        ):
            code, out, err = _run_cli(base + flags)
            _check_terminal(code, out, err)
            if flags == [f"--problem={pid}"]:
                assert code == 0 and "matching samples shown (iteration 2" in out
    finally:
        shutil.rmtree(d.parent)


@settings(FUZZ, max_examples=20)
@given(samples=hostile_samples(), progress=progress_reports)
def test_summary_and_report_of_a_hostile_run(samples, progress):
    d = _hostile_run(samples, progress)
    try:
        for fmt in ("table", "csv", "json"):
            code, out, err = _run_cli(["summary", str(d), "--format", fmt])
            _check_terminal(code, out, err)
            assert code == 0 and "iter_002" in out
        code, out, err = _run_cli(["report", str(d)])
        _check_terminal(code, out, err)
        assert code == 0
        _check_report((d / "report.html").read_bytes().decode("utf-8"), samples)
    finally:
        shutil.rmtree(d.parent)


def _check_report(page: str, samples: list[dict]) -> None:
    """The page is the template's: its own two scripts, no element from the text, its title
    unreplaced; its data island holds every sample of the round as written."""
    assert page.count("<script") == 2  # the data island and the page's own code
    assert "<fz-tag" not in page and "<!--" not in page
    assert "<title>selfplay run · run</title>" in page and page.count("<title>") == 1
    assert page.count('id="samples-data"') == 1
    island = page.split('id="samples-data">')[1].split("</script>")[0]
    data = json.loads(island)
    assert data["fields"] == FIELDS
    f = data["fields"]
    rows = [r for r in data["rows"] if r[f.index("iteration")] == 2]
    generated = [r for r in rows if r[f.index("set")] == "generated"]
    assert len(generated) == len(samples)
    for row, s in zip(generated, artifacts.clean_text(samples), strict=True):
        for key in ("problem_id", "prompt", "text", "filter_reason", "answer", "gold"):
            assert row[f.index(key)] == s[key]
        assert row[f.index("steps")] == [[t["text"], t["ok"], t["why"]] for t in s["steps"]]


def test_hostile_text_is_shown_literally():
    """Not merely no crash: markup and escapes in a sample are on the terminal as written."""
    hostile_id = "[bold]x[/bold] [/x] \x1b[2J"
    s = {
        "problem_id": hostile_id, "difficulty": 1, "prompt": "[red]p", "gold": "1",
        "sample_idx": 0, "text": "t", "tokens": 1, "finish_reason": "stop", "status": "wrong",
        "answer": "[/]", "valid": False, "why": "w", "first_bad_step": 0,
        "steps": [{"text": "[link=x]s", "ok": False, "why": "\x1b]0;t\x07"}], "kept": False,
        "filter_reason": "[i]r", "origin": "\x1b[31m", "generation_prompt": "g",
    }  # fmt: skip
    progress = {"desc": "[b]train\x1b[2J", "n": 1, "total": 2, "unit": "[/u]", "rate": 1.0}
    d = _hostile_run([s], progress)
    try:
        code, out, err = _run_cli(["inspect", str(d), "--problem", hostile_id])
        _check_terminal(code, out, err)
        shown = ["[bold]x[/bold] [/x] \\x1b[2J", "[red]p", "[/]", "[link=x]s", "\\x1b]0;t\\x07"]
        for text in [*shown, "[i]r", "\\x1b[31M"]:  # the origin upper-cased
            assert text in out, text
        code, out, err = _run_cli(["summary", str(d)])
        _check_terminal(code, out, err)
        assert "in progress: [b]train\\x1b[2J: 1/2 [/u]" in out
    finally:
        shutil.rmtree(d.parent)


# ------------------------------------------------------------------------------------------------
# Paths are input text too: a run directory or file named with markup, escapes and template keys

HOSTILE_PATH = "r[/x] [bold]\x1b]0;pwned\x07\x1b[2J __BODY__ <b>"
"""A run directory's path (``r[`` holds it): its name has the report's template key."""


@pytest.fixture
def hostile_dir(tmp_path):
    d = tmp_path / HOSTILE_PATH
    d.parent.mkdir()
    return make_run(tmp_path).rename(d)


def test_inspect_of_a_hostile_run_directory(hostile_dir):
    _check_terminal(*_run_cli(["inspect", str(hostile_dir)]))


def test_verify_of_a_hostile_path(hostile_dir):
    f = hostile_dir / "c.jsonl"
    f.write_text('{"prompt": "Q:1+2=", "completion": "1+2=3 c0|3"}\n')
    code, out, err = _run_cli(["verify", "arith", str(f), "--no-progress"])
    _check_terminal(code, out, err)
    assert code == 0 and "[bold]" in out  # the table's title names the file as it is


def test_an_error_naming_a_hostile_path_is_inert(hostile_dir):
    code, out, err = _run_cli(["inspect", str(hostile_dir / "missing")])
    assert code == 2
    _check_terminal(code, out, err)


def test_summary_of_a_hostile_run_directory(hostile_dir):
    _check_terminal(*_run_cli(["summary", str(hostile_dir)]))


def test_report_page_of_a_hostile_run_directory(hostile_dir):
    from selfplay.views.html import build_report

    page = build_report(hostile_dir).read_text()
    assert page.count("<script") == 2 and page.count('id="samples-data"') == 1
    assert "<b>" not in page.split("<h1>")[1].split("</h1>")[0]


def test_report_command_names_a_hostile_path_inert(hostile_dir):
    _check_terminal(*_run_cli(["report", str(hostile_dir)]))


def test_verify_out_to_a_hostile_path(hostile_dir):
    f = hostile_dir / "c.jsonl"
    f.write_text('{"prompt": "Q:1+2=", "completion": "1+2=3 c0|3"}\n')
    _check_terminal(*_run_cli(["verify", "arith", str(f), "--out", str(hostile_dir / "v.parquet")]))
