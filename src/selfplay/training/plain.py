"""The plain trainer (``train.trainer: plain``): a minimal PyTorch loop, AdamW under a
warmup-stable-decay learning rate, for small models on a CPU.

At ~1M parameters TRL's per-step machinery costs more than the step itself; this loop trains the
same model several times faster. Its batches come either from a list of examples in the order a
:class:`~selfplay.training.plan.StepPlan` fixes (the rounds: the same steps and supervised tokens
as the TRL trainer), or from a *mixture* of named sources, each batch drawing from each source by
its share with replacement (the climb: half newest round, a quarter older rounds, a quarter U).
The loss covers the completion (``train.loss: answer``) or the whole sequence (``sequence``).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator

from selfplay.bars import bar as progress_bar
from selfplay.tasks import Example
from selfplay.training.plan import StepPlan, plan_order

Tokenized = tuple[list[int], int]
"""An example as the loop trains it: ``(prompt + completion + end-of-sequence ids, prompt length)``."""


def mix_counts(sizes: dict[str, int], shares: dict[str, float], total: int) -> dict[str, int]:
    """Examples per source in a batch of ``total``: shares renormalised over non-empty sources.

    >>> mix_counts({"new": 10, "old": 0, "raw": 10}, {"new": 0.5, "old": 0.25, "raw": 0.25}, 8)
    {'new': 5, 'old': 0, 'raw': 3}
    """
    live = {k: shares[k] for k, n in sizes.items() if n > 0 and shares.get(k, 0) > 0}
    if not live:
        return {k: 0 for k in sizes}
    z = sum(live.values())
    counts = {k: int(total * live.get(k, 0) / z) for k in sizes}
    # Hand the rounding remainder to the largest shares first.
    for k in sorted(live, key=lambda k: -live[k])[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def wsd_lr(step: int, steps: int, lr: float, warmup: float, decay: float) -> float:
    """Warmup-stable-decay: linear warmup, constant, linear decay to 0 over the last ``decay``.

    >>> [round(wsd_lr(s, 10, 1.0, 0.2, 0.5), 2) for s in (0, 1, 5, 9)]
    [0.5, 1.0, 1.0, 0.2]
    """
    w, d = max(1, round(warmup * steps)), round(decay * steps)
    if step < w:
        return lr * (step + 1) / w
    if d and step >= steps - d:
        return lr * (steps - step) / d
    return lr


def tokenize_examples(tok, examples: list[Example]) -> list[Tokenized]:
    """Each example as the loop trains it: prompt, completion and end-of-sequence."""
    enc = lambda texts: tok(texts, add_special_tokens=False)["input_ids"]  # noqa: E731
    p_ids, c_ids = enc([e.prompt for e in examples]), enc([e.completion for e in examples])
    return [
        (list(p) + list(c) + [tok.eos_token_id], len(p)) for p, c in zip(p_ids, c_ids, strict=True)
    ]


def mixture_steps(data: dict[str, list[Tokenized]], counts: dict[str, int], tokens: int) -> int:
    """Steps that spend about ``tokens`` (all tokens, prompt included) on batches of ``counts``."""
    batch = sum(counts.values())
    mean_len = (
        sum(counts[k] * sum(len(x) for x, _ in data[k]) / len(data[k]) for k in data if counts[k])
        / batch
    )
    return max(1, math.ceil(tokens / (batch * mean_len)))


def mixture_batches(
    data: dict[str, list[Tokenized]], counts: dict[str, float], seed: int
) -> Iterator[list[Tokenized]]:
    """Endless batches drawing ``counts[k]`` examples from source ``k`` (with replacement).
    Whole counts give every batch exactly that many; fractional ones (a capped source, see
    :func:`cap_counts`) pick each of the batch's slots' source at random in those proportions."""
    rng = random.Random(seed)
    if all(float(c).is_integer() for c in counts.values()):
        while True:
            yield [
                data[k][rng.randrange(len(data[k]))] for k in data for _ in range(int(counts[k]))
            ]
    names = [k for k in data if counts[k] > 0]
    weights = [counts[k] for k in names]
    size = round(sum(weights))
    while True:
        picks = rng.choices(names, weights, k=size)
        yield [data[k][rng.randrange(len(data[k]))] for k in picks]


def cap_counts(
    sizes: dict[str, int], counts: dict[str, int], steps: int, max_epochs: float, capped
) -> dict[str, float] | None:
    """Per-batch counts under which no ``capped`` source is drawn more than ``max_epochs`` times
    its size over ``steps`` steps (its surplus goes to the other sources by their counts), or
    ``None`` when no cap binds or no uncapped source is there to take the surplus. A thin kept set is not repeated hundreds of times to fill the
    budget.

    >>> cap_counts({"new": 10, "raw": 1000}, {"new": 8, "raw": 8}, 100, 4.0, ["new"])
    {'new': 0.4, 'raw': 15.6}
    >>> cap_counts({"new": 1000, "raw": 1000}, {"new": 8, "raw": 8}, 100, 4.0, ["new"]) is None
    True
    """
    limit = {k: max_epochs * sizes[k] / steps for k in capped if counts.get(k)}
    binding = {k: v for k, v in limit.items() if counts[k] > v}
    if not binding:
        return None
    free = {k: c for k, c in counts.items() if c and k not in binding}
    if not free:  # nothing else to fill the batch with: train_mixture takes fewer steps instead
        return None
    surplus = sum(counts[k] - v for k, v in binding.items())
    z = sum(free.values())
    out = {k: float(binding[k]) if k in binding else 0.0 for k in counts}
    for k, c in free.items():
        out[k] = c + surplus * c / z
    return {k: round(v, 6) for k, v in out.items()}


def mixed_examples(
    sources: dict[str, list[Example]], shares: dict[str, float], seed: int
) -> list[Example]:
    """One list drawn from the sources by their shares (as many examples as they hold in all):
    how a trainer that takes a list (TRL) trains on a mixture."""
    rng = random.Random(seed)
    sizes = {k: len(v) for k, v in sources.items()}
    counts = mix_counts(sizes, shares, max(sum(sizes.values()), 1))
    return [sources[k][rng.randrange(len(sources[k]))] for k in sources for _ in range(counts[k])]


def train_plain(
    model,
    tok,
    batches: Iterator[list[Tokenized]],
    steps: int,
    *,
    lr: float,
    warmup: float,
    decay: float,
    loss: str = "answer",
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.99),
    progress: str | None = None,
) -> dict:
    """Train ``model`` in place for ``steps`` optimizer steps on ``batches``; returns
    ``{steps, tokens, seconds, loss, first_loss}`` (tokens: real tokens seen; loss: mean of the
    last tenth; first_loss: of the first tenth, ``None`` under two steps)."""
    import torch

    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
    pad = tok.pad_token_id
    model.train()
    t0, seen, losses = time.perf_counter(), 0, []
    bar = progress_bar(steps, progress, "step")
    for step in range(steps):
        batch = next(batches)
        width = max(len(x) for x, _ in batch)
        x = torch.full((len(batch), width), pad, dtype=torch.long)  # (B, T)
        y = torch.full((len(batch), width), -100, dtype=torch.long)  # (B, T), -100: no loss
        for r, (ids, plen) in enumerate(batch):
            x[r, : len(ids)] = torch.tensor(ids)
            start = 0 if loss == "sequence" else plen
            y[r, start : len(ids)] = torch.tensor(ids[start:])
        # Right padding under a causal mask: real tokens never see the pads after them.
        for g in opt.param_groups:
            g["lr"] = wsd_lr(step, steps, lr, warmup, decay)
        step_loss = model(input_ids=x.to(device), labels=y.to(device)).loss
        opt.zero_grad(set_to_none=True)
        step_loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seen += sum(len(ids) for ids, _ in batch)
        losses.append(step_loss.item())
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    model.eval()
    tenth = max(1, steps // 10)
    head, tail = losses[:tenth], losses[-tenth:]
    return {
        "steps": steps,
        "tokens": seen,
        "seconds": time.perf_counter() - t0,
        "loss": sum(tail) / len(tail) if tail else None,
        "first_loss": sum(head) / len(head) if steps > 1 else None,
    }


def train_mixture(
    model,
    tok,
    sources: dict[str, list[Example]],
    shares: dict[str, float],
    *,
    tokens: int,
    batch_size: int,
    lr: float,
    warmup: float,
    decay: float,
    seed: int,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.99),
    loss: str = "answer",
    progress: str | None = None,
    max_epochs: float | None = None,
    capped: tuple[str, ...] = (),
) -> dict:
    """Train ``model`` in place for about ``tokens`` tokens on batches that draw from each source
    by its share (with replacement); ``capped`` sources are drawn at most ``max_epochs`` times
    their size (:func:`cap_counts`). Returns the loop's record plus the batch's ``mix`` (mean
    examples per batch from each source) and ``capped_by_max_epochs``."""
    data = {k: tokenize_examples(tok, v) for k, v in sources.items() if v}
    sizes = {k: len(data.get(k, [])) for k in sources}
    counts = mix_counts(sizes, shares, batch_size)
    if not any(counts.values()):
        return {"steps": 0, "tokens": 0, "seconds": 0.0, "loss": None, "mix": counts}
    steps = mixture_steps(data, counts, tokens)
    mix, cut = None, False
    if max_epochs:
        mix = cap_counts(sizes, counts, steps, max_epochs, capped)
        if mix is not None:
            steps = mixture_steps(data, mix, tokens)  # the mix changed the mean example length
        elif all(k in capped for k, c in counts.items() if c):  # nothing uncapped to draw from
            most = math.floor(max_epochs * sum(sizes.values()) / sum(counts.values()))
            cut, steps = most < steps, max(1, min(steps, most))
    out = train_plain(
        model, tok, mixture_batches(data, mix or counts, seed), steps, lr=lr, warmup=warmup,
        decay=decay, loss=loss, weight_decay=weight_decay, betas=betas, progress=progress,
    )  # fmt: skip
    return {**out, "mix": mix or counts, "capped_by_max_epochs": mix is not None or cut}


def train_planned(
    model,
    tok,
    examples: list[Example],
    plan: StepPlan,
    *,
    seed: int,
    lr: float,
    warmup: float,
    decay: float,
    loss: str = "answer",
    progress: str | None = None,
) -> dict:
    """Train ``model`` in place on ``examples`` as ``plan`` says: its steps, each of its batch of
    examples in :func:`~selfplay.training.plan.plan_order` (the order the TRL trainer takes)."""
    data = tokenize_examples(tok, examples)
    order = plan_order(len(examples), plan.steps, plan.batch_size, seed)
    batches = (
        [data[i] for i in order[s : s + plan.batch_size]]
        for s in range(0, len(order), plan.batch_size)
    )
    return train_plain(
        model, tok, batches, plan.steps, lr=lr, warmup=warmup, decay=decay, loss=loss,
        progress=progress,
    )  # fmt: skip
