"""The program run in the sandbox: the candidate's code and a loop that calls it, nothing else.

It never sees the tests or the expected values. Over the sandbox's channel (length-prefixed
frames) the verifier sends ``marshal``-ed ``(prompt, completion, entry_point)``, the driver
compiles and runs the solution and answers ``{"ready": 1}`` (or ``syntax`` / ``error`` /
``missing`` / ``memory``); then, for every call the tests make, the verifier sends ``marshal``-ed
``(args, kwargs)`` and the driver answers with what the entry point returned, as data:

* JSON for ``str``, ``int``, ``float`` (``NaN``/``Infinity`` included), ``bool``, ``None`` and
  ``list``; a one-key object for the rest: ``{"t": [...]}`` tuple, ``{"d": [[k, v], ...]}`` dict,
  ``{"s": [...]}`` set, ``{"f": [...]}`` frozenset, ``{"b": "hex"}`` bytes, ``{"a": "hex"}``
  bytearray, ``{"c": [re, im]}`` complex, ``{"i": "hex"}`` an int too long for JSON, and for the
  standard library's classes ``{"C": [[k, n], ...]}`` Counter, ``{"O": [[k, v], ...]}``
  OrderedDict, ``{"Q": [numerator, denominator]}`` Fraction, ``{"D": "text"}`` Decimal;
* a value of a subclass of one of these as what comparing it compares: a namedtuple or an
  ``IntEnum`` member as its tuple or int, a ``defaultdict`` as its dict, read with the base type's
  own methods (not the subclass's, which may say anything);
* ``{"bad": why}`` for anything else (a generator, an object of the solution's own class),
  ``{"raise": [name, message]}`` if it raised, ``{"memory": 1}`` on ``MemoryError``.

Whatever the candidate does to this loop (it runs in the same process and can rewrite it) it can
only change the values the verifier receives, which is what returning them would do; the verdict
is made in the verifier's process (:mod:`selfplay.tasks.code.judge`).
"""

from __future__ import annotations

import inspect
from functools import cache


def _driver_main() -> None:  # pragma: no cover - runs in the sandboxed child
    import builtins
    import marshal
    import os
    from _json import encode_basestring_ascii as quote
    from sys import modules  # already loaded: the standard library's classes are looked up here

    read_fd, write_fd = globals().pop("sandbox_channel")
    globals().pop("sandbox_report", None)
    type_, len_, str_, memory_error = type, len, str, MemoryError
    loads, fmt, int_repr, float_repr = marshal.loads, format, int.__repr__, float.__repr__
    floats = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}

    def read_exactly(n: int) -> bytes:
        parts = []
        while n:
            chunk = os.read(read_fd, min(n, 1 << 20))
            if not chunk:
                os._exit(0)  # the verifier is done
            parts.append(chunk)
            n -= len_(chunk)
        return b"".join(parts)

    def receive():
        return loads(read_exactly(int.from_bytes(read_exactly(4), "big")))

    def send(obj) -> None:
        data = obj.encode()
        data = len_(data).to_bytes(4, "big") + data
        while data:
            data = data[os.write(write_fd, data) :]

    class NotPlain(Exception):
        pass

    def encode(x) -> str:
        """JSON text of a value (no json module: importing it costs start-up time)."""
        t = type_(x)
        if t is str:
            return quote(x)
        if t is bool:
            return "true" if x else "false"
        if x is None:
            return "null"
        if t is int:
            return int_repr(x) if -(1 << 63) < x < 1 << 63 else '{"i":"' + fmt(x, "x") + '"}'
        if t is float:
            return floats.get(float_repr(x)) or float_repr(x)
        if t is list:
            return "[" + members(x) + "]"
        if t is tuple:
            return '{"t":[' + members(x) + "]}"
        if t is dict:
            return '{"d":' + pairs(x.items()) + "}"
        if t is set:
            return '{"s":[' + members(x) + "]}"
        if t is frozenset:
            return '{"f":[' + members(x) + "]}"
        if t is bytes:
            return '{"b":"' + x.hex() + '"}'
        if t is complex:
            return '{"c":[' + encode(x.real) + "," + encode(x.imag) + "]}"
        return encode_other(x, t)

    def members(xs) -> str:
        return ",".join([encode(v) for v in xs])

    def pairs(items) -> str:
        return "[" + ",".join(["[" + encode(k) + "," + encode(v) + "]" for k, v in items]) + "]"

    def encode_other(x, t) -> str:
        """A standard-library class the tests may compare with plain values, or a subclass of a
        plain type; its module is in ``modules`` if the solution made one."""
        col, fractions, decimal = (modules.get(m) for m in ("collections", "fractions", "decimal"))
        if col is not None and issubclass(t, col.Counter):
            return '{"C":' + pairs(dict.items(x)) + "}"
        if col is not None and issubclass(t, col.OrderedDict):  # its order, not the dict's
            return '{"O":' + pairs(col.OrderedDict.items(x)) + "}"
        if fractions is not None and issubclass(t, fractions.Fraction):
            q = fractions.Fraction
            n, d = q.numerator.__get__(x), q.denominator.__get__(x)
            return '{"Q":[' + encode(n) + "," + encode(d) + "]}"
        if decimal is not None and issubclass(t, decimal.Decimal):
            return '{"D":' + quote(decimal.Decimal.__str__(x)) + "}"
        if issubclass(t, int):  # an IntEnum member
            return encode(int.__int__(x))
        if issubclass(t, float):
            return encode(float.__float__(x))
        if issubclass(t, str):
            return quote(str.__str__(x))
        if issubclass(t, bytes):
            return '{"b":"' + bytes.hex(x) + '"}'
        if issubclass(t, bytearray):
            return '{"a":"' + bytearray.hex(x) + '"}'
        if issubclass(t, complex):
            return encode(complex(complex.real.__get__(x), complex.imag.__get__(x)))
        if issubclass(t, list):
            return "[" + members(list.__iter__(x)) + "]"
        if issubclass(t, tuple):  # a namedtuple
            return '{"t":[' + members(tuple.__iter__(x)) + "]}"
        if issubclass(t, dict):  # a defaultdict
            return '{"d":' + pairs(dict.items(x)) + "}"
        if issubclass(t, set):
            return '{"s":[' + members(set.__iter__(x)) + "]}"
        if issubclass(t, frozenset):
            return '{"f":[' + members(frozenset.__iter__(x)) + "]}"
        raise NotPlain(t.__name__)

    def describe(exc: BaseException) -> list:
        try:
            msg = str_(exc)[:200]
        except BaseException:
            msg = ""
        return [type_(exc).__name__, msg]

    MEMORY = '{"memory":1}'
    prompt, completion, entry = receive()

    # The solution: the prompt plus the completion, or the completion after the prompt's imports
    # if it defines the entry point again and the two do not fit together.
    try:
        code = compile(prompt + completion, "solution.py", "exec")
    except memory_error:
        send(MEMORY)
        return
    except BaseException as exc:  # SyntaxError, NUL bytes, lone surrogates, nesting
        code = None
        if ("\ndef " + entry + "(") in "\n" + completion:
            imports = [ln for ln in prompt.splitlines() if ln.startswith(("import ", "from "))]
            try:  # noqa: SIM105 - contextlib would cost start-up time in the sandbox
                code = compile("\n".join(imports) + "\n" + completion, "solution.py", "exec")
            except BaseException:
                pass
        if code is None:
            send('{"syntax":' + encode(describe(exc)) + "}")
            return
    ns = {"__name__": "__solution__", "__builtins__": builtins}
    try:
        exec(code, ns)
    except memory_error:
        send(MEMORY)
        return
    except BaseException as exc:
        send('{"error":' + encode(describe(exc)) + "}")
        return
    candidate = ns.get(entry)
    if not callable(candidate):
        send('{"missing":' + encode(entry) + "}")
        return
    del ns, code, prompt, completion
    send('{"ready":1}')

    while True:
        args, kwargs = receive()
        try:
            value = candidate(*args, **kwargs)
        except memory_error:
            send(MEMORY)
            continue
        except BaseException as exc:
            send('{"raise":' + encode(describe(exc)) + "}")
            continue
        try:
            reply = '{"v":' + encode(value) + "}"
        except NotPlain as exc:
            why = f"returned an object of class {str_(exc)[:60]}, not a plain value"
            reply = '{"bad":' + encode(why) + "}"
        except RecursionError:
            reply = '{"bad":"returned a value nested too deeply"}'
        except memory_error:
            reply = MEMORY
        except BaseException as exc:  # a str() or hash that raises, a value changed meanwhile
            reply = '{"bad":' + encode("cannot send the value: " + describe(exc)[0]) + "}"
        send(reply)


@cache
def driver_source() -> str:
    return inspect.getsource(_driver_main) + "\n\n_driver_main()\n"
