"""The model and backend side: devices and precision, the hf backend's decoding options, the vllm
backend's worker protocol (against a fake engine), chat templates, LoRA, packing, and training
under ``accelerate launch``. Tests marked ``gpu`` / ``vllm`` run only where CUDA / vllm exist."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from selfplay.config import ConfigError, LoraConfig, ModelConfig, TrainConfig, config_from_dict
from selfplay.engine.models import (
    build_char_tokenizer,
    build_model,
    count_params,
    encode_prompts,
    generation_dtype,
    load_for_generation,
    resolve_attention,
    resolve_device,
    stop_token_ids,
    training_dtype,
    uses_chat_template,
)
from selfplay.generation import (
    VLLM_MISSING,
    Completion,
    WorkerError,
    backend_options,
    check_backend,
    get_backend,
    to_completion,
)
from selfplay.generation import hf as hf_backend
from selfplay.generation import vllm as vllm_backend
from selfplay.tasks import Example
from selfplay.training import build_trainer, launch_command, train_sft

REPO = Path(__file__).parents[1]
CUDA = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
needs_vllm = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None or not CUDA, reason="needs vllm and a CUDA device"
)

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] + '<|end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer()


@pytest.fixture(scope="module")
def chat_tok():
    """The character tokenizer plus turn markers and a chat template, as a hub chat model has."""
    t = build_char_tokenizer()
    t.add_special_tokens({"additional_special_tokens": ["<|user|>", "<|assistant|>", "<|end|>"]})
    t.chat_template = CHAT_TEMPLATE
    return t


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tok):
    path = tmp_path_factory.mktemp("tiny")
    build_model("tiny", tok, seed=0).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def arith_examples(n: int = 25) -> list[Example]:
    pairs = [(a, b) for a in range(10) for b in range(10)][:n]
    return [Example(f"Q:{a}+{b}=", f"{a + b}", f"{a}+{b}", 1, "raw") for a, b in pairs]


# ------------------------------------------------------------------------------------------------
# Config


def test_new_options_default_to_todays_cpu_behaviour():
    cfg = config_from_dict({})
    g, t, m = cfg.generation, cfg.train, cfg.model
    assert (g.backend, g.batch_size, g.cache, g.compile) == ("hf", 256, "dynamic", False)
    assert (t.packing, t.compile, t.num_processes, t.accelerate_config) == (False, False, 1, None)
    assert (m.chat_template, m.dtype, m.attn_implementation, m.lora.r) == (
        "auto",
        "auto",
        "auto",
        0,
    )


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"generation": {"batch_size": "big"}}, "generation.batch_size: expected int | 'auto'"),
        ({"generation": {"batch_size": 0}}, "generation.batch_size: must be >= 1 or 'auto'"),
        ({"generation": {"compile": True}}, "generation.compile: needs generation.cache: static"),
        ({"generation": {"cache": "paged"}}, "generation.cache: expected 'dynamic' | 'static'"),
        ({"generation": {"backend": "vlm"}}, "generation.backend: expected 'hf' | 'vllm'"),
        ({"generation": {"tensor_parallel_size": 0}}, "generation.tensor_parallel_size: must be"),
        ({"generation": {"data_parallel_size": 0}}, "generation.data_parallel_size: must be"),
        ({"generation": {"gpu_memory_utilization": 1.5}}, "generation.gpu_memory_utilization"),
        ({"model": {"lora": {"r": -1}}}, "model.lora.r: must be >= 0"),
        ({"model": {"lora": {"rank": 8}}}, "model.lora.rank: unknown key"),
        ({"model": {"lora": {"dropout": 1.0}}}, "model.lora.dropout: must be in [0, 1)"),
        ({"model": {"lora": {"target_modules": []}}}, "model.lora.target_modules"),
        ({"model": {"chat_template": "yes"}}, "model.chat_template: expected 'auto' | 'none'"),
        ({"model": {"dtype": "fp8"}}, "model.dtype: expected"),
        ({"train": {"num_processes": 0}}, "train.num_processes: must be >= 1"),
        ({"train": {"num_processes": 3}}, "train.batch_size: must be a multiple of"),
        ({"train": {"accelerate_config": "no/such.yaml"}}, "train.accelerate_config: file not"),
    ],
)
def test_bad_options_are_one_line_errors(data, expected):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def test_good_options_parse():
    cfg = config_from_dict(
        {
            "generation": {"batch_size": "auto", "cache": "static", "compile": True},
            "model": {"lora": {"r": 8, "target_modules": ["q_proj", "v_proj"]}},
            "train": {"num_processes": 2, "accelerate_config": "configs/accelerate/ddp.yaml"},
        }
    )
    assert cfg.generation.batch_size == "auto" and cfg.model.lora.target_modules == [
        "q_proj",
        "v_proj",
    ]


ACCELERATE = {
    "ddp.yaml": ("MULTI_GPU", None),
    "fsdp.yaml": ("FSDP", None),
    "zero2.yaml": ("DEEPSPEED", 2),
    "zero3.yaml": ("DEEPSPEED", 3),
}


@pytest.mark.parametrize("name", sorted(ACCELERATE))
def test_shipped_accelerate_configs_load(name):
    from accelerate.commands.config.config_args import load_config_from_file

    path = REPO / "configs" / "accelerate" / name
    text = path.read_text()
    assert "selfplay run" in text  # the header shows the command that uses it
    loaded = load_config_from_file(str(path))
    kind, stage = ACCELERATE[name]
    assert str(loaded.distributed_type).endswith(kind)
    assert loaded.mixed_precision == "bf16"
    if stage is not None:
        assert loaded.deepspeed_config["zero_stage"] == stage
    if name == "fsdp.yaml":
        # Gathered weights at save time: every checkpoint must be a plain model directory.
        assert loaded.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    # A run config naming it validates.
    config_from_dict({"train": {"accelerate_config": str(path)}})


# ------------------------------------------------------------------------------------------------
# Devices, precision, kernels


def test_device_dtype_and_attention_on_cpu(monkeypatch):
    assert resolve_device("auto") == ("cuda" if CUDA else "cpu")
    assert generation_dtype(ModelConfig(), "cpu") is None  # the checkpoint's own
    assert generation_dtype(ModelConfig(dtype="bfloat16"), "cpu") == "bfloat16"
    assert training_dtype(ModelConfig()) == "float32"
    assert training_dtype(ModelConfig(dtype="bfloat16")) == "bfloat16"
    assert resolve_attention("auto", "cpu") is None  # transformers' default: sdpa
    assert resolve_attention("eager", "cuda") == "eager"
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: object() if n == "flash_attn" else real(n, *a)
    )
    assert resolve_attention("auto", "cuda") == "flash_attention_2"
    assert resolve_attention("auto", "cpu") is None


def test_tf32_only_for_cuda():
    from selfplay.engine.models import setup_device

    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        setup_device("cpu")
        assert torch.get_float32_matmul_precision() == "highest"
        setup_device("cuda")
        assert torch.get_float32_matmul_precision() == "high"  # TF32 matmuls
    finally:
        torch.set_float32_matmul_precision(before)


def test_count_params_reads_a_directory_without_weights(tiny_dir):
    model, _ = load_for_generation(config_from_dict({}), tiny_dir, "cpu")
    assert count_params(tiny_dir) == count_params(str(tiny_dir)) == count_params(model) > 10**6


def test_vllm_generation_model_is_the_directory(tiny_dir):
    cfg = config_from_dict({"generation": {"backend": "vllm"}})
    model, tok = load_for_generation(cfg, tiny_dir, "cpu")
    assert model == str(tiny_dir) and tok.pad_token_id is not None


# ------------------------------------------------------------------------------------------------
# hf backend


PROMPTS = [f"Q:{a}+{b}=" for a, b in [(3, 4), (12, 9), (5, 801), (77, 7), (1, 1), (450, 62)]]


@pytest.fixture(scope="module")
def tiny(tok):
    return build_model("tiny", tok, seed=0).eval()


def test_static_cache_gives_the_same_completions_as_dynamic(tiny, tok):
    kw = dict(max_new_tokens=12, batch_size=4, seed=3)
    dyn = hf_backend.generate(tiny, tok, PROMPTS, greedy=True, **kw)
    static = hf_backend.generate(tiny, tok, PROMPTS, greedy=True, cache="static", **kw)
    assert static == dyn
    assert [c.prompt_idx for c in dyn] == list(range(len(PROMPTS)))  # input order
    sampled = hf_backend.generate(tiny, tok, PROMPTS, n=3, **kw)
    assert [(c.prompt_idx, c.sample_idx) for c in sampled] == [
        (i, j) for i in range(len(PROMPTS)) for j in range(3)
    ]


def test_auto_batch_size(tiny, tok):
    # CPU: the old default.
    assert hf_backend.auto_batch_size(tiny, 20, 64, n=4) == 256
    auto = hf_backend.generate(tiny, tok, PROMPTS, n=2, max_new_tokens=8, batch_size="auto")
    assert auto == hf_backend.generate(tiny, tok, PROMPTS, n=2, max_new_tokens=8, batch_size=256)
    # From free memory: more memory or shorter sequences -> more sequences, a multiple of n.
    fit = [hf_backend.auto_batch_size(tiny, 20, 64, n=4, free_bytes=g << 30) for g in (1, 8, 64)]
    assert fit[0] < fit[1] <= fit[2] and all(b % 4 == 0 for b in fit)
    assert hf_backend.auto_batch_size(tiny, 20, 512, n=4, free_bytes=8 << 30) < fit[1]
    assert hf_backend.auto_batch_size(tiny, 20, 64, n=4, free_bytes=1000) == 4


@pytest.mark.parametrize(
    "ids, expected",
    [
        ([5, 6, 2, 7], ("12", 3, "stop")),  # cut at the end-of-sequence token, which counts
        ([5, 6, 7], ("123", 3, "length")),
        ([5, 103, 6], ("1", 2, "stop")),  # a chat end-of-turn token also stops
        ([5, 0, 6, 2, 0, 0], ("12", 3, "stop")),  # padding dropped
        ([2], ("", 1, "stop")),
    ],
)
def test_to_completion(tok, ids, expected):
    c = to_completion(tok, ids, {2, 103}, 0, prompt_idx=4, sample_idx=1)
    assert (c.text, c.tokens, c.finish_reason) == expected
    assert (c.prompt_idx, c.sample_idx) == (4, 1)


# ------------------------------------------------------------------------------------------------
# Chat templates


def test_chat_template_renders_a_user_turn(chat_tok, tok):
    assert uses_chat_template(chat_tok, "auto") and not uses_chat_template(chat_tok, "none")
    assert not uses_chat_template(tok, "auto")  # the presets' tokenizer has none
    (ids,) = encode_prompts(chat_tok, ["1+2="], chat=True)
    assert chat_tok.decode(ids) == "<|user|>1+2=<|end|><|assistant|>"
    assert encode_prompts(chat_tok, ["1+2="], chat=False) == [tok("1+2=")["input_ids"]]
    end = chat_tok.convert_tokens_to_ids("<|end|>")
    assert stop_token_ids(chat_tok, chat=True) == [chat_tok.eos_token_id, end]
    assert stop_token_ids(chat_tok, chat=False) == [chat_tok.eos_token_id]


def test_generation_and_training_see_the_same_chat_prompt(chat_tok, tmp_path):
    model = build_model("tiny", chat_tok, seed=0).eval()
    seen = []
    real = model.generate

    def spy(**kwargs):
        seen.append((kwargs["input_ids"], kwargs["attention_mask"], kwargs["eos_token_id"]))
        return real(**kwargs)

    model.generate = spy
    hf_backend.generate(model, chat_tok, ["Q:1+2="], greedy=True, max_new_tokens=4)
    input_ids, mask, eos = seen[0]
    sent = input_ids[0][mask[0].bool()].tolist()
    end = chat_tok.convert_tokens_to_ids("<|end|>")
    assert chat_tok.decode(sent) == "<|user|>Q:1+2=<|end|><|assistant|>"
    assert end in eos

    examples = [Example("Q:1+2=", "3", "1+2", 1, "raw")]
    trainer, _ = build_trainer(
        model,
        chat_tok,
        examples,
        TrainConfig(batch_size=1),
        budget_tokens=10,
        seed=0,
        work_dir=tmp_path,
    )
    row = trainer.train_dataset[0]
    n_prompt = next(i for i, lab in enumerate(row["labels"]) if lab != -100)
    assert row["input_ids"][:n_prompt] == sent  # the exact ids the model saw when generating
    # The loss is on the assistant turn only, ending with the end-of-turn token it must learn.
    assert chat_tok.decode(row["labels"][n_prompt:]) == "3<|end|>"


# ------------------------------------------------------------------------------------------------
# vllm backend, through a fake engine module in the worker subprocess

FAKE_ENGINE = textwrap.dedent(
    """
    import json, os, random
    from types import SimpleNamespace

    class SamplingParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)
            self.kw = kw

    class LLM:
        def __init__(self, **kw):
            if kw["model"].endswith("boom"):
                raise RuntimeError("CUDA out of memory.\\n  Tried to allocate 2.00 GiB")
            if kw["model"].endswith("crash"):
                print("engine core died", flush=True)
                os._exit(3)
            self.kw = kw

        def generate(self, prompts, params, use_tqdm=True):
            with open(os.environ["FAKE_VLLM_LOG"], "a") as f:
                f.write(json.dumps({
                    "engine": self.kw,
                    "prompts": [p["prompt_token_ids"] for p in prompts],
                    "params": [p.kw for p in params],
                    "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
                }) + "\\n")
            outs = []
            for p, sp in zip(prompts, params):
                rng = random.Random(sp.seed)
                comps = []
                for j in range(sp.n):
                    k = rng.randrange(1, sp.max_tokens + 1)
                    ids = [rng.randrange(5, 40) for _ in range(k)]
                    if k < sp.max_tokens:
                        ids.append(sp.stop_token_ids[-1])
                    reason = "stop" if k < sp.max_tokens else "length"
                    comps.append(SimpleNamespace(index=j, token_ids=ids, finish_reason=reason))
                outs.append(SimpleNamespace(outputs=comps))
            return outs
    """
)


@pytest.fixture
def fake_vllm(tmp_path, monkeypatch):
    """Point the vllm backend at a fake engine module; returns the path of its call log."""
    d = tmp_path / "engine"
    d.mkdir()
    (d / "fake_vllm.py").write_text(FAKE_ENGINE)
    monkeypatch.syspath_prepend(str(d))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(d), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv(vllm_backend.ENGINE_ENV, "fake_vllm")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_VLLM_LOG", str(log))
    return log


def read_calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_vllm_backend_protocol(fake_vllm, tiny_dir, tok):
    generate = get_backend("vllm")
    comps = generate(
        str(tiny_dir),
        tok,
        PROMPTS,
        n=3,
        temperature=0.7,
        top_p=0.9,
        max_new_tokens=6,
        seed=11,
        dtype="bfloat16",
        tensor_parallel_size=2,
        engine_args={"enforce_eager": True, "gpu_memory_utilization": 0.5},
    )
    assert [(c.prompt_idx, c.sample_idx) for c in comps] == [
        (i, j) for i in range(len(PROMPTS)) for j in range(3)
    ]
    (call,) = read_calls(fake_vllm)
    assert call["engine"] == {
        "model": str(tiny_dir),
        "tokenizer": str(tiny_dir),
        "dtype": "bfloat16",
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.5,  # engine_args override the named options
        "seed": 11,
        "enforce_eager": True,
    }
    assert call["prompts"] == encode_prompts(tok, PROMPTS, chat=False)
    seeds = [p["seed"] for p in call["params"]]
    assert seeds == [vllm_backend.prompt_seed(11, i) for i in range(len(PROMPTS))]
    p = call["params"][0]
    assert (p["n"], p["temperature"], p["top_p"], p["max_tokens"]) == (3, 0.7, 0.9, 6)
    assert p["stop_token_ids"] == [tok.eos_token_id]
    # The records mean what the hf backend's mean: stop token counted, truncation flagged.
    assert {c.finish_reason for c in comps} == {"stop", "length"}
    for c in comps:
        assert isinstance(c, Completion) and c.tokens <= 6
        if c.finish_reason == "length":
            assert c.tokens == 6 and len(c.text) == 6
        else:
            assert len(c.text) == c.tokens - 1  # the stop token counts, but is not text
    # Greedy: one sample at temperature 0.
    generate(str(tiny_dir), tok, PROMPTS[:2], greedy=True, n=4, max_new_tokens=3, dtype="float32")
    g = read_calls(fake_vllm)[-1]["params"][0]
    assert (g["n"], g["temperature"]) == (1, 0.0)


def test_vllm_data_parallel_shards_do_not_change_results(fake_vllm, tiny_dir, tok, monkeypatch):
    kw = dict(n=2, max_new_tokens=5, seed=4, dtype="float32")
    one = get_backend("vllm")(str(tiny_dir), tok, PROMPTS, **kw)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,6,7")
    two = get_backend("vllm")(
        str(tiny_dir), tok, PROMPTS, data_parallel_size=2, tensor_parallel_size=2, **kw
    )
    assert two == one
    calls = read_calls(fake_vllm)[1:]
    assert sorted(c["gpus"] for c in calls) == ["3,5", "6,7"]
    assert sorted(len(c["prompts"]) for c in calls) == [3, 3]


def test_vllm_chat_prompts_and_stop_token(fake_vllm, chat_tok, tmp_path):
    path = tmp_path / "chat"
    model = build_model("tiny", chat_tok)
    model.generation_config.eos_token_id = [chat_tok.eos_token_id, 9]  # a second stop id
    model.save_pretrained(str(path))
    chat_tok.save_pretrained(str(path))
    comps = get_backend("vllm")(
        str(path), chat_tok, ["Q:1+2="], n=8, max_new_tokens=4, dtype="float32"
    )
    (call,) = read_calls(fake_vllm)
    assert chat_tok.decode(call["prompts"][0]) == "<|user|>Q:1+2=<|end|><|assistant|>"
    end = chat_tok.convert_tokens_to_ids("<|end|>")
    assert call["params"][0]["stop_token_ids"] == [chat_tok.eos_token_id, end, 9]
    # The fake engine stops on the last of them; the backend cuts there too.
    assert all(c.finish_reason == "stop" for c in comps if c.tokens < 4)


@pytest.mark.parametrize(
    "suffix, expected",
    [
        ("boom", "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"),
        ("crash", "exited with code 3: engine core died"),
    ],
)
def test_vllm_worker_failure_is_one_line(fake_vllm, tmp_path, tok, suffix, expected):
    with pytest.raises(WorkerError) as err:
        get_backend("vllm")(str(tmp_path / suffix), tok, PROMPTS, dtype="float32")
    msg = str(err.value)
    assert expected in msg and "\n" not in msg and msg.startswith("generation (vllm worker 0)")


def test_missing_vllm_is_one_line(monkeypatch, tiny_dir, tok, tmp_path):
    monkeypatch.setenv(vllm_backend.ENGINE_ENV, "no_such_engine_module")
    with pytest.raises(WorkerError, match=r"pip install '\.\[vllm\]'"):
        get_backend("vllm")(str(tiny_dir), tok, PROMPTS)
    cfg = config_from_dict({"generation": {"backend": "vllm"}})
    with pytest.raises(ConfigError) as err:
        check_backend(cfg)
    assert str(err.value) == VLLM_MISSING
    check_backend(config_from_dict({}))  # hf needs nothing extra
    # The CLI says so before any training.
    from selfplay.cli import main

    config = tmp_path / "v.yaml"
    config.write_text(yaml.safe_dump({"generation": {"backend": "vllm"}}))
    out = tmp_path / "run"
    assert main(["run", str(config), f"output_dir={out}", "--no-progress"]) == 2
    assert not (out / "seed").exists()


def test_gpu_groups_and_shards(monkeypatch):
    assert vllm_backend.shard_bounds(7, 3) == [(0, 3), (3, 5), (5, 7)]
    assert vllm_backend.shard_bounds(2, 4) == [(0, 1), (1, 2)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert vllm_backend.gpu_groups(1, 1) == [None]
    assert vllm_backend.gpu_groups(1, 3) == ["0", "1", "2"]
    with pytest.raises(WorkerError, match="needs 4 GPUs, 3 visible"):
        vllm_backend.gpu_groups(2, 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert vllm_backend.gpu_groups(1, 1) == [None]  # let the engine report what it finds


def test_backend_options_follow_the_config():
    cfg = config_from_dict(
        {
            "generation": {"backend": "vllm", "tensor_parallel_size": 2, "vllm": {"x": 1}},
            "model": {"chat_template": "none"},
        }
    )
    opts = backend_options(cfg)
    assert opts["tensor_parallel_size"] == 2 and opts["engine_args"] == {"x": 1}
    assert opts["chat_template"] == "none"
    hf = backend_options(config_from_dict({"generation": {"cache": "static"}}))
    assert hf == {
        "chat_template": "auto",
        "cache": "static",
        "compile": False,
        "decoder": "generate",
        "refill": False,
    }


# ------------------------------------------------------------------------------------------------
# Training: defaults, packing, LoRA


def test_training_arguments(tok, tmp_path):
    model = build_model("tiny", tok)
    trainer, seen = build_trainer(
        model,
        tok,
        arith_examples(),
        TrainConfig(batch_size=4),
        budget_tokens=200,
        seed=0,
        work_dir=tmp_path,
    )
    a = trainer.args
    assert a.optim == "adamw_torch_fused" and not a.bf16 and a.use_cpu and not a.torch_compile
    assert seen == a.max_steps * 4
    compiled, _ = build_trainer(
        model,
        tok,
        arith_examples(),
        TrainConfig(batch_size=4, compile=True),
        budget_tokens=200,
        seed=0,
        work_dir=tmp_path,
    )
    assert compiled.args.torch_compile


def test_packed_examples_do_not_attend_to_each_other(tok, tmp_path):
    model = build_model("tiny", tok, seed=0).eval()
    examples = [
        Example(f"{a}+{b}=", f"{a + b}" * (a + 1), "x", 1, "raw")
        for a in range(5)
        for b in range(5)
    ]
    trainer, _ = build_trainer(
        model,
        tok,
        examples,
        TrainConfig(batch_size=8, packing=True, max_length=48),
        budget_tokens=400,
        seed=0,
        work_dir=tmp_path,
    )
    rows = [trainer.train_dataset[i] for i in range(2)]
    row = rows[0]
    assert len(row["seq_lengths"]) > 2 and sum(row["seq_lengths"]) == len(row["input_ids"])
    # SDPA has no varlen kernel: rows stay rows, every one max_length wide (one shape per step).
    batch = trainer.data_collator(rows)
    assert tuple(batch["input_ids"].shape) == (2, 48) and "attention_mask" not in batch
    with torch.no_grad():
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        for r, row in enumerate(rows):
            start = 0
            for n in row["seq_lengths"]:
                ids = row["input_ids"][start : start + n]
                alone = model(input_ids=torch.tensor([ids])).logits[0]
                torch.testing.assert_close(
                    packed[r, start : start + n], alone, atol=1e-5, rtol=1e-5
                )
                # No loss on an example's first token (it would be read off the one before).
                assert batch["labels"][r, start] == -100
                start += n
            assert (batch["labels"][r, start:] == -100).all()  # the padding
    # The loss stays on completions: every packed example's prompt is masked.
    assert sum(lab != -100 for lab in row["labels"]) < len(row["labels"]) - len(row["seq_lengths"])


def test_packing_spends_about_the_budget(tok, tmp_path):
    model = build_model("tiny", tok)
    res = train_sft(
        model,
        tok,
        arith_examples(),
        TrainConfig(batch_size=8, packing=True, max_length=64),
        budget_tokens=600,
        seed=0,
        work_dir=tmp_path,
    )
    assert 500 <= res.tokens <= 800 and res.final_loss is not None


def test_lora_trains_adapters_and_merges_them(tok, tmp_path):
    from transformers import AutoModelForCausalLM

    model = build_model("tiny", tok, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = train_sft(
        model,
        tok,
        arith_examples(),
        TrainConfig(batch_size=5, lr=1e-2),
        budget_tokens=300,
        seed=0,
        work_dir=tmp_path / "t",
        lora=LoraConfig(r=4, alpha=8),
    )
    assert res.steps > 0
    after = model.state_dict()
    assert set(after) == set(before)  # no adapter tensors left: a plain model
    assert not any("lora" in name for name, _ in model.named_modules())
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "model.layers.0.self_attn.q_proj.weight" in changed
    assert "model.layers.3.mlp.down_proj.weight" in changed
    assert "model.embed_tokens.weight" not in changed and "model.norm.weight" not in changed
    # It saves as a plain checkpoint that loads (the next round and vLLM read this directory).
    model.save_pretrained(str(tmp_path / "m"))
    assert not (tmp_path / "m" / "adapter_config.json").exists()
    reloaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "m"))
    x = torch.tensor([tok("Q:1+2=")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x).logits, model(x).logits)


def test_lora_targets_named_modules(tok, tmp_path):
    model = build_model("tiny", tok, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_sft(
        model,
        tok,
        arith_examples(),
        TrainConfig(batch_size=5, lr=1e-2),
        budget_tokens=150,
        seed=0,
        work_dir=tmp_path,
        lora=LoraConfig(r=2, target_modules=["v_proj"]),
    )
    after = model.state_dict()
    changed = {k.split(".")[-2] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"v_proj"}


# ------------------------------------------------------------------------------------------------
# Training under accelerate launch


@pytest.mark.parametrize(
    "train, file_text, expected, absent",
    [
        ({"num_processes": 2}, None, ["--multi_gpu", "--num_processes", "2"], ["--config_file"]),
        (
            {"num_processes": 8},
            "distributed_type: FSDP\n",
            ["--config_file", "--num_processes", "8"],
            ["--multi_gpu"],
        ),
        ({}, "distributed_type: 'NO'\n", ["--num_processes", "1", "--main_process_port"], []),
        ({"num_processes": 2}, "num_machines: 2\n", [], ["--main_process_port"]),
        ({"num_processes": 2}, "main_process_port: 29501\n", [], ["--main_process_port"]),
    ],
)
def test_launch_command(tmp_path, train, file_text, expected, absent):
    if file_text is not None:
        (tmp_path / "acc.yaml").write_text(file_text)
        train = {**train, "accelerate_config": str(tmp_path / "acc.yaml")}
    cfg = TrainConfig(**train)
    cmd = launch_command(cfg, tmp_path / "request.json", port=12345)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[-3:] == ["-m", "selfplay.engine.train_worker", str(tmp_path / "request.json")]
    for flag in expected:
        assert flag in cmd
    for flag in absent:
        assert flag not in cmd
    if file_text is not None:
        assert cmd[cmd.index("--config_file") + 1] == str(tmp_path / "acc.yaml")
    # accelerate's own parser accepts it.
    from accelerate.commands.launch import launch_command_parser

    args = launch_command_parser().parse_args(cmd[3:])
    assert args.num_processes == cfg.num_processes and args.module


CPU_ACCELERATE = "compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nnum_processes: 1\nuse_cpu: true\nmixed_precision: 'no'\n"


@pytest.mark.slow
def test_launched_training_matches_in_process(tok, tmp_path):
    """One CPU process under ``accelerate launch`` plans and trains exactly as in process."""
    (tmp_path / "cpu.yaml").write_text(CPU_ACCELERATE)
    results = []
    for launched in (False, True):
        model = build_model("tiny", tok, seed=0)
        cfg = TrainConfig(
            batch_size=4, accelerate_config=str(tmp_path / "cpu.yaml") if launched else None
        )
        res = train_sft(
            model,
            tok,
            arith_examples(),
            cfg,
            budget_tokens=300,
            seed=1,
            work_dir=tmp_path / f"w{launched}",
        )
        results.append((res, model.state_dict()))
    (a, wa), (b, wb) = results
    assert (a.tokens, a.steps, a.epochs) == (b.tokens, b.steps, b.epochs)
    assert a.final_loss == pytest.approx(b.final_loss, rel=1e-4)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-5, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("accelerate_config", [None, "configs/accelerate/fsdp.yaml"])
def test_two_process_training_on_cpu(tok, tmp_path, accelerate_config):
    """DDP (``--multi_gpu``) and FSDP2 with two CPU processes (gloo), LoRA merged after."""
    model = build_model("tiny", tok, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(
        batch_size=4,
        num_processes=2,
        accelerate_config=str(REPO / accelerate_config) if accelerate_config else None,
    )
    res = train_sft(
        model,
        tok,
        arith_examples(),
        cfg,
        budget_tokens=300,
        seed=0,
        work_dir=tmp_path,
        lora=LoraConfig(r=4),
    )
    assert res.steps > 0 and res.tokens > 250
    changed = {k for k in before if not torch.equal(before[k], model.state_dict()[k])}
    assert "model.layers.0.self_attn.q_proj.weight" in changed
    assert "model.embed_tokens.weight" not in changed


@pytest.mark.slow
def test_launched_training_error_is_one_line(tok, tmp_path):
    (tmp_path / "cpu.yaml").write_text(CPU_ACCELERATE)
    cfg = TrainConfig(batch_size=4, accelerate_config=str(tmp_path / "cpu.yaml"))
    with pytest.raises(WorkerError) as err:
        train_sft(
            build_model("tiny", tok),
            tok,
            arith_examples(),
            cfg,
            budget_tokens=100,
            seed=0,
            work_dir=tmp_path / "w",
            lora=LoraConfig(r=2, target_modules=["no_such_proj"]),
        )
    msg = str(err.value)
    assert msg.startswith("training worker (rank0): ") and "no_such_proj" in msg
    assert "\n" not in msg


# ------------------------------------------------------------------------------------------------
# The loop with these options


MICRO = {
    "raw": {"size": 60, "difficulties": [1, 2]},
    "seed_train": {"tokens": 1500},
    "loop": {"iterations": 1, "pool_difficulties": [1, 2], "problems_per_iter": 6},
    "generation": {"n": 2, "batch_size": 16},
    "filters": {"verified": False, "max_per_problem": 0},
    "train": {"tokens": 600, "batch_size": 8},
    "eval": {"difficulties": [1, 2], "n_per_difficulty": 3, "k": 0},
}


def test_loop_with_the_vllm_backend(fake_vllm, tmp_path):
    from selfplay.engine import artifacts
    from selfplay.engine.loop import run

    cfg = config_from_dict(
        {
            **MICRO,
            # vLLM schedules its own batches: generation.batch_size is refused there.
            "generation": {
                **{k: v for k, v in MICRO["generation"].items() if k != "batch_size"},
                "backend": "vllm",
            },
            "output_dir": str(tmp_path / "r"),
        }
    )
    rows = run(cfg, progress=False)
    samples = artifacts.read_parquet(cfg.run_dir / "iter_001" / "samples.parquet")
    assert len(samples) == 6 * 2 and rows[-1]["generate"]["generated_tokens"] == sum(
        s["tokens"] for s in samples
    )
    calls = read_calls(fake_vllm)
    # seed eval (greedy), round generation, round eval: each from its checkpoint directory.
    assert [Path(c["engine"]["model"]).parent.name for c in calls] == ["seed", "seed", "iter_001"]


@pytest.mark.slow  # a worker process per generation call: ~8 of them
def test_the_climb_with_the_vllm_backend(fake_vllm, tmp_path):
    """The frontier schedule generates through the configured backend: its probe, labels and
    evaluations go to vLLM (here a fake engine) from each round's checkpoint directory."""
    from selfplay.engine.loop import run

    cfg = config_from_dict(
        {
            "output_dir": str(tmp_path / "climb"),
            "device": "cpu",
            "model": {"preset": "tiny", "position": "nope"},
            "task": {"name": "arith", "ops": ["add"], "reversed": True},
            "raw": {"size": 50, "difficulties": [1], "answer_only_rate": 1.0},
            "seed_train": {"tokens": 1_000},
            "loop": {
                "schedule": "frontier",
                "iterations": 1,
                "problems_per_iter": 6,
                "frontier": {"threshold": 0.0, "val_per_difficulty": 3, "probe_ahead": 1},
            },
            "generation": {"backend": "vllm", "n": 1},
            "filters": {"verified": False},
            "train": {"tokens": 300, "batch_size": 4},
            "eval": {"difficulties": [1, 2, 3], "n_per_difficulty": 2, "k": 0},
        }
    )
    rows = run(cfg, progress=False)
    assert rows[1]["frontier"]["practice"] == [3]
    stages = [Path(c["engine"]["model"]).parent.name for c in read_calls(fake_vllm)]
    # seed eval; round 1: probe (one call per difficulty), labels, eval; the final evaluation.
    assert stages == [
        "seed",
        "seed",
        "seed",
        "seed",
        "iter_001",
        "iter_001",
        "iter_001",
        "iter_001",
    ]


def test_loop_from_a_chat_model_with_lora(chat_tok, tmp_path):
    from selfplay.engine.loop import run
    from selfplay.engine.models import load_model

    base = tmp_path / "chat-base"
    build_model("tiny", chat_tok, seed=0).save_pretrained(str(base))
    chat_tok.save_pretrained(str(base))
    cfg = config_from_dict(
        {
            **MICRO,
            "model": {"name_or_path": str(base), "lora": {"r": 4}},
            "output_dir": str(tmp_path / "r"),
        }
    )
    rows = run(cfg, progress=False)
    assert [r["stage"] for r in rows] == ["seed", "iter_001"]
    seed, _ = load_model(cfg.run_dir / "seed" / "model")
    it, tok = load_model(cfg.run_dir / "iter_001" / "model")
    assert tok.chat_template == CHAT_TEMPLATE
    s, i = seed.state_dict(), it.state_dict()
    assert set(s) == set(i) and not torch.equal(
        s["model.layers.0.mlp.up_proj.weight"], i["model.layers.0.mlp.up_proj.weight"]
    )
    assert torch.equal(s["model.embed_tokens.weight"], i["model.embed_tokens.weight"])


# ------------------------------------------------------------------------------------------------
# Benchmark script


def test_gpu_bench_smoke(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_bench.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    gen = result["generation"]
    assert {r["backend"] for r in gen} >= {"hf-dynamic", "hf-static"}
    assert all(r["tokens_per_s"] > 0 for r in gen)
    assert result["training"] and all(r["tokens_per_s"] > 0 for r in result["training"])
    assert "plain" in {r["variant"] for r in result["training"]}
    assert result["goals"]["training_trl_overhead"]["value"] is not None
    assert result["loop"]["iteration_seconds"] > 0
    assert "generation" in proc.stdout and "training" in proc.stdout


# ------------------------------------------------------------------------------------------------
# On a GPU


@pytest.mark.gpu
@needs_gpu
def test_gpu_generation_bf16_static_compiled(tok, tmp_path):
    cfg = config_from_dict({})
    path = tmp_path / "m"
    build_model("tiny", tok, seed=0).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    model, tok = load_for_generation(cfg, path, "cuda")
    assert model.dtype == torch.bfloat16 and model.device.type == "cuda"
    prompts = PROMPTS * 20
    kw = dict(greedy=True, max_new_tokens=16, batch_size="auto")
    dyn = hf_backend.generate(model, tok, prompts, **kw)
    comp = hf_backend.generate(model, tok, prompts, cache="static", compile=True, **kw)
    same = sum(a == b for a, b in zip(dyn, comp, strict=True)) / len(dyn)
    assert same >= 0.9  # bf16 kernels may differ in the last bit, and flip a near-tie
    assert hf_backend.auto_batch_size(model, 20, 64, n=4) >= 1024  # a tiny model on a GPU


@pytest.mark.gpu
@needs_gpu
def test_gpu_training_bf16_packing_compile(tok, tmp_path):
    model = build_model("tiny", tok, seed=0).to("cuda")
    res = train_sft(
        model,
        tok,
        arith_examples(100),
        TrainConfig(batch_size=32, packing=True, compile=True),
        budget_tokens=20_000,
        seed=0,
        work_dir=tmp_path,
        device="cuda",
    )
    assert res.final_loss is not None and res.final_loss < 3.0
    assert next(model.parameters()).dtype == torch.float32  # master weights; bf16 autocast


@pytest.mark.vllm
@needs_vllm
def test_vllm_engine_agrees_with_hf(tok, tmp_path):
    path = tmp_path / "m"
    model = build_model("small", tok, seed=0)
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    prompts = PROMPTS * 10
    v = get_backend("vllm")(str(path), tok, prompts, greedy=True, max_new_tokens=16)
    m, t = load_for_generation(config_from_dict({}), path, "cuda")
    h = hf_backend.generate(m, t, prompts, greedy=True, max_new_tokens=16)
    assert [c.prompt_idx for c in v] == [c.prompt_idx for c in h]
    assert sum(a.text == b.text for a, b in zip(v, h, strict=True)) / len(h) >= 0.8
    sampled = get_backend("vllm")(str(path), tok, prompts, n=4, max_new_tokens=16, seed=1)
    assert sampled == get_backend("vllm")(str(path), tok, prompts, n=4, max_new_tokens=16, seed=1)
