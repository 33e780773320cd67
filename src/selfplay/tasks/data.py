"""Reading task data: local JSONL / JSONL.gz / Parquet files, or a Hugging Face hub dataset by name.

Strict reading (:func:`read_records`) stops at the first bad record with a one-line
:class:`DataError` naming the file and line; lenient reading (:func:`iter_records`) yields a reason
in place of each bad record, so a verifier can give that line its own ``error`` verdict and go on.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selfplay.errors import ConfigError

LOCAL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")


class DataError(ConfigError):
    """A data file that cannot be read as records; one line that names the file (and line)."""


def _is_local(source: str) -> bool:
    p = Path(source)
    return p.exists() or source.startswith((".", "/", "~")) or source.endswith(LOCAL_SUFFIXES)


def parse_record(line: str) -> tuple[dict[str, Any] | None, str]:
    """One JSONL line as ``(record, "")``, or ``(None, why)`` when it is not a JSON object."""
    try:
        rec = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return None, "not valid JSON"
    if not isinstance(rec, dict):
        return None, f"a JSON {type(rec).__name__}, not an object"
    return rec, ""


def iter_records(source: str | Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """``(line number, record or None, reason)`` for every line/row of a local file."""
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise DataError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None
        for i, row in enumerate(table.to_pylist(), start=1):
            yield i, row, ""
        return
    opener = gzip.open if name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="strict") as f:
            for lineno, line in enumerate(f, start=1):
                if line.strip():
                    yield lineno, *parse_record(line)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None


def read_records(
    source: str | Path, subset: str | None = None, split: str = "train", required: tuple = ()
) -> list[dict[str, Any]]:
    """All records of a local file or hub dataset; ``required`` fields must be present in each."""
    source = str(source)
    if _is_local(source):
        records = []
        for lineno, rec, why in iter_records(source):
            if rec is None:
                raise DataError(f"{source}:{lineno}: {why}")
            records.append((lineno, rec))
    else:
        records = list(enumerate(_load_hub(source, subset, split), start=1))
    for lineno, rec in records:
        missing = [k for k in required if k not in rec]
        if missing:
            raise DataError(f"{source}:{lineno}: missing field {missing[0]!r}")
    return [rec for _, rec in records]


def _load_hub(name: str, subset: str | None, split: str) -> list[dict[str, Any]]:
    try:
        import datasets

        ds = datasets.load_dataset(name, subset, split=split)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{name}: cannot load the hub dataset (subset {subset!r}, split {split!r}): {first[:200]}"
        ) from None
    return [dict(r) for r in ds]
