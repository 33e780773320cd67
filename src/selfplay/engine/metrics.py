"""The numbers a stage reports: generation yield, filter decisions and evaluation aggregates
(the cost carried from round to round is :mod:`selfplay.engine.ledger`'s)."""

from __future__ import annotations

from collections import Counter

from selfplay.config import RunConfig
from selfplay.engine.filters import normalize_chain, reason_kind
from selfplay.stats import binomial_se
from selfplay.verify import STATUSES


def rate(samples: list[dict], pred) -> float:
    return sum(map(pred, samples)) / len(samples) if samples else 0.0


def by_difficulty(samples: list[dict], pred) -> dict[str, float]:
    ds = sorted({s["difficulty"] for s in samples})
    return {str(d): rate([s for s in samples if s["difficulty"] == d], pred) for d in ds}


def diversity(samples: list[dict]) -> dict:
    """Distinct correct chains and distinct answers per practice problem (means over problems)."""
    chains: dict[str, set] = {}
    answers: dict[str, set] = {}
    for s in samples:
        chains.setdefault(s["problem_id"], set())
        answers.setdefault(s["problem_id"], set()).add(s["answer"])
        if s["valid"]:
            chains[s["problem_id"]].add(normalize_chain(s["text"]))
    n = max(len(chains), 1)
    return {
        "distinct_correct_chains_per_problem": sum(len(v) for v in chains.values()) / n,
        "unique_answers_per_problem": sum(len(v) for v in answers.values()) / n,
    }


def merge_generation_stats(a: dict, b: dict) -> dict:
    """The stats of two generation calls of one round, added up."""
    out = dict(a)
    for key in (
        "problems",
        "samples",
        "generated_tokens",
        "truncated",
        "seconds",
        "verify_seconds",
    ):
        out[key] = a[key] + b[key]
    out["samples_by_origin"] = {
        o: a["samples_by_origin"].get(o, 0) + b["samples_by_origin"].get(o, 0)
        for o in {*a["samples_by_origin"], *b["samples_by_origin"]}
    }
    out["tokens_per_second"] = out["generated_tokens"] / max(out["seconds"], 1e-9)
    return out


def generation_metrics(samples: list[dict], stats: dict) -> dict:
    """A round's ``generate`` block: the generation stats plus pass/valid rates of the chains."""
    return {
        **stats,
        "pass_rate": rate(samples, lambda s: s["status"] == "correct"),
        "valid_rate": rate(samples, lambda s: s["valid"]),
        "pass_rate_by_difficulty": by_difficulty(samples, lambda s: s["status"] == "correct"),
        "status_counts": {st: sum(s["status"] == st for s in samples) for st in STATUSES},
        **diversity(samples),
    }


def filter_metrics(samples: list[dict]) -> dict:
    """A round's ``filter`` block: what was kept, by difficulty, and why the rest was not."""
    kept = [s for s in samples if s["kept"]]
    reasons = Counter(reason_kind(s["filter_reason"]) for s in samples if not s["kept"])
    return {
        "kept": len(kept),
        "kept_problems": len({s["problem_id"] for s in kept}),
        "kept_by_difficulty": {
            str(d): sum(s["difficulty"] == d for s in kept)
            for d in sorted({s["difficulty"] for s in samples})
        },
        "rejected": dict(reasons),
    }


def eval_block(cfg: RunConfig, metrics: dict) -> dict:
    """Evaluation metrics plus the accuracy inside U's difficulties (*in*) and above (*harder*):
    micro-averages over the problems, with their counts and binomial standard errors."""
    acc, n = metrics["accuracy"], metrics.get("n", {})
    top = max(cfg.raw.difficulties)
    out = dict(metrics)
    for name, keep in (("in", lambda d: d <= top), ("harder", lambda d: d > top)):
        ds = [str(d) for d in cfg.eval.difficulties if keep(d) and str(d) in acc]
        count = sum(n.get(d, 1) for d in ds)
        mean = sum(acc[d] * n.get(d, 1) for d in ds) / count if ds else None
        out[f"accuracy_{name}"] = mean
        out[f"n_{name}"] = count if ds else 0
        out[f"accuracy_{name}_se"] = binomial_se(mean, count) if ds else None
    return out
