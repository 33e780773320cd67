"""Bench: statistics on known inputs, budget accounting, and a tiny two-arm bench end to end."""

from __future__ import annotations

import random

import pytest
import yaml

from selfplay.bench.config import continued_arms, load_bench_config
from selfplay.bench.runner import run_bench
from selfplay.config import ConfigError
from selfplay.engine import artifacts


def _bench_yaml(tmp_path, arms, seeds=(0,)):
    data = {
        "name": "tiny",
        "output_dir": str(tmp_path / "bench"),
        "seeds": list(seeds),
        "verdict": len(seeds) > 1,
        "reference": next(iter(arms)),
        "run": {
            "raw": {"size": 150, "difficulties": [1, 2]},
            "seed_train": {"tokens": 3000},
            "loop": {"iterations": 2, "pool_difficulties": [1, 2], "problems_per_iter": 10},
            "generation": {"n": 2, "batch_size": 32},
            "filters": {"max_per_problem": 0},
            "train": {"tokens": 2500, "batch_size": 16},
            "eval": {"difficulties": [1, 2, 3], "n_per_difficulty": 4, "k": 2},
        },
        "arms": arms,
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_bench_config_errors(tmp_path):
    path = _bench_yaml(tmp_path, {"a": [], "b": ["raw.size=300"]})
    with pytest.raises(ConfigError, match="arms.b: changes raw"):
        load_bench_config(path)
    path = _bench_yaml(tmp_path, {"a": [], "b": ["train.lrr=1"]})
    with pytest.raises(ConfigError, match="arms.b: train.lrr: unknown key"):
        load_bench_config(path)
    path = _bench_yaml(tmp_path, {"a": []})
    with pytest.raises(ConfigError, match="reference"):
        load_bench_config(path, ["reference=zzz"])
    with pytest.raises(ConfigError, match="not found"):
        load_bench_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["margin=0"], "margin: must be > 0"),
        (["margin=-0.01"], "margin: must be > 0"),
        (["verdict=true"], "a verdict needs at least 2 seeds"),
        (["eval_min_problems=500"], "evaluation set has 8 problems"),
        (["alpha=1.5"], "alpha"),
    ],
)
def test_bench_config_bad_input_is_one_line_before_any_training(tmp_path, overrides, match):
    path = _bench_yaml(tmp_path, {"a": [], "b": ["loop.data_source=raw-repeat"]})
    with pytest.raises(ConfigError, match=match) as info:
        load_bench_config(path, overrides)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "bench").exists()  # nothing ran, nothing was written


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["also_against=[zzz]"], "also_against: 'zzz' is not an arm; arms: a, b, c"),
        (["also_against=[a]"], "also_against: 'a' is the reference already"),
        (["also_against=[b, b]"], "also_against: names an arm twice"),
    ],
)
def test_also_against_bad_input_is_one_line(tmp_path, overrides, match):
    path = _bench_yaml(tmp_path, {"a": [], "b": ["loop.data_source=raw-repeat"], "c": []})
    with pytest.raises(ConfigError, match=match):
        load_bench_config(path, overrides)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["primary=[c vs zzz]"], "primary: 'zzz' is not an arm; arms: a, b, c"),
        (["primary=[c against b]"], "primary: 'c against b' is not 'arm vs other'"),
        (["primary=[c vs c]"], "primary: 'c vs c' compares an arm with itself"),
        (["primary=[c vs b, b vs c]"], "primary: 'b vs c' names a comparison twice"),
    ],
)
def test_primary_bad_input_is_one_line(tmp_path, overrides, match):
    path = _bench_yaml(tmp_path, {"a": [], "b": ["loop.data_source=raw-repeat"], "c": []})
    with pytest.raises(ConfigError, match=match) as info:
        load_bench_config(path, overrides)
    assert "\n" not in str(info.value)


def test_a_primary_family_is_corrected_on_its_own_and_read_by_the_verdict():
    """``primary``: those comparisons (any two arms) are one Holm family, the rest another; the
    report shows the primary family first and the verdict line reads only it. Without
    ``primary`` the comparisons are one family, as before."""
    from selfplay.bench.config import BenchConfig
    from selfplay.bench.report import (
        _paired_section,
        _verdict_sentence,
        compare_arms,
        comparison_pairs,
        comparison_records,
    )
    from selfplay.stats import holm, paired

    names = ["rep", "fresh", "sp", "sp2"]
    arms = {n: [] for n in names}
    bench = BenchConfig(seeds=[0, 1, 2, 3, 4], reference="fresh", arms=arms,
                        primary=["sp vs rep", "fresh vs sp"])  # fmt: skip
    assert comparison_pairs(bench, names) == [
        ("sp", "rep"), ("fresh", "sp"), ("rep", "fresh"), ("sp2", "fresh"),
    ]  # fmt: skip
    rng = random.Random(0)
    final = {
        (a, s): {"acc_in": 0.5 + 0.05 * (a == "sp") + 0.02 * (a == "sp2") + rng.gauss(0, 0.01)}
        for a in names
        for s in bench.seeds
    }
    comps = compare_arms(bench, names, final)
    fam = {f: [c for c in comps if c["family"] == f] for f in ("primary", "secondary")}
    assert [(c["arm"], c["against"]) for c in fam["primary"]] == [("sp", "rep"), ("fresh", "sp")]
    for members in fam.values():
        raw = [paired(c["diffs"], bench.margin) for c in members]
        assert [c["p_holm"] for c in members] == pytest.approx(holm([t.p for t in raw]))
        flips = holm([t.p_sign_flip for t in raw])
        assert [c["p_sign_flip_holm"] for c in members] == pytest.approx(flips)
    records = comparison_records(bench, comps)
    assert [r["family"] for r in records] == ["primary"] * 2 + ["secondary"] * 2
    sections = _paired_section(bench, comps)
    assert [s["heading"] for s in sections] == [
        "Primary comparisons, pre-registered (final acc in)",
        "Secondary comparisons (final acc in)",
    ]
    assert "p sign-flip (Holm)" in sections[0]["columns"] and len(sections[0]["rows"]) == 2
    # 5 seeds, every sp - rep difference positive: the sign-flip test's floor, said so.
    assert any("2/32 = 0.0625" in t for t in sections[0]["text"])
    verdict = _verdict_sentence(bench, comps, 5)
    assert "primary comparisons (2," in verdict and "sp against `rep`" in verdict
    assert "sp2" not in verdict

    one = compare_arms(BenchConfig(seeds=bench.seeds, reference="fresh"), names, final)
    assert {c["family"] for c in one} == {None}
    assert [c["p_holm"] for c in one] == pytest.approx(
        holm([paired(c["diffs"], bench.margin).p for c in one])
    )
    assert "family" not in comparison_records(bench, one)[0]


def test_also_against_pairs_every_other_arm_with_it_in_one_holm_family():
    """``also_against: [rep]`` adds each arm but the reference and rep itself, paired with rep;
    Holm's correction runs over those and the reference's comparisons together."""
    from selfplay.bench.config import BenchConfig
    from selfplay.bench.report import compare_arms, comparison_pairs, comparison_records
    from selfplay.stats import holm, paired

    bench = BenchConfig(seeds=[0, 1, 2], reference="fresh", also_against=["rep"])
    assert comparison_pairs(bench, ["rep", "fresh", "sp"]) == [
        ("rep", "fresh"), ("sp", "fresh"), ("sp", "rep"),
    ]  # fmt: skip
    acc = {"fresh": 0.8, "rep": 0.5, "sp": 0.6}
    noise = {"fresh": 0.0, "rep": 0.002, "sp": 0.0}  # the rep - fresh differences vary too
    final = {
        (a, s): {"acc_in": acc[a] + 0.01 * s * (a == "sp") + noise[a] * s * s}
        for a in acc
        for s in bench.seeds
    }
    comps = compare_arms(bench, ["rep", "fresh", "sp"], final)
    by = {(c["arm"], c["against"]): c for c in comps}
    assert by[("sp", "rep")]["diffs"] == pytest.approx([0.1, 0.108, 0.112])
    assert by[("sp", "rep")]["verdict"] == "better"
    assert by[("sp", "fresh")]["verdict"] == "worse"
    raw_p = [paired(c["diffs"], bench.margin).p for c in comps]
    assert [c["p_holm"] for c in comps] == pytest.approx(holm(raw_p))
    records = comparison_records(bench, comps)
    assert [(r["arm"], r["reference"]) for r in records] == list(by)


def test_tiny_two_arm_bench_end_to_end(tmp_path):
    path = _bench_yaml(
        tmp_path,
        {
            "raw-repeat": ["loop.data_source=raw-repeat"],
            "selfplay-unverified": ["filters.verified=false"],
        },
    )
    bench, arms = load_bench_config(path)
    rows = run_bench(bench, arms, progress=False)
    d = bench.bench_dir
    assert (d / "results.parquet").exists() and (d / "report.md").exists()
    assert (d / "accuracy_vs_tokens.png").stat().st_size > 1000
    stored = artifacts.read_parquet(d / "results.parquet")
    assert len(stored) == len(rows) == 2 * 3  # 2 arms x (seed model + 2 rounds)
    # Both arms start from the very same seed model.
    a = (d / "seed_0" / "raw-repeat" / "seed" / "model" / "model.safetensors").read_bytes()
    b = (d / "seed_0" / "selfplay-unverified" / "seed" / "model" / "model.safetensors").read_bytes()
    assert a == b
    seed_rows = [r for r in rows if r["iteration"] == 0]
    assert seed_rows[0]["acc_in"] == seed_rows[1]["acc_in"]
    # Matched budgets: every round of every arm trains the same optimizer steps on the same
    # supervised tokens (to within one batch), whatever its examples' lengths.
    final = {r["arm"]: r for r in rows if r["iteration"] == 2}
    for r in final.values():  # both arms spent the budget: the steps its rounds asked for
        assert r["budget_steps"] == r["steps"] > 0
    for k in (1, 2):
        at = [r for r in rows if r["iteration"] == k]
        assert len({r["round_steps"] for r in at}) == 1
        sup = [r["round_supervised_tokens"] for r in at]
        assert max(sup) - min(sup) <= 16 * 12 and abs(sup[0] - 2500) <= 16 * 12
    for r in final.values():
        assert (
            r["unique_examples"] > 0 and r["reuse"] > 0 and r["steps"] == 2 * at[0]["round_steps"]
        )
    assert final["raw-repeat"]["generated_tokens"] == 0
    assert final["selfplay-unverified"]["generated_tokens"] > 0
    assert final["selfplay-unverified"]["flops"] > final["raw-repeat"]["flops"]
    report = (d / "report.md").read_text()
    assert "## At equal steps and supervised tokens" in report
    assert "## Paired with `raw-repeat`" in report and "selfplay-unverified" in report
    # One seed: no verdict, and the report says why at the top.
    assert report.splitlines()[2].startswith("**Verdict.** No verdict")
    assert "1 seed: no interval" in report
    summary = artifacts.read_json(d / "summary.json")
    assert summary["comparisons"][0]["verdict"] == "no verdict"
    prov = artifacts.read_json(d / "provenance.json")
    assert len(prov["commit"]) == 40 or prov["commit"] == "unknown"
    assert prov["versions"]["torch"] and prov["machine"]["cpus"] and prov["wall_seconds"] > 0
    assert prov["machine"]["cpu_capability"]  # what to compare when machines disagree
    # Resuming a finished bench redoes nothing.
    mtime = (d / "seed_0" / "raw-repeat" / "iter_002" / "metrics.json").stat().st_mtime_ns
    run_bench(bench, arms, progress=False)
    assert (d / "seed_0" / "raw-repeat" / "iter_002" / "metrics.json").stat().st_mtime_ns == mtime


def test_shipped_bench_configs_load():
    from pathlib import Path

    root = Path(__file__).parents[1]
    paths = sorted(
        p
        for p in (root / "configs").glob("**/*.yaml")
        if "arms" in (yaml.safe_load(p.read_text()) or {})
    )
    assert len(paths) >= 3
    for p in paths:
        bench, arms = load_bench_config(p)
        assert bench.reference in arms and (len(bench.seeds) >= 2 or not bench.verdict)


def test_majority_filter_keeps_the_winning_answer():
    from selfplay.config import FilterConfig
    from selfplay.engine.filters import filter_samples

    def s(pid, ans, text):
        return {
            "problem_id": pid,
            "answer": ans,
            "text": text,
            "status": "wrong",
            "valid": False,
            "steps": [],
        }

    samples = [
        s("p", "12", "a|12"),
        s("p", "13", "b|13"),
        s("p", "12", "c|12"),
        s("q", "1", "x|1"),
        s("q", "2", "y|2"),
    ]
    kept = filter_samples(samples, FilterConfig(verified=False, majority=True, max_per_problem=0))
    assert [k["text"] for k in kept] == ["a|12", "c|12"]
    assert samples[1]["filter_reason"] == "not the majority answer"
    assert samples[3]["filter_reason"] == "no majority"
    random.seed(0)


def test_parallel_bench_matches_the_sequential_one(tmp_path, monkeypatch):
    """``jobs: 2`` runs arm x seed in two processes (one thread each here); every arm still starts
    from its seed's shared model, and the results equal a one-at-a-time bench's on one thread."""
    import os

    import torch

    arms = {
        "raw-repeat": ["loop.data_source=raw-repeat"],
        "raw-fresh": ["loop.data_source=raw-fresh"],
    }
    path = _bench_yaml(tmp_path, arms, seeds=(0, 1))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    par, par_arms = load_bench_config(
        path, ["jobs=2", "run.loop.iterations=1", f"output_dir={tmp_path / 'par'}"]
    )
    rows_par = run_bench(par, par_arms, progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seq, seq_arms = load_bench_config(
            path, ["run.loop.iterations=1", f"output_dir={tmp_path / 'seq'}"]
        )
        rows_seq = run_bench(seq, seq_arms, progress=False)
    finally:
        torch.set_num_threads(threads)
    key = lambda r: (r["seed"], r["arm"], r["iteration"])  # noqa: E731
    assert len(rows_par) == len(rows_seq) == 2 * 2 * 2
    for a, b in zip(sorted(rows_par, key=key), sorted(rows_seq, key=key), strict=True):
        assert key(a) == key(b)
        assert (a["acc_in"], a["round_steps"], a["steps"]) == (
            b["acc_in"],
            b["round_steps"],
            b["steps"],
        )
    for s in (0, 1):
        one = tmp_path / "par" / f"seed_{s}" / "raw-repeat" / "seed" / "model" / "model.safetensors"
        two = tmp_path / "par" / f"seed_{s}" / "raw-fresh" / "seed" / "model" / "model.safetensors"
        assert one.stat().st_ino == two.stat().st_ino  # shared, not retrained
    with pytest.raises(ConfigError, match="jobs: must be >= 1"):
        load_bench_config(path, ["jobs=0"])


def test_budget_status_says_why_an_arm_trained_less():
    from selfplay.bench.report import budget_status

    def row(arm, it, steps, capped=False):
        return {"arm": arm, "iteration": it, "round_budget": 1000 if it else None,
                "round_steps": steps, "capped_by_max_epochs": capped}  # fmt: skip

    rows = [row(a, 0, 0) for a in "abc"]
    rows += [row("a", 1, 10), row("a", 2, 10)]
    rows += [row("b", 1, 10), row("b", 2, 0)]  # round 2 kept nothing: it trained no step
    rows += [row("c", 1, 10), row("c", 2, 3, capped=True)]
    assert budget_status(rows, "a") == "met"
    assert budget_status(rows, "b") == "short (nothing kept)"
    assert budget_status(rows, "c") == "short (max_epochs)"


def test_compute_match_continues_raw_arms_to_self_plays_compute(tmp_path):
    """A raw arm is continued, in its own run directory, until its FLOPs reach the self-play
    arm's; its first rounds are the arm's own (hard links), and the report pairs self-play with
    the continued reference."""
    # Unfiltered and allowed to repeat its samples, the self-play arm trains the whole budget
    # whatever the tiny model gets right, and spends generation FLOPs on top.
    arms = {
        "raw-fresh": ["loop.data_source=raw-fresh"],
        "selfplay": ["filters.verified=false", "train.max_epochs=1000"],
        "raw-repeat": ["loop.data_source=raw-repeat"],
    }
    path = _bench_yaml(tmp_path, arms, seeds=(0, 1))
    # Two runs at a time: the arms, then the two seeds' continued reference, in worker processes;
    # raw-repeat is left where its rounds end (compute_match_arms).
    bench, cfgs = load_bench_config(
        path, ["compute_match=true", "compute_match_arms=[raw-fresh]", "jobs=2"]
    )
    rows = run_bench(bench, cfgs, progress=False)
    assert not any(r["arm"] == "raw-repeat@compute" for r in rows)
    assert not list(bench.bench_dir.glob("seed_*/raw-repeat@compute"))

    def final(arm, seed):
        return max(
            (r for r in rows if r["arm"] == arm and r["seed"] == seed), key=lambda r: r["iteration"]
        )

    for seed in (0, 1):
        raw, sp, cont = (final(a, seed) for a in ("raw-fresh", "selfplay", "raw-fresh@compute"))
        assert raw["flops"] < sp["flops"] <= cont["flops"]
        per_round = raw["flops"] / raw["iteration"]
        assert cont["flops"] - sp["flops"] < per_round  # whole rounds: at most one past
        assert cont["iteration"] > raw["iteration"]
        arm_dir = bench.bench_dir / f"seed_{seed}" / "raw-fresh"
        cont_dir = arm_dir.with_name("raw-fresh@compute")
        shared = arm_dir / "iter_001" / "model" / "model.safetensors"
        assert shared.stat().st_ino == (cont_dir / shared.relative_to(arm_dir)).stat().st_ino
        # The continued run's first rounds are the arm's own rows.
        for k in range(raw["iteration"] + 1):
            a = next(
                r
                for r in rows
                if r["arm"] == "raw-fresh" and r["seed"] == seed and r["iteration"] == k
            )
            c = next(
                r
                for r in rows
                if r["arm"] == "raw-fresh@compute" and r["seed"] == seed and r["iteration"] == k
            )
            assert (a["flops"], a["acc_in"]) == (c["flops"], c["acc_in"])

    summary = artifacts.read_json(bench.bench_dir / "summary.json")
    (rec,) = summary["comparisons_at_compute"]
    assert rec["arm"] == "selfplay" and rec["reference"] == "raw-fresh@compute"
    assert len(rec["per_seed"]) == 2
    report = (bench.bench_dir / "report.md").read_text()
    assert "Raw arms continued to self-play's compute" in report
    assert "1 of the 2 raw arms (`compute_match_arms`) trained more rounds" in report
    # At self-play's last checkpoint the continued reference has a value; raw-repeat, not
    # continued, has none (its own rounds end below that compute).
    (last,) = [ln for ln in report.splitlines() if ln.startswith("| selfplay | round 2 |")]
    *_, fresh_cell, repeat_cell, _ = last.split("|")
    assert fresh_cell.strip() != "beyond its budget"
    assert repeat_cell.strip() == "beyond its budget"

    # Rerunning resumes: nothing is trained again.
    before = {p: p.stat().st_mtime_ns for p in bench.bench_dir.glob("seed_*/*/iter_*/metrics.json")}
    run_bench(bench, cfgs, progress=False)
    after = {p: p.stat().st_mtime_ns for p in bench.bench_dir.glob("seed_*/*/iter_*/metrics.json")}
    assert before == after


def test_compute_match_needs_raw_and_self_play_arms(tmp_path):
    path = _bench_yaml(
        tmp_path, {"a": ["loop.data_source=raw-repeat"], "b": ["loop.data_source=raw-fresh"]}
    )
    with pytest.raises(
        ConfigError, match="compute_match: needs at least one raw arm and one self-play"
    ):
        load_bench_config(path, ["compute_match=true"])
    path = _bench_yaml(
        tmp_path, {"a": ["loop.data_source=raw-repeat", "train.budget_epochs=[1,1]"], "b": []}
    )
    with pytest.raises(ConfigError, match="train.budget_epochs"):
        load_bench_config(path, ["compute_match=true"])
    # compute_match_arms names raw arms, keeps the reference, and needs compute_match.
    path = _bench_yaml(
        tmp_path,
        {"a": ["loop.data_source=raw-fresh"], "b": ["loop.data_source=raw-repeat"], "c": []},
    )
    bench, cfgs = load_bench_config(path, ["compute_match=true"])
    assert continued_arms(cfgs, bench.compute_match_arms) == ["a", "b"]  # default: every raw arm
    with pytest.raises(
        ConfigError, match="compute_match_arms: 'c' is not a raw arm; raw arms: a, b"
    ):
        load_bench_config(path, ["compute_match=true", "compute_match_arms=[a,c]"])
    with pytest.raises(ConfigError, match="compute_match_arms: leaves out the reference 'a'"):
        load_bench_config(path, ["compute_match=true", "compute_match_arms=[b]"])
    with pytest.raises(ConfigError, match="compute_match_arms: needs compute_match: true"):
        load_bench_config(path, ["compute_match_arms=[a]"])
    with pytest.raises(ConfigError, match=r"compute_match_arms: expected list\[str\]"):
        load_bench_config(path, ["compute_match=true", "compute_match_arms=a"])


def test_lr_factors_choose_each_arms_rate_on_validation_and_report_it(tmp_path):
    """Every arm tries each factor of its learning rate for its first round on the first seed;
    the rate whose model answers a validation split best (never the evaluation set) is the
    arm's train.lr."""
    arms = {"raw-repeat": ["loop.data_source=raw-repeat"], "selfplay": []}
    path = _bench_yaml(tmp_path, arms)
    bench, cfgs = load_bench_config(path, ["lr_factors=[0.1,3]", "lr_validation_problems=40"])
    run_bench(bench, cfgs, progress=False)
    search = artifacts.read_json(bench.bench_dir / "lr_search.json")
    assert search["factors"] == [0.1, 3] and search["rounds"] == 1 and search["seeds"] == [0]
    assert 0 < search["validation"]["problems"] <= 40 == search["validation"]["requested"]
    resolved = yaml.safe_load((bench.bench_dir / "bench.yaml").read_text())
    for arm in arms:
        r = search["arms"][arm]
        assert r["key"] == "train.lr" and r["base"] == cfgs[arm].train.lr
        assert r["accuracy"][f"{r['chosen_factor']:g}"] == max(r["accuracy"].values())
        chosen = r["chosen"]
        assert chosen == pytest.approx(r["base"] * r["chosen_factor"])
        # A grid of two factors: every choice is one of its ends, and recorded so.
        assert r["edge"] == ("lowest" if r["chosen_factor"] == 0.1 else "highest")
        assert r["accuracy_by_seed"]["0"] == r["accuracy"]
        # The arm's runs trained at the chosen rate.
        saved = yaml.safe_load((bench.bench_dir / "seed_0" / arm / "config.yaml").read_text())
        assert saved["train"]["lr"] == chosen
        assert resolved["arms"][arm][-1] == f"train.lr={chosen!r}"
    # The grid's runs share the bench's seed model; the validation set avoids U and the test set.
    grid_seed = (
        bench.bench_dir / "lr_search" / "selfplay" / "x3" / "seed" / "model" / "model.safetensors"
    )
    real_seed = bench.bench_dir / "seed_0" / "raw-repeat" / "seed" / "model" / "model.safetensors"
    assert grid_seed.stat().st_ino == real_seed.stat().st_ino
    report = (bench.bench_dir / "report.md").read_text()
    assert "Learning rate of the rounds (chosen on validation)" in report
    summary = artifacts.read_json(bench.bench_dir / "summary.json")
    assert all(c["verdict"] == "no verdict" for c in summary["comparisons"])
    # The bench's recorded time includes the search's runs.
    from selfplay.bench.lr_search import search_seconds

    prov = artifacts.read_json(bench.bench_dir / "provenance.json")
    assert search_seconds(bench.bench_dir) > 0
    assert prov["wall_seconds"] > search_seconds(bench.bench_dir)
    # The published files re-derive the same summary, the search table included.
    from selfplay.views.publish import copy_results, resummarize

    out = copy_results(bench.bench_dir, "tiny", root=tmp_path / "published")
    assert (out / "lr_search.json").exists()
    # (sections: cells as printed; one seed leaves NaN intervals elsewhere, never equal to NaN)
    assert resummarize(out)["sections"] == artifacts.read_json(out / "summary.json")["sections"]


def test_validation_problems_avoid_u_the_test_set_and_what_was_trained_on():
    from selfplay.bench.lr_search import validation_problems
    from selfplay.config import config_from_dict
    from selfplay.engine.evaluation import test_problems
    from selfplay.tasks import make_task
    from selfplay.tasks.generated import overlap_key

    cfg = config_from_dict(
        {
            "raw": {"size": 200, "difficulties": [2, 3]},
            "eval": {"difficulties": [2, 3], "n_per_difficulty": 50},
        }
    )
    task = make_task(cfg)
    tests = test_problems(task, cfg)
    u = [f"{a}+{b}" for a in range(10, 40) for b in range(10, 20)]
    first, _ = validation_problems(task, [2, 3], 60, u, tests, set())
    trained = {p.id for p in first[:5]}
    val, dropped = validation_problems(task, [2, 3], 60, u, tests, trained)
    assert dropped >= 5
    keys = {overlap_key(p.id) for p in val}
    assert not keys & {overlap_key(i) for i in [*u, *trained, *(p.id for p in tests)]}
    assert {p.difficulty for p in val} == {2, 3} and len(val) == 60


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["lr_factors=[1,-1]"], "lr_factors: factors of a learning rate must be numbers > 0"),
        (["lr_factors=[2,2]"], "appears twice"),
        (["lr_factors=[1]", "lr_rounds=5"], "lr_rounds: must be in 1..2"),
    ],
)
def test_lr_factors_bad_input_is_one_line(tmp_path, overrides, match):
    path = _bench_yaml(tmp_path, {"a": [], "b": ["loop.data_source=raw-repeat"]})
    with pytest.raises(ConfigError, match=match):
        load_bench_config(path, overrides)


def test_a_grpo_arms_factor_scales_its_grpo_learning_rate(tmp_path):
    from selfplay.bench.lr_search import chosen_overrides, grid_config

    arms = {"raw": ["loop.data_source=raw-repeat"], "grpo": ["loop.method=grpo", "grpo.lr=4e-5"]}
    bench, cfgs = load_bench_config(_bench_yaml(tmp_path, arms), ["lr_factors=[0.5,2]"])
    grid = grid_config(bench, "grpo", cfgs["grpo"], 2)
    assert grid.grpo.lr == pytest.approx(8e-5) and grid.train.lr == cfgs["grpo"].train.lr
    assert grid.loop.iterations == 1 and grid.run_dir.name == "x2"
    search = {
        "arms": {
            "raw": {"key": "train.lr", "chosen": 5e-4},
            "grpo": {"key": "grpo.lr", "chosen": 2e-5},
        }
    }
    chosen = chosen_overrides(bench, search)
    assert chosen.arms["grpo"][-1] == "grpo.lr=2e-05"
    assert chosen.arms["raw"][-1] == "train.lr=0.0005"


def test_lr_search_with_jobs_trains_every_seed_model_alongside_the_grid(tmp_path):
    """With jobs > 1 the other seeds' seed models train in the search's pool (no worker idles
    while the first seed model trains); each is then its seed's shared seed model, trained once.
    With ``lr_seeds`` the grid runs on each of those seeds' models, and the choice reads the
    mean of their validation accuracies."""
    arms = {"raw-repeat": ["loop.data_source=raw-repeat"], "selfplay": []}
    path = _bench_yaml(tmp_path, arms, seeds=(0, 1, 2))
    bench, cfgs = load_bench_config(
        path,
        ["lr_factors=[1,2]", "lr_seeds=[0,1]", "lr_validation_per_difficulty=10", "jobs=2",
         "verdict=false", "run.loop.iterations=1"],
    )  # fmt: skip
    run_bench(bench, cfgs, progress=False)
    search = bench.bench_dir / "lr_search"
    for s, owner in [(0, "seed"), (1, "seed_1"), (2, "seed_2")]:
        made = search / owner / "seed" / "model" / "model.safetensors"
        for arm in arms:
            used = bench.bench_dir / f"seed_{s}" / arm / "seed" / "model" / "model.safetensors"
            assert used.stat().st_ino == made.stat().st_ino, (s, arm)
            grid = search / arm / ("x2" if s == 0 else f"x2-seed{s}")
            if s < 2:  # a search seed: its grid runs start from its seed model
                grid_seed = grid / "seed" / "model" / "model.safetensors"
                assert grid_seed.stat().st_ino == made.stat().st_ino, (s, arm)
            else:
                assert not grid.exists()
    record = artifacts.read_json(bench.bench_dir / "lr_search.json")
    assert record["seeds"] == [0, 1]
    assert record["validation"]["requested"] == 10 * 2  # 10 per difficulty of U (1 and 2)
    for r in record["arms"].values():
        by_seed = r["accuracy_by_seed"]
        assert sorted(by_seed) == ["0", "1"]
        for f in ("1", "2"):
            assert r["accuracy"][f] == pytest.approx((by_seed["0"][f] + by_seed["1"][f]) / 2)
    # Different seeds, different seed models; the owners run the seed stage alone.
    assert (search / "seed_1" / "seed" / "metrics.json").read_text() != (
        search / "seed_2" / "seed" / "metrics.json"
    ).read_text()
    assert not (search / "seed_1" / "iter_001").exists()


def test_lr_search_warns_when_arms_choose_the_edge_of_the_grid():
    from selfplay.bench.lr_search import edge_warning

    def search(*chosen):
        arms = {f"a{i}": {"chosen_factor": f} for i, f in enumerate(chosen)}
        return {"factors": [0.5, 1, 2], "arms": arms}

    assert edge_warning(search(1, 1)) is None
    w = edge_warning(search(0.5, 1, 0.5))
    assert w.startswith("Learning rate: 2 of 3 arms chose the edge of the grid (x0.5)")
    assert "(x0.5 and x2)" in edge_warning(search(0.5, 2))
    assert edge_warning({"factors": [1], "arms": {"a": {"chosen_factor": 1}}}) is None


# ------------------------------------------------------------------------------------------------
# Plots, drawn from rows made up here (no training)

PLOT_ARMS = {
    "fresh": ["loop.data_source=raw-fresh"],
    "repeat": ["loop.data_source=raw-repeat"],
    "sp": [],
}
FINAL_ACC = {  # arm -> final acc in per seed (0, 1, 2); every seed model is at 0.5
    "fresh": [0.8, 0.85, 0.9],
    "repeat": [0.6, 0.62, 0.7],
    "sp": [0.7, 0.8, 0.75],
    "fresh@compute": [0.84, 0.9, 0.93],
}


def _plot_bench(tmp_path):
    """A three-arm bench (reference ``fresh``, also against ``repeat``, the reference continued
    to self-play's compute) and its rows: each arm rising linearly from the seed model to
    FINAL_ACC; nothing right at 3 digits (harder than U) on any seed."""
    path = _bench_yaml(tmp_path, PLOT_ARMS, seeds=(0, 1, 2))
    bench, arms = load_bench_config(
        path, ["also_against=[repeat]", "compute_match=true", "compute_match_arms=[fresh]"]
    )
    source = {"fresh": "raw-fresh", "repeat": "raw-repeat", "sp": "selfplay"}
    rows = []
    for arm, accs in FINAL_ACC.items():
        rounds = 3 if arm.endswith("@compute") else 2
        for seed, final in enumerate(accs):
            for it in range(rounds + 1):
                acc = 0.5 + (final - 0.5) * it / rounds
                sp = arm == "sp" and it > 0
                rows.append({
                    "arm": arm, "seed": seed, "iteration": it,
                    "source": source[arm.removesuffix("@compute")],
                    "train_tokens": 1000 * it, "supervised_tokens": 900 * it, "steps": 10 * it,
                    "round_steps": 10 if it else 0, "round_budget": 900 if it else None,
                    "unique_examples": 100, "reuse": 1.0, "generated_tokens": 500 * it * sp,
                    "verifier_calls": 50 * it * sp, "flops": 1e9 * it * (2 if sp else 1),
                    "epochs_of_U": 0.5 * it, "acc_in": acc, "acc_in_se": 0.01,
                    "acc_harder": 0.0, "acc_1": min(1.0, acc + 0.1 * (seed - 1) + 0.15),
                    "acc_2": acc - 0.1, "acc_3": 0.0, "n_1": 20, "n_2": 20, "n_3": 20,
                    "valid": acc, "pass_rate": 0.4 + 0.01 * it if sp else None,
                    "kept": 300 + 10 * it if sp else None,
                })  # fmt: skip
    return bench, arms, rows


def test_paired_differences_plot_shows_every_verdicts_per_seed_differences(tmp_path):
    from selfplay.bench.report import (
        paired_differences,
        plot_paired_differences,
        render_markdown,
        summarize_bench,
        write_plots,
    )
    from selfplay.plots import pyplot
    from selfplay.stats import paired

    bench, arms, rows = _plot_bench(tmp_path)
    records = paired_differences(bench, arms, rows)
    by = {(r["arm"], r["reference"]): r for r in records}
    # Against the reference, against also_against, and against the reference continued.
    assert list(by) == [
        ("repeat", "fresh"), ("sp", "fresh"), ("sp", "repeat"), ("sp", "fresh@compute"),
    ]  # fmt: skip
    for (arm, ref), rec in by.items():
        want = [a - b for a, b in zip(FINAL_ACC[arm], FINAL_ACC[ref], strict=True)]
        assert rec["seeds"] == [0, 1, 2]
        assert rec["per_seed"] == pytest.approx(want)
        test = paired(want, bench.margin)
        assert (rec["mean"], rec["half_width"]) == pytest.approx((test.mean, test.half_width))
    # The very records the summary (and so the report's tables and verdict) holds.
    summary = summarize_bench(bench, arms, rows, [], 60.0)
    stored = summary["comparisons"] + summary["comparisons_at_compute"]
    assert [{k: v for k, v in r.items() if k != "seeds"} for r in records] == stored

    # The figure draws those numbers: a dot per seed, a diamond per mean, the margin band.
    plt = pyplot()
    fig = plot_paired_differences(plt, bench, records)
    (ax,) = fig.axes
    dots = [x for ln in ax.lines if ln.get_marker() == "o" for x in ln.get_xdata()]
    assert sorted(dots) == pytest.approx(sorted(d for r in records for d in r["per_seed"]))
    means = [x for ln in ax.lines if ln.get_marker() == "D" for x in ln.get_xdata()]
    assert means == pytest.approx([r["mean"] for r in records])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "equivalence margin ±0.02" in labels and "seed 2" in labels
    assert "sp − fresh@compute" in ax.get_yticklabels()[-1].get_text()
    plt.close(fig)

    # Written as a PNG beside the others, first: the plot the verdicts rest on.
    names = write_plots(tmp_path, rows, bench, arms)
    assert names[0] == "paired_differences.png"
    assert set(names) == {
        "paired_differences.png", "accuracy_vs_tokens.png", "accuracy_by_difficulty.png",
        "selfplay_yield.png", "raw_repeat_epochs.png",
    }  # fmt: skip
    for name in names:
        png = tmp_path / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert plt.imread(png).shape[2] == 4  # it decodes: RGBA pixels
    assert not list(tmp_path.glob(".*.tmp.png"))
    report = render_markdown(summarize_bench(bench, arms, rows, names, 60.0))
    assert "![paired_differences.png](paired_differences.png)" in report


def test_plots_draw_no_flat_zero_panel_and_keep_accuracy_within_0_and_1(tmp_path):
    from selfplay.bench.report import bench_figures
    from selfplay.plots import pyplot

    plt = pyplot()
    bench, arms, rows = _plot_bench(tmp_path)
    figs = bench_figures(rows, bench, arms)
    curves = figs["accuracy_vs_tokens.png"]
    titles = [ax.get_title() for ax in curves.axes if ax.get_visible()]
    # Harder than U is 0 everywhere: no panel of it, and the title says why.
    assert titles and not any("harder" in t for t in titles)
    assert "harder than U: every arm at 0 at every checkpoint (not drawn)" in (
        curves.get_suptitle()
    )
    # One panel of every arm's mean, then one per arm with a thin line per seed under it.
    assert titles[0] == "in-distribution: every arm's mean"
    sp_panel = next(ax for ax in curves.axes if ax.get_title() == "in-distribution: sp")
    assert sum(ln.get_linewidth() < 1 for ln in sp_panel.lines) == 3
    # 3 digits is 0 for every arm and seed: not a group of empty bars.
    bars = figs["accuracy_by_difficulty.png"].axes[0]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["1 digits", "2 digits"]
    assert "3 digits: every arm at 0 on every seed (not drawn)" in bars.get_title()
    # Accuracy axes span [0, 1] and nothing drawn reaches past them: acc_1's 95% interval
    # (seeds near 1.0, t with 2 degrees of freedom) would, uncut.
    accuracy_axes = [ax for ax in curves.axes if ax.get_visible()] + [bars]
    accuracy_axes += figs["raw_repeat_epochs.png"].axes + figs["selfplay_yield.png"].axes[:1]
    for ax in accuracy_axes:
        assert ax.get_ylim() == (0.0, 1.0), ax.get_title()
    errors = [seg for c in bars.collections for seg in c.get_segments()]
    assert errors and all(0.0 <= y <= 1.0 for seg in errors for _, y in seg)
    assert max(y for seg in errors for _, y in seg) == pytest.approx(1.0)  # it was cut there
    # A count axis starts at zero.
    assert figs["selfplay_yield.png"].axes[1].get_ylim()[0] == 0.0
    for fig in figs.values():
        plt.close(fig)

    # One problem in a thousand right somewhere is still a line along the axis: the title gives
    # it; a harder difficulty solved for real gets its panels.
    for harder, drawn in [(0.001, False), (0.1, True)]:
        rows[-1]["acc_harder"] = harder
        figs = bench_figures(rows, bench, arms)
        curves = figs["accuracy_vs_tokens.png"]
        titles = [ax.get_title() for ax in curves.axes if ax.get_visible()]
        assert ("harder than U: every arm's mean" in titles) == drawn
        note = "harder than U: every arm at or below 0.001 at every checkpoint (not drawn)"
        assert (note in curves.get_suptitle()) != drawn
        for fig in figs.values():
            plt.close(fig)

    # A smoke bench, one seed and nothing right anywhere: the one panel left says so, and a
    # comparison without an interval is a mean alone.
    smoke = [dict(r, **{k: 0.0 for k in r if k.startswith("acc_") and k != "acc_in_se"})
             for r in rows if r["seed"] == 0]  # fmt: skip
    figs = bench_figures(smoke, bench, arms)
    assert "in-distribution: every arm at 0 at every checkpoint\n" in (
        figs["accuracy_vs_tokens.png"].get_suptitle()
    )
    title = figs["accuracy_by_difficulty.png"].axes[0].get_title()
    assert "\n1 digits: every arm at 0 on every seed" in title and "not drawn" not in title
    labels = [t.get_text() for t in figs["paired_differences.png"].axes[0].get_yticklabels()]
    assert labels[0] == "repeat − fresh\n+0.000, no verdict"
    for fig in figs.values():
        plt.close(fig)
