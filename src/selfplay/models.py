"""Models: a from-scratch Llama with a character tokenizer, or any Hugging Face causal LM.

Both save with ``save_pretrained`` into a directory that ``AutoModelForCausalLM`` /
``AutoTokenizer`` (and vLLM) load; the character tokenizer is a plain ``tokenizer.json``.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from selfplay.config import RunConfig

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


def build_model(
    preset: str, tokenizer: PreTrainedTokenizerBase, max_positions: int = 1024, seed: int = 0
) -> PreTrainedModel:
    """A randomly initialised Llama of the given size preset, sized to the tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, layers, heads, inter = PRESETS[preset]
    config = LlamaConfig(
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


def init_model(cfg: RunConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The initial weights for a run: a preset built from scratch, or a pretrained LM."""
    if cfg.model.name_or_path:
        return load_model(cfg.model.name_or_path)
    tok = build_char_tokenizer()
    return build_model(cfg.model.preset, tok, seed=cfg.seed), tok


def load_model(
    name_or_path: str | Path, device: str = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer (hub name or ``save_pretrained`` directory)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(str(name_or_path))
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(name_or_path)).to(device)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def count_params(model: PreTrainedModel) -> int:
    return sum(p.numel() for p in model.parameters())


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        from selfplay.config import ConfigError

        raise ConfigError("device: 'cuda' was asked for but no CUDA device is available")
    return device
