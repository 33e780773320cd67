"""Mechanics of the loop options: rationalization, difficulty-aware sampling, per-difficulty
balance, curriculum, hinted raw data."""

from __future__ import annotations

import json
import random

from selfplay.config import FilterConfig, config_from_dict
from selfplay.engine import artifacts
from selfplay.engine.filters import filter_samples
from selfplay.engine.loop import run
from selfplay.engine.sampling import curriculum_frontier, draw_pool, pool_counts
from selfplay.tasks import make_task

from .test_loop import MICRO


def micro(tmp_path, **sections):
    data = json.loads(json.dumps(MICRO))
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    data["output_dir"] = str(tmp_path / "run")
    data["loop"]["iterations"] = 1
    return config_from_dict(data)


def test_rationalized_chains_train_without_the_hint(tmp_path):
    cfg = micro(tmp_path, loop={"rationalize": True}, raw={"hint_rate": 0.5})
    run(cfg, progress=False)
    samples = artifacts.read_parquet(cfg.run_dir / "iter_001" / "samples.parquet")
    rat = [s for s in samples if s["origin"] == "rationalized"]
    assert rat, "an untrained model fails every problem, so every problem is retried with a hint"
    solved = {
        s["problem_id"] for s in samples if s["origin"] == "sampled" and s["status"] == "correct"
    }
    for s in rat:
        assert s["problem_id"] not in solved
        assert s["generation_prompt"].startswith("H:") and s["generation_prompt"].endswith(
            s["prompt"]
        )
        assert not s["prompt"].startswith("H:")
    kept = artifacts.read_parquet(cfg.run_dir / "iter_001" / "kept.parquet")
    assert any(k["origin"] == "rationalized" for k in kept)  # verified=False in MICRO keeps them
    assert all("H:" not in k["prompt"] for k in kept)


def test_adaptive_sampling_spends_more_on_unsolved_problems(tmp_path):
    cfg = micro(tmp_path, generation={"n": 2, "adaptive_max_n": 6, "adaptive_target": 1})
    run(cfg, progress=False)
    samples = artifacts.read_parquet(cfg.run_dir / "iter_001" / "samples.parquet")
    per: dict[str, list] = {}
    for s in samples:
        per.setdefault(s["problem_id"], []).append(s)
    for rows in per.values():
        idx = sorted(r["sample_idx"] for r in rows)
        assert idx == list(range(len(idx)))  # sample indices continue across passes
        c = len(rows)
        assert c in (2, 4, 6)
        # It stopped at the first pass that produced a valid chain, or at the cap.
        assert not any(r["valid"] for r in rows if r["sample_idx"] < c - 2)
        assert c == 6 or any(r["valid"] for r in rows if r["sample_idx"] >= c - 2)
    assert any(len(rows) == 6 for rows in per.values())
    stats = artifacts.read_json(cfg.run_dir / "iter_001" / "generate.json")
    assert (
        stats["samples_by_origin"]["adaptive"]
        == len(samples) - stats["samples_by_origin"]["sampled"]
        > 0
    )


def _s(pid, d, valid=True):
    return {
        "problem_id": pid,
        "difficulty": d,
        "text": pid,
        "status": "correct" if valid else "wrong",
        "valid": valid,
        "answer": "1",
        "steps": [{"ok": True, "why": "", "text": "x"}],
    }


def test_balance_caps_each_difficulty_at_the_smallest():
    samples = (
        [_s(f"a{i}", 1) for i in range(10)]
        + [_s(f"b{i}", 2) for i in range(4)]
        + [_s(f"c{i}", 3) for i in range(7)]
        + [_s("w", 4, valid=False)]
    )
    kept = filter_samples(samples, FilterConfig(balance_difficulty=True))
    per = {d: sum(k["difficulty"] == d for k in kept) for d in (1, 2, 3, 4)}
    assert per == {1: 4, 2: 4, 3: 4, 4: 0}
    assert sum(s["filter_reason"] == "over difficulty balance" for s in samples) == 6 + 3


def test_curriculum_advances_and_mixes_easier_problems():
    cfg = config_from_dict(
        {
            "raw": {"difficulties": [1, 2]},
            "loop": {
                "pool_difficulties": [1, 2, 3, 4, 5],
                "curriculum": True,
                "curriculum_threshold": 0.5,
                "curriculum_easy_mix": 0.25,
                "problems_per_iter": 100,
            },
        }
    )
    assert curriculum_frontier(cfg, []) == 3
    assert curriculum_frontier(cfg, [{"3": 0.2}]) == 3
    assert curriculum_frontier(cfg, [{"3": 0.6}]) == 4
    assert curriculum_frontier(cfg, [{"3": 0.6}, {"4": 0.1}]) == 4
    assert (
        curriculum_frontier(cfg, [{"3": 0.6}, {"4": 0.9}, {"5": 1.0}, {"5": 1.0}]) == 5
    )  # stops at the top
    counts = pool_counts(cfg, 4)
    assert counts == {1: 9, 2: 8, 3: 8, 4: 75}
    problems = draw_pool(make_task(cfg), cfg, 1, 4)
    assert sum(p.difficulty == 4 for p in problems) == 75
    assert {p.difficulty for p in problems} == {1, 2, 3, 4}


def test_hinted_raw_items_carry_the_right_answer():
    cfg = config_from_dict({"raw": {"size": 400, "hint_rate": 0.5}})
    task = make_task(cfg)
    raw = task.raw_corpus(cfg.raw, random.Random(0))
    hinted = [e for e in raw if e.source == "raw-hinted"]
    assert 120 < len(hinted) < 280
    for e in hinted:
        hint, plain = e.prompt.split(" ", 1)
        assert hint == "H:" + task.parse_prompt(plain).answer
        assert task.verify(task.parse_prompt(plain), e.completion).valid


def test_practice_problems_never_include_an_evaluation_problem_or_its_twin():
    """The train split holds ``b+a`` of a test problem ``a+b``: the fresh corpus leaves such twins
    out, and so does every round's practice pool (its first draw, and every extra draw that fills
    the budget), each difficulty drawing again for the places the twins took."""
    from selfplay.engine.evaluation import test_problems
    from selfplay.tasks.generated import overlap_key

    cfg = config_from_dict(
        {
            "task": {"name": "arith", "ops": ["add"]},
            "raw": {"difficulties": [1, 2]},
            "loop": {"pool_difficulties": [1, 2, 3], "problems_per_iter": 900},
            "eval": {"difficulties": [1, 2, 3], "n_per_difficulty": 1000},
        }
    )
    task = make_task(cfg)
    banned = {overlap_key(p.id) for p in test_problems(task, cfg)}
    one_digit = task.sample_problems("train", 1, 1000, random.Random(0))  # all there are
    allowed = [p for p in one_digit if overlap_key(p.id) not in banned]
    assert 0 < len(allowed) < len(one_digit)
    # Drawn without the exclusion, the pool would practise twins of the test set.
    rng = random.Random(f"pool-{cfg.seed}-1")
    plain = {d: task.sample_problems("train", d, 300, rng) for d in (1, 2, 3)}
    assert sum(overlap_key(p.id) in banned for ps in plain.values() for p in ps) > 20
    for k, draw in [(1, 0), (2, 0), (1, 3)]:
        pool = draw_pool(task, cfg, k, draw=draw)
        assert not {overlap_key(p.id) for p in pool} & banned
        by = {d: [p for p in pool if p.difficulty == d] for d in (1, 2, 3)}
        assert len(by[2]) == len(by[3]) == 300  # the twins' places drawn again
        assert len(by[1]) == len(allowed)  # all that 1 digit has left
        assert len({p.id for p in pool}) == len(pool)
    # Every problem but the twins is the one the draw gives without the exclusion.
    first = draw_pool(task, cfg, 1)
    for d, ps in plain.items():
        kept = [p.id for p in ps if overlap_key(p.id) not in banned]
        assert [p.id for p in first if p.difficulty == d][: len(kept)] == kept
    taken = {p.id for p in first[:5]}
    assert not taken & {p.id for p in draw_pool(task, cfg, 1, exclude=taken)}
