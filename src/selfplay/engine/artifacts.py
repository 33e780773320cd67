"""Run-directory I/O. Every artifact is written under a temporary name and renamed into place,
so a killed run never leaves a half-written file that looks finished."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

from selfplay.errors import ConfigError


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(clean_text(text))  # a lone surrogate (a name that is not UTF-8): U+FFFD
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
        raise damaged(path, "not valid JSON lines") from None


STAGE_NAME = re.compile(r"seed|iter_(\d+)")
"""A stage directory's name: ``seed`` (round 0) or ``iter_<k>``."""


def stage_round(name: str) -> int | None:
    """The round of a stage directory's name (``seed``: 0, ``iter_003``: 3); ``None`` for any
    other name."""
    m = STAGE_NAME.fullmatch(name)
    return None if m is None else int(m[1] or 0)


def stage_dirs(run_dir: Path) -> list[Path]:
    """The run's stage directories, finished or not, in order of their rounds."""
    dirs = [p for p in Path(run_dir).iterdir() if p.is_dir() and stage_round(p.name) is not None]
    return sorted(dirs, key=lambda p: stage_round(p.name))


def redo_command(run_dir: Path, stage: str) -> str:
    """The one command that redoes ``stage`` of the run in ``run_dir`` (see :func:`redo_stage`)."""
    return f"selfplay run {shlex.quote(str(Path(run_dir) / 'config.yaml'))} --redo {stage}"


def repair_hint(path: Path) -> str:
    """How to write a damaged artifact of a run again: for a file in a stage directory, the
    command that redoes the stage and the ones after it (which read what it wrote); for a file
    of the run's own (``final.json``, ``fresh.parquet``), deleting it (a rerun writes it again);
    elsewhere, "" (nothing to say)."""
    path = Path(path)
    for d in path.parents:
        if stage_round(d.name) is not None and (d.parent / "config.yaml").is_file():
            k = stage_round(d.name)
            later = [p.name for p in stage_dirs(d.parent) if stage_round(p.name) > k]
            after = ""
            if later:
                names = ", ".join(later[:3]) + (", ..." if len(later) > 3 else "")
                rounds = "round" if len(later) == 1 else f"{len(later)} rounds"
                build = "builds" if len(later) == 1 else "build"
                after = f" and the {rounds} after it, which {build} on it ({names})"
            return f"`{redo_command(d.parent, d.name)}` redoes {d.name}{after}"
    if (path.parent / "config.yaml").is_file() and path.name != "config.yaml":
        config = shlex.quote(str(path.parent / "config.yaml"))
        return f"delete it and `selfplay run {config}` writes it again"
    return ""


def damaged(path: Path, what: str) -> ConfigError:
    """The one-line error for a damaged artifact: its path, what is wrong, and (in a run
    directory) the command that writes it again (:func:`repair_hint`)."""
    hint = repair_hint(path)
    return ConfigError(f"{path}: {what}" + (f"; {hint}" if hint else ""))


def read_json(path: Path):
    """A JSON artifact; a damaged one, or a stage record (:data:`RECORDS`) with a value of the
    wrong type, is a one-line error naming the file (and the key) and how to write it again."""
    try:
        obj = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise damaged(path, "not valid JSON") from None
    fields = RECORDS.get(Path(path).name)
    if fields is not None:
        check_fields(path, obj, fields)
    return obj


# ------------------------------------------------------------------------------------------------
# What the stage records hold: the fields that the loop and the views read, by type


METRICS_FIELDS = {
    "": "a mapping",
    "stage": "text",
    "iteration": "a whole number",
    "source": "text",
    "method": "text",
    "raw": "a mapping",
    "raw.examples": "a number",
    "raw.tokens": "a number",
    "eval": "a mapping",
    "eval.accuracy": "a mapping of difficulty to number",
    "eval.accuracy_in": "a number or null",
    "eval.accuracy_harder": "a number or null",
    "eval.truncated": "a mapping of difficulty to number",
    "eval.solved": "a number or null",
    "train": "a mapping",
    "train.tokens": "a number",
    "train.steps": "a number",
    "train.params": "a number",
    "train.first_loss": "a number or null",
    "train.final_loss": "a number or null",
    "generate": "a mapping",
    "generate.pass_rate": "a number or null",
    "generate.valid_rate": "a number or null",
    "generate.pass_rate_by_difficulty": "a mapping of difficulty to number",
    "generate.generated_tokens": "a number",
    "generate.samples": "a number",
    "generate.truncated": "a number",
    "generate.seconds": "a number",
    "filter": "a mapping",
    "filter.kept": "a number or null",
    "filter.problems": "a number or null",
    "filter.label_accuracy": "a number or null",
    "frontier": "a mapping",
    "frontier.probe_solved": "a number or null",
    "frontier.practice": "a list",
    "frontier.trained_max": "a number or null",
    "seconds": "a mapping",
    "seconds.total": "a number",
    "cumulative": "a mapping of numbers",
}
"""A stage's ``metrics.json``: dotted key -> the type its value must have where it is present
("" is the whole record); :data:`REQUIRED` says which must be there."""


def _block(prefix: str) -> dict[str, str]:
    """The fields of :data:`METRICS_FIELDS` under ``prefix`` (a block kept in a file of its own)."""
    n = len(prefix) + 1
    return {"": "a mapping"} | {
        k[n:]: v for k, v in METRICS_FIELDS.items() if k.startswith(prefix + ".")
    }


RECORDS = {
    "metrics.json": METRICS_FIELDS,
    "grpo.json": METRICS_FIELDS,
    "eval.json": {k: v for k, v in METRICS_FIELDS.items() if k.split(".")[0] in ("", "eval")}
    | {"seconds": "a number"},
    "final.json": {k: v for k, v in METRICS_FIELDS.items() if k.split(".")[0] in ("", "eval")}
    | {"model": "text", "stop": "text", "seconds": "a number"},
    "train.json": _block("train") | {"seconds": "a number"},
    "generate.json": _block("generate"),
    "verify.json": {"": "a mapping", "verified": "a number", "seconds": "a number"},
    "raw.json": _block("raw"),
    "probe.json": {"": "a mapping of difficulty to number"},
}
"""The stage records :func:`read_json` checks, by file name: the fields of each, as in
:data:`METRICS_FIELDS`."""

REQUIRED = ("stage", "iteration", "eval.accuracy", "train.tokens", "seconds.total")
"""The fields of ``metrics.json`` every view of a stage reads."""


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _difficulty_key(k) -> bool:
    return k == "all" or (isinstance(k, str) and k.lstrip("-").isdigit())


_KINDS = {
    "a mapping": lambda v: isinstance(v, dict),
    "a list": lambda v: isinstance(v, list),
    "text": lambda v: isinstance(v, str),
    "a whole number": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "a number": _is_number,
    "a number or null": lambda v: v is None or _is_number(v),
    "a mapping of numbers": lambda v: isinstance(v, dict) and all(map(_is_number, v.values())),
    "a mapping of difficulty to number": lambda v: (
        isinstance(v, dict)
        and all(_difficulty_key(k) and (x is None or _is_number(x)) for k, x in v.items())
    ),
}


def _lookup(obj, key: str):
    """``obj``'s value at a dotted ``key`` ("" is ``obj``); ``KeyError`` where it is absent."""
    for part in key.split(".") if key else ():
        if not isinstance(obj, dict) or part not in obj:
            raise KeyError(key)
        obj = obj[part]
    return obj


def _shown(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_fields(path: Path, obj, fields: dict[str, str], require: tuple[str, ...] = ()) -> None:
    """A one-line error naming ``path`` and the first key of ``obj`` whose value is not of its
    type in ``fields`` (dotted key -> kind), or the first key of ``require`` that is missing."""
    for key, kind in fields.items():
        try:
            value = _lookup(obj, key)
        except KeyError:
            continue
        if _KINDS[kind](value):
            continue
        if isinstance(value, dict) and kind.startswith("a mapping of"):  # name the entry
            entry = "a number or null" if "difficulty" in kind else "a number"
            for k, x in value.items():
                name = f"{key}.{k}" if key else str(k)
                if "difficulty" in kind and not _difficulty_key(k):
                    raise damaged(path, f"{name}: {k!r} is not a difficulty")
                if not _KINDS[entry](x):
                    raise damaged(path, f"{name} is {_shown(x)}, not {entry}")
        where = f"{key} is" if key else "holds"
        raise damaged(path, f"{where} {_shown(value)}, not {kind}")
    for key in require:
        try:
            _lookup(obj, key)
        except KeyError:
            raise damaged(path, f"has no {key}") from None


# ------------------------------------------------------------------------------------------------
# Parquet


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
    table = pa.Table.from_pylist(union_rows(clean_text(records)))
    with open(tmp, "wb") as f:  # a file object: any path the OS takes (not only UTF-8 names)
        pq.write_table(table, f)
    os.replace(tmp, path)


COLUMNS = {
    "raw.parquet": ("prompt", "completion", "problem_id", "difficulty", "source"),
    "fresh.parquet": ("prompt", "completion", "problem_id", "difficulty", "source"),
    "completions.parquet": ("problem_id", "prompt", "text"),
    "verified.parquet": ("problem_id", "prompt", "text", "status"),
    "samples.parquet": (
        "problem_id", "difficulty", "prompt", "text", "status", "kept", "filter_reason",
    ),
    "kept.parquet": ("problem_id", "difficulty", "prompt", "text"),
    "eval_samples.parquet": ("problem_id", "difficulty", "prompt", "text", "status"),
}  # fmt: skip
"""The columns that readers of each Parquet artifact (by file name) take."""


def _check_columns(path: Path, names: list[str]) -> None:
    missing = [c for c in COLUMNS.get(Path(path).name, ()) if c not in names]
    if missing:
        has = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "") or "none"
        lacks = ", ".join(missing[:4]) + (
            f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        )
        raise damaged(path, f"lacks the column{'s' * (len(missing) > 1)} {lacks} (it has {has})")


def read_parquet(path: Path) -> list[dict]:
    """A Parquet artifact's rows; a damaged (e.g. truncated) one, or one without the columns its
    readers take (:data:`COLUMNS`), is a one-line error naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with open(path, "rb") as f:  # a file object: any path the OS takes
            table = pq.read_table(f)
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise damaged(path, f"not a readable Parquet file ({type(exc).__name__})") from None
    _check_columns(path, table.column_names)
    return table.to_pylist()


def check_parquet(path: Path) -> None:
    """A one-line error where ``path`` is not a readable Parquet file with the columns of
    :data:`COLUMNS` (its footer only: quick for any size)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with open(path, "rb") as f:
            names = pq.read_schema(f).names
    except (pa.ArrowException, OSError) as exc:
        raise damaged(path, f"not a readable Parquet file ({type(exc).__name__})") from None
    _check_columns(path, names)


def check_safetensors(path: Path) -> None:
    """A one-line error where ``path`` is not a whole safetensors file (its header, and that
    the tensors it lists fill the file; not their values)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except (SafetensorError, OSError, ValueError) as exc:
        raise damaged(path, f"not a readable safetensors file ({exc})") from None


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
