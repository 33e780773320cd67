"""Where a bench's runs go: processes on this machine, or tasks on a Ray cluster.

Both take :class:`Job` s (one run each, resumable from its last finished stage) and hand back
``concurrent.futures`` futures, so :func:`selfplay.bench.runner.run_jobs` schedules a seed's
arms after its seed model the same way on either, and shows the same progress: every run
reports its bars to its run directory's ``progress.json``, which the driver reads.

- :class:`LocalExecutor` (``executor: local``): ``jobs`` spawned processes; each run gets its part
  of the cores free of other work when it starts (:mod:`selfplay.threads`).
- :class:`RayExecutor` (``executor: ray``): each run is a Ray task reserving ``ray.cpus``,
  ``ray.gpus`` and ``ray.memory_gb``. A task whose worker process or node is lost is started
  again (``ray.max_retries``) and resumes from the run's last finished stage; the run
  directory's lock keeps a retried attempt from writing beside an earlier one still alive.
  The bench directory must be on storage every node sees at the same path: each task checks
  a token the driver wrote there and fails with one line if it cannot read it.
"""

from __future__ import annotations

import os
import secrets
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from selfplay.bars import PROGRESS_FILE
from selfplay.bench.config import BenchConfig, RayConfig
from selfplay.bench.progress import quiet_libraries
from selfplay.config import RunConfig
from selfplay.errors import ConfigError

SHARED_TOKEN = ".executor-token"
"""A file the driver writes in the bench directory; a Ray task that cannot read it runs where
the bench directory is not shared."""

# Passed on to the cluster's workers, so that they run as the driver does (offline hub, no
# tokenizer threads, the same caches).
WORKER_ENV = (
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_HOME",
    "TOKENIZERS_PARALLELISM",
    "SELFPLAY_STOP_AFTER",
)


@dataclass
class Job:
    """One run for a worker: ``seed_only`` stops after the seed stage (the model a seed's arms
    share); ``arm`` is set for an arm x seed run the bench counts as one of its units."""

    label: str
    cfg: RunConfig
    seed_only: bool = False
    arm: bool = True


def run_job(job: Job, threads: int, lock_wait_s: float = 0.0) -> None:
    """In a worker: the run, with ``threads`` torch threads and its bars reported to the
    run directory's ``progress.json`` for the driver to show."""
    from selfplay import bars
    from selfplay.engine.loop import run
    from selfplay.threads import size_threads

    size_threads(free=threads)
    bars.report_to(job.cfg.run_dir / PROGRESS_FILE)
    try:
        run(job.cfg, console=None, progress=True, until_seed=job.seed_only, lock_wait_s=lock_wait_s)
    finally:
        bars.report_to(None)


class LocalExecutor:
    """``workers`` processes on this machine (spawned: no state inherited), each with its share
    of the GPU's memory; a run's threads are its part of the cores free when it starts."""

    def __init__(self, workers: int):
        self.workers = workers

    def __enter__(self):
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        from selfplay.threads import free_cpus

        self.free = free_cpus()  # measured before any worker starts: what other work leaves us
        self.pool = ProcessPoolExecutor(
            self.workers,
            mp_context=get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.workers,),
        )
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, job: Job, sharing: int) -> Future:
        """Start ``job`` beside ``sharing - 1`` others."""
        return self.pool.submit(run_job, job, max(1, self.free // max(1, sharing)))

    def cancel(self, fut: Future) -> None:
        fut.cancel()

    def describe(self) -> str:
        return f"{self.workers} processes on this machine"


def _init_worker(jobs: int) -> None:
    import torch

    if torch.cuda.is_available():  # runs sharing one GPU each get an equal part of its memory
        torch.cuda.set_per_process_memory_fraction(1 / jobs)
    quiet_libraries()


def _ray_run(
    job: Job, threads: int, gpu_share: float, token: tuple[str, str], lock_wait_s: float
) -> str:
    """A Ray task: check the bench directory is the driver's (``token``: the path of its token
    file and what it holds), then the run. Returns the node it ran on."""
    import socket

    path, token = Path(token[0]), token[1]
    try:
        seen = path.read_text().strip()
    except OSError:
        seen = None
    if seen != token:
        raise ConfigError(
            f"{path.parent} is not the driver's bench directory on node {socket.gethostname()}: "
            "put the bench's output_dir on storage every node mounts at the same path"
        )
    quiet_libraries()
    if gpu_share and gpu_share < 1:
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_per_process_memory_fraction(gpu_share)
    run_job(job, threads, lock_wait_s)
    return socket.gethostname()


def check_reachable(address: str | None, timeout_s: float = 10.0) -> None:
    """A ``host:port`` cluster address that answers no connection is a one-line error in
    seconds (Ray itself keeps retrying for minutes); ``auto`` and null are Ray's to resolve."""
    import socket

    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"ray.address: {address!r} is not host:port (or auto, or null)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(
            f"ray.address: cannot reach {address} ({exc.strerror or type(exc).__name__}); is "
            "the cluster's head up (ray start --head) and is this its address?"
        ) from None


def _cause(exc: BaseException) -> BaseException:
    """What a Ray task raised, without Ray's wrapping (its traceback text); a lost worker or
    node past its retries as one line."""
    import ray.exceptions as rex

    if isinstance(exc, rex.RayTaskError) and exc.cause is not None:
        return exc.cause
    if isinstance(exc, rex.RayError):
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return ConfigError(
            f"lost on the cluster past its retries ({type(exc).__name__}: {first[:200]}); "
            "rerunning the bench resumes"
        )
    return exc


class RayExecutor:
    """Every run a Ray task with ``cfg``'s resources; as many at once as the cluster holds."""

    def __init__(self, cfg: RayConfig, bench_dir: Path):
        self.cfg, self.bench_dir = cfg, Path(bench_dir)
        self.refs: dict[Future, object] = {}

    def __enter__(self):
        import ray

        env = {k: os.environ[k] for k in WORKER_ENV if k in os.environ}
        check_reachable(self.cfg.address or os.environ.get("RAY_ADDRESS"))
        self.bench_dir.mkdir(parents=True, exist_ok=True)
        self.token = secrets.token_hex(8)
        (self.bench_dir / SHARED_TOKEN).write_text(self.token)
        try:
            ray.init(
                address=self.cfg.address,
                runtime_env={"env_vars": env} if env else None,
                log_to_driver=False,
                include_dashboard=False,
                configure_logging=False,
            )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            where = self.cfg.address or os.environ.get("RAY_ADDRESS") or "a local Ray"
            raise ConfigError(f"ray.address: cannot reach {where}: {first[:200]}") from None
        cpus = ray.cluster_resources().get("CPU", 0)
        self.workers = max(1, int(cpus // self.cfg.cpus))
        options = {
            "num_cpus": self.cfg.cpus,
            "num_gpus": self.cfg.gpus,
            "max_retries": self.cfg.max_retries,
            "retry_exceptions": False,  # a run's own error is not the cluster's fault
        }
        if self.cfg.memory_gb:
            options["memory"] = int(self.cfg.memory_gb * 2**30)
        self.task = ray.remote(_ray_run).options(**options)
        return self

    def __exit__(self, *exc) -> None:
        import ray

        ray.shutdown()

    def submit(self, job: Job, sharing: int) -> Future:
        threads = max(1, int(self.cfg.cpus))
        token = (str((self.bench_dir / SHARED_TOKEN).resolve()), self.token)
        ref = self.task.remote(job, threads, self.cfg.gpus, token, self.cfg.lock_wait_s)
        out: Future = Future()

        def settle(f: Future) -> None:
            try:
                out.set_result(f.result())
            except BaseException as exc:  # noqa: BLE001 (handed to the driver as the run's error)
                out.set_exception(_cause(exc))

        ref.future().add_done_callback(settle)
        self.refs[out] = ref
        return out

    def cancel(self, fut: Future) -> None:
        import ray

        ref = self.refs.pop(fut, None)
        if ref is not None:
            ray.cancel(ref, force=True)

    def describe(self) -> str:
        cpus = f"{self.cfg.cpus:g} CPU" + ("s" if self.cfg.cpus != 1 else "")
        return f"Ray: {self.workers} runs at once ({cpus} each)"


def open_executor(bench: BenchConfig):
    """The bench's executor, or ``None`` for runs one after another in this process
    (``executor: local`` with ``jobs: 1``)."""
    if bench.executor == "ray":
        return RayExecutor(bench.ray, bench.bench_dir)
    return LocalExecutor(bench.jobs) if bench.jobs > 1 else None
