"""What every task shares: the Task protocol, the bounds on what a verifier reads, answer reading."""

from __future__ import annotations

import ast
import doctest
import sys
from pathlib import Path

import pytest

from selfplay.tasks import TASKS, answers
from selfplay.tasks.base import Task

SRC = Path(__file__).resolve().parents[1] / "src" / "selfplay"
SHARED = {"tasks/__init__.py", "tasks/base.py", "tasks/generated.py"}
"""The tasks package's modules that work on any task."""
OPTIONAL = {"verify_many", "overlap_key", "min_difficulty", "answer_tokens", "answer_width"}
"""Members the code looks up with ``getattr`` and a default (named in the protocol's comment)."""

RECORDS = {
    "arith": {"prompt": "Q:12+34="},
    "code": {
        "prompt": "def one():\n",
        "test": "def check(candidate):\n    assert candidate() == 1\n",
        "entry_point": "one",
    },
    "countdown": {"numbers": [3, 7], "target": 10},
    "gsm8k": {"question": "What is 1 + 2?", "answer": "1 + 2 = <<1+2=3>>3\n#### 3"},
    "math": {"problem": "What is 1 + 2?", "solution": "It is $\\boxed{3}$."},
}


def protocol_members() -> set[str]:
    return {n for n in vars(Task) if not n.startswith("_")} | set(Task.__annotations__)


def test_every_protocol_method_says_what_it_must_do():
    members = protocol_members()
    assert {"verify", "raw_corpus", "sample_problems", "check_config"} <= members
    for name in members - {"name"}:
        doc = getattr(Task, name).__doc__
        assert doc and len(doc.split()) > 5, name


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_implements_the_protocol(name):
    cls = TASKS[name]
    assert set(RECORDS) == set(TASKS)  # a new task gets a record below
    assert cls.name == name
    for member in protocol_members() - {"name"}:
        assert callable(getattr(cls, member, None)), f"{name} lacks {member}"


def test_what_the_package_asks_of_a_task_is_declared():
    # Every `task.<member>` outside the tasks themselves (the loop, stages, bench, sampling,
    # verify_file, the shared helpers) is a protocol member, so reading base.py is enough to
    # write a task.
    used: dict[str, str] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("tasks/") and rel not in SHARED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "task"
            ):
                used.setdefault(node.attr, rel)
            if (  # getattr(task, "member", default)
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "getattr"
                and len(node.args) >= 2
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id == "task"
                and isinstance(node.args[1], ast.Constant)
            ):
                used.setdefault(node.args[1].value, rel)
    assert {"sample_problems", "raw_corpus", "verify_many", "overlap_key"} <= set(used)
    undeclared = {m: f for m, f in used.items() if m not in protocol_members() | OPTIONAL}
    assert undeclared == {}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_verifier_screens_what_it_cannot_read(name):
    cls = TASKS[name]
    task = cls.verifier(timeout=5.0)
    problem = task.problem_from_record(RECORDS[name], 0)
    not_text = task.verify(problem, 12)
    assert (not_text.status, not_text.why) == ("error", "completion is int, not text")
    limit = sys.modules[cls.__module__].MAX_CHARS
    long = task.verify(problem, "1" * (limit + 1))
    assert long.status == "unparseable"
    assert long.why == f"completion too long ({limit + 1} characters)"


def test_answer_doctests():
    result = doctest.testmod(answers)
    assert result.attempted >= 4 and result.failed == 0
