"""``selfplay verify TASK FILE``: run a task's verifier over a file of problems and completions.

Every line gets a verdict: a line that is not UTF-8, not JSON, not a problem of the task, or has
no completion, gets an ``error`` verdict of its own (with its line number) and the rest of the file
is still verified; a compressed file cut short gets one more ``error`` verdict where it breaks off.
A file with no line to verify is an error. With ``gold``, the completion verified is the task's
own gold solution (an audit of the verifier, or of the data).
"""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfplay.engine.filters import verification_reason
from selfplay.tasks import TASKS, Problem, verify_all
from selfplay.tasks.data import iter_records, parse_record
from selfplay.verify import STATUSES, Verdict
from selfplay.views.chains import group_reasons
from selfplay.views.chains import reason_group as reason_group  # verify's kinds are inspect's


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

    from selfplay.errors import ConfigError

    if task_name not in TASKS:
        raise ConfigError(f"unknown task {task_name!r}; valid: {', '.join(sorted(TASKS))}")
    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such file")
    task = TASKS[task_name].verifier(timeout=timeout, memory_mb=memory_mb)
    out: list[FileVerdict] = []
    pending: list[tuple[int, Problem, str]] = []  # lines to verify, a chunk at a time
    # counts lines as they get their verdicts (a chunk is verified after it has been read)
    bar = tqdm(desc=f"verify {task_name}", unit="line", disable=not progress)

    def done(v: FileVerdict) -> None:
        out.append(v)
        bar.update(1)

    def flush() -> None:
        verdicts = _verify_chunk(task, [(p, c) for _, p, c in pending])
        out.extend(
            FileVerdict(line, p.id, v) for (line, p, _), v in zip(pending, verdicts, strict=True)
        )
        bar.update(len(pending))
        pending.clear()

    for line, rec, why in _records(Path(path)):
        if rec is None:
            done(FileVerdict(line, None, _error(f"line {line}: {why}")))
            continue
        try:
            problem = task.problem_from_record(rec, line - 1)
        except (ValueError, TypeError, KeyError) as exc:
            done(FileVerdict(line, None, _error(f"bad record: {exc}")))
            continue
        if gold:
            try:
                completion = task.gold_chain(problem)
            except (KeyError, ValueError):
                completion = None
            if not isinstance(completion, str):
                done(FileVerdict(line, problem.id, _error("no gold solution in this record")))
                continue
        else:
            completion = rec.get("completion")
            if not isinstance(completion, str):
                done(FileVerdict(line, problem.id, _error("no 'completion' string (use --gold?)")))
                continue
        pending.append((line, problem, completion))
        if len(pending) >= CHUNK:
            flush()
    flush()
    if not out:
        bar.leave = False  # the error alone, not an empty bar above it
    bar.close()
    if not out:
        raise ConfigError(f"{path}: no lines to verify (the file is empty or blank)")
    out.sort(key=lambda v: v.line)
    return out


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """``(line, record or None, reason)`` for every non-blank line of a JSONL (or .gz) file, each
    decoded on its own, so that a line that is not UTF-8 costs only itself; a compressed file cut
    short yields one last ``None`` where it breaks off. Parquet goes through ``iter_records``."""
    if path.name.lower().endswith(".parquet"):
        yield from iter_records(path)
        return
    from selfplay.tasks.data import DataError

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    lineno = 0
    try:
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):  # noqa: B007 - read after the loop
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield (
                        lineno,
                        None,
                        f"not UTF-8 text (byte {raw[exc.start]:#04x} at {exc.start + 1})",
                    )
                    continue
                if text.strip():
                    yield lineno, *parse_record(text)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        if lineno == 0:
            raise DataError(f"{path}: not a readable gzip file ({type(exc).__name__})") from None
        yield lineno + 1, None, f"the file breaks off here ({type(exc).__name__}: {exc})"[:200]
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None


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
    groups = group_reasons(r for v in verdicts if (r := v.reason))
    return {
        "total": len(verdicts),
        "valid": sum(v.verdict.valid for v in verdicts),
        "statuses": {s: statuses.get(s, 0) for s in STATUSES},
        "reasons": [(g.kind, g.count) for g in groups[:top]],
    }


def summary_tables(summary: dict[str, Any], title: str):
    from rich.table import Table

    from selfplay.views.chains import inert

    n = max(summary["total"], 1)
    t = Table(title=inert(title), title_justify="left")  # names the user's file: never markup
    t.add_column("status")
    t.add_column("count", justify="right")
    t.add_column("share", justify="right")
    for s, c in summary["statuses"].items():
        t.add_row(inert(s), f"{c:,}", f"{c / n:.1%}")
    t.add_row(
        "[bold]valid chain[/] (correct, every step checks)",
        f"{summary['valid']:,}",
        f"{summary['valid'] / n:.1%}",
    )
    r = Table()
    r.add_column("why a line is not a valid chain (most common)")
    r.add_column("count", justify="right")
    for reason, c in summary["reasons"]:
        r.add_row(inert(reason), f"{c:,}")  # model text: never markup or terminal control
    if not summary["reasons"]:
        r.add_row("(none: every line is a valid chain)", "0")
    return t, r
