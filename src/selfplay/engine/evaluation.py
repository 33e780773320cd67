"""Evaluation: greedy accuracy per difficulty, pass@k (unbiased), maj@k and chain validity; every
aggregate is a micro-average over problems.

Uses the same generator and verifier as the loop, on the task's held-out test split.
"""

from __future__ import annotations

from math import comb

from selfplay.config import RunConfig
from selfplay.engine.filters import label_answer, majority_answer, normalize_answer
from selfplay.engine.sampling import completion_budget
from selfplay.engine.sampling import test_problems as test_problems  # the evaluation set
from selfplay.generation import backend_options, get_backend
from selfplay.tasks import Problem, Task, verify_all


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al., 2021).

    >>> pass_at_k(4, 0, 1), pass_at_k(4, 4, 2), round(pass_at_k(4, 1, 2), 3)
    (0.0, 1.0, 0.5)
    """
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def solved_frontier(accuracy: dict[int, float], threshold: float, lowest: int = 1) -> int:
    """The largest ``d`` such that every difficulty ``lowest..d`` is solved (``lowest - 1`` if
    ``lowest`` is not; ``lowest``: the task's easiest difficulty).

    >>> solved_frontier({1: 1.0, 2: 0.95, 3: 0.5, 4: 0.97}, 0.9)
    2
    >>> solved_frontier({2: 1.0, 3: 0.2}, 0.9, lowest=2)
    2
    """
    d = lowest - 1
    while d + 1 in accuracy and accuracy[d + 1] >= threshold:
        d += 1
    return d


def _by_difficulty(problems: list[Problem]) -> list[tuple[int, list[Problem]]]:
    """``problems`` grouped by difficulty, easiest first (one generation call per group)."""
    by_d: dict[int, list[Problem]] = {}
    for p in problems:
        by_d.setdefault(p.difficulty, []).append(p)
    return sorted(by_d.items())


def accuracy_by_difficulty(
    model, tok, task: Task, problems: list[Problem], cfg: RunConfig, seed: int
) -> dict[int, float]:
    """Greedy accuracy per difficulty (the frontier's probe), one generation call per difficulty
    at that difficulty's completion budget, through the configured backend."""
    generate = get_backend(cfg.generation.backend)
    acc = {}
    for d, ps in _by_difficulty(problems):
        comps = generate(
            model, tok, [p.prompt for p in ps], greedy=True, seed=seed,
            max_new_tokens=completion_budget(task, cfg, d),
            batch_size=cfg.generation.batch_size, **backend_options(cfg),
        )  # fmt: skip
        verdicts = verify_all(task, [(ps[c.prompt_idx], c.text) for c in comps])
        acc[d] = sum(v.status == "correct" for v in verdicts) / len(ps)
    return acc


def agreement_by_difficulty(
    models: list,
    task: Task,
    problems: list[Problem],
    cfg: RunConfig,
    seed: int,
    samples: int,
    widths: dict[str, int | None] | None = None,
) -> tuple[dict[int, float], dict[int, float], int]:
    """The label-free probe: per difficulty, the share of ``problems`` whose answers all agree.

    A problem's answers are the greedy answer of each ``(model, tokenizer)`` in ``models`` (the
    run's model first, then a committee's others) and ``samples`` sampled answers of the first
    (``generation.temperature``); they agree when every one is the same non-empty answer
    (:func:`selfplay.engine.filters.label_answer`) and, with ``widths`` (problem id -> the width
    its prompt implies), of that width. No gold answer is read for that. Returns the agreement,
    the verifier's accuracy of the first model's greedy answers (for the report only, never for a
    decision), and the tokens generated."""
    generate = get_backend(cfg.generation.backend)
    agree, acc, tokens = {}, {}, 0
    for d, ps in _by_difficulty(problems):
        budget = completion_budget(task, cfg, d)
        answers: list[list[str]] = [[] for _ in ps]
        greedy_texts = [""] * len(ps)
        for j, (model, tok) in enumerate(models):
            comps = generate(
                model, tok, [p.prompt for p in ps], greedy=True, seed=seed, max_new_tokens=budget,
                batch_size=cfg.generation.batch_size, **backend_options(cfg),
            )  # fmt: skip
            for c in comps:
                answers[c.prompt_idx].append(label_answer(c.text))
                if j == 0:  # the run's model: its greedy answers are the ones reported
                    greedy_texts[c.prompt_idx] = c.text
                tokens += c.tokens
        if samples > 0:
            model, tok = models[0]
            comps = generate(
                model, tok, [p.prompt for p in ps], n=samples, greedy=False, seed=seed,
                temperature=cfg.generation.temperature, top_p=cfg.generation.top_p,
                max_new_tokens=budget, batch_size=cfg.generation.batch_size,
                **backend_options(cfg),
            )  # fmt: skip
            for c in comps:
                answers[c.prompt_idx].append(label_answer(c.text))
                tokens += c.tokens
        agreed = 0
        for p, got in zip(ps, answers, strict=True):
            width = (widths or {}).get(p.id)
            same = bool(got) and got[0] != "" and all(a == got[0] for a in got)
            agreed += same and (width is None or len(got[0]) == width)
        agree[d] = agreed / len(ps)
        verdicts = verify_all(task, [(p, t) for p, t in zip(ps, greedy_texts, strict=True)])
        acc[d] = sum(v.status == "correct" for v in verdicts) / len(ps)
    return agree, acc, tokens


def subset(problems: list[Problem], per_difficulty: int | None) -> list[Problem]:
    """The first ``per_difficulty`` problems of each difficulty (``None``: all), for checkpoints
    between the first and the last, which need a trend rather than a verdict."""
    if per_difficulty is None:
        return problems
    seen: dict[int, int] = {}
    out = []
    for p in problems:
        seen[p.difficulty] = seen.get(p.difficulty, 0) + 1
        if seen[p.difficulty] <= per_difficulty:
            out.append(p)
    return out


def evaluate(
    model,
    tokenizer,
    task: Task,
    problems: list[Problem],
    cfg: RunConfig,
    *,
    seed: int,
    progress: bool = True,
    samples: list[dict] | None = None,
) -> dict:
    """Metrics keyed by name, each a mapping ``difficulty -> value`` plus ``all``. With
    ``samples`` (a list), every greedy completion is appended to it as ``(problem, completion,
    verdict)``."""
    generate = get_backend(cfg.generation.backend)
    max_new = completion_budget(task, cfg, max(p.difficulty for p in problems))
    prompts = [p.prompt for p in problems]
    common = dict(
        max_new_tokens=max_new, batch_size=cfg.generation.batch_size, **backend_options(cfg)
    )
    greedy = generate(
        model,
        tokenizer,
        prompts,
        greedy=True,
        seed=seed,
        progress="eval greedy" if progress else None,
        **common,
    )
    per: dict[int, dict[str, list[float]]] = {}
    verdicts = verify_all(task, [(problems[c.prompt_idx], c.text) for c in greedy])
    for comp, v in zip(greedy, verdicts, strict=True):
        p = problems[comp.prompt_idx]
        if samples is not None:
            samples.append((p, comp, v))
        row = per.setdefault(p.difficulty, {})
        row.setdefault("accuracy", []).append(float(v.status == "correct"))
        row.setdefault("valid", []).append(float(v.valid))
        row.setdefault("truncated", []).append(float(comp.finish_reason == "length"))
    k = cfg.eval.k
    if k > 0:
        sampled = generate(
            model,
            tokenizer,
            prompts,
            n=k,
            temperature=cfg.eval.temperature,
            seed=seed + 1,
            progress="eval sample" if progress else None,
            **common,
        )
        all_verdicts = verify_all(task, [(problems[c.prompt_idx], c.text) for c in sampled])
        by_prompt: dict[int, list] = {}
        for comp, v in zip(sampled, all_verdicts, strict=True):
            by_prompt.setdefault(comp.prompt_idx, []).append(v)
        for i, verdicts in by_prompt.items():
            p = problems[i]
            c = sum(v.status == "correct" for v in verdicts)
            row = per[p.difficulty]
            row.setdefault("pass@1", []).append(pass_at_k(k, c, 1))
            row.setdefault(f"pass@{k}", []).append(pass_at_k(k, c, k))
            maj = majority_answer([normalize_answer(v.answer) for v in verdicts])
            row.setdefault(f"maj@{k}", []).append(
                float(maj is not None and maj == normalize_answer(p.answer))
            )
    metrics: dict[str, dict] = {}
    for d in sorted(per):
        for name, values in per[d].items():
            metrics.setdefault(name, {})[str(d)] = sum(values) / len(values)
    for name, by_d in metrics.items():
        # The micro-average: every problem counts once, whatever its difficulty.
        values = [v for d in per for v in per[d][name]]
        by_d["all"] = sum(values) / len(values)
    metrics["n"] = {str(d): len(per[d]["accuracy"]) for d in sorted(per)}
    metrics["n"]["all"] = sum(metrics["n"].values())
    return metrics
