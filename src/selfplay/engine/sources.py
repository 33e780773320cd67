"""What each arm trains on, in one place, and the token budgets of the stages.

    U (raw corpus)   seed/raw.parquet: ``task.raw_corpus``; the seed model trains on it
    raw-repeat       a stream of shuffled passes over U, cut into rounds of each round's budget
    raw-fresh        the same stream over a fresh corpus (``fresh_multiplier x raw.size`` problems)
    self-play        the kept chains of this round (every round's, with ``train.data: accumulate``)
    mix              self-play plus ``train.raw_mix`` of examples drawn from U

Budgets count supervised (loss-bearing) tokens: completions, not prompts or padding. Budgets given
in epochs (``seed_train.epochs``, ``train.budget_epochs``) are passes over U's supervised tokens,
counted once per run (``seed/raw.json``). Every stage trains in steps of ``train.batch_size`` x
U's mean supervised tokens per example, so arms of a round train the same steps on the same
supervised tokens (:func:`selfplay.training.plan_matched`).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import asdict
from pathlib import Path

from selfplay.config import RunConfig
from selfplay.engine import artifacts
from selfplay.engine.rundir import round_dir, seed_dir
from selfplay.tasks import Example, Problem, Task
from selfplay.tasks.generated import overlap_key_of
from selfplay.training import count_supervised_tokens, count_tokens


def examples_to_records(examples: list[Example]) -> list[dict]:
    return [asdict(e) for e in examples]


def records_to_examples(records: list[dict]) -> list[Example]:
    return [
        Example(r["prompt"], r["completion"], r["problem_id"], r["difficulty"], r["source"])
        for r in records
    ]


def raw_corpus(cfg: RunConfig, task: Task) -> list[Example]:
    """U, drawn once per run and stored in ``seed/raw.parquet``: no evaluation problem and no
    twin of one (``b+a`` of a test problem ``a+b``), the exclusion every arm's data has (the
    fresh corpus, the practice pool), so that no arm trains on the evaluation set through U."""
    from selfplay.engine.sampling import evaluation_keys

    path = seed_dir(cfg.run_dir) / "raw.parquet"
    if path.exists():
        return records_to_examples(artifacts.read_parquet(path))
    banned = frozenset(evaluation_keys(task, cfg))
    raw = task.raw_corpus(cfg.raw, random.Random(f"raw-{cfg.seed}"), exclude=banned)
    artifacts.write_parquet(path, examples_to_records(raw))
    return raw


def raw_summary(run_dir: Path, raw: list[Example], tok) -> dict:
    """U's size, tokens, supervised tokens and sources, counted once (``seed/raw.json``): the
    budgets and the step size come from it."""
    path = seed_dir(run_dir) / "raw.json"
    if path.exists():
        u = artifacts.read_json(path)
        if "supervised_tokens" in u:
            return u
    out = {
        "examples": len(raw),
        "tokens": sum(count_tokens(tok, raw)),
        "supervised_tokens": sum(count_supervised_tokens(tok, raw)),
        "sources": {s: sum(e.source == s for e in raw) for s in sorted({e.source for e in raw})},
    }
    artifacts.write_json(path, out)
    return out


def seed_budget(cfg: RunConfig, u_tokens: int) -> int:
    """The seed stage's budget in supervised tokens: ``seed_train.tokens``, or
    ``seed_train.epochs`` passes over U's ``u_tokens`` (supervised)."""
    if cfg.seed_train.epochs is None:
        return cfg.seed_train.tokens
    return round(cfg.seed_train.epochs * u_tokens)


def round_budget(cfg: RunConfig, k: int, u_tokens: int) -> int:
    """Round ``k``'s budget in supervised tokens: ``train.tokens``, or
    ``train.budget_epochs[k-1]`` passes over U's ``u_tokens`` (supervised)."""
    if cfg.train.budget_epochs is None:
        return cfg.train.tokens
    return round(cfg.train.budget_epochs[k - 1] * u_tokens)


def raw_stream_slice(
    cfg: RunConfig, k: int, data: list[Example], tok, u_tokens: int | None = None
) -> list[Example]:
    """Round ``k``'s share of a raw baseline's data: one stream of shuffled passes over ``data``,
    cut into rounds of each round's budget, so the arm repeats data only once it has used it all.
    ``u_tokens`` (U's supervised tokens) sets budgets given in epochs of U; ``None``: ``data``
    is U."""
    if not data:
        return []
    sample = data[:2000]
    mean = sum(count_supervised_tokens(tok, sample)) / len(sample)
    if u_tokens is None:
        u_tokens = sum(count_supervised_tokens(tok, data))
    per_round = [max(1, round(round_budget(cfg, j, u_tokens) / mean)) for j in range(1, k + 1)]
    start, stop = sum(per_round[:-1]), sum(per_round)
    out, n = [], len(data)
    for epoch in range(start // n, (stop - 1) // n + 1):
        order = list(range(n))
        random.Random(f"stream-{cfg.seed}-{epoch}").shuffle(order)
        lo, hi = max(start - epoch * n, 0), min(stop - epoch * n, n)
        out += [data[i] for i in order[lo:hi]]
    return out


def fresh_corpus(
    cfg: RunConfig, task: Task, raw: list[Example], tests: list[Problem]
) -> list[Example]:
    """The ``raw-fresh`` baseline's corpus: ``fresh_multiplier x raw.size`` problems from U's
    source that share no problem with U or the evaluation set, twins included (``a+b`` / ``b+a``:
    :func:`selfplay.tasks.generated.overlap_key`), drawn once per run and stored in
    ``fresh.parquet``; ``fresh.json`` holds the overlap counts checked (all 0) and what was
    removed."""
    path = cfg.run_dir / "fresh.parquet"
    if path.exists():
        return records_to_examples(artifacts.read_parquet(path))
    key = overlap_key_of(task)
    banned = {key(e.problem_id) for e in raw} | {key(p.id) for p in tests}
    size = max(1, round(cfg.loop.fresh_multiplier * cfg.raw.size))
    data: list[Example] = []
    removed = 0
    for factor in (2, 8):  # draw more than needed, then drop what U and the test set hold
        fresh_raw = dataclasses.replace(cfg.raw, size=factor * size)
        drawn = task.raw_corpus(fresh_raw, random.Random(f"fresh-{cfg.seed}-{factor}"))
        data = [e for e in drawn if key(e.problem_id) not in banned][:size]
        removed = len(drawn) - sum(key(e.problem_id) not in banned for e in drawn)
        if len(data) == size:
            break
    u_ids = {e.problem_id for e in raw}
    u_keys = {key(i) for i in u_ids}
    test_keys = {key(p.id) for p in tests}
    report = {
        "requested": size,
        "size": len(data),
        "distinct_problems": len({e.problem_id for e in data}),
        "removed_as_overlap": removed,
        "overlap_u": sum(e.problem_id in u_ids for e in data),
        "overlap_u_twins": sum(key(e.problem_id) in u_keys for e in data),
        "overlap_eval": sum(key(e.problem_id) in test_keys for e in data),
    }
    artifacts.write_json(cfg.run_dir / "fresh.json", report)
    artifacts.write_parquet(path, examples_to_records(data))
    return data


def kept_examples(run_dir: Path, rounds: list[int]) -> list[Example]:
    """The kept chains of ``rounds`` as training examples (the plain prompt, never a hint)."""
    data = []
    for j in rounds:
        for r in artifacts.read_parquet(round_dir(run_dir, j) / "kept.parquet"):
            if r["problem_id"]:  # an empty kept set is stored as one placeholder row
                data.append(
                    Example(r["prompt"], r["text"], r["problem_id"], r["difficulty"], "selfplay")
                )
    return data


def mix_raw(cfg: RunConfig, k: int, data: list[Example], raw: list[Example]) -> list[Example]:
    """``data`` plus ``train.raw_mix`` (as a fraction of the result) of examples drawn from U.
    Nothing kept stays nothing: the mix is a share of a self-play set, never a set of its own."""
    if cfg.train.raw_mix <= 0 or not raw or not data:
        return data
    n_raw = round(cfg.train.raw_mix / (1 - cfg.train.raw_mix) * len(data))
    rng = random.Random(f"mix-{cfg.seed}-{k}")
    return data + [raw[rng.randrange(len(raw))] for _ in range(n_raw)]


def training_set(
    cfg: RunConfig,
    task: Task,
    k: int,
    raw: list[Example],
    u_tokens: int,
    tok,
    tests: list[Problem],
) -> list[Example]:
    """Round ``k``'s training examples for the configured ``loop.data_source`` (``tests``: the
    evaluation set, which a fresh corpus must not overlap)."""
    if cfg.loop.data_source == "raw-repeat":
        return raw_stream_slice(cfg, k, raw, tok, u_tokens)
    if cfg.loop.data_source == "raw-fresh":
        return raw_stream_slice(cfg, k, fresh_corpus(cfg, task, raw, tests), tok, u_tokens)
    rounds = list(range(1, k + 1)) if cfg.train.data == "accumulate" else [k]
    return mix_raw(cfg, k, kept_examples(cfg.run_dir, rounds), raw)


def tokens_per_step(cfg: RunConfig, u: dict) -> float:
    """Supervised tokens per optimizer step: ``train.batch_size`` examples of U's mean length."""
    return cfg.train.batch_size * u["supervised_tokens"] / max(u["examples"], 1)


def unique_tokens(tok, examples: list[Example]) -> int:
    """Supervised tokens of the distinct (prompt, completion) pairs among ``examples``."""
    distinct = {(e.prompt, e.completion): e for e in examples}.values()
    return sum(count_supervised_tokens(tok, list(distinct)))
