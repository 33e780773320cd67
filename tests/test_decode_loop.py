"""The hf backend's own decode loop (``generation.decoder: loop``): greedy output token-identical
to ``model.generate`` under left padding and ragged stops, seeded sampling, the top-p / temperature
rule, ``max_new_tokens`` and finish reasons, the sync cadence, config validation. The CUDA-graph
path runs only where CUDA exists (``gpu``)."""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import torch

from selfplay.config import ConfigError, config_from_dict
from selfplay.engine.models import build_char_tokenizer, build_model
from selfplay.generation import backend_options, decode
from selfplay.generation import hf as hf_backend
from selfplay.generation.decode import decode_batch, left_padded_positions, select_tokens

CUDA = torch.cuda.is_available()
PROMPTS = [
    f"Q:{a}+{b}="
    for a, b in [(3, 4), (12, 9), (5, 801), (77, 7), (1, 1), (450, 62), (1234, 5678), (0, 0)]
]
"""Lengths 6 to 12: every batch of four is left-padded."""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer()


def scrambled(tok, position: str = "rope", attn: str | None = None):
    """A ``tiny`` model with large random weights. An untrained preset repeats one character
    forever, which would hide position and padding mistakes; this one writes varied text that
    depends on every earlier token and position, and stops (end-of-sequence) at ragged lengths."""
    model = build_model("tiny", tok, seed=0, position=position, attn_implementation=attn)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.15, generator=g)
    return model.eval()


@pytest.fixture(scope="module")
def model(tok):
    return scrambled(tok)


def both(model, tok, prompts=PROMPTS, **kw):
    kw = dict(max_new_tokens=16, batch_size=4) | kw
    ref = hf_backend.generate(model, tok, prompts, **kw)
    loop = hf_backend.generate(model, tok, prompts, decoder="loop", **kw)
    return ref, loop


# ------------------------------------------------------------------------------------------------
# Greedy: the same tokens as generate


@contextmanager
def extra_stops(model, tok, stop_chars: list[str]):
    """Stop tokens beyond end-of-sequence, as a chat template's end of turn adds one."""
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [saved, *tok.convert_tokens_to_ids(stop_chars)]
    try:
        yield
    finally:
        model.generation_config.eos_token_id = saved


def ragged_stop_chars(model, tok) -> list[str]:
    """Characters that end three rows' greedy text at characters 3, 6 and 10 (or before)."""
    plain = hf_backend.generate(model, tok, PROMPTS, greedy=True, max_new_tokens=16, batch_size=8)
    long = [c.text for c in plain if len(c.text) >= 10]
    return [text[k] for text, k in zip(long[:3], (2, 5, 9), strict=True)]


@pytest.mark.parametrize(
    "position, attn", [("rope", None), ("rope", "eager"), ("nope", None)], ids=str
)
def test_greedy_is_token_identical_to_generate(tok, position, attn):
    model = scrambled(tok, position, attn)
    ref, loop = both(model, tok, greedy=True)
    assert loop == ref
    assert len({c.text for c in ref}) == len(PROMPTS)  # varied text, not one repeated character
    # Rows ending at different steps (and some not at all), in batches of 4 and of 8.
    with extra_stops(model, tok, ragged_stop_chars(model, tok)):
        for batch in (4, 8):
            ref, loop = both(model, tok, greedy=True, batch_size=batch)
            assert loop == ref
            assert len({c.tokens for c in ref if c.finish_reason == "stop"}) >= 3
            assert any(c.finish_reason == "length" for c in ref)


def test_greedy_matches_the_static_cache_generate(model, tok):
    ref, loop = both(model, tok, greedy=True, cache="static")
    assert loop == ref


def test_positions_follow_the_mask_as_generate_computes_them():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    expected = [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4], [0, 0, 0, 0, 0]]
    assert left_padded_positions(mask).tolist() == expected


# ------------------------------------------------------------------------------------------------
# Sampling


def test_sampling_is_reproducible_per_seed_and_in_prompt_sample_order(model, tok):
    kw = dict(n=3, max_new_tokens=12, batch_size=6, decoder="loop")
    a = hf_backend.generate(model, tok, PROMPTS, seed=1, **kw)
    b = hf_backend.generate(model, tok, PROMPTS, seed=1, **kw)
    c = hf_backend.generate(model, tok, PROMPTS, seed=2, **kw)
    assert a == b
    assert [x.text for x in a] != [x.text for x in c]
    assert [(x.prompt_idx, x.sample_idx) for x in a] == [
        (i, j) for i in range(len(PROMPTS)) for j in range(3)
    ]
    # The n samples of a prompt differ from each other (rows draw independently).
    assert all(len({x.text for x in a[3 * i : 3 * i + 3]}) > 1 for i in range(len(PROMPTS)))


def test_tiny_temperature_is_greedy(model, tok):
    greedy = hf_backend.generate(model, tok, PROMPTS, greedy=True, decoder="loop", batch_size=4)
    cold = hf_backend.generate(model, tok, PROMPTS, temperature=1e-6, decoder="loop", batch_size=4)
    assert cold == greedy


def test_samples_follow_the_softmax_and_the_top_p_rule():
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])
    logits = probs.log().expand(40_000, -1)
    gen = torch.Generator().manual_seed(0)

    def freq(**kw):
        tokens = select_tokens(logits, greedy=False, generator=gen, **kw)
        return torch.bincount(tokens, minlength=4).float() / len(tokens)

    assert torch.allclose(freq(), probs, atol=0.01)
    # Temperature 2: p^(1/2), renormalised.
    hot = probs.sqrt() / probs.sqrt().sum()
    assert torch.allclose(freq(temperature=2.0), hot, atol=0.01)
    # top_p 0.7: the smallest set holding 0.7 is {0.5, 0.3}, renormalised.
    assert torch.allclose(freq(top_p=0.7), torch.tensor([0.0, 0.625, 0.0, 0.375]), atol=0.01)
    # top_p below the most likely token's mass keeps that token alone.
    assert torch.equal(freq(top_p=0.1), torch.tensor([0.0, 1.0, 0.0, 0.0]))
    assert select_tokens(logits[:2], greedy=True).tolist() == [1, 1]


# ------------------------------------------------------------------------------------------------
# Lengths, finish reasons, the sync cadence


def encode_batch(tok, prompts):
    ids = tok(prompts)["input_ids"]
    width = max(map(len, ids))
    input_ids = torch.tensor([[tok.pad_token_id] * (width - len(x)) + x for x in ids])
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
    return input_ids, mask


@pytest.mark.parametrize("max_new", [1, 2, 7])
def test_max_new_tokens_and_finish_reasons(model, tok, max_new):
    ref, loop = both(model, tok, greedy=True, max_new_tokens=max_new)
    assert loop == ref
    # ``tokens`` counts the stop token and not the pad token (which this model also writes).
    assert all(1 <= c.tokens <= max_new for c in loop if c.finish_reason == "stop")
    assert all(c.tokens <= max_new for c in loop)
    out = decode_batch(
        model,
        *encode_batch(tok, PROMPTS),
        max_new_tokens=max_new,
        stop_ids=[tok.eos_token_id],
        pad_id=tok.pad_token_id,
        greedy=True,
    )
    assert out.shape == (len(PROMPTS), max_new)
    if max_new == 7:
        assert {c.finish_reason for c in loop} == {"stop", "length"}


def decode_counted(model, *args, **kw):
    """``decode_batch``'s output and how many forward passes it made (prefill included)."""
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        return decode_batch(model, *args, **kw), len(calls)
    finally:
        handle.remove()


def first_stops(out: torch.Tensor, stop_ids: list[int]) -> list[int | None]:
    return [next((k for k, t in enumerate(row) if t in stop_ids), None) for row in out.tolist()]


@pytest.mark.parametrize("sync_every", [1, 3, 16])
def test_rows_pad_after_stop_and_the_batch_stops_within_sync_every(model, tok, sync_every):
    input_ids, mask = encode_batch(tok, PROMPTS)
    pad, eos = tok.pad_token_id, tok.eos_token_id
    kw = dict(max_new_tokens=40, pad_id=pad, greedy=True)
    # End-of-sequence alone: some rows run to the end, so every step runs.
    out, calls = decode_counted(model, input_ids, mask, stop_ids=[eos], sync_every=sync_every, **kw)
    assert None in first_stops(out, [eos])
    assert calls == 40  # prefill + 39 steps: the last token is never fed back
    # Add, per row still running, the token it writes at column 5 + 4 x row: every row stops,
    # at different columns, and the loop notices within ``sync_every`` steps of the last stop.
    stops = [eos] + [
        row[5 + 4 * r] for r, row in enumerate(out.tolist()) if eos not in row[: 6 + 4 * r]
    ]
    out, calls = decode_counted(model, input_ids, mask, stop_ids=stops, sync_every=sync_every, **kw)
    ref, _ = decode_counted(model, input_ids, mask, stop_ids=stops, sync_every=1000, **kw)
    assert torch.equal(out, ref)  # the cadence changes when the loop stops, never the tokens
    ends = first_stops(out, stops)
    assert None not in ends and len(set(ends)) >= 4
    for row, end in zip(out.tolist(), ends, strict=True):
        assert set(row[end + 1 :]) <= {pad}
    last = max(ends)  # written by decode step ``last``; checks come every ``sync_every`` steps
    assert last <= calls - 1 <= min(39, -(-last // sync_every) * sync_every)


def test_all_rows_stopped_batches_end_early(model, tok):
    """With every character a stop token, every row stops at its first token: the loop checks
    before its first step and runs none."""
    input_ids, mask = encode_batch(tok, PROMPTS)
    every = list(range(len(tok)))
    kw = dict(max_new_tokens=30, stop_ids=every, pad_id=tok.pad_token_id, greedy=True)
    out, calls = decode_counted(model, input_ids, mask, **kw)
    assert calls == 1
    assert (out[:, 1:] == tok.pad_token_id).all()


@pytest.mark.parametrize("captured", [True, False], ids=["captured", "capture-failed"])
def test_graph_bookkeeping_with_a_stand_in_graph(model, tok, monkeypatch, captured):
    """The CUDA-graph path's control flow on CPU: a stand-in capture that runs its warm-up steps
    and "replays" by calling the step. Warm-up steps count as decode steps, replays do the rest,
    a failed capture falls back to eager steps; the tokens are the eager loop's."""
    input_ids, mask = encode_batch(tok, PROMPTS)
    kw = dict(max_new_tokens=20, stop_ids=[tok.eos_token_id], pad_id=tok.pad_token_id)
    eager, _ = decode_counted(model, input_ids, mask, greedy=False, generator=seeded(), **kw)
    replays, warmups = [], []

    def stand_in(step, warmup, generator):
        for _ in range(warmup):
            warmups.append(1)
            step()
        if not captured:
            return None
        return SimpleNamespace(replay=lambda: (replays.append(1), step()))

    monkeypatch.setattr(decode, "wants_graph", lambda *_: True)
    monkeypatch.setattr(decode, "capture_step", stand_in)
    out, calls = decode_counted(model, input_ids, mask, greedy=False, generator=seeded(), **kw)
    assert torch.equal(out, eager)
    assert calls == 20 and len(warmups) == decode.GRAPH_WARMUP_STEPS
    assert len(replays) == (19 - decode.GRAPH_WARMUP_STEPS if captured else 0)
    # Too few steps to pay for a capture: none is made.
    warmups.clear()
    short = dict(kw, max_new_tokens=decode.GRAPH_WARMUP_STEPS + 2)
    decode_counted(model, input_ids, mask, greedy=True, **short)
    assert not warmups


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------
# Config


def test_decoder_config(tok):
    assert config_from_dict({}).generation.decoder == "generate"
    cfg = config_from_dict({"generation": {"decoder": "loop", "compile": True}})
    assert backend_options(cfg)["decoder"] == "loop" and backend_options(cfg)["compile"]
    assert "decoder" not in backend_options(config_from_dict({"generation": {"backend": "vllm"}}))


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"generation": {"decoder": "fast"}}, "generation.decoder: expected 'generate' | 'loop'"),
        (
            {"generation": {"decoder": "loop", "backend": "vllm"}},
            "generation.decoder: 'loop' is a decoder of the hf backend",
        ),
    ],
)
def test_bad_decoder_is_a_one_line_error(data, expected):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def test_generate_rejects_an_unknown_decoder(model, tok):
    with pytest.raises(ValueError, match="decoder"):
        hf_backend.generate(model, tok, PROMPTS, decoder="graph")


# ------------------------------------------------------------------------------------------------
# On a GPU


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_gpu_cuda_graph_replays_the_eager_step(tok):
    model = scrambled(tok).to("cuda")
    input_ids, mask = encode_batch(tok, PROMPTS * 8)
    kw = dict(max_new_tokens=24, stop_ids=[tok.eos_token_id], pad_id=tok.pad_token_id)
    args = (model, input_ids.cuda(), mask.cuda())
    graph = decode_batch(*args, greedy=True, cuda_graph=True, **kw)
    eager = decode_batch(*args, greedy=True, cuda_graph=False, **kw)
    assert torch.equal(graph, eager)

    def sample(graph: bool, seed: int):
        gen = torch.Generator(device="cuda").manual_seed(seed)
        return decode_batch(*args, generator=gen, cuda_graph=graph, **kw)

    assert torch.equal(sample(True, 0), sample(True, 0))
    assert torch.equal(sample(True, 0), sample(False, 0))  # replays advance the generator
    assert not torch.equal(sample(True, 0), sample(True, 1))
    ref = hf_backend.generate(model, tok, PROMPTS * 8, greedy=True, max_new_tokens=24)
    loop = hf_backend.generate(
        model, tok, PROMPTS * 8, greedy=True, max_new_tokens=24, decoder="loop"
    )
    assert loop == ref
