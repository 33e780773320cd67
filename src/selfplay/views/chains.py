"""Read what the model wrote: ``selfplay inspect RUN`` renders chains with the verifier's marks.

Each chain is shown with every step marked ok or failed (and why), the extracted vs gold answer,
the filter's decision and reason, its token count and whether it was truncated. ``--compare`` shows
one problem's samples across iterations side by side (with ``--eval``: its greedy evaluation
generations across checkpoints). A climb's round (the frontier schedule) is shown the same way,
every sample with its ``label`` flag, under a line on its probe. Rejection reasons are counted
by kind (:func:`group_reasons`), the same grouping ``selfplay verify`` and report.html use.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from selfplay.config import ConfigError, FrontierConfig
from selfplay.engine import artifacts

STATUS_STYLE = {
    "correct": "green",
    "wrong": "red",
    "unparseable": "yellow",
    "timeout": "magenta",
    "error": "magenta",
}


def _saved_loop(run_dir: Path) -> dict:
    """The ``loop`` section of the run's saved config.yaml (``{}`` when it has none)."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    try:
        cfg = yaml.safe_load(path.read_text(errors="replace"))
    except yaml.YAMLError:
        raise ConfigError(f"{path}: not a readable config") from None
    loop = cfg.get("loop") if isinstance(cfg, dict) else None
    return loop if isinstance(loop, dict) else {}


def frontier_threshold(run_dir: Path) -> float:
    """The accuracy at which the run counts a difficulty as solved (``loop.frontier.threshold``)."""
    fr = _saved_loop(run_dir).get("frontier")
    default = FrontierConfig.threshold
    return float(fr.get("threshold", default)) if isinstance(fr, dict) else default


def finished_iterations(run_dir: Path) -> list[int]:
    """Iterations whose samples were written (generation and filter finished), in order."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise ConfigError(f"{run_dir}: not a run directory (no config.yaml)")
    its = sorted(
        int(p.parent.name[5:])
        for p in run_dir.glob("iter_*/samples.parquet")
        if p.parent.name[5:].isdigit()
    )
    return its


def eval_iterations(run_dir: Path) -> list[int]:
    """Checkpoints whose held-out evaluation generations were written (0: the seed model), in
    order; a round evaluated only at the end (``eval.n_intermediate``) has none of its own."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise ConfigError(f"{run_dir}: not a run directory (no config.yaml)")
    its = [0] if (run_dir / "seed" / "eval_samples.parquet").exists() else []
    return its + sorted(
        int(p.parent.name[5:])
        for p in run_dir.glob("iter_*/eval_samples.parquet")
        if p.parent.name[5:].isdigit()
    )


def load_samples(run_dir: Path, iteration: int) -> list[dict]:
    """Iteration ``iteration``'s samples, every one with its verdict and the filter's decision."""
    path = Path(run_dir) / f"iter_{iteration:03d}" / "samples.parquet"
    if not path.exists():
        raise ConfigError(
            f"{path.parent}: iteration {iteration} has no samples (not run yet, or a raw-data baseline)"
        )
    rows = artifacts.read_parquet(path)
    for r in rows:
        r["iteration"] = iteration
    return rows


def load_eval_samples(run_dir: Path, iteration: int) -> list[dict]:
    """The greedy evaluation generations of checkpoint ``iteration`` (0: the seed model)."""
    stage = "seed" if iteration == 0 else f"iter_{iteration:03d}"
    path = Path(run_dir) / stage / "eval_samples.parquet"
    if not path.exists():
        hint = artifacts.repair_hint(path) if (path.parent / "eval.json").exists() else ""
        raise ConfigError(
            f"{path}: no evaluation samples"
            + (f" (the stage was evaluated: {hint})" if hint else " (not evaluated yet)")
        )
    rows = artifacts.read_parquet(path)
    for r in rows:
        r["iteration"] = iteration
    return rows


def frontier_header(run_dir: Path, k: int, samples: list[dict]) -> str | None:
    """One line on a climb's round ``k``: the probe's frontier, what it practised, its labels
    (the samples chosen as labels: one per practised problem); None for a round with no probe."""
    labels = [r for r in samples if r.get("label")]
    d = Path(run_dir) / f"iter_{k:03d}"
    if not (d / "probe.json").exists():
        return None
    m = artifacts.read_json(d / "metrics.json") if (d / "metrics.json").exists() else {}
    fr = m.get("frontier", {})
    probe_path = d / "probe.json"
    probe = fr.get("probe") or (artifacts.read_json(probe_path) if probe_path.exists() else {})
    solved = fr.get("probe_solved")
    if solved is None:  # a round still training: its probe is written, its metrics not yet
        from selfplay.engine.evaluation import solved_frontier

        solved = solved_frontier({int(a): b for a, b in probe.items()}, frontier_threshold(run_dir))
    practice = fr.get("practice") or sorted({r["difficulty"] for r in labels})
    n_correct = sum(r["status"] == "correct" for r in labels)
    n_kept = sum(bool(r["kept"]) for r in labels)
    acc = f"{n_correct / len(labels):.2f}" if labels else "-"
    return (
        f"round {k} (labels by the model of round {k - 1}): probe frontier {solved} (largest d "
        f"with 1..d at >= {frontier_threshold(run_dir):g} on validation), practised "
        f"{', '.join(map(str, practice))}; "
        f"labels correct {acc} ({n_correct} of {len(labels)}), kept {n_kept}"
        + ("" if m else " (round not finished)")
    )


def wrong_steps(s: dict) -> bool:
    """Right answer, wrong steps: the final answer is correct but the chain is not valid."""
    return s["status"] == "correct" and not s["valid"]


def _mentions(s: dict, text: str) -> bool:
    """Whether ``text`` is in the filter's reason, the verdict's or a step's (case-insensitive)."""
    text = text.lower()
    whys = [s.get("filter_reason"), s.get("why"), *(st["why"] for st in s.get("steps") or [])]
    return any(text in str(w).lower() for w in whys if w)


def select(
    samples: list[dict],
    status: str | None = None,
    difficulty: int | None = None,
    problem: str | None = None,
    kept: bool | None = None,
    valid: bool | None = None,
    reason: str | None = None,
    right_answer_wrong_steps: bool = False,
) -> list[dict]:
    return [
        s
        for s in samples
        if (status is None or s["status"] == status)
        and (difficulty is None or s["difficulty"] == difficulty)
        and (problem is None or s["problem_id"] == problem)
        and (kept is None or s.get("kept") == kept)
        and (valid is None or bool(s["valid"]) == valid)
        and (reason is None or _mentions(s, reason))
        and (not right_answer_wrong_steps or wrong_steps(s))
    ]


def rejection_reasons(samples: list[dict]) -> list[str]:
    """The filter's reason for every chain it rejected, in order."""
    return [str(s.get("filter_reason") or "rejected") for s in samples if not s.get("kept")]


_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*")


def reason_group(reason: str) -> str:
    """A reason without its particulars (numbers; a step's position), for counting:
    ``'invalid step 3: 48/2 is 24, not 23'`` -> ``'invalid step: N/N is N, not N'``."""
    return _NUMBER.sub("N", re.sub(r"^(invalid|unchecked) step \d+", r"\1 step", reason))


@dataclass
class ReasonGroup:
    kind: str
    """The reasons' shared text (:func:`reason_group`)."""
    count: int
    examples: list[str]
    """A few distinct reasons of this kind as written, commonest first."""


def group_reasons(reasons: Iterable[str], examples: int = 3) -> list[ReasonGroup]:
    """Reasons counted by kind, largest group first (ties: the first seen first).

    >>> groups = group_reasons(["wrong sum: 1+2=4", "duplicate", "wrong sum: 3+3=7"])
    >>> [(g.kind, g.count) for g in groups]
    [('wrong sum: N+N=N', 2), ('duplicate', 1)]
    """
    by_kind: dict[str, Counter] = {}
    for reason in reasons:
        by_kind.setdefault(reason_group(reason), Counter())[reason] += 1
    groups = [
        ReasonGroup(kind, sum(c.values()), [r for r, _ in c.most_common(examples)])
        for kind, c in by_kind.items()
    ]
    return sorted(groups, key=lambda g: -g.count)


def reasons_lines(groups: list[ReasonGroup], top: int = 10) -> list[str]:
    """Plain-text lines (model text made :func:`printable`): one per kind, count first, each
    followed by its examples where the kind hides particulars; the kinds past ``top`` summed in
    one line."""
    width = len(f"{max((g.count for g in groups), default=0):,}")
    lines = []
    for g in groups[:top]:
        lines.append(printable(f"  {g.count:>{width},}  {g.kind}"))
        if g.examples != [g.kind]:
            lines += [printable(f"  {'':>{width}}    e.g. {e}") for e in g.examples]
    rest = groups[top:]
    if rest:
        lines.append(f"  {sum(g.count for g in rest):>{width},}  ({len(rest)} other kinds)")
    return lines


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text) -> str:
    """Model or input text made inert on a terminal: control characters (ANSI and OSC escapes,
    bells, carriage returns) shown as ``\\xNN`` instead of acted on, and a lone surrogate (which
    UTF-8 cannot write) as U+FFFD, as the artifacts hold it.

    >>> printable("ok\\x1b]0;pwned\\x07!")
    'ok\\\\x1b]0;pwned\\\\x07!'
    >>> printable("\\ud800") == "\\ufffd"
    True
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", artifacts.clean_text(str(text)))


def inert(text) -> str:
    """:func:`printable`, and rich markup escaped (``[/x]`` shown, not parsed): for text that
    goes into a string rich renders as markup."""
    from rich.markup import escape

    return escape(printable(text))


def render_sample(s: dict):
    """A rich renderable for one sample: header line, then one line per step."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    head = Text()
    head.append(printable(s["prompt"]), style="bold")
    head.append(f"  #{s['sample_idx']}  d{s['difficulty']}  ")
    head.append(printable(s["status"]), style=STATUS_STYLE.get(s["status"], ""))
    head.append(printable(f"  answer {s['answer']!s} (gold {s['gold']})"))
    if s.get("tokens") is not None:
        head.append(f"  {s['tokens']} tok")
    if s["finish_reason"] == "length":
        head.append("  TRUNCATED", style="yellow")
    if s.get("origin") and s["origin"] != "sampled":
        head.append(printable(f"  {s['origin'].upper()}"), style="cyan")
        if s["origin"] == "rationalized":
            head.append(f" (generated from {s['generation_prompt']!r})", style="dim")
    lines = [head]
    for i, st in enumerate(s.get("steps") or [], start=1):
        line = Text("  ✓ " if st["ok"] else "  ✗ ", style="green" if st["ok"] else "bold red")
        line.append(f"{i:>2}  ")
        line.append(printable(st["text"]) or "(missing)", style="" if st["ok"] else "red")
        if st["why"]:
            line.append(printable(f"   ← {st['why']}"), style="italic red")
        lines.append(line)
    if not s.get("steps"):
        lines.append(Text("  (no steps) " + repr(s["text"][:200]), style="dim"))
    if s.get("why") and s["status"] != "correct":
        lines.append(Text(printable(f"  verdict: {s['why']}"), style="dim"))
    if wrong_steps(s):
        lines.append(Text("  right answer, wrong steps", style="bold yellow"))
    if s.get("reward") is not None:  # GRPO: every sample is trained on, weighted by its advantage
        lines.append(
            Text(
                printable(f"  reward {s['reward']:.2f} · {s['filter_reason']}"),
                style="green" if s["kept"] else "dim red",
            )
        )
    elif s.get("kept") is not None:  # evaluation samples have no filter decision
        decision = Text(
            "  kept" if s["kept"] else printable(f"  rejected: {s['filter_reason']}"),
            style="green" if s["kept"] else "dim red",
        )
        lines.append(decision)
    where = (
        f"checkpoint {s['iteration']} eval"
        if s.get("origin") == "eval-greedy"
        else f"iter {s['iteration']}"
    )
    return Panel(
        Group(*lines),
        title=Text(printable(f"{where} · {s['problem_id']}")),
        title_align="left",
        expand=True,
    )


def render_compare(run_dir: Path, problem: str, limit: int, evaluation: bool = False):
    """One column per iteration with that problem's samples; with ``evaluation``, one per
    checkpoint with its greedy generation on that held-out problem."""
    from rich.columns import Columns

    its = eval_iterations(run_dir) if evaluation else finished_iterations(run_dir)
    load = load_eval_samples if evaluation else load_samples
    cols = []
    for it in its:
        rows = select(load(run_dir, it), problem=problem)[:limit]
        cols += [render_sample(s) for s in rows]
    if not cols:
        if evaluation:
            raise ConfigError(
                f"problem {problem!r} is not among the evaluation problems of any checkpoint "
                f"of {run_dir}"
            )
        raise ConfigError(f"problem {problem!r} was not practised in any iteration of {run_dir}")
    return Columns(cols, equal=True, expand=True)
