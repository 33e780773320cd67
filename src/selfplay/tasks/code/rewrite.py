"""The problem's tests, rewritten so that every ``assert`` of ``check`` records its own outcome.

The rewritten ``check`` runs in the verifier's own process (:mod:`selfplay.tasks.code.judge`),
never in the candidate's: ``assert L == R, msg`` becomes ``try: rec.compare(i, '==', L, R, side)
except BaseException as e: rec.raised(i, e)``, other tests ``rec.truth(i, T)``, where ``rec`` is
the global ``_selfplay_recorder`` of the namespace the tests run in. Nested functions, lambdas and
classes keep their plain asserts.
"""

from __future__ import annotations

import ast
import threading
from dataclasses import dataclass
from functools import lru_cache

MAX_STEP_CHARS = 300
AST_LOCK = threading.Lock()
"""Held around ``ast.parse`` / ``compile`` here: CPython before 3.11.8 shares the AST
constructor's recursion counter between threads ("AST constructor recursion depth mismatch")."""
RECORDER = "_selfplay_recorder"

OPS = {
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


@dataclass(frozen=True)
class CheckPlan:
    source: str
    """The test code to run (``check`` rewritten, or the test as written)."""
    asserts: tuple[str, ...]
    """Source text of each recorded assertion, in order; empty if ``check`` was not rewritten."""


class _AssertRewriter(ast.NodeTransformer):
    """See the module docstring. ``side`` says which operand mentions the candidate (0 left,
    1 right, -1 neither), so that a failure reports what the candidate returned."""

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
        rec = ast.Name(RECORDER, ast.Load())
        t = node.test
        if isinstance(t, ast.Compare) and len(t.ops) == 1 and type(t.ops[0]) in OPS:
            left, right = t.left, t.comparators[0]
            if self._mentions_candidate(left):
                side = 0
            elif self._mentions_candidate(right):
                side = 1
            else:
                side = -1
            args = [
                ast.Constant(i),
                ast.Constant(OPS[type(t.ops[0])]),
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


def plan_tests(test: str) -> CheckPlan:
    """Rewrite the asserts of the last top-level ``check`` of ``test`` to record their outcomes;
    the test as written (and no asserts) if it has no such ``check`` or does not parse."""
    with AST_LOCK:
        return _plan_tests(test)


@lru_cache(maxsize=1024)
def _plan_tests(test: str) -> CheckPlan:
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return CheckPlan(test, ())
    checks = [
        i for i, n in enumerate(tree.body) if isinstance(n, ast.FunctionDef) and n.name == "check"
    ]
    if not checks:
        return CheckPlan(test, ())
    check = tree.body[checks[-1]]
    params = check.args.posonlyargs + check.args.args
    rewriter = _AssertRewriter(test, params[0].arg if params else "candidate")
    check.body = [rewriter.visit(stmt) for stmt in check.body]
    if not rewriter.asserts:
        return CheckPlan(test, ())
    source = ast.unparse(ast.fix_missing_locations(tree))
    return CheckPlan(source, tuple(rewriter.asserts))
