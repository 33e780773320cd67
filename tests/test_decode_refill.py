"""Continuous batching in the decode loop (``generation.refill``): rows that finish take the next
prompts; greedy output stays token-identical to ``model.generate`` (the ring of cache slots wraps
many times over), sampling is reproducible per seed, fewer steps than padding each batch to its
longest row, and the configs and models it cannot serve are one-line errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from selfplay.config import ConfigError, config_from_dict
from selfplay.engine.models import build_char_tokenizer
from selfplay.generation import backend_options, decode
from selfplay.generation import hf as hf_backend
from selfplay.generation.decode import decode_batch, decode_refill

from .test_decode_loop import PROMPTS, extra_stops, ragged_stop_chars, scrambled

MANY = [f"Q:{a}+{b}=" for a, b in [(i * 37 % 1000, i * 91 % 10000) for i in range(30)]]
"""30 prompts of lengths 6 to 12, more than the rows, so rows are refilled many times."""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return scrambled(tok)


def ids_of(tok, prompts):
    return tok(prompts)["input_ids"]


def counted(model, fn, *args, **kw):
    """``fn``'s output and how many forward passes of ``model`` it made."""
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        return fn(model, *args, **kw), len(calls)
    finally:
        handle.remove()


@pytest.mark.parametrize(
    "position, attn", [("rope", None), ("rope", "eager"), ("nope", None)], ids=str
)
def test_greedy_refill_is_token_identical_to_generate(tok, position, attn):
    model = scrambled(tok, position, attn)
    with extra_stops(model, tok, ragged_stop_chars(model, tok)):
        for rows, max_new in ((3, 16), (4, 40), (64, 12)):
            kw = dict(greedy=True, max_new_tokens=max_new, batch_size=rows)
            ref = hf_backend.generate(model, tok, MANY, **kw)
            got = hf_backend.generate(model, tok, MANY, decoder="loop", refill=True, **kw)
            assert got == ref, (rows, max_new)
            reasons = {c.finish_reason for c in ref}
            assert reasons == {"stop", "length"}  # rows end at different steps, some never


def test_refill_runs_fewer_steps_than_padding_each_batch(model, tok):
    """Rows that stop early take new prompts instead of idling until the batch's longest row
    stops: fewer forward passes for the same tokens."""
    eos = tok.eos_token_id
    prompts = ids_of(tok, MANY)
    kw = dict(max_new_tokens=40, pad_id=tok.pad_token_id, greedy=True, sync_every=1)
    stops = [eos, *tok.convert_tokens_to_ids(ragged_stop_chars(model, tok))]
    new, refill_calls = counted(model, decode_refill, prompts, rows=4, stop_ids=stops, **kw)
    batch_calls, ref = 0, []
    for start in range(0, len(prompts), 4):
        group = prompts[start : start + 4]
        width = max(map(len, group))
        ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in group])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in group])
        out, calls = counted(model, decode_batch, ids, mask, stop_ids=stops, **kw)
        ref += out.tolist()
        batch_calls += calls
    assert new == ref
    # Fewer decode steps: the refill prefills add forward passes of their own, so compare the
    # steps (each decode step is one forward pass of all rows).
    assert refill_calls < batch_calls


def test_refill_sampling_is_reproducible_per_seed_and_in_prompt_sample_order(model, tok):
    kw = dict(n=3, max_new_tokens=12, batch_size=5, decoder="loop", refill=True)
    a = hf_backend.generate(model, tok, PROMPTS, seed=1, **kw)
    b = hf_backend.generate(model, tok, PROMPTS, seed=1, **kw)
    c = hf_backend.generate(model, tok, PROMPTS, seed=2, **kw)
    assert a == b
    assert [x.text for x in a] != [x.text for x in c]
    assert [(x.prompt_idx, x.sample_idx) for x in a] == [
        (i, j) for i in range(len(PROMPTS)) for j in range(3)
    ]
    assert all(len({x.text for x in a[3 * i : 3 * i + 3]}) > 1 for i in range(len(PROMPTS)))


@pytest.mark.parametrize("max_new", [1, 2, 7])
def test_refill_max_new_tokens_and_finish_reasons(model, tok, max_new):
    kw = dict(greedy=True, max_new_tokens=max_new, batch_size=3)
    ref = hf_backend.generate(model, tok, MANY, **kw)
    got = hf_backend.generate(model, tok, MANY, decoder="loop", refill=True, **kw)
    assert got == ref
    assert all(c.tokens <= max_new for c in got)


def test_every_row_stopping_at_once_still_decodes_every_prompt(model, tok):
    """With every character a stop token each sequence is one token: every check refills every
    row, and every prompt gets its token."""
    every = list(range(len(tok)))
    prompts = ids_of(tok, MANY)
    new = decode_refill(
        model, prompts, rows=4, max_new_tokens=9, stop_ids=every, pad_id=tok.pad_token_id,
        greedy=True,
    )  # fmt: skip
    assert len(new) == len(prompts)
    assert all(len(t) == 9 and t[0] != tok.pad_token_id for t in new)
    assert all(set(t[1:]) == {tok.pad_token_id} for t in new)


def test_refill_graph_bookkeeping_with_a_stand_in_graph(model, tok, monkeypatch):
    """The CUDA-graph path's control flow on CPU: the warm-up steps and "replays" of the same
    step, with refills changing the step's buffers in place between them, give the eager
    tokens."""
    prompts = ids_of(tok, MANY)
    kw = dict(rows=4, max_new_tokens=20, stop_ids=[tok.eos_token_id], pad_id=tok.pad_token_id)
    eager = decode_refill(model, prompts, generator=torch.Generator().manual_seed(0), **kw)
    replays = []

    def stand_in(step, warmup, generator):
        for _ in range(warmup):
            step()
        return SimpleNamespace(replay=lambda: (replays.append(1), step()))

    monkeypatch.setattr(decode, "wants_graph", lambda *_: True)
    monkeypatch.setattr(decode, "capture_step", stand_in)
    got = decode_refill(model, prompts, generator=torch.Generator().manual_seed(0), **kw)
    assert got == eager and replays


def test_refill_config_and_errors(model, tok):
    assert config_from_dict({}).generation.refill is False
    cfg = config_from_dict({"generation": {"decoder": "loop", "refill": True}})
    assert backend_options(cfg)["refill"] is True
    with pytest.raises(ConfigError) as err:
        config_from_dict({"generation": {"refill": True}})
    assert str(err.value).startswith("generation.refill: needs generation.decoder: loop")
    with pytest.raises(ValueError, match="refill needs decoder='loop'"):
        hf_backend.generate(model, tok, PROMPTS, refill=True)
    kw = dict(rows=2, max_new_tokens=4, stop_ids=[tok.eos_token_id], pad_id=tok.pad_token_id)
    assert decode_refill(model, [], **kw) == []
    with pytest.raises(ValueError, match="at least one token"):
        decode_refill(model, [[5], []], **kw)
    with pytest.raises(ValueError, match="rows must be >= 1"):
        decode_refill(model, [[5]], **{**kw, "rows": 0})
    flash = SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2"))
    with pytest.raises(ValueError, match="sdpa or eager"):
        decode.check_refill(flash)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_refill_graph_replays_the_eager_step(tok):
    model = scrambled(tok).to("cuda")
    prompts = ids_of(tok, MANY * 8)
    kw = dict(rows=64, max_new_tokens=24, stop_ids=[tok.eos_token_id], pad_id=tok.pad_token_id)
    graph = decode_refill(model, prompts, greedy=True, cuda_graph=True, **kw)
    eager = decode_refill(model, prompts, greedy=True, cuda_graph=False, **kw)
    assert graph == eager
    gen = lambda s: torch.Generator(device="cuda").manual_seed(s)  # noqa: E731
    assert decode_refill(model, prompts, generator=gen(0), **kw) == decode_refill(
        model, prompts, generator=gen(0), cuda_graph=False, **kw
    )
    ref = hf_backend.generate(model, tok, MANY * 8, greedy=True, max_new_tokens=24)
    got = hf_backend.generate(
        model, tok, MANY * 8, greedy=True, max_new_tokens=24, decoder="loop", refill=True
    )
    assert got == ref


def test_sliding_window_models_are_refused_by_their_layer_types():
    def model(**text):
        cfg = SimpleNamespace(_attn_implementation="sdpa", **text)
        cfg.get_text_config = lambda decoder=True: cfg
        return SimpleNamespace(config=cfg)

    decode.check_refill(model(layer_types=["full_attention"] * 2, sliding_window=4096))
    decode.check_refill(model(sliding_window=None))
    for bad in (
        model(layer_types=["full_attention", "sliding_attention"]),
        model(sliding_window=4096),
    ):
        with pytest.raises(ValueError, match="sliding-window"):
            decode.check_refill(bad)
