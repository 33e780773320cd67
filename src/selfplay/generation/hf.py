"""Hugging Face ``generate`` backend: batched, KV cache, left padding, seeded sampling."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from selfplay.generation import Completion


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
    batch_size: int = 256,
    seed: int = 0,
    progress: str | None = None,
) -> list[Completion]:
    """``n`` completions per prompt. Batches hold ``batch_size`` sequences (prompts x n).

    Prompts are sorted by length so a batch pads little; each batch reseeds from ``(seed, batch)``,
    so results do not depend on what ran before. Output is in (prompt, sample) order.
    """
    if greedy:
        n = 1
    device = next(model.parameters()).device
    model.eval()
    eos_id = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    per_batch = max(1, batch_size // n)
    out: list[Completion] = []
    bar = tqdm(
        total=len(prompts) * n, desc=progress, unit="seq", disable=progress is None, leave=False
    )
    for b, start in enumerate(range(0, len(order), per_batch)):
        idx = order[start : start + per_batch]
        enc = tokenizer(
            [prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False
        )
        enc = {k: v.to(device) for k, v in enc.items()}
        torch.manual_seed(seed * 1_000_003 + b)
        kwargs = (
            dict(do_sample=False)
            if greedy
            else dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        )
        seqs = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            num_return_sequences=n,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
            use_cache=True,
            **kwargs,
        )
        new = seqs[:, enc["input_ids"].shape[1] :].cpu()
        for row in range(new.shape[0]):
            ids = new[row].tolist()
            stop = ids.index(eos_id) if eos_id in ids else None
            body = ids[:stop] if stop is not None else ids
            body = [t for t in body if t != pad_id]
            out.append(
                Completion(
                    prompt_idx=idx[row // n],
                    sample_idx=row % n,
                    text=tokenizer.decode(body, skip_special_tokens=True),
                    tokens=len(body) + (1 if stop is not None else 0),
                    finish_reason="stop" if stop is not None else "length",
                )
            )
        bar.update(new.shape[0])
    bar.close()
    out.sort(key=lambda c: (c.prompt_idx, c.sample_idx))
    return out
