"""Filtering generated samples, and the evaluation metrics pass@k and maj@k."""

from __future__ import annotations

from dataclasses import asdict
from itertools import combinations

import pytest

from selfplay.config import FilterConfig
from selfplay.engine.evaluation import majority_answer, pass_at_k
from selfplay.engine.filters import (
    filter_samples,
    normalize_chain,
    reason_kind,
    verification_reason,
)
from selfplay.tasks.arith import ArithTask, verify_arith

TASK = ArithTask(["add", "mul"])
P = TASK.make_problem(4729, "+", 386)
Q = TASK.make_problem(47, "*", 36)
GOLD_P = TASK.gold_chain(P)
GOLD_Q = TASK.gold_chain(Q)


def sample(problem, text: str) -> dict:
    """A sample as the loop records it: the verdict's fields next to the text."""
    v = verify_arith(problem, text)
    return {
        "problem_id": problem.id,
        "text": text,
        "status": v.status,
        "why": v.why,
        "answer": v.answer,
        "valid": v.valid,
        "first_bad_step": v.first_bad_step,
        "steps": [asdict(s) for s in v.steps],
    }


def reasons(samples: list[dict]) -> list[str]:
    return [s["filter_reason"] for s in samples]


DROPPED = "9+6=15 c1|2+8+0=10 c1|7+3+1=11 c1|4+0+1=5 c0|5105"
RIGHT_ANSWER_BAD_STEP = "9+6=15 c1|2+8+0=10 c1|7+3+1=11 c1|4+0+1=5 c0|5115"


def test_reason_strings():
    samples = [
        sample(P, GOLD_P),
        sample(P, "9+6=15 c1|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0|5116"),
        sample(P, RIGHT_ANSWER_BAD_STEP),
        sample(P, "5115"),
        sample(P, "no idea"),
        sample(P, " " + GOLD_P.replace("|", " | ") + "\n"),
    ]
    kept = filter_samples(samples, FilterConfig(max_per_problem=0))
    assert kept == [samples[0]]
    assert reasons(samples) == [
        "kept",
        "wrong: wrong answer",
        "invalid step 2: dropped carry",
        "no chain: answer only",
        "unparseable: no final answer (the last segment is not a number)",
        "duplicate",
    ]
    assert [s["kept"] for s in samples] == [True, False, False, False, False, False]


def test_verified_keeps_only_correct_and_valid():
    texts = [GOLD_P, DROPPED, RIGHT_ANSWER_BAD_STEP, "5115", "5105", "", GOLD_P + "|1"]
    samples = [sample(P, t) for t in texts]
    kept = filter_samples(samples, FilterConfig(dedup=False, max_per_problem=0))
    assert [s["text"] for s in kept] == [GOLD_P]
    for s in samples:
        assert s["kept"] == (s["status"] == "correct" and s["valid"])
        assert s["filter_reason"] == "kept" if s["kept"] else s["filter_reason"] != "kept"


def test_answer_only_mode_keeps_right_answers_with_bad_steps():
    samples = [sample(P, t) for t in [GOLD_P, RIGHT_ANSWER_BAD_STEP, "5115", DROPPED]]
    kept = filter_samples(
        samples, FilterConfig(require_valid_steps=False, dedup=False, max_per_problem=0)
    )
    assert [s["text"] for s in kept] == [GOLD_P, RIGHT_ANSWER_BAD_STEP, "5115"]
    assert samples[3]["filter_reason"] == "wrong: wrong answer"


def test_timeout_and_error_reasons():
    timeout = {"problem_id": "x", "text": "a", "status": "timeout", "why": "verifier exceeded 1s"}
    error = {"problem_id": "x", "text": "b", "status": "error", "why": ""}
    filter_samples([timeout, error], FilterConfig())
    assert reasons([timeout, error]) == ["timeout: verifier exceeded 1s", "error: rejected"]


def test_dedup_ignores_whitespace():
    variants = [
        GOLD_P,
        GOLD_P.replace("|", " |"),
        "  " + GOLD_P + "\n",
        GOLD_P.replace("|", "\n|\t"),
    ]
    assert len({normalize_chain(v) for v in variants}) == 1
    samples = [sample(P, v) for v in variants]
    assert all(s["valid"] for s in samples)
    kept = filter_samples(samples, FilterConfig(max_per_problem=0))
    assert kept == [samples[0]]
    assert reasons(samples) == ["kept", "duplicate", "duplicate", "duplicate"]


def test_dedup_is_per_problem():
    # The same text for two problems is not a duplicate across problems.
    a = {"problem_id": "1+1", "text": "2", "status": "correct", "steps": []}
    b = {"problem_id": "0+2", "text": "2", "status": "correct", "steps": []}
    kept = filter_samples([a, b], FilterConfig(verified=False))
    assert kept == [a, b]


def test_dedup_off_keeps_duplicates():
    samples = [sample(P, GOLD_P), sample(P, GOLD_P)]
    kept = filter_samples(samples, FilterConfig(dedup=False, max_per_problem=0))
    assert len(kept) == 2


def test_rejected_samples_keep_their_own_reason_not_duplicate():
    # Only kept chains enter the dedup set: a repeated rejected chain keeps the verifier's reason.
    samples = [
        sample(P, RIGHT_ANSWER_BAD_STEP),
        sample(P, RIGHT_ANSWER_BAD_STEP),
        sample(P, DROPPED),
        sample(P, GOLD_P),
        sample(P, GOLD_P),
    ]
    filter_samples(samples, FilterConfig(max_per_problem=0))
    assert reasons(samples) == [
        "invalid step 2: dropped carry",
        "invalid step 2: dropped carry",
        "wrong: wrong answer",
        "kept",
        "duplicate",
    ]


def _distinct_valid_chains(problem, n: int) -> list[str]:
    # A leading zero on the answer keeps the chain valid but makes it a different chain.
    gold = TASK.gold_chain(problem)
    head, answer = gold.rsplit("|", 1)
    return [f"{head}|{'0' * i}{answer}" for i in range(n)]


@pytest.mark.parametrize("cap", [1, 2, 3])
def test_cap_per_problem(cap):
    samples = [sample(P, t) for t in _distinct_valid_chains(P, 5)]
    samples += [sample(Q, t) for t in _distinct_valid_chains(Q, 5)]
    samples = [
        x for pair in zip(samples[:5], samples[5:], strict=True) for x in pair
    ]  # interleave problems
    assert all(s["valid"] for s in samples)
    kept = filter_samples(samples, FilterConfig(max_per_problem=cap))
    for pid in (P.id, Q.id):
        mine = [s for s in samples if s["problem_id"] == pid]
        assert sum(s["kept"] for s in mine) == cap
        assert [s["filter_reason"] for s in mine] == ["kept"] * cap + ["over per-problem cap"] * (
            5 - cap
        )
    assert len(kept) == 2 * cap


def test_cap_counts_only_kept_samples():
    samples = [sample(P, DROPPED), sample(P, "5115")] + [
        sample(P, t) for t in _distinct_valid_chains(P, 3)
    ]
    kept = filter_samples(samples, FilterConfig(max_per_problem=2))
    assert len(kept) == 2
    assert reasons(samples)[-1] == "over per-problem cap"


def test_no_cap():
    samples = [sample(P, t) for t in _distinct_valid_chains(P, 6)]
    assert len(filter_samples(samples, FilterConfig(max_per_problem=0))) == 6


def test_unverified_keeps_wrong_samples():
    samples = [sample(P, t) for t in [DROPPED, "garbage", "5105", GOLD_P]]
    kept = filter_samples(samples, FilterConfig(verified=False, max_per_problem=0))
    assert kept == samples
    assert reasons(samples) == ["kept"] * 4


def test_unverified_still_dedups_and_caps():
    samples = [sample(P, t) for t in [DROPPED, DROPPED + " ", "garbage", GOLD_P]]
    filter_samples(samples, FilterConfig(verified=False, max_per_problem=2))
    assert reasons(samples) == ["kept", "duplicate", "kept", "over per-problem cap"]


def test_verification_reason_direct():
    s = sample(P, RIGHT_ANSWER_BAD_STEP)
    assert verification_reason(s, require_valid_steps=True) == "invalid step 2: dropped carry"
    assert verification_reason(s, require_valid_steps=False) is None
    assert verification_reason(sample(P, GOLD_P), True) is None


def gsm8k_sample(text: str) -> dict:
    from selfplay.tasks.gsm8k import GSM8KTask, verify_gsm8k

    problem = GSM8KTask.problem_from_record({"question": "How many jars?", "answer": "#### 72"}, 0)
    v = verify_gsm8k(problem, text)
    return {
        "problem_id": problem.id,
        "text": text,
        "status": v.status,
        "why": v.why,
        "answer": v.answer,
        "valid": v.valid,
        "first_bad_step": v.first_bad_step,
        "steps": [asdict(s) for s in v.steps],
    }


@pytest.mark.parametrize(
    "text, default, checked_only",
    [
        ("48/2 = 24 jars.\n48 + 24 = 72 jars.\n#### 72", "kept", "kept"),
        ("48/2 = <<48/2=24>>24 jars.\n48+24 = <<48+24=72>>72 jars.\n#### 72", "kept", "kept"),
        (
            "She fills jars all day.\n48 + 24 = 72 jars.\n#### 72",
            "kept",
            "unchecked step 1: no claim the verifier could check",
        ),
        (
            "48/2 = 25 jars.\n48 + 24 = 72 jars.\n#### 72",
            "invalid step 1: wrong arithmetic: (48/2) is 24, not 25",
            "invalid step 1: wrong arithmetic: (48/2) is 24, not 25",
        ),
        ("#### 72", "no chain: answer only", "no chain: answer only"),
        ("#### 71", "wrong: wrong answer", "wrong: wrong answer"),
    ],
)
def test_require_checked_steps(text, default, checked_only):
    for cfg, want in [
        (FilterConfig(max_per_problem=0), default),
        (FilterConfig(max_per_problem=0, require_checked_steps=True), checked_only),
    ]:
        s = gsm8k_sample(text)
        filter_samples([s], cfg)
        assert s["filter_reason"] == want, (cfg, s["steps"])
        assert s["kept"] == (want == "kept")


def test_require_checked_steps_without_valid_steps():
    # Only "unchecked" steps are refused; a wrong one passes when steps need not check out.
    s = gsm8k_sample("48/2 = 25 jars.\n48 + 24 = 72 jars.\n#### 72")
    assert verification_reason(s, False, require_checked_steps=True) is None
    s = gsm8k_sample("Half as many.\n#### 72")
    assert verification_reason(s, False, True) == (
        "unchecked step 1: no claim the verifier could check"
    )
    assert reason_kind("unchecked step 3: no claim the verifier could check") == "unchecked step"


# ------------------------------------------------------------------------------------------------
# pass@k and maj@k


def brute_pass_at_k(n: int, c: int, k: int) -> float:
    """Over all k-subsets of n samples (the first c correct): the fraction holding a correct one."""
    subsets = list(combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 8))
def test_pass_at_k_matches_brute_force(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k), abs=1e-12), (
                n,
                c,
                k,
            )


@pytest.mark.parametrize(
    ("n", "c", "k", "want"),
    [
        (4, 0, 1, 0.0),
        (4, 4, 2, 1.0),
        (4, 1, 2, 0.5),
        (4, 1, 1, 0.25),
        (10, 3, 1, 0.3),
        (5, 2, 2, 0.7),
        (4, 3, 2, 1.0),
    ],
)
def test_pass_at_k_known_values(n, c, k, want):
    assert pass_at_k(n, c, k) == pytest.approx(want)


def test_pass_at_1_is_the_fraction_correct():
    for n in (1, 3, 16):
        for c in range(n + 1):
            assert pass_at_k(n, c, 1) == pytest.approx(c / n)


def test_pass_at_k_is_monotone_in_k_and_c():
    n = 12
    for c in range(n + 1):
        values = [pass_at_k(n, c, k) for k in range(1, n + 1)]
        assert values == sorted(values)
    for k in range(1, n + 1):
        values = [pass_at_k(n, c, k) for c in range(n + 1)]
        assert values == sorted(values)


@pytest.mark.parametrize(("n", "k"), [(3, 4), (0, 1), (1, 2)])
def test_pass_at_k_needs_k_samples(n, k):
    with pytest.raises(ValueError, match=f"pass@{k}"):
        pass_at_k(n, 0, k)


@pytest.mark.parametrize(
    ("answers", "want"),
    [
        (["1", "2", "2", "1"], "1"),
        (["2", "1", "1", "2"], "2"),
        (["3", None, "4", "4"], "4"),
        ([None, "7", None, "8"], "7"),
        (["5"], "5"),
        ([None, None], None),
        ([None, ""], None),
        ([], None),
        (["", "9", ""], "9"),
    ],
    ids=[
        "tie-first-seen-1",
        "tie-first-seen-2",
        "majority",
        "tie-after-none",
        "single",
        "none-only",
        "none-and-empty",
        "empty",
        "empty-not-a-vote",
    ],
)
def test_majority_answer(answers, want):
    assert majority_answer(answers) == want


def test_require_checked_steps_in_config():
    from selfplay.config import config_from_dict

    assert config_from_dict({}).filters.require_checked_steps is False
    cfg = config_from_dict({"filters": {"require_checked_steps": True}})
    assert cfg.filters.require_checked_steps is True
