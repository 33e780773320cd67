"""A damaged run directory is the user's data, not a crash: every command that reads a damaged or
missing artifact says so in one line naming the file, with the command that writes it again
(``selfplay run RUN/config.yaml --redo STAGE``), and following that advice redoes the stage (and
the stages after it) until the run is whole again.

One tiny run is trained per module; each case damages a copy of it."""

from __future__ import annotations

import json
import random
import re
import shlex
import shutil
from pathlib import Path

import pytest

from selfplay.cli import main
from selfplay.config import dump_config
from selfplay.engine import artifacts
from selfplay.engine.loop import run
from tests.test_loop import micro_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STAGES = ("seed", "iter_001", "iter_002")


@pytest.fixture(scope="module")
def finished(tmp_path_factory, one_torch_thread) -> Path:
    cfg = micro_config(tmp_path_factory.mktemp("corrupt"), "finished", loop={"iterations": 2})
    run(cfg, progress=False)
    return cfg.run_dir


@pytest.fixture
def copy(finished, tmp_path) -> Path:
    """A copy of the finished run whose config names the copy's directory."""
    d = tmp_path / "run"
    shutil.copytree(finished, d, ignore=shutil.ignore_patterns(".lock"))
    path = d / "config.yaml"
    path.write_text(path.read_text().replace(str(finished), str(d)))
    return d


# ------------------------------------------------------------------------------------------------
# Ways to damage a file


def _garbage(p: Path) -> None:
    p.write_bytes(random.Random(p.name).randbytes(3000))


def _truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _wrong_columns(p: Path) -> None:
    artifacts.write_parquet(p, [{"foo": 1, "bar": "x"}, {"foo": 2, "bar": "y"}])


def _edit(change):
    def edit(p: Path) -> None:
        record = json.loads(p.read_text())
        change(record)
        p.write_text(json.dumps(record))

    return edit


def _delete(p: Path) -> None:
    shutil.rmtree(p) if p.is_dir() else p.unlink()


CASES = {
    # name: (file, damage, the commands that read it)
    "weights garbage": ("iter_002/model/model.safetensors", _garbage, {"run"}),
    "weights truncated": ("iter_001/model/model.safetensors", _truncate, {"run"}),
    "model config garbage": ("iter_002/model/config.json", _garbage, {"run"}),
    "tokenizer truncated": ("seed/model/tokenizer.json", _truncate, {"run"}),
    "samples garbage": ("iter_001/samples.parquet", _garbage, {"run", "inspect", "report"}),
    "samples truncated": ("iter_002/samples.parquet", _truncate, {"run", "inspect", "report"}),
    "samples wrong columns": (
        "iter_001/samples.parquet", _wrong_columns, {"run", "inspect", "report"},
    ),
    "kept wrong columns": ("iter_001/kept.parquet", _wrong_columns, {"run"}),
    "kept garbage": ("iter_002/kept.parquet", _garbage, {"run"}),
    "eval samples wrong columns": (
        "seed/eval_samples.parquet", _wrong_columns, {"run", "inspect", "report"},
    ),
    "eval samples truncated": (
        "iter_002/eval_samples.parquet", _truncate, {"run", "report"},
    ),
    "raw corpus wrong columns": ("seed/raw.parquet", _wrong_columns, {"run"}),
    "metrics truncated": ("iter_001/metrics.json", _truncate, {"run", "summary", "report"}),
    "metrics accuracy as text": (
        "iter_002/metrics.json", _edit(lambda m: m["eval"]["accuracy"].update({"1": "high"})),
        {"run", "summary", "report"},
    ),
    "metrics eval as a list": (
        "seed/metrics.json", _edit(lambda m: m.update(eval=[0.5, 0.25])),
        {"run", "summary", "report"},
    ),
    "metrics difficulty not a number": (
        "iter_002/metrics.json", _edit(lambda m: m["eval"]["accuracy"].update({"x": 0.5})),
        {"run", "summary", "report"},
    ),
    "metrics missing key": (
        "iter_002/metrics.json", _edit(lambda m: m.pop("train")), {"run", "summary", "report"},
    ),
    "metrics a list": (
        "iter_001/metrics.json", lambda p: p.write_text("[1, 2]"), {"run", "summary", "report"},
    ),
    "eval record garbage": ("iter_002/eval.json", _garbage, {"run"}),
    "eval record wrong type": (
        "iter_001/eval.json", _edit(lambda m: m["eval"].update(accuracy_in="high")), {"run"},
    ),
    "train record truncated": ("seed/train.json", _truncate, {"run"}),
    "generate record a list": ("iter_002/generate.json", lambda p: p.write_text("[]"), {"run"}),
    "samples deleted": ("iter_002/samples.parquet", _delete, {"run", "inspect"}),
    "checkpoint deleted": ("iter_001/model", _delete, {"run"}),
}  # fmt: skip


def _commands(d: Path, stage: str) -> dict[str, list[str]]:
    """Each command on the run, aimed at ``stage`` where it takes one."""
    k = STAGES.index(stage)
    inspect = ["--iter", str(k)] if k else ["--eval", "--iter", "0"]
    return {
        "run": ["run", str(d / "config.yaml"), "--no-progress"],
        "summary": ["summary", str(d)],
        "inspect": ["inspect", str(d), *inspect, "--limit", "1"],
        "report": ["report", str(d)],
    }


def _one_line_error(capsys, path: Path) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert err.count("\n") == 0, err
    assert err.startswith("selfplay: error: ") and str(path) in err, err
    return err


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_artifact_is_one_line_naming_it(copy, case, capsys):
    rel, damage, readers = CASES[case]
    path = copy / rel
    damage(path)
    capsys.readouterr()
    for command, argv in _commands(copy, rel.split("/")[0]).items():
        rc = main(argv)
        if command not in readers:  # a command that does not read the file is not stopped
            assert rc == 0, (command, capsys.readouterr().err)
            continue
        assert rc == 2, command
        err = _one_line_error(capsys, path)
        stage = rel.split("/")[0]
        assert f"{shlex.quote(str(copy / 'config.yaml'))} --redo {stage}`" in err, err
    if case == "samples deleted":  # the report shows the rest of the run, and says what is gone
        page = (copy / "report.html").read_text()
        warning = page.split('<p class="warning"><b>Warning:</b> ')[1].split("</p>")[0]
        assert page.index(warning) < page.index("<h2>Per stage</h2>")
        assert str(path) in warning and f"--redo {stage}`" in warning


def _redo_command(err: str) -> list[str]:
    """The arguments of the ``selfplay run ... --redo STAGE`` an error advises."""
    m = re.search(r"`selfplay (run [^`]+ --redo \S+)`", err)
    assert m, err
    return [*shlex.split(m[1]), "--no-progress"]


@pytest.mark.parametrize(
    "case",
    [
        "weights garbage", "samples garbage", "metrics accuracy as text", "samples deleted",
        "raw corpus wrong columns",
    ],
)  # fmt: skip
def test_following_the_advice_redoes_the_stage_and_the_run_finishes(copy, finished, case, capsys):
    rel, damage, _ = CASES[case]
    damage(copy / rel)
    stage = rel.split("/")[0]
    first = STAGES.index(stage)
    kept_before = {s: (copy / s / "metrics.json").stat().st_mtime_ns for s in STAGES[:first]}
    capsys.readouterr()
    assert main(_commands(copy, stage)["run"]) == 2
    redo = _redo_command(_one_line_error(capsys, copy / rel))
    assert redo[redo.index("--redo") + 1] == stage

    assert main(redo) == 0
    out = capsys.readouterr().out
    assert f"redo: removed {', '.join(s + '/' for s in STAGES[first:])}" in out
    # The stage and the ones after it were done again (the same seeds: the same results); the
    # ones before it were not touched.
    for s in STAGES[:first]:
        assert (copy / s / "metrics.json").stat().st_mtime_ns == kept_before[s]
    for s in STAGES[first:]:
        redone = artifacts.read_json(copy / s / "metrics.json")
        assert redone["eval"] == artifacts.read_json(finished / s / "metrics.json")["eval"]
        artifacts.check_safetensors(copy / s / "model" / "model.safetensors")
        name = "samples.parquet" if s != "seed" else "raw.parquet"
        assert artifacts.read_parquet(copy / s / name) == artifacts.read_parquet(
            finished / s / name
        )
    # The run is whole: resuming it does nothing, and every view reads it.
    for argv in _commands(copy, stage).values():
        assert main(argv) == 0, argv
    assert "Traceback" not in capsys.readouterr().err


def test_a_damaged_run_config_says_how_to_write_it_again(copy, tmp_path, capsys):
    cfg = micro_config(tmp_path, "run", loop={"iterations": 2})  # the config the run started with
    (tmp_path / "micro.yaml").write_text(dump_config(cfg))
    saved = copy / "config.yaml"
    saved.write_text("train: [1, 2\n")
    mtime = (copy / "iter_002" / "metrics.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["run", str(tmp_path / "micro.yaml"), "--no-progress"]) == 2
    err = _one_line_error(capsys, saved)
    m = re.search(r"`selfplay (config CONFIG \[key=value \.\.\.\]) > (\S+)`", err)
    assert m and m[2] == shlex.quote(str(saved)), err
    assert main(["config", str(tmp_path / "micro.yaml")]) == 0  # as the advice says
    saved.write_text(capsys.readouterr().out)
    assert main(["run", str(tmp_path / "micro.yaml"), "--no-progress"]) == 0  # it resumes
    assert (copy / "iter_002" / "metrics.json").stat().st_mtime_ns == mtime  # nothing redone


def test_redo_names_what_it_removes_and_refuses_a_stage_the_run_lacks(copy, capsys):
    config = str(copy / "config.yaml")
    before = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    assert main(["run", config, "--redo", "iter_001", "--dry-run"]) == 0
    assert "redoes iter_001, iter_002: removes their directories" in capsys.readouterr().out
    for stage in ("iter_009", "banana"):
        assert main(["run", config, "--redo", stage, "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"--redo {stage}:" in err
        assert "its stages: seed, iter_001, iter_002" in err
    after = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    assert set(before) - set(after) == set(), set(after) ^ set(before)  # nothing removed


def test_the_run_copy_of_its_config_damaged_when_read_as_the_config(copy, capsys):
    """``selfplay run RUN/config.yaml`` on a damaged copy: the same advice (not only 'not YAML')."""
    saved = copy / "config.yaml"
    saved.write_text("train: [1, 2\n")
    assert main(["run", str(saved), "--redo", "iter_002", "--no-progress"]) == 2
    err = _one_line_error(capsys, saved)
    assert "not valid YAML" in err and f"> {shlex.quote(str(saved))}`" in err, err


def test_missing_evaluation_samples_of_an_evaluated_stage_name_the_redo(copy, capsys):
    (copy / "iter_001" / "eval_samples.parquet").unlink()
    assert main(["inspect", str(copy), "--eval", "--iter", "1", "--limit", "1"]) == 2
    err = _one_line_error(capsys, copy / "iter_001" / "eval_samples.parquet")
    assert "--redo iter_001" in err, err
