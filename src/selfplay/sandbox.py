"""Run untrusted Python source in a separate, jailed process and say what became of it.

:func:`run_python` (or :func:`start_python`, to talk to the program while it runs) writes the
source to a fresh directory and runs it there in a new interpreter (``python -I -S -B``: no
environment variables, no site-packages, no bytecode files; the standard library only). As root,
that interpreter must be usable by an unprivileged uid: this one if it is, else the system's
``python3`` (see :func:`sandbox_python`). What contains the program, layer by layer (the names
are those of :attr:`SandboxResult.layers`):

=================  ==============================================================================
layer              what it does
=================  ==============================================================================
``process``        a child process in its own session and process group, with a scrubbed
                   environment (``PATH``, ``HOME``/``TMPDIR`` = the work directory, ``LANG``),
                   stdin from ``/dev/null`` and no inherited descriptors other than its output
                   files, the report file and (``channel=True``) its two pipes.
wall clock         the parent waits at most ``Limits.timeout`` seconds from the start, then kills.
``cgroup``         as root, where this process's cgroup v1 ``memory`` and ``pids`` hierarchies are
                   writable: a cgroup of each per run, joined before anything else, capping the
                   whole run's memory at ``memory_mb + disk_mb`` (its tmpfs counts) and its tasks
                   at ``processes``; the run's peak is in ``peak_memory_mb``; at the end every
                   task in it is killed and the cgroups removed.
``rlimits``        ``RLIMIT_AS`` (memory), ``RLIMIT_CPU``, ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``,
                   ``RLIMIT_NPROC`` and ``RLIMIT_CORE=0``, soft equal to hard.
``netns``          a new, empty network namespace: no interface but a down loopback. (As a normal
                   user together with a user namespace, where the kernel allows it.)
``ipcns``          as root: a new System V IPC / POSIX message-queue namespace, destroyed with the
                   run (a shared-memory segment cannot outlive it).
``minimal-root``   as root: a private mount namespace whose root (``pivot_root``) is a fresh tmpfs
                   holding only what the interpreter needs, bound from the host at the same paths:
                   ``/usr``, ``/lib``, ``/lib64``... (or the same links to them), the Python's own
                   prefix where it lies elsewhere, ``/etc/ld.so.cache``, ``/dev/null``, ``zero``,
                   ``random``, ``urandom``; and the work directory at its host path. Data sets,
                   run directories, the project, ``/etc``, ``/home``, the rest of ``/tmp`` are not
                   there to read. Without it the run sees the whole host tree.
``readonly-root``  as root: every mount of that root (or, without ``minimal-root``, of the host's
                   tree) is read-only (``mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY)``, Linux
                   5.12+): nothing outside the work directory can be written.
``tmpfs``          as root: the work directory is a tmpfs of ``disk_mb`` MiB and ``files`` inodes,
                   the only writable place; it vanishes with the namespace when the run ends.
``private-proc``   as root: a /proc of its own (``hidepid=invisible``): the program sees only its
                   own processes, not the parent's command line, environment or memory.
``uid``            as root: the child drops to a fresh, unused uid/gid (one per run, no
                   supplementary groups, ``PR_SET_NO_NEW_PRIVS``) owning only its work directory:
                   it cannot signal or ptrace anything else or write anyone's files; ``kill(-1)``
                   as that uid ends the run where there is no cgroup. A uid the kernel refuses
                   falls back to ``nobody`` (``uid-shared``); with no interpreter usable by
                   another uid the run stays root (no ``uid``) and the guard refuses ``fork``.
``seccomp``        a BPF filter (x86-64, aarch64): ``execve``/``execveat``, ``fork``/``vfork`` and
                   ``clone`` without ``CLONE_THREAD`` fail with ``EPERM`` (``clone3`` with
                   ``ENOSYS``, so that threads fall back to ``clone``), as do ``socket`` and
                   ``socketpair`` of any family but ``AF_UNIX`` (netlink, packet, vsock...: the
                   network namespace does not cover them all), ``ptrace``, ``process_vm_*``,
                   mounts, namespaces, ``bpf``, ``io_uring``, keyrings, module and kexec calls.
                   No other program can start, whatever module the program uses
                   (``_posixsubprocess``, ``posix_spawn``, ``ctypes``), and with no second
                   process the run's memory is the one process's ``RLIMIT_AS`` (plus its tmpfs).
``guard``          a ``sys.addaudithook`` prelude that refuses sockets, running programs, writes
                   outside the work directory, other processes' ``/proc`` entries, signals outside
                   the process group, importing ``ctypes``, ``gc`` object walks and
                   ``setrlimit``: a Python-level filter that explains a refusal in plain words,
                   not a boundary (introspection can get past it; the kernel layers hold then).
cleanup            at the end (also on timeout) the process group is killed, then every task of
                   the run's cgroups (or, without them, every process of its uid, or as a normal
                   user every process carrying the run's marker in its environment); the work
                   directory and cgroups are removed.
=================  ==============================================================================

A machine that cannot give a layer (not root; no mount namespaces; a kernel before 5.12; cgroup v2
only, or cgroups not writable; another architecture for seccomp) runs without it: the first run of
a process that lacks one prints one line to stderr naming what is missing, and ``layers`` of each
result says what was in force. Without the jail a program that defeats the guard can write
world-writable directories and, without seccomp, start other programs; as a normal user without
namespaces it can do what the user can, so run such setups only on data you trust or inside a
container. If the parent itself is killed, the child dies with it (``PR_SET_PDEATHSIG``).

The program may call ``sandbox_report(obj)`` (a global of the main module) to send records of
Python literals back; they arrive, in order, in :attr:`SandboxResult.reports` (read by
:func:`read_literal`, which refuses sets and dicts built to make hashing quadratic). The report
file is reachable by the program, so only the runner's own first record is to be trusted; a
caller that must not be fooled (the code verifier) judges in its own process, from what it asked
for.

Cost: a run is one interpreter start (about 15 ms of CPU; the runner and ``cache=True`` programs
are compiled once per process, not per run), plus about 2 ms of namespaces, mounts and filters,
plus waiting for the kernel to move the child into its cgroups and to let go of the host's tree
once the root has moved (an RCU grace period: 2-6 ms on a loaded 2-core machine, idle time);
runs are independent, so threads keep several going at once.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import hashlib
import inspect
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

SandboxStatus = Literal["ok", "exit", "timeout", "memory", "signal", "error"]

UID_BASE, UID_SPAN = 1_500_000_000, 500_000_000
"""Fresh uids are drawn from here (as root): far above any uid a distribution hands out."""
NOBODY = 65534
MAX_REPORT_BYTES = 1 << 20
MAX_REPORTS = 10_000
MAX_SAME_HASH = 32
"""Most members of one set or dict of a report that may share a hash (see :func:`read_literal`)."""
ENV_MARKER = "SELFPLAY_SANDBOX_RUN"
CGROUP_ROOT = "/sys/fs/cgroup"
MAX_FRAME_BYTES = 4 << 20
"""Largest frame a program may send on its channel."""


@dataclass(frozen=True)
class Limits:
    timeout: float = 10.0
    """Wall-clock seconds, from start to the kill (interpreter start-up included)."""
    memory_mb: int = 1024
    """Address-space limit (``RLIMIT_AS``) in MiB."""
    cpu_seconds: int | None = None
    """``RLIMIT_CPU`` of each process; ``None``: the wall-clock limit rounded up, plus one."""
    file_mb: int = 16
    """Largest file the program may write (``RLIMIT_FSIZE``), its stdout and stderr included."""
    open_files: int = 64
    """``RLIMIT_NOFILE``."""
    processes: int = 32
    """Processes and threads the run may have at once (``RLIMIT_NPROC``, and the cgroup's
    ``pids.max``); with seccomp only threads can be made."""
    disk_mb: int = 64
    """Size of the work directory's tmpfs, the only place the program can write (the jail)."""
    files: int = 1024
    """Files and directories the work directory's tmpfs can hold (its inodes)."""
    tail_bytes: int = 4096
    """How much of the end of stdout and stderr the result keeps."""


@dataclass(frozen=True)
class SandboxResult:
    status: SandboxStatus
    """``ok``: exit code 0; ``exit``: another exit code (an uncaught exception, ``sys.exit(n)``);
    ``timeout``: the wall-clock or CPU limit; ``memory``: a ``MemoryError`` reached the top (the
    address-space limit); ``signal``: killed by a signal it raised or the kernel sent (e.g.
    ``SIGSEGV``); ``error``: the sandbox itself could not start the program."""
    why: str = ""
    """One line for any status other than ``ok``."""
    exit_code: int | None = None
    signal: int | None = None
    stdout: str = ""
    """The last ``Limits.tail_bytes`` of stdout (decoded leniently)."""
    stderr: str = ""
    seconds: float = 0.0
    """Wall-clock time of the run, cleanup included."""
    cpu_seconds: float = 0.0
    reports: tuple[Any, ...] = field(default_factory=tuple)
    """Records the program sent with ``sandbox_report`` (Python literals: numbers, strings, None,
    lists, tuples, dicts), in order; records that do not read back as literals are dropped."""
    layers: tuple[str, ...] = field(default_factory=tuple)
    """The containment layers that were in force (see the module docstring)."""
    peak_memory_mb: float | None = None
    """The most memory the whole run held at once (its cgroup's peak; None without one)."""


# ------------------------------------------------------------------------------------------------
# The child. This function is not called here: its source is run by a fresh interpreter, so it
# uses only the standard library and imports everything it needs itself.


def _runner_main() -> None:  # pragma: no cover - runs in the sandboxed child
    import builtins
    import os
    import resource
    import sys

    # ``key=value`` arguments (no json: importing it costs a third of the start-up time)
    cfg = dict(a.split("=", 1) for a in sys.argv[1:])
    report_fd = int(cfg["report_fd"])
    layers = []

    def report(obj) -> None:
        os.write(report_fd, (repr(obj) + "\n").encode("utf-8", "backslashreplace"))

    def fail(why: str) -> None:
        os.write(2, f"sandbox setup failed: {why}\n".encode())
        os._exit(126)

    main_code = None
    if cfg["main_code"]:  # the program compiled once by the parent (a root-only file)
        import marshal

        with open(cfg["main_code"], "rb") as f:
            main_code = marshal.loads(f.read())

    # 0. The run's cgroups, first, so that everything it allocates is counted.
    for procs in filter(None, cfg["cgroups"].split(",")):
        try:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        except OSError as exc:
            fail(f"cannot join cgroup {procs}: {exc}")
    if cfg["cgroups"]:
        layers.append("cgroup")

    # 1. Limits, soft == hard: an unprivileged process cannot raise them again.
    for key, value in cfg.items():
        if key.startswith("RLIMIT_"):
            soft, hard = (int(v) for v in value.split(":"))
            try:
                resource.setrlimit(getattr(resource, key), (soft, hard))
            except (ValueError, OSError) as exc:
                fail(f"setrlimit {key}: {exc}")
    layers.append("rlimits")

    libc = load_libc()
    root = os.geteuid() == 0
    uid = int(cfg["uid"]) if root and cfg["uid"] else None
    clone_newns, clone_newnet, clone_newipc, clone_newuser = (
        0x20000,
        0x40000000,
        0x08000000,
        0x10000000,
    )
    work = os.getcwd()

    # 2. Namespaces. As root with the jail: a mount namespace whose root is a small read-only tree
    #    of the interpreter's files, a few devices, a /proc that shows only the run's own
    #    processes and a private, size-capped tmpfs as the work directory (at its host path);
    #    empty network and System V IPC namespaces. Where the small root cannot be built: the
    #    whole host tree, read-only, with the same tmpfs and /proc. Otherwise (a normal user) an
    #    empty network namespace where the kernel allows one.
    if root and cfg["jail"] == "1":
        flags = clone_newns | clone_newipc | (clone_newnet if cfg["netns"] == "1" else 0)
        files = {}
        for name in os.listdir("."):
            with open(name, "rb") as f:
                files[name] = f.read()
        if libc.unshare(flags) == 0:
            if flags & clone_newnet:
                layers.append("netns")
            layers.append("ipcns")
            ms_nosuid, ms_nodev, ms_noexec, ms_rec, ms_private = 2, 4, 8, 0x4000, 1 << 18
            if libc.mount(None, b"/", None, ms_rec | ms_private, None) == 0:
                # the new root is built on the work directory's path (its files are in memory)
                top = work if make_minimal_root(libc, work, work) else ""
                if top:
                    layers.append("minimal-root")

                class MountAttr(libc.Structure):
                    _fields_ = [(n, libc.u64) for n in ("set", "clr", "prop", "userns")]

                ro = MountAttr(1, 0, 0, 0)  # MOUNT_ATTR_RDONLY
                nr = {"x86_64": 442, "aarch64": 442}.get(os.uname().machine)
                at_fdcwd, at_recursive = -100, 0x8000
                tree = (top or "/").encode()
                if nr and libc.syscall(nr, at_fdcwd, tree, at_recursive, libc.byref(ro), 32) == 0:
                    layers.append("readonly-root")
                opts = f"size={cfg['disk']},nr_inodes={cfg['inodes']},mode=0700"
                mounted = libc.mount(
                    b"tmpfs", (top + work).encode(), b"tmpfs", ms_nosuid | ms_nodev, opts.encode()
                )
                if mounted == 0:
                    os.chdir(top + work)  # the old directory now lies under the tmpfs
                    for name, data in files.items():
                        with open(name, "wb") as f:
                            f.write(data)
                    layers.append("tmpfs")
                    if uid is not None:
                        for p in [".", *files]:
                            try:
                                os.chown(p, uid, uid)
                            except OSError:  # an unmapped uid: the fallback takes over below
                                uid = int(cfg["fallback_uid"])
                                break
                        for p in [".", *files]:
                            os.chown(p, uid, uid)
                elif top:
                    fail("cannot mount the work directory's tmpfs in the new root")
                proc_flags = ms_nosuid | ms_nodev | ms_noexec
                proc = (top + "/proc").encode()
                if libc.mount(b"proc", proc, b"proc", proc_flags, b"hidepid=invisible") == 0:
                    layers.append("private-proc")
                if top:
                    enter_root(libc, top, work)
    elif cfg["netns"] == "1" and libc.unshare(clone_newnet | (0 if root else clone_newuser)) == 0:
        layers.append("netns")

    # 3. As root: a fresh unprivileged uid that owns only the work directory.
    if uid is not None:
        try:
            os.setgroups([])
            try:
                os.setgid(uid)
                os.setuid(uid)
            except OSError:  # e.g. a user namespace that maps few uids
                uid = int(cfg["fallback_uid"])
                os.setgid(uid)
                os.setuid(uid)
        except OSError as exc:
            fail(f"cannot drop privileges to uid {uid}: {exc}")
        if os.getuid() == 0 or os.geteuid() == 0:
            fail("still root after setuid")
        layers.append("uid" if str(uid) == cfg["uid"] else "uid-shared")
    pr_set_pdeathsig, pr_set_no_new_privs = 1, 38
    libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0)
    libc.prctl(pr_set_pdeathsig, 9, 0, 0, 0)  # die with the parent (set after setuid clears it)
    if os.getppid() != int(cfg["parent_pid"]):
        os._exit(125)

    # 4. seccomp: no new programs, no processes (threads only), no namespace or mount changes.
    if cfg["seccomp"] == "1" and install_seccomp(libc):
        layers.append("seccomp")
    del libc
    for name in [m for m in sys.modules if m == "ctypes" or m.startswith(("ctypes.", "_ctypes"))]:
        del sys.modules[name]  # so that the guard sees (and refuses) any import of them

    # 5. The guard: an audit hook that refuses what a test program has no business doing.
    if cfg["guard"] == "1":
        install_guard(os.getcwd(), cfg["allow_fork"] == "1")
        layers.append("guard")

    report({"sandbox": "ready", "layers": layers, "uid": os.getuid()})
    if main_code is None:
        with open(cfg["main"], "rb") as f:
            source = f.read()
    main = {"__name__": "__main__", "__file__": "main.py", "__builtins__": builtins}
    main["sandbox_report"] = report
    if cfg["channel"]:
        main["sandbox_channel"] = tuple(int(fd) for fd in cfg["channel"].split(":"))
    memory_record = repr({"sandbox": "memory"}).encode() + b"\n"
    code = 0
    try:
        exec(main_code or compile(source, "main.py", "exec"), main)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except MemoryError:
        os.write(report_fd, memory_record)
        code = 1
    except BaseException as exc:
        try:
            import traceback

            # the program's frames only: the first one is this runner
            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        except MemoryError:
            os.write(report_fd, memory_record)
        except BaseException:
            os.write(2, f"{type(exc).__name__}\n".encode())
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib would cost start-up time in the child
            stream.flush()
        except BaseException:
            pass
    os._exit(code & 0xFF)


def load_libc():  # pragma: no cover - runs in the sandboxed child
    """The C library's functions the runner calls, through ``_ctypes`` alone: importing the
    ``ctypes`` package would cost a third of the interpreter's start-up. Calls are made as
    ``ctypes.CDLL`` makes them without prototypes (ints, bytes, ``None``, ``byref``)."""
    import _ctypes

    class CInt(_ctypes._SimpleCData):
        _type_ = "i"

    class Function(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = CInt

    class Libc:
        _handle = _ctypes.dlopen(None, 2)  # the running program (RTLD_NOW), libc included
        Structure, POINTER, byref = _ctypes.Structure, _ctypes.POINTER, _ctypes.byref

    for name, code in (("u8", "B"), ("u16", "H"), ("u32", "I"), ("u64", "Q")):
        setattr(Libc, name, type(name, (_ctypes._SimpleCData,), {"_type_": code}))
    for name in ("unshare", "mount", "umount2", "syscall", "prctl"):
        setattr(Libc, name, Function((name, Libc)))
    return Libc


def make_minimal_root(libc, top: str, work: str) -> bool:  # pragma: no cover - in the child
    """Mount a small tmpfs on ``top`` and build in it the tree a run sees (``minimal-root``): the
    interpreter's files (``/usr``, the top-level library directories, or the same links where
    they are links, ``sys.base_prefix`` where it lies elsewhere, ``/etc/ld.so.cache`` for
    ``dlopen``), bound from the host at their own paths; ``/dev/null``, ``zero``, ``random`` and
    ``urandom`` bound onto empty files; empty directories for ``/proc`` and the work directory
    (at its host path). The caller makes it read-only, mounts the work directory and /proc, and
    enters it (:func:`enter_root`). False, with nothing left mounted, where it cannot be built."""
    import os
    import sys

    ms_nosuid, ms_nodev, ms_bind, ms_rec, mnt_detach = 2, 4, 0x1000, 0x4000, 2
    links = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # into /usr, or directories
    keep = [p for p in (*links, "/usr") if os.path.lexists(p)]
    for prefix in (sys.base_prefix, sys.base_exec_prefix):  # a Python installed elsewhere
        if prefix != "/" and not any(prefix == p or prefix.startswith(p + "/") for p in keep):
            keep.append(prefix)
    if any(work == p or work.startswith(p + "/") for p in keep):
        return False  # the work directory inside a bound tree: it would be built in the host's
    devices = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")
    keep += [p for p in ("/etc/ld.so.cache", *devices) if os.path.exists(p)]
    opts = b"size=1m,nr_inodes=1024,mode=0755"
    if libc.mount(b"tmpfs", top.encode(), b"tmpfs", ms_nosuid | ms_nodev, opts) != 0:
        return False
    umask = os.umask(0o022)
    try:
        os.makedirs(top + work)
        os.mkdir(top + "/proc")
        for p in keep:
            dst = top + p
            if p in links and os.path.islink(p):  # /bin -> usr/bin: the same link
                os.symlink(os.readlink(p), dst)
                continue
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.isdir(p):
                os.mkdir(dst)
            else:
                os.close(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            if libc.mount(p.encode(), dst.encode(), None, ms_bind | ms_rec, None) != 0:
                raise OSError(f"cannot bind {p}")
    except OSError:
        libc.umount2(top.encode(), mnt_detach)
        return False
    finally:
        os.umask(umask)
    return True


def enter_root(libc, top: str, work: str) -> None:  # pragma: no cover - runs in the child
    """Make the tree mounted on ``top`` this process's root (``pivot_root``, then the old root
    unmounted: nothing of the host's tree is left to reach) and go to the work directory. Where
    the root cannot be pivoted (a root on the initramfs) ``chroot`` into it: the old tree then
    stays mounted but has no path, and the dropped uid and seccomp leave no way back."""
    import os

    mnt_detach = 2
    os.chdir(top)
    nr = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine)
    if nr and libc.syscall(nr, b".", b".") == 0:  # the old root is now stacked on the new one
        libc.umount2(b".", mnt_detach)
    else:
        os.chroot(".")
    os.chdir("/")
    os.chdir(work)


def install_seccomp(libc) -> bool:  # pragma: no cover - runs in the sandboxed child
    """A seccomp filter (classic BPF, built here: no library needed): ``execve``, ``fork``,
    ``vfork`` and ``clone`` without ``CLONE_THREAD`` fail with ``EPERM`` (threads still work;
    ``clone3`` fails with ``ENOSYS`` so that the C library falls back to ``clone``, whose flags
    a filter can read), ``socket`` and ``socketpair`` of any family but ``AF_UNIX`` fail with
    ``EPERM`` (the network namespace does not cover every family: netlink, packet, vsock...),
    and so do ``ptrace``, mounts, namespaces, ``bpf``, ``io_uring``, keyrings, file handles
    (``open_by_handle_at`` reaches files by inode, past any mount) and the like.
    False where this machine's architecture is not known here."""
    import os

    machine = os.uname().machine
    if machine == "x86_64":
        arch, clone, clone3, socket, socketpair = 0xC000003E, 56, 435, 41, 53
        deny = [57, 58, 59, 322, 101, 310, 311, 165, 166, 155, 161, 272, 308, 321, 298, 323]
        deny += [248, 249, 250, 246, 320, 175, 313, 176, 425, 426, 427, 428, 429, 430, 431]
        deny += [432, 433, 442, 163, 167, 168, 169, 135, 179, 139, 134, 312, 303, 304]
    elif machine == "aarch64":
        arch, clone, clone3, socket, socketpair = 0xC00000B7, 220, 435, 198, 199
        deny = [221, 281, 117, 270, 271, 40, 39, 41, 51, 97, 268, 280, 241, 282, 217, 218]
        deny += [219, 104, 294, 105, 273, 106, 425, 426, 427, 428, 429, 430, 431, 432, 433]
        deny += [442, 89, 224, 225, 142, 92, 60, 272, 264, 265]
    else:
        return False
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, kill, errno = 0x7FFF0000, 0x80000000, 0x00050000
    eperm, enosys, clone_thread, af_unix = 1, 38, 0x10000, 1
    prog = [
        (ld, 0, 0, 4),  # seccomp_data.arch
        (jeq, 1, 0, arch),
        (ret, 0, 0, kill),
        (ld, 0, 0, 0),  # seccomp_data.nr
        (jge, 0, 1, 0x40000000),  # x32 system calls
        (ret, 0, 0, errno | eperm),
        (jeq, 0, 4, clone),
        (ld, 0, 0, 16),  # the low half of clone's flags
        (jset, 0, 1, clone_thread),
        (ret, 0, 0, allow),
        (ret, 0, 0, errno | eperm),
        (ld, 0, 0, 0),
        (jeq, 0, 1, clone3),
        (ret, 0, 0, errno | enosys),
        (jeq, 1, 0, socket),
        (jeq, 0, 4, socketpair),  # neither: on to the list below, with nr still loaded
        (ld, 0, 0, 16),  # the domain (an int: the low half of args[0])
        (jeq, 0, 1, af_unix),
        (ret, 0, 0, allow),
        (ret, 0, 0, errno | eperm),
    ]
    for nr in deny:
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, errno | eperm)]
    prog.append((ret, 0, 0, allow))

    class SockFilter(libc.Structure):
        _fields_ = [("code", libc.u16), ("jt", libc.u8), ("jf", libc.u8), ("k", libc.u32)]

    class SockFprog(libc.Structure):
        _fields_ = [("len", libc.u16), ("filter", libc.POINTER(SockFilter))]

    filters = (SockFilter * len(prog))(*[SockFilter(*ins) for ins in prog])
    fprog = SockFprog(len(prog), filters)
    pr_set_seccomp, seccomp_mode_filter = 22, 2
    return libc.prctl(pr_set_seccomp, seccomp_mode_filter, libc.byref(fprog), 0, 0) == 0


def install_guard(root_dir: str, allow_fork: bool) -> None:  # pragma: no cover - in the child
    """The audit hook of the ``guard`` layer (see the module docstring)."""
    import os
    import sys

    realpath, join, isabs = os.path.realpath, os.path.join, os.path.isabs
    root = realpath(root_dir)
    prefix = root.rstrip(os.sep) + os.sep
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    getpid, getpgid, readlink, fsdecode = os.getpid, os.getpgid, os.readlink, os.fsdecode
    af_unix = 1  # socket.AF_UNIX on Linux (importing socket costs start-up time)

    refused = {
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.system",
        "subprocess.Popen",
        "socket.connect",
        "socket.bind",
        "socket.sendto",
        "socket.sendmsg",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
        "ctypes.dlopen",
        "ctypes.dlsym",
        "ctypes.dlsym/handle",
        "ctypes.call_function",
        "ctypes.cdata",
        "ctypes.cdata/buffer",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "resource.setrlimit",
        "resource.prlimit",
    }
    if not allow_fork:
        refused |= {"os.fork", "os.forkpty"}
    # event -> (index of a path argument, index of its dir_fd argument or None)
    path_events = {
        "os.remove": ((0, 1),),
        "os.rmdir": ((0, 1),),
        "os.mkdir": ((0, 2),),
        "os.rename": ((0, 2), (1, 3)),
        "os.link": ((0, 2), (1, 3)),
        "os.symlink": ((1, 2),),
        "os.chmod": ((0, 2),),
        "os.chown": ((0, 3),),
        "os.truncate": ((0, None),),
        "os.utime": ((0, 3),),
        "os.setxattr": ((0, None),),
        "os.removexattr": ((0, None),),
        "os.mkfifo": ((0, 2),),
        "os.mknod": ((0, 3),),
    }
    modules = ("ctypes", "_ctypes")
    watched = frozenset(
        refused | set(path_events) | {"open", "import", "os.kill", "os.killpg", "socket.__new__"}
    )

    def other_process(path) -> bool:
        """``/proc/<pid>/...`` of a process other than this one (its environment, memory...)."""
        if isinstance(path, int):
            return False
        p = fsdecode(path)
        if "proc" not in p:
            return False
        parts = realpath(p).split("/")
        return (
            len(parts) > 2
            and parts[1] == "proc"
            and parts[2].isdigit()
            and int(parts[2]) != getpid()
        )

    def inside(path, dir_fd=None) -> bool:
        if isinstance(path, int):
            return True  # an already open descriptor
        p = fsdecode(path)
        if isinstance(dir_fd, int) and dir_fd >= 0 and not isabs(p):  # AT_FDCWD shows as -1
            p = join(readlink(f"/proc/self/fd/{dir_fd}"), p)
        full = realpath(p)
        return full == root or full.startswith(prefix) or full == "/dev/null"

    def refuse(event: str, what: str = "") -> None:
        raise PermissionError(f"sandbox: {event} is not allowed{what}")

    def hook(event: str, args: tuple) -> None:
        if event not in watched:
            return
        if event in refused:
            refuse(event)
        if event == "import":
            if args[0].startswith(modules):
                refuse(f"importing {args[0]}")
        elif event == "open":
            path, _mode, flags = args
            if flags & write_flags and not inside(path):
                refuse("writing", f" outside the work directory ({fsdecode(path)[:100]})")
            if other_process(path):
                refuse("reading another process's /proc entry", f" ({fsdecode(path)[:100]})")
        elif event in path_events:
            for i, j in path_events[event]:
                if i < len(args) and args[i] is not None:
                    fd = args[j] if j is not None and j < len(args) else None
                    if not inside(args[i], fd):
                        refuse(event, f" outside the work directory ({fsdecode(args[i])[:100]})")
        elif event == "os.kill":
            pid, sig = args
            own = getpgid(0)
            if sig == 0 or pid in (0, getpid()) or pid == -own:
                return
            try:
                ok = pid > 0 and getpgid(pid) == own
            except OSError:
                ok = False
            if not ok:
                refuse("os.kill", f" for a process outside the sandbox ({pid})")
        elif event == "os.killpg":
            if args[0] not in (0, getpgid(0)):
                refuse("os.killpg", f" for a process group outside the sandbox ({args[0]})")
        elif event == "socket.__new__" and args[1] != af_unix:
            refuse("opening a network socket")

    sys.addaudithook(hook)


_COMPILE = (
    "import marshal, os, sys\n"
    "code = compile(sys.stdin.buffer.read(), sys.argv[1], 'exec')\n"
    "with open(sys.argv[2] + '.part', 'wb') as f:\n"
    "    marshal.dump(code, f)\n"
    "os.replace(sys.argv[2] + '.part', sys.argv[2])\n"
)
_compile_lock = threading.Lock()


@cache
def _code_dir() -> str:
    d = tempfile.mkdtemp(prefix="selfplay-sandbox-code-")  # 0700, root's (or this user's)
    atexit.register(shutil.rmtree, d, True)
    return d


def compiled_code(python: str, source: str, filename: str) -> str | None:
    """A file holding ``source`` compiled (and marshalled) by ``python``, made once per process,
    readable only by this user: a run loads it instead of compiling the source again (which
    costs more CPU than starting the interpreter). None if ``python`` cannot make it."""
    with _compile_lock:  # runs start from many threads; the first one makes the file
        return _compiled_code(python, source, filename)


@cache
def _compiled_code(python: str, source: str, filename: str) -> str | None:
    path = os.path.join(_code_dir(), hashlib.sha256(f"{python}\0{source}".encode()).hexdigest())
    try:
        r = subprocess.run(
            [python, "-I", "-S", "-B", "-c", _COMPILE, filename, path],
            input=source.encode("utf-8", "surrogatepass"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return path if r.returncode == 0 and os.path.isfile(path) else None


def _runner_command(python: str) -> list[str]:
    path = compiled_code(python, _runner_source(), "sandbox-runner")
    if path is None:
        return [python, "-I", "-S", "-B", "-c", _runner_source()]
    boot = f"import marshal\nwith open({path!r}, 'rb') as f:\n    exec(marshal.loads(f.read()))\n"
    return [python, "-I", "-S", "-B", "-c", boot]


@cache
def _runner_source() -> str:
    return "\n\n".join(
        [
            inspect.getsource(install_guard),
            inspect.getsource(load_libc),
            inspect.getsource(make_minimal_root),
            inspect.getsource(enter_root),
            inspect.getsource(install_seccomp),
            inspect.getsource(_runner_main),
            "_runner_main()\n",
        ]
    )


# ------------------------------------------------------------------------------------------------
# The parent


@cache
def sandbox_python(as_uid: int | None) -> tuple[str, bool]:
    """An interpreter the sandbox can run, and whether it works for ``as_uid``.

    As root the child drops to an unprivileged uid, so the interpreter and its standard library
    must be readable by anyone (a Python under a private home, such as pyenv's under ``/root``, is
    not); the first of this interpreter and the system's ``python3`` that starts as ``nobody`` is
    used. ``(sys.executable, False)`` if none does: the run then keeps root and forks are refused.
    """
    if as_uid is None:
        return sys.executable, True
    v = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, os.path.realpath(sys.executable)]
    candidates += [f"/usr/bin/python{v}", f"/usr/local/bin/python{v}", "/usr/bin/python3"]
    probe = "import _ctypes, marshal, resource, traceback"
    for exe in dict.fromkeys(candidates):
        if not os.path.isfile(exe):
            continue
        try:
            r = subprocess.run(
                [exe, "-I", "-S", "-B", "-c", probe],
                user=as_uid,
                group=as_uid,
                extra_groups=[],
                cwd="/",
                env={},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if r.returncode == 0:
            return exe, True
    return sys.executable, False


def _rlimits(limits: Limits, as_root: bool) -> dict[str, str]:
    cpu = limits.cpu_seconds or math.ceil(limits.timeout) + 1
    nproc = limits.processes
    if not as_root:  # a normal user's RLIMIT_NPROC counts all of the user's processes
        nproc += _count_tasks(os.getuid())
    mb = 1 << 20
    return {
        "RLIMIT_AS": f"{limits.memory_mb * mb}:{limits.memory_mb * mb}",
        "RLIMIT_CPU": f"{cpu}:{cpu + 1}",  # SIGXCPU at the soft limit, SIGKILL a second later
        "RLIMIT_FSIZE": f"{limits.file_mb * mb}:{limits.file_mb * mb}",
        "RLIMIT_NOFILE": f"{limits.open_files}:{limits.open_files}",
        "RLIMIT_NPROC": f"{nproc}:{nproc}",
        "RLIMIT_CORE": "0:0",
    }


def _count_tasks(uid: int) -> int:
    """Processes and threads of ``uid`` (what ``RLIMIT_NPROC`` counts)."""
    n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                status = f.read()
        except OSError:
            continue
        fields = dict(line.split(b":", 1) for line in status.splitlines() if b":" in line)
        if int(fields.get(b"Uid", b"-1 ").split()[0]) == uid:
            n += int(fields.get(b"Threads", b"1").strip())
    return n


def _fresh_uid() -> int:
    return UID_BASE + secrets.randbelow(UID_SPAN)


def _tail(path: str, n: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _read_reports(path: str) -> list:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_REPORT_BYTES)
    except OSError:
        return []
    out = []
    for line in data.splitlines()[:MAX_REPORTS]:
        try:
            rec = read_literal(line.decode("utf-8", "replace"))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        out.append(rec)
    return out


def read_literal(text: str) -> Any:
    """The value of a Python literal, as ``ast.literal_eval`` reads it (numbers, strings, bytes,
    ``None``, ``True``/``False``, ``...``, tuples, lists, sets, dicts, ``-x``, ``a+bj``), in time
    linear in its length: a set or dict in which more than :data:`MAX_SAME_HASH` members share
    one hash (``{k * (2**61 - 1) for k in ...}`` all hash to 0, and each insertion would compare
    against all before it) raises ``ValueError`` instead: the report file is the program's to
    write, so its lines are hostile input.

    >>> read_literal("{'a': [1, -2.5, (3+4j)], 'b': {b'x'}, 'c': None}")
    {'a': [1, -2.5, (3+4j)], 'b': {b'x'}, 'c': None}
    """
    return _literal(ast.parse(text.lstrip(" \t"), mode="eval").body)


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Set):
        return set(_few_collisions([_literal(e) for e in node.elts]))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "set":
        if node.args or node.keywords:
            raise ValueError("set() with arguments")
        return set()
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):  # {**x}
            raise ValueError("not a literal: **")
        keys = _few_collisions([_literal(k) for k in node.keys])
        return dict(zip(keys, [_literal(v) for v in node.values], strict=True))
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        left, right = _signed_number(node.left), _number(node.right)
        if isinstance(left, (int, float)) and isinstance(right, complex):
            return left + right if isinstance(node.op, ast.Add) else left - right
        raise ValueError("not a literal: an operation")
    return _signed_number(node)


def _number(node: ast.AST) -> int | float | complex:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, complex):
        return node.value
    raise ValueError(f"not a literal: {type(node).__name__}")


def _signed_number(node: ast.AST) -> int | float | complex:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        value = _number(node.operand)
        return value if isinstance(node.op, ast.UAdd) else -value
    return _number(node)


def _few_collisions(members: list) -> list:
    """``members``, unless more than :data:`MAX_SAME_HASH` of them share a hash (``TypeError``
    for an unhashable one, as a set would raise)."""
    counts: dict[int, int] = {}
    for m in members:
        h = hash(m)
        counts[h] = counts.get(h, 0) + 1
        if counts[h] > MAX_SAME_HASH:
            raise ValueError(f"more than {MAX_SAME_HASH} members with one hash")
    return members


def _wait(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait for ``proc`` to exit without reaping it; False on timeout."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd: poll
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return True
            time.sleep(0.002)
        return False
    try:
        return bool(select.select([fd], [], [], max(0.0, timeout))[0])
    finally:
        os.close(fd)


def _kill_everything(
    pgid: int, uid: int | None, marker: str, cgroups: _Cgroups | None = None
) -> None:
    """SIGKILL the run's process group and every process that left it: those in its cgroups
    (which a process cannot leave), else those of its uid or with its marker."""
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)
    if cgroups is not None:
        cgroups.kill_all()
        return
    kill = shutil.which("kill", path="/usr/bin:/bin")
    if uid is not None and kill:
        # kill(-1) from a process of the run's uid reaches every process of that uid at once,
        # including daemons that started their own session, and a fork cannot slip past it.
        # (``-9 -1``: procps' kill(1) rejects ``-s KILL -- -1``.)
        subprocess.run(
            [kill, "-9", "-1"],
            user=uid,
            group=uid,
            extra_groups=[],
            env={},
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    for _ in range(50):  # then whatever is left: no kill(1), or a normal user's run
        left = _run_processes(uid, marker)
        if not left:
            return
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _run_processes(uid: int | None, marker: str) -> list[int]:
    """Live (not zombie) processes of a run: those of its uid, or those whose environment carries
    its marker (a zombie's environment reads empty)."""
    needle = f"{ENV_MARKER}={marker}".encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            if uid is not None:
                if os.stat(f"/proc/{name}").st_uid != uid:
                    continue
                with open(f"/proc/{name}/stat", "rb") as f:
                    if f.read().rsplit(b")", 1)[-1].split()[0] in (b"Z", b"X"):
                        continue
            else:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if needle not in f.read().split(b"\0"):
                        continue
        except (OSError, IndexError):
            continue
        out.append(int(name))
    return out


# ------------------------------------------------------------------------------------------------
# cgroups: a memory and a process cap for the whole run (cgroup v1 controllers, where writable)


@cache
def _cgroup_parents() -> dict[str, str]:
    """``controller -> directory`` under which this process may create the runs' cgroups: its
    own cgroup of the v1 ``memory`` and ``pids`` hierarchies, where both are writable (as root).
    Empty where either is missing."""
    found = {}
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(","):
            if controller in ("memory", "pids"):
                d = os.path.join(CGROUP_ROOT, controller, parts[2].lstrip("/"))
                if os.path.isdir(d) and os.access(d, os.W_OK):
                    found[controller] = d
    return found if len(found) == 2 else {}


@dataclass
class _Cgroups:
    dirs: dict[str, str]

    @classmethod
    def create(cls, name: str, memory_bytes: int, processes: int) -> _Cgroups | None:
        parents = _cgroup_parents()
        if not parents:
            return None
        made = cls({})
        try:
            for controller, parent in parents.items():
                d = os.path.join(parent, name)
                os.mkdir(d)
                made.dirs[controller] = d
            mem = made.dirs["memory"]
            _write(os.path.join(mem, "memory.limit_in_bytes"), memory_bytes)
            swap = os.path.join(mem, "memory.memsw.limit_in_bytes")
            if os.path.exists(swap):
                with contextlib.suppress(OSError):
                    _write(swap, memory_bytes)
            _write(os.path.join(made.dirs["pids"], "pids.max"), processes)
        except OSError:
            made.remove()
            return None
        return made

    def procs_files(self) -> str:
        return ",".join(os.path.join(d, "cgroup.procs") for d in self.dirs.values())

    def memory_stats(self) -> tuple[float | None, bool]:
        """Peak memory of the run in MiB, and whether the cgroup's OOM killer struck."""
        mem = self.dirs.get("memory")
        if not mem:
            return None, False
        try:
            peak = int(_read(os.path.join(mem, "memory.max_usage_in_bytes"))) / (1 << 20)
            oom = _read(os.path.join(mem, "memory.oom_control"))
            killed = any(
                ln.split()[:1] == ["oom_kill"] and ln.split()[1] != "0" for ln in oom.splitlines()
            )
        except (OSError, ValueError, IndexError):
            return None, False
        return peak, killed

    def kill_all(self) -> None:
        for _ in range(50):
            pids = []
            for d in self.dirs.values():
                with contextlib.suppress(OSError, ValueError):
                    pids += [int(p) for p in _read(os.path.join(d, "cgroup.procs")).split()]
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.001)

    def remove(self) -> None:
        for d in self.dirs.values():
            for attempt in range(100):  # busy for a moment while the last process is reaped
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.001 * (attempt + 1))


def _write(path: str, value: int) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


# ------------------------------------------------------------------------------------------------
# Running a program


class ChannelClosed(Exception):
    """The program closed its end of the channel (it exited or was killed)."""


class ChannelTimeout(Exception):
    """The run's wall-clock limit passed while waiting for the program."""


class ChannelError(Exception):
    """The program sent something that is not a frame of the protocol (too big, cut short)."""


class Sandbox:
    """A started sandboxed program (:func:`start_python`); :meth:`finish` waits for it, kills
    what is left and returns its :class:`SandboxResult`. With ``channel=True`` the program gets
    ``sandbox_channel = (read_fd, write_fd)`` and the parent talks to it with :meth:`send` and
    :meth:`receive`: length-prefixed frames (4 bytes, big-endian, then the payload)."""

    def __init__(self, limits: Limits, uid: int | None, wanted: bool) -> None:
        # uid: the run's own (as root); wanted: every layer was asked for (a note if one lacks)
        self.limits, self.uid, self.wanted = limits, uid, wanted
        self.start = time.monotonic()
        self.deadline = self.start + limits.timeout
        self.marker = secrets.token_hex(8)
        self.proc: subprocess.Popen | None = None
        self.to_child: int | None = None
        self.from_child: int | None = None
        self.cgroups: _Cgroups | None = None
        self.out_path = self.err_path = self.rep_path = ""
        self.result: SandboxResult | None = None
        self._cleanup: list = []

    def send(self, payload: bytes) -> None:
        if self.to_child is None:
            raise ChannelClosed("no channel")
        data = len(payload).to_bytes(4, "big") + payload
        try:
            while data:
                n = os.write(self.to_child, data)
                data = data[n:]
        except (BrokenPipeError, OSError) as exc:
            raise ChannelClosed(str(exc)) from None

    def receive(self, max_bytes: int = MAX_FRAME_BYTES) -> bytes:
        head = self._read_exactly(4)
        n = int.from_bytes(head, "big")
        if n > max_bytes:
            raise ChannelError(f"a reply of {n} bytes (more than {max_bytes})")
        return self._read_exactly(n)

    def _read_exactly(self, n: int) -> bytes:
        if self.from_child is None:
            raise ChannelClosed("no channel")
        parts, left = [], n
        while left:
            wait = self.deadline - time.monotonic()
            if wait <= 0 or not select.select([self.from_child], [], [], wait)[0]:
                raise ChannelTimeout(f"wall-clock limit of {self.limits.timeout:g}s")
            chunk = os.read(self.from_child, min(left, 1 << 20))
            if not chunk:
                raise ChannelClosed("the program closed the channel")
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def close_channel(self) -> None:
        """Stop talking to the program: it sees EOF, and EPIPE if it writes."""
        for fd in (self.to_child, self.from_child):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.to_child = self.from_child = None

    def finish(self) -> SandboxResult:
        if self.result is not None:
            return self.result
        try:
            self.result = self._finish()
        finally:
            self.close()
        return self.result

    def _finish(self) -> SandboxResult:
        proc = self.proc
        self.close_channel()  # EOF: a program serving requests may stop now
        finished = _wait(proc, self.deadline - time.monotonic())
        # the uid a run actually used comes from its ready record (it may have fallen back)
        reports = _read_reports(self.rep_path)
        ready = reports[0] if reports and _is_runner(reports[0], "ready") else None
        kill_uid = self.uid if ready and ready.get("uid") == self.uid else None
        _kill_everything(proc.pid, kill_uid, self.marker, self.cgroups)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        peak, oom = self.cgroups.memory_stats() if self.cgroups else (None, False)
        reports = _read_reports(self.rep_path)
        result = _result(
            self.limits,
            finished,
            proc.returncode,
            usage.ru_utime + usage.ru_stime,
            reports,
            _tail(self.out_path, self.limits.tail_bytes),
            _tail(self.err_path, self.limits.tail_bytes),
            _since(self.start),
            oom,
            peak,
        )
        _announce(result.layers, self.wanted)
        return result

    def close(self) -> None:
        """Kill whatever is left and remove every trace of the run (also after an error)."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            _kill_everything(proc.pid, self.uid, self.marker, self.cgroups)
            proc.wait()
        self.close_channel()
        for undo in reversed(self._cleanup):
            undo()
        self._cleanup.clear()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start_python(
    source: str | bytes,
    limits: Limits = Limits(),  # noqa: B008 - frozen
    *,
    files: dict[str, str | bytes] | None = None,
    channel: bool = False,
    guard: bool = True,
    netns: bool = True,
    jail: bool = True,
    seccomp: bool = True,
    cache: bool = False,
) -> Sandbox:
    """Start ``source`` as the main module of a sandboxed interpreter (see :func:`run_python`).
    ``cache``: compile ``source`` once per process (for a program run many times). Raises only
    for bad ``files`` names; a program that cannot start gets an ``error`` result from
    :meth:`Sandbox.finish`."""
    as_root = os.geteuid() == 0
    python, can_drop = sandbox_python(NOBODY if as_root else None)
    uid = _fresh_uid() if as_root and can_drop else None
    box = Sandbox(limits, uid, wanted=guard and netns and jail and seccomp)
    marker = box.marker
    base = tempfile.mkdtemp(prefix="selfplay-sandbox-")
    box._cleanup.append(lambda: shutil.rmtree(base, onerror=_force_remove))
    work = os.path.join(base, "work")
    try:
        # ``base`` (root's, 0711) holds the output and report files, which the child reaches only
        # through descriptors; ``work`` is the program's own directory (a tmpfs in the jail).
        os.chmod(base, 0o711)
        os.mkdir(work, 0o700)
        main_code = None
        if cache and isinstance(source, str):
            main_code = compiled_code(python, source, "main.py")
        program = {} if main_code else {"main.py": source}
        for name, content in {**program, **(files or {})}.items():
            if not name or "/" in name or name in (".", ".."):
                raise ValueError(f"sandbox files must be plain names, not {name!r}")
            data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
            with open(os.path.join(work, name), "wb") as f:
                f.write(data)
        if uid is not None:
            for dirpath, _, names in os.walk(work):
                for p in [dirpath] + [os.path.join(dirpath, n) for n in names]:
                    os.chown(p, uid, uid)
        if as_root and jail:
            box.cgroups = _Cgroups.create(
                f"selfplay-{marker}",
                (limits.memory_mb + limits.disk_mb) << 20,
                limits.processes,
            )
            if box.cgroups:
                box._cleanup.append(box.cgroups.remove)
        box.out_path, box.err_path, box.rep_path = (
            os.path.join(base, n) for n in ("stdout", "stderr", "report")
        )
        cfg = {
            **_rlimits(limits, as_root),
            "netns": int(netns),
            "jail": int(jail),
            "seccomp": int(seccomp),
            "disk": limits.disk_mb << 20,
            "inodes": limits.files,
            "cgroups": box.cgroups.procs_files() if box.cgroups else "",
            "uid": uid or "",
            "fallback_uid": NOBODY,
            "parent_pid": os.getpid(),
            "guard": int(guard),
            "allow_fork": int(not as_root or uid is not None),
            "main": "main.py",
            "main_code": main_code or "",
            "channel": "",
        }
        env = {"PATH": "/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8"}
        env[ENV_MARKER] = marker
        child_fds = []
        if channel:
            req_r, req_w = os.pipe()
            rep_r, rep_w = os.pipe()
            box.to_child, box.from_child = req_w, rep_r
            child_fds = [req_r, rep_w]
            cfg["channel"] = f"{req_r}:{rep_w}"
        private = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            with (
                open(os.open(box.out_path, private, 0o600), "wb") as out,
                open(os.open(box.err_path, private, 0o600), "wb") as err,
                open(os.open(box.rep_path, private, 0o600), "wb") as rep,
            ):
                cfg["report_fd"] = rep.fileno()
                try:
                    box.proc = subprocess.Popen(
                        _runner_command(python) + [f"{k}={v}" for k, v in cfg.items()],
                        cwd=work,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=err,
                        pass_fds=(rep.fileno(), *child_fds),
                        start_new_session=True,
                    )
                except OSError as exc:
                    box.result = SandboxResult(
                        "error", f"cannot start {python}: {exc}", seconds=_since(box.start)
                    )
        finally:
            for fd in child_fds:
                os.close(fd)
    except BaseException:
        box.close()
        raise
    if box.result is not None:
        box.close()
    return box


def run_python(
    source: str | bytes,
    limits: Limits = Limits(),  # noqa: B008 - frozen
    *,
    files: dict[str, str | bytes] | None = None,
    guard: bool = True,
    netns: bool = True,
    jail: bool = True,
    seccomp: bool = True,
) -> SandboxResult:
    """Run ``source`` as the main module of a sandboxed interpreter; never raises for anything the
    program does. ``files`` (plain names) are written into its work directory first; ``guard``,
    ``netns``, ``jail`` (mount/IPC namespaces and the cgroup) and ``seccomp`` switch those layers
    (off only to test the layers beneath them)."""
    box = start_python(
        source, limits, files=files, guard=guard, netns=netns, jail=jail, seccomp=seccomp
    )
    return box.finish()


_announced: set[tuple[str, ...]] = set()
_ALL_LAYERS = (
    "process",
    "cgroup",
    "rlimits",
    "netns",
    "ipcns",
    "minimal-root",
    "readonly-root",
    "tmpfs",
    "private-proc",
    "uid",
    "seccomp",
    "guard",
)


def missing_layers(layers: tuple[str, ...]) -> tuple[str, ...]:
    """The layers of a full sandbox (root, namespaces, cgroups, seccomp) that a run lacked."""
    return tuple(name for name in _ALL_LAYERS if name not in layers)


def _announce(layers: tuple[str, ...], wanted: bool) -> None:
    """Once per process: say which layers this machine could not give (one line, stderr)."""
    if not wanted or "process" not in layers:
        return
    missing = missing_layers(layers)
    if missing and missing not in _announced:
        _announced.add(missing)
        print(
            f"selfplay sandbox: running without {', '.join(missing)} on this machine "
            "(see selfplay.sandbox for what each layer contains)",
            file=sys.stderr,
        )


def _result(
    limits: Limits,
    finished: bool,
    returncode: int,
    cpu: float,
    reports: list[dict],
    stdout: str,
    stderr: str,
    seconds: float,
    oom_killed: bool = False,
    peak_mb: float | None = None,
) -> SandboxResult:
    ready = bool(reports) and _is_runner(reports[0], "ready")
    layers = tuple(reports[0].get("layers", ())) if ready else ()
    program_reports = tuple(r for r in reports[1:] if not _is_runner(r, "memory"))
    exit_code = returncode if returncode >= 0 else None
    sig = -returncode if returncode < 0 else None
    common = dict(
        exit_code=exit_code,
        signal=sig,
        stdout=stdout,
        stderr=stderr,
        seconds=seconds,
        cpu_seconds=cpu,
        reports=program_reports,
        layers=("process", *layers),
        peak_memory_mb=peak_mb,
    )
    last = _last_line(stderr)
    if not finished:
        before = "" if ready else " (before the program started)"
        return SandboxResult(
            "timeout", f"wall-clock limit of {limits.timeout:g}s{before}", **common
        )
    if not ready:
        return SandboxResult(
            "error", (last or "the sandboxed interpreter did not start")[:200], **common
        )
    cpu_limit = limits.cpu_seconds or math.ceil(limits.timeout) + 1
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= cpu_limit - 0.05):
        return SandboxResult("timeout", f"CPU limit of {cpu_limit}s", **common)
    memory = any(_is_runner(r, "memory") for r in reports[1:]) or oom_killed
    if memory or (sig is not None and ("MemoryError" in stderr or "Cannot allocate" in stderr)):
        return SandboxResult("memory", f"memory limit of {limits.memory_mb} MiB", **common)
    if sig is not None:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return SandboxResult("signal", f"killed by {name}", **common)
    if exit_code:
        return SandboxResult("exit", f"exit code {exit_code}: {last}"[:200], **common)
    return SandboxResult("ok", **common)


def _is_runner(record: Any, kind: str) -> bool:
    """A record the runner itself wrote (``ready`` first, ``memory`` when a MemoryError got out)."""
    return isinstance(record, dict) and record.get("sandbox") == kind


def _last_line(text: str) -> str:
    lines = [s for s in text.strip().splitlines() if s.strip()]
    return lines[-1].strip() if lines else ""


def _since(start: float) -> float:
    return time.monotonic() - start


def _force_remove(func, path, _exc) -> None:
    """rmtree's error handler: a program may leave directories without write permission."""
    try:
        os.chmod(os.path.dirname(path), 0o700)
        func(path)
    except OSError:
        pass
