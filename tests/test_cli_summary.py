"""``selfplay summary``: the stage table in a terminal's width, csv and json, the run's warnings
(the training loss among them) and the stage in progress."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest

from selfplay import bars
from selfplay.cli import main, summary_table
from selfplay.views.run import progress_line, run_warnings, stage_values

STAGES = ["seed", "iter_001", "iter_002", "iter_003"]


def _rows(n_diffs: int = 8, climb: bool = False) -> list[dict]:
    """A finished run's metrics rows with numbers as wide as a long run's (millions of tokens,
    thousands of seconds) and accuracies that a rounded cell would not show whole."""
    rows = []
    for k, stage in enumerate(STAGES):
        acc = {str(d): (k + d) / (n_diffs + 4) for d in range(1, n_diffs + 1)}
        row = {
            "stage": stage, "iteration": k,
            "eval": {"accuracy": acc | {"all": 0.5}, "accuracy_in": 0.703125,
                     "accuracy_harder": 0.0390625},
            "train": {"tokens": 1_234_567 * (k + 1), "steps": 200, "first_loss": 2.5,
                      "final_loss": 0.61},
            "seconds": {"total": 1234.56 * (k + 1)},
        }  # fmt: skip
        if k:
            row["source"] = "selfplay"
            row["generate"] = {
                "pass_rate": 0.734375, "valid_rate": 0.6875, "generated_tokens": 23_456_789,
            }  # fmt: skip
            row["filter"] = {"kept": 1234}
            if climb:
                row["filter"] |= {"problems": 2000, "label_accuracy": 0.91}
        if climb:
            row["frontier"] = {"probe_solved": k + 2, "practice": [k + 3, k + 4, k + 5]}
            row["eval"]["solved"] = k + 3
        rows.append(row)
    return rows


def _render(table, width: int) -> str:
    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()


@pytest.mark.parametrize(
    "rows", [_rows(3), _rows(8), _rows(12, climb=True)], ids=["3 difficulties", "8", "climb, 12"]
)
def test_the_stage_table_fits_100_columns_and_cuts_nothing(rows):
    text = _render(summary_table(rows, "runs/arith-rounds", width=100), 100)
    lines = text.splitlines()
    assert "…" not in text and max(map(len, lines)) <= 100
    for r in rows:  # every stage on a line of its own, its name whole
        line = next(x for x in lines if r["stage"] in x.split())
        assert f"{r['train']['tokens'] / 1e6:.1f}M" in line  # the stage's tokens, not a fragment
    # Whatever narrowing took, the accuracies are there: as 0.xx or as whole percents.
    best = rows[-1]["eval"]["accuracy"][str(len(rows[-1]["eval"]["accuracy"]) - 1)]
    assert f"{best:.2f}" in text or f" {round(100 * best)}" in text


def test_a_wide_terminal_keeps_the_full_table():
    rows = _rows(3)
    text = _render(summary_table(rows, "runs/x", width=200), 200)
    assert "acc d1" in text and "1,234,567" in text and "23,456,789" in text and "…" not in text
    # Without a width (a pipe, a log file) the table is the same.
    assert _render(summary_table(rows, "runs/x"), 200) == text


def test_a_narrow_terminal_names_the_columns_it_leaves_out():
    text = _render(summary_table(_rows(12, climb=True), "runs/climb", width=100), 100)
    words = " ".join(text.split())  # the caption wraps where it likes
    assert "left out at 100 columns: gen tok, sec," in words
    assert "--format csv has every column" in words
    assert "1234/2000" in text  # a climb's kept, of the labels it made


def _write_run(d, rows: list[dict]) -> None:
    d.mkdir(parents=True)
    (d / "config.yaml").write_text("name: run\n")
    for r in rows:
        (d / ("seed" if r["iteration"] == 0 else r["stage"])).mkdir()
        (d / ("seed" if r["iteration"] == 0 else r["stage"]) / "metrics.json").write_text(
            json.dumps(r)
        )


def test_summary_writes_csv_and_json_with_unrounded_numbers(tmp_path, capsys):
    rows = _rows(3)
    _write_run(tmp_path / "run", rows)
    columns, _ = stage_values(rows)
    assert main(["summary", str(tmp_path / "run"), "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == ",".join(columns)
    table = list(csv.DictReader(io.StringIO(out)))
    assert [r["stage"] for r in table] == STAGES
    assert float(table[1]["pass"]) == 0.734375 and float(table[1]["harder"]) == 0.0390625
    assert float(table[2]["acc d1"]) == rows[2]["eval"]["accuracy"]["1"]  # 4/7, not 0.57
    assert int(table[3]["train tok"]) == 4 * 1_234_567 and float(table[3]["sec"]) == 4938.24
    assert table[0]["pass"] == ""  # the seed stage samples nothing
    assert main(["summary", str(tmp_path / "run"), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [list(r) for r in records] == [columns] * len(STAGES)
    assert records[2]["acc d1"] == rows[2]["eval"]["accuracy"]["1"]
    assert records[0]["pass"] is None and records[1]["kept"] == 1234


def test_a_bench_summary_in_every_format(tmp_path, capsys):
    b = tmp_path / "b"
    b.mkdir()
    (b / "bench.yaml").write_text("name: b\n")
    _write_run(b / "seed_0" / "sp", _rows(3))
    _write_run(b / "seed_0" / "raw", _rows(3)[:2])
    assert main(["summary", str(b), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["run"], r["stage"]) for r in records] == [
        ("seed_0/raw", "seed"), ("seed_0/raw", "iter_001"),
        *(("seed_0/sp", s) for s in STAGES),
    ]  # fmt: skip
    assert main(["summary", str(b), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("run,stage,pass,") and len(lines) == 1 + 6
    assert main(["summary", str(b)]) == 0
    out = capsys.readouterr().out
    assert str(b / "seed_0" / "sp") in out and "2 of 2 arm runs have a finished stage" in out


def test_a_bad_format_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["summary", str(tmp_path), "--format", "xml"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("selfplay summary: error: argument --format: invalid choice: 'xml'")


# ----------------------------------------------------------------------------------------------
# The training loss among the run's warnings


def _stage(k: int, **train) -> dict:
    return {
        "stage": "seed" if k == 0 else f"iter_{k:03d}", "iteration": k, "source": "selfplay",
        "filter": {"kept": 10}, "eval": {"accuracy": {"1": 0.5, "all": 0.5}},
        "train": {"tokens": 1000, "steps": 100, **train},
    }  # fmt: skip


def test_a_training_loss_that_did_not_fall_is_a_warning():
    rose = run_warnings(
        [_stage(0, first_loss=2.3, final_loss=0.5), _stage(1, first_loss=0.4, final_loss=0.9)]
    )
    assert rose == [
        "iter_001: the training loss rose from 0.400 over the first steps to 0.900 over the last "
        "of 100 steps: lower train.lr"
    ]
    (flat,) = run_warnings([_stage(0, first_loss=2.302, final_loss=2.298)])
    assert flat.startswith("seed: the training loss did not fall (from 2.302")
    assert "seed_train.lr is too low or too high" in flat and "lr_factors" not in flat
    (flat,) = run_warnings(
        [_stage(0, first_loss=2.0, final_loss=1.0), _stage(2, first_loss=1.0, final_loss=0.999)]
    )
    assert "train.lr is too low or too high" in flat and "lr_factors searches it" in flat
    (nan,) = run_warnings([_stage(1, first_loss=1.0, final_loss=float("nan"))])
    assert nan == "iter_001: the training loss diverged (final loss nan): lower train.lr"


def test_a_healthy_training_loss_is_no_warning():
    fell = [_stage(0, first_loss=2.3, final_loss=0.6), _stage(1, first_loss=0.5, final_loss=0.2)]
    assert run_warnings(fell) == []
    assert run_warnings(_rows(8)) == []
    # Too few steps to tell, data already fit, no first loss recorded (an older run), or GRPO,
    # whose loss is a policy-gradient objective: none is a warning.
    assert run_warnings([_stage(1, steps=5, first_loss=1.0, final_loss=1.2)]) == []
    assert run_warnings([_stage(1, first_loss=0.004, final_loss=0.005)]) == []
    assert run_warnings([_stage(1, final_loss=1.2)]) == []
    grpo = _stage(1, first_loss=0.01, final_loss=0.3) | {"grpo": {}}
    assert run_warnings([grpo]) == []


def test_strict_fails_a_run_whose_loss_did_not_fall(tmp_path, monkeypatch, capsys):
    from selfplay.config import dump_config
    from tests.test_loop import micro_config

    path = tmp_path / "run.yaml"
    path.write_text(dump_config(micro_config(tmp_path)))
    rows = [_stage(0, first_loss=2.3, final_loss=0.6), _stage(1, first_loss=0.4, final_loss=0.9)]
    for r in rows:
        r["seconds"] = {"total": 1.0}
    monkeypatch.setattr("selfplay.engine.loop.run", lambda cfg, **kw: rows)
    assert main(["run", str(path), "--no-progress", "--strict"]) == 3
    out = capsys.readouterr()
    assert "iter_001: the training loss rose" in out.out
    assert "--strict: the run looks broken (1 warnings above)" in out.err


# ----------------------------------------------------------------------------------------------
# The stage in progress (progress.json)


def _progress(d, **state) -> None:
    state = {
        "desc": "seed train", "n": 120, "total": 400, "unit": "step", "rate": 4.0, "eta": 70.0,
        "done": False, "time": time.time(),
    } | state  # fmt: skip
    (d / bars.PROGRESS_FILE).write_text(json.dumps(state))


def test_summary_shows_the_stage_in_progress(tmp_path, capsys):
    d = tmp_path / "run"
    d.mkdir()
    (d / "config.yaml").write_text("name: run\n")
    assert main(["summary", str(d)]) == 2
    assert "no finished stage yet" in capsys.readouterr().err
    _progress(d)
    assert main(["summary", str(d)]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"{d}: no finished stage yet; in progress: seed train: 120/400 step")
    assert "ETA 70s (reported 0s ago)" in out or "ETA 70s (reported 1s ago)" in out
    assert main(["summary", str(d), "--format", "csv"]) == 2  # no rows to write: said in one line
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no finished stage yet; in progress: seed train" in err
    (d / "seed").mkdir()
    (d / "seed" / "metrics.json").write_text(json.dumps(_rows(3)[0]))
    _progress(d, desc="generate iter_001", n=3, total=12, unit="batch", eta=None)
    assert main(["summary", str(d)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("seed" in x.split() for x in lines)
    assert lines[-1].startswith("in progress: generate iter_001: 3/12 batch, 4.0/s (reported")
    _progress(d, done=True)  # the last bar closed: nothing is running
    assert main(["summary", str(d)]) == 0
    assert "in progress" not in capsys.readouterr().out


def test_a_progress_report_says_how_old_it_is(tmp_path):
    _progress(tmp_path, time=1000.0)
    assert progress_line(tmp_path, now=1000.0 + 3 * 3600).endswith("(reported 180 min ago)")
    (tmp_path / bars.PROGRESS_FILE).write_text('{"desc": "torn"')
    assert progress_line(tmp_path) is None
    (tmp_path / bars.PROGRESS_FILE).write_text('{"desc": "no counts"}')
    assert progress_line(tmp_path) is None


def test_a_bench_summary_shows_its_arms_in_progress(tmp_path, capsys):
    b = tmp_path / "b"
    (b / "seed_0" / "sp").mkdir(parents=True)
    (b / "bench.yaml").write_text("name: b\n")
    (b / "seed_0" / "sp" / "config.yaml").write_text("name: sp\n")
    _progress(b / "seed_0" / "sp")
    assert main(["summary", str(b)]) == 0
    out = capsys.readouterr().out
    assert f"{b / 'seed_0' / 'sp'}: in progress: seed train: 120/400 step" in out
    assert main(["summary", str(b), "--format", "json"]) == 2
    assert "arms have not started" in capsys.readouterr().err


def test_the_run_views_doctests():
    import doctest

    import selfplay.views.run

    result = doctest.testmod(selfplay.views.run)
    assert result.attempted >= 3 and result.failed == 0


def test_the_plain_trainer_records_its_first_and_last_loss():
    """What the loss warning reads: the mean loss of a stage's first and last tenth of steps."""
    from selfplay.engine.models import build_char_tokenizer, build_model
    from selfplay.tasks.base import Example
    from selfplay.training.plain import train_mixture

    tok = build_char_tokenizer()
    ex = [Example("Q:21+43=", "640", "p", 2, "raw")]  # 12 tokens with </s>: 3 steps per 36
    kw = dict(batch_size=1, lr=3e-3, warmup=0.0, decay=0.0, seed=0)
    res = train_mixture(build_model("tiny", tok), tok, {"raw": ex}, {"raw": 1.0}, tokens=360, **kw)
    assert res["steps"] == 30 and res["first_loss"] > 2 * res["loss"]
    one = train_mixture(build_model("tiny", tok), tok, {"raw": ex}, {"raw": 1.0}, tokens=12, **kw)
    assert one["steps"] == 1 and one["first_loss"] is None  # one step: nothing to compare
