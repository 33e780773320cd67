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
