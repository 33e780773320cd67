"""``model.position: nope``: no position signal, and the checkpoint reloads as NoPE in transformers."""

from __future__ import annotations

import pytest
import torch

from selfplay.config import ConfigError, config_from_dict
from selfplay.engine.models import (
    build_char_tokenizer,
    build_model,
    init_model,
    load_model,
    position_encoding,
)

TOK = build_char_tokenizer()


def _logits(model, ids, position_ids=None):
    with torch.no_grad():
        return model(input_ids=ids, position_ids=position_ids).logits


def _ids(text="Q:9274+683=51150"):
    return torch.tensor([TOK(text)["input_ids"]])


def test_nope_ignores_positions_and_rope_does_not():
    ids = _ids()
    scrambled = torch.randperm(ids.shape[1], generator=torch.Generator().manual_seed(0))[None] * 7
    nope = build_model("tiny", TOK, position="nope").eval()
    rope = build_model("tiny", TOK, position="rope").eval()
    assert torch.equal(_logits(nope, ids), _logits(nope, ids, scrambled))
    assert (_logits(rope, ids) - _logits(rope, ids, scrambled)).abs().max() > 1e-4
    assert position_encoding(nope.config) == "nope" and position_encoding(rope.config) == "rope"


def test_nope_round_trip_through_save_pretrained(tmp_path):
    model = build_model("tiny", TOK, position="nope", seed=3).eval()
    model.save_pretrained(tmp_path)
    TOK.save_pretrained(tmp_path)
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tmp_path).eval()  # no selfplay code involved
    again, _ = load_model(tmp_path)
    ids = _ids()
    assert torch.equal(_logits(model, ids), _logits(plain, ids))
    assert torch.equal(_logits(model, ids), _logits(again, ids))
    assert position_encoding(plain.config) == "nope"
    # Still position-free after the reload.
    shifted = torch.arange(ids.shape[1])[None].flip(1) * 11
    assert torch.equal(_logits(plain, ids), _logits(plain, ids, shifted))


def test_config_position():
    model, _ = init_model(config_from_dict({"model": {"position": "nope"}}))
    assert position_encoding(model.config) == "nope"
    with pytest.raises(ConfigError, match="model.position"):
        config_from_dict({"model": {"position": "alibi"}})
