"""The sandbox: what a program can see and do, attacked layer by layer.

Each hostile program runs with the guard (the audit hook) and, where it makes sense, without it, so
the kernel layers beneath are tested on their own. Afterwards the machine must be unharmed: no
file outside the work directory, no process of the run left alive, this test process alive.
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from selfplay.sandbox import ENV_MARKER, Limits, run_python

ROOT = os.geteuid() == 0
QUICK = Limits(timeout=2.0, memory_mb=512, processes=16)

# A prefix for hostile programs: report this run's uid and marker first, so the test can look
# for its processes in the process table afterwards.
WHOAMI = f"import os\nsandbox_report(('whoami', os.getuid(), os.environ.get({ENV_MARKER!r})))\n"


def _whoami(result) -> tuple[int, str]:
    found = [r for r in result.reports if isinstance(r, tuple) and r[:1] == ("whoami",)]
    assert found, f"the program did not start: {result}"
    return found[0][1], found[0][2]


def _live_processes(uid: int, marker: str) -> list[int]:
    """Processes (not zombies) of the run: its uid (as root) or its environment marker."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("State", "").strip().startswith(("Z", "X")):
            continue
        run_uid = ROOT and uid != 0 and int(fields["Uid"].split()[0]) == uid
        if run_uid or f"{ENV_MARKER}={marker}".encode() in environ.split(b"\0"):
            out.append(int(pid))
    return out


def _assert_no_stray_processes(result) -> None:
    uid, marker = _whoami(result)
    deadline = time.monotonic() + 3  # the kill is synchronous; leave the kernel a moment to reap
    while (left := _live_processes(uid, marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes of the run still alive: {left}"


@pytest.fixture(scope="module")
def kernel_layers():
    """The layers this machine gives (the guard-off tests need the kernel ones)."""
    return run_python("pass").layers


def _need_uid(layers) -> None:
    if "uid" not in layers:
        pytest.skip("needs root (the run drops to its own uid)")


# ------------------------------------------------------------------------------------------------
# Ordinary programs


def test_runs_a_program_and_reports(kernel_layers):
    r = run_python("print('hello')\nsandbox_report({'n': 1, 'xs': [1, 2]})\nsandbox_report(3)")
    assert r.status == "ok" and r.exit_code == 0 and r.why == ""
    assert r.stdout == "hello\n"
    assert r.reports == ({"n": 1, "xs": [1, 2]}, 3)
    assert {"process", "rlimits", "guard"} <= set(r.layers)
    if ROOT:
        assert {"uid", "netns"} <= set(kernel_layers)
    assert 0 < r.seconds < 10


@pytest.mark.parametrize(
    "source, status, exit_code, why",
    [
        ("raise ValueError('boom')", "exit", 1, "ValueError: boom"),
        ("import sys; sys.exit(3)", "exit", 3, "exit code 3"),
        ("import sys; sys.exit('bye')", "exit", 1, "bye"),
        ("import sys; sys.exit(0)", "ok", 0, ""),
        ("def f(:\n  pass", "exit", 1, "SyntaxError"),
        ("import os; os.abort()", "signal", None, "SIGABRT"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "signal", None, "SIGSEGV"),
    ],
)
def test_exit_statuses(source, status, exit_code, why):
    r = run_python(source, QUICK)
    assert r.status == status, r
    assert r.exit_code == exit_code
    assert why in r.why


def test_traceback_shows_the_program_not_the_runner():
    r = run_python("def f():\n    1 / 0\nf()", QUICK)
    assert 'File "main.py", line 2, in f' in r.stderr
    assert "_runner_main" not in r.stderr


def test_files_are_written_into_the_work_directory():
    r = run_python("print(open('data.txt').read())", QUICK, files={"data.txt": "payload"})
    assert r.stdout == "payload\n"
    with pytest.raises(ValueError, match="plain names"):
        run_python("pass", QUICK, files={"../x": "no"})


def test_work_directory_is_fresh_and_removed():
    src = (
        "import os\nsandbox_report(os.getcwd())\nsandbox_report(sorted(os.listdir('.')))\n"
        "open('left-behind.txt', 'w').write('x')\nos.makedirs('a/b')\nos.chmod('a', 0)\n"
    )
    r = run_python(src, QUICK)
    assert r.status == "ok", r
    cwd, listing = r.reports
    assert listing == ["main.py"]
    assert not os.path.exists(cwd)
    assert not os.path.exists(os.path.dirname(cwd))


def test_concurrent_runs_are_independent():
    src = "import os, time\ntime.sleep(0.2)\nsandbox_report(os.getuid())"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: run_python(src, QUICK), range(4)))
    assert [r.status for r in results] == ["ok"] * 4
    if ROOT:
        assert len({r.reports[0] for r in results}) == 4  # a uid of its own each


# ------------------------------------------------------------------------------------------------
# Time, memory, processes


def test_infinite_loop_times_out():
    start = time.monotonic()
    r = run_python("while True:\n    pass", Limits(timeout=1.0))
    assert r.status == "timeout" and "wall-clock" in r.why
    assert time.monotonic() - start < 5


def test_cpu_limit():
    r = run_python("while True:\n    pass", Limits(timeout=10.0, cpu_seconds=1))
    assert r.status == "timeout" and "CPU" in r.why, r
    assert r.seconds < 5


def test_sleeping_past_the_deadline_times_out():
    r = run_python("import time\ntime.sleep(30)", Limits(timeout=0.5))
    assert r.status == "timeout" and r.seconds < 5


@pytest.mark.parametrize(
    "source",
    [
        "x = bytearray(4 * 1024 ** 3)",
        "xs = []\nwhile True:\n    xs.append(' ' * 10 ** 6)",
        "x = 'a' * (2 ** 40)",
    ],
    ids=["one-block", "growing", "huge-string"],
)
def test_memory_bomb(source):
    r = run_python(source, Limits(timeout=10.0, memory_mb=256))
    assert r.status == "memory", r
    assert "256 MiB" in r.why


@pytest.mark.parametrize("guard", [True, False], ids=["guard", "kernel-only"])
def test_fork_bomb_is_contained(guard, kernel_layers):
    if not guard:
        _need_uid(kernel_layers)
    src = WHOAMI + (
        "import os, time\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        time.sleep(0.01)\n"
    )
    r = run_python(src, Limits(timeout=2.0, processes=16), guard=guard)
    assert r.status == "timeout", r
    _assert_no_stray_processes(r)


@pytest.mark.parametrize("guard", [True, False], ids=["guard", "kernel-only"])
def test_daemonized_grandchild_is_killed(guard, kernel_layers):
    if not guard:
        _need_uid(kernel_layers)
    src = WHOAMI + (
        "import os, time\n"
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.setsid()  # leave the process group\n"
        "    if os.fork() == 0:\n"
        "        os.write(w, str(os.getpid()).encode())\n"
        "        time.sleep(60)\n"
        "    os._exit(0)\n"
        "sandbox_report(int(os.read(r, 32)))\n"
    )
    # seccomp refuses fork: switched off, so that the cleanup beneath it is what is tested
    r = run_python(src, QUICK, guard=guard, seccomp=False)
    assert r.status == "ok", r
    grandchild = r.reports[1]
    assert isinstance(grandchild, int) and grandchild > 1
    _assert_no_stray_processes(r)
    status = Path(f"/proc/{grandchild}/status")
    if status.exists():  # a zombie waiting for init, or a new process that reused the pid
        text = status.read_text()
        assert "State:\tZ" in text or f"Uid:\t{_whoami(r)[0]}\t" not in text


def test_output_flood_is_capped():
    r = run_python("while True:\n    print('x' * 10000)", Limits(timeout=5.0, file_mb=1))
    assert r.status == "exit", r  # the file-size limit makes the write fail
    assert len(r.stdout) <= Limits().tail_bytes and r.stdout.strip("x\n") == ""


# ------------------------------------------------------------------------------------------------
# Files, environment, network, other processes


@pytest.mark.parametrize("guard", [True, False], ids=["guard", "kernel-only"])
def test_writing_outside_the_work_directory(guard, tmp_path, kernel_layers):
    if not guard:
        _need_uid(kernel_layers)  # tmp_path is root's: the dropped uid may not write there
    target = tmp_path / "escaped.txt"
    r = run_python(f"open({str(target)!r}, 'w').write('gotcha')", QUICK, guard=guard)
    # the guard refuses; beneath it the directory is not in the run's root at all
    unseen = not guard and "minimal-root" in kernel_layers
    assert r.status == "exit" and ("FileNotFoundError" if unseen else "PermissionError") in r.why, r
    assert not target.exists()


@pytest.mark.parametrize(
    "source",
    [
        "open({p!r}, 'w').write('x')",
        "import os; os.close(os.open({p!r}, os.O_CREAT | os.O_WRONLY))",
        "import os; os.symlink('/etc/passwd', {p!r})",
        "import os; os.mkdir({p!r})",
        "import shutil; shutil.copy('main.py', {p!r})",
        "import os; open('inside', 'w').close(); os.rename('inside', {p!r})",
        "import os; os.symlink({d!r}, 'link'); open('link/' + os.path.basename({p!r}), 'w')",
    ],
    ids=["open", "os.open", "symlink", "mkdir", "copy", "rename", "through-a-link"],
)
def test_guard_refuses_changes_outside_in_world_writable_tmp(source):
    # /tmp is writable by every uid, so here the guard is the layer that refuses
    path = f"/tmp/selfplay-escape-{os.getpid()}-{time.monotonic_ns()}"
    r = run_python(source.format(p=path, d="/tmp"), QUICK)
    try:
        assert r.status == "exit" and "PermissionError" in r.why, r
        assert not os.path.lexists(path)
    finally:
        if os.path.lexists(path):
            (os.rmdir if os.path.isdir(path) else os.remove)(path)


def test_writing_inside_and_to_dev_null_is_allowed():
    src = (
        "import os, tempfile\nopen('a.txt', 'w').write('x')\nos.mkdir('d')\n"
        "os.rename('a.txt', 'd/b.txt')\nopen(os.devnull, 'w').write('x')\n"
        "with tempfile.NamedTemporaryFile() as f:\n    f.write(b'x')\n"
    )
    assert run_python(src, QUICK).status == "ok"


def test_environment_secret_is_not_visible(monkeypatch):
    monkeypatch.setenv("SELFPLAY_TEST_SECRET", "hunter2-very-secret")
    src = (
        "import os\nprint(dict(os.environ))\n"
        "for pid in ('self', os.getppid(), 1):\n"
        "    try:\n        print(open(f'/proc/{pid}/environ', 'rb').read())\n"
        "    except OSError as e:\n        print('refused', pid, type(e).__name__)\n"
        "sandbox_report(sorted(os.environ))\n"
    )
    r = run_python(src, QUICK)
    assert r.status == "ok", r
    assert "hunter2" not in r.stdout + r.stderr
    assert f"refused {os.getpid()} PermissionError" in r.stdout  # the parent's environment
    assert "refused 1 PermissionError" in r.stdout
    assert set(r.reports[0]) <= {"PATH", "HOME", "TMPDIR", "LANG", ENV_MARKER}


@pytest.fixture
def listener():
    """A TCP server on this machine's loopback that a sandboxed program must not reach."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


CONNECT = (
    "import socket\n"
    "try:\n    s = socket.socket()\n    s.settimeout(2)\n"
    "    s.connect(('127.0.0.1', {port}))\n    sandbox_report('connected')\n"
    "except OSError as e:\n    sandbox_report(type(e).__name__ + ': ' + str(e))\n"
)


def test_network_is_refused_by_the_guard(listener):
    r = run_python(CONNECT.format(port=listener), QUICK)
    assert r.status == "ok" and r.reports and "PermissionError" in r.reports[0], r


def test_network_namespace_alone_blocks_loopback(listener, kernel_layers):
    if "netns" not in kernel_layers:
        pytest.skip("no network namespaces here")
    # seccomp off too: it refuses the inet socket itself (tests/test_redteam.py)
    r = run_python(CONNECT.format(port=listener), QUICK, guard=False, seccomp=False)
    assert r.reports and r.reports[0] != "connected", r
    # the control: without these layers the same program does connect, so the check can fail
    r = run_python(CONNECT.format(port=listener), QUICK, guard=False, netns=False, seccomp=False)
    assert r.reports == ("connected",), r


def test_dns_and_exec_are_refused():
    src = (
        "import socket, subprocess, os\nfor f in (lambda: socket.getaddrinfo('example.com', 80),\n"
        "          lambda: subprocess.run(['true']), lambda: os.system('true')):\n"
        "    try:\n        f()\n        sandbox_report('allowed')\n"
        "    except PermissionError:\n        sandbox_report('refused')\n"
    )
    r = run_python(src, QUICK)
    assert r.reports == ("refused",) * 3, r


@pytest.mark.parametrize("guard", [True, False], ids=["guard", "kernel-only"])
@pytest.mark.parametrize(
    "attack",
    [
        "os.kill(os.getppid(), signal.SIGKILL)",
        "os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)",
        "os.kill(1, signal.SIGKILL)",
    ],
    ids=["parent", "parent-group", "init"],
)
def test_cannot_kill_the_parent(attack, guard, kernel_layers):
    if not guard:
        _need_uid(kernel_layers)  # without it only the guard stands between the two
    r = run_python(f"import os, signal\n{attack}", QUICK, guard=guard)
    assert r.status == "exit" and "PermissionError" in r.why, r
    assert os.getpid() > 0  # still here


def test_a_program_may_signal_its_own_children():
    src = (
        "import os, signal, time\npid = os.fork()\nif pid == 0:\n    time.sleep(30)\n"
        "os.kill(pid, signal.SIGTERM)\nsandbox_report(os.waitpid(pid, 0)[1] & 0x7F)\n"
    )
    r = run_python(src, QUICK, seccomp=False)  # with seccomp there is no child to signal
    assert r.status == "ok" and r.reports == (signal.SIGTERM,), r


def test_ctypes_is_refused():
    r = run_python("import ctypes\nctypes.string_at(0)", QUICK)
    assert r.status == "exit" and "importing ctypes" in r.why, r


# ------------------------------------------------------------------------------------------------
# The minimal root: the run sees the interpreter's files, a few devices and its work directory

KEPT = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "dev", "proc"}
PROJECT = Path(__file__).resolve().parents[1]


def _need_minimal_root(layers) -> None:
    if "minimal-root" not in layers:
        pytest.skip("this machine gives no minimal root (needs root and mount namespaces)")


def test_root_holds_only_the_interpreter_and_the_work_directory(kernel_layers):
    _need_minimal_root(kernel_layers)
    src = (
        "import os, sys\n"
        "sandbox_report((os.getcwd(), sys.base_prefix))\n"
        "for d in ('/', '/etc', '/dev', os.path.dirname(os.getcwd())):\n"
        "    sandbox_report(sorted(os.listdir(d)))\n"
    )
    r = run_python(src, QUICK, guard=False)
    assert r.status == "ok", r
    (cwd, prefix), root, etc, dev, above_work = r.reports
    allowed = KEPT | {cwd.split("/")[1], prefix.split("/")[1]}
    assert set(root) <= allowed and "usr" in root, root
    assert set(etc) <= {"ld.so.cache"}
    assert dev == sorted(
        n for n in ("null", "random", "urandom", "zero") if os.path.exists(f"/dev/{n}")
    )
    assert above_work == ["work"]  # not the run's output and report files beside it


def _planted() -> Path:
    """A file any uid could read on the host (pytest's ``tmp_path`` is root's alone)."""
    d = Path(tempfile.mkdtemp(prefix="selfplay-planted-"))
    d.chmod(0o755)
    f = d / "answers.txt"
    f.write_text("the answers")
    f.chmod(0o644)
    return f


@pytest.mark.parametrize("guard", [True, False], ids=["guard", "kernel-only"])
@pytest.mark.parametrize("what", ["planted-file", "humaneval", "etc-passwd", "project-src", "runs"])
def test_host_files_are_out_of_sight(what, guard, kernel_layers):
    """Reading is not the guard's business: the minimal root is what keeps these away."""
    _need_minimal_root(kernel_layers)
    from .shared_data import HUMANEVAL

    planted = _planted() if what == "planted-file" else None
    path = {
        "planted-file": planted,
        "humaneval": HUMANEVAL,
        "etc-passwd": Path("/etc/passwd"),
        "project-src": PROJECT / "src",
        "runs": PROJECT / "runs",
    }[what]
    try:
        if not path.exists():
            pytest.skip(f"{path} is not on this machine")
        src = (
            f"import os\np = {str(path)!r}\n"
            "for look in (os.listdir, lambda p: open(p, 'rb').read(10), os.stat):\n"
            "    try:\n        look(p)\n        sandbox_report('seen')\n"
            "    except OSError as e:\n        sandbox_report(type(e).__name__)\n"
        )
        r = run_python(src, QUICK, guard=guard)
        assert r.status == "ok" and r.reports == ("FileNotFoundError",) * 3, r
    finally:
        if planted is not None:
            shutil.rmtree(planted.parent)


def test_the_control_sees_a_planted_file_without_the_jail():
    """Without the mount namespace the same program reads the planted file: the check can fail."""
    planted = _planted()
    try:
        src = f"sandbox_report(open({str(planted)!r}).read())"
        r = run_python(src, QUICK, jail=False)
        assert r.status == "ok" and r.reports == ("the answers",), r
    finally:
        shutil.rmtree(planted.parent)


STDLIB = "json, collections, fractions, decimal, re, math, itertools, heapq, hashlib, string"


@pytest.mark.parametrize("guard", [True, False], ids=["guard", "kernel-only"])
def test_stdlib_imports_work_in_the_minimal_root(guard):
    """Modules imported after the root changed, extension modules and the libraries they load
    (``_hashlib``: libcrypto; ``_ctypes``: libffi; ``_decimal``: libmpdec) included."""
    src = (
        f"import {STDLIB}\n"
        "sandbox_report(json.loads('[1, 2]') + [str(fractions.Fraction(1, 3))])\n"
        "sandbox_report(str(decimal.Decimal(1) / 7)[:6] + hashlib.sha256(b'x').hexdigest()[:6])\n"
        "sandbox_report(heapq.nsmallest(2, itertools.chain([5, 3], [4])))\n"
        "import datetime, statistics, functools, bisect, random, unicodedata, zlib, bz2, lzma\n"
        "sandbox_report(unicodedata.name('a') + str(random.Random(1).random())[:4])\n"
    )
    if not guard:  # the guard refuses ctypes
        src += "import ctypes\nsandbox_report(ctypes.sizeof(ctypes.c_int))\n"
    r = run_python(src, QUICK, guard=guard)
    assert r.status == "ok", r
    assert r.reports[:4] == (
        [1, 2, "1/3"],
        "0.1428" + hashlib.sha256(b"x").hexdigest()[:6],
        [3, 4],
        "LATIN SMALL LETTER A0.13",
    )
    if not guard:
        assert r.reports[4] == 4


# ------------------------------------------------------------------------------------------------
# Garbage in


@pytest.mark.parametrize(
    "source, why",
    [
        (os.urandom(2 << 20), ""),
        ("print(1)\x00print(2)", ""),
        (b"print('\xff\xfe')", "SyntaxError"),
        ("x = '\udcff'", ""),
        ("(" * 100_000, ""),
        ("x = 1\n" * 200_000 + "print('end')", ""),
    ],
    ids=["2MB-random", "nul", "non-utf8", "lone-surrogate", "deep-nesting", "long-ok"],
)
def test_garbage_gets_a_status(source, why):
    start = time.monotonic()
    r = run_python(source, Limits(timeout=20.0))
    assert r.status in ("ok", "exit"), r
    assert r.status == "ok" or why in r.why
    assert time.monotonic() - start < 20


def test_report_built_to_collide_hashes_is_skipped_quickly():
    """A set of 30,000 ints that all hash to 0 (multiples of 2**61 - 1) takes
    ``ast.literal_eval`` seconds (each insertion compares with every member before it); the
    reader refuses it at once, and the records around it still arrive."""
    src = (
        "sandbox_report('before')\n"
        "m = 2 ** 61 - 1\n"
        "class Line:\n"
        "    def __repr__(self):  # what sandbox_report writes\n"
        "        return '{' + ','.join(str(k * m) for k in range(1, 30_000)) + '}'\n"
        "sandbox_report(Line())\n"
        "sandbox_report({'after': {1, 2}, 'd': {m: 1, 2 * m: 2}})\n"
    )
    r = run_python(src, QUICK)
    assert r.status == "ok", r
    m = 2**61 - 1
    assert r.reports == ("before", {"after": {1, 2}, "d": {m: 1, 2 * m: 2}})
    from selfplay.sandbox import read_literal

    for line in (
        "{" + ",".join(str(k * m) for k in range(1, 30_000)) + "}",
        "{" + ",".join(f"{k * m}: 0" for k in range(1, 30_000)) + "}",
    ):
        start = time.monotonic()
        with pytest.raises(ValueError, match="one hash"):
            read_literal(line)
        assert time.monotonic() - start < 1


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "-2.5",
        "+3",
        "(1+2j)",
        "-1-2j",
        "1e400",
        "'s'",
        "b'\\x00'",
        "None",
        "True",
        "...",
        "[]",
        "()",
        "(1,)",
        "{}",
        "set()",
        "{1, 2}",
        "{'a': {'b': [1, (2, -3)]}}",
        "  7",
        "{-1, -2}",
        "{1: 2, 1: 3}",
        "{**x}",
        "1+1",
        "2j+1",
        "--1",
        "-(1)",
        "f'x'",
        "[1,",
        "{[1]}",
        "set([1])",
        "x",
        "a.b",
        "1 if 1 else 2",
        "[" * 300 + "]" * 300,
        "[1, 2][0]",
        "frozenset()",
    ],
)
def test_read_literal_reads_what_literal_eval_reads(text):
    from selfplay.sandbox import read_literal

    try:
        want = ("ok", repr(ast.literal_eval(text)))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        want = ("error",)
    try:
        got = ("ok", repr(read_literal(text)))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        got = ("error",)
    assert got == want


def test_binary_output_is_decoded_leniently():
    r = run_python("import sys\nsys.stdout.buffer.write(b'\\xff\\x00ok' * 1000)", QUICK)
    assert r.status == "ok" and r.stdout.endswith("ok") and len(r.stdout) <= Limits().tail_bytes


# ------------------------------------------------------------------------------------------------
# As a normal user (root drops to one to run this), without the uid layer


AS_USER = """
import os, sys, time
sys.path.insert(0, {src!r})
from selfplay.sandbox import Limits, run_python
r = run_python("import os\\nsandbox_report(os.getuid())", Limits(timeout=5))
print("layers", r.status, r.layers, r.reports)
bomb = "import os, time\\nwhile True:\\n    try:\\n        os.fork()\\n    except OSError:\\n        time.sleep(0.01)"
r = run_python(bomb, Limits(timeout=2, processes=8), guard=False)
me = str(os.getpid())
left = [p for p in os.listdir("/proc") if p.isdigit() and p != me
        and os.stat("/proc/" + p).st_uid == os.getuid()
        and open(f"/proc/{{p}}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"]
print("bomb", r.status, left)
"""


def test_as_a_normal_user():
    """The layers without root: no uid of its own; RLIMIT_NPROC counted from the user's own
    processes; cleanup by the environment marker."""
    if not ROOT:
        pytest.skip("this test switches to a normal user, which needs root")
    src = str(Path(__file__).resolve().parents[1] / "src")
    python = next(
        (p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.path.isfile(p)), None
    )
    as_nobody = dict(
        user=65534, group=65534, extra_groups=[], cwd="/", env={"PATH": "/usr/bin:/bin"}
    )
    probe = python and subprocess.run(
        [python, "-c", f"import sys; sys.path.insert(0, {src!r}); import selfplay.sandbox"],
        capture_output=True,
        **as_nobody,
    )
    if not probe or probe.returncode != 0:
        pytest.skip("no system python that can import selfplay.sandbox as nobody")
    out = subprocess.run(
        [python, "-c", AS_USER.format(src=src)],
        capture_output=True,
        text=True,
        timeout=60,
        **as_nobody,
    )
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["layers"].startswith("ok") and "(65534,)" in lines["layers"], lines
    assert "'uid'" not in lines["layers"]
    assert lines["bomb"] == "timeout []", lines


def test_sandbox_python_is_usable(kernel_layers):
    from selfplay.sandbox import sandbox_python

    exe, ok = sandbox_python(65534 if ROOT else None)
    assert ok and os.path.isfile(exe) and shutil.which(exe)
    assert sys.version_info[:2] >= (3, 10)


# ------------------------------------------------------------------------------------------------
# The channel, the compiled-code cache, the start-up note


ECHO = (
    "import os\nr, w = sandbox_channel\n"
    "def read(n):\n    b = b''\n    while len(b) < n:\n        c = os.read(r, n - len(b))\n"
    "        if not c:\n            raise SystemExit(0)\n        b += c\n    return b\n"
    "while True:\n    data = read(int.from_bytes(read(4), 'big'))\n"
    "    if data == b'quit':\n        os._exit(0)\n"
    "    if data == b'sleep':\n        import time\n        time.sleep(30)\n"
    "    if data == b'big':\n        os.write(w, (10 << 20).to_bytes(4, 'big'))\n        continue\n"
    "    os.write(w, len(data).to_bytes(4, 'big') + data[::-1])\n"
)


@pytest.mark.parametrize("cache", [False, True], ids=["source", "compiled"])
def test_channel_round_trips_and_ends(cache):
    from selfplay.sandbox import ChannelClosed, ChannelError, ChannelTimeout, start_python

    with start_python(ECHO, QUICK, channel=True, cache=cache) as box:
        for payload in (b"abc", b"", os.urandom(200_000)):
            box.send(payload)
            assert box.receive() == payload[::-1]
        box.send(b"big")
        with pytest.raises(ChannelError, match="more than"):
            box.receive()
        assert box.finish().status == "ok"
    with start_python(ECHO, QUICK, channel=True, cache=cache) as box:
        box.send(b"quit")
        with pytest.raises(ChannelClosed):
            box.receive()
        assert box.finish().status == "ok"
    with start_python(ECHO, Limits(timeout=1.0), channel=True, cache=cache) as box:
        box.send(b"sleep")
        with pytest.raises(ChannelTimeout):
            box.receive()
        r = box.finish()
        assert r.status == "timeout", r


def test_missing_layers_are_said_once(capsys):
    from selfplay.sandbox import _announce, missing_layers

    layers = ("process", "rlimits", "guard")
    assert "seccomp" in missing_layers(layers) and "guard" not in missing_layers(layers)
    _announce(layers, wanted=True)
    _announce(layers, wanted=True)
    _announce(("process",), wanted=False)  # a run with layers switched off on purpose: no note
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "running without cgroup, netns" in err[0], err


def test_nothing_written_survives_the_run(kernel_layers):
    if "tmpfs" not in kernel_layers:
        pytest.skip("no private tmpfs here")
    src = WHOAMI + (
        "import os\nsandbox_report(os.getcwd())\nos.makedirs('a/b')\n"
        "open('a/b/f', 'w').write('x' * 100000)\n"
    )
    r = run_python(src, QUICK, guard=False)
    assert r.status == "ok", r
    cwd = r.reports[1]
    assert not os.path.exists(cwd) and not os.path.exists(os.path.dirname(cwd))


def test_first_runs_of_a_cached_program_from_many_threads():
    """The compiled program is made once, by the first of several threads that start it at once;
    the others wait for the whole file (never read it half-written)."""
    src = f"sandbox_report({time.monotonic_ns()})\n"  # a program no earlier test compiled
    from selfplay.sandbox import start_python

    def run(_):
        return start_python(src, QUICK, cache=True).finish()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, range(8)))
    assert [r.status for r in results] == ["ok"] * 8, [r.why for r in results]
    assert len({r.reports for r in results}) == 1
