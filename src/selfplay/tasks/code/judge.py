"""Judging a completion: the tests run here, in the verifier's process; the candidate runs in the
sandbox and is reached only through calls.

The problem's prompt (its imports and helpers) and its rewritten tests
(:mod:`selfplay.tasks.code.rewrite`) are executed in a fresh namespace of this process, where the
entry point and ``check``'s argument are a :class:`Candidate`: calling it sends the arguments to
the sandboxed driver (:mod:`selfplay.tasks.code.driver`) and returns what the solution returned,
rebuilt here from data as exact types of this process's own: ``int``, ``float``, ``str``,
``bool``, ``None``, ``list``, ``tuple``, ``dict``, ``set``, ``frozenset``, ``bytes``,
``bytearray``, ``complex``, and the standard library's ``Counter``, ``OrderedDict``, ``Fraction``
and ``Decimal``. Comparisons, truth tests and every other part of an assertion are evaluated here
over those values, so no object of the candidate's can take part in them, and the candidate never
sees the tests, the expected values or the verdict: the worst it can do is return wrong values,
or stop (which fails the run).

What a reply can cost this process is bounded: a reply is at most :data:`MAX_REPLY_BYTES` (a
longer one is refused unread), it is rebuilt in one pass of the JSON parser (no tree of tags is
kept beside the value), a set or dict whose members share hashes (which would make building it
quadratic) is refused, and so are a ``Decimal`` or ``Fraction`` too long to convert or divide
quickly. A refused reply ends the run (the verdict is ``wrong``).

The tests are part of the task's definition and are trusted as such: they run with this
process's rights. A test that itself loops over, or multiplies, what the candidate returned (none
of HumanEval's does) could make this process slow.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import marshal
import operator
import reprlib
from collections import Counter, OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from types import CodeType

from selfplay.sandbox import (
    ChannelClosed,
    ChannelError,
    ChannelTimeout,
    Limits,
    SandboxResult,
    start_python,
)
from selfplay.tasks.code.driver import driver_source
from selfplay.tasks.code.rewrite import AST_LOCK, RECORDER, CheckPlan
from selfplay.verify import StepMark, Verdict

OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "is": operator.is_,
    "is not": operator.is_not,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 8


def short(x) -> str:
    try:
        return _SHORT.repr(x)
    except Exception:
        return f"<{type(x).__name__} object>"


# ------------------------------------------------------------------------------------------------
# What comes back


class RunOver(BaseException):
    """The candidate's run ended (timeout, exit, crash, memory, a broken reply): no more calls.
    A ``BaseException``, so that the tests' own ``except Exception`` cannot swallow it."""

    def __init__(self, kind: str, why: str):
        super().__init__(why)
        self.kind, self.why = kind, why


class CandidateRaised(Exception):
    """The candidate raised; ``str()`` is ``'Name: message'``. For a built-in exception class the
    instance also is one (``except ValueError`` in a test catches it)."""


class NotPlainValue(CandidateRaised):
    """The candidate returned something that is not exactly a plain built-in value."""


@lru_cache(maxsize=128)
def _raised_class(name: str) -> type:
    base = getattr(builtins, name, None)
    # not StopIteration: raised into a test's generator it could end a loop of checks early
    stops = (StopIteration, StopAsyncIteration)
    if isinstance(base, type) and issubclass(base, Exception) and not issubclass(base, stops):
        try:
            return type(name, (CandidateRaised, base), {})
        except TypeError:  # a layout that cannot be combined
            pass
    return CandidateRaised


MAX_REPLY_BYTES = 1 << 20
"""Longest reply read from the driver (a returned value's JSON text); a longer one ends the run
unread. Rebuilding one costs this process at most about 30 bytes per byte of it."""
MAX_SAME_HASH = 32
"""Most members of a set (or keys of a dict) as sent that may share one hash: a set is built in
time proportional to its size times the longest run of members with equal hashes."""
MAX_DIGITS = 4300
"""Most digits in a ``Decimal``'s coefficient or exponent, or in a ``Fraction``'s numerator or
denominator (Python's own limit for converting an int to or from text): ``int()`` of a
``Decimal`` or the gcd of a ``Fraction`` grows quadratically with them."""
_FRACTION_BOUND = 10**MAX_DIGITS
REPLY_KINDS = frozenset({"v", "raise", "bad", "memory", "ready", "syntax", "error", "missing"})
"""The tags of the driver's replies; value tags are the single letters of :func:`rebuild`."""
_PAIR_KINDS = frozenset({"raise", "syntax", "error"})  # ["Name", "message"]
_TEXT_KINDS = frozenset({"bad", "missing"})


class BadReply(ValueError):
    pass


def _spread(keys: list) -> list:
    """``keys``, unless more than :data:`MAX_SAME_HASH` of them share a hash; linear time (the
    hashes themselves are ints that spread over a dict)."""
    if len(keys) > MAX_SAME_HASH:
        most = max(Counter(map(hash, keys)).values())
        if most > MAX_SAME_HASH:
            raise BadReply(f"a set or dict with {most} members of one hash")
    return keys


def _pairs(v: list) -> list:
    for pair in v:
        if type(pair) is not list or len(pair) != 2:
            raise BadReply("a dict entry that is not a pair")
    _spread([k for k, _ in v])
    return v


def rebuild(tag: str, v):
    """One tagged value of the driver's (see :mod:`selfplay.tasks.code.driver`), its members
    already rebuilt; :class:`BadReply` for anything else."""
    try:
        if type(v) is str:
            if tag == "i":
                return int(v, 16)
            if tag == "b":
                return bytes.fromhex(v)
            if tag == "a":
                return bytearray.fromhex(v)
            if tag == "D":
                return _decimal(v)
        if type(v) is not list:
            raise BadReply(f"tag {str(tag)[:20]!r} without a list")
        if tag == "t":
            return tuple(v)
        if tag == "s":
            return set(_spread(v))
        if tag == "f":
            return frozenset(_spread(v))
        if tag == "d":
            return dict(_pairs(v))
        if tag == "O":
            return OrderedDict(_pairs(v))
        if tag == "C":  # Counter(pairs) would count the pairs
            out = Counter()
            dict.update(out, _pairs(v))
            return out
        if tag == "c" and len(v) == 2 and all(type(e) in (int, float) for e in v):
            return complex(v[0], v[1])
        if tag == "Q" and len(v) == 2 and all(type(e) is int for e in v):
            if not (abs(v[0]) < _FRACTION_BOUND and abs(v[1]) < _FRACTION_BOUND):
                raise BadReply("a Fraction with too many digits")
            if v[1] <= 0:  # the driver sends a Fraction's own, positive, denominator
                raise BadReply("a Fraction whose denominator is not positive")
            return Fraction(v[0], v[1])
    except BadReply:
        raise
    except (TypeError, ValueError, ArithmeticError) as exc:  # unhashable keys, bad hex or text
        raise BadReply(f"{type(exc).__name__}: {exc}"[:120]) from None
    raise BadReply(f"unknown tag {str(tag)[:20]!r}")


def _decimal(text: str) -> Decimal:
    if len(text) > MAX_DIGITS + 16:  # the digits, a sign, a point and an exponent
        raise BadReply("a Decimal with too many digits")
    d = Decimal(text)
    if d.is_finite() and abs(d.adjusted()) > MAX_DIGITS:
        raise BadReply("a Decimal with too large an exponent")
    return d


_FRAME = object()


def _parse(data: bytes | str) -> tuple[object, list]:
    """JSON text with every object rebuilt as it is parsed (:func:`rebuild`), except a reply's
    own (``{"v": ...}``), which becomes ``_FRAME`` and is listed as ``(kind, payload)``."""
    frames = []

    def hook(pairs: list):
        if len(pairs) != 1:
            raise BadReply("an object that is not one tagged value")
        ((tag, v),) = pairs
        if tag in REPLY_KINDS:
            frames.append((tag, v))
            return _FRAME
        return rebuild(tag, v)

    return json.loads(data, object_pairs_hook=hook), frames


def decode_value(text: bytes | str):
    """A value as the driver encodes it (JSON text), rebuilt as exact types; :class:`BadReply`
    for anything else."""
    try:
        value, frames = _parse(text)
    except BadReply:
        raise
    except (ValueError, RecursionError) as exc:
        raise BadReply(f"not a value ({type(exc).__name__})") from None
    if frames:
        raise BadReply("a reply where a value was expected")
    return value


def _decode_reply(data: bytes) -> tuple[str, object]:
    """A reply as ``(kind, payload)``, its value rebuilt; :class:`RunOver` if it is broken."""
    try:
        top, frames = _parse(data)
    except BadReply as exc:
        raise RunOver("channel", f"the program sent a broken value: {exc}") from None
    except RecursionError:
        raise RunOver("channel", "the program sent a value nested too deeply") from None
    except ValueError as exc:  # not JSON, an int too long
        why = f"the program sent a broken reply ({type(exc).__name__})"
        raise RunOver("channel", why) from None
    if top is not _FRAME or len(frames) != 1:
        raise RunOver("channel", "the program sent a reply of the wrong shape")
    kind, v = frames[0]
    pair = type(v) is list and len(v) == 2 and all(type(e) is str for e in v)
    if (kind in _PAIR_KINDS and not pair) or (kind in _TEXT_KINDS and type(v) is not str):
        raise RunOver("channel", f"the program sent a {kind!r} reply of the wrong shape")
    return kind, v


class Candidate:
    """The entry point as the tests see it: each call is a round trip to the sandboxed driver."""

    def __init__(self, box, memory_mb: int):
        self.box, self.memory_mb = box, memory_mb
        self.over: RunOver | None = None

    def _end(self, kind: str, why: str) -> RunOver:
        if kind == "channel":  # a child blocked writing the rest of a frame gets EPIPE and stops
            self.box.close_channel()
        self.over = RunOver(kind, why)
        return self.over

    def exchange(self, payload: bytes) -> tuple[str, object]:
        """Send a request; the reply as ``(kind, payload)``."""
        if self.over is not None:
            raise self.over
        try:
            self.box.send(payload)
            return _decode_reply(self.box.receive(MAX_REPLY_BYTES))
        except ChannelTimeout as exc:
            raise self._end("timeout", str(exc)) from None
        except ChannelClosed:
            raise self._end("closed", "the program stopped before the tests finished") from None
        except ChannelError as exc:  # a frame longer than MAX_REPLY_BYTES, left unread
            why = f"the program returned a value larger than {MAX_REPLY_BYTES >> 20} MiB: {exc}"
            raise self._end("channel", why) from None
        except RunOver as exc:
            self.box.close_channel()
            self.over = exc
            raise

    def __call__(self, *args, **kwargs):
        try:
            payload = marshal.dumps((args, kwargs))
        except ValueError as exc:  # the tests passed a function or an object of their own
            raise TypeError(f"the tests pass an argument that cannot be sent: {exc}") from None
        kind, v = self.exchange(payload)
        if kind == "v":
            return v
        if kind == "raise":
            name, msg = (e[:200] for e in v)
            raise _raised_class(name)(f"{name}: {msg}" if msg else name)
        if kind == "bad":
            raise NotPlainValue(v[:200])
        if kind == "memory":
            raise self._end("memory", f"memory limit of {self.memory_mb} MiB exceeded")
        raise self._end("channel", f"the program sent a reply of kind {kind!r}")


# ------------------------------------------------------------------------------------------------
# The tests, run here


def describe(exc: BaseException) -> str:
    if isinstance(exc, CandidateRaised):
        return str(exc)[:160]
    try:
        msg = str(exc)
    except Exception:
        msg = ""
    return f"{type(exc).__name__}: {msg}"[:160] if msg else type(exc).__name__


class Recorder:
    """Counts runs and failures of each assertion and keeps the first failure's reason."""

    def __init__(self, n: int):
        self.runs, self.fails, self.first = [0] * n, [0] * n, [""] * n

    def _outcome(self, i: int, ok: bool, why: str = "") -> None:
        self.runs[i] += 1
        if not ok:
            self.fails[i] += 1
            if self.fails[i] == 1:
                self.first[i] = why

    def compare(self, i: int, op: str, left, right, side: int) -> None:
        try:
            ok = bool(OPS[op](left, right))
            why = ""
        except (RunOver, KeyboardInterrupt):
            raise
        except BaseException as exc:
            ok, why = False, f"comparison raised {describe(exc)}"
        if not ok and not why and not self.fails[i]:  # only the first failure's is kept
            got = (left, right)[side] if side in (0, 1) else None
            why = f"got {short(got)}" if side in (0, 1) else f"{short(left)} {op} {short(right)}"
        self._outcome(i, ok, why)

    def truth(self, i: int, value) -> None:
        try:
            ok, why = bool(value), "false"
        except (RunOver, KeyboardInterrupt):
            raise
        except BaseException as exc:
            ok, why = False, f"truth test raised {describe(exc)}"
        self._outcome(i, ok, why)

    def raised(self, i: int, exc: BaseException) -> None:
        if isinstance(exc, (RunOver, KeyboardInterrupt)):
            raise exc
        why = str(exc)[:160] if isinstance(exc, NotPlainValue) else f"raised {describe(exc)}"
        self._outcome(i, False, why)


def _compiled(prompt: str, tests: str) -> tuple[CodeType | None, CodeType | str]:
    """The prompt (None if it does not compile alone) and the tests (or why they do not)."""
    with AST_LOCK:
        return _compile_both(prompt, tests)


@lru_cache(maxsize=1024)
def _compile_both(prompt: str, tests: str) -> tuple[CodeType | None, CodeType | str]:
    try:
        prompt_code = compile(prompt, "prompt.py", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        prompt_code = None
    try:
        return prompt_code, compile(tests, "test.py", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return prompt_code, f"the tests do not load: {type(exc).__name__}: {exc}"[:200]


@dataclass
class _Outcome:
    hello: dict | None = None
    """The driver's first reply (``ready``, ``syntax``, ``error``, ``missing``, ``memory``)."""
    test_error: str = ""
    done: bool = False
    check_error: str = ""
    over: RunOver | None = None


def _run_tests(
    plan: CheckPlan, prompt: str, entry: str, cand: Candidate, rec: Recorder
) -> _Outcome:
    out = _Outcome(hello={"ready": 1})
    prompt_code, test_code = _compiled(prompt, plan.source)
    if isinstance(test_code, str):
        out.test_error = test_code
        return out
    ns = {"__name__": "__selfplay_tests__", "__builtins__": builtins}
    if prompt_code is not None:  # its imports and helpers (the tests may use them)
        with contextlib.suppress(Exception):
            exec(prompt_code, ns)
    ns[entry] = cand
    ns[RECORDER] = rec
    try:
        exec(test_code, ns)
    except Exception as exc:
        out.test_error = f"the tests do not load: {describe(exc)}"
        return out
    check = ns.get("check")
    if not callable(check):
        out.test_error = "the tests define no check function"
        return out
    try:
        check(cand)
        out.done = True
    except RunOver as exc:
        out.over = exc
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        out.check_error = describe(exc)
    return out


def judge_completion(
    plan: CheckPlan, prompt: str, completion: str, entry: str, limits: Limits
) -> Verdict:
    """Run the completion in the sandbox and the tests here; the verdict."""
    rec = Recorder(len(plan.asserts))
    with start_python(driver_source(), limits, channel=True, cache=True) as box:
        cand = Candidate(box, limits.memory_mb)
        out = _Outcome()
        if box.result is None:  # started
            try:
                kind, v = cand.exchange(marshal.dumps((prompt, completion, entry)))
                out.hello = {kind: v}
            except RunOver as exc:
                out.over = exc
            if out.hello is not None and "ready" in out.hello:
                out = _run_tests(plan, prompt, entry, cand, rec)
        result = box.finish()
    return verdict_of(plan, out, rec, result, limits.memory_mb)


def _marks(plan: CheckPlan, rec: Recorder, done: bool) -> tuple[StepMark, ...]:
    marks = []
    for i, text in enumerate(plan.asserts):
        if rec.fails[i]:
            why = rec.first[i][:200]
            if rec.runs[i] > 1:
                why = f"failed {rec.fails[i]} of {rec.runs[i]} runs; first: {why}"
            marks.append(StepMark(text, False, why))
        elif rec.runs[i]:
            marks.append(StepMark(text, True))
        elif done:
            marks.append(StepMark(text, True, "not run"))  # a branch the tests did not take
        else:
            marks.append(StepMark(text, False, "not reached"))
    return tuple(marks)


def verdict_of(
    plan: CheckPlan, out: _Outcome, rec: Recorder, result: SandboxResult, memory_mb: int
) -> Verdict:
    """The verdict from what the tests recorded here and how the sandboxed run ended."""
    hello = out.hello or {}
    clean = out.done and result.status == "ok"
    marks = _marks(plan, rec, out.done)
    if not plan.asserts:
        marks = (StepMark("check(candidate)", clean, "" if clean else "the tests did not pass"),)
    over = out.over.kind if out.over else ""

    if "syntax" in hello:
        return Verdict("unparseable", why=f"does not compile: {_text(hello['syntax'])}")
    if "memory" in hello or over == "memory" or result.status == "memory":
        return Verdict("error", steps=marks, why=f"memory limit of {memory_mb} MiB exceeded")
    if over == "timeout" or result.status == "timeout":
        why = out.over.why if over == "timeout" else result.why
        return Verdict("timeout", steps=marks, why=f"{why} exceeded")
    if over == "channel":
        return Verdict("wrong", steps=marks, why=out.over.why[:200])
    if result.status in ("signal", "error") and not out.done:
        return Verdict("error", steps=marks, why=result.why or "the sandbox failed")
    if out.test_error:
        return Verdict("error", why=out.test_error)
    if "missing" in hello:
        return Verdict("wrong", why=f"the program defines no function {_text(hello['missing'])!r}")
    if "error" in hello:
        return Verdict("wrong", steps=marks, why=f"the solution raised {_text(hello['error'])}")
    if out.check_error:
        return Verdict("wrong", steps=marks, why=f"the tests raised {out.check_error}")
    if not clean:
        why = out.over.why if out.over else "the program stopped before the tests finished"
        if over == "closed" and result.exit_code is not None:
            why += f" (exit code {result.exit_code})"
        elif not out.over and result.why:
            why = f"{why}: {result.why}"
        return Verdict("wrong", steps=marks, why=why[:200])
    bad = next((m for m in marks if not m.ok), None)
    if bad is not None:
        return Verdict("wrong", steps=marks, why=f"{bad.text[:80]}: {bad.why}"[:200])
    return Verdict("correct", steps=marks)


def _text(value) -> str:
    """A driver's ``[name, message]`` (or a plain string) as one short line."""
    if isinstance(value, list) and len(value) == 2:
        name, msg = (str(v) for v in value)
        value = f"{name}: {msg}" if msg else name
    return " ".join(str(value).split())[:160]
