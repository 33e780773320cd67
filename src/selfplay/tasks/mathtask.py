"""``math``: competition problems (MATH / MATH-500) judged by the last ``\\boxed{}`` answer.

Prompt and completion::

    Problem: What is $\\frac{1}{2} + \\frac{1}{4}$?
    Solution:  ->  We add ... so the sum is $\\boxed{\\frac{3}{4}}$.

The prompt is ``f"Problem: {problem}\\nSolution: "``; the gold chain is the dataset's reference
solution, which ends in its boxed answer.

The verdict reads the last complete ``\\boxed{...}`` (braces balanced) of the completion and asks
whether it equals the gold answer as math-verify would (``\\frac34``, ``0.75`` and ``3/4`` all do;
so do ``\\{1,2\\}`` and ``\\{2,1\\}``). There is one step, the final answer, ``ok`` iff it
matches, so :attr:`Verdict.valid` means "correct" here: the reasoning itself is not checked.

Most answers of a round never reach math-verify. :func:`fast_judge` decides answers that are the
gold's text after normalisation or the same number, and two plain numbers that differ; every
judgement is cached per (gold, normalised answer). What is left, :meth:`MathTask.verify_many` has
the workers read into *forms* (:mod:`selfplay.tasks.mathforms`: how math-verify parses an answer,
once per distinct text), and two forms settle most pairs: ``\\text{(C)}`` and ``C`` are the same
symbol, ``2\\sqrt{4}`` is not ``2\\sqrt{3}``, ``(1, 5)`` is no ``[1, 5)``, ``7`` no
``x^2 + 2x + 1``. Only the pairs still open are judged by math-verify, in batches on one worker
process per CPU. All of these paths are held against math-verify in the tests: they never say
"correct" where it says wrong, nor "different" where it says equal.

math-verify bounds its own time with ``signal.alarm``, which works only in the main thread and
cannot stop a long computation inside C code. Here it runs in a small persistent worker process
(:class:`MathJudge`) instead: the worker stops a slow comparison with its own timer, and a worker
that does not answer in time is killed and restarted, so a verdict always comes back within the
task's ``timeout``, from any thread. The worker's address space is limited to ``memory_mb``.

Difficulty is the MATH level (1-5).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
import unicodedata
import weakref
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any, ClassVar

from selfplay.tasks.answers import clip, last_boxed
from selfplay.tasks.base import Problem, bounded_verify, screen_completion
from selfplay.tasks.dataset import DatasetTask
from selfplay.tasks.mathforms import judge_forms, number_form
from selfplay.verify import Deadline, StepMark, Verdict

MAX_CHARS = 100_000
"""Completions longer than this are judged unparseable without being read."""
MAX_ANSWER_CHARS = 500
"""A boxed answer longer than this is not compared (MATH answers are a few dozen characters)."""
STARTUP_SECONDS = 120.0
"""How long a new worker may take to import math-verify (not counted against a verdict's time)."""
SOFT_FRACTION = 0.8
"""The worker interrupts a comparison at this fraction of the timeout; the parent kills it at 1.0."""
CACHE_SIZE = 4096
"""Judgements remembered per math-verify worker."""
PARSE_CACHE_SIZE = 4096
"""math-verify parses remembered per worker: an answer compared with several golds, or
described and then judged, is parsed once."""
TASK_CACHE_SIZE = 1 << 17
"""Judgements remembered per task, per (gold, answer) pair, and answers' forms: many samples box
the same answer."""
MAX_BATCH = 64
"""Requests sent to a worker at once."""
BATCHES_PER_WORKER = 2
"""A round's requests are cut into about this many batches per worker (fewer round trips, yet a
worker that finishes early takes another's batch)."""

_LEVEL_RE = re.compile(r"^\s*(?:level\s*)?([1-5])\s*$", re.I)


# ------------------------------------------------------------------------------------------------
# Reading answers

_TEXT_RE = re.compile(r"(\\(?:text|mbox|mathrm|textbf)\s*\{[^{}]*\})")
_SPACING_RE = re.compile(r"\\(?:left|right)(?![a-zA-Z])|\\[,;:! ]")
_SCRIPT_RE = re.compile(r"([_^])\{([A-Za-z0-9])\}(?![A-Za-z0-9])", re.ASCII)  # x^{2} -> x^2
_UNIT_TAIL_RE = re.compile(r"(?:\\(?:text|mbox|mathrm)\{[^{}]*\}(?:\^\{?\d\}?)?|\^\{?\\circ\}?)$")
_DECIMAL_RE = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[+-]?\.\d+", re.ASCII)
_FRAC_RE = re.compile(r"([+-]?)\\frac\{([+-]?\d+)\}\{([+-]?\d+)\}|([+-]?\d+)/([+-]?\d+)", re.ASCII)
MAX_FAST_DIGITS = 30
"""A number longer than this is left to math-verify (its floats carry 15 digits)."""
FLOAT_MARGIN = 1e-5
"""Numbers written with a decimal point differ for sure when they are this far apart (relative,
at least absolute): math-verify calls two floats equal when they agree to 6 decimals."""


def normalize_latex(s: str) -> str:
    r"""A spelling-insensitive form of an answer: ``\dfrac``/``\tfrac`` as ``\frac``, no
    ``\left``/``\right``, no ``$`` or thin spaces, no whitespace outside ``\text{}``,
    ``\frac12`` as ``\frac{1}{2}``, ``\sqrt3`` as ``\sqrt{3}``, ``1{,}000`` as ``1,000``,
    ``x^{2}`` as ``x^2`` (one character in braces, not followed by another).

    Only rewrites LaTeX renders the same way, so two answers equal after it are the same answer
    to math-verify too (tested against it): a trailing ``.`` is kept (math-verify reads ``2.``
    as text).

    >>> normalize_latex(r"$\left( \dfrac12, 3 \right)$")
    '(\\frac{1}{2},3)'
    """
    s = re.sub(r"\\[dt]frac", r"\\frac", s.strip())
    s = _SPACING_RE.sub("", s.replace("\\$", "").replace("$", "")).replace("{,}", ",")
    parts = _TEXT_RE.split(s)  # odd parts are \text{...}: spaces there are words apart
    s = "".join(part if k % 2 else re.sub(r"\s+", "", part) for k, part in enumerate(parts))
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = _SCRIPT_RE.sub(r"\1\2", s)
    return re.sub(r"\\sqrt(\d)", r"\\sqrt{\1}", s)


def as_number(s: str) -> tuple[Fraction, bool] | None:
    r"""``(value, written with a decimal point)`` of a normalized answer that is a plain number,
    else None: ``12``, ``-0.5``, ``1,000`` (thousands), ``\frac{3}{4}``, ``-3/4``, with a
    trailing unit in ``\text{}`` or ``^\circ`` (math-verify drops those too). A per cent sign is
    not a plain number (math-verify calls ``2\%`` equal to ``2``)."""
    while (tail := _UNIT_TAIL_RE.search(s)) is not None and tail.start() > 0:
        s = s[: tail.start()]
    if sum(c.isdigit() for c in s) > MAX_FAST_DIGITS:
        return None
    if _DECIMAL_RE.fullmatch(s):
        return Fraction(s.replace(",", "")), "." in s
    m = _FRAC_RE.fullmatch(s)
    if m is None:
        return None
    sign, num, den = (m.group(1), m.group(2), m.group(3)) if m.group(2) else ("", *m.group(4, 5))
    if int(den) == 0:
        return None
    value = Fraction(int(num), int(den))
    return (-value if sign == "-" else value), False


_VARIABLE_RE = re.compile(r"\s*\\?[A-Za-z]+(_\{?[A-Za-z0-9]+\}?)?(\([A-Za-z, ]*\))?\s*")
"""A name an answer may be given as: ``x``, ``\\theta``, ``a_1``, ``f(x)``."""


_RELATION_RE = re.compile(
    r"\\(?:le|ge|leq|geq|leqslant|geqslant|lt|gt|ne|neq|approx|sim|simeq|cong|equiv|propto|"
    r"lesssim|gtrsim|ll|gg|to|implies|iff|Rightarrow|rightarrow|Longrightarrow|pm|mp|lor|vee|"
    r"land|wedge)(?![A-Za-z])|[<>≤≥≈≠±∓→⇒]"
)
"""Relations and hedges (``\\ge 4``, ``\\approx 4``, ``\\pm 4``, ``4 \\lor 5``): an answer holding
one its gold lacks states something other than a value, so it is not that value."""
_INEQUALITIES = {
    "<",
    ">",
    "\u2264",
    "\u2265",
    "\u2260",
    "\\le",
    "\\ge",
    "\\leq",
    "\\geq",
    "\\lt",
    "\\gt",
    "\\ne",
    "\\neq",
    "\\leqslant",
    "\\geqslant",
    "\\ll",
    "\\gg",
    "\\lesssim",
    "\\gtrsim",
}
"""Of those, the ones an inequality such as ``x < 3`` uses: it may stand for an interval or a set
(a gold that is no plain number), so only one with no left side (``\\ge 4``) is refused there."""


def not_an_answer(answer: str, gold: str) -> str:
    """Why ``answer`` is no answer to a question whose gold is ``gold`` (empty when it may be):
    an equation is read by its right side, so only ``<name> = <value>`` may stand for a value;
    ``4 = 3`` (or ``x = 2 = 3``) states a relation and must not pass as 3; nor may ``\\ge 3``,
    ``\\approx 3`` or ``\\pm 3`` (:data:`_RELATION_RE`) unless the gold holds the same relation.

    >>> not_an_answer("x = 3", "3"), not_an_answer("4 = 3", "3"), not_an_answer("3", "3")
    ('', 'an equation whose left side is not a name: not an answer', '')
    """
    for relation in _RELATION_RE.findall(answer):
        if relation in _RELATION_RE.findall(gold):
            continue
        if (
            relation in _INEQUALITIES
            and not answer.strip().startswith(relation)
            and as_number(normalize_latex(gold)) is None
        ):
            continue  # 'x < 3' against an interval or a set: math-verify's to judge
        return f"a relation ({relation.strip()}), not a value: not an answer"
    if "=" not in answer or "=" in gold:
        return ""
    lhs, _, rhs = answer.partition("=")
    if "=" in rhs or not _VARIABLE_RE.fullmatch(lhs):
        return "an equation whose left side is not a name: not an answer"
    return ""


def fast_judge(gold: str, pred: str) -> str | None:
    r"""``"equal"`` or ``"different"`` where that is certain without math-verify, else None.

    Equal: the same after :func:`normalize_latex`, or the same number (``0.5``, ``\frac12``,
    ``1/2``, ``\dfrac{2}{4}``, ``0.50\text{ cups}``). Different: two plain numbers of different
    value, both exact (integers, fractions), or written with decimals and further apart than
    :data:`FLOAT_MARGIN`. Everything else (expressions, sets, intervals, per cents, close floats)
    is math-verify's to judge. ``tests/test_task_math.py`` holds this against math-verify.
    Different too: an equation that is not ``<name> = <value>`` where the gold is no equation
    (:func:`not_an_answer`; math-verify would read ``4 = 3`` as 3).
    """
    if not_an_answer(pred, gold):
        return "different"
    g, p = normalize_latex(gold), normalize_latex(pred)
    if g and g == p:
        return "equal"
    a, b = as_number(g), as_number(p)
    if a is None or b is None:
        return None
    (x, x_dec), (y, y_dec) = a, b
    if x == y:
        return "equal"
    if not (x_dec or y_dec) or abs(x - y) > FLOAT_MARGIN * max(1, abs(x), abs(y)):
        return "different"
    return None


# ------------------------------------------------------------------------------------------------
# The math-verify worker


class _SoftTimeout(BaseException):
    """Raised by the worker's timer; a BaseException so that no ``except Exception`` swallows it."""


def serve(memory_mb: int = 1024) -> None:  # pragma: no cover - runs in the worker process
    """Worker loop: one JSON request per line on stdin, one JSON reply per line on stdout.

    Requests: ``{"gold": str, "pred": str, "seconds": float}`` (reply ``{"r": "equal" |
    "different"}``), ``{"describe": str, "seconds": float}`` (reply ``{"r": "form", "form":
    {...}}``, see :mod:`selfplay.tasks.mathforms`), or ``{"batch": [request, ...]}`` (one reply
    line per request, in order, each within its own ``seconds``). A reply may instead be ``{"r":
    "timeout" | "error", "why": str}``. The first line written is ``{"ready": true}``, once
    math-verify is imported and the address space is limited to ``memory_mb``.
    """
    import logging
    import resource
    import signal

    from selfplay.tasks.mathforms import describe_parse

    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the replies
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    from math_verify import parse, verify

    limit = max(memory_mb, 256) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def on_alarm(signum, frame):
        raise _SoftTimeout

    signal.signal(signal.SIGALRM, on_alarm)
    parsed: dict[str, Any] = {}  # answer -> math-verify's parse (golds and answers alike)

    def parse_answer(text: str) -> list:
        # Wrapping in \boxed{} makes math-verify read the whole text as one LaTeX answer.
        # Its own signal-based timeouts are off (None): this process's timer does that job.
        if text not in parsed:
            if len(parsed) >= PARSE_CACHE_SIZE:
                parsed.clear()
            parsed[text] = parse("\\boxed{" + text + "}", parsing_timeout=None)
        return parsed[text]

    def answer(req: Any) -> dict:
        try:
            try:
                signal.setitimer(signal.ITIMER_REAL, max(float(req["seconds"]), 0.01))
                if "describe" in req:
                    return {"r": "form", "form": describe_parse(parse_answer(req["describe"]))}
                gold, pred = parse_answer(req["gold"]), parse_answer(req["pred"])
                same = verify(gold, pred, timeout_seconds=None)
                return {"r": "equal" if same else "different"}
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _SoftTimeout:
            return {"r": "timeout"}
        except MemoryError:
            parsed.clear()
            return {"r": "error", "why": "math-verify ran out of memory"}
        except Exception as exc:
            return {"r": "error", "why": f"math-verify raised {type(exc).__name__}"}

    replies.write('{"ready": true}\n')
    for line in sys.stdin:
        try:
            req = json.loads(line)
            batch = req["batch"] if isinstance(req, dict) and "batch" in req else [req]
        except ValueError:
            batch = [None]  # answered with an error
        for one in batch:
            replies.write(json.dumps(answer(one)) + "\n")


_WORKER_CODE = "import sys; from selfplay.tasks.mathtask import serve; serve(int(sys.argv[1]))"


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for f in (proc.stdin, proc.stdout):
        if f:
            f.close()


class MathJudge:
    """Answers "is ``pred`` the same answer as ``gold``?" with math-verify, in a worker process.

    Thread-safe (calls are serialized) and bounded: :meth:`judge` returns within ``timeout``
    seconds of the worker being ready. A worker that overruns is killed, and a new one is started
    at once in the background.
    """

    def __init__(self, timeout: float = 10.0, memory_mb: int = 1024):
        self.timeout, self.memory_mb = timeout, memory_mb
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._ready = False
        self._buf = b""
        self._cache: dict[tuple[str, str], bool] = {}
        self._finalizer = weakref.finalize(self, MathJudge._stop, [None])

    @staticmethod
    def _stop(holder: list) -> None:
        if holder[0] is not None:
            _kill(holder[0])

    def close(self) -> None:
        """Stop the worker (a later call starts a new one)."""
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        if self._proc is not None:
            _kill(self._proc)
        self._proc, self._ready, self._buf = None, False, b""

    def _start(self) -> None:
        src = str(Path(__file__).resolve().parents[2])  # the directory that holds `selfplay`
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CODE, str(int(self.memory_mb))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self._ready, self._buf = False, b""
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, MathJudge._stop, [self._proc])

    def _read_line(self, seconds: float) -> dict | None:
        """The worker's next reply, or None if none comes within ``seconds`` or it died."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        end = time.monotonic() + seconds
        while b"\n" not in self._buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def _ensure_ready(self) -> str:
        """Start the worker if needed and wait for it; an error message if it cannot start."""
        if self._proc is not None and self._proc.poll() is not None:
            self._discard()
        if self._proc is None:
            self._start()
        if not self._ready:
            if self._read_line(STARTUP_SECONDS) != {"ready": True}:
                try:
                    code = self._proc.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    code = None  # it wrote something else, or nothing in time
                self._discard()
                return f"the math-verify worker did not start (exit code {code})"
            self._ready = True
        return ""

    def _ask_many(self, reqs: list[dict]) -> list[tuple[dict | None, str, str]]:
        """``(reply, status, why)`` per request, in order: the worker's reply, or None with
        ``timeout``/``error``. The requests go as one batch; each reply must come within
        ``timeout`` of the one before, else the worker is killed and restarted and the requests
        after the one it was on are sent again."""
        out: list[tuple[dict | None, str, str]] = []
        with self._lock:
            while len(out) < len(reqs):
                why = self._ensure_ready()
                if why:
                    return out + [(None, "error", why)] * (len(reqs) - len(out))
                rest = reqs[len(out) :]
                try:
                    self._proc.stdin.write((json.dumps({"batch": rest}) + "\n").encode())
                    self._proc.stdin.flush()
                except (OSError, ValueError):
                    pass  # the worker died: the read below finds out
                for _ in rest:
                    try:
                        reply = self._read_line(self.timeout)
                    except (OSError, ValueError):
                        reply = None
                    if reply is None:
                        out.append(self._replace_worker())
                        break
                    out.append(self._read_reply(reply))
        return out

    def _replace_worker(self) -> tuple[None, str, str]:
        """Kill a worker that did not answer and start a new one (the next call finds it nearly
        ready); the status of the request it was on."""
        died = self._proc.poll() is not None
        self._discard()
        self._start()
        if died:
            return None, "error", "the math-verify worker died"
        return None, "timeout", f"math-verify took longer than {self.timeout:g}s (worker killed)"

    def _read_reply(self, reply: dict) -> tuple[dict | None, str, str]:
        if reply.get("r") == "timeout":
            return None, "timeout", f"math-verify took longer than {self.timeout:g}s"
        if reply.get("r") == "error":
            return None, "error", str(reply.get("why", "math-verify failed"))
        return reply, "", ""

    def judge(self, gold: str, pred: str) -> tuple[str, str]:
        """``("equal" | "different" | "timeout" | "error", why)``."""
        return self.judge_many([(gold, pred)])[0]

    def judge_many(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """:meth:`judge` for many ``(gold, pred)`` pairs, in one batch."""
        results = {
            p: ("equal" if self._cache[p] else "different", "") for p in pairs if p in self._cache
        }
        todo = [p for p in dict.fromkeys(pairs) if p not in results]
        seconds = self.timeout * SOFT_FRACTION
        reqs = [{"gold": g, "pred": p, "seconds": seconds} for g, p in todo]
        for pair, (reply, status, why) in zip(todo, self._ask_many(reqs), strict=True):
            r = None if reply is None else reply.get("r")
            if reply is None:
                results[pair] = (status, why)
            elif r in ("equal", "different"):
                if len(self._cache) >= CACHE_SIZE:
                    self._cache.clear()
                self._cache[pair] = r == "equal"
                results[pair] = (r, "")
            else:
                results[pair] = (
                    "error",
                    f"unexpected reply from the math-verify worker: {reply}"[:120],
                )
        return [results[p] for p in pairs]

    def describe_many(self, answers: list[str]) -> list[dict | None]:
        """How math-verify reads each answer (:func:`selfplay.tasks.mathforms.describe_parse`),
        in one batch; None where the worker failed or ran out of time."""
        seconds = self.timeout * SOFT_FRACTION
        replies = self._ask_many([{"describe": a, "seconds": seconds} for a in answers])
        return [
            r["form"] if r is not None and r.get("r") == "form" else None for r, _, _ in replies
        ]


# ------------------------------------------------------------------------------------------------
# Verifier


def read_answer(completion: Any) -> str | Verdict:
    """The boxed answer of a completion, or the verdict when there is none to compare (also for
    one that is not text or is too long: :func:`selfplay.tasks.base.screen_completion`)."""
    screened = screen_completion(completion, MAX_CHARS)
    return screened if screened is not None else boxed_answer(completion)


def boxed_answer(completion: str) -> str | Verdict:
    """The stripped contents of the last ``\\boxed{}``, or the verdict when there is none, it is
    empty, or it is too long to compare."""
    boxed = last_boxed(completion)
    if boxed is None:
        return Verdict("unparseable", why="no \\boxed{} answer")
    answer = boxed.strip()
    if not answer:
        return Verdict("unparseable", answer="", why="empty \\boxed{} answer")
    if len(answer) > MAX_ANSWER_CHARS:
        return Verdict(
            "unparseable",
            answer=clip(answer, 80),
            why=f"boxed answer too long ({len(answer)} characters)",
        )
    if any(
        (unicodedata.category(c) in ("Cc", "Cs") and not c.isspace()) or c == "\ufffd"
        for c in answer
    ):
        # A NUL, a lone surrogate or U+FFFD (what a stored surrogate becomes) spells no answer:
        # refused, not guessed.
        return Verdict(
            "unparseable",
            answer=clip(answer, 80),
            why="control character in the boxed answer",
        )
    return answer


def answer_verdict(gold: str, answer: str, result: str, why: str = "") -> Verdict:
    """The verdict for ``answer`` once judged ``equal | different | timeout | error``."""
    if result in ("timeout", "error"):
        return Verdict(result, answer=answer, why=why)
    ok = result == "equal"
    step = StepMark(f"\\boxed{{{answer}}}", ok, "" if ok else f"wrong answer: gold is {gold[:80]}")
    return Verdict(
        "correct" if ok else "wrong", answer=answer, steps=(step,), why="" if ok else "wrong answer"
    )


def verify_math(
    problem: Problem, completion: str, judge: MathJudge, cache: dict | None = None
) -> Verdict:
    """Judge a ``math`` completion by its last ``\\boxed{}`` answer against the gold answer:
    :func:`fast_judge` where it is certain, else ``cache``, else math-verify through ``judge``
    (inside :func:`bounded_verify`: text only, size cap, never raises)."""

    def check(problem: Problem, completion: str, deadline: Deadline) -> Verdict:
        answer = boxed_answer(completion)
        if isinstance(answer, Verdict):
            return answer
        key = (problem.answer, answer)
        result = fast_judge(*key)
        if result is None and cache is not None:
            result = cache.get(_cache_key(key))
        if result is not None:
            return answer_verdict(*key, result)
        return answer_verdict(*key, *_ask_math_verify(judge, key, cache))

    # One verdict is one math-verify call at most, which the worker bounds by ``judge.timeout``
    # (and the parent by killing it): there are no steps between which to read the deadline.
    return bounded_verify(check, problem, completion, max_chars=MAX_CHARS, seconds=judge.timeout)


def _ask_math_verify(judge: MathJudge, key: tuple[str, str], cache: dict | None) -> tuple[str, str]:
    """``judge``'s ``(result, why)`` for a ``(gold, answer)`` pair, remembered in ``cache``."""
    result, why = judge.judge(*key)
    if cache is not None and result in ("equal", "different"):
        _remember(cache, _cache_key(key), result)
    return result, why


def _cache_key(key: tuple[str, str]) -> tuple[str, str]:
    """Judgements are remembered per (gold, normalized answer): answers the same after
    :func:`normalize_latex` are the same answer to math-verify."""
    return key[0], normalize_latex(key[1])


def _remember(cache: dict, key: tuple[str, str], result: str) -> None:
    if len(cache) >= TASK_CACHE_SIZE:
        cache.clear()
    cache[key] = result


# ------------------------------------------------------------------------------------------------
# The task


def _difficulty(level: Any) -> int | None:
    """MATH levels come as ``'Level 3'``, ``3`` or ``'3'``; ``None`` if unreadable (``'Level ?'``)."""
    if isinstance(level, bool):
        return None
    if isinstance(level, int):
        return level if 1 <= level <= 5 else None
    if isinstance(level, str) and (m := _LEVEL_RE.match(level)):
        return int(m.group(1))
    return None


class MathTask(DatasetTask):
    name = "math"
    default_data = "HuggingFaceH4/MATH-500"
    default_split = "test"
    required_fields = ("problem", "solution")
    max_difficulty = 5
    UNKNOWN_LEVEL: ClassVar[int] = 3
    """Difficulty given to a problem whose level is missing or unreadable (``'Level ?'``)."""

    def __init__(
        self,
        problems: list[Problem] = (),
        timeout: float = 10.0,
        memory_mb: int = 1024,
        workers: int | None = None,
    ):
        super().__init__(problems, timeout=timeout, memory_mb=memory_mb)
        self.workers = max(1, workers or os.cpu_count() or 1)
        """math-verify worker processes for :meth:`verify_many` (default: one per CPU)."""
        self._judges: list[MathJudge] = []
        self._cache: dict[tuple[str, str], str] = {}  # (gold, normalized answer) -> result
        self._forms: dict[str, dict | None] = {}  # answer -> how math-verify reads it
        self.calls: Counter = Counter()
        """Worker requests made by :meth:`verify_many`: ``math-verify`` (pairs judged) and
        ``describe`` (answers and golds read into forms)."""
        self.decided: Counter = Counter()
        """Chains :meth:`verify_many` judged, by what decided them: ``text, number or cache``,
        ``forms``, ``math-verify``, or ``no answer to compare``."""
        self.worker_seconds = 0.0
        """Wall time :meth:`verify_many` spent waiting for the workers."""

    def __getstate__(self) -> dict:
        # The worker processes stay with this process; a copy starts its own when it needs them.
        return {
            **self.__dict__,
            "_judges": [],
            "_cache": {},
            "_forms": {},
            "calls": Counter(),
            "decided": Counter(),
            "worker_seconds": 0.0,
        }

    def _pool(self, n: int) -> list[MathJudge]:
        while len(self._judges) < n:
            self._judges.append(MathJudge(self.timeout, self.memory_mb))
        return self._judges[:n]

    @property
    def judge(self) -> MathJudge:
        return self._pool(1)[0]

    def start_workers(self) -> str:
        """Start all :attr:`workers` math-verify processes at once and wait until they are ready
        (else the first :meth:`verify_many` does); an error message if one cannot start."""
        judges = self._pool(self.workers)
        for judge in judges:
            with judge._lock:
                if judge._proc is None:
                    judge._start()
        whys = []
        for judge in judges:
            with judge._lock:
                whys.append(judge._ensure_ready())
        return next((w for w in whys if w), "")

    def close(self) -> None:
        """Stop the math-verify workers, if any are running."""
        for judge in self._judges:
            judge.close()

    def verify(self, problem: Problem, completion: str) -> Verdict:
        """As :func:`verify_math`, with the forms :meth:`verify_many` has read before
        math-verify (one worker call at most)."""
        return bounded_verify(
            self._check, problem, completion, max_chars=MAX_CHARS, seconds=self.timeout
        )

    def _check(self, problem: Problem, completion: str, deadline: Deadline) -> Verdict:
        answer = boxed_answer(completion)
        if isinstance(answer, Verdict):
            return answer
        key = (problem.answer, answer)
        result = self._decide(key)
        if result is None:
            result, why = self.judge.judge(*key)
            if result in ("equal", "different"):
                _remember(self._cache, _cache_key(key), result)
            return answer_verdict(*key, result, why)
        return answer_verdict(*key, result)

    def _decide(self, key: tuple[str, str]) -> str | None:
        """The fast path, the cache, then the forms of gold and answer if both are known;
        None: math-verify must judge."""
        ckey = _cache_key(key)
        result = self._cache.get(ckey) or fast_judge(*key)
        if result is None and key[0] in self._forms and key[1] in self._forms:
            result = judge_forms(self._forms[key[0]], self._forms[key[1]])
        if result is not None:
            _remember(self._cache, ckey, result)
        return result

    def verify_many(
        self, items: list[tuple[Problem, str]], workers: int | None = None
    ) -> list[Verdict]:
        """:meth:`verify` for many ``(problem, completion)`` pairs, in order. The fast path and
        the cache answer what they can; the golds and answers left are read into forms by the
        worker processes (once per distinct text), which settle most of the rest; the distinct
        (gold, answer) pairs still open go to math-verify. Worker requests go in batches, spread
        over ``workers`` processes (default :attr:`workers`)."""
        answers: list[str | Verdict] = []
        results: dict[tuple[str, str], tuple[str, str]] = {}  # (gold, answer) -> (result, why)
        todo: dict[tuple[str, str], None] = {}
        how: dict[tuple[str, str], str] = {}  # (gold, answer) -> the path that decided it
        for problem, completion in items:
            try:
                answer = read_answer(completion)
            except Exception as exc:
                answer = Verdict("error", why=f"{type(exc).__name__}: {exc}"[:200])
            answers.append(answer)
            if isinstance(answer, str):
                key = (problem.answer, answer)
                if key not in results and key not in todo:
                    decided = self._decide(key)
                    if decided is None:
                        todo[key] = None
                    else:
                        results[key], how[key] = (decided, ""), "text, number or cache"
        workers = workers or self.workers
        unread = list(dict.fromkeys(t for key in todo for t in key if t not in self._forms))
        forms = {t: form for t in unread if (form := number_form(t)) is not None}
        unread = [t for t in unread if t not in forms]
        forms.update(self._run_all(unread, workers, MathJudge.describe_many))
        if len(self._forms) + len(forms) > TASK_CACHE_SIZE:
            self._forms.clear()
        self._forms.update(forms)
        left = []
        for key in todo:
            decided = self._decide(key)
            if decided is None:
                left.append(key)
                how[key] = "math-verify"
            else:
                results[key], how[key] = (decided, ""), "forms"
        self.calls.update({"describe": len(unread), "math-verify": len(left)})
        judged = self._run_all(left, workers, MathJudge.judge_many)
        for key, (result, _) in judged.items():
            if result in ("equal", "different"):
                _remember(self._cache, _cache_key(key), result)
        results.update(judged)
        out = []
        for (problem, _), answer in zip(items, answers, strict=True):
            if isinstance(answer, Verdict):
                out.append(answer)
                self.decided["no answer to compare"] += 1
            else:
                key = (problem.answer, answer)
                out.append(answer_verdict(*key, *results[key]))
                self.decided[how[key]] += 1
        return out

    def _run_all(self, keys: list, workers: int, call) -> dict:
        """``{key: value}`` with ``call(judge, batch) -> values`` run on batches of the keys, each
        worker process taking the next batch as it finishes one: a few batches per worker, so
        that one slow batch does not hold the others up, and few round trips."""
        if not keys:
            return {}
        n = min(workers, len(keys))
        size = min(MAX_BATCH, -(-len(keys) // (BATCHES_PER_WORKER * n)))
        batches: SimpleQueue = SimpleQueue()
        for i in range(0, len(keys), size):
            batches.put(keys[i : i + size])
        out: dict = {}

        def drain(judge: MathJudge) -> None:
            while True:
                try:
                    batch = batches.get_nowait()
                except Empty:
                    return
                out.update(zip(batch, call(judge, batch), strict=True))

        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=n) as pool:
            for done in [pool.submit(drain, judge) for judge in self._pool(n)]:
                done.result()
        self.worker_seconds += time.monotonic() - start
        return out

    @classmethod
    def problem_from_record(cls, record: dict[str, Any], index: int) -> Problem:
        """``{"problem": ..., "solution": ..., "answer"?: ..., "level"?: "Level 3" | 3}``; without
        ``answer``, the last ``\\boxed{}`` of the solution is the gold answer."""
        problem, solution = record.get("problem"), record.get("solution")
        if not isinstance(problem, str) or not problem.strip():
            raise ValueError("needs a non-empty 'problem' string")
        if not isinstance(solution, str):
            raise ValueError("needs a 'solution' string (the reference solution)")
        answer = record.get("answer")
        if isinstance(answer, (int, float)) and not isinstance(answer, bool):
            answer = str(answer)
        if not isinstance(answer, str) or not answer.strip():
            answer = last_boxed(solution)
            if answer is None or not answer.strip():
                raise ValueError("no 'answer' and no \\boxed{} answer in the solution")
        level = _difficulty(record.get("level"))
        text = problem.strip().encode("utf-8", "surrogatepass")  # a lone surrogate hashes too
        pid = "math-" + hashlib.blake2b(text, digest_size=6).hexdigest()
        meta: dict[str, Any] = {"gold": solution, "level": record.get("level")}
        for key in ("subject", "type", "unique_id"):
            if isinstance(record.get(key), str):
                meta[key] = record[key]
        return Problem(
            id=pid,
            difficulty=level if level is not None else cls.UNKNOWN_LEVEL,
            prompt=f"Problem: {problem.strip()}\nSolution: ",
            answer=answer.strip(),
            meta=meta,
        )

    def answer_only(self, problem: Problem) -> str:
        return f"\\boxed{{{problem.answer}}}"
