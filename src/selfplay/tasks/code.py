"""``code``: complete a Python function from its signature and docstring (HumanEval), judged by
running the problem's tests in the sandbox (:mod:`selfplay.sandbox`).

The prompt is the problem's code up to and including the docstring; the completion is the body::

    def add(x: int, y: int):
        \"\"\"Add two numbers x and y ... \"\"\"      ->      return x + y

The program run is ``prompt + completion``, then the problem's ``test`` (which defines
``check(candidate)``), then ``check(entry_point)``, in one namespace. Models often rewrite the
whole function (``def add(x, y): ...`` at column 0) or wrap it in a Markdown fence; both work:
the first fenced block of a completion that has one is what is run, and a function defined again
at column 0 simply replaces the prompt's (which then has only its docstring as a body). If
``prompt + completion`` does not compile but the completion defines the entry point at column 0,
the completion is run alone, after the prompt's ``import`` lines.

Steps: every ``assert`` of ``check`` is rewritten (AST) to record its own outcome and carry on, so
a verdict has one :class:`StepMark` per assertion, with its source text; a failed one says what
came back (``got [1, 2]``) or what was raised. An assertion inside a loop is one step that fails
if any of its runs fails. A test without a ``check`` function runs as written, with one step.

Statuses: ``correct``: the program ran to the end and every assertion held; ``wrong``: an
assertion failed, the solution or ``check`` raised, the entry point is missing, or the program
stopped before the tests finished (e.g. ``exit()``); ``unparseable``: ``prompt + completion``
does not compile (or the completion is longer than ``MAX_CHARS``); ``timeout``: the wall-clock
(``task.timeout``) or CPU limit; ``error``: the memory limit (``task.memory_mb``), a crash or a
kill, or a problem whose test cannot run.

Cheap reward hacks are closed where that is easy: builtins the solution replaced are restored
before the tests run, and ``==``/truth tests against a built-in value fail for an object whose
class defines ``__eq__``/``__bool__`` in code it compiled itself (the "always equal" object).
A program that inspects frames to rewrite the outcome records can still fake them; see the
sandbox for what is contained.

There is no single final answer: ``Problem.answer`` is ``""`` and verdicts carry ``answer=None``,
so majority voting does not apply to code. Difficulty is the length of the canonical solution in
code lines (not blank, not comments): 1 line -> 1, 2-4 -> 2, 5-7 -> 3, 8-11 -> 4, 12+ -> 5 (for
HumanEval 37/28/44/33/22 problems); 1 for a record without one. There is no answer-only form and
no slip generator, so ``raw.answer_only_rate`` and ``raw.slip_rate`` must be 0.
"""

from __future__ import annotations

import ast
import inspect
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from selfplay.errors import ConfigError
from selfplay.sandbox import Limits, SandboxResult, run_python
from selfplay.tasks.base import Problem
from selfplay.tasks.dataset import DatasetTask
from selfplay.verify import StepMark, Verdict

if TYPE_CHECKING:
    from selfplay.config import RunConfig

MAX_CHARS = 100_000
"""Completions longer than this are judged unparseable without being run."""
DIFFICULTY_LINES = (1, 4, 7, 11)
"""Difficulty is 1 + the number of these a canonical solution's code-line count exceeds."""
MAX_STEP_CHARS = 300

_OPS = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}
_RECORDER = "_selfplay_recorder"


# ------------------------------------------------------------------------------------------------
# The tests, rewritten to record every assertion


@dataclass(frozen=True)
class CheckPlan:
    source: str
    """The test code to run (``check`` rewritten, or the test as written)."""
    asserts: tuple[str, ...]
    """Source text of each recorded assertion, in order; empty if ``check`` was not rewritten."""


class _AssertRewriter(ast.NodeTransformer):
    """``assert L == R, msg`` -> ``try: rec.compare(i, '==', L, R, side) except BaseException as
    e: rec.raised(i, e)``; other tests go to ``rec.truth(i, T)``. ``side`` says which operand
    mentions the candidate (0 left, 1 right, -1 neither), so a failure reports what it returned.
    Nested functions, lambdas and classes are left alone."""

    def __init__(self, source: str, candidate: str):
        self.source, self.candidate, self.asserts = source, candidate, []

    def _mentions_candidate(self, node: ast.AST) -> bool:
        return any(isinstance(n, ast.Name) and n.id == self.candidate for n in ast.walk(node))

    def visit_FunctionDef(self, node):  # nested scopes keep their plain asserts
        return node

    visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = visit_FunctionDef

    def visit_Assert(self, node: ast.Assert):
        i = len(self.asserts)
        text = ast.get_source_segment(self.source, node) or ast.unparse(node)
        self.asserts.append(text if len(text) <= MAX_STEP_CHARS else text[:MAX_STEP_CHARS] + "...")
        rec = ast.Name(_RECORDER, ast.Load())
        t = node.test
        if isinstance(t, ast.Compare) and len(t.ops) == 1 and type(t.ops[0]) in _OPS:
            left, right = t.left, t.comparators[0]
            if self._mentions_candidate(left):
                side = 0
            elif self._mentions_candidate(right):
                side = 1
            else:
                side = -1
            args = [
                ast.Constant(i),
                ast.Constant(_OPS[type(t.ops[0])]),
                left,
                right,
                ast.Constant(side),
            ]
            call = ast.Call(ast.Attribute(rec, "compare", ast.Load()), args, [])
        else:
            call = ast.Call(ast.Attribute(rec, "truth", ast.Load()), [ast.Constant(i), t], [])
        exc = "_selfplay_exc"
        raised = ast.Call(
            ast.Attribute(rec, "raised", ast.Load()),
            [ast.Constant(i), ast.Name(exc, ast.Load())],
            [],
        )
        handler = ast.ExceptHandler(ast.Name("BaseException", ast.Load()), exc, [ast.Expr(raised)])
        return ast.copy_location(ast.Try([ast.Expr(call)], [handler], [], []), node)


@lru_cache(maxsize=1024)
def plan_tests(test: str) -> CheckPlan:
    """Rewrite the asserts of the last top-level ``check`` of ``test`` to record their outcomes.

    The recorder reaches ``check`` as a closure variable, not a global the solution could
    replace: ``check`` becomes ``_selfplay_make_check(_selfplay_recorder)``."""
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return CheckPlan(test, ())
    checks = [
        i for i, n in enumerate(tree.body) if isinstance(n, ast.FunctionDef) and n.name == "check"
    ]
    if not checks:
        return CheckPlan(test, ())
    at = checks[-1]
    check = tree.body[at]
    params = check.args.posonlyargs + check.args.args
    rewriter = _AssertRewriter(test, params[0].arg if params else "candidate")
    check.body = [rewriter.visit(stmt) for stmt in check.body]
    if not rewriter.asserts:
        return CheckPlan(test, ())
    # parsed from text rather than built, so the nodes carry every field this Python expects
    factory, bind = ast.parse(
        f"def _selfplay_make_check({_RECORDER}):\n    return check\n"
        f"check = _selfplay_make_check({_RECORDER})\n"
    ).body
    factory.body.insert(0, check)
    tree.body[at : at + 1] = [factory, bind]
    source = ast.unparse(ast.fix_missing_locations(tree))
    return CheckPlan(source, tuple(rewriter.asserts))


# ------------------------------------------------------------------------------------------------
# The driver: runs inside the sandbox (standard library only; this function is not called here)


def _driver_main() -> None:  # pragma: no cover - runs in the sandboxed child
    import builtins
    import operator
    import reprlib

    # given by the sandbox runner; taken out of the module so the solution cannot find it there
    report = globals().pop("sandbox_report")
    truth, type_, isinstance_, getattr_ = operator.truth, type, isinstance, getattr
    plain = (int, float, complex, str, bytes, bool, list, tuple, dict, set, frozenset, type(None))
    ops = {
        "==": operator.eq,
        "!=": operator.ne,
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
        "is": operator.is_,
        "is not": operator.is_not,
        "in": lambda a, b: a in b,
        "not in": lambda a, b: a not in b,
    }
    short_repr = reprlib.Repr()
    short_repr.maxstring = short_repr.maxother = 60
    short_repr.maxlist = short_repr.maxtuple = short_repr.maxdict = short_repr.maxset = 8

    def short(x) -> str:
        try:
            return short_repr.repr(x)
        except BaseException:
            return f"<{type_(x).__name__} object>"

    def describe(exc: BaseException) -> str:
        try:
            msg = str(exc)
        except BaseException:
            msg = ""
        return f"{type_(exc).__name__}: {msg}"[:160] if msg else type_(exc).__name__

    def rigged(x, names) -> bool:
        """A class whose comparison or truth comes from code compiled from a string (the
        solution's own), not from the standard library or a built-in."""
        for name in names:
            code = getattr_(getattr_(type_(x), name, None), "__code__", None)
            if code is not None and not code.co_filename.startswith("/"):
                return True
        return False

    class Recorder:
        """Counts runs and failures of each assertion; reports the first run and first failure."""

        def __init__(self, n: int):
            self.runs, self.fails, self.memory = [0] * n, [0] * n, False

        def _outcome(self, i: int, ok: bool, why: str = "") -> None:
            self.runs[i] += 1
            if not ok:
                self.fails[i] += 1
                if self.fails[i] == 1:
                    report({"event": "fail", "assert": i, "why": why})
            elif self.runs[i] == 1:
                report({"event": "pass", "assert": i})

        def compare(self, i: int, op: str, left, right, side: int) -> None:
            why = ""
            try:
                if op in ("==", "!="):
                    for mine, other in ((left, right), (right, left)):
                        if type_(other) in plain and rigged(mine, ("__eq__", "__ne__")):
                            why = (
                                f"got an object of class {type_(mine).__name__} that overrides {op}"
                            )
                ok = not why and truth(ops[op](left, right))
            except BaseException as exc:
                ok, why = False, f"comparison raised {describe(exc)}"
            if not ok and not why:
                got = (left, right)[side] if side in (0, 1) else None
                why = (
                    f"got {short(got)}" if side in (0, 1) else f"{short(left)} {op} {short(right)}"
                )
            self._outcome(i, ok, why)

        def truth(self, i: int, value) -> None:
            try:
                if rigged(value, ("__bool__", "__len__")):
                    why = f"got an object of class {type_(value).__name__} that overrides truth"
                    ok = False
                else:
                    ok, why = truth(value), "false"
            except BaseException as exc:
                ok, why = False, f"truth test raised {describe(exc)}"
            self._outcome(i, ok, why)

        def raised(self, i: int, exc: BaseException) -> None:
            self.memory = self.memory or isinstance_(exc, MemoryError)
            self._outcome(i, False, f"raised {describe(exc)}")

    def read(name: str) -> str:
        with open(name, encoding="utf-8", errors="surrogatepass") as f:
            return f.read()

    prompt, completion, test = read("prompt.py"), read("completion.py"), read("test.py")
    entry, n_asserts = read("entry_point.txt"), int(read("asserts.txt"))

    # 1. Compile the solution: the prompt plus the completion, or the completion after the
    #    prompt's imports if it defines the entry point again and the two do not fit together.
    try:
        code = compile(prompt + completion, "solution.py", "exec")
    except MemoryError:
        report({"event": "memory"})
        return
    except BaseException as exc:  # SyntaxError, NUL bytes, lone surrogates, nesting
        code = None
        if ("\ndef " + entry + "(") in "\n" + completion:
            imports = [ln for ln in prompt.splitlines() if ln.startswith(("import ", "from "))]
            try:  # noqa: SIM105 - contextlib would cost start-up time in the sandbox
                code = compile("\n".join(imports) + "\n" + completion, "solution.py", "exec")
            except BaseException:
                pass
        if code is None:
            report({"event": "syntax", "why": describe(exc)})
            return

    # 2. Run it; the builtins it replaced are put back before the tests run.
    saved = dict(vars(builtins))
    ns = {"__name__": "__solution__", "__builtins__": builtins}
    try:
        exec(code, ns)
    except MemoryError:
        report({"event": "memory"})
        return
    except BaseException as exc:
        report({"event": "error", "stage": "solution", "why": describe(exc)})
        return
    live = vars(builtins)
    for k in [k for k in live if k not in saved]:
        del live[k]
    live.update(saved)
    candidate = ns.get(entry)
    if not callable(candidate):
        report({"event": "missing", "why": f"the program defines no function {entry!r}"})
        return

    # 3. Load the tests (in the solution's namespace: they may use its helpers), then check.
    recorder = Recorder(n_asserts)
    ns[_RECORDER] = recorder
    try:
        exec(compile(test, "test.py", "exec"), ns)
    except BaseException as exc:
        report({"event": "test-error", "why": f"the tests do not load: {describe(exc)}"})
        return
    finally:
        ns.pop(_RECORDER, None)
    check = ns.get("check")
    if not callable(check):
        report({"event": "test-error", "why": "the tests define no check function"})
        return
    try:
        check(candidate)
    except MemoryError:
        report({"event": "memory"})
        return
    except BaseException as exc:
        report({"event": "error", "stage": "check", "why": describe(exc)})
        return
    if recorder.memory:
        report({"event": "memory"})
    report({"event": "done", "runs": recorder.runs, "fails": recorder.fails})


@cache
def _driver_source() -> str:
    body = inspect.getsource(_driver_main).replace("_RECORDER", repr(_RECORDER))
    return body + "\n\n_driver_main()\n"


# ------------------------------------------------------------------------------------------------
# Verdicts


def extract_code(completion: str) -> str:
    """The first Markdown-fenced block of a completion that has one (its language tag dropped),
    else the completion as is."""
    start = completion.find("```")
    if start < 0:
        return completion
    body_start = completion.find("\n", start)
    if body_start < 0:
        return ""
    end = completion.find("```", body_start)
    return completion[body_start + 1 : end if end >= 0 else len(completion)]


def _marks(plan: CheckPlan, events: list[dict], done: dict | None) -> tuple[StepMark, ...]:
    n = len(plan.asserts)
    passed, failed = set(), {}
    for e in events:
        i = e.get("assert")
        if isinstance(i, int) and 0 <= i < n:
            if e["event"] == "pass":
                passed.add(i)
            elif e["event"] == "fail" and i not in failed:
                failed[i] = str(e.get("why", ""))[:200]
    runs, fails = (done.get("runs"), done.get("fails")) if done else (None, None)
    counts = isinstance(runs, list) and isinstance(fails, list) and len(runs) == len(fails) == n
    marks = []
    for i, text in enumerate(plan.asserts):
        if i in failed:
            why = failed[i]
            if counts and runs[i] > 1:
                why = f"failed {fails[i]} of {runs[i]} runs; first: {why}"
            marks.append(StepMark(text, False, why))
        elif i in passed:
            marks.append(StepMark(text, True))
        elif done is not None:
            marks.append(StepMark(text, True, "not run"))  # a branch the tests did not take
        else:
            marks.append(StepMark(text, False, "not reached"))
    return tuple(marks)


def verdict_from_run(plan: CheckPlan, result: SandboxResult, memory_mb: int) -> Verdict:
    """The verdict on a completion from what its sandboxed run reported."""
    events = [r for r in result.reports if isinstance(r, dict) and isinstance(r.get("event"), str)]
    first = {}
    for e in events:
        first.setdefault(e["event"], e)
    done = first.get("done")
    marks = _marks(plan, events, done)
    if not plan.asserts:
        ok = done is not None and result.status == "ok"
        marks = (StepMark("check(candidate)", ok, "" if ok else "the tests did not pass"),)

    def why_of(kind: str) -> str:
        return str(first[kind].get("why", ""))[:200]

    if "syntax" in first:
        return Verdict("unparseable", why=f"does not compile: {why_of('syntax')}")
    if "memory" in first or result.status == "memory":
        return Verdict("error", steps=marks, why=f"memory limit of {memory_mb} MiB exceeded")
    if result.status == "timeout":
        return Verdict("timeout", steps=marks, why=f"{result.why} exceeded")
    if result.status in ("signal", "error"):
        return Verdict("error", steps=marks, why=result.why)
    if "test-error" in first:
        return Verdict("error", why=why_of("test-error"))
    if "missing" in first:
        return Verdict("wrong", why=why_of("missing"))
    if "error" in first:
        stage = first["error"].get("stage")
        where = "the solution raised" if stage == "solution" else "the tests raised"
        return Verdict("wrong", steps=marks, why=f"{where} {why_of('error')}")
    if done is None or result.status != "ok":
        code = "" if result.exit_code is None else f" (exit code {result.exit_code})"
        return Verdict(
            "wrong", steps=marks, why=f"the program stopped before the tests finished{code}"
        )
    bad = next((m for m in marks if not m.ok), None)
    if bad is not None:
        return Verdict("wrong", steps=marks, why=f"{bad.text[:80]}: {bad.why}"[:200])
    return Verdict("correct", steps=marks)


# ------------------------------------------------------------------------------------------------
# The task


def difficulty_of(solution: str | None) -> int:
    """1 + how many of :data:`DIFFICULTY_LINES` the solution's code-line count exceeds."""
    if not solution:
        return 1
    lines = sum(1 for ln in solution.splitlines() if ln.strip() and not ln.strip().startswith("#"))
    return 1 + sum(lines > t for t in DIFFICULTY_LINES)


class CodeTask(DatasetTask):
    name = "code"
    default_data = "openai/openai_humaneval"
    default_split = "test"
    required_fields = ("prompt", "test", "entry_point")
    max_difficulty = 1 + len(DIFFICULTY_LINES)

    @classmethod
    def check_config(cls, cfg: RunConfig) -> None:
        super().check_config(cfg)
        if cfg.raw.answer_only_rate:
            raise ConfigError(
                "raw.answer_only_rate: the code task has no answer-only form (a program is the "
                "answer); use 0"
            )

    @classmethod
    def problem_from_record(cls, record: dict[str, Any], index: int) -> Problem:
        """A HumanEval record: ``prompt``, ``test`` (defining ``check(candidate)``) and
        ``entry_point``; ``task_id`` and ``canonical_solution`` if there are."""
        prompt, test, entry = (record.get(k) for k in ("prompt", "test", "entry_point"))
        for key, value in (("prompt", prompt), ("test", test), ("entry_point", entry)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"needs a non-empty {key!r} string")
        entry = entry.strip()
        if not entry.isidentifier():
            raise ValueError(f"'entry_point' {entry[:40]!r} is not a Python name")
        gold = record.get("canonical_solution")
        if gold is not None and not isinstance(gold, str):
            raise ValueError("'canonical_solution' must be a string")
        pid = record.get("task_id")
        return Problem(
            id=str(pid) if pid not in (None, "") else f"code-{index}",
            difficulty=min(difficulty_of(gold), cls.max_difficulty),
            prompt=prompt,
            answer="",
            meta={"gold": gold or "", "test": test, "entry_point": entry},
        )

    def gold_chain(self, problem: Problem) -> str:
        if not problem.meta.get("gold"):
            raise ValueError(f"{problem.id}: the record has no canonical_solution")
        return problem.meta["gold"]

    def answer_only(self, problem: Problem) -> str:
        raise ConfigError("raw.answer_only_rate: the code task has no answer-only form; use 0")

    def hint_prompt(self, problem: Problem) -> str:
        """The prompt after one of its tests as a comment (the first assertion of ``check``, with
        the function's own name for ``candidate``): the nearest thing code has to a given answer."""
        plan = plan_tests(problem.meta["test"])
        if not plan.asserts:
            return problem.prompt
        first = plan.asserts[0].replace("candidate", problem.meta["entry_point"])
        first = " ".join(first.split())
        return f"# It must pass: {first}\n{problem.prompt}"

    def max_new_tokens(self, difficulty: int) -> int:
        """Longest canonical solution at this difficulty (in characters), with room."""
        with_gold = [p for p in self.problems if p.meta.get("gold")]
        lengths = [len(p.meta["gold"]) for p in with_gold if p.difficulty == difficulty]
        lengths = lengths or [len(p.meta["gold"]) for p in with_gold] or [400]
        return int(max(lengths) * 1.25) + 16

    def limits(self) -> Limits:
        return Limits(timeout=self.timeout, memory_mb=self.memory_mb)

    def verify(self, problem: Problem, completion: str) -> Verdict:
        """Run ``prompt + completion`` and the tests in the sandbox; see the module docstring."""
        try:
            if not isinstance(completion, str):
                return Verdict("error", why=f"completion is {type(completion).__name__}, not text")
            if len(completion) > MAX_CHARS:
                return Verdict(
                    "unparseable", why=f"completion too long ({len(completion)} characters)"
                )
            plan = plan_tests(problem.meta["test"])
            files = {
                "prompt.py": problem.prompt,
                "completion.py": extract_code(completion),
                "test.py": plan.source,
                "entry_point.txt": problem.meta["entry_point"],
                "asserts.txt": str(len(plan.asserts)),
            }
            result = run_python(_driver_source(), self.limits(), files=files)
            return verdict_from_run(plan, result, self.memory_mb)
        except Exception as exc:  # a verifier never crashes the loop: the sample gets a verdict
            return Verdict("error", why=f"{type(exc).__name__}: {exc}"[:200])

    def verify_many(
        self, items: list[tuple[Problem, str]], workers: int | None = None
    ) -> list[Verdict]:
        """:meth:`verify` for many ``(problem, completion)`` pairs, ``workers`` sandboxes at a time
        (default: twice the CPU count, as a run spends much of its time starting up); verdicts in
        the order of ``items``."""
        workers = workers or 2 * (os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda pc: self.verify(*pc), items))
