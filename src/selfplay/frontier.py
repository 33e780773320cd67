"""The frontier schedule: self-improvement that climbs past the raw corpus's difficulty.

    raw corpus U --seed--> model_0
    for k in 1..K:
        probe    = greedy accuracy of model_{k-1} per difficulty on a validation split
        frontier = largest d with every difficulty 1..d solved (>= threshold)
        practise = frontier + 1 (accelerated: every solved difficulty above the trained ones too)
        labels   = model_{k-1}'s own answers to train-split problems of those difficulties
        kept     = labels the filter accepts (verifier | majority of samples | none; + length)
        model_k  = model_{k-1} trained on batches mixing the newest kept / older kept / U
                   (warmup-stable-decay learning rate)
        metrics  = the probe, the frontier, label accuracy, test accuracy per difficulty
    until the frontier reaches loop.frontier.max_difficulty, stalls stall_rounds rounds, or K

After Lee et al. 2025, "Self-Improving Transformers Overcome Easy-to-Hard and Length
Generalization Challenges" (NoPE, reversed addition, one length more per round, the newest round
at half of each batch). Two departures: a round moves on only once its difficulty is solved on the
validation split (else it labels the same difficulty again), and every shorter difficulty must
stay solved for the frontier to count.

The validation split is a fixed hash-based quarter of the train split, never practised on; the test
split only reports. Generation here is a batched greedy/sampled decode with a KV cache over
prompts grouped by token length (no padding, so no position or mask subtleties), and training is
a plain PyTorch loop: at ~1M parameters both are several times faster than the general paths
(TRL, ``generate``), and the whole climb has minutes on two CPU cores.

Every round writes its artifacts under ``iter_NNN/`` (probe, kept labels, model, metrics) and a
finished round is never redone, so a killed run resumes at the round it was in.
"""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
import time
from collections import Counter
from pathlib import Path

from selfplay import artifacts
from selfplay.config import RunConfig
from selfplay.errors import ConfigError
from selfplay.sampling import verdict_fields
from selfplay.tasks import Example, Problem, Task, make_task, verify_all
from selfplay.tasks.base import split_of

# ------------------------------------------------------------------------------------------------
# The schedule as pure functions


def solved_frontier(accuracy: dict[int, float], threshold: float) -> int:
    """The largest ``d`` such that every difficulty ``1..d`` is solved (0 if 1 is not).

    >>> solved_frontier({1: 1.0, 2: 0.95, 3: 0.5, 4: 0.97}, 0.9)
    2
    """
    d = 0
    while d + 1 in accuracy and accuracy[d + 1] >= threshold:
        d += 1
    return d


def next_practice(
    accuracy: dict[int, float],
    threshold: float,
    trained_max: int,
    max_difficulty: int,
    accelerated: bool = False,
) -> list[int]:
    """Difficulties to label next round, from the probe's accuracy per difficulty.

    The next difficulty past the frontier (the same one again until it is solved). Accelerated:
    also every difficulty above ``trained_max`` (the largest with training data) that the model
    already solves, so a model that extrapolates several lengths gets them all labelled at once.
    Empty when the frontier is at ``max_difficulty``.

    >>> next_practice({1: 1, 2: 1, 3: 0.2}, 0.9, trained_max=2, max_difficulty=10)
    [3]
    >>> next_practice({1: 1, 2: 1, 3: 1, 4: 0.95, 5: 0.1}, 0.9, 2, 10, accelerated=True)
    [3, 4, 5]
    """
    f = solved_frontier(accuracy, threshold)
    if f >= max_difficulty:
        return []
    if not accelerated:
        return [f + 1]
    return list(range(min(trained_max + 1, f + 1), f + 2))


def should_stop(frontiers: list[int], max_difficulty: int, stall_rounds: int) -> str | None:
    """Why the climb stops after these per-round frontiers (probe order), or None.

    >>> should_stop([5, 6, 6, 6, 6], 32, 3)
    'frontier stalled at 6 for 3 rounds'
    >>> should_stop([5, 6, 7], 32, 3) is None
    True
    """
    if frontiers and frontiers[-1] >= max_difficulty:
        return f"frontier reached max_difficulty {max_difficulty}"
    if (
        len(frontiers) > stall_rounds
        and max(frontiers[-stall_rounds:]) <= frontiers[-stall_rounds - 1]
    ):
        return f"frontier stalled at {frontiers[-stall_rounds - 1]} for {stall_rounds} rounds"
    return None


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


# ------------------------------------------------------------------------------------------------
# Problems


def is_validation(problem_id: str) -> bool:
    """A fixed hash-based quarter of the train split, set aside for the probe."""
    return split_of("validation:" + problem_id, 0.25) == "test"


def draw_problems(
    task: Task, difficulty: int, n: int, rng: random.Random, validation: bool
) -> list[Problem]:
    """Up to ``n`` distinct train-split problems on the validation side or the practice side."""
    out: dict[str, Problem] = {}
    for _ in range(20):
        before = len(out)
        for p in task.sample_problems("train", difficulty, 2 * n, rng):
            if is_validation(p.id) == validation and p.id not in out:
                out[p.id] = p
        if len(out) >= n or len(out) == before:  # enough, or the difficulty has no more
            break
    return list(out.values())[:n]


def expected_width(problem: Problem) -> int | None:
    """The answer width the prompt implies (reversed ``arith``), None when it has none."""
    m = problem.meta
    if not m.get("reversed"):
        return None
    la, lb = len(str(m["a"])), len(str(m["b"]))
    return max(la, lb) + 1 if m["op"] == "+" else la + lb


# ------------------------------------------------------------------------------------------------
# Decoding and training at small scale


def _encode(tok, texts: list[str]) -> list[list[int]]:
    return [list(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]


def decode(
    model,
    tok,
    prompts: list[str],
    max_new_tokens: int,
    *,
    n: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
    batch_size: int = 512,
) -> list[list[str]]:
    """``n`` completions per prompt (greedy when ``temperature`` is 0), cut at end-of-sequence.

    Prompts of one token length are decoded together, so batches need no padding and no mask."""
    import torch

    ids = _encode(tok, prompts)
    eos = tok.eos_token_id
    out: list[list[str]] = [[] for _ in prompts]
    groups: dict[int, list[int]] = {}
    for i, x in enumerate(ids):
        groups.setdefault(len(x), []).append(i)
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for _, members in sorted(groups.items()):
            rows = [i for i in members for _ in range(n)]
            for s in range(0, len(rows), batch_size):
                chunk = rows[s : s + batch_size]
                x = torch.tensor([ids[i] for i in chunk], device=device)
                res = model(input_ids=x, use_cache=True)
                past, logits = res.past_key_values, res.logits[:, -1]
                toks, done = [], torch.zeros(len(chunk), dtype=torch.bool, device=device)
                for t in range(max_new_tokens):
                    if temperature > 0:
                        probs = torch.softmax(logits.float() / temperature, -1).cpu()
                        nxt = torch.multinomial(probs, 1, generator=gen)[:, 0].to(device)
                    else:
                        nxt = logits.argmax(-1)
                    toks.append(nxt)
                    done |= nxt == eos
                    if bool(done.all()) or t == max_new_tokens - 1:
                        break
                    res = model(input_ids=nxt[:, None], past_key_values=past, use_cache=True)
                    past, logits = res.past_key_values, res.logits[:, -1]
                seqs = torch.stack(toks, 1).tolist()
                for i, seq in zip(chunk, seqs, strict=True):
                    if eos in seq:
                        seq = seq[: seq.index(eos)]
                    out[i].append(tok.decode(seq))
    model.train(was_training)
    return out


def _tokenize_examples(tok, examples: list[Example]) -> list[tuple[list[int], int]]:
    """``(ids, prompt_length)`` per example: prompt, completion and end-of-sequence."""
    p_ids = _encode(tok, [e.prompt for e in examples])
    c_ids = _encode(tok, [e.completion for e in examples])
    return [(p + c + [tok.eos_token_id], len(p)) for p, c in zip(p_ids, c_ids, strict=True)]


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
) -> dict:
    """Train ``model`` in place for about ``tokens`` tokens on batches that draw from each source
    by its share (with replacement); the loss is on the completion tokens (``loss="answer"``) or
    on every token (``"sequence"``)."""
    import torch

    data = {k: _tokenize_examples(tok, v) for k, v in sources.items() if v}
    sizes = {k: len(data.get(k, [])) for k in sources}
    counts = mix_counts(sizes, shares, batch_size)
    if not any(counts.values()):
        return {"steps": 0, "tokens": 0, "seconds": 0.0, "loss": None, "mix": counts}
    mean_len = sum(
        counts[k] * sum(len(x) for x, _ in data[k]) / len(data[k]) for k in data if counts[k]
    ) / sum(counts.values())
    steps = max(1, math.ceil(tokens / (batch_size * mean_len)))
    rng = random.Random(seed)
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
    pad = tok.pad_token_id
    model.train()
    t0, seen, losses = time.perf_counter(), 0, []
    whole_sequence = loss == "sequence"
    for step in range(steps):
        batch = [data[k][rng.randrange(len(data[k]))] for k in data for _ in range(counts[k])]
        width = max(len(x) for x, _ in batch)
        x = torch.full((len(batch), width), pad, dtype=torch.long)
        y = torch.full((len(batch), width), -100, dtype=torch.long)
        for r, (ids, plen) in enumerate(batch):
            x[r, : len(ids)] = torch.tensor(ids)
            start = 0 if whole_sequence else plen
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
    model.eval()
    tail = losses[-max(1, steps // 10) :]
    return {
        "steps": steps,
        "tokens": seen,
        "seconds": time.perf_counter() - t0,
        "loss": sum(tail) / len(tail),
        "mix": counts,
    }


# ------------------------------------------------------------------------------------------------
# Stages


def max_new_for(task: Task, cfg: RunConfig, difficulty: int) -> int:
    """Completion budget: the answer's width + 1 for answer-only data, else the task's bound."""
    if cfg.raw.answer_only_rate >= 1.0:
        return (difficulty + 2) if cfg.task.ops == ["add"] else 2 * difficulty + 1
    return task.max_new_tokens(difficulty)


def accuracy_by_difficulty(
    model, tok, task: Task, problems: list[Problem], cfg: RunConfig, seed: int
) -> dict[int, float]:
    """Greedy accuracy per difficulty (what the probe and the evaluation report)."""
    by_d: dict[int, list[Problem]] = {}
    for p in problems:
        by_d.setdefault(p.difficulty, []).append(p)
    acc = {}
    for d, ps in sorted(by_d.items()):
        texts = decode(model, tok, [p.prompt for p in ps], max_new_for(task, cfg, d), seed=seed)
        verdicts = verify_all(task, [(p, t[0]) for p, t in zip(ps, texts, strict=True)])
        acc[d] = sum(v.status == "correct" for v in verdicts) / len(ps)
    return acc


def label_problems(
    model, tok, task: Task, problems: list[Problem], cfg: RunConfig, seed: int, others=()
) -> tuple[list[dict], dict]:
    """The model's own answers to ``problems`` and what the filter keeps of them.

    ``generation.n == 1``: the greedy answer; more: ``n`` samples at ``generation.temperature``.
    The filter: ``filters.verified`` (the verifier), else ``filters.majority`` (the most common
    answer with at least ``filters.majority_min_votes`` votes), else none; then, with
    ``loop.frontier.length_filter``, only answers of the width the prompt implies. ``others``:
    the committee's other models (``filters.majority_models``); their answers join the vote."""
    n = cfg.generation.n
    temp = 0.0 if n == 1 else cfg.generation.temperature
    records = []
    by_d: dict[int, list[Problem]] = {}
    for p in problems:
        by_d.setdefault(p.difficulty, []).append(p)
    for d, ps in sorted(by_d.items()):
        texts = [[] for _ in ps]
        for j, m in enumerate([model, *others]):
            answers = decode(
                m,
                tok,
                [p.prompt for p in ps],
                max_new_for(task, cfg, d),
                n=n,
                temperature=temp,
                seed=seed + d + MEMBER_SEED * j,
            )
            for ts, a in zip(texts, answers, strict=True):
                ts.extend(a)
        flat = [(p, t) for p, ts in zip(ps, texts, strict=True) for t in ts]
        verdicts = verify_all(task, flat)
        i = 0
        for p, ts in zip(ps, texts, strict=True):
            vs = verdicts[i : i + len(ts)]
            i += len(ts)
            records.append(_choose_label(cfg, p, ts, vs))
    kept = [r for r in records if r["kept"]]
    stats = {
        "problems": len(records),
        "kept": len(kept),
        "label_accuracy": _mean([r["correct"] for r in records]),
        "kept_accuracy": _mean([r["correct"] for r in kept]),
        "reasons": dict(Counter(r["filter_reason"] for r in records)),
    }
    return records, stats


def _mean(xs: list) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _choose_label(cfg: RunConfig, p: Problem, texts: list[str], verdicts: list) -> dict:
    f = cfg.filters
    answers = [t.strip().split("|")[-1] for t in texts]
    if f.verified:
        ok = [v.status == "correct" and (v.steps_ok or not f.require_valid_steps) for v in verdicts]
        j = next((i for i, o in enumerate(ok) if o), None)
        reason = "kept" if j is not None else "not verified"
    elif f.majority:
        votes = Counter(answers)
        best, count = votes.most_common(1)[0]
        j = answers.index(best) if count >= f.majority_min_votes else None
        reason = "kept" if j is not None else f"no majority ({count} of {len(answers)})"
    else:
        j, reason = 0, "kept"
    pick = 0 if j is None else j
    width = expected_width(p)
    if (
        j is not None
        and cfg.loop.frontier.length_filter
        and width is not None
        and len(answers[pick]) != width
    ):
        j, reason = None, f"length: {len(answers[pick])} digits, not {width}"
    return {
        "problem_id": p.id,
        "difficulty": p.difficulty,
        "prompt": p.prompt,
        "gold": p.answer,
        "sample_idx": pick,
        "text": texts[pick],
        "correct": verdicts[pick].status == "correct",
        "kept": j is not None,
        "filter_reason": reason,
        **verdict_fields(verdicts[pick]),  # the marks `selfplay inspect` and the report show
    }


def _examples(records: list[dict]) -> list[Example]:
    return [
        Example(
            r["prompt"], r["text"], r["problem_id"], r["difficulty"], r.get("source") or "selfplay"
        )
        for r in records
        if r["kept"]
    ]


def grpo_practice(
    cfg: RunConfig, task: Task, k: int, prev_dir: Path, problems: list[Problem], it: Path,
    device: str,
) -> tuple[list[dict], dict]:  # fmt: skip
    """GRPO on the round's practice problems in place of labels (``loop.method: grpo``): it trains
    from the previous checkpoint while it samples (``selfplay.grpo``), writing ``model/``,
    ``samples.parquet`` (rewards, advantages) and ``grpo.json``; no kept labels, no mix with older
    rounds or U. Returns no records and the round's sample statistics as label statistics."""
    from selfplay.grpo import grpo_stage

    rec = grpo_stage(cfg, task, k, prev_dir, problems, it, device=device)
    tr = rec["train"]
    artifacts.write_json(
        it / "train.json",
        {
            "steps": tr["steps"],
            "tokens": tr["tokens"],
            "seconds": tr["seconds"] + rec["seconds"]["generate"],
            "loss": tr["final_loss"],
            "mix": {},
            "generated_tokens": rec["generate"]["generated_tokens"],
            "flops": rec["flops"],
        },
    )
    stats = {
        "problems": len(problems),
        "kept": rec["grpo"]["groups_with_signal"],  # groups whose rewards differed: the gradient
        "label_accuracy": rec["generate"]["pass_rate"],
        "kept_accuracy": None,
        "reasons": {"groups with signal": rec["grpo"]["groups_with_signal"],
                    "groups": rec["grpo"]["groups"]},
        "mean_reward": rec["grpo"]["mean_reward"],
    }  # fmt: skip
    right = [r["difficulty"] for r in artifacts.read_parquet(it / "samples.parquet")
             if r["status"] == "correct"]  # fmt: skip
    stats["practised_max"] = max(right) if right else None  # the longest it got a reward on
    return [], stats


def raw_round(
    cfg: RunConfig, task: Task, raw: list[Example], tests: list[Problem], k: int
) -> tuple[list[dict], dict]:
    """A raw arm's round data in place of labels, so it trains on the same mix at the same tokens.

    ``raw-fresh``: round ``k``'s slice of ``loop.problems_per_iter`` examples of a fresh corpus at
    U's difficulties (gold answers; no problem of U, its twins, the evaluation set or the probe's
    validation side: ``fresh.json`` has the counts checked), slices disjoint until the corpus wraps.
    ``raw-repeat``: nothing new, so every batch is U."""
    stats = {"problems": 0, "kept": 0, "label_accuracy": None, "kept_accuracy": None, "reasons": {}}
    if cfg.loop.data_source == "raw-repeat":
        return [], stats
    from selfplay.sources import fresh_corpus

    fresh = [e for e in fresh_corpus(cfg, task, raw, tests) if not is_validation(e.problem_id)]
    if not fresh:
        raise ConfigError("loop.fresh_multiplier: the fresh corpus is empty")
    n = cfg.loop.problems_per_iter
    picked = [fresh[i % len(fresh)] for i in range((k - 1) * n, k * n)]
    records = [
        {
            "problem_id": e.problem_id,
            "difficulty": e.difficulty,
            "prompt": e.prompt,
            "gold": e.completion,
            "sample_idx": 0,
            "text": e.completion,
            "correct": True,
            "kept": True,
            "filter_reason": "raw-fresh",
            "source": "raw-fresh",
        }
        for e in picked
    ]
    reused = max(0, k * n - len(fresh))
    stats.update(problems=len(records), kept=len(records), reasons={"raw-fresh": len(records)})
    stats["fresh_reused"] = min(reused, n)
    return records, stats


def _raw_examples(records: list[dict]) -> list[Example]:
    return [
        Example(r["prompt"], r["completion"], r["problem_id"], r["difficulty"], r["source"])
        for r in records
    ]


def _train(model, tok, cfg: RunConfig, sources, shares, tokens, lr, seed, work_dir) -> dict:
    fr = cfg.loop.frontier
    if fr.trainer == "trl":
        from selfplay.training import train_sft

        rng = random.Random(seed)
        sizes = {k: len(v) for k, v in sources.items()}
        total = sum(sizes.values())
        counts = mix_counts(sizes, shares, max(total, 1))
        mixed = [
            sources[k][rng.randrange(len(sources[k]))] for k in sources for _ in range(counts[k])
        ]
        res = train_sft(
            model,
            tok,
            mixed,
            dataclasses.replace(cfg.train, lr=lr),
            budget_tokens=tokens,
            seed=seed,
            work_dir=work_dir,
            progress=None,
            chat_template="none",
        )
        shutil.rmtree(work_dir, ignore_errors=True)
        return {
            "steps": res.steps,
            "tokens": res.tokens,
            "seconds": res.seconds,
            "loss": res.loss,
            "mix": counts,
        }
    return train_mixture(
        model,
        tok,
        sources,
        shares,
        tokens=tokens,
        batch_size=cfg.train.batch_size,
        lr=lr,
        warmup=fr.warmup,
        decay=fr.decay,
        seed=seed,
        loss=fr.loss,
    )


def _log(console, msg: str) -> None:
    if console is not None:
        console.print(msg)


# The committee's j-th model runs on seed ``cfg.seed + MEMBER_SEED * j``: far from other runs' seeds.
MEMBER_SEED = 10007


def member_dirs(stage_dir: Path, cfg: RunConfig) -> list[Path]:
    """Where a stage keeps the committee's other models (``filters.majority_models`` - 1)."""
    return [stage_dir / "members" / str(j) for j in range(1, cfg.filters.majority_models)]


def train_members(
    cfg: RunConfig, stage_dir: Path, prev: list[Path] | None, sources, shares, tokens, lr, seed,
    device: str,
) -> list[dict]:  # fmt: skip
    """Train (or, resuming, skip) the committee's other models for a stage: from scratch on U for
    the seed stage (``prev`` None: each its own initial weights), else from each one's previous
    checkpoint, on the same sources as the run's model; returns their train records."""
    from selfplay.models import init_model, load_model

    out = []
    for j, where in enumerate(member_dirs(stage_dir, cfg), start=1):
        if not (where / "train.json").exists():
            member_seed = seed + MEMBER_SEED * j
            if prev is None:
                model, tok = init_model(
                    dataclasses.replace(cfg, seed=cfg.seed + MEMBER_SEED * j), device
                )
            else:
                model, tok = load_model(prev[j - 1] / "model", device, dtype="float32")
            train = _train(
                model, tok, cfg, sources, shares, tokens, lr, member_seed, where / ".trainer"
            )
            artifacts.save_model_dir(where / "model", model, tok)
            artifacts.write_json(where / "train.json", train)
        out.append(artifacts.read_json(where / "train.json"))
    return out


def _members_train_tokens(members: list[dict]) -> int:
    return sum(m["tokens"] for m in members)


def _seed_committee(cfg: RunConfig, d: Path, raw: list[Example], device: str) -> None:
    """Train (or, resuming, finish) the committee's other seed models once the run's own is
    recorded, and add their cost to the seed record; a seed stage shared from a run without the
    committee (a bench's first arm) gets them the same way."""
    if cfg.filters.majority_models == 1:
        return
    m = artifacts.read_json(d / "metrics.json")
    have = m.get("members") or []
    if len(have) >= cfg.filters.majority_models - 1:
        return
    t0, c0 = time.perf_counter(), time.process_time()
    members = train_members(
        cfg, d, None, {"raw": raw}, {"raw": 1.0}, cfg.seed_train.tokens, cfg.seed_train.lr,
        cfg.seed, device,
    )  # fmt: skip
    extra = _members_train_tokens(members) - _members_train_tokens(have)
    cum = m["cumulative"]
    cum["train_tokens"] += extra
    cum["flops"] += 6 * m["train"]["params"] * extra
    cum["seconds"] += time.perf_counter() - t0
    cum["cpu_seconds"] = cum.get("cpu_seconds", 0.0) + time.process_time() - c0
    m["members"] = members
    artifacts.write_json(d / "metrics.json", m)  # a new file: a hard-linked original stays as is


def _eval_row(acc: dict[int, float], cfg: RunConfig) -> dict:
    top = max(cfg.raw.difficulties)
    accuracy = {str(d): a for d, a in sorted(acc.items())}
    inside = [a for d, a in acc.items() if d <= top]
    harder = [a for d, a in acc.items() if d > top]
    accuracy["all"] = _mean(list(acc.values())) or 0.0
    return {
        "accuracy": accuracy,
        "accuracy_in": _mean(inside),
        "accuracy_harder": _mean(harder),
        "solved": solved_frontier(acc, cfg.loop.frontier.threshold),
    }


def _eval_problems(tests: list[Problem], upto: int | None) -> list[Problem]:
    return [p for p in tests if upto is None or p.difficulty <= upto]


def run_frontier(cfg: RunConfig, console=None, progress: bool = True, on_stage=None) -> list[dict]:
    """Run (or resume) the frontier schedule; returns one metrics record per finished stage."""
    import torch

    from selfplay.evaluation import test_problems
    from selfplay.models import count_params, init_model, load_model, resolve_device
    from selfplay.rundir import prepare_run_dir, round_dir, seed_dir, write_metrics_log
    from selfplay.stages import mark_done

    t_start, c_start = time.perf_counter(), time.process_time()
    run_dir = prepare_run_dir(cfg)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    task = make_task(cfg)
    tests = test_problems(task, cfg)
    fr = cfg.loop.frontier
    _log(
        console,
        f"run dir [bold]{run_dir}[/]  device {device}  frontier schedule  test problems {len(tests)}",
    )

    # Seed: U -> model_0.
    d = seed_dir(run_dir)
    raw_path = d / "raw.parquet"
    if raw_path.exists():
        raw = _raw_examples(artifacts.read_parquet(raw_path))
    else:
        raw = task.raw_corpus(cfg, random.Random(f"raw-{cfg.seed}"))
        artifacts.write_parquet(raw_path, [dataclasses.asdict(e) for e in raw])
    top_raw = max(cfg.raw.difficulties)
    if not (d / "metrics.json").exists():
        model, tok = init_model(cfg, device)
        n_params = count_params(model)
        _log(
            console,
            f"[bold]seed[/]: model_0 ({n_params / 1e6:.2f}M params, {cfg.model.position}) on U = {len(raw)} examples, {cfg.seed_train.tokens:,} tokens",
        )
        train = _train(
            model,
            tok,
            cfg,
            {"raw": raw},
            {"raw": 1.0},
            cfg.seed_train.tokens,
            cfg.seed_train.lr,
            cfg.seed,
            d / ".trainer",
        )
        artifacts.save_model_dir(d / "model", model, tok)
        t1 = time.perf_counter()
        acc = accuracy_by_difficulty(
            model, tok, task, _eval_problems(tests, top_raw + fr.probe_ahead), cfg, cfg.seed
        )
        ev = _eval_row(acc, cfg)
        out = {
            "stage": "seed",
            "iteration": 0,
            "raw": {"examples": len(raw)},
            "train": {**train, "params": n_params},
            "eval": ev,
            "frontier": {"trained_max": top_raw},
            "seconds": {
                "train": train["seconds"],
                "eval": time.perf_counter() - t1,
                "total": train["seconds"] + time.perf_counter() - t1,
            },
            "cumulative": {
                "train_tokens": train["tokens"],
                "generated_tokens": 0,
                "flops": 6 * n_params * train["tokens"],
                "seconds": time.perf_counter() - t_start,
                "cpu_seconds": time.process_time() - c_start,
            },
        }
        artifacts.write_json(d / "metrics.json", out)
        mark_done(d, "evaluate")
    _seed_committee(cfg, d, raw, device)
    rows = write_metrics_log(run_dir)
    if on_stage:
        on_stage(rows[-1])

    prev_dir = d / "model"
    prev_stage = d  # where the committee's other models of the last finished stage are
    frontiers: list[int] = []
    trained_max = top_raw
    stop = None
    spent = _spent(artifacts.read_json(d / "metrics.json"))
    for k in range(1, cfg.loop.iterations + 1):
        it = round_dir(run_dir, k)
        if (it / "metrics.json").exists():
            m = artifacts.read_json(it / "metrics.json")
            frontiers.append(m["frontier"]["probe_solved"])
            trained_max = m["frontier"]["trained_max"]
            prev_dir, prev_stage = it / "model", it
            spent = _spent(m)
            continue
        clock = spent[1] if fr.budget_clock == "cpu" else spent[0]
        if fr.time_budget_s is not None and clock >= fr.time_budget_s:
            stop = (
                f"time budget spent ({clock:.0f} of {fr.time_budget_s:g} {fr.budget_clock} seconds)"
            )
            break
        t0, c0 = time.perf_counter(), time.process_time()
        model, tok = load_model(prev_dir, device, dtype="float32")
        # Probe (validation split) -> frontier -> practice difficulties.
        probe_path = it / "probe.json"
        if probe_path.exists():
            probe = {int(a): b for a, b in artifacts.read_json(probe_path).items()}
        else:
            upto = min(fr.max_difficulty, trained_max + fr.probe_ahead)
            rng = random.Random(f"validation-{cfg.seed}")
            val = [
                p
                for dd in range(1, upto + 1)
                for p in draw_problems(task, dd, fr.val_per_difficulty, rng, True)
            ]
            probe = accuracy_by_difficulty(model, tok, task, val, cfg, cfg.seed)
            artifacts.write_json(probe_path, {str(a): b for a, b in probe.items()})
        f = solved_frontier(probe, fr.threshold)
        frontiers.append(f)
        stop = should_stop(frontiers, fr.max_difficulty, fr.stall_rounds)
        if stop:
            shutil.rmtree(it, ignore_errors=True)
            frontiers.pop()
            break
        practice = next_practice(
            probe, fr.threshold, trained_max, fr.max_difficulty, fr.accelerated
        )
        if cfg.loop.data_source != "selfplay":  # a raw arm practises on U's difficulties only
            practice = sorted(cfg.raw.difficulties) if cfg.loop.data_source == "raw-fresh" else []
        t_probe = time.perf_counter() - t0
        # Label with the model's own answers; keep what the filter accepts.
        kept_path = it / "kept.parquet"
        t1 = time.perf_counter()
        if kept_path.exists():
            records = artifacts.read_parquet(kept_path)
            label_stats = artifacts.read_json(it / "label.json")
        else:
            if cfg.loop.data_source == "selfplay":
                rng = random.Random(f"practice-{cfg.seed}-{k}")
                per = max(1, cfg.loop.problems_per_iter // len(practice))
                problems = [p for dd in practice for p in draw_problems(task, dd, per, rng, False)]
                if cfg.loop.method == "grpo":
                    records, label_stats = grpo_practice(
                        cfg, task, k, prev_dir, problems, it, device
                    )
                else:
                    others = [
                        load_model(m / "model", device, dtype="float32")[0]
                        for m in member_dirs(prev_stage, cfg)
                    ]
                    records, label_stats = label_problems(
                        model, tok, task, problems, cfg, cfg.seed + 1000 * k, others
                    )
            else:
                records, label_stats = raw_round(cfg, task, raw, tests, k)
            artifacts.write_json(it / "label.json", label_stats)
            artifacts.write_parquet(kept_path, records)
            mark_done(it, "filter")
        t_label = time.perf_counter() - t1
        # Train from the previous checkpoint on the mix.
        new = _examples(records)
        old = [
            e
            for j in range(1, k)
            for e in _examples(artifacts.read_parquet(round_dir(run_dir, j) / "kept.parquet"))
        ]
        shares = {"new": fr.mix_new, "old": fr.mix_old, "raw": fr.mix_raw}
        if not (it / "model").exists():
            train = _train(
                model,
                tok,
                cfg,
                {"new": new, "old": old, "raw": raw},
                shares,
                cfg.train.tokens,
                cfg.train.lr,
                cfg.seed + k,
                it / ".trainer",
            )
            artifacts.write_json(it / "train.json", train)
            artifacts.save_model_dir(it / "model", model, tok)
            mark_done(it, "train")
        else:
            model, tok = load_model(it / "model", device, dtype="float32")
        members = train_members(
            cfg, it, member_dirs(prev_stage, cfg), {"new": new, "old": old, "raw": raw}, shares,
            cfg.train.tokens, cfg.train.lr, cfg.seed + k, device,
        )  # fmt: skip
        train = artifacts.read_json(it / "train.json")
        if new:
            trained_max = max(trained_max, max(e.difficulty for e in new))
        elif label_stats.get("practised_max"):
            trained_max = max(trained_max, label_stats["practised_max"])
        # Evaluate on the test split (reports only; nothing above steers the climb with it).
        t2 = time.perf_counter()
        upto = min(max(cfg.eval.difficulties), trained_max + fr.probe_ahead)
        acc = accuracy_by_difficulty(model, tok, task, _eval_problems(tests, upto), cfg, cfg.seed)
        t_eval = time.perf_counter() - t2
        prev = rows[-1]["cumulative"]
        n_params = rows[0]["train"]["params"]
        gen_tokens = (
            sum(len(r["text"]) + 1 for r in records)
            * cfg.generation.n
            * cfg.filters.majority_models
            if cfg.loop.data_source == "selfplay"
            else 0
        )
        trained = train["tokens"] + _members_train_tokens(members)
        if "generated_tokens" in train:  # GRPO: it sampled while it trained
            gen_tokens = train["generated_tokens"]
        round_flops = train.get("flops") or 6 * n_params * trained + 2 * n_params * gen_tokens
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        out = {
            "stage": f"iter_{k:03d}",
            "iteration": k,
            "frontier": {
                "probe": {str(a): b for a, b in probe.items()},
                "probe_solved": f,
                "practice": practice,
                "trained_max": trained_max,
            },
            "generate": {
                "pass_rate": None
                if cfg.loop.data_source != "selfplay"
                else label_stats["label_accuracy"] or 0.0,
                "source": cfg.loop.data_source,
                "generated_tokens": gen_tokens,
            },
            "filter": {"kept": label_stats["kept"], **label_stats},
            "train": train,
            "members": members,
            "eval": _eval_row(acc, cfg),
            "seconds": {
                "probe": t_probe,
                "label": t_label,
                "train": train["seconds"],
                "eval": t_eval,
                "total": total,
                "cpu": cpu,
            },
            "cumulative": {
                "train_tokens": prev["train_tokens"] + trained,
                "generated_tokens": prev["generated_tokens"] + gen_tokens,
                "flops": prev["flops"] + round_flops,
                "seconds": spent[0] + total,
                "cpu_seconds": spent[1] + cpu,
            },
        }
        spent = (spent[0] + total, spent[1] + cpu)
        artifacts.write_json(it / "metrics.json", out)
        rows = write_metrics_log(run_dir)
        prev_dir, prev_stage = it / "model", it
        acc_labels = label_stats["label_accuracy"]
        _log(
            console,
            f"round {k}: probe frontier {f}, practised {practice}, labels correct "
            f"{'-' if acc_labels is None else f'{acc_labels:.2f}'}, kept {label_stats['kept']}",
        )
        if on_stage:
            on_stage(rows[-1])
    final = _final_eval(cfg, task, tests, run_dir, prev_dir, device, rows, stop)
    _log(
        console, f"stopped: {final['stop']}; last model solves 1..{final['eval']['solved']} (test)"
    )
    return rows


def _spent(metrics: dict) -> tuple[float, float]:
    """Cumulative (wall, CPU) seconds of the run up to a finished stage."""
    c = metrics["cumulative"]
    return c["seconds"], c.get("cpu_seconds", c["seconds"])


def _final_eval(cfg, task, tests, run_dir: Path, model_dir: Path, device: str, rows, stop) -> dict:
    """Every evaluation difficulty for the last model (rounds measure only up to the frontier)."""
    from selfplay.models import load_model

    path = run_dir / "final.json"
    if path.exists():  # a finished run resumed: its last model was measured already
        done = artifacts.read_json(path)
        if done.get("model") == str(model_dir.relative_to(run_dir)) and done.get("stop") == (
            stop or "loop.iterations reached"
        ):
            return done
    model, tok = load_model(model_dir, device, dtype="float32")
    acc = accuracy_by_difficulty(model, tok, task, tests, cfg, cfg.seed)
    out = {
        "model": str(model_dir.relative_to(run_dir)),
        "stop": stop or "loop.iterations reached",
        "eval": _eval_row(acc, cfg),
        "seconds": rows[-1]["cumulative"]["seconds"],
        "cpu_seconds": rows[-1]["cumulative"].get("cpu_seconds"),
    }
    artifacts.write_json(path, out)
    return out
