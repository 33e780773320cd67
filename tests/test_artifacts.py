"""Run-directory I/O: atomic writes, and damaged files read as one-line errors naming the file."""

from __future__ import annotations

import pytest

from selfplay.cli import main
from selfplay.engine import artifacts
from selfplay.errors import ConfigError


def test_round_trip_and_no_temporaries(tmp_path):
    artifacts.write_json(tmp_path / "a.json", {"x": [1, 2]})
    artifacts.write_parquet(tmp_path / "a.parquet", [{"x": 1, "y": "s"}])
    assert artifacts.read_json(tmp_path / "a.json") == {"x": [1, 2]}
    assert artifacts.read_parquet(tmp_path / "a.parquet") == [{"x": 1, "y": "s"}]
    assert not list(tmp_path.glob(".*tmp*"))


def test_damaged_files_are_one_line_errors_naming_them(tmp_path):
    artifacts.write_parquet(tmp_path / "s.parquet", [{"x": i} for i in range(100)])
    data = (tmp_path / "s.parquet").read_bytes()
    (tmp_path / "s.parquet").write_bytes(data[: len(data) // 2])  # truncated
    (tmp_path / "m.json").write_text('{"stage": "seed", ')
    for path, read in [
        (tmp_path / "s.parquet", artifacts.read_parquet),
        (tmp_path / "m.json", artifacts.read_json),
    ]:
        with pytest.raises(ConfigError) as info:
            read(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError):
        artifacts.read_parquet(tmp_path / "missing.parquet")


def test_cli_on_a_run_directory_with_garbage_files(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "seed").mkdir(parents=True)
    (run / "config.yaml").write_text("name: run\n")
    (run / "seed" / "metrics.json").write_text("garbage")
    assert main(["summary", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "seed/metrics.json: not valid JSON" in err
    (run / "config.yaml").write_text("train: [1, 2\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"output_dir: {run}\n")
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "config.yaml: not a readable config" in err


def test_parquet_keeps_every_key_of_every_row(tmp_path):
    # The schema is the union: a key the first row lacks is not dropped from the later rows.
    rows = [{"acc_1": 1.0}, {"acc_1": 0.5, "acc_7": 0.9}]
    artifacts.write_parquet(tmp_path / "r.parquet", rows)
    assert artifacts.read_parquet(tmp_path / "r.parquet") == [
        {"acc_1": 1.0, "acc_7": None},
        {"acc_1": 0.5, "acc_7": 0.9},
    ]


def test_parquet_takes_text_utf8_cannot_hold(tmp_path):
    # A lone surrogate in model text or an exception message must not fail the write.
    rows = [{"text": "9+6=15\ud800", "steps": [{"why": "bad \udfff"}]}]
    artifacts.write_parquet(tmp_path / "s.parquet", rows)
    back = artifacts.read_parquet(tmp_path / "s.parquet")
    assert back == [{"text": "9+6=15\ufffd", "steps": [{"why": "bad \ufffd"}]}]


def test_parquet_artifacts_load_as_a_hugging_face_dataset(tmp_path):
    from datasets import load_dataset

    rows = [{"text": "a", "steps": [{"ok": True, "why": ""}]}, {"text": "b", "steps": []}]
    artifacts.write_parquet(tmp_path / "s.parquet", rows)
    ds = load_dataset("parquet", data_files=str(tmp_path / "s.parquet"), split="train")
    assert ds.to_list() == rows


def test_stage_records_are_checked_by_type_naming_the_key_and_the_redo(tmp_path):
    import json

    run = tmp_path / "run"
    (run / "iter_001").mkdir(parents=True)
    (run / "config.yaml").write_text("name: run\n")
    path = run / "iter_001" / "metrics.json"
    for record, message in [
        ({"eval": {"accuracy": {"1": "high"}}}, 'eval.accuracy.1 is "high", not a number or null'),
        ({"eval": [1]}, "eval is [1], not a mapping"),
        ([1, 2], "holds [1, 2], not a mapping"),
        ({"iteration": True}, "iteration is true, not a whole number"),
        ({"eval": {"accuracy": {"x": 0.5}}}, "eval.accuracy.x: 'x' is not a difficulty"),
        ({"cumulative": {"flops": "many"}}, 'cumulative.flops is "many", not a number'),
        ({"train": {"tokens": None}}, "train.tokens is null, not a number"),
    ]:
        path.write_text(json.dumps(record))
        with pytest.raises(ConfigError) as info:
            artifacts.read_json(path)
        text = str(info.value)
        assert text.startswith(f"{path}: {message}; `selfplay run {run / 'config.yaml'}"), text
        assert text.endswith("--redo iter_001` redoes iter_001") and "\n" not in text
    # A reader takes a record with fields missing; a view asks for the fields it reads.
    path.write_text('{"iteration": 1}')
    assert artifacts.read_json(path) == {"iteration": 1}
    with pytest.raises(ConfigError, match="metrics.json: has no stage; `selfplay run"):
        artifacts.check_fields(path, {"iteration": 1}, {}, artifacts.REQUIRED)
    # Out of a run directory there is no stage to redo: the error says what is wrong, no more.
    (tmp_path / "eval.json").write_text('{"eval": 3}')
    with pytest.raises(ConfigError) as info:
        artifacts.read_json(tmp_path / "eval.json")
    assert str(info.value) == f"{tmp_path / 'eval.json'}: eval is 3, not a mapping"


def test_parquet_artifacts_are_checked_for_the_columns_their_readers_take(tmp_path):
    artifacts.write_parquet(tmp_path / "kept.parquet", [{"foo": 1}])
    lacks = "kept.parquet: lacks the columns problem_id, difficulty, prompt, text (it has foo)"
    for read in (artifacts.read_parquet, artifacts.check_parquet):
        with pytest.raises(ConfigError, match=lacks.replace("(", r"\(").replace(")", r"\)")):
            read(tmp_path / "kept.parquet")
    artifacts.write_parquet(tmp_path / "other.parquet", [{"foo": 1}])  # no columns asked of it
    assert artifacts.read_parquet(tmp_path / "other.parquet") == [{"foo": 1}]
    (tmp_path / "w.safetensors").write_bytes(b"\xff" * 100)
    with pytest.raises(ConfigError, match="w.safetensors: not a readable safetensors file"):
        artifacts.check_safetensors(tmp_path / "w.safetensors")


def test_a_directory_name_that_is_not_utf8_holds_artifacts(tmp_path):
    """A name the OS gives back with a lone surrogate (bytes that are not UTF-8) is a place like
    any: Parquet goes through a file object, and text with such a name in it is written whole."""
    from selfplay.engine import artifacts

    where = tmp_path / "run\udcff"
    artifacts.write_parquet(where / "s.parquet", [{"a": 1, "text": "x\ud800"}])
    assert artifacts.read_parquet(where / "s.parquet") == [{"a": 1, "text": "x\ufffd"}]
    artifacts.write_text(where / "report.html", f"<title>{where}</title>")
    assert "run\ufffd" in (where / "report.html").read_text()
