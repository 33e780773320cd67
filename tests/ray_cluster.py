"""A Ray cluster of two nodes on this machine, for the Ray executor's tests and
``scripts/ray_bench.py``: a head and a second node at another loopback address (so a driver on
this machine attaches to the head's node, and losing the second node does not take the driver
with it). Stopped by killing every process it started."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")
WORKER_IP = "127.0.0.2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ours(marks: list[str], temp: str | None = None) -> list[int]:
    """Processes whose command line holds one of ``marks``, or that hold a file under ``temp``
    (Ray's agents rename themselves, but keep their logs open there)."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            held = [os.readlink(fd) for fd in (proc / "fd").iterdir()] if temp else []
        except OSError:
            continue
        if any(m in cmd for m in marks) or any(h.startswith(temp) for h in held if temp):
            out.append(int(proc.name))
    return out


class Cluster:
    """A head and a second node, ``cpus`` each; stopped by killing every process it started."""

    def __init__(self, cpus: int):
        self.port = free_port()
        self.temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: socket paths are bounded
        self.address = f"127.0.0.1:{self.port}"
        common = ["--num-cpus", str(cpus), "--object-store-memory", str(100 * 2**20)]
        common += ["--disable-usage-stats"]
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        head = [str(RAY), "start", "--head", "--port", str(self.port), "--temp-dir", self.temp]
        head += ["--include-dashboard", "false", "--ray-client-server-port", str(free_port())]
        subprocess.run(head + common, check=True, env=env, capture_output=True, timeout=120)
        node = [str(RAY), "start", "--address", self.address, "--node-ip-address", WORKER_IP]
        subprocess.run(node + common, check=True, env=env, capture_output=True, timeout=120)

    def kill_second_node(self) -> int:
        """SIGKILL the second node's raylet (the node is lost, as when a machine dies)."""
        pids = [
            p
            for p in _ours([f"node_ip_address={WORKER_IP}"])
            if b"raylet/raylet" in Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return len(pids)

    def stop(self) -> None:
        for _ in range(5):
            pids = _ours([self.temp, f":{self.port}", f"node_ip_address={WORKER_IP}"], self.temp)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(1)
