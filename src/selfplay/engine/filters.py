"""Filters: decide which generated samples become training data, and record why each is not.

Each sample is a dict with at least ``problem_id``, ``text``, ``status``, ``valid`` and
``first_bad_step``/``steps``. ``filter_samples`` sets ``kept`` and ``filter_reason`` on every sample;
a rejected sample keeps its reason (``wrong answer``, ``invalid step 2: dropped carry``,
``unchecked step 1: no claim the verifier could check``, ``duplicate``, ``over per-problem cap``).
"""

from __future__ import annotations

from collections import Counter

from selfplay.config import FilterConfig


def normalize_chain(text: str) -> str:
    """Chains that differ only in whitespace are the same chain."""
    return "".join(text.split())


UNCHECKED = "unchecked"
"""The ``why`` of a step that is ok only because it holds nothing the verifier can check."""


def verification_reason(
    sample: dict, require_valid_steps: bool, require_checked_steps: bool = False
) -> str | None:
    """Why the verifier rejects a sample, or None if it passes."""
    if sample["status"] != "correct":
        return f"{sample['status']}: {sample.get('why') or 'rejected'}"
    if require_valid_steps or require_checked_steps:
        steps = sample.get("steps") or []
        if not steps:
            return "no chain: answer only"
        for i, step in enumerate(steps):
            if require_valid_steps and not step["ok"]:
                return f"invalid step {i + 1}: {step['why']}"
            if require_checked_steps and step["ok"] and step["why"] == UNCHECKED:
                return f"unchecked step {i + 1}: no claim the verifier could check"
    return None


def normalize_answer(a: str | None) -> str | None:
    """Answers compare without leading zeros; an empty answer is no answer."""
    return None if not a else (a.lstrip("0") or "0")


def majority_answer(answers: list[str | None], min_votes: int = 1) -> str | None:
    """The most common non-empty answer (ties: the one seen first), if it has ``min_votes``."""
    votes = Counter(a for a in answers if a)
    best = max(votes.values(), default=0)
    if best < max(min_votes, 1):
        return None
    return next(a for a in answers if a and votes[a] == best)


def majority_answers(samples: list[dict], min_votes: int) -> dict[str, str | None]:
    """Per problem, the answer most of its samples agree on."""
    by_problem: dict[str, list] = {}
    for s in samples:
        by_problem.setdefault(s["problem_id"], []).append(normalize_answer(s.get("answer")))
    return {pid: majority_answer(answers, min_votes) for pid, answers in by_problem.items()}


def filter_samples(samples: list[dict], cfg: FilterConfig) -> list[dict]:
    """Mark every sample ``kept`` or not, with ``filter_reason``; return the kept ones in order."""
    seen: dict[str, set[str]] = {}
    count: dict[str, int] = {}
    kept = []
    winners = majority_answers(samples, cfg.majority_min_votes) if cfg.majority else {}
    for s in samples:
        reason = (
            verification_reason(s, cfg.require_valid_steps, cfg.require_checked_steps)
            if cfg.verified
            else None
        )
        if reason is None and cfg.majority:
            win = winners[s["problem_id"]]
            if win is None:
                reason = "no majority"
            elif normalize_answer(s.get("answer")) != win:
                reason = "not the majority answer"
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
    if cfg.balance_difficulty and kept:
        kept = _balance(kept)
    return kept


def _balance(kept: list[dict]) -> list[dict]:
    """Keep at most as many chains per difficulty as the least-represented difficulty has."""
    per: dict[int, int] = {}
    for s in kept:
        per[s["difficulty"]] = per.get(s["difficulty"], 0) + 1
    cap, seen, out = min(per.values()), {}, []
    for s in kept:
        seen[s["difficulty"]] = seen.get(s["difficulty"], 0) + 1
        if seen[s["difficulty"]] > cap:
            s["kept"], s["filter_reason"] = False, "over difficulty balance"
        else:
            out.append(s)
    return out


def reason_kind(filter_reason: str) -> str:
    """A reason without its particulars, for counting: ``'invalid step 2: wrong sum: 7+8=16, not 15'``
    -> ``'invalid step: wrong sum'``; ``'wrong: wrong answer'`` -> ``'wrong answer'``.
    """
    head, _, rest = filter_reason.partition(": ")
    if head.startswith("invalid step"):
        return "invalid step: " + rest.split(":")[0]
    if head.startswith("unchecked step"):
        return "unchecked step"
    if head in ("wrong", "unparseable", "timeout", "error"):
        return head if head != "wrong" else "wrong answer"
    return filter_reason


NOT_CHOSEN = "another sample of its problem is the label"


def label_answer(text: str) -> str:
    """The answer a label gives, for votes and the length check: the text after its last ``|``
    (a chain's last step; an answer-only completion whole), stripped.

    >>> label_answer("74*6=282|74*03=0141|282+0141=2961|2961 "), label_answer("51150")
    ('2961', '51150')
    """
    return text.strip().split("|")[-1]


def choose_labels(
    samples: list[dict],
    cfg: FilterConfig,
    widths: dict[str, int | None] | None = None,
) -> list[dict]:
    """One label per problem (the climb's filter): every sample of a problem (of every model of a
    committee) is a candidate; the label is the first that passes ``filters.verified``, else with
    ``filters.majority`` the first whose answer (the text after its last ``|``) has the most votes
    if it has ``majority_min_votes``, else (no filter) the first. With ``widths`` (problem id ->
    the answer width its prompt implies, or None) a label of another width is not kept: a
    label-free length check. Sets ``label`` (the chosen sample), ``kept`` and ``filter_reason`` on
    every sample; returns the kept labels in problem order."""
    by_problem: dict[str, list[dict]] = {}
    for s in samples:
        by_problem.setdefault(s["problem_id"], []).append(s)
    kept = []
    for pid, group in by_problem.items():
        answers = [label_answer(s["text"]) for s in group]
        if cfg.verified:
            ok = [
                verification_reason(s, cfg.require_valid_steps, cfg.require_checked_steps) is None
                for s in group
            ]
            j = next((i for i, o in enumerate(ok) if o), None)
            reason = "kept" if j is not None else "not verified"
        elif cfg.majority:
            best, count = Counter(answers).most_common(1)[0]
            j = answers.index(best) if count >= cfg.majority_min_votes else None
            reason = "kept" if j is not None else f"no majority ({count} of {len(answers)})"
        else:
            j, reason = 0, "kept"
        pick = 0 if j is None else j
        width = (widths or {}).get(pid)
        if j is not None and width is not None and len(answers[pick]) != width:
            j, reason = None, f"length: {len(answers[pick])} digits, not {width}"
        for i, s in enumerate(group):
            s["label"] = i == pick
            s["kept"] = i == pick and j is not None
            s["filter_reason"] = reason if i == pick else NOT_CHOSEN
        if j is not None:
            kept.append(group[pick])
    return kept
