"""Red team: hostile completions that try to be judged ``correct`` without solving the problem, or
to escape or outlast the sandbox. Every one must get a verdict other than ``correct``, and after
it nothing of the run may be left: no process of its uid, no file of its uid in the world-writable
directories, no System V IPC object, no cgroup; where the machine has cgroups, the whole run's
memory stayed under its cap. Controls (the gold solution, a correct solution that writes a file
in its own directory) show that the harness can pass a program, so each check can fail.

A second part attacks the sandbox with its Python guard off, so that the kernel layers (jail,
seccomp, cgroups, uid) are what holds.
"""

from __future__ import annotations

import ast
import gzip
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

import selfplay.tasks.code.judge as judge_module
from selfplay.sandbox import Limits, run_python, start_python
from selfplay.tasks.code import CodeTask

ROOT = os.geteuid() == 0
SHARED_DIRS = ("/tmp", "/dev/shm", "/var/tmp", "/run/lock")

MEAN = {
    "task_id": "Red/0",
    "prompt": 'import math\n\n\ndef mean(xs: list) -> float:\n    """The mean of xs."""\n',
    "canonical_solution": "    return sum(xs) / len(xs)\n",
    "test": (
        "import math\n\n\ndef check(candidate):\n"
        "    assert candidate([1.0, 2.0]) == 1.5\n"
        "    assert abs(candidate([1.0, 2.0, 4.0]) - 7 / 3) < 1e-6\n"
        "    assert math.isclose(candidate([2.0]), 2.0)\n"
        "    assert candidate([5.0, 7.0]) > 5.9\n"
        "    assert not candidate([0.0])\n"
        "    assert candidate([3.0]) in (3.0, 3)\n"
    ),
    "entry_point": "mean",
}
TASK = CodeTask.from_records([MEAN], timeout=3.0, memory_mb=256)
PROBLEM = TASK.problems[0]


def body(code: str) -> str:
    """A completion: ``code`` as the function's body."""
    return "".join(f"    {line}\n" for line in code.strip("\n").splitlines())


# ------------------------------------------------------------------------------------------------
# Containment: what the run leaves behind


@pytest.fixture
def boxes(monkeypatch):
    """Every sandbox the verifier starts during a test."""
    started = []
    real = judge_module.start_python

    def spy(*args, **kwargs):
        box = real(*args, **kwargs)
        started.append(box)
        return box

    monkeypatch.setattr(judge_module, "start_python", spy)
    return started


def _owned_by(uid: int) -> list[str]:
    found = []
    for d in SHARED_DIRS:
        for root, dirs, names in os.walk(d):
            if root.count("/") - d.count("/") > 2:
                dirs.clear()
            for n in dirs + names:
                p = os.path.join(root, n)
                try:
                    if os.lstat(p).st_uid == uid:
                        found.append(p)
                except OSError:
                    pass
    return found


def _live_processes(uid: int) -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("State", "").strip().startswith(("Z", "X")):
            continue
        if int(fields["Uid"].split()[0]) == uid:
            out.append(int(pid))
    return out


def _ipc_objects(uid: int) -> list[str]:
    out = []
    for kind in ("shm", "msg", "sem"):
        try:
            lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        except OSError:
            continue
        header = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[0].split()
        col = header.index("uid")
        out += [f"{kind}: {ln}" for ln in lines if int(ln.split()[col]) == uid]
    return out


def assert_contained(box) -> None:
    result = box.result
    assert result is not None, "the run was not finished"
    if box.uid is not None:
        deadline = time.monotonic() + 3
        while (left := _live_processes(box.uid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not left, f"processes of the run still alive: {left}"
        assert not _owned_by(box.uid), f"files of the run left: {_owned_by(box.uid)}"
        assert not _ipc_objects(box.uid)
    assert not os.path.exists(os.path.dirname(box.out_path)), "the run directory was not removed"
    if box.cgroups is not None:
        assert not any(os.path.exists(d) for d in box.cgroups.dirs.values())
    if result.peak_memory_mb is not None:
        cap = box.limits.memory_mb + box.limits.disk_mb
        assert result.peak_memory_mb <= cap, result.peak_memory_mb


def judged(boxes, completion: str, task: CodeTask = TASK):
    v = task.verify(PROBLEM, completion)
    assert boxes, "no sandbox was started"
    for box in boxes:
        assert_contained(box)
    return v


# ------------------------------------------------------------------------------------------------
# The controls: the harness can say correct


def test_control_gold_is_correct(boxes):
    v = judged(boxes, MEAN["canonical_solution"])
    assert v.status == "correct" and v.valid and len(v.steps) == 6, v
    assert "uid" not in boxes[0].result.layers or ROOT


def test_control_a_file_in_its_own_directory_is_allowed_and_gone(boxes):
    v = judged(boxes, body("open('scratch.txt', 'w').write('x' * 1000)\nreturn sum(xs) / len(xs)"))
    assert v.status == "correct", v


# ------------------------------------------------------------------------------------------------
# Hostile completions: never correct

CHANNEL_FDS = (
    "import os\n"
    "def _fds():\n"
    "    return sorted(int(n) for n in os.listdir('/proc/self/fd') if int(n) > 2)\n"
)
FRAME = "def _frame(s):\n    b = s.encode()\n    return len(b).to_bytes(4, 'big') + b\n"

HACKS = {
    # forging the driver's records and exiting early
    "forge-replies-and-exit": CHANNEL_FDS
    + FRAME
    + "def mean(xs):\n"
    + body(
        "for fd in _fds():\n"
        "    try:\n"
        "        os.write(fd, _frame('{\"v\":1.5}') * 50)\n"
        "    except OSError:\n"
        "        pass\n"
        "os._exit(0)"
    ),
    "forge-done-record": "def mean(xs):\n"
    + body(
        "import __main__, os\n"
        "r = getattr(__main__, 'sandbox_report', None) or (lambda x: None)\n"
        "r({'event': 'done', 'runs': [1] * 6, 'fails': [0] * 6})\n"
        "os._exit(0)"
    ),
    "hijack-the-channel-at-import": CHANNEL_FDS
    + FRAME
    + "import marshal\n"
    + "fds = _fds()\n"
    + "for fd in fds:\n"
    + "    try:\n"
    + "        os.write(fd, _frame('{\"ready\":1}'))\n"
    + "        os.write(fd, _frame('{\"v\":true}') * 10)\n"
    + "    except OSError:\n"
    + "        pass\n"
    + "def mean(xs):\n    return 0\n",
    "thread-floods-the-channel": CHANNEL_FDS
    + FRAME
    + "import threading\n"
    + "def _flood():\n"
    + "    for fd in _fds():\n"
    + "        try:\n"
    + "            os.write(fd, _frame('{\"v\":1.5}') * 1000)\n"
    + "        except OSError:\n"
    + "            pass\n"
    + "threading.Thread(target=_flood, daemon=True).start()\n"
    + "def mean(xs):\n    return 1.5\n",
    "print-fake-results": "def mean(xs):\n"
    + body(
        "print('PASSED 6/6', {'event': 'done', 'runs': [1] * 6, 'fails': [0] * 6})\n"
        "import sys\nsys.stderr.write('ok\\n')\nreturn 1.5"
    ),
    # objects whose equality always holds
    "mock-ANY": body("from unittest.mock import ANY\nreturn ANY"),
    "int-subclass-eq-is-ne": body(
        "class I(float):\n    __eq__ = float.__ne__\n    __bool__ = lambda s: False\n"
        "    __lt__ = __gt__ = float.__ne__\nreturn I(123.0)"
    ),
    "eq-compiled-as-system-file": body(
        "ns = {}\n"
        "exec(compile('def eq(s, o):\\n    return True\\n', '/usr/lib/python3/x.py', 'exec'), ns)\n"
        "C = type('C', (), {'__eq__': ns['eq'], '__ne__': ns['eq'], '__lt__': ns['eq'],\n"
        "    '__gt__': ns['eq'], '__sub__': lambda s, o: 0.0, '__abs__': lambda s: 0.0,\n"
        "    '__bool__': lambda s: False, '__float__': lambda s: 2.0})\n"
        "return C()"
    ),
    "list-subclass": body(
        "class L(list):\n    def __eq__(self, o):\n        return True\nreturn L([1.5])"
    ),
    "nan-for-tolerance": body("return float('nan')"),
    "generator": body("return (x for x in xs)"),
    "deeply-nested": body("v = []\nfor _ in range(100000):\n    v = [v]\nreturn v"),
    "huge-reply": body("return 'x' * (6 << 20)"),
    "self-referencing-list": body("v = []\nv.append(v)\nreturn v"),
    # patching the harness through frames, closures, gc
    "patch-recorder-via-frames": body(
        "import sys\nf = sys._getframe(1)\n"
        "while f is not None:\n"
        "    for d in (f.f_locals, f.f_globals):\n"
        "        for k, v in list(d.items()):\n"
        "            if hasattr(v, 'fails'):\n"
        "                v.fails = [0] * 99\n"
        "            if isinstance(v, dict) and '==' in v:\n"
        "                v['=='] = lambda a, b: True\n"
        "    f = f.f_back\n"
        "return 0.0"
    ),
    "patch-closures": body(
        "import sys\nf = sys._getframe(1)\n"
        "while f is not None:\n"
        "    for v in list(f.f_locals.values()) + list(f.f_globals.values()):\n"
        "        for cell in getattr(v, '__closure__', None) or ():\n"
        "            if callable(cell.cell_contents):\n"
        "                try:\n"
        "                    cell.cell_contents = lambda *a, **k: None\n"
        "                except Exception:\n"
        "                    pass\n"
        "    f = f.f_back\n"
        "return 0.0"
    ),
    "patch-via-gc": body(
        "import gc\n"
        "for o in gc.get_objects():\n"
        "    if isinstance(o, dict) and '==' in o:\n"
        "        o['=='] = lambda a, b: True\n"
        "return 0.0"
    ),
    # reading the expected answers
    "read-test-file-in-cwd": body(
        "import os, re\n"
        "for root, _, names in os.walk('.'):\n"
        "    for n in names:\n"
        "        text = open(os.path.join(root, n), errors='replace').read()\n"
        "        m = re.search(r'== ([0-9.]+)', text)\n"
        "        if m:\n"
        "            return float(m.group(1))\n"
        "return 0.0"
    ),
    "read-caller-constants": body(
        "import sys\nf = sys._getframe(1)\nconsts = []\n"
        "while f is not None:\n"
        "    consts += [c for c in f.f_code.co_consts if isinstance(c, float)]\n"
        "    f = f.f_back\n"
        "return consts[0] if consts else -1.0"
    ),
    "read-answers-planted-outside": body(
        "import json\nrec = json.loads(open('{planted}').read())\nns = {}\n"
        "exec(rec['prompt'] + rec['canonical_solution'], ns)\n"
        "return ns[rec['entry_point']](xs)"
    ),
    "search-tmp-for-answers": body(
        "import json, os\n"
        "for d in os.listdir('/tmp'):\n"
        "    p = os.path.join('/tmp', d, 'answers.json')\n"
        "    if os.path.isfile(p):\n"
        "        rec, ns = json.load(open(p)), {}\n"
        "        exec(rec['prompt'] + rec['canonical_solution'], ns)\n"
        "        return ns[rec['entry_point']](xs)\n"
        "return 0.0"
    ),
    "read-parent-proc": body(
        "import os\nppid = os.getppid()\n"
        "for name in ('cmdline', 'environ', 'mem', 'maps'):\n"
        "    open(f'/proc/{ppid}/{name}', 'rb').read(100)\n"
        "return 1.5"
    ),
    "scan-all-proc": body(
        "import os\n"
        "pids = [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]\n"
        "if pids:\n"
        "    raise RuntimeError(f'sees {len(pids)} other processes')\n"
        "return 0.0"
    ),
    # running another interpreter, forking
    "posixsubprocess": body(
        "import _posixsubprocess, os, sys\n"
        "r, w = os.pipe()\n"
        "_posixsubprocess.fork_exec(['/usr/bin/python3', '-c', 'open(\"/tmp/redteam-ps\", \"w\")'],\n"
        "    [b'/usr/bin/python3'], True, (w,), None, None, -1, -1, -1, -1, -1, -1, r, w,\n"
        "    True, False, -1, None, None, None, -1, None, True)\n"
        "return 1.5"
    ),
    "posix-spawn": body(
        "import os\nos.posix_spawn('/usr/bin/python3', ['python3', '-c', 'pass'], {})\nreturn 1.5"
    ),
    "fork-and-exec": body(
        "import os\npid = os.fork()\nif pid == 0:\n"
        "    os.execv('/usr/bin/python3', ['python3', '-c', 'open(\"/tmp/redteam-fe\", \"w\")'])\n"
        "return 1.5"
    ),
    "ctypes-syscall": body("import ctypes\nctypes.CDLL(None).syscall(57)\nreturn 1.5"),
    "fork-bomb": body(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    ),
    "threads-bomb": body(
        "import threading, time\nwhile True:\n    try:\n"
        "        threading.Thread(target=time.sleep, args=(60,)).start()\n"
        "    except RuntimeError:\n        time.sleep(0.01)"
    ),
    # files outside, disk, memory
    "write-tmp": body("open('/tmp/redteam-left', 'w').write('x')\nreturn 1.5"),
    "write-dev-shm": body("open('/dev/shm/redteam-left', 'w').write('x')\nreturn 1.5"),
    "a-gigabyte-in-files": body(
        "block = b'x' * (16 << 20)\n"
        "for i in range(64):\n    open(f'f{i}', 'wb').write(block)\nreturn 1.5"
    ),
    "twenty-thousand-files": body(
        "import os\nos.mkdir('d')\nfor i in range(20000):\n    open(f'd/{i}', 'w').close()\nreturn 1.5"
    ),
    "memory-bomb": body("x = bytearray(1 << 33)\nreturn 1.5"),
    # exits and exceptions
    "sys-exit-at-import": "import sys\nsys.exit(0)\n",
    "sys-exit-in-call": body("import sys\nsys.exit(0)"),
    "os-exit-in-call": body("import os\nos._exit(0)"),
    "raise-systemexit-in-call": body("raise SystemExit('all tests passed')"),
    "keyboard-interrupt": body("raise KeyboardInterrupt"),
    "stop-iteration": body("raise StopIteration"),
    "redefine-check-and-candidate": "def check(candidate):\n    return True\n"
    "candidate = check\ndef mean(xs):\n    return 0\n",
    "monkeypatch-builtins": body(
        "import builtins\n"
        "builtins.abs = lambda x: 0\nbuiltins.len = lambda x: 1\nbuiltins.sum = lambda x: 1.5\n"
        "builtins.isinstance = lambda *a: True\nbuiltins.type = lambda *a: float\n"
        "return sum(xs) / len(xs) if len(xs) > 99 else 1.5"
    ),
    # other processes, the network
    "kill-the-parent": body("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nreturn 1.5"),
    "stop-the-parent-group": body(
        "import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGSTOP)\nreturn 1.5"
    ),
    "kill-everything": body("import os, signal\nos.kill(-1, signal.SIGKILL)\nreturn 1.5"),
    "network": body(
        "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\nreturn 1.5"
    ),
    "sleep-past-the-limit": body("import time\ntime.sleep(30)\nreturn 1.5"),
}


@pytest.fixture(scope="module")
def listener():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


@pytest.fixture(scope="module")
def planted():
    """MEAN's gold solution in a file any uid may read, outside the work directory (as a data set
    or a run directory would be): a hack that finds it is correct unless the root hides it."""
    d = Path(tempfile.mkdtemp(prefix="selfplay-planted-"))
    d.chmod(0o755)
    f = d / "answers.json"
    f.write_text(json.dumps(MEAN))
    f.chmod(0o644)
    yield f
    shutil.rmtree(d)


def test_at_least_thirty_kinds():
    assert len(HACKS) >= 30


@pytest.mark.parametrize("kind", list(HACKS))
def test_hack_is_not_correct(kind, boxes, listener, planted):
    completion = HACKS[kind].replace("{port}", str(listener)).replace("{planted}", str(planted))
    before = {d: set(os.listdir(d)) for d in ("/tmp", "/dev/shm") if os.path.isdir(d)}
    v = judged(boxes, completion)
    assert v.status != "correct" and not v.valid, v
    assert v.why and "\n" not in v.why
    for name in ("redteam-left", "redteam-ps", "redteam-fe"):
        for d in ("/tmp", "/dev/shm"):
            assert not os.path.exists(os.path.join(d, name)), f"{d}/{name} left behind"
    for d, names in before.items():
        new = {n for n in set(os.listdir(d)) - names if n.startswith("redteam")}
        assert not new, new
    assert os.getpid() > 0


def test_layers_hold_on_this_machine(boxes):
    """As root on a machine with namespaces, seccomp and cgroups, every layer is in force (so the
    kernel-level checks below test what they say)."""
    judged(boxes, MEAN["canonical_solution"])
    layers = set(boxes[0].result.layers)
    if not ROOT:
        pytest.skip("the jail needs root")
    kernel = {"minimal-root", "readonly-root", "tmpfs", "private-proc", "ipcns", "netns", "uid"}
    assert kernel | {"seccomp"} <= layers


def test_the_planted_answers_pass_where_they_can_be_read(planted):
    """The control of the hacks that read ``planted``: without the mount namespace the same code
    reads the file and its answer is right, so their checks can fail."""
    src = f"import json\nrec = json.loads(open({str(planted)!r}).read())\nns = {{}}\n"
    src += "exec(rec['prompt'] + rec['canonical_solution'], ns)\n"
    src += "sandbox_report(ns[rec['entry_point']]([1.0, 2.0]))\n"
    r = run_python(src, Limits(timeout=3.0), jail=False)
    assert r.status == "ok" and r.reports == (1.5,), r


def test_dataset_canonical_solutions_are_out_of_reach(boxes):
    """A completion that opens HumanEval itself (readable by anyone on the host) and returns what
    the problem's canonical solution returns: the data set is not in the run's root."""
    from .shared_data import HUMANEVAL

    if not HUMANEVAL.is_file():
        pytest.skip(f"HumanEval is not at {HUMANEVAL}")
    if "minimal-root" not in run_python("pass").layers:
        pytest.skip("this machine gives no minimal root")
    with gzip.open(HUMANEVAL, "rt", encoding="utf-8") as f:
        record = json.loads(f.readline())
    task = CodeTask.from_records([record], timeout=5.0, memory_mb=256)
    args = ", ".join(a.arg for a in ast.parse(record["prompt"]).body[-1].args.args)
    cheat = body(
        f"import gzip, json\nfor line in gzip.open({str(HUMANEVAL)!r}, 'rt'):\n"
        "    rec = json.loads(line)\n"
        f"    if rec['task_id'] == {record['task_id']!r}:\n"
        "        ns = {}\n"
        "        exec(rec['prompt'] + rec['canonical_solution'], ns)\n"
        f"        return ns[rec['entry_point']]({args})\n"
    )
    v = task.verify(task.problems[0], cheat)
    assert v.status != "correct" and "FileNotFoundError" in v.why, v
    assert boxes
    for box in boxes:
        assert_contained(box)
    # the control: without the mount namespace the file is there to read
    r = run_python(f"sandbox_report(open({str(HUMANEVAL)!r}, 'rb').read(2))", jail=False)
    assert r.reports == (b"\x1f\x8b",), r


# ------------------------------------------------------------------------------------------------
# The sandbox with its Python guard off: the kernel layers alone

QUICK = Limits(timeout=3.0, memory_mb=256, processes=16)


def _kernel(layers: set[str], *needed: str) -> None:
    missing = [n for n in needed if n not in layers]
    if missing:
        pytest.skip(f"this machine gives no {', '.join(missing)}")


@pytest.fixture(scope="module")
def machine_layers() -> set[str]:
    return set(run_python("pass").layers)


SPAWNS = {
    "posixsubprocess": (
        "import _posixsubprocess, os\nr, w = os.pipe()\n"
        "_posixsubprocess.fork_exec(['/usr/bin/true'], [b'/usr/bin/true'], True, (w,), None,\n"
        "    None, -1, -1, -1, -1, -1, -1, r, w, True, False, -1, None, None, None, -1, None, True)\n"
    ),
    "posix_spawn": "import os\nos.posix_spawn('/usr/bin/true', ['true'], {})\n",
    "fork": "import os\nos.fork()\n",
    "subprocess": "import subprocess\nsubprocess.run(['/usr/bin/true'])\n",
    "ctypes-fork": "import ctypes\nif ctypes.CDLL(None).fork() < 0:\n    raise OSError('fork')\n",
}


@pytest.mark.parametrize("kind", list(SPAWNS))
def test_seccomp_stops_every_way_of_starting_a_process(kind, machine_layers):
    _kernel(machine_layers, "seccomp")
    src = SPAWNS[kind] + "sandbox_report('started')\n"
    r = run_python(src, QUICK, guard=False)
    assert r.status == "exit" and "started" not in r.reports, r
    assert (
        "Operation not permitted" in r.stderr
        or "PermissionError" in r.stderr
        or "OSError" in r.stderr
    )


def test_tree_is_read_only_and_tmpfs_is_capped(machine_layers):
    _kernel(machine_layers, "readonly-root", "tmpfs")
    src = (
        "import errno, os\n"
        "for p in ('/tmp/redteam-k', '/dev/shm/redteam-k', '/var/tmp/redteam-k'):\n"
        "    try:\n        open(p, 'w')\n        sandbox_report(('wrote', p))\n"
        "    except OSError as e:\n        sandbox_report((p, e.errno))\n"
        "n = 0\ntry:\n    while True:\n        open(f'f{n}', 'w').close()\n        n += 1\n"
        "except OSError as e:\n    sandbox_report(('files', n, e.errno))\n"
        "try:\n    for i in range(1000):\n        open(f'big{i}', 'wb').write(b'x' * (1 << 20))\n"
        "except OSError as e:\n    sandbox_report(('bytes', i, e.errno))\n"
    )
    r = run_python(src, Limits(timeout=10.0, disk_mb=8, files=100), guard=False)
    assert r.status == "ok", r
    wrote = [x for x in r.reports if x[0] == "wrote"]
    assert not wrote, wrote
    files = next(x for x in r.reports if x[0] == "files")
    assert files[1] < 100 and files[2] == 28  # ENOSPC
    size = next(x for x in r.reports if x[0] == "bytes")
    assert size[1] <= 8 and size[2] in (27, 28)  # EFBIG or ENOSPC
    for d in ("/tmp", "/dev/shm", "/var/tmp"):
        assert not os.path.exists(f"{d}/redteam-k")


def test_other_processes_are_invisible(machine_layers):
    _kernel(machine_layers, "private-proc")
    src = "import os\nsandbox_report([p for p in os.listdir('/proc') if p.isdigit()])\n"
    r = run_python(src, QUICK, guard=False)
    assert r.status == "ok", r
    assert r.reports[0] and all(int(p) != os.getpid() and int(p) != 1 for p in r.reports[0])


def test_sysv_shared_memory_does_not_outlive_the_run(machine_layers):
    _kernel(machine_layers, "ipcns")
    src = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "sandbox_report(libc.shmget(0, 1 << 20, 0o1666))\n"  # IPC_PRIVATE, IPC_CREAT
    )
    r = run_python(src, QUICK, guard=False)
    assert r.status == "ok" and r.reports[0] >= 0, r
    shm = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    assert not [ln for ln in shm if ln.split()[1] == str(r.reports[0]) and "1048576" in ln]


@pytest.mark.parametrize("call", ["unshare(0x20000)", "mount(b'none', b'/tmp', b'tmpfs', 0, None)"])
def test_namespaces_and_mounts_are_refused(call, machine_layers):
    _kernel(machine_layers, "seccomp")
    src = f"import ctypes\nsandbox_report(ctypes.CDLL(None).{call})\n"
    r = run_python(src, QUICK, guard=False)
    assert r.status == "ok" and r.reports == (-1,), r


def test_file_handles_are_refused(machine_layers):
    """``open_by_handle_at`` opens a file by its inode on a mounted filesystem, past the mount
    tree the run sees: refused (and ``name_to_handle_at``, which makes a handle)."""
    _kernel(machine_layers, "seccomp")
    src = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "buf = ctypes.create_string_buffer(136)\nctypes.memmove(buf, (128).to_bytes(4, 'little'), 4)\n"
        "mount_id = ctypes.c_int()\n"
        "made = libc.name_to_handle_at(-100, b'/usr', buf, ctypes.byref(mount_id), 0)\n"
        "e1 = ctypes.get_errno()\n"
        "opened = libc.syscall(304 if os.uname().machine == 'x86_64' else 265, -100, buf, 0)\n"
        "sandbox_report((made, e1, opened, ctypes.get_errno()))\n"
    )
    r = run_python(src, QUICK, guard=False)
    assert r.status == "ok" and r.reports[0] == (-1, 1, -1, 1), r  # EPERM both


FAMILIES = {"AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16, "AF_PACKET": 17, "AF_VSOCK": 40}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_seccomp_refuses_sockets_but_unix_ones(family, machine_layers):
    """The network namespace leaves some families working (netlink, vsock); seccomp refuses
    every family but ``AF_UNIX``, for ``socket`` and ``socketpair`` alike."""
    _kernel(machine_layers, "seccomp")
    src = (
        "import socket\nout = []\n"
        f"for make in (lambda: socket.socket({FAMILIES[family]}, socket.SOCK_RAW),\n"
        f"             lambda: socket.socket({FAMILIES[family]}, socket.SOCK_DGRAM),\n"
        f"             lambda: socket.socketpair({FAMILIES[family]})):\n"
        "    try:\n        make().close()\n        out.append('opened')\n"
        "    except OSError as e:\n        out.append(type(e).__name__)\n"
        "a, b = socket.socketpair()\na.send(b'unix')\nout.append(b.recv(4).decode())\n"
        "sandbox_report(out)\n"
    )
    box = start_python(src, QUICK, guard=False)
    r = box.finish()
    assert r.status == "ok" and r.reports == (["PermissionError"] * 3 + ["unix"],), r
    assert_contained(box)


def test_without_seccomp_other_families_do_open(machine_layers):
    """The control: with seccomp off the same program opens netlink and inet sockets (in its
    empty network namespace), so the check above can fail."""
    _kernel(machine_layers, "seccomp", "netns")
    src = (
        "import socket\n"
        "for f, t in ((16, socket.SOCK_RAW), (2, socket.SOCK_DGRAM)):\n"
        "    socket.socket(f, t).close()\n"
        "sandbox_report('opened')\n"
    )
    r = run_python(src, QUICK, guard=False, seccomp=False)
    assert r.status == "ok" and r.reports == ("opened",), r


def test_memory_of_many_children_is_capped_for_the_whole_run(machine_layers):
    """seccomp off, so that the program can fork: 8 children of 200 MB each under a 256 MiB
    limit; the cgroup keeps the whole run under memory + disk."""
    _kernel(machine_layers, "cgroup")
    src = (
        "import os, time\npids = []\n"
        "for _ in range(8):\n    pid = os.fork()\n"
        "    if pid == 0:\n        try:\n            x = bytearray(200 << 20)\n"
        "            for i in range(0, len(x), 4096):\n                x[i] = 1\n"
        "        except MemoryError:\n            pass\n"
        "        time.sleep(1)\n        os._exit(0)\n"
        "    pids.append(pid)\n"
        "for p in pids:\n    os.waitpid(p, 0)\n"
    )
    limits = Limits(timeout=10.0, memory_mb=256, disk_mb=16, processes=16)
    r = run_python(src, limits, guard=False, seccomp=False)
    assert r.peak_memory_mb is not None and r.peak_memory_mb <= 256 + 16, r
    assert r.peak_memory_mb > 100  # the children did allocate: the check can fail


def test_fork_bomb_is_capped_by_the_cgroup(machine_layers):
    _kernel(machine_layers, "cgroup")
    src = (
        "import os, time\nn = 0\n"
        "while n < 200:\n    try:\n        if os.fork() == 0:\n            time.sleep(30)\n"
        "        n += 1\n    except OSError:\n        break\n"
        "sandbox_report(n)\n"
    )
    r = run_python(src, Limits(timeout=5.0, processes=12), guard=False, seccomp=False)
    assert r.status == "ok" and r.reports[0] < 12, r
