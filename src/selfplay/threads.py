"""How many torch threads a run uses: the cores that other work leaves free, not every core.

PyTorch's CPU kernels spin-wait between parallel regions. With as many threads as cores and one
other CPU-bound job on the machine, every parallel region waits for a descheduled thread: a
training step measured 8x slower on 2 cores (``scripts/contention_bench.py``). Sized to the cores
that are actually idle, a run beside another job slows by about the share of the machine it
gets. ``OMP_NUM_THREADS`` in the environment is the user's choice and is left alone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def cpus() -> list[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _idle_ticks(which: list[int]) -> tuple[int, int] | None:
    """``(idle, total)`` jiffies summed over ``which`` CPUs, from ``/proc/stat``."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    idle = total = 0
    wanted = {f"cpu{c}" for c in which}
    for line in lines:
        name, *fields = line.split()
        if name in wanted:
            ticks = [int(f) for f in fields[:8]]
            idle += ticks[3] + ticks[4]  # idle + iowait
            total += sum(ticks)
    return (idle, total) if total else None


def busy_cpus(sample_s: float = 0.3) -> float:
    """How many of this process's CPUs other work keeps busy, measured over ``sample_s`` seconds
    (0 where ``/proc/stat`` is not there to read)."""
    which = cpus()
    a = _idle_ticks(which)
    own0 = time.process_time()
    time.sleep(sample_s)
    own = time.process_time() - own0
    b = _idle_ticks(which)
    if a is None or b is None or b[1] <= a[1]:
        return 0.0
    busy_share = 1.0 - (b[0] - a[0]) / (b[1] - a[1])
    return max(0.0, busy_share * len(which) - own / sample_s)


def free_cpus() -> int:
    """This process's CPUs less the ones other work keeps busy (at least 1)."""
    return max(1, round(len(cpus()) - busy_cpus()))


def user_threads() -> int | None:
    """The thread count the user set with ``OMP_NUM_THREADS``, if any."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def size_threads(share: int = 1, free: int | None = None) -> int:
    """Set torch's threads to this run's part of the free cores (``free`` of them, measured when
    not given, split ``share`` ways); ``OMP_NUM_THREADS`` wins when set. Returns the count."""
    import torch

    n = user_threads() or max(1, (free if free is not None else free_cpus()) // max(1, share))
    torch.set_num_threads(n)
    return n


def describe(n: int, share: int = 1) -> str:
    """``torch threads 1 (2 CPUs, 1 busy with other work)``, for a run's first lines; ``share``
    runs of this process each have ``n``."""
    total = len(cpus())
    each = f" each for {share} runs at once" if share > 1 else ""
    if user_threads():
        return f"torch threads {n}{each} (OMP_NUM_THREADS; {total} CPUs)"
    busy = max(0, total - n * share)
    other = f", {busy} busy with other work" if busy else ""
    return f"torch threads {n}{each} ({total} CPUs{other})"
