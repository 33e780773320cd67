"""Thread sizing beside other work, and bars reported to a file for a bench's driver."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import torch

from selfplay import bars, threads


def test_threads_are_the_free_cores_and_omp_num_threads_wins(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert threads.size_threads(free=4, share=2) == 2
        assert torch.get_num_threads() == 2
        assert threads.size_threads(free=1, share=3) == 1  # never 0
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert threads.size_threads(free=1) == 3
        assert "OMP_NUM_THREADS" in threads.describe(3)
        monkeypatch.setenv("OMP_NUM_THREADS", "lots")  # not a count: ignored
        assert threads.user_threads() is None
    finally:
        torch.set_num_threads(before)


def test_a_busy_process_counts_as_a_busy_core():
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        busy = threads.busy_cpus(0.5)
    finally:
        hog.kill()
        hog.wait()
    assert busy >= 0.6
    assert 1 <= threads.free_cpus() <= len(threads.cpus())


def test_bars_report_to_a_file_the_driver_reads(tmp_path, monkeypatch):
    path = tmp_path / "progress.json"
    monkeypatch.setattr(bars, "REPORT_EVERY", 0.0)
    bars.report_to(path)
    try:
        bar = bars.bar(10, "train 2", "step")
        bar.update(4)
        mid = bars.read_report(path)
        bar.close()
    finally:
        bars.report_to(None)
    assert mid["n"] == 4 and mid["total"] == 10 and not mid["done"]
    assert bars.describe(mid).startswith("train 2: 4/10 step")
    assert bars.read_report(path)["done"]
    assert bars.read_report(tmp_path / "none.json") is None
    (tmp_path / "torn.json").write_text('{"desc": ')
    assert bars.read_report(tmp_path / "torn.json") is None
    # Without report_to, no file: a bar with no description is no bar at all.
    bars.bar(3, None, "step").update(1)
    assert json.loads(path.read_text())["done"]
