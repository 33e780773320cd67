"""The ``code`` task's values: what a solution returns reaches the tests as Python would compare it
(the standard library's ``Counter``, ``OrderedDict``, ``Fraction``, ``Decimal``; subclasses of the
plain types as their base value), and no reply, returned or forged, costs the verifier more than
a bounded time and memory."""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc

import pytest

from selfplay.tasks.code import CodeTask
from selfplay.tasks.code.judge import MAX_REPLY_BYTES, MAX_SAME_HASH, BadReply, decode_value

from .shared_data import HUMANEVAL

P = (1 << 61) - 1
"""Every multiple of it hashes to 0."""
IMPORTS = (
    "from collections import Counter, OrderedDict\n"
    "from decimal import Decimal\n"
    "from fractions import Fraction\n\n\n"
)
TIMEOUT = 3.0


def body(code: str) -> str:
    """A completion: ``code`` as the function's body."""
    return "".join(f"    {line}\n" for line in code.strip("\n").splitlines())


def task_for(check: str) -> CodeTask:
    """A problem ``f(x=None)`` whose ``check`` runs ``check`` (lines, indented here)."""
    record = {
        "task_id": "Toy/values",
        "prompt": 'def f(x=None):\n    """Return the value the tests expect."""\n',
        "test": IMPORTS + "def check(candidate):\n" + body(check),
        "entry_point": "f",
    }
    return CodeTask.from_records([record], timeout=TIMEOUT, memory_mb=256)


def verify(task: CodeTask, code: str):
    return task.verify(task.problems[0], body(code))


# ------------------------------------------------------------------------------------------------
# Returned types: a right value passes, a wrong one of the same type fails

# (id, check, a right solution, a wrong one returning the same type)
TYPES = [
    (
        "Counter",
        "assert candidate('a b b a') == {'a': 2, 'b': 2}\n"
        "assert candidate('a b') == Counter({'a': 1, 'b': 1, 'c': 0})\n"  # Counter's own ==
        "assert type(candidate('a')) is Counter\n",
        "from collections import Counter\nreturn Counter(x.split())",
        "from collections import Counter\nreturn Counter(x.split() + ['a'])",
    ),
    (
        "OrderedDict",
        "assert candidate() == OrderedDict([('a', 1), ('b', 2)])\n"  # order counts
        "assert candidate() == {'b': 2, 'a': 1}\n"
        "assert type(candidate()) is OrderedDict\n",
        "from collections import OrderedDict\n"
        "d = OrderedDict([('b', 2), ('a', 1)])\nd.move_to_end('b')\nreturn d",
        "from collections import OrderedDict\nreturn OrderedDict([('b', 2), ('a', 1)])",
    ),
    (
        "defaultdict",
        "assert candidate() == {'a': [1, 2]}\nassert type(candidate()) is dict\n",
        "from collections import defaultdict\nd = defaultdict(list)\nd['a'] += [1, 2]\nreturn d",
        "from collections import defaultdict\nd = defaultdict(list)\nd['a'] += [2, 1]\nreturn d",
    ),
    (
        "bytearray",
        "assert candidate() == b'ab'\nassert type(candidate()) is bytearray\n",
        "return bytearray(b'ab')",
        "return bytearray(b'ba')",
    ),
    (
        "Fraction",
        "assert candidate() == Fraction(1, 3)\nassert candidate() * 3 == 1\n"
        "assert type(candidate()) is Fraction\n",
        "from fractions import Fraction\nreturn Fraction(2, 6)",
        "from fractions import Fraction\nreturn Fraction(1, 4)",
    ),
    (
        "Decimal",
        "assert candidate() == Decimal('1.1')\nassert str(candidate()) == '1.10'\n"
        "assert type(candidate()) is Decimal\n",
        "from decimal import Decimal\nreturn Decimal('1.1') + Decimal('0.00')",
        "from decimal import Decimal\nreturn Decimal('1.1')",  # equal, but not '1.10'
    ),
    (
        "namedtuple",
        "assert candidate() == (1, 2)\nassert type(candidate()) is tuple\n",
        "from collections import namedtuple\nreturn namedtuple('P', 'x y')(1, 2)",
        "from collections import namedtuple\nreturn namedtuple('P', 'x y')(2, 1)",
    ),
    (
        "IntEnum",
        "assert candidate() == 2\nassert type(candidate()) is int\n",
        "import enum\nreturn enum.IntEnum('C', 'A B').B",
        "import enum\nreturn enum.IntEnum('C', 'A B').A",
    ),
    (
        "int-subclass",  # its own __eq__ and __repr__ are not what is sent
        "assert candidate() == 2\nassert type(candidate()) is int\n",
        "class I(int):\n    __eq__ = lambda s, o: True\n    __repr__ = lambda s: '3'\nreturn I(2)",
        "class I(int):\n    __eq__ = lambda s, o: True\n    __repr__ = lambda s: '2'\nreturn I(3)",
    ),
    (
        "float-subclass",
        "assert candidate() == 0.5\nassert type(candidate()) is float\n",
        "class F(float):\n    __float__ = lambda s: 0.25\nreturn F(0.5)",
        "class F(float):\n    __float__ = lambda s: 0.5\nreturn F(0.25)",
    ),
    (
        "str-subclass",
        "assert candidate() == 'abc'\nassert type(candidate()) is str\n",
        "class S(str):\n    __str__ = lambda s: 'abd'\nreturn S('abc')",
        "class S(str):\n    __str__ = lambda s: 'abc'\nreturn S('abd')",
    ),
    (
        "list-subclass",
        "assert candidate() == [1, 2]\nassert type(candidate()) is list\n",
        "class L(list):\n    __iter__ = lambda s: iter([2, 1])\nreturn L([1, 2])",
        "class L(list):\n    __iter__ = lambda s: iter([1, 2])\nreturn L([2, 1])",
    ),
    (
        "tuple-subclass",
        "assert candidate() == (1, (2,))\nassert type(candidate()) is tuple\n",
        "class T(tuple):\n    pass\nreturn T([1, T([2])])",
        "class T(tuple):\n    pass\nreturn T([1, T([3])])",
    ),
    (
        "dict-subclass",
        "assert candidate() == {'a': 1}\nassert type(candidate()) is dict\n",
        "class D(dict):\n    items = lambda s: [('a', 2)]\nreturn D(a=1)",
        "class D(dict):\n    items = lambda s: [('a', 1)]\nreturn D(a=2)",
    ),
    (
        "set-subclass",
        "assert candidate() == {1, 2}\nassert type(candidate()) is set\n",
        "class S(set):\n    pass\nreturn S({1, 2})",
        "class S(set):\n    pass\nreturn S({1, 3})",
    ),
    (
        "frozenset-subclass",
        "assert candidate() == frozenset({1, 2})\nassert type(candidate()) is frozenset\n",
        "class S(frozenset):\n    pass\nreturn S({1, 2})",
        "class S(frozenset):\n    pass\nreturn S({1})",
    ),
    (
        "bool",
        "assert candidate() is True\n",
        "return 1 == 1",
        "return 1 == 2",
    ),
]


@pytest.mark.parametrize("cid, check, right, wrong", TYPES, ids=[t[0] for t in TYPES])
def test_returned_types_compare_as_python_would(cid, check, right, wrong):
    task = task_for(check)
    v = verify(task, right)
    assert v.status == "correct", v
    v = verify(task, wrong)
    assert v.status == "wrong" and "not a plain value" not in v.why, v


def test_other_objects_are_still_not_values():
    task = task_for("assert candidate() == [1]\n")
    v = verify(task, "from collections import deque\nreturn deque([1])")
    assert v.status == "wrong" and "class deque, not a plain value" in v.why, v
    v = verify(task, "import enum\nreturn enum.Enum('E', 'A').A")
    assert v.status == "wrong" and "not a plain value" in v.why, v


@pytest.mark.skipif(not HUMANEVAL.is_file(), reason=f"HumanEval is not at {HUMANEVAL}")
def test_humaneval_histogram_by_counter():
    with gzip.open(HUMANEVAL, "rt", encoding="utf-8") as f:
        record = next(r for r in map(json.loads, f) if r["task_id"] == "HumanEval/111")
    task = CodeTask.from_records([record], timeout=10.0, memory_mb=512)
    counts = (
        "from collections import Counter\n"
        "c = Counter(test.split())\n"
        "top = max(c.values(), default=0)\n"
        "return Counter({k: n for k, n in c.items() if n == top})"
    )
    assert verify(task, counts).status == "correct"
    v = verify(task, counts.replace("n == top", "n == top or n == 1"))
    assert v.status == "wrong", v


# ------------------------------------------------------------------------------------------------
# Sets and dicts of members that share one hash: refused before they are built

COLLIDING = f"n = {10 * MAX_SAME_HASH}\nkeys = [i * ((1 << 61) - 1) for i in range(n)]\n"


@pytest.mark.parametrize(
    "made",
    [
        "set(keys)",
        "frozenset(keys)",
        "dict.fromkeys(keys, 0)",
        "__import__('collections').Counter(keys)",
        "__import__('collections').OrderedDict.fromkeys(keys, 0)",
    ],
)
def test_colliding_hashes_are_refused(made):
    task = task_for("assert len(candidate()) == 320\n")
    start = time.monotonic()
    v = verify(task, COLLIDING + f"return {made}")
    assert v.status == "wrong" and "members of one hash" in v.why, v
    assert time.monotonic() - start < TIMEOUT + 2


# ------------------------------------------------------------------------------------------------
# Forged replies: the candidate writes its own frame to the channel

FORGE = (
    "import json, os, sys\n"
    "KEYS = [i * ((1 << 61) - 1) for i in range(40_000)]  # all hash to 0; 955 kB of JSON\n"
    "frame = {frame}\n"
    "data = (frame if isinstance(frame, str) else json.dumps(frame, separators=(',', ':')))\n"
    "data = data.encode()\n"
    "fd = sys._getframe(1).f_locals['write_fd']  # the driver's end of the channel\n"
    "try:\n"
    "    os.write(fd, len(data).to_bytes(4, 'big') + data)\n"
    "except OSError:\n"
    "    pass\n"
    "os._exit(0)\n"
)

# (id, the frame: a Python expression in the candidate, as JSON or as text; what the verdict says)
FORGED = [
    ("set-colliding", "{'v': {'s': KEYS}}", "40000 members of one hash"),
    ("frozenset-colliding", "{'v': {'f': KEYS}}", "40000 members of one hash"),
    ("dict-colliding", "{'v': {'d': [[k, 0] for k in KEYS[:30_000]]}}", "members of one hash"),
    ("Counter-colliding", "{'v': {'C': [[k, 1] for k in KEYS[:30_000]]}}", "of one hash"),
    ("too-long", "{'v': [KEYS] * 4}", "larger than 1 MiB"),
    ("decimal-exponent", "{'v': {'D': '1e999999999'}}", "too large an exponent"),
    ("decimal-digits", "{'v': {'D': '7' * 100_000}}", "too many digits"),
    ("fraction-digits", "{'v': {'Q': [{'i': 'f' * 200_000}, {'i': 'e' * 200_000}]}}", "digits"),
    ("raise-not-text", "{'raise': [{'i': 'f' * 100_000}, 'x']}", "wrong shape"),
    ("bad-not-text", "{'bad': {'i': 'f' * 100_000}}", "wrong shape"),
    ("reply-in-a-value", "{'v': [{'v': 1}]}", "wrong shape"),
    ("two-keys", "{'v': 1, 'x': 2}", "broken value"),
    ("nested", "'{\"v\":' + '[' * 500_000 + ']' * 500_000 + '}'", "nested too deeply"),
]


@pytest.mark.parametrize("fid, frame, why", FORGED, ids=[f[0] for f in FORGED])
def test_forged_replies_get_a_verdict_quickly(fid, frame, why):
    task = task_for("assert candidate() == 1\n")
    start = time.monotonic()
    v = verify(task, FORGE.format(frame=frame))
    assert v.status == "wrong" and why in v.why, v
    assert time.monotonic() - start < TIMEOUT + 2


def test_colliding_set_just_under_the_cap_decodes_in_linear_time():
    text = '{"s":[' + ",".join(str(i * P) for i in range(40_000)) + "]}"
    assert len(text) < MAX_REPLY_BYTES
    start = time.monotonic()
    with pytest.raises(BadReply, match="40000 members of one hash"):
        decode_value(text)
    assert time.monotonic() - start < 5  # building the set: about 9 s on one core


@pytest.mark.parametrize(
    "text",
    [
        '{"D":"1e-999999999"}',
        '{"D":"' + "1" * 5000 + '"}',
        '{"Q":[1,0]}',
        '{"Q":[1,-3]}',
        '{"Q":[1.5,2]}',
        '{"Q":[{"i":"' + "f" * 4000 + '"},3]}',
        '{"C":[[[1],2]]}',
        '{"O":[1,2]}',
        '{"a":"zz"}',
        '{"s":[' + ",".join(["0"] * (MAX_SAME_HASH + 1)) + "]}",  # forged duplicates
    ],
)
def test_decode_value_refuses(text):
    with pytest.raises(BadReply):
        decode_value(text)


def test_decode_value_rebuilds_the_standard_library_classes():
    from collections import Counter, OrderedDict
    from decimal import Decimal
    from fractions import Fraction

    assert decode_value('{"C":[["a",2]]}') == Counter(a=2)
    assert type(decode_value('{"C":[]}')) is Counter
    assert list(decode_value('{"O":[["b",1],["a",2]]}').items()) == [("b", 1), ("a", 2)]
    assert decode_value('{"Q":[2,6]}') == Fraction(1, 3)
    assert str(decode_value('{"D":"1.10"}')) == "1.10"
    assert decode_value('{"D":"NaN"}').is_nan()
    assert decode_value('{"a":"00ff"}') == bytearray(b"\x00\xff")
    assert decode_value('{"s":[-1,-2]}') == {-1, -2}  # both hash to -2
    assert decode_value('{"d":[[1,{"Q":[1,2]}]]}') == {1: Fraction(1, 2)}
    assert type(decode_value('{"d":[]}')) is dict
    assert isinstance(decode_value('{"D":"1"}'), Decimal)
    assert type(decode_value('{"O":[]}')) is OrderedDict


# ------------------------------------------------------------------------------------------------
# Memory: what a reply costs this process


def _peak_mb(task: CodeTask, code: str) -> tuple[object, float]:
    tracemalloc.start()
    try:
        v = verify(task, code)
        return v, tracemalloc.get_traced_memory()[1] / (1 << 20)
    finally:
        tracemalloc.stop()


def test_a_four_megabyte_value_is_refused_unread():
    task = task_for("assert len(candidate()) == 400_000\n")
    v, peak = _peak_mb(task, "return [set() for _ in range(400_000)]")  # 4 MB of '{"s":[]}'
    assert v.status == "wrong" and "larger than 1 MiB" in v.why, v
    assert peak < 64, peak


def test_a_value_under_the_cap_costs_bounded_memory():
    n = (MAX_REPLY_BYTES - 16) // len('{"s":[]},')  # the most memory per byte sent
    task = task_for(f"assert len(candidate()) == {n}\n")
    v, peak = _peak_mb(task, f"return [set() for _ in range({n})]")
    assert v.status == "correct", v
    assert peak < 64, peak


def test_many_large_replies_end_at_the_time_limit():
    """A reply is read only while the run has time left, and rebuilding one is quick: a test
    calling 100 times for a value of nearly 1 MiB ends at the limit, not 100 rebuilds later."""
    task = task_for("for i in range(100):\n    assert candidate(i) == i\n")
    code = (
        "global V\ntry:\n    return V\nexcept NameError:\n"
        "    V = [set() for _ in range(116_000)]\n    return V"
    )
    start = time.monotonic()
    v = verify(task, code)
    assert v.status == "timeout", v
    assert time.monotonic() - start < TIMEOUT + 2
