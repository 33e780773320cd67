"""``selfplay verify TASK FILE``: run a task's verifier over a file of problems and completions.

Every line gets a verdict: a line that is not JSON, or not a problem of the task, or has no
completion, gets an ``error`` verdict of its own and the rest of the file is still verified. With
``gold``, the completion verified is the task's own gold solution (an audit of the verifier, or of
the data).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfplay.filters import verification_reason
from selfplay.tasks import TASKS, Problem, verify_all
from selfplay.tasks.data import iter_records
from selfplay.verify import STATUSES, Verdict

_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*")


@dataclass
class FileVerdict:
    line: int
    problem_id: str | None
    verdict: Verdict

    def row(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "line": self.line,
            "problem_id": self.problem_id,
            "status": v.status,
            "valid": v.valid,
            "answer": v.answer,
            "why": v.why,
            "first_bad_step": v.first_bad_step,
            "steps": [{"text": s.text, "ok": s.ok, "why": s.why} for s in v.steps],
        }

    @property
    def reason(self) -> str | None:
        """Why the verdict falls short of a valid chain (None for a valid one)."""
        row = self.row()
        return verification_reason(row, require_valid_steps=True)


def reason_group(reason: str) -> str:
    """A reason without its particulars, for counting: ``'invalid step 3: 48/2 is 24, not 23'``
    -> ``'invalid step: N/N is N, not N'``."""
    return _NUMBER.sub("N", re.sub(r"^invalid step \d+", "invalid step", reason))


def _error(why: str) -> Verdict:
    return Verdict("error", why=why)


def verify_file(
    task_name: str,
    path: str | Path,
    gold: bool = False,
    timeout: float = 10.0,
    memory_mb: int = 1024,
    progress: bool = True,
) -> list[FileVerdict]:
    from tqdm.auto import tqdm

    from selfplay.config import ConfigError

    if task_name not in TASKS:
        raise ConfigError(f"unknown task {task_name!r}; valid: {', '.join(sorted(TASKS))}")
    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such file")
    task = TASKS[task_name].verifier(timeout=timeout, memory_mb=memory_mb)
    out: list[FileVerdict] = []
    pending: list[tuple[int, Problem, str]] = []  # lines to verify, a chunk at a time

    def flush() -> None:
        verdicts = _verify_chunk(task, [(p, c) for _, p, c in pending])
        out.extend(
            FileVerdict(line, p.id, v) for (line, p, _), v in zip(pending, verdicts, strict=True)
        )
        pending.clear()

    for line, rec, why in tqdm(
        iter_records(path), desc=f"verify {task_name}", unit="line", disable=not progress
    ):
        if rec is None:
            out.append(FileVerdict(line, None, _error(f"line {line}: {why}")))
            continue
        try:
            problem = task.problem_from_record(rec, line - 1)
        except (ValueError, TypeError, KeyError) as exc:
            out.append(FileVerdict(line, None, _error(f"bad record: {exc}")))
            continue
        if gold:
            try:
                completion = task.gold_chain(problem)
            except (KeyError, ValueError):
                completion = None
            if not isinstance(completion, str):
                out.append(FileVerdict(line, problem.id, _error("no gold solution in this record")))
                continue
        else:
            completion = rec.get("completion")
            if not isinstance(completion, str):
                out.append(
                    FileVerdict(line, problem.id, _error("no 'completion' string (use --gold?)"))
                )
                continue
        pending.append((line, problem, completion))
        if len(pending) >= CHUNK:
            flush()
    flush()
    out.sort(key=lambda v: v.line)
    return out


CHUNK = 256
"""Lines verified together: a task with a ``verify_many`` (the code sandbox) runs them concurrently."""


def _verify_chunk(task, items: list[tuple[Problem, str]]) -> list[Verdict]:
    """Verdicts in order. A verifier must not raise; if one does, that line gets an ``error``."""
    try:
        return verify_all(task, items)
    except Exception:
        out = []
        for problem, completion in items:
            try:
                out.append(task.verify(problem, completion))
            except Exception as exc:
                out.append(_error(f"verifier raised {type(exc).__name__}: {str(exc)[:120]}"))
        return out


def summarize(verdicts: list[FileVerdict], top: int = 10) -> dict[str, Any]:
    statuses = Counter(v.verdict.status for v in verdicts)
    reasons = Counter(reason_group(r) for v in verdicts if (r := v.reason))
    return {
        "total": len(verdicts),
        "valid": sum(v.verdict.valid for v in verdicts),
        "statuses": {s: statuses.get(s, 0) for s in STATUSES},
        "reasons": reasons.most_common(top),
    }


def summary_tables(summary: dict[str, Any], title: str):
    from rich.table import Table

    n = max(summary["total"], 1)
    t = Table(title=title, title_justify="left")
    t.add_column("status")
    t.add_column("count", justify="right")
    t.add_column("share", justify="right")
    for s, c in summary["statuses"].items():
        t.add_row(s, f"{c:,}", f"{c / n:.1%}")
    t.add_row(
        "[bold]valid chain[/] (correct, every step checks)",
        f"{summary['valid']:,}",
        f"{summary['valid'] / n:.1%}",
    )
    r = Table()
    r.add_column("why a line is not a valid chain (most common)")
    r.add_column("count", justify="right")
    for reason, c in summary["reasons"]:
        r.add_row(reason, f"{c:,}")
    if not summary["reasons"]:
        r.add_row("(none: every line is a valid chain)", "0")
    return t, r
