"""Hugging Face ``generate`` backend: batched, KV cache, left padding, seeded sampling.

On a GPU it can preallocate the KV cache (``cache="static"``) and compile the decoding step
(``compile=True``: ``torch.compile`` with CUDA graphs), and size its batches to free memory
(``batch_size="auto"``). ``decoder="loop"`` replaces ``model.generate`` with the decode loop of
:mod:`selfplay.generation.decode` (static cache, no host sync per token, a CUDA graph per batch).
"""

from __future__ import annotations

import math

import torch

from selfplay.bars import bar as progress_bar
from selfplay.engine.models import encode_prompts, stop_token_ids, uses_chat_template
from selfplay.generation import Completion, to_completion
from selfplay.generation.decode import SYNC_EVERY, decode_batch, decode_refill
from selfplay.generation.grouped import decode_grouped

CPU_BATCH_SIZE = 256
"""``batch_size="auto"`` on CPU: larger batches stop paying there."""

DECODERS = ("generate", "loop", "grouped")

STATIC_PAD_MULTIPLE = 16
"""With a static cache, prompts are left-padded to a multiple of this many tokens, so the compiled
decoding step sees a few cache shapes rather than one per prompt length."""


def auto_batch_size(
    model, prompt_tokens: int, max_new_tokens: int, n: int, free_bytes: int | None = None
) -> int:
    """Sequences per batch that fit in ``free_bytes`` (default: free memory of the model's GPU;
    on CPU :data:`CPU_BATCH_SIZE`), a multiple of ``n``.

    Per sequence: the KV cache of ``prompt_tokens + max_new_tokens`` positions, the prefill's
    activations (hidden states and the MLP's intermediate, a few copies each) and the last
    position's logits in float32; 70% of the free memory is spent, the rest is headroom for the
    allocator and kernels' workspaces.
    """
    device = next(model.parameters()).device
    if free_bytes is None:
        if device.type != "cuda":
            return max(n, CPU_BATCH_SIZE // n * n)
        # Free on the device plus what this process's allocator holds but does not use.
        free_bytes = (
            torch.cuda.mem_get_info(device)[0]
            + torch.cuda.memory_reserved(device)
            - torch.cuda.memory_allocated(device)
        )
    c = model.config.get_text_config()
    width = next(model.parameters()).element_size()
    heads = c.num_attention_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // heads
    kv_heads = getattr(c, "num_key_value_heads", None) or heads
    layers = c.num_hidden_layers
    inter = getattr(c, "intermediate_size", 4 * c.hidden_size)
    kv = 2 * layers * kv_heads * head_dim * width * (prompt_tokens + max_new_tokens)
    prefill = prompt_tokens * (4 * c.hidden_size + 3 * inter) * width
    logits = 3 * c.vocab_size * 4
    per_seq = kv + prefill + logits
    fit = int(0.7 * free_bytes // per_seq)
    return max(n, min(fit, 16_384) // n * n)


@torch.inference_mode()
def generate(
    model,
    tokenizer,
    prompts: list[str],
    *,
    n: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    greedy: bool = False,
    max_new_tokens: int = 64,
    batch_size: int | str = 256,
    seed: int = 0,
    progress: str | None = None,
    chat_template: str = "auto",
    cache: str = "dynamic",
    compile: bool = False,
    decoder: str = "generate",
    sync_every: int = SYNC_EVERY,
    cuda_graph: bool = True,
    refill: bool = False,
) -> list[Completion]:
    """``n`` completions per prompt. Batches hold ``batch_size`` sequences (prompts x n).

    Prompts are sorted by token length so a batch pads little; each batch reseeds from
    ``(seed, batch)``, so results do not depend on what ran before. Output is in (prompt, sample)
    order. ``chat_template`` (``auto`` | ``none``) renders each prompt as a chat user turn when the
    tokenizer has a template; ``cache`` (``dynamic`` | ``static``) and ``compile`` choose the
    decoding path (compilation needs a static cache and a GPU). ``decoder="loop"`` decodes with
    :func:`selfplay.generation.decode.decode_batch` instead of ``model.generate`` (always a static
    cache; ``cache`` is then ignored; ``sync_every``: steps between "all finished?" checks;
    ``cuda_graph``: replay its step as a CUDA graph on a GPU). With ``refill`` the loop keeps
    ``batch_size`` rows busy over all the prompts, refilling finished rows
    (:func:`selfplay.generation.decode.decode_refill`; one seeded stream instead of one per batch).
    ``decoder="grouped"`` decodes prompts of one token length together, unpadded
    (:mod:`selfplay.generation.grouped`: the fastest path for a small model on a CPU).
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder: one of {', '.join(DECODERS)}, not {decoder!r}")
    if refill and decoder != "loop":
        raise ValueError("refill needs decoder='loop'")
    if greedy:
        n = 1
    if not prompts:
        return []
    device = next(model.parameters()).device
    model.eval()
    chat = uses_chat_template(tokenizer, chat_template)
    ids = encode_prompts(tokenizer, prompts, chat)
    stops = stop_token_ids(tokenizer, chat)
    for t in _as_list(model.generation_config.eos_token_id):
        if t not in stops:
            stops.append(t)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    stop_set = set(stops)
    if decoder == "grouped":
        return _generate_grouped(
            model, tokenizer, ids, stops, pad_id, n=n, greedy=greedy, temperature=temperature,
            top_p=top_p, max_new_tokens=max_new_tokens,
            batch_size=CPU_BATCH_SIZE if batch_size == "auto" else batch_size, seed=seed,
            progress=progress,
        )  # fmt: skip
    order = sorted(range(len(prompts)), key=lambda i: (len(ids[i]), i))
    if batch_size == "auto":
        longest = max(len(x) for x in ids)
        batch_size = auto_batch_size(model, longest, max_new_tokens, n)
    per_batch = max(1, batch_size // n)
    bar = progress_bar(len(prompts) * n, progress, "seq")
    # The decode loop's options, the same with and without refilled rows.
    loop = dict(
        max_new_tokens=max_new_tokens, stop_ids=stops, pad_id=pad_id, greedy=greedy,
        temperature=temperature, top_p=top_p, sync_every=sync_every, cuda_graph=cuda_graph,
        compile=compile,
    )  # fmt: skip
    if refill:
        # Sequences in (prompt, sample) order within the length-sorted prompt order.
        seqs = [(i, j) for i in order for j in range(n)]
        new = decode_refill(
            model,
            [ids[i] for i, _ in seqs],
            rows=max(1, batch_size),
            generator=torch.Generator(device=device).manual_seed(seed * 1_000_003),
            on_finish=bar.update,
            **loop,
        )
        out = [
            to_completion(tokenizer, row_ids, stop_set, pad_id, i, j)
            for (i, j), row_ids in zip(seqs, new, strict=True)
        ]
    else:
        out = []
        for b, start in enumerate(range(0, len(order), per_batch)):
            idx = order[start : start + per_batch]
            new = _generate_batch(
                model, [ids[i] for i in idx], n, seed * 1_000_003 + b, loop, decoder=decoder,
                cache=cache,
            )  # fmt: skip
            for row, row_ids in enumerate(new):
                out.append(
                    to_completion(tokenizer, row_ids, stop_set, pad_id, idx[row // n], row % n)
                )
            bar.update(len(new))
    bar.close()
    out.sort(key=lambda c: (c.prompt_idx, c.sample_idx))
    return out


def _generate_batch(
    model, ids: list[list[int]], n: int, batch_seed: int, loop: dict, *, decoder: str, cache: str
) -> list[list[int]]:
    """One batch padded on the left to its longest prompt: ``n`` rows of new token ids per
    prompt, in (prompt, sample) order, by ``model.generate`` or the decode loop."""
    device = next(model.parameters()).device
    compile_ = loop["compile"] and device.type == "cuda"
    width = max(map(len, ids))
    # Few cache shapes for compiled decoding steps (the loop compiles on CUDA only).
    if (cache == "static" and decoder == "generate") or (decoder == "loop" and compile_):
        width = math.ceil(width / STATIC_PAD_MULTIPLE) * STATIC_PAD_MULTIPLE
    pad_id = loop["pad_id"]
    input_ids = torch.tensor([[pad_id] * (width - len(x)) + x for x in ids])
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
    if decoder == "loop":
        # Rows in (prompt, sample) order, as ``num_return_sequences`` expands them.
        return decode_batch(
            model,
            input_ids.repeat_interleave(n, 0).to(device),
            mask.repeat_interleave(n, 0).to(device),
            generator=torch.Generator(device=device).manual_seed(batch_seed),
            **loop,
        ).tolist()
    if loop["greedy"]:
        sampling = dict(do_sample=False)
    else:
        sampling = dict(
            do_sample=True, temperature=loop["temperature"], top_p=loop["top_p"], top_k=0
        )
    if cache == "static":
        sampling["cache_implementation"] = "static"
        if compile_:
            from transformers import CompileConfig

            sampling["compile_config"] = CompileConfig(fullgraph=False, mode="reduce-overhead")
        else:
            sampling["disable_compile"] = True
    stops = loop["stop_ids"]
    torch.manual_seed(batch_seed)
    seqs = model.generate(
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device),
        max_new_tokens=loop["max_new_tokens"],
        num_return_sequences=n,
        eos_token_id=stops[0] if len(stops) == 1 else stops,
        pad_token_id=pad_id,
        use_cache=True,
        **sampling,
    )
    return seqs[:, width:].cpu().tolist()


def _generate_grouped(
    model, tokenizer, ids: list[list[int]], stops: list[int], pad_id: int, *, n: int,
    greedy: bool, temperature: float, top_p: float, max_new_tokens: int, batch_size: int,
    seed: int, progress: str | None,
) -> list[Completion]:  # fmt: skip
    bar = progress_bar(len(ids) * n, progress, "seq")
    rows = decode_grouped(
        model, ids, n=n, greedy=greedy, temperature=temperature, top_p=top_p,
        max_new_tokens=max_new_tokens, stop_ids=stops, seed=seed, batch_size=batch_size,
        on_batch=bar.update,
    )  # fmt: skip
    bar.close()
    stop_set = set(stops)
    return [
        to_completion(tokenizer, row, stop_set, pad_id, i, j)
        for i, samples in enumerate(rows)
        for j, row in enumerate(samples)
    ]


def _as_list(x) -> list[int]:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [int(x)]
