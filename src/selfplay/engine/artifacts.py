"""Run-directory I/O. Every artifact is written under a temporary name and renamed into place,
so a killed run never leaves a half-written file that looks finished."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from selfplay.errors import ConfigError


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """One JSON object per line."""
    write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict]:
    """The objects of a JSON-lines artifact; a damaged line is a one-line error naming the file."""
    try:
        return [json.loads(line) for line in Path(path).read_text().splitlines() if line]
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"{path}: not valid JSON lines") from None


def read_json(path: Path):
    """A JSON artifact; a damaged one is a one-line error naming the file."""
    try:
        return json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise ConfigError(
            f"{path}: not valid JSON; delete it to redo the stage that wrote it"
        ) from None


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(value):
    """``value`` with every lone surrogate in its strings (model text, an exception message) made
    U+FFFD, at any depth of lists and dicts: UTF-8 (Parquet, a terminal) cannot encode them.

    >>> clean_text({"why": "bad \\ud800 byte", "steps": [("ok", "\\udfff")]})
    {'why': 'bad \ufffd byte', 'steps': [['ok', '\ufffd']]}
    """
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {k: clean_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_text(v) for v in value]
    return value


def union_rows(records: list[dict]) -> list[dict]:
    """Every record with every key that any record has (in order of first appearance; a missing
    one is None), so that no column is lost to the first record's schema."""
    keys = list(dict.fromkeys(k for r in records for k in r))
    return [{k: r.get(k) for k in keys} for r in records]


def write_parquet(path: Path, records: list[dict]) -> None:
    """Records -> Parquet (``pyarrow``, the schema ``datasets`` would infer, so
    ``load_dataset('parquet', ...)`` reads it back; a third of the time ``datasets`` takes).

    The schema is the union of all records' keys, and text that UTF-8 cannot hold is made
    U+FFFD (:func:`clean_text`), so a row never loses a field and model text never fails a write."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    pq.write_table(pa.Table.from_pylist(union_rows(clean_text(records))), str(tmp))
    os.replace(tmp, path)


def read_parquet(path: Path) -> list[dict]:
    """A Parquet artifact's rows; a damaged (e.g. truncated) one is a one-line error naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(str(path)).to_pylist()
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ConfigError(
            f"{path}: not a readable Parquet file ({type(exc).__name__}); delete it to redo the "
            "stage that wrote it"
        ) from None


def save_model_dir(path: Path, model, tokenizer) -> None:
    """``save_pretrained`` into a temporary directory, then rename it to ``path``."""
    tmp = _tmp(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    if path.exists():  # a stale directory from an older layout; the stage was not marked done
        shutil.rmtree(path)
    os.replace(tmp, path)


def clean_temporaries(run_dir: Path) -> None:
    """Remove temporaries left by a killed run."""
    for p in run_dir.rglob(".*.tmp-*"):
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
