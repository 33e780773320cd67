"""The ``code`` task: HumanEval problems, judged by running their tests in the sandbox."""

from __future__ import annotations

import gzip
import json
import os
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfplay.config import ConfigError, config_from_dict
from selfplay.tasks import TASKS, make_task, split_of
from selfplay.tasks.code import (
    MAX_CHARS,
    CodeTask,
    difficulty_of,
    extract_code,
    plan_tests,
)
from selfplay.verify import STATUSES

from .shared_data import HUMANEVAL  # noqa: E402

needs_humaneval = pytest.mark.skipif(
    not HUMANEVAL.is_file(), reason=f"HumanEval is not at {HUMANEVAL}"
)

# A HumanEval-shaped problem of our own, so most tests need no data file.
ADD = {
    "task_id": "Toy/0",
    "prompt": 'from typing import List\n\n\ndef add(xs: List[int], k: int) -> List[int]:\n    """Add k to every element.\n    >>> add([1, 2], 1)\n    [2, 3]\n    """\n',
    "canonical_solution": "    return [x + k for x in xs]\n",
    "test": (
        "\n\nMETADATA = {}\n\n\ndef check(candidate):\n"
        "    assert candidate([1, 2], 1) == [2, 3]\n"
        "    assert candidate([], 5) == []\n"
        "    assert candidate([0], -1) == [-1], 'negative'\n"
        "    for i in range(10):\n"
        "        assert candidate([i], i) == [2 * i]\n"
        "    assert len(candidate([1, 2, 3], 0)) == 3\n"
    ),
    "entry_point": "add",
}
TASK = CodeTask.from_records([ADD], timeout=2.0, memory_mb=256)
PROBLEM = TASK.problems[0]
SIGNATURE = "def add(xs, k):\n    return [x + k for x in xs]\n"


def _marks(verdict) -> str:
    return "".join("+" if s.ok else "-" for s in verdict.steps)


# ------------------------------------------------------------------------------------------------
# Records and problems


def test_problem_from_record():
    p = PROBLEM
    assert p.id == "Toy/0" and p.prompt == ADD["prompt"] and p.answer == ""
    assert p.meta == {"gold": ADD["canonical_solution"], "test": ADD["test"], "entry_point": "add"}
    assert p.difficulty == 1
    no_gold = CodeTask.problem_from_record({k: v for k, v in ADD.items() if k != "task_id"}, 7)
    assert no_gold.id == "code-7"
    verify_only = {k: v for k, v in ADD.items() if k != "canonical_solution"}
    assert CodeTask.problem_from_record(verify_only, 0).difficulty == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"prompt": None}, "'prompt'"),
        ({"test": ""}, "'test'"),
        ({"entry_point": 3}, "'entry_point'"),
        ({"entry_point": "not a name"}, "not a Python name"),
        ({"canonical_solution": ["x"]}, "canonical_solution"),
    ],
)
def test_bad_records(change, message):
    with pytest.raises(ValueError, match=message):
        CodeTask.problem_from_record({**ADD, **change}, 0)


@pytest.mark.parametrize(
    "lines, difficulty", [(0, 1), (1, 1), (2, 2), (4, 2), (5, 3), (7, 3), (8, 4), (11, 4), (12, 5)]
)
def test_difficulty_buckets(lines, difficulty):
    body = "    # a comment\n\n" + "    x = 1\n" * lines
    assert difficulty_of(body if lines else None) == difficulty
    assert 1 <= difficulty <= CodeTask.max_difficulty


def test_registered_and_configured(tmp_path):
    assert TASKS["code"] is CodeTask
    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps({**ADD, "task_id": f"Toy/{i}"}) + "\n" for i in range(10)))
    cfg = config_from_dict({"task": {"name": "code", "data": str(data)}, "raw": {"size": 3}})
    task = make_task(cfg)
    assert isinstance(task, CodeTask) and len(task.problems) == 10
    assert task.timeout == cfg.task.timeout and task.memory_mb == cfg.task.memory_mb
    raw = task.raw_corpus(cfg.raw, random.Random(0))
    assert [e.completion for e in raw] == [ADD["canonical_solution"]] * 3
    assert {e.source for e in raw} == {"raw"} and all(
        split_of(e.problem_id) == "train" for e in raw
    )
    with pytest.raises(ConfigError, match="answer-only"):
        config_from_dict({"task": {"name": "code"}, "raw": {"answer_only_rate": 0.1}})
    with pytest.raises(ConfigError, match="slip"):
        config_from_dict({"task": {"name": "code"}, "raw": {"slip_rate": 0.1}})
    with pytest.raises(ConfigError, match="up to 5"):
        config_from_dict({"task": {"name": "code"}, "eval": {"difficulties": [6]}})
    with pytest.raises(ConfigError):
        TASK.answer_only(PROBLEM)


def test_gold_chain_hint_and_lengths():
    assert TASK.gold_chain(PROBLEM) == ADD["canonical_solution"]
    hint = TASK.hint_prompt(PROBLEM)
    assert hint == "# It must pass: assert add([1, 2], 1) == [2, 3]\n" + PROBLEM.prompt
    assert TASK.max_new_tokens(1) >= len(ADD["canonical_solution"])
    no_gold = CodeTask.problem_from_record({**ADD, "canonical_solution": None}, 0)
    with pytest.raises(ValueError, match="no canonical_solution"):
        TASK.gold_chain(no_gold)


# ------------------------------------------------------------------------------------------------
# The tests, rewritten


def test_plan_tests_records_every_assert():
    plan = plan_tests(ADD["test"])
    assert plan.asserts == (
        "assert candidate([1, 2], 1) == [2, 3]",
        "assert candidate([], 5) == []",
        "assert candidate([0], -1) == [-1], 'negative'",
        "assert candidate([i], i) == [2 * i]",
        "assert len(candidate([1, 2, 3], 0)) == 3",
    )
    assert "assert " not in plan.source  # every one rewritten
    assert "_selfplay_recorder.compare(0, '==', candidate([1, 2], 1), [2, 3], 0)" in plan.source
    compile(plan.source, "test.py", "exec")


@pytest.mark.parametrize(
    "test",
    ["assert add([1], 1) == [2]\n", "def check(candidate):\n    pass\n", "def check(:\n"],
    ids=["no-check", "no-asserts", "syntax-error"],
)
def test_plan_tests_falls_back_to_the_test_as_written(test):
    plan = plan_tests(test)
    assert plan.source == test and plan.asserts == ()


def test_tests_without_check_get_one_step_or_an_error():
    no_asserts = CodeTask.problem_from_record(
        {
            **ADD,
            "test": "def check(candidate):\n    if candidate([1], 1) != [2]:\n        raise ValueError\n",
        },
        0,
    )
    v = TASK.verify(no_asserts, ADD["canonical_solution"])
    assert v.status == "correct" and v.valid and len(v.steps) == 1
    assert TASK.verify(no_asserts, "    return xs\n").status == "wrong"
    broken = CodeTask.problem_from_record({**ADD, "test": "def check(:\n"}, 0)
    v = TASK.verify(broken, ADD["canonical_solution"])
    assert v.status == "error" and "tests do not load" in v.why
    no_check = CodeTask.problem_from_record({**ADD, "test": "x = 1\n"}, 0)
    v = TASK.verify(no_check, ADD["canonical_solution"])
    assert v.status == "error" and "no check function" in v.why


def test_extract_code():
    assert extract_code("    return 1\n") == "    return 1\n"
    assert (
        extract_code("Sure:\n```python\ndef f():\n    return 1\n```\nbye")
        == "def f():\n    return 1\n"
    )
    assert extract_code("```\nx = 1\n") == "x = 1\n"
    assert extract_code("```") == ""


# ------------------------------------------------------------------------------------------------
# Verdicts

# (id, completion, status, marks ("+" ok, "-" not), substring of why)
CASES = [
    ("gold", ADD["canonical_solution"], "correct", "+++++", ""),
    ("signature-repeated", SIGNATURE, "correct", "+++++", ""),
    ("fenced", f"Here it is:\n```python\n{SIGNATURE}```\n", "correct", "+++++", ""),
    ("whole-prompt-repeated", ADD["prompt"] + ADD["canonical_solution"], "correct", "+++++", ""),
    (
        "helper-and-imports",
        "    return helper(xs, k)\n\nimport math\n\ndef helper(xs, k):\n    return [x + k for x in xs]\n",
        "correct",
        "+++++",
        "",
    ),
    ("off-by-one", "    return [x + k + 1 for x in xs]\n", "wrong", "-+--+", "got [3, 4]"),
    ("empty-case-only", "    return []\n", "wrong", "-+---", "got []"),
    (
        "loop-fails-sometimes",
        "    return [x + k if x < 5 else 0 for x in xs]\n",
        "wrong",
        "+++-+",
        "failed 5 of 10 runs",
    ),
    ("raises", "    raise ValueError('nope')\n", "wrong", "-----", "raised ValueError: nope"),
    ("returns-none", "    pass\n", "wrong", "-----", "got None"),
    ("syntax-error", "    return [x +\n", "unparseable", "", "does not compile"),
    ("bad-indent", "  return xs\n", "unparseable", "", "IndentationError"),
    ("nul-bytes", "    return xs\x00\n", "unparseable", "", "null bytes"),
    ("lone-surrogate", "    return '\udcff'\n", "unparseable", "", "surrogate"),
    ("not-the-entry-point", "    return xs\ndel add\n", "wrong", "", "defines no function 'add'"),
    (
        "raises-at-import",
        "    return xs\nraise RuntimeError('import')\n",
        "wrong",
        "-----",
        "the solution raised RuntimeError",
    ),
    ("exit-at-import", "    return xs\nimport sys\nsys.exit(0)\n", "wrong", "-----", "SystemExit"),
    (
        "os-exit-in-call",
        "    import os\n    os._exit(0)\n",
        "wrong",
        "-----",
        "stopped before the tests finished",
    ),
    (
        "always-equal",
        "    class Eq:\n        def __eq__(self, o):\n            return True\n        def __len__(self):\n            return 3\n    return Eq()\n",
        "wrong",
        "-----",
        "returned an object of class Eq, not a plain value",
    ),
    (
        "patched-builtin",
        "    return [x + k for x in xs]\nimport builtins\nbuiltins.len = lambda x: 3\n",
        "correct",
        "+++++",
        "",
    ),
    (
        "infinite-loop",
        "    while True:\n        pass\n",
        "timeout",
        "-----",
        "wall-clock limit of 2s",
    ),
    (
        "loop-after-some",
        "    if xs == [0]:\n        while True:\n            pass\n    return [x + k for x in xs]\n",
        "timeout",
        "++---",
        "limit",
    ),
    ("memory-bomb", "    return [0] * (10 ** 10)\n", "error", "-----", "memory limit of 256 MiB"),
    ("crash", "    import os\n    os.abort()\n", "error", "-----", "SIGABRT"),
    (
        "fork-bomb",
        "    import os\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n",
        "timeout",
        "-----",
        "limit",
    ),
    (
        "kills-the-parent",
        "    import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)\n",
        "wrong",
        "-----",
        "PermissionError",
    ),
    (
        "network",
        "    import socket\n    socket.create_connection(('127.0.0.1', 80))\n",
        "wrong",
        "-----",
        "PermissionError",
    ),
    (
        "ctypes",
        "    import ctypes\n    return ctypes.string_at(0)\n",
        "wrong",
        "-----",
        "importing ctypes",
    ),
    (
        "forged-report",
        "    import __main__, os\n"
        "    __main__.sandbox_report({'event': 'done', 'runs': [1] * 5, 'fails': [0] * 5})\n"
        "    os._exit(0)\n",
        "wrong",
        "-----",
        "AttributeError",
    ),
    ("too-long", "#" * (MAX_CHARS + 1), "unparseable", "", "too long"),
    ("garbage-megabyte", "\x00\xff\ufffd" * 300_000, "unparseable", "", "too long"),
    (
        "garbage",
        "".join(chr(random.Random(1).randrange(1, 0x2FF)) for _ in range(50_000)),
        "unparseable",
        "",
        "does not compile",
    ),
]


@pytest.mark.parametrize("cid, completion, status, marks, why", CASES, ids=[c[0] for c in CASES])
def test_verify(cid, completion, status, marks, why):
    v = TASK.verify(PROBLEM, completion)
    assert v.status == status, v
    assert _marks(v) == marks, v.steps
    assert why in v.why, v.why
    assert v.answer is None
    assert v.valid == (status == "correct")
    if status != "correct":
        assert v.why and "\n" not in v.why


def test_failed_step_says_what_came_back():
    v = TASK.verify(PROBLEM, "    return [x + k + 1 for x in xs]\n")
    bad = v.steps[v.first_bad_step]
    assert bad.text == "assert candidate([1, 2], 1) == [2, 3]" and bad.why == "got [3, 4]"
    assert v.why.startswith("assert candidate([1, 2], 1) == [2, 3]: got [3, 4]")


def test_writing_outside_and_reading_secrets(monkeypatch, tmp_path):
    monkeypatch.setenv("SELFPLAY_TEST_SECRET", "hunter2-very-secret")
    target = tmp_path / "escaped.txt"
    sneaky = (
        "    import os\n"
        f"    open({str(target)!r}, 'w').write(os.environ.get('SELFPLAY_TEST_SECRET', 'none'))\n"
        "    return [x + k for x in xs]\n"
    )
    v = TASK.verify(PROBLEM, sneaky)
    assert v.status == "wrong" and "PermissionError" in v.why
    assert not target.exists()
    leak = "    import os\n    return [os.environ.get('SELFPLAY_TEST_SECRET', 'none')]\n"
    v = TASK.verify(PROBLEM, leak)
    assert v.status == "wrong" and "hunter2" not in v.why and "got ['none']" in v.why


FUZZ = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@settings(FUZZ, max_examples=12)
@given(st.text(max_size=400))
def test_fuzz_completions(text):
    """Any text gets a verdict with a one-line reason (each example is a sandboxed run)."""
    v = TASK.verify(PROBLEM, text)
    assert v.status in STATUSES and "\n" not in v.why
    assert v.status != "correct"


@settings(FUZZ, max_examples=200)
@given(st.text(max_size=400))
def test_fuzz_plan_and_extract(text):
    plan = plan_tests(text)
    assert plan.source == text or plan.asserts
    assert extract_code(text) in text


def test_not_text_is_an_error():
    v = TASK.verify(PROBLEM, b"    return xs\n")
    assert v.status == "error" and "bytes" in v.why


def test_verify_many_keeps_order():
    items = [(PROBLEM, c[1]) for c in CASES[:8]]
    verdicts = TASK.verify_many(items, workers=3)
    assert [v.status for v in verdicts] == [c[2] for c in CASES[:8]]
    assert all(v.status in STATUSES for v in verdicts)


def test_verify_file(tmp_path):
    from selfplay.views.verify_file import verify_file

    path = tmp_path / "c.jsonl"
    lines = [
        {**ADD, "completion": SIGNATURE},
        {**ADD, "completion": "    return xs\n"},
        {**ADD, "entry_point": ""},
        {**ADD},
    ]
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    out = verify_file("code", path, timeout=3.0, progress=False)
    assert [v.verdict.status for v in out] == ["correct", "wrong", "error", "error"]
    assert "entry_point" in out[2].verdict.why and "completion" in out[3].verdict.why
    gold = verify_file("code", path, gold=True, timeout=3.0, progress=False)
    assert [v.verdict.valid for v in gold] == [True, True, False, True]


# ------------------------------------------------------------------------------------------------
# HumanEval


def _humaneval() -> CodeTask:
    with gzip.open(HUMANEVAL, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    return CodeTask.from_records(records, timeout=10.0, memory_mb=1024)


def _ordered(task: CodeTask):
    return sorted(task.problems, key=lambda p: int(p.id.split("/")[1]))


@needs_humaneval
def test_humaneval_problems():
    task = _humaneval()
    assert len(task.problems) == 164
    counts = [sum(p.difficulty == d for p in task.problems) for d in range(1, 6)]
    assert counts == [37, 28, 44, 33, 22]
    assert {p.id for p in task.problems} == {f"HumanEval/{i}" for i in range(164)}


@needs_humaneval
def test_humaneval_canonical_subset():
    """Ten problems spread over the set, including tests with loops and helper functions."""
    task = _humaneval()
    problems = _ordered(task)
    chosen = [problems[i] for i in (0, 10, 32, 38, 44, 50, 53, 95, 151, 163)]
    verdicts = task.verify_many([(p, p.meta["gold"]) for p in chosen])
    bad = [(p.id, v.status, v.why) for p, v in zip(chosen, verdicts, strict=True) if not v.valid]
    assert not bad
    # and a broken version of each fails
    broken = task.verify_many([(p, "    return None\n") for p in chosen])
    assert all(v.status == "wrong" for v in broken), [v.why for v in broken]


@needs_humaneval
def test_humaneval_all_canonical_solutions():
    """All 164 (about 5 s on 2 CPUs; ``-s`` prints the time)."""
    task = _humaneval()
    problems = _ordered(task)
    start = time.monotonic()
    verdicts = task.verify_many([(p, p.meta["gold"]) for p in problems])
    seconds = time.monotonic() - start
    bad = [(p.id, v.status, v.why) for p, v in zip(problems, verdicts, strict=True) if not v.valid]
    assert not bad
    print(f"\n{len(problems)} canonical solutions in {seconds:.1f}s on {os.cpu_count()} CPUs")


# ------------------------------------------------------------------------------------------------
# Values cross from the sandbox as data

ECHO = {
    "task_id": "Toy/echo",
    "prompt": 'def echo(x):\n    """Return x."""\n',
    "test": (
        "import math\n\n\ndef check(candidate):\n"
        "    values = [1, -2 ** 70, 2 ** 200, 1.5, float('inf'), 'a\\udcff\\n\"', b'\\x00\\xff',\n"
        "              None, True, (1, (2,)), [1, [2.5]], {(1, 2): {'k': frozenset({3})}},\n"
        "              {1, 'x'}, 3 + 4j, [], {}]\n"
        "    for v in values:\n"
        "        assert candidate(v) == v\n"
        "        assert type(candidate(v)) is type(v)\n"
        "    assert math.isnan(candidate(float('nan')))\n"
        "    assert math.copysign(1.0, candidate(-0.0)) == -1.0\n"
        "    assert candidate(True) is True\n"
    ),
    "entry_point": "echo",
}


def test_values_come_back_as_exact_builtin_types():
    task = CodeTask.from_records([ECHO], timeout=5.0, memory_mb=256)
    v = task.verify(task.problems[0], "    return x\n")
    assert v.status == "correct", v
    v = task.verify(task.problems[0], "    return list(x) if isinstance(x, tuple) else x\n")
    assert v.status == "wrong" and "got [1, (2,)]" in v.why, v


def test_decode_value_rejects_what_is_not_a_value():
    from selfplay.tasks.code.judge import BadReply, decode_value

    assert decode_value('{"t": [1, {"s": ["a"]}]}') == (1, {"a"})
    assert decode_value('{"i": "-ff"}') == -255
    for bad in (
        '{"x": [1]}',
        '{"t": 5}',
        '{"d": [[[1], 2]]}',
        '{"d": [[1]]}',
        '{"d": ["ab"]}',
        '{"b": "zz"}',
        '{"a": 1, "b": 2}',
        '{"v": 1}',
        '[{"v": 1}]',
        "[1,",
        "[" * 100_000,
    ):
        with pytest.raises(BadReply):
            decode_value(bad)


def test_tests_can_catch_what_the_candidate_raises():
    raising = {
        **ADD,
        "test": (
            "def check(candidate):\n"
            "    try:\n        candidate(None, 1)\n    except TypeError:\n        pass\n"
            "    else:\n        assert False, 'no TypeError'\n"
            "    assert candidate([1], 1) == [2]\n"
        ),
    }
    task = CodeTask.from_records([raising], timeout=3.0, memory_mb=256)
    v = task.verify(task.problems[0], ADD["canonical_solution"])
    assert v.status == "correct", v
    v = task.verify(task.problems[0], "    return [x + k for x in (xs or [])]\n")
    assert v.status == "wrong" and not v.steps[0].ok and v.steps[1].ok, v


def test_default_workers_fit_in_memory():
    from selfplay.sandbox import Limits
    from selfplay.tasks.code import default_workers

    assert 1 <= default_workers(Limits()) <= 4 * (os.cpu_count() or 1)
    assert default_workers(Limits(memory_mb=1 << 30)) == 1  # a cap no machine holds twice
