"""How a round spends its samples: the practice pool (with an optional curriculum), extra samples
for hard problems (difficulty-aware, as in DART-Math), and rationalization (STaR).

All of it is a deterministic function of the config, the round and earlier rounds' artifacts, so a
resumed run draws the same problems and seeds.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict

from selfplay.config import RunConfig
from selfplay.generation import backend_options, get_backend
from selfplay.tasks import Problem, Task, verify_all
from selfplay.tasks.base import split_of
from selfplay.verify import Verdict


def curriculum_frontier(cfg: RunConfig, pass_rates: list[dict[str, float]]) -> int:
    """The hardest pool difficulty practised in the next round.

    It starts at the first pool difficulty above the raw corpus's hardest (or the hardest pool
    difficulty) and moves one pool step up whenever the previous round's pass rate at the frontier
    reached ``loop.curriculum_threshold``. ``pass_rates``: one ``{difficulty: rate}`` per earlier round.
    """
    pool = sorted(cfg.loop.pool_difficulties)
    above = [d for d in pool if d > max(cfg.raw.difficulties)]
    frontier = above[0] if above else pool[-1]
    for rates in pass_rates:
        if rates.get(str(frontier), 0.0) >= cfg.loop.curriculum_threshold and frontier != pool[-1]:
            frontier = pool[pool.index(frontier) + 1]
    return frontier


def pool_counts(cfg: RunConfig, frontier: int | None) -> dict[int, int]:
    """Problems per difficulty in a round: spread evenly, or (curriculum) most at the frontier and
    ``curriculum_easy_mix`` of them spread over the easier pool difficulties, so they are not forgotten."""
    n = cfg.loop.problems_per_iter
    if frontier is None:
        ds = cfg.loop.pool_difficulties
        return {d: n // len(ds) + (i < n % len(ds)) for i, d in enumerate(ds)}
    easier = [d for d in cfg.loop.pool_difficulties if d < frontier]
    n_easy = round(cfg.loop.curriculum_easy_mix * n) if easier else 0
    counts = {d: n_easy // len(easier) + (i < n_easy % len(easier)) for i, d in enumerate(easier)}
    counts[frontier] = n - n_easy
    return counts


def test_problems(task: Task, cfg: RunConfig) -> list[Problem]:
    """The fixed held-out test set: ``eval.n_per_difficulty`` test-split problems per difficulty
    (all there are where there are fewer), the same for every seed, arm and checkpoint."""
    rng = random.Random("test")  # not the run's seed: every run of a bench sees the same problems
    out = []
    for d in cfg.eval.difficulties:
        out += task.sample_problems("test", d, cfg.eval.n_per_difficulty, rng)
    return out


def evaluation_keys(task: Task, cfg: RunConfig, tests: list[Problem] | None = None) -> set[str]:
    """The overlap keys (:func:`selfplay.tasks.generated.overlap_key`, or the task's own) of the
    run's evaluation set (``tests`` where the caller holds it, else drawn again): a problem with
    one of them is an evaluation problem or its twin."""
    from selfplay.tasks.generated import overlap_key_of

    key = overlap_key_of(task)
    return {key(p.id) for p in (test_problems(task, cfg) if tests is None else tests)}


def draw_pool(
    task: Task,
    cfg: RunConfig,
    k: int,
    frontier: int | None = None,
    draw: int = 0,
    exclude: set[str] = frozenset(),
) -> list[Problem]:
    """The round's practice problems from the train split. ``draw`` > 0 is an extra draw of the
    same size (``loop.fill_budget``); problems in ``exclude`` (already drawn) are left out, and
    so is every evaluation problem's twin (``b+a`` of a test problem ``a+b`` is in the train
    split): the exclusion a fresh corpus has (:func:`selfplay.engine.sources.fresh_corpus`), so
    no arm practises the evaluation set. The places the twins took are drawn again from a stream
    of their own, so every other problem is the one the draw gives without the exclusion."""
    from selfplay.tasks.generated import overlap_key_of

    key = overlap_key_of(task)
    banned = evaluation_keys(task, cfg)
    name = f"pool-{cfg.seed}-{k}" + (f"-{draw}" if draw else "")
    rng = random.Random(name)
    problems = []
    for d, n in pool_counts(cfg, frontier).items():
        sample = task.sample_problems("train", d, n, rng)
        held = {p.id: p for p in sample if key(p.id) not in banned}
        if len(held) < len(sample) == n:  # twins left out of a difficulty that has more
            refill = random.Random(f"{name}-{d}-refill")
            for _ in range(20):
                before = len(held)
                for p in task.sample_problems("train", d, n, refill):
                    if len(held) < n and p.id not in held and key(p.id) not in banned:
                        held[p.id] = p
                if len(held) == n or len(held) == before:
                    break
        problems += [p for p in held.values() if p.id not in exclude]
    return problems


def is_validation(problem_id: str) -> bool:
    """A fixed hash-based quarter of the train split, set aside for the frontier's probe."""
    return split_of("validation:" + problem_id, 0.25) == "test"


def draw_problems(
    task: Task,
    difficulty: int,
    n: int,
    rng: random.Random,
    validation: bool,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> list[Problem]:
    """Up to ``n`` distinct train-split problems on the validation side or the practice side;
    none whose overlap key is in ``exclude`` (:func:`evaluation_keys`: no evaluation twin)."""
    from selfplay.tasks.generated import overlap_key_of

    key = overlap_key_of(task)
    out: dict[str, Problem] = {}
    for _ in range(20):
        before = len(out)
        for p in task.sample_problems("train", difficulty, 2 * n, rng):
            if is_validation(p.id) == validation and p.id not in out and key(p.id) not in exclude:
                out[p.id] = p
        if len(out) >= n or len(out) == before:  # enough, or the difficulty has no more
            break
    return list(out.values())[:n]


def completion_budget(task: Task, cfg: RunConfig, difficulty: int) -> int:
    """``max_new_tokens`` for problems up to ``difficulty``: ``generation.max_new_tokens`` if set;
    for answer-only data (``raw.answer_only_rate: 1``) the task's longest answer plus its stop
    token, where the task knows it; else the task's bound on any correct chain."""
    if cfg.generation.max_new_tokens:
        return cfg.generation.max_new_tokens
    answer_tokens = getattr(task, "answer_tokens", None)
    if cfg.raw.answer_only_rate >= 1.0 and answer_tokens is not None:
        return answer_tokens(difficulty)
    return task.max_new_tokens(difficulty)


VERDICT_FIELDS = ("status", "answer", "valid", "why", "first_bad_step", "steps")
"""The fields of a sample record that its verdict fills (``None`` until verified)."""


def verdict_fields(v: Verdict) -> dict:
    return {
        "status": v.status,
        "answer": v.answer,
        "valid": v.valid,
        "why": v.why,
        "first_bad_step": v.first_bad_step,
        "steps": [asdict(s) for s in v.steps],
    }


def sample_record(
    p: Problem, c, v: Verdict | None, sample_idx: int, origin: str, generation_prompt: str
) -> dict:
    """One generated chain with its verdict (or, before verification, ``None`` in its fields).
    ``prompt`` is always the plain problem prompt: it is what the chain is trained on;
    ``generation_prompt`` is what the model actually saw (e.g. with a hint)."""
    record = {
        "problem_id": p.id,
        "difficulty": p.difficulty,
        "prompt": p.prompt,
        "gold": p.answer,
        "sample_idx": sample_idx,
        "origin": origin,
        "generation_prompt": generation_prompt,
        "text": c.text,
        "tokens": c.tokens,
        "finish_reason": c.finish_reason,
    }
    return record | (verdict_fields(v) if v is not None else dict.fromkeys(VERDICT_FIELDS))


def needs_verdicts(cfg: RunConfig) -> bool:
    """Whether the round's sampling decides what to sample next by verdicts (difficulty-aware
    resampling, rationalization, filling the budget), and so verifies as it generates."""
    g = cfg.generation
    return g.adaptive_max_n > g.n or cfg.loop.rationalize or cfg.loop.fill_budget


def verify_samples(task: Task, samples: list[dict], problems: list[Problem]) -> int:
    """Fill in the verdict of every sample that has none (in place), against its problem among
    ``problems``; returns how many were verified."""
    todo = [s for s in samples if s["status"] is None]
    by_id = {p.id: p for p in problems}
    verdicts = verify_all(task, [(by_id[s["problem_id"]], s["text"]) for s in todo])
    for s, v in zip(todo, verdicts, strict=True):
        s.update(verdict_fields(v))
    return len(todo)


def generate_samples(
    model,
    tok,
    task: Task,
    problems: list[Problem],
    cfg: RunConfig,
    seed: int,
    progress=True,
    verify: bool = True,
    greedy: bool = False,
) -> tuple[list[dict], dict]:
    """n chains per problem; then, if configured, more samples for problems with too few verified
    chains (DART), then hinted retries of problems with none (STaR). With ``verify`` each chain is
    verified as it comes (those strategies need it); without, the verdict fields stay ``None``.
    ``greedy``: one greedy chain per problem (the frontier's labels with ``generation.n: 1``)."""
    generate = get_backend(cfg.generation.backend)
    g = cfg.generation
    max_new = completion_budget(task, cfg, max(p.difficulty for p in problems))
    common = dict(
        greedy=greedy,
        temperature=g.temperature,
        top_p=g.top_p,
        max_new_tokens=max_new,
        batch_size=g.batch_size,
        **backend_options(cfg),
    )
    samples: list[dict] = []
    counts = {"sampled": 0, "adaptive": 0, "rationalized": 0}
    t_gen = t_ver = 0.0
    n_done = {p.id: 0 for p in problems}

    def run(batch: list[Problem], prompts: list[str], n: int, seed_: int, origin: str, desc: str):
        nonlocal t_gen, t_ver
        t0 = time.perf_counter()
        comps = generate(
            model, tok, prompts, n=n, seed=seed_, progress=desc if progress else None, **common
        )
        t1 = time.perf_counter()
        if verify:
            verdicts = verify_all(task, [(batch[c.prompt_idx], c.text) for c in comps])
        else:
            verdicts = [None] * len(comps)
        for c, v in zip(comps, verdicts, strict=True):
            p = batch[c.prompt_idx]
            samples.append(
                sample_record(
                    p,
                    c,
                    v,
                    n_done[p.id] + c.sample_idx,
                    origin,
                    prompts[c.prompt_idx],
                )
            )
        for p in batch:
            n_done[p.id] += n
        counts[origin] += len(comps)
        t_gen += t1 - t0
        t_ver += time.perf_counter() - t1

    run(problems, [p.prompt for p in problems], 1 if greedy else g.n, seed, "sampled", "generate")

    # Difficulty-aware sampling: keep sampling the problems that have fewer than `adaptive_target`
    # valid chains, n at a time, until they do or reach `adaptive_max_n` samples.
    extra_pass = 0
    while g.adaptive_max_n > g.n:
        good = {}
        for s in samples:
            good[s["problem_id"]] = good.get(s["problem_id"], 0) + bool(s["valid"])
        todo = [
            p
            for p in problems
            if good.get(p.id, 0) < g.adaptive_target and n_done[p.id] < g.adaptive_max_n
        ]
        if not todo:
            break
        extra_pass += 1
        run(
            todo,
            [p.prompt for p in todo],
            min(g.n, g.adaptive_max_n - n_done[todo[0].id]),
            seed + 7919 * extra_pass,
            "adaptive",
            f"resample {extra_pass}",
        )

    # Rationalization: retry problems with no correct sample with the answer as a hint; a chain that
    # verifies is trained on with the plain prompt (the hint never reaches the training text).
    if cfg.loop.rationalize:
        solved = {s["problem_id"] for s in samples if s["status"] == "correct"}
        failed = [p for p in problems if p.id not in solved]
        if failed:
            run(
                failed,
                [task.hint_prompt(p) for p in failed],
                g.n,
                seed + 104_729,
                "rationalized",
                "rationalize",
            )

    stats = {
        "problems": len(problems),
        "samples": len(samples),
        "samples_by_origin": counts,
        "generated_tokens": sum(s["tokens"] for s in samples),
        "truncated": sum(s["finish_reason"] == "length" for s in samples),
        "seconds": t_gen,
        "verify_seconds": t_ver,
        "tokens_per_second": sum(s["tokens"] for s in samples) / max(t_gen, 1e-9),
    }
    return samples, stats
