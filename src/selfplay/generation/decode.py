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
eagerly, so CPU tests cover the logic the graph replays.

:func:`decode_batch` runs a batch until its longest row stops. :func:`decode_refill` (continuous
batching, ``generation.refill``) keeps ``rows`` rows busy over a whole list of prompts: at every
check, rows that finished hand in their tokens and take the next prompts. The cache is then a ring
of ``longest prompt + max_new_tokens`` slots that every row writes at the same slot each step; a
refilled row's prompt is prefilled on its own and its keys and values copied into the slots just
behind the write slot, and each row sees only its own slots through a per-row additive mask
(attention does not care where a key sits, only which keys a row may see and, by RoPE, at which
position each was written). A row's window (prompt + new tokens) never exceeds the ring, so a row
never overwrites a slot it still reads.
"""

from __future__ import annotations

import inspect
import warnings
from collections import deque
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


def check_loop(model, max_new_tokens: int, sync_every: int) -> None:
    """Raise ``ValueError`` (one line) for arguments or a model neither decoder can take."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, not {max_new_tokens}")
    if sync_every < 1:
        raise ValueError(f"sync_every must be >= 1, not {sync_every}")
    if getattr(model.config, "is_encoder_decoder", False):
        raise ValueError("the decode loop is for decoder-only (causal) language models")


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

    check_loop(model, max_new_tokens, sync_every)
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
    check: Callable[[], bool] | None = None,
) -> int:
    """Run up to ``steps`` decode steps, stopping at the first check (every ``sync_every`` steps,
    the only host syncs) that finds every row ``done`` (or, given ``check``, that ``check()``
    returns true: it may also change the step's buffers in place). With ``capture``, the first
    steps are its :data:`GRAPH_WARMUP_STEPS` warm-up steps and the rest replay the graph it
    returns (eager steps if it returns ``None``). Returns the steps run."""
    run = step
    i, next_check = 0, 0
    while i < steps:
        if i >= next_check:
            next_check = i + sync_every
            if check() if check is not None else bool(done.all()):
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


REFILL_ATTENTION = ("sdpa", "eager")
"""Attention kernels that take the per-row 4D mask :func:`decode_refill` needs."""


def check_refill(model) -> None:
    """Raise ``ValueError`` (one line) when ``model`` cannot decode with refilled rows (beyond
    :func:`check_loop`)."""
    attn = str(getattr(model.config, "_attn_implementation", "") or "sdpa")
    if attn not in REFILL_ATTENTION:
        raise ValueError(
            f"generation.refill needs sdpa or eager attention (a per-row 4D mask), not {attn!r}"
        )
    text = model.config.get_text_config(decoder=True)
    types = getattr(text, "layer_types", None)
    # layer_types says which layers slide where a config has it (Qwen2 keeps a sliding_window
    # value with use_sliding_window off); older configs only have sliding_window.
    sliding = (
        any(t != "full_attention" for t in types)
        if types
        else bool(getattr(text, "sliding_window", None))
    )
    if sliding:
        raise ValueError("generation.refill does not support sliding-window attention layers")


@torch.inference_mode()
def decode_refill(
    model,
    prompts: list[list[int]],
    *,
    rows: int,
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
    on_finish: Callable[[int], None] | None = None,
) -> list[list[int]]:
    """New tokens (``max_new_tokens`` each, the pad token after a stop token) for every prompt
    (token ids, no padding), in the prompts' order, decoded ``rows`` sequences at a time with
    finished rows refilled by the next prompts at every check (continuous batching).

    Prompts are admitted in order, as many at a time as rows are free, each group prefilled on
    its own (left-padded to the group's longest). ``on_finish(k)`` is called as ``k`` sequences
    finish. Greedy output is the same as :func:`decode_batch`'s (a row's result depends only on
    its own prompt); sampling is reproducible for a given ``generator`` seed, ``rows`` and
    ``sync_every``.
    """
    check_loop(model, max_new_tokens, sync_every)
    if rows < 1:
        raise ValueError(f"rows must be >= 1, not {rows}")
    check_refill(model)
    if not prompts:
        return []
    if any(not p for p in prompts):
        raise ValueError("every prompt needs at least one token")
    rows = min(rows, len(prompts))
    select = partial(
        select_tokens, greedy=greedy, temperature=temperature, top_p=top_p, generator=generator
    )
    ring = _Ring(model, prompts, rows, max_new_tokens, stop_ids, pad_id, select, compile)
    # An upper bound: every prompt's full length, the rows decoding one after another.
    bound = (len(prompts) // rows + 2) * (max_new_tokens + sync_every)
    capture = None
    if (
        cuda_graph
        and wants_graph(ring.device, model, ring.cache)
        and bound > GRAPH_WARMUP_STEPS + 1
    ):
        capture = partial(capture_step, ring.step, GRAPH_WARMUP_STEPS, generator)
    check = partial(ring.check, on_finish)
    run_steps(ring.step, bound, ring.done, sync_every, capture, check=check)
    if any(r is None for r in ring.results):  # the bound is never reached: a safeguard
        check()
        missing = sum(r is None for r in ring.results)
        if missing:
            raise RuntimeError(f"decode_refill: {missing} prompts left undecoded")
    return ring.results


class _Ring:
    """:func:`decode_refill`'s state: a ring of ``longest prompt + max_new_tokens`` cache slots
    that every row writes at the same slot each step, the step's buffers (updated in place, so a
    CUDA graph can replay :meth:`step`), and which prompt each row decodes."""

    def __init__(self, model, prompts, rows, max_new_tokens, stop_ids, pad_id, select, compile_):
        from transformers import StaticCache
        from transformers.cache_utils import StaticLayer

        self.model, self.prompts, self.select = model, prompts, select
        self.max_new, self.pad_id = max_new_tokens, pad_id
        self.device = device = next(model.parameters()).device
        self.dtype = dtype = next(model.parameters()).dtype
        self.ring = ring = max(map(len, prompts)) + max_new_tokens
        text_config = model.config.get_text_config(decoder=True)
        self.cache = StaticCache(config=text_config, max_cache_len=ring)
        self.stops = torch.tensor(stop_ids, dtype=torch.long, device=device)
        self.blocked = torch.finfo(dtype).min
        self.last_only = {"logits_to_keep": 1} if accepts(model, "logits_to_keep") else {}
        # The first rows: one prefill into the ring's first slots, as decode_batch does.
        ids, mask = self.left_pad(prompts[:rows])
        positions = left_padded_positions(mask)
        prefill = model(
            input_ids=ids, attention_mask=mask, position_ids=positions,
            past_key_values=self.cache, use_cache=True, **self.last_only,
        )  # fmt: skip
        self.layers = self.cache.layers
        if not all(type(layer) is StaticLayer for layer in self.layers):
            raise ValueError("generation.refill needs a plain static cache (no sliding window)")
        first = select(prefill.logits[:, -1])
        del prefill
        width = ids.shape[1]
        # Step buffers, read and updated in place (a CUDA graph replays them).
        self.token = first[:, None].clone()
        self.position = positions[:, -1:] + 1
        self.slot = torch.full((1,), width % ring, dtype=torch.long, device=device)
        self.bias = torch.full((rows, 1, 1, ring), self.blocked, dtype=dtype, device=device)
        self.bias[:, 0, 0, :width].masked_fill_(mask.bool(), 0.0)
        self.out = torch.full((rows, max_new_tokens + 1), pad_id, dtype=torch.long, device=device)
        self.out[:, 0] = first
        self.col = torch.ones((rows, 1), dtype=torch.long, device=device)
        self.done = (first[:, None] == self.stops).any(-1) | (self.col[:, 0] >= max_new_tokens)
        for layer in self.layers:
            layer.cumulative_length.remainder_(ring)
        self.forward = model
        if compile_ and device.type == "cuda":
            self.forward = torch.compile(model, dynamic=False, fullgraph=False)
        self.results: list[list[int] | None] = [None] * len(prompts)
        self.owner: list[int | None] = list(range(rows))  # the prompt each row decodes
        self.pending = deque(range(rows, len(prompts)))

    def left_pad(self, group: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width, pad, device = max(map(len, group)), self.pad_id, self.device
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in group], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in group], device=device)
        return ids, mask

    def step(self) -> None:
        self.bias.index_fill_(3, self.slot, 0.0)  # every row sees the slot it writes now
        logits = self.forward(
            input_ids=self.token, attention_mask=self.bias, position_ids=self.position,
            past_key_values=self.cache, use_cache=True,
        ).logits[:, -1]  # fmt: skip
        was_done = self.done.clone()
        nxt = self.select(logits).masked_fill(was_done, self.pad_id)
        self.out.scatter_(1, self.col, nxt[:, None])  # a finished row writes pad past its tokens
        self.col.add_((~was_done).long()[:, None])
        self.done.logical_or_(nxt[:, None].eq(self.stops).any(-1)).logical_or_(
            self.col[:, 0] >= self.max_new
        )
        self.token.copy_(nxt[:, None])
        self.position.add_(1)
        self.slot.add_(1).remainder_(self.ring)
        for layer in self.layers:
            layer.cumulative_length.remainder_(self.ring)

    def admit(self, free: list[int]) -> None:
        """Prefill the next prompts on their own and place them in the free rows, in the slots
        just behind the write slot."""
        from transformers import DynamicCache

        take = [self.pending.popleft() for _ in free[: len(self.pending)]]
        free = free[: len(take)]
        ids, mask = self.left_pad([self.prompts[k] for k in take])
        pos = left_padded_positions(mask)
        tmp = DynamicCache(config=self.model.config.get_text_config(decoder=True))
        pre = self.model(
            input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=tmp,
            use_cache=True, **self.last_only,
        )  # fmt: skip
        first = self.select(pre.logits[:, -1])
        here = torch.tensor(free, dtype=torch.long, device=self.device)
        width = ids.shape[1]
        at = (self.slot - width + torch.arange(width, device=self.device)).remainder(self.ring)
        for layer, new in zip(self.layers, tmp.layers, strict=True):
            for mine, theirs in ((layer.keys, new.keys), (layer.values, new.values)):
                block = mine.index_select(0, here)
                block.index_copy_(2, at, theirs.to(mine.dtype))
                mine.index_copy_(0, here, block)
        row_bias = torch.full(
            (len(free), self.ring), self.blocked, dtype=self.dtype, device=self.device
        )
        row_bias.index_copy_(
            1, at, torch.zeros_like(mask, dtype=self.dtype).masked_fill_(mask == 0, self.blocked)
        )
        self.bias.index_copy_(0, here, row_bias[:, None, None, :])
        self.token.index_copy_(0, here, first[:, None])
        self.position.index_copy_(0, here, pos[:, -1:] + 1)
        fresh = torch.full(
            (len(free), self.max_new + 1), self.pad_id, dtype=torch.long, device=self.device
        )
        fresh[:, 0] = first
        self.out.index_copy_(0, here, fresh)
        self.col.index_fill_(0, here, 1)
        stopped = (first[:, None] == self.stops).any(-1) | (self.max_new <= 1)
        self.done.index_copy_(0, here, stopped)
        for r, k in zip(free, take, strict=True):
            self.owner[r] = k

    def check(self, on_finish: Callable[[int], None] | None = None) -> bool:
        """Hand in finished rows, refill them; true once every prompt is done."""
        finished = [r for r, d in enumerate(self.done.tolist()) if d and self.owner[r] is not None]
        if finished:
            got = self.out[finished, : self.max_new].tolist()
            for r, tokens in zip(finished, got, strict=True):
                self.results[self.owner[r]] = tokens
                self.owner[r] = None
            if on_finish:
                on_finish(len(finished))
        free = [r for r, k in enumerate(self.owner) if k is None]
        if self.pending and free:
            self.admit(free)
        return all(k is None for k in self.owner)


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
