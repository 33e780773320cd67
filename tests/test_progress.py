"""Bench progress: recorded times survive a resume; ETA from the runs finished so far."""

from __future__ import annotations

from rich.console import Console

from selfplay.bench.progress import bench_progress, bench_seconds, eta, run_seconds
from selfplay.engine import artifacts


def _run(d, seed_s, round_s):
    artifacts.write_text(d / "config.yaml", "name: x\n")
    artifacts.write_json(
        d / "seed" / "metrics.json", {"iteration": 0, "cumulative": {"seconds": seed_s}}
    )
    artifacts.write_json(
        d / "iter_001" / "metrics.json",
        {"iteration": 1, "cumulative": {"seconds": seed_s + round_s}},
    )
    return d


def test_bench_seconds_count_a_shared_seed_once(tmp_path):
    a = _run(tmp_path / "s0" / "a", 100.0, 30.0)
    b = _run(tmp_path / "s0" / "b", 100.0, 50.0)  # the same seed model, hard-linked
    c = _run(tmp_path / "s1" / "a", 80.0, 20.0)
    assert run_seconds(a) == (100.0, 30.0)
    assert run_seconds(tmp_path / "missing") == (0.0, 0.0)
    assert bench_seconds([[a, b], [c, tmp_path / "not-started"]]) == 100 + 30 + 50 + 80 + 20


def test_eta_and_log_lines(tmp_path):
    assert eta([], 3) == "ETA –" and eta([60.0, 120.0], 0) == "done"
    assert eta([60.0, 120.0], 2) == "ETA ~3m00s"
    a = _run(tmp_path / "a", 10.0, 50.0)
    console = Console(record=True, width=200, force_terminal=False)
    with bench_progress(2, console, bar=True) as step:  # not a terminal: one line per run
        step("seed 0, arm a", a)
        step("seed 0, arm b", tmp_path / "b")
        step()
    lines = console.export_text().splitlines()
    assert lines[0].startswith("bench 1/2: seed 0, arm a  (0m00s recorded so far, ETA –)")
    assert lines[1] == "bench 2/2: seed 0, arm b  (1m00s recorded so far, ETA ~1m00s)"


def test_parallel_progress_counts_a_shared_seed_model_once(tmp_path):
    import os

    a = _run(tmp_path / "s0" / "a", 100.0, 30.0)
    b = _run(tmp_path / "s0" / "b", 100.0, 50.0)
    (b / "seed" / "metrics.json").unlink()
    os.link(a / "seed" / "metrics.json", b / "seed" / "metrics.json")  # as the bench shares it
    console = Console(record=True, width=200, force_terminal=False)
    with bench_progress(4, console, bar=True, jobs=2) as step:
        step("seed 0, arm a", a, finished=True)
        step("seed 0, arm b", b, finished=True)
    lines = console.export_text().splitlines()
    assert lines[0] == "bench 1/4 done: seed 0, arm a  (2m10s recorded so far, ETA ~3m15s)"
    # b's rounds only (50 s): the seed model's 100 s were a's. Two runs left, two at a time.
    assert lines[1] == "bench 2/4 done: seed 0, arm b  (3m00s recorded so far, ETA ~1m30s)"


def test_a_log_gets_a_line_per_interval_and_one_at_the_end(monkeypatch):
    """Off a terminal (a log file, CI) a long stage prints plain lines, never a silent stage."""
    import io

    from selfplay.bars import LineBar

    now = [0.0]
    monkeypatch.setattr("selfplay.bars.time.monotonic", lambda: now[0])
    out = io.StringIO()
    b = LineBar(total=100, desc="seed train", unit="step", every=30.0, file=out)
    for _ in range(100):
        now[0] += 1.0
        b.update()
        b.set_postfix(loss="0.123")
    b.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # at 30, 60 and 90 s, and the end
    assert lines[0].startswith("seed train: 30/100 step (1.0 step/s, 30s, ETA 70s")
    assert lines[-1].startswith("seed train: 100/100 step (1.0 step/s, done in 100s")
    assert "loss=0.123" in lines[-1]


def test_a_log_shows_what_each_running_run_does_and_each_stage_it_finishes(tmp_path, monkeypatch):
    import io
    import json

    from rich.console import Console

    from selfplay import bars

    monkeypatch.setenv("SELFPLAY_PROGRESS_LINES", "0")
    out = io.StringIO()
    console = Console(file=out, width=200)
    run = tmp_path / "arm"
    (run / "seed").mkdir(parents=True)
    (run / "seed" / "metrics.json").write_text(json.dumps({"eval": {"accuracy": {"1": 1.0}}}))
    (run / bars.PROGRESS_FILE).write_text(
        json.dumps(
            {"desc": "train 1", "n": 5, "total": 10, "unit": "step", "rate": 2.0, "eta": 2.5}
        )
    )
    with bench_progress(1, console, bar=False) as step:
        step.live({"seed 0, arm a": run})  # the shared seed stage was there before: no line
        (run / "iter_001").mkdir()
        (run / "iter_001" / "metrics.json").write_text(
            json.dumps({"eval": {"accuracy": {"1": 1.0, "2": 0.5, "all": 0.75}}})
        )
        step.live({"seed 0, arm a": run})
    text = out.getvalue()
    assert "seed 0, arm a: train 1: 5/10 step, 2.0/s, ETA 2s" in text
    assert "done iter_001: accuracy d1=1.00 d2=0.50" in text
    assert "done seed" not in text


def test_a_run_shows_its_bar_and_reports_it_for_summary_and_inspect_elsewhere(
    tmp_path, monkeypatch, capsys
):
    """``selfplay run`` mirrors its bars to progress.json: another shell's ``summary`` and
    ``inspect`` name the stage in progress while the person running it still sees the bar."""
    import json

    from selfplay import bars
    from selfplay.cli import main
    from selfplay.views.run import progress_line

    monkeypatch.setattr("selfplay.bars.sys.stderr.isatty", lambda: False, raising=False)
    bars.mirror_to(tmp_path / bars.PROGRESS_FILE)
    try:
        b = bars.bar(40, "seed train", "step")
        for _ in range(10):
            b.update()
    finally:
        bars.mirror_to(None)
    state = json.loads((tmp_path / bars.PROGRESS_FILE).read_text())
    assert (state["desc"], state["total"], state["done"]) == ("seed train", 40, False)
    assert progress_line(tmp_path).startswith("in progress: seed train: ")
    artifacts.write_text(tmp_path / "config.yaml", "name: x\n")  # a run in its first stage
    assert main(["inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no iteration has generated samples yet (in progress: seed train:" in err
    b.close()  # the shown bar closes too, and the report says done
    assert json.loads((tmp_path / bars.PROGRESS_FILE).read_text())["done"]
    assert bars.bar(5, "next", "step").__class__.__name__ != "TeeBar"  # mirroring stopped
