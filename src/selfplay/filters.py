"""Filters: decide which generated samples become training data, and record why each is not.

Each sample is a dict with at least ``problem_id``, ``text``, ``status``, ``valid`` and
``first_bad_step``/``steps``. ``filter_samples`` sets ``kept`` and ``filter_reason`` on every sample;
a rejected sample keeps its reason (``wrong answer``, ``invalid step 2: dropped carry``,
``duplicate``, ``over per-problem cap``).
"""

from __future__ import annotations

from selfplay.config import FilterConfig


def normalize_chain(text: str) -> str:
    """Chains that differ only in whitespace are the same chain."""
    return "".join(text.split())


def verification_reason(sample: dict, require_valid_steps: bool) -> str | None:
    """Why the verifier rejects a sample, or None if it passes."""
    if sample["status"] != "correct":
        return f"{sample['status']}: {sample.get('why') or 'rejected'}"
    if require_valid_steps:
        steps = sample.get("steps") or []
        if not steps:
            return "no chain: answer only"
        for i, step in enumerate(steps):
            if not step["ok"]:
                return f"invalid step {i + 1}: {step['why']}"
    return None


def filter_samples(samples: list[dict], cfg: FilterConfig) -> list[dict]:
    """Mark every sample ``kept`` or not, with ``filter_reason``; return the kept ones in order."""
    seen: dict[str, set[str]] = {}
    count: dict[str, int] = {}
    kept = []
    for s in samples:
        reason = verification_reason(s, cfg.require_valid_steps) if cfg.verified else None
        key = normalize_chain(s["text"])
        pid = s["problem_id"]
        if reason is None and cfg.dedup and key in seen.get(pid, ()):
            reason = "duplicate"
        if reason is None and cfg.max_per_problem and count.get(pid, 0) >= cfg.max_per_problem:
            reason = "over per-problem cap"
        s["kept"] = reason is None
        s["filter_reason"] = "kept" if reason is None else reason
        if reason is None:
            seen.setdefault(pid, set()).add(key)
            count[pid] = count.get(pid, 0) + 1
            kept.append(s)
    return kept
