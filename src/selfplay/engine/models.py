"""Models: a from-scratch Llama with a character tokenizer, or any Hugging Face causal LM.

Both save with ``save_pretrained`` into a directory that ``AutoModelForCausalLM`` /
``AutoTokenizer`` (and vLLM) load; the character tokenizer is a plain ``tokenizer.json``.

On a GPU, generation runs in bfloat16 and training keeps float32 weights under bf16 autocast;
attention is SDPA (FlashAttention 2 when ``flash-attn`` is installed) and float32 matmuls use TF32.
A tokenizer with a chat template renders each prompt as a user turn (see :func:`encode_prompts`).
"""

from __future__ import annotations

import importlib.util
import string
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from selfplay.config import ModelConfig, RunConfig

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
CHARS = string.printable.replace("\x0b", "").replace("\x0c", "").replace("\r", "")
"""Printable ASCII, space, tab and newline: enough for every built-in task."""

PRESETS = {
    # name: (hidden, layers, heads, intermediate)
    "tiny": (128, 4, 4, 512),  # ~1.1M params
    "small": (320, 6, 8, 1280),  # ~10M params
    "base": (768, 10, 12, 3072),  # ~95M params
}


def build_char_tokenizer(max_length: int = 1024) -> PreTrainedTokenizerBase:
    """A character-level tokenizer: one token per character, specials for pad/bos/eos/unk."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([PAD, BOS, EOS, UNK, *CHARS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        model_max_length=max_length,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


NOPE_ROPE = {"rope_type": "linear", "factor": 1e30, "rope_theta": 10000.0}
"""Rotary parameters that make RoPE the identity: every angle is ``position x freq / 1e30``, so
cos is exactly 1 and sin at most ~1e-27 in float32, below the rounding of any activation (one part
in ~1e7). The model is then NoPE (causal attention with no position signal), and because this is
an ordinary ``LlamaConfig`` the checkpoint reloads as NoPE in plain transformers (and vLLM) with no
custom class or remote code."""


def position_encoding(config) -> str:
    """``nope`` if a Llama config's rotary embedding is the identity of :data:`NOPE_ROPE`, else ``rope``."""
    rope = getattr(config, "rope_parameters", None) or {}
    return "nope" if rope.get("factor", 1.0) >= NOPE_ROPE["factor"] else "rope"


def build_model(
    preset: str,
    tokenizer: PreTrainedTokenizerBase,
    max_positions: int = 1024,
    seed: int = 0,
    attn_implementation: str | None = None,
    position: str = "rope",
) -> PreTrainedModel:
    """A randomly initialised Llama of the given size preset, sized to the tokenizer; ``position``
    ``rope`` (rotary) or ``nope`` (no position signal: see :data:`NOPE_ROPE`)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if position not in ("rope", "nope"):
        raise ValueError(f"position: 'rope' or 'nope', not {position!r}")
    hidden, layers, heads, inter = PRESETS[preset]
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if position == "nope":
        extra["rope_parameters"] = dict(NOPE_ROPE)
    config = LlamaConfig(
        **extra,
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def init_model(
    cfg: RunConfig, device: str = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The initial weights for a run, placed for training on ``device`` (see
    :func:`load_for_training`): a preset built from scratch, or a pretrained LM."""
    if cfg.model.name_or_path:
        return load_for_training(cfg, cfg.model.name_or_path, device)
    tok = build_char_tokenizer()
    attn = resolve_attention(cfg.model.attn_implementation, device)
    model = build_model(
        cfg.model.preset, tok, seed=cfg.seed, attn_implementation=attn, position=cfg.model.position
    )
    target = "cpu" if launches_training(cfg) else device
    return model.to(target, _torch_dtype(training_dtype(cfg.model))), tok


@contextmanager
def _readable_checkpoint(name_or_path: str | Path):
    """A checkpoint directory that does not load (damaged weights, a config.json that is not a
    config) is a one-line error naming it, with the command that writes it again (in a run
    directory: the redo of the stage that trained it); a hub name's errors pass through."""
    if not Path(name_or_path).is_dir():
        yield
        return
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        if isinstance(exc, FileNotFoundError) and not Path(name_or_path).exists():
            raise
        from selfplay.engine.artifacts import damaged

        why = " ".join(str(exc).split())
        why = why if len(why) <= 120 else why[:117] + "..."
        raise damaged(Path(name_or_path), f"not a loadable checkpoint ({why})") from None


def load_tokenizer(name_or_path: str | Path) -> PreTrainedTokenizerBase:
    """A tokenizer that pads on the left (for batched generation) and always has a pad token."""
    from transformers import AutoTokenizer

    with _readable_checkpoint(name_or_path):
        tok = AutoTokenizer.from_pretrained(str(name_or_path))
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    name_or_path: str | Path,
    device: str = "cpu",
    *,
    dtype: str | None = None,
    attn_implementation: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer (hub name or ``save_pretrained`` directory).

    ``dtype`` (``float32``, ``bfloat16``, ``float16``; ``None``: the checkpoint's) and
    ``attn_implementation`` (``None``: the transformers default, SDPA) go to ``from_pretrained``.
    """
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tok = load_tokenizer(name_or_path)
    kwargs = {}
    if dtype is not None:
        kwargs["dtype"] = _torch_dtype(dtype)
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    with _readable_checkpoint(name_or_path):
        model = AutoModelForCausalLM.from_pretrained(str(name_or_path), **kwargs)
    model = model.to(device)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def count_params(model: PreTrainedModel | str | Path) -> int:
    """Parameters of a model, or of the checkpoint in a directory (read without loading weights)."""
    if isinstance(model, (str, Path)):
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        with torch.device("meta"), _readable_checkpoint(model):
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(model)))
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------------
# Devices, precision and kernels


def _torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def generation_dtype(model_cfg: ModelConfig, device: str) -> str | None:
    """Weights dtype for generation: ``model.dtype``, where ``auto`` is bfloat16 on a GPU that
    supports it and the checkpoint's own (``None``) elsewhere."""
    if model_cfg.dtype != "auto":
        return model_cfg.dtype
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_bf16_supported():
            return "bfloat16"
    return None


def training_dtype(model_cfg: ModelConfig) -> str:
    """Weights dtype for training: float32 master weights under ``auto`` (mixed precision on a GPU
    comes from bf16 autocast), else ``model.dtype``."""
    return "float32" if model_cfg.dtype == "auto" else model_cfg.dtype


def resolve_attention(name: str, device: str) -> str | None:
    """``auto`` -> ``flash_attention_2`` on a GPU with ``flash-attn`` installed; otherwise ``None``
    (the transformers default, SDPA). Any other name is passed through."""
    if name != "auto":
        return name
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return None


def setup_device(device: str) -> None:
    """Process-wide settings for a device: on a CUDA GPU, float32 matmuls run on TF32 tensor cores
    (cuDNN convolutions already do by default)."""
    if not device.startswith("cuda"):
        return
    import torch

    # The one call that sets TF32 for matmuls and keeps ``get_float32_matmul_precision`` (read by
    # inductor) working; mixing it with ``torch.backends.*.fp32_precision`` makes that raise.
    torch.set_float32_matmul_precision("high")


def launches_training(cfg: RunConfig) -> bool:
    """Whether training stages run under ``accelerate launch`` in worker processes."""
    return cfg.train.num_processes > 1 or cfg.train.accelerate_config is not None


def load_for_training(
    cfg: RunConfig, name_or_path: str | Path, device: str
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A checkpoint to train: float32 weights (under ``model.dtype: auto``) on ``device``, or on
    the CPU when training runs in launched worker processes, which place it themselves."""
    target = "cpu" if launches_training(cfg) else device
    return load_model(
        name_or_path,
        target,
        dtype=training_dtype(cfg.model),
        attn_implementation=resolve_attention(cfg.model.attn_implementation, device),
    )


_GENERATION_MODEL: dict[tuple, tuple] = {}
"""The last checkpoint loaded for generation, by what it was loaded from and how: a round's
probe and its generation (and its evaluation and the next round's probe) read the same weights,
and generation never changes them."""


def load_for_generation(cfg: RunConfig, path: str | Path, device: str):
    """``(model, tokenizer)`` as the generation backend takes them. The ``vllm`` backend loads the
    checkpoint itself in its worker process, so its ``model`` is the directory, not weights. On a
    CPU, a checkpoint directory loaded just before (the same files, unchanged) is not loaded
    again."""
    if cfg.generation.backend == "vllm":
        return str(path), load_tokenizer(path)
    dtype = generation_dtype(cfg.model, device)
    attn = resolve_attention(cfg.model.attn_implementation, device)
    key = None
    if device == "cpu" and Path(path).is_dir():  # a GPU's memory is for the training stage
        files = sorted(p for p in Path(path).iterdir() if p.is_file())
        stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        key = (str(Path(path).resolve()), stamp, device, dtype, attn)
    if key is not None and key in _GENERATION_MODEL:
        return _GENERATION_MODEL[key]
    loaded = load_model(path, device, dtype=dtype, attn_implementation=attn)
    if key is not None:
        _GENERATION_MODEL.clear()  # one model at a time: a large one is not held twice
        _GENERATION_MODEL[key] = loaded
    return loaded


# ------------------------------------------------------------------------------------------------
# Prompts: plain text or a chat template


def uses_chat_template(tokenizer: PreTrainedTokenizerBase, mode: str) -> bool:
    """``model.chat_template``: ``auto`` uses the tokenizer's template when it has one."""
    return mode == "auto" and bool(getattr(tokenizer, "chat_template", None))


def user_turn(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: list[str], chat: bool
) -> list[list[int]]:
    """Token ids of each prompt exactly as training sees it before the completion (TRL's
    tokenization): with ``chat``, a user turn plus the generation prompt; else the plain text with
    the tokenizer's special tokens (none for the character tokenizer)."""
    if not prompts:
        return []
    if chat:
        return [
            list(
                tokenizer.apply_chat_template(
                    user_turn(p), add_generation_prompt=True, tokenize=True, return_dict=True
                )["input_ids"]
            )
            for p in prompts
        ]
    return [list(ids) for ids in tokenizer(prompts)["input_ids"]]


def stop_token_ids(tokenizer: PreTrainedTokenizerBase, chat: bool) -> list[int]:
    """Tokens that end a completion: end-of-sequence and, with a chat template, the token the
    template closes an assistant turn with (e.g. ``<|im_end|>``), found by rendering one."""
    stops = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if chat:
        prompt_ids = encode_prompts(tokenizer, ["Hi"], chat=True)[0]
        full = tokenizer.apply_chat_template(
            [*user_turn("Hi"), {"role": "assistant", "content": "Hello"}],
            tokenize=True,
            return_dict=True,
        )["input_ids"]
        special = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
        tail = full[len(prompt_ids) :] if full[: len(prompt_ids)] == prompt_ids else []
        end = next((t for t in tail if t in special), None)
        if end is not None and end not in stops:
            stops.append(end)
    return stops


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        from selfplay.config import ConfigError

        raise ConfigError("device: 'cuda' was asked for but no CUDA device is available")
    return device
