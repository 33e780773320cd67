"""A bench's overall progress: one bar over arms x seeds with an ETA, and times that survive a
resume because they are read from the stages' own records (``metrics.json``), not a session clock.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

from selfplay.bars import PROGRESS_FILE, describe, line_every, read_report
from selfplay.engine.artifacts import read_json
from selfplay.engine.rundir import read_metrics


def quiet_libraries() -> None:
    """Our own bars cover long work; the libraries' per-step bars and notices are noise here."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def run_seconds(run_dir: Path) -> tuple[float, float]:
    """``(seed stage seconds, seconds of the rounds after it)`` recorded in a run directory."""
    if not (Path(run_dir) / "seed" / "metrics.json").exists():
        return 0.0, 0.0
    rows = read_metrics(run_dir)
    seed = rows[0]["cumulative"].get("seconds", 0.0)
    return seed, rows[-1]["cumulative"].get("seconds", 0.0) - seed


def bench_seconds(run_dirs_by_seed: list[list[Path]]) -> float:
    """Seconds the bench's stages took, however many sessions ran them: every seed's shared seed
    model once, plus every arm's rounds (model loading between stages is not counted)."""
    total = 0.0
    for dirs in run_dirs_by_seed:
        parts = [run_seconds(d) for d in dirs]
        total += max((s for s, _ in parts), default=0.0) + sum(r for _, r in parts)
    return total


def format_duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def eta(unit_seconds: list[float], remaining: int, jobs: int = 1) -> str:
    """Remaining time at the mean recorded time of the arm x seed runs finished so far, with
    ``jobs`` of them running at once."""
    if not unit_seconds or remaining == 0:
        return "ETA –" if remaining else "done"
    mean = sum(unit_seconds) / len(unit_seconds)
    return f"ETA ~{format_duration(remaining * mean / max(1, min(jobs, remaining)))}"


@contextmanager
def bench_progress(total: int, console=None, bar: bool = True, jobs: int = 1):
    """Yields ``step(label, run_dir=None, finished=False)``: call it before each arm x seed run
    with its label, and once more at the end; a finished run's recorded time feeds the ETA. Runs
    that go ``jobs`` at a time call it once each as they finish, with ``finished=True``. On a
    terminal a rich bar; otherwise (a log file) one line per run."""
    spent: list[float] = []
    state = {"done": -1, "dir": None, "t0": time.perf_counter()}
    progress = None
    if console is not None and bar and console.is_terminal:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        # The bench's row (runs done of all, ETA) and one row per run going now (what it does).
        progress = Progress(
            TextColumn("{task.fields[head]}"), BarColumn(), TextColumn("{task.fields[count]}"),
            TextColumn("{task.description}"), TimeElapsedColumn(), TextColumn("{task.fields[eta]}"),
            console=console,
        )  # fmt: skip
        task = progress.add_task(
            "", total=total, eta="ETA –", head="[bold]bench[/]", count=f"0/{total}"
        )
        progress.start()

    seeds_seen: set[tuple[int, int]] = set()

    def own_seconds(run_dir: Path) -> float:
        """A run's rounds, plus its seed stage if no earlier run shared that seed model."""
        seed, rounds = run_seconds(run_dir)
        path = Path(run_dir) / "seed" / "metrics.json"
        if not path.exists():
            return seed + rounds
        st = path.stat()
        if (st.st_dev, st.st_ino) in seeds_seen:
            return rounds
        seeds_seen.add((st.st_dev, st.st_ino))
        return seed + rounds

    def show(label: str | None, done: int, where: str) -> None:
        left = total - done
        if progress is not None:
            progress.update(
                task, completed=done, description=label or "", eta=eta(spent, left, jobs),
                count=f"{done}/{total}",
            )  # fmt: skip
        elif console is not None and label:
            recorded = format_duration(sum(spent))
            console.print(
                f"[bold]bench[/] {where}: {label}  ({recorded} recorded so far, "
                f"{eta(spent, left, jobs)})"
            )

    def step(label: str | None = None, run_dir: Path | None = None, finished: bool = False) -> None:
        if finished:  # one of several runs going at once has ended
            spent.append(own_seconds(run_dir))
            show(label, len(spent), f"{len(spent)}/{total} done")
            return
        if state["dir"] is not None:
            spent.append(own_seconds(state["dir"]))
        state["done"] += 1
        state["dir"] = run_dir
        show(label, state["done"], f"{state['done'] + 1}/{total}")

    rows: dict[str, int] = {}  # a running run's label -> its rich task
    last_lines = [time.monotonic()]

    seen: dict[str, set[str]] = {}  # a running run's label -> its stages already announced

    def finished_stages(label: str, run_dir: Path) -> None:
        """A line for each stage a running run has finished since the last look (not those it
        had when first seen: a resumed run's, or the seed model its arms share)."""
        paths = sorted(Path(run_dir).glob("*/metrics.json"))
        if label not in seen:
            seen[label] = {p.parent.name for p in paths}
        done = seen[label]
        for path in paths:
            if path.parent.name in done:
                continue
            done.add(path.parent.name)
            try:
                row = read_json(path)
                acc = row["eval"]["accuracy"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a stage written by an older version, or half-copied: no line
            shown = " ".join(f"d{d}={v:.2f}" for d, v in acc.items() if d != "all")
            line = f"[bold]bench[/] {label}: done {path.parent.name}: accuracy {shown}"
            if progress is not None:
                progress.console.print(line)
            elif console is not None:
                console.print(line)

    def live(running: dict[str, Path]) -> None:
        """The runs going now and what each is doing (its workers' ``progress.json``): one bar
        row each on a terminal, one line each every ``LINE_EVERY`` seconds in a log; and a line
        for every stage one of them finishes."""
        for label, d in running.items():
            finished_stages(label, d)
        states = {label: read_report(Path(d) / PROGRESS_FILE) for label, d in running.items()}
        if progress is not None:
            for label in [lb for lb in rows if lb not in running]:
                progress.remove_task(rows.pop(label))
            for label, state in states.items():
                text = f"  {label}: " + (describe(state) if state else "starting")
                if label not in rows:
                    rows[label] = progress.add_task(text, total=None, eta="", head="", count="")
                progress.update(rows[label], description=text)
        elif console is not None and time.monotonic() - last_lines[0] >= line_every():
            last_lines[0] = time.monotonic()
            for label, state in states.items():
                console.print(
                    f"[bold]bench[/] {label}: " + (describe(state) if state else "starting")
                )

    step.live = live
    try:
        yield step
    finally:
        if progress is not None:
            progress.stop()
