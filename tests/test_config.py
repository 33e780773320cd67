"""Run configuration: YAML loading, one-line errors that name the key, overrides, shipped configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from selfplay.config import (
    ConfigError,
    RunConfig,
    config_from_dict,
    dump_config,
    load_config,
    parse_override,
)

REPO = Path(__file__).parents[1]


def _write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(fn, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert msg and "\n" not in msg, msg
    return msg


def test_load_config(tmp_path):
    path = _write(
        tmp_path,
        "seed: 3\ntrain:\n  lr: 3e-4\n  batch_size: 32\nraw:\n  difficulties: [1, 2]\ntask:\n  ops: [add, mul]\n",
        "my-run.yaml",
    )
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)
    assert cfg.name == "my-run"  # default name is the file's stem
    assert cfg.seed == 3
    assert cfg.train.lr == pytest.approx(3e-4) and isinstance(cfg.train.lr, float)
    assert cfg.train.batch_size == 32
    assert cfg.raw.difficulties == [1, 2]
    assert cfg.task.ops == ["add", "mul"]
    assert cfg.generation.n == RunConfig().generation.n  # untouched fields keep their defaults
    assert cfg.run_dir == Path("runs") / "my-run"


def test_explicit_name_wins_over_stem(tmp_path):
    assert load_config(_write(tmp_path, "name: chosen\n")).name == "chosen"


def test_empty_file_is_all_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, "", "blank.yaml"))
    assert cfg.name == "blank"
    # train.trainer and train.loss default to null: the schedule's choice, filled in when loaded.
    assert cfg.train == dataclasses.replace(RunConfig().train, trainer="trl", loss="answer")


def test_int_accepted_for_float(tmp_path):
    cfg = load_config(_write(tmp_path, "train:\n  lr: 1\n"))
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


def test_dump_round_trips(tmp_path):
    cfg = config_from_dict({"name": "x", "train": {"lr": 0.01}, "raw": {"slip_rate": 0.25}})
    again = load_config(_write(tmp_path, dump_config(cfg)))
    assert again == cfg


# ------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"train": {"lrr": 0.1}}, "train.lrr: unknown key (did you mean 'train.lr'?)"),
        (
            {"generation": {"temprature": 0.5}},
            "generation.temprature: unknown key (did you mean 'generation.temperature'?)",
        ),
        ({"nmae": "x"}, "nmae: unknown key (did you mean 'name'?)"),
        ({"filters": {"zzzz": 1}}, "filters.zzzz: unknown key"),
    ],
    ids=["train.lrr", "generation.temprature", "top-level", "no-close-match"],
)
def test_unknown_key(data, expected):
    assert _error(config_from_dict, data) == expected


def test_unknown_key_without_close_match_has_no_hint():
    assert "did you mean" not in _error(config_from_dict, {"filters": {"zzzz": 1}})


def test_unknown_key_from_file(tmp_path):
    msg = _error(load_config, _write(tmp_path, "train:\n  lrr: 0.1\n"))
    assert msg == "train.lrr: unknown key (did you mean 'train.lr'?)"


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        ({"train": {"batch_size": "64"}}, "train.batch_size", "expected int, got '64'"),
        ({"train": [1, 2]}, "train", "expected a mapping, got [1, 2]"),
        ({"generation": {"n": True}}, "generation.n", "expected int, got True"),
        ({"filters": {"dedup": "yes please"}}, "filters.dedup", "expected bool"),
        ({"train": {"lr": "fast"}}, "train.lr", "expected float, got 'fast'"),
        ({"train": {"lr": False}}, "train.lr", "expected float"),
        ({"raw": {"difficulties": 3}}, "raw.difficulties", "expected list[int], got 3"),
        ({"raw": {"difficulties": [1, "two"]}}, "raw.difficulties[1]", "expected int, got 'two'"),
        (
            {"model": {"preset": "huge"}},
            "model.preset",
            "expected 'tiny' | 'small' | 'base', got 'huge'",
        ),
        (
            {"generation": {"max_new_tokens": 1.5}},
            "generation.max_new_tokens",
            "expected int | null",
        ),
        ({"train": {"sft": [1]}}, "train.sft", "expected dict"),
        ({"model": None}, "model", "expected a mapping, got None"),
    ],
    ids=[
        "str-for-int",
        "list-for-mapping",
        "bool-for-int",
        "str-for-bool",
        "str-for-float",
        "bool-for-float",
        "int-for-list",
        "bad-list-item",
        "bad-literal",
        "float-for-optional-int",
        "list-for-dict",
        "null-section",
    ],
)
def test_wrong_type(data, key, fragment):
    msg = _error(config_from_dict, data)
    assert msg.startswith(f"{key}: "), msg
    assert fragment in msg, msg


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"generation": {"n": 0}}, "generation.n: must be >= 1"),
        ({"raw": {"slip_rate": 1.5}}, "raw.slip_rate: must be in [0, 1]"),
        ({"raw": {"answer_only_rate": -0.1}}, "raw.answer_only_rate: must be in [0, 1]"),
        (
            {"raw": {"slip_rate": 0.6, "answer_only_rate": 0.6}},
            "raw.slip_rate: slip_rate + answer_only_rate must be <= 1",
        ),
        ({"raw": {"size": 0}}, "raw.size: must be > 0"),
        (
            {"raw": {"difficulties": []}},
            "raw.difficulties: must be a non-empty list of integers >= 1",
        ),
        (
            {"eval": {"difficulties": [0, 1]}},
            "eval.difficulties: must be a non-empty list of integers >= 1",
        ),
        ({"generation": {"top_p": 0}}, "generation.top_p: must be in (0, 1]"),
        ({"generation": {"temperature": 0}}, "generation.temperature: must be > 0"),
        ({"generation": {"max_new_tokens": 0}}, "generation.max_new_tokens: must be >= 1"),
        ({"train": {"raw_mix": 1.0}}, "train.raw_mix: must be in [0, 1)"),
        ({"train": {"max_length": 4}}, "train.max_length: must be >= 8"),
        ({"filters": {"max_per_problem": -1}}, "filters.max_per_problem: must be >= 0"),
        ({"eval": {"k": -1}}, "eval.k: must be >= 0"),
        ({"name": "a/b"}, "name: must be a non-empty name without '/'"),
        ({"raw": {"difficulties": [41]}}, "raw.difficulties: arith supports at most 40 digits"),
    ],
    ids=lambda x: None if isinstance(x, dict) else x.split(":")[0],
)
def test_out_of_range(data, expected):
    assert _error(config_from_dict, data) == expected


def test_limits_themselves_are_allowed():
    cfg = config_from_dict(
        {
            "generation": {"n": 1, "top_p": 1.0},
            "raw": {"slip_rate": 0.5, "answer_only_rate": 0.5, "difficulties": [40]},
            "filters": {"max_per_problem": 0},
        }
    )
    assert cfg.generation.n == 1 and cfg.raw.slip_rate + cfg.raw.answer_only_rate == 1.0


def test_unknown_task_lists_valid_ones():
    msg = _error(config_from_dict, {"task": {"name": "sudoku"}})
    from selfplay.tasks import TASKS

    assert "arith" in TASKS
    assert msg == f"task.name: unknown task 'sudoku'; valid: {', '.join(sorted(TASKS))}"


def test_unknown_arith_op():
    msg = _error(config_from_dict, {"task": {"ops": ["add", "div"]}})
    assert msg == "task.ops: unknown operation 'div'; valid: add, mul"


def test_no_arith_ops():
    assert _error(config_from_dict, {"task": {"ops": []}}).startswith(
        "task.ops: unknown operation '(none)'"
    )


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    msg = _error(load_config, missing)
    assert msg == f"{missing}: config file not found"


def test_directory_is_not_a_config(tmp_path):
    assert "config file not found" in _error(load_config, tmp_path)


def test_invalid_yaml(tmp_path):
    path = _write(tmp_path, "train:\n  lr: 0.1\n  batch_size: [1, 2\nseed: 1\n")
    msg = _error(load_config, path)
    assert msg.startswith(f"{path}: not valid YAML (line ")


def test_tab_indented_yaml(tmp_path):
    assert "not valid YAML" in _error(load_config, _write(tmp_path, "train:\n\tlr: 0.1\n"))


def test_binary_file(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    msg = _error(load_config, path)
    assert msg.startswith(str(path)), msg


@pytest.mark.parametrize(
    "text", ["- a\n- b\n", "42\n", "just a string\n"], ids=["list", "int", "str"]
)
def test_top_level_not_a_mapping(tmp_path, text):
    path = _write(tmp_path, text)
    assert _error(load_config, path) == f"{path}: the top level must be a mapping of keys"


# ------------------------------------------------------------------------------------------------
# Overrides


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("loop.iterations=5", ["loop", "iterations"], 5),
        # YAML reads 3e-4 as text; the float field accepts it (see test_overrides_apply)
        ("train.lr=3e-4", ["train", "lr"], "3e-4"),
        ("train.lr=0.01", ["train", "lr"], 0.01),
        ("raw.difficulties=[1,2]", ["raw", "difficulties"], [1, 2]),
        ("filters.dedup=false", ["filters", "dedup"], False),
        ("generation.max_new_tokens=null", ["generation", "max_new_tokens"], None),
        ("generation.max_new_tokens=", ["generation", "max_new_tokens"], None),
        ("name=my-run", ["name"], "my-run"),
        ("output_dir=runs/a=b", ["output_dir"], "runs/a=b"),
        (" seed = 7", ["seed"], 7),
    ],
)
def test_parse_override(text, path, value):
    got_path, got_value = parse_override(text)
    assert got_path == path
    assert got_value == value if not isinstance(value, float) else got_value == pytest.approx(value)
    assert type(got_value) is type(value)


def test_overrides_apply(tmp_path):
    path = _write(tmp_path, "train:\n  lr: 0.1\nloop:\n  iterations: 2\n")
    cfg = load_config(
        path,
        [
            "loop.iterations=5",
            "train.lr=3e-4",
            "raw.difficulties=[1,2]",
            "train.sft.warmup_ratio=0.1",
            "eval.k=0",
        ],
    )
    assert cfg.loop.iterations == 5
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.raw.difficulties == [1, 2]
    assert cfg.train.sft == {"warmup_ratio": 0.1}
    assert cfg.eval.k == 0


def test_later_override_wins():
    assert config_from_dict({}, ["seed=1", "seed=2"]).seed == 2


def test_override_creates_missing_section():
    cfg = config_from_dict({}, ["generation.n=8"])
    assert cfg.generation.n == 8


@pytest.mark.parametrize(
    "text",
    ["train.lr", "", "=3", ".lr=3", "train..lr=3"],
    ids=["no-equals", "empty", "no-key", "leading-dot", "empty-part"],
)
def test_bad_override(text):
    msg = _error(parse_override, text)
    assert "an override must look like key=value" in msg


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("train.lrr=0.1", "train.lrr: unknown key (did you mean 'train.lr'?)"),
        ("generation.n=0", "generation.n: must be >= 1"),
        ("generation.n=many", "generation.n: expected int, got 'many'"),
        ("seed.x=1", "seed.x: 'seed' is not a section"),
        ("train.lr", "train.lr: an override must look like key=value"),
    ],
)
def test_bad_override_in_config(tmp_path, override, fragment):
    path = _write(tmp_path, "seed: 1\n")
    assert fragment in _error(load_config, path, [override])


# ------------------------------------------------------------------------------------------------
# Shipped configs

# Run configs; bench configs (those with `arms:`) are checked in tests/test_bench.py, accelerate
# configs (configs/accelerate/) in tests/test_models_gpu_path.py.
SHIPPED = sorted(
    p
    for p in REPO.glob("configs/**/*.yaml")
    if "arms" not in (yaml.safe_load(p.read_text()) or {}) and p.parent.name != "accelerate"
)


def test_there_are_shipped_configs():
    assert SHIPPED, f"no configs under {REPO / 'configs'}"


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(REPO)) for p in SHIPPED])
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)
    # Every key the file sets survives into the config (nothing silently dropped).
    data = yaml.safe_load(path.read_text()) or {}
    as_dict = yaml.safe_load(dump_config(cfg))
    for section, value in data.items():
        if isinstance(value, dict):
            for key in value:
                assert key in as_dict[section], f"{section}.{key}"
        else:
            assert section in as_dict


def test_overrides_do_not_mutate_the_input_mapping():
    data = {"loop": {"iterations": 2}, "train": {"sft": {"a": 1}}}
    config_from_dict(data, ["loop.data_source=raw-fresh", "train.sft.a=2"])
    assert data == {"loop": {"iterations": 2}, "train": {"sft": {"a": 1}}}


@pytest.mark.parametrize(
    "over,message",
    [
        (
            ["loop.schedule=frontier", "loop.curriculum=true"],
            "loop.curriculum: not read with loop.schedule: frontier",
        ),
        (
            ["loop.schedule=frontier", "train.raw_mix=0.2"],
            "train.raw_mix: not read with loop.schedule: frontier",
        ),
        (["loop.frontier.threshold=0.99"], "loop.frontier: not read with loop.schedule: rounds"),
        (
            ["generation.backend=vllm", "generation.cache=static"],
            "generation.cache: not read with generation.backend: vllm",
        ),
        (
            ["generation.data_parallel_size=2"],
            "generation.data_parallel_size: not read with generation.backend: hf",
        ),
        (
            ["train.trainer=plain", "train.packing=true"],
            "train.packing: not read with train.trainer: plain",
        ),
        (["train.warmup=0.2"], "train.warmup: not read with train.trainer: trl"),
        (["generation.decoder=grouped", "generation.cache=static"], "generation.decoder: grouped"),
    ],
)
def test_a_key_the_chosen_path_does_not_read_is_refused(over, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict({}, over)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_schedule_defaults_and_renamed_keys():
    rounds = config_from_dict({})
    assert (rounds.train.trainer, rounds.train.loss) == ("trl", "answer")
    climb = config_from_dict({}, ["loop.schedule=frontier"])
    assert (climb.train.trainer, climb.train.loss) == ("plain", "sequence")
    # An older config's loop.frontier.{trainer,loss,warmup,decay} are train.* now.
    old = config_from_dict(
        {"loop": {"schedule": "frontier", "frontier": {"loss": "answer", "warmup": 0.1}}}
    )
    assert (old.train.loss, old.train.warmup) == ("answer", 0.1)
    with pytest.raises(ConfigError, match="renamed train.loss, which is set too"):
        config_from_dict(
            {"loop": {"schedule": "frontier", "frontier": {"loss": "answer"}}},
            ["train.loss=sequence"],
        )
    # The trainer and loss chosen are what config.yaml records.
    assert "trainer: plain" in dump_config(climb)
