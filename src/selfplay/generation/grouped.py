"""The ``hf`` backend's decoder for small models on a CPU (``generation.decoder: grouped``).

Prompts of one token length are decoded together, so a batch needs no padding, no attention
mask and no position ids: each step feeds the last token against the model's own KV cache. At
~1M parameters this is several times faster than ``model.generate`` (whose per-token machinery
then dominates), and it is exact for any position scheme (RoPE, NoPE) because no row is ever
shifted by padding. Sampling draws from ``softmax(logits / temperature)`` (after top-p, when
asked) with one seeded CPU generator per call, in length-group order, so a call's draws do not
depend on what ran before it.
"""

from __future__ import annotations

import torch


@torch.inference_mode()
def decode_grouped(
    model,
    prompt_ids: list[list[int]],
    *,
    n: int,
    greedy: bool,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    stop_ids: list[int],
    seed: int,
    batch_size: int,
    on_batch=None,
) -> list[list[list[int]]]:
    """``n`` rows of generated token ids per prompt (``out[prompt][sample]``), each up to
    ``max_new_tokens`` long; a row that stopped holds its stop token and whatever the batch
    decoded after it (:func:`selfplay.generation.to_completion` cuts it there).

    ``batch_size`` counts rows (prompts x n); ``on_batch(rows)`` is called after each batch."""
    from selfplay.generation.decode import select_tokens

    out: list[list[list[int]]] = [[] for _ in prompt_ids]
    groups: dict[int, list[int]] = {}
    for i, x in enumerate(prompt_ids):
        groups.setdefault(len(x), []).append(i)
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    stops = torch.tensor(stop_ids, device=device)
    was_training = model.training
    model.eval()
    for _, members in sorted(groups.items()):
        rows = [i for i in members for _ in range(n)]  # (prompt, sample) order
        for s in range(0, len(rows), max(1, batch_size)):
            chunk = rows[s : s + batch_size]
            x = torch.tensor([prompt_ids[i] for i in chunk], device=device)  # (B, T)
            res = model(input_ids=x, use_cache=True)
            past, logits = res.past_key_values, res.logits[:, -1]  # (B, V)
            tokens, done = [], torch.zeros(len(chunk), dtype=torch.bool, device=device)
            for t in range(max_new_tokens):
                if greedy:
                    nxt = logits.argmax(-1)
                elif top_p < 1.0:
                    nxt = select_tokens(
                        logits.cpu(), greedy=False, temperature=temperature, top_p=top_p,
                        generator=generator,
                    ).to(device)  # fmt: skip
                else:
                    probs = torch.softmax(logits.float() / temperature, -1).cpu()
                    nxt = torch.multinomial(probs, 1, generator=generator)[:, 0].to(device)
                tokens.append(nxt)
                done |= torch.isin(nxt, stops)
                # One host sync a step: at this size a step costs less than the padding it saves.
                if bool(done.all()) or t == max_new_tokens - 1:
                    break
                res = model(input_ids=nxt[:, None], past_key_values=past, use_cache=True)
                past, logits = res.past_key_values, res.logits[:, -1]
            for i, seq in zip(chunk, torch.stack(tokens, 1).tolist(), strict=True):
                out[i].append(seq)
            if on_batch is not None:
                on_batch(len(chunk))
    model.train(was_training)
    return out
