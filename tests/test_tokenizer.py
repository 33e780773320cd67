"""The character tokenizer and the tiny from-scratch model: round trips and save/reload."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from selfplay.engine.models import BOS, CHARS, EOS, PAD, UNK, build_char_tokenizer, build_model

SPECIALS = (PAD, BOS, EOS, UNK)


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer()


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(alphabet=CHARS, max_size=200))
def test_round_trip_one_token_per_character(tok, text):
    # A literal special-token string in the text (e.g. "</s>") is read as that special token.
    assume(not any(s in text for s in SPECIALS))
    ids = _ids(tok, text)
    assert len(ids) == len(text)
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == text
    assert ids == [tok.convert_tokens_to_ids(ch) for ch in text]


def test_arith_chain_round_trips(tok):
    text = "Q:4729+386=9+6=15 c1|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0|5115"
    ids = _ids(tok, text)
    assert len(ids) == len(text) and tok.decode(ids) == text


def test_every_char_has_its_own_id(tok):
    ids = [tok.convert_tokens_to_ids(ch) for ch in CHARS]
    assert len(set(ids)) == len(CHARS)
    assert tok.unk_token_id not in ids
    assert len(tok) == len(CHARS) + len(SPECIALS)


def test_special_ids_are_distinct(tok):
    specials = [tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id]
    assert None not in specials
    assert len(set(specials)) == 4
    assert tok.pad_token_id != tok.eos_token_id
    assert tok.decode([tok.eos_token_id]) == EOS
    assert tok.decode(_ids(tok, "ab") + [tok.eos_token_id], skip_special_tokens=True) == "ab"


def test_unknown_character_is_unk(tok):
    ids = _ids(tok, "1é2")
    assert ids == [tok.convert_tokens_to_ids("1"), tok.unk_token_id, tok.convert_tokens_to_ids("2")]


def test_left_padding(tok):
    batch = tok(["1+1=", "12+34="], padding=True, add_special_tokens=False)
    assert batch["input_ids"][0][:2] == [tok.pad_token_id] * 2
    assert batch["attention_mask"][0] == [0, 0, 1, 1, 1, 1]


def test_save_and_reload_tokenizer(tok, tmp_path):
    from transformers import AutoTokenizer

    tok.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").is_file()
    again = AutoTokenizer.from_pretrained(tmp_path)
    texts = ["Q:47*36=47*6=282|47*30=1410|282+1410=1692|1692", " a\tb\nc ~`!", "", "é"]
    for text in texts:
        assert again(text, add_special_tokens=False)["input_ids"] == _ids(tok, text)
        assert again.decode(_ids(tok, text)) == tok.decode(_ids(tok, text))
    assert again(texts[0])["input_ids"] == tok(texts[0])["input_ids"]
    for name in ("pad_token_id", "bos_token_id", "eos_token_id", "unk_token_id", "padding_side"):
        assert getattr(again, name) == getattr(tok, name), name
    assert len(again) == len(tok)


def test_tiny_model_saves_and_reloads(tok, tmp_path):
    from transformers import AutoModelForCausalLM

    model = build_model("tiny", tok, max_positions=64, seed=0).eval()
    assert model.config.vocab_size == len(tok)
    assert model.config.pad_token_id == tok.pad_token_id
    assert model.config.eos_token_id == tok.eos_token_id
    model.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(again) is type(model)
    ids = torch.tensor([_ids(tok, "Q:4729+386=9+6=15 c1|")])
    with torch.no_grad():
        want = model(ids).logits
        got = again(ids).logits
    assert want.shape == (1, ids.shape[1], len(tok))
    assert torch.isfinite(want).all()
    assert torch.allclose(want, got, atol=1e-6), (want - got).abs().max()
    assert again.generation_config.pad_token_id == tok.pad_token_id
    assert again.generation_config.eos_token_id == tok.eos_token_id


def test_build_model_is_seeded(tok):
    a = build_model("tiny", tok, max_positions=64, seed=1)
    b = build_model("tiny", tok, max_positions=64, seed=1)
    c = build_model("tiny", tok, max_positions=64, seed=2)
    pa, pb, pc = (next(m.parameters()) for m in (a, b, c))
    assert torch.equal(pa, pb)
    assert not torch.equal(pa, pc)
