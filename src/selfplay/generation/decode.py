"""A decode loop of our own for the ``hf`` backend (``generation.decoder: loop``).

``model.generate`` pays per token for its Python machinery and for a host synchronisation (the
"all sequences finished?" check); on a GPU that, not the card, bounds small models. This loop
keeps everything on the device between checks:

- one prefill of the left-padded batch into a preallocated ``transformers.StaticCache``, with
  position ids from the attention mask (``cumsum - 1``, 0 on padding) as ``generate`` computes them;
- then one step per token: the last token at its position (one past the previous one), the
  padding mask over the whole cache (causality hides the slots not yet written), sampling on the
  device (argmax, or temperature + top-p with a seeded ``torch.Generator``), finished rows fed
  and given the pad token after their stop token;
- "every row finished?" is read on the host only every ``sync_every`` steps, so a batch may run
  up to ``sync_every - 1`` steps of padding past its last stop token.

On CUDA the step is captured once per batch as a CUDA graph (after a few eager warm-up steps on
a side stream) and replayed per token; elsewhere, or if capture fails, the same step function runs
eagerly, so CPU tests cover the logic the graph replays. Finished rows are not refilled with new
prompts (no continuous batching): a batch runs until its longest row stops.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from functools import partial

import torch

GRAPH_WARMUP_STEPS = 3
"""Eager decode steps on a side stream before capture (lazy kernel and workspace initialisation
must not happen inside the capture)."""

SYNC_EVERY = 16


def select_tokens(
    logits: torch.Tensor,
    *,
    greedy: bool,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next token per row of ``logits`` (rows x vocab), on the logits' device with no host sync.

    Greedy is the argmax (first index on ties, as ``generate``). Sampling divides by
    ``temperature``, keeps the smallest set of tokens holding ``top_p`` of the probability (the
    rule of transformers' ``TopPLogitsWarper``), then draws with the exponential-race trick
    (argmax of p / E, E ~ Exp(1)): a draw from p, made of fixed-shape kernels a CUDA graph can hold.
    """
    logits = logits.float()
    if greedy:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum <= 1.0 - top_p
        drop[..., -1] = False  # the most likely token always stays
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    probs = logits.softmax(-1)
    race = torch.empty_like(probs).exponential_(1.0, generator=generator)
    # A draw of exactly 0 would make 0 / 0 = NaN for a filtered token, and argmax picks NaN.
    return (probs / race.clamp_min_(torch.finfo(race.dtype).tiny)).argmax(-1)


def left_padded_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch as ``generate`` computes them: count of real tokens
    so far minus one, 0 on padding."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill(attention_mask == 0, 0)


@torch.inference_mode()
def decode_batch(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    stop_ids: list[int],
    pad_id: int,
    greedy: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    sync_every: int = SYNC_EVERY,
    cuda_graph: bool = True,
    compile: bool = False,
) -> torch.Tensor:
    """New tokens (rows x ``max_new_tokens``, on the model's device) for a left-padded batch:
    the pad token after a row's stop token and after the batch finished early.

    ``cuda_graph`` and ``compile`` (``torch.compile`` of the decode step's forward) apply on
    CUDA only; elsewhere the step runs eagerly.
    """
    from transformers import StaticCache

    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, not {max_new_tokens}")
    if sync_every < 1:
        raise ValueError(f"sync_every must be >= 1, not {sync_every}")
    if getattr(model.config, "is_encoder_decoder", False):
        raise ValueError("the decode loop is for decoder-only (causal) language models")
    device = input_ids.device
    rows, width = input_ids.shape
    cache = StaticCache(
        config=model.config.get_text_config(decoder=True), max_cache_len=width + max_new_tokens
    )

    def select(logits: torch.Tensor) -> torch.Tensor:
        return select_tokens(
            logits, greedy=greedy, temperature=temperature, top_p=top_p, generator=generator
        )

    # Prefill, with the prompt-length mask ``generate`` passes (its mask fast paths apply).
    positions = left_padded_positions(attention_mask)
    last_only = {"logits_to_keep": 1} if accepts(model, "logits_to_keep") else {}
    prefill = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
        **last_only,
    )
    stops = torch.tensor(stop_ids, dtype=torch.long, device=device)
    out = torch.full((rows, max_new_tokens), pad_id, dtype=torch.long, device=device)
    first = select(prefill.logits[:, -1])
    out[:, 0] = first
    del prefill

    # Static buffers: the step reads and updates them in place, so a CUDA graph can replay it.
    done = (first[:, None] == stops).any(-1)
    token = first[:, None].clone()
    position = positions[:, -1:] + 1
    column = torch.ones(1, dtype=torch.long, device=device)
    mask = torch.cat(
        [attention_mask.bool(), attention_mask.new_ones(rows, max_new_tokens, dtype=torch.bool)], 1
    )
    forward = model
    if compile and device.type == "cuda":
        forward = torch.compile(model, dynamic=False, fullgraph=False)

    def step() -> None:
        logits = forward(
            input_ids=token,
            attention_mask=mask,
            position_ids=position,
            past_key_values=cache,
            use_cache=True,
        ).logits[:, -1]
        nxt = select(logits).masked_fill(done, pad_id)
        out.index_copy_(1, column, nxt[:, None])
        done.logical_or_(nxt[:, None].eq(stops).any(-1))
        token.copy_(nxt[:, None])
        position.add_(1)
        column.add_(1)

    steps = max_new_tokens - 1  # the last token is never fed back
    capture = None
    if cuda_graph and wants_graph(device, model, cache) and steps > GRAPH_WARMUP_STEPS + 1:
        capture = partial(capture_step, step, GRAPH_WARMUP_STEPS, generator)
    run_steps(step, steps, done, sync_every, capture)
    return out


def run_steps(
    step: Callable[[], None],
    steps: int,
    done: torch.Tensor,
    sync_every: int,
    capture: Callable[[], torch.cuda.CUDAGraph | None] | None = None,
) -> int:
    """Run up to ``steps`` decode steps, stopping at the first check (every ``sync_every`` steps,
    the only host syncs) that finds every row ``done``. With ``capture``, the first steps are its
    :data:`GRAPH_WARMUP_STEPS` warm-up steps and the rest replay the graph it returns (eager steps
    if it returns ``None``). Returns the steps run."""
    run = step
    i, next_check = 0, 0
    while i < steps:
        if i >= next_check:
            next_check = i + sync_every
            if bool(done.all()):
                break
        if capture is not None:
            graph = capture()
            capture = None
            i += GRAPH_WARMUP_STEPS  # the warm-up steps were real decode steps
            if graph is not None:
                run = graph.replay
            continue
        run()
        i += 1
    return i


def wants_graph(device: torch.device, model, cache) -> bool:
    """Whether to replay the decode step as a CUDA graph: on CUDA, with all the step's state in
    tensors (every cache layer a plain ``StaticLayer``: sliding-window layers count in Python)
    and the model on one device."""
    from transformers.cache_utils import StaticLayer

    if device.type != "cuda":
        return False
    devices = set(getattr(model, "hf_device_map", {}).values())
    return len(devices) <= 1 and all(type(layer) is StaticLayer for layer in cache.layers)


def accepts(model, argument: str) -> bool:
    return argument in inspect.signature(model.forward).parameters


def capture_step(
    step: Callable[[], None], warmup: int, generator: torch.Generator | None
) -> torch.cuda.CUDAGraph | None:
    """Run ``warmup`` real steps on a side stream, then capture one step as a CUDA graph (not
    executed: capture only records). ``None`` if capture fails; the caller then runs eagerly."""
    current = torch.cuda.current_stream()
    side = torch.cuda.Stream()
    side.wait_stream(current)
    with torch.cuda.stream(side):
        for _ in range(warmup):
            step()
    current.wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    if generator is not None:
        # Replays then advance this generator's Philox offset instead of reusing one draw.
        graph.register_generator_state(generator)
    try:
        with torch.cuda.graph(graph):
            step()
    except Exception as exc:  # e.g. an op that syncs with the host: fall back to eager steps
        from selfplay.generation import one_line

        warnings.warn(
            f"decode loop: CUDA graph capture failed, decoding eagerly ({one_line(exc)})",
            stacklevel=2,
        )
        return None
    return graph
