"""Where a bench's runs go (``executor: local | ray``): the config, the driver's scheduling on any
executor, and the run directory's lock a retried attempt waits on. Ray itself is exercised on a
local two-node cluster in tests/test_ray.py (slow)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future

import pytest

from selfplay.bench.config import load_bench_config
from selfplay.bench.executors import Job
from selfplay.bench.runner import run_jobs
from selfplay.config import config_from_dict
from selfplay.engine.rundir import writer_lock
from selfplay.errors import ConfigError

RUN = {
    "raw": {"size": 100, "difficulties": [1, 2]},
    "loop": {"iterations": 1, "pool_difficulties": [1, 2], "problems_per_iter": 10},
    "eval": {"difficulties": [1, 2], "n_per_difficulty": 4, "k": 0},
}


def _bench(tmp_path, *overrides):
    data = {
        "name": "ex",
        "output_dir": str(tmp_path / "b"),
        "seeds": [0],
        "verdict": False,
        "reference": "raw",
        "run": RUN,
        "arms": {"raw": ["loop.data_source=raw-fresh"], "selfplay": []},
    }
    path = tmp_path / "bench.yaml"
    path.write_text(json.dumps(data))
    return load_bench_config(path, list(overrides))


def test_the_default_executor_is_local_and_ray_has_per_run_resources(tmp_path):
    bench, _ = _bench(tmp_path, "ray.cpus=2", "ray.gpus=0.5", "ray.memory_gb=4")
    assert bench.executor == "local"
    assert (bench.ray.cpus, bench.ray.gpus, bench.ray.memory_gb) == (2, 0.5, 4)


@pytest.mark.parametrize(
    "override, message",
    [
        ("executor=slurm", "executor: must be one of local, ray, got 'slurm'"),
        ("ray.cpus=0.5", "ray.cpus: must be >= 1"),
        ("ray.gpus=-1", "ray.gpus: must be >= 0"),
        ("ray.max_retries=-1", "ray.max_retries: must be >= 0"),
        ("ray.nodes=2", "ray.nodes: unknown key"),
    ],
)
def test_executor_settings_out_of_range_are_one_line_errors(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        _bench(tmp_path, override)


def test_ray_not_installed_is_a_one_line_error_before_anything_runs(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"pip install 'selfplay\[ray\]'"):
        _bench(tmp_path, "executor=ray")
    assert not (tmp_path / "b").exists()


class FakeExecutor:
    """Runs a job when the driver submits it (in this thread); ``fail`` names a job that raises."""

    def __init__(self, workers=2, fail=None):
        self.workers, self.fail = workers, fail
        self.started, self.cancelled, self.sharing = [], [], []

    def submit(self, job, sharing):
        self.started.append(job.label)
        self.sharing.append(sharing)
        fut = Future()
        if job.label == self.fail:
            fut.set_exception(ConfigError("the run broke"))
        elif job.label.startswith("slow"):
            pass  # never finishes: still running when another fails
        else:
            fut.set_result(None)
        return fut

    def cancel(self, fut):
        self.cancelled.append(fut)


class Step:
    def __init__(self):
        self.finished, self.live_calls = [], 0

    def __call__(self, label=None, run_dir=None, finished=False):
        if finished:
            self.finished.append(label)

    def live(self, running):
        self.live_calls += 1


def _job(tmp_path, label, **kw):
    return Job(label, config_from_dict({"output_dir": str(tmp_path / label)}), **kw)


def test_run_jobs_runs_what_a_finished_job_unlocks_and_counts_only_arms(tmp_path):
    ex, step = FakeExecutor(), Step()
    seeds = [_job(tmp_path, f"seed{s}", seed_only=True, arm=False) for s in (0, 1)]

    def then(job):
        return [_job(tmp_path, f"{job.label}-arm{a}") for a in (0, 1)] if job.seed_only else []

    run_jobs(ex, seeds, step, then)
    assert ex.started[:2] == ["seed0", "seed1"]  # both seed models first, side by side
    assert sorted(ex.started[2:]) == ["seed0-arm0", "seed0-arm1", "seed1-arm0", "seed1-arm1"]
    assert sorted(step.finished) == sorted(ex.started[2:])  # a seed model is not an arm
    assert ex.sharing[0] == 2  # the first seed model shares the cores with the second


def test_a_failed_run_stops_the_bench_with_its_label_and_cancels_the_others(tmp_path):
    ex, step = FakeExecutor(workers=2, fail="bad"), Step()
    todo = [_job(tmp_path, "slow one"), _job(tmp_path, "bad"), _job(tmp_path, "never")]
    with pytest.raises(ConfigError, match="^bad: the run broke$"):
        run_jobs(ex, todo, step, lambda job: [])
    assert ex.started == ["slow one", "bad"]  # two at once; the third never started
    assert len(ex.cancelled) == 1  # the one still running


def test_a_retried_attempt_waits_for_the_earlier_one_to_let_go(tmp_path):
    held, release = threading.Event(), threading.Event()

    def earlier():
        with writer_lock(tmp_path):
            held.set()
            release.wait(10)

    t = threading.Thread(target=earlier)
    t.start()
    held.wait(10)
    busy = r"is being written by selfplay pid .* \(waited 0.2 s\)"
    with pytest.raises(ConfigError, match=busy), writer_lock(tmp_path, wait_s=0.2):
        pass
    threading.Timer(0.3, release.set).start()
    start = time.monotonic()
    with writer_lock(tmp_path, wait_s=10):
        waited = time.monotonic() - start
    t.join()
    assert 0.2 < waited < 5


@pytest.mark.parametrize(
    "address, message",
    [
        ("no-port", "is not host:port"),
        ("127.0.0.1:{port}", "cannot reach 127.0.0.1:"),
    ],
)
def test_a_cluster_address_that_answers_nothing_is_a_one_line_error_in_seconds(address, message):
    import socket

    from selfplay.bench.executors import check_reachable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: a refused connection
        start = time.monotonic()
        with pytest.raises(ConfigError, match=f"^ray.address: .*{message}"):
            check_reachable(address.format(port=port), timeout_s=5)
    assert time.monotonic() - start < 5
    check_reachable(None)  # Ray's own: RAY_ADDRESS, else a local Ray
    check_reachable("auto")
