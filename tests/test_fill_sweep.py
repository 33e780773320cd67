"""Fill-the-budget sampling, budgets in epochs of U, and the regime sweep's bookkeeping."""

from __future__ import annotations

import pytest

from selfplay.bench.config import BenchConfig, load_bench_config, regimes, sub_bench
from selfplay.bench.sweep import summarize_sweep, sweep_comparisons, sweep_report
from selfplay.config import ConfigError
from selfplay.engine import artifacts
from selfplay.engine.loop import run
from selfplay.engine.sources import round_budget, seed_budget
from selfplay.stats import holm, paired
from selfplay.tasks import Example
from selfplay.training import count_tokens

from .test_sampling import micro


def test_fill_budget_draws_new_problems_until_the_quota_of_unique_tokens(tmp_path):
    # verified=False keeps every sample, so each draw adds unique chains; a quota far above one
    # draw's worth makes the round use its whole draw cap, each draw on problems not drawn before.
    cfg = micro(
        tmp_path,
        loop={"fill_budget": True, "fill_max_draws": 3},
        train={"tokens": 10**7, "max_epochs": 1},
    )
    run(cfg, progress=False)
    it = cfg.run_dir / "iter_001"
    gen = artifacts.read_json(it / "generate.json")
    assert gen["fill"]["extra_draws"] == 3
    samples = artifacts.read_parquet(it / "samples.parquet")
    problems = {s["problem_id"] for s in samples}
    assert len(problems) == gen["problems"] > cfg.loop.problems_per_iter
    per_problem = {p: sum(s["problem_id"] == p for s in samples) for p in problems}
    assert set(per_problem.values()) == {cfg.generation.n}  # no problem drawn twice
    assert gen["fill"]["unique_tokens"] < gen["fill"]["quota_tokens"]
    train = artifacts.read_json(it / "train.json")
    # max_epochs: 1 caps the round at one pass over its set: it says so and repeats nothing.
    assert train["capped_by_max_epochs"] and train["epochs"] <= 1.0
    assert train["reuse"] == pytest.approx(
        train["steps"] * train["batch_size"] / train["distinct_examples"]
    )


def test_fill_budget_stops_once_the_quota_is_met(tmp_path):
    cfg = micro(tmp_path, loop={"fill_budget": True, "fill_max_draws": 5}, train={"tokens": 50})
    run(cfg, progress=False)
    gen = artifacts.read_json(cfg.run_dir / "iter_001" / "generate.json")
    assert gen["fill"]["extra_draws"] == 0  # the first draw already holds 50 unique tokens
    assert gen["fill"]["unique_tokens"] >= 50


def test_budgets_in_epochs_of_u(tmp_path):
    cfg = micro(
        tmp_path,
        seed_train={"epochs": 2.0},
        train={"budget_epochs": [0.5]},
        loop={"data_source": "raw-repeat"},
    )
    from selfplay.engine.models import build_char_tokenizer

    tok = build_char_tokenizer()
    raw = [Example("Q:1+2=", "1+2=3 c0|3", "1+2", 1, "raw")] * 10
    u = sum(count_tokens(tok, raw))
    assert seed_budget(cfg, u) == 2 * u
    assert round_budget(cfg, 1, u) == round(0.5 * u)
    rows = run(cfg, progress=False)
    # Budgets count supervised (completion) tokens, U's counted once.
    u_sup = rows[0]["raw"]["supervised_tokens"]
    assert 0 < u_sup < rows[0]["raw"]["tokens"]
    assert rows[0]["train"]["supervised_tokens"] == pytest.approx(2 * u_sup, rel=0.1)
    assert rows[1]["train"]["supervised_tokens"] == pytest.approx(0.5 * u_sup, rel=0.1)


def test_budget_epochs_needs_one_entry_per_round(tmp_path):
    with pytest.raises(ConfigError, match="train.budget_epochs"):
        micro(tmp_path, train={"budget_epochs": [1, 2]})  # micro has 1 round


SWEEP = {
    "name": "s",
    "seeds": [0, 1],
    "reference": "raw",
    "run": {"raw": {"size": 100}},
    "arms": {"raw": ["loop.data_source=raw-repeat"], "sp": []},
    "sweep": {
        "size": {"u100": [], "u300": ["raw.size=300"]},
        "quality": {"clean": [], "slips": ["raw.slip_rate=0.5"]},
    },
}


def test_regimes_are_the_product_of_the_axes(tmp_path):
    bench = BenchConfig(**{**SWEEP, "output_dir": str(tmp_path / "b")})
    rs = regimes(bench)
    assert [name for name, _, _ in rs] == ["u100-clean", "u100-slips", "u300-clean", "u300-slips"]
    name, levels, overrides = rs[3]
    assert levels == {"size": "u300", "quality": "slips"}
    sub = sub_bench(bench, name, overrides)
    assert sub.run["raw"] == {"size": 300, "slip_rate": 0.5}
    assert sub.bench_dir == tmp_path / "b" / "u300-slips" and not sub.sweep
    assert bench.run["raw"] == {"size": 100}  # the parent's run config is untouched


def test_bad_sweep_is_one_line_error(tmp_path):
    import yaml

    p = tmp_path / "s.yaml"
    for bad, match in [
        ({"size": ["raw.size=3"]}, "sweep.size"),
        ({"size": {"a": "raw.size=3"}}, "sweep.size.a"),
        ({"size": {"a": ["raw.sise=3"]}}, "regime a"),
    ]:
        p.write_text(yaml.safe_dump({**SWEEP, "sweep": bad}))
        with pytest.raises(ConfigError, match=match):
            load_bench_config(p)


def _row(regime, arm, seed, it, acc):
    return {
        "regime": regime,
        "arm": arm,
        "seed": seed,
        "iteration": it,
        "epochs_of_U": float(it),
        "acc_in": acc,
        "acc_harder": 0.0,
    }


def test_sweep_compares_every_arm_with_the_reference_in_every_regime_holm_over_all(tmp_path):
    """At the final budget every non-reference arm is paired with the reference in every regime;
    Holm's correction runs over all of them at once, and each ends with a verdict word."""
    bench = BenchConfig(**{**SWEEP, "seeds": [0, 1, 2], "output_dir": str(tmp_path / "b")})
    rows = []
    noise = {0: 0.001, 1: -0.002, 2: 0.0015}
    for regime in ["u100-clean", "u100-slips", "u300-clean", "u300-slips"]:
        for s in (0, 1, 2):
            for arm in ("raw", "sp"):
                rows.append(_row(regime, arm, s, 0, 0.5))
                # sp is clearly ahead in u300-clean, clearly behind in u100-slips, and within the
                # margin of raw elsewhere; the checkpoint before the last is never compared.
                gain = {"u300-clean": 0.2 + 0.01 * s, "u100-slips": -0.1 - 0.01 * s}.get(regime)
                gain = (noise[s] if gain is None else gain) if arm == "sp" else 0.0
                rows.append(_row(regime, arm, s, 1, 0.9 if arm == "sp" else 0.5))
                rows.append(_row(regime, arm, s, 2, 0.5 + gain))
    summary = summarize_sweep(bench, rows, ["sweep.png"], wall=60.0)
    comps = {c["regime"]: c for c in summary["comparisons"]}
    assert set(comps) == {"u100-clean", "u100-slips", "u300-clean", "u300-slips"}
    assert all(c["arm"] == "sp" and c["budget_epochs"] == 2.0 for c in comps.values())
    assert comps["u300-clean"]["verdict"] == "better"
    assert comps["u300-clean"]["mean"] == pytest.approx(0.21)
    assert comps["u100-slips"]["verdict"] == "worse"
    assert comps["u100-clean"]["verdict"] == comps["u300-slips"]["verdict"] == "equivalent"
    # One correction over the whole sweep, not one per regime.
    raw_p = [paired(c["per_seed"], bench.margin).p for c in summary["comparisons"]]
    assert [c["p_holm"] for c in summary["comparisons"]] == pytest.approx(holm(raw_p))
    assert "1 better, 1 worse, 2 equivalent, 0 inconclusive" in summary["verdict"]
    assert summary["warnings"] == []
    for r in rows:
        if r["regime"] == "u100-clean" and r["iteration"] == 0:
            r["acc_in"] = 0.01
    (w,) = summarize_sweep(bench, rows, ["sweep.png"], wall=60.0)["warnings"]
    assert w.startswith("Seed models near chance (acc in < 0.05) in u100-clean (0.010)")
    report = sweep_report(bench, rows, ["sweep.png"], wall=60.0)
    assert "Holm-corrected over all 4 comparisons" in report
    line = next(x for x in report.splitlines() if x.startswith("| u300-clean | sp |"))
    assert "better" in line and "+0.210" in line
    assert "harder than U: 0 for every arm" in report
    # Two seeds that give the same difference leave nothing to test: inconclusive, not a tie.
    two = BenchConfig(**{**SWEEP, "output_dir": str(tmp_path / "c")})
    flat = [r for r in rows if r["seed"] < 2 and r["regime"] == "u100-clean"]
    for r in flat:
        r["acc_in"] = 0.5
    (c,) = [x for x in sweep_comparisons(two, flat) if x["regime"] == "u100-clean"]
    assert c["verdict"] == "inconclusive" and c["diffs"] == [0.0, 0.0]


def test_sweep_also_against_adds_the_data_wall_comparison(tmp_path):
    """With ``also_against: [rep]`` every regime also pairs sp with rep; the table names the arm
    each row is against, and the correction covers all comparisons of the sweep."""
    bench = BenchConfig(
        **{**SWEEP, "seeds": [0, 1, 2], "output_dir": str(tmp_path / "b"),
           "arms": {"raw": [], "rep": [], "sp": []}, "also_against": ["rep"]}
    )  # fmt: skip
    rows = []
    for regime in ["u100-clean", "u100-slips", "u300-clean", "u300-slips"]:
        for s in (0, 1, 2):
            for arm, acc in (("raw", 0.8), ("rep", 0.5 + 0.002 * s * s), ("sp", 0.6 + 0.01 * s)):
                rows += [_row(regime, arm, s, 0, 0.4), _row(regime, arm, s, 1, acc)]
    summary = summarize_sweep(bench, rows, ["sweep.png"], wall=60.0)
    pairs = [(c["regime"], c["arm"], c["reference"]) for c in summary["comparisons"]]
    assert len(pairs) == 4 * 3 and ("u100-clean", "sp", "rep") in pairs
    assert ("u100-clean", "rep", "raw") in pairs and ("u100-clean", "rep", "rep") not in pairs
    sp_rep = [c for c in summary["comparisons"] if c["arm"] == "sp" and c["reference"] == "rep"]
    assert all(c["verdict"] == "better" for c in sp_rep)
    raw_p = [paired(c["per_seed"], bench.margin).p for c in summary["comparisons"]]
    assert [c["p_holm"] for c in summary["comparisons"]] == pytest.approx(holm(raw_p))
    assert "Against `raw` and `rep` at the final budget" in summary["verdict"]
    assert "sp against `rep` in u300-clean is **better**" in summary["verdict"]
    report = sweep_report(bench, rows, ["sweep.png"], wall=60.0)
    assert "## Paired with `raw` and `rep` (final budget, in-distribution)" in report
    line = next(x for x in report.splitlines() if x.startswith("| u300-clean | sp | rep |"))
    assert "better" in line and "0.107 ± 0.015" in line and "+0.100, +0.108, +0.112" in line


def test_shipped_sweep_config_loads():
    bench, arms = load_bench_config("configs/arith/sweep.yaml")
    assert len(regimes(bench)) == 6 and set(arms) == {"raw-repeat", "raw-fresh", "selfplay-fill"}


def test_sweep_budget_status_names_why_and_on_how_many_seeds():
    from selfplay.bench.sweep import _short_text

    assert _short_text([], 3) == "met"
    assert _short_text(["short (max_epochs)"] * 2, 3) == "short (max_epochs) on 2 of 3 seeds"
    both = ["short (nothing kept)", "short (max_epochs)"]
    assert _short_text(both, 3) == "short (max_epochs, nothing kept) on 2 of 3 seeds"
