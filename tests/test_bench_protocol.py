"""The bench's measurement protocol, driven by made-up results (nothing trained): the learning
rate's choice and the verdicts it withholds, the seed models beside the paired differences, and
the budget an arm fell short of."""

from __future__ import annotations

import random
import statistics

import pytest

from selfplay.bench.config import BenchConfig, load_bench_config
from selfplay.config import ConfigError
from tests.test_bench import FINAL_ACC, _bench_yaml, _plot_bench


def _search(edge: dict[str, float], factors=(0.25, 0.5, 1.0), arms=("fresh", "repeat", "sp")):
    """An lr_search.json as the search writes it: two seeds, each arm's choice ``edge[arm]``
    where given (marked as the grid's lowest or highest factor), else the middle factor."""
    factors = list(factors)
    out = {
        "seeds": [0, 1],
        "rounds": 1,
        "factors": factors,
        "validation": {
            "requested": 1000,
            "problems": 1000,
            "by_difficulty": {"1": 0, "2": 500, "3": 500},
            "candidates_dropped_as_generated_or_trained_on": 12,
        },
        "arms": {},
    }
    for arm in arms:
        chosen = edge.get(arm, factors[1])
        by_seed = {
            str(s): {f"{f:g}": 0.9 - 0.1 * abs(f - chosen) - 0.01 * s for f in factors}
            for s in (0, 1)
        }
        acc = {k: (by_seed["0"][k] + by_seed["1"][k]) / 2 for k in by_seed["0"]}
        out["arms"][arm] = {
            "key": "train.lr", "base": 5e-4, "accuracy": acc, "accuracy_by_seed": by_seed,
            "chosen_factor": chosen, "chosen": 5e-4 * chosen,
            "edge": "lowest" if chosen == min(factors) else "highest" if chosen == max(factors)
            else None,
        }  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------------
# The learning rate: chosen over seeds, on a validation set of U's difficulties, edges refused


def test_the_choice_averages_every_search_seeds_validation_accuracy():
    from selfplay.bench.lr_search import choose_factor, edge_of

    # Seed 0 alone would take x1; averaged with seed 1, x0.5 answers best.
    by_seed = {"0": {"0.5": 0.80, "1": 0.82}, "1": {"0.5": 0.84, "1": 0.70}}
    acc, best = choose_factor([0.5, 1], by_seed)
    assert acc == pytest.approx({"0.5": 0.82, "1": 0.76}) and best == 0.5
    # Ties go to the first factor in the list's order.
    assert choose_factor([1, 0.5], {"0": {"0.5": 0.8, "1": 0.8}})[1] == 1
    assert [edge_of([0.25, 0.5, 1], f) for f in (0.25, 0.5, 1)] == ["lowest", None, "highest"]
    assert edge_of([1], 1) is None  # a grid of one factor has no edge to leave


def test_grid_runs_of_another_search_seed_have_their_own_directories(tmp_path):
    from selfplay.bench.lr_search import grid_config, search_seeds

    arms = {"raw": ["loop.data_source=raw-repeat"], "sp": []}
    path = _bench_yaml(tmp_path, arms, seeds=(3, 4, 5))
    bench, cfgs = load_bench_config(path, ["lr_factors=[0.5,1]", "lr_seeds=[3,4]"])
    assert search_seeds(bench) == [3, 4]
    first, other = (
        grid_config(bench, "sp", cfgs["sp"], 0.5),
        grid_config(bench, "sp", cfgs["sp"], 0.5, 4),
    )
    assert (first.seed, first.run_dir.name) == (3, "x0.5")
    assert (other.seed, other.run_dir.name) == (4, "x0.5-seed4")
    assert first.run_dir.parent == other.run_dir.parent == bench.bench_dir / "lr_search" / "sp"
    # Without lr_seeds: the bench's first seed alone, as before.
    bench, _ = load_bench_config(path, ["lr_factors=[0.5,1]"])
    assert search_seeds(bench) == [3]
    assert bench.lr_validation_problems >= 1000 and bench.lr_validation_per_difficulty is None


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["lr_factors=[0.5,1]", "lr_seeds=[0,0]"], "lr_seeds: a seed appears twice"),
        (["lr_seeds=[0,1]"], "lr_seeds: needs lr_factors"),
        (["lr_factors=[0.5,1]", "lr_validation_problems=0"], "lr_validation_problems: must be"),
        (["lr_factors=[0.5,1]", "lr_validation_per_difficulty=0"], "per_difficulty: must be"),
    ],
)
def test_lr_search_bad_input_is_one_line(tmp_path, overrides, match):
    path = _bench_yaml(tmp_path, {"a": [], "b": ["loop.data_source=raw-repeat"]})
    with pytest.raises(ConfigError, match=match) as info:
        load_bench_config(path, overrides)
    assert "\n" not in str(info.value)


def test_the_validation_set_spreads_over_us_difficulties_and_fills_from_the_others():
    """U holds every 1-digit problem: none is left at 1 digit, and 2 and 3 digits take its share,
    so the set still has the size asked for, clear of U, the evaluation set and their twins."""
    from selfplay.bench.lr_search import spread, validation_problems, validation_size
    from selfplay.config import config_from_dict
    from selfplay.engine.evaluation import test_problems
    from selfplay.tasks import make_task
    from selfplay.tasks.generated import overlap_key

    assert spread(1000, {1: 0, 2: 900, 3: 900}) == {1: 0, 2: 500, 3: 500}
    assert spread(1000, {1: 10, 2: 300, 3: 900}) == {1: 10, 2: 300, 3: 690}
    assert spread(7, {1: 5, 2: 5}) == {1: 4, 2: 3}
    assert spread(50, {1: 10, 2: 10}) == {1: 10, 2: 10}  # all there is

    cfg = config_from_dict(
        {
            "task": {"name": "arith", "ops": ["add"]},
            "raw": {"size": 300, "difficulties": [1, 2, 3]},
            "eval": {"difficulties": [1, 2, 3], "n_per_difficulty": 100},
        }
    )
    task = make_task(cfg)
    tests = test_problems(task, cfg)
    u = [f"{a}+{b}" for a in range(10) for b in range(10)]
    u += [f"{a}+{b}" for a in range(10, 30) for b in range(10, 30)]
    val, _ = validation_problems(task, [1, 2, 3], 300, u, tests, set())
    by = {d: sum(p.difficulty == d for p in val) for d in (1, 2, 3)}
    assert by == {1: 0, 2: 150, 3: 150}
    keys = {overlap_key(p.id) for p in val}
    assert not keys & {overlap_key(i) for i in [*u, *(p.id for p in tests)]}
    # An older bench's per-difficulty size is that many per difficulty of U.
    bench = BenchConfig(lr_validation_per_difficulty=200)
    assert validation_size(bench, [1, 2, 3]) == 600
    assert validation_size(BenchConfig(), [1, 2, 3]) == 1000


def test_a_verdict_is_withheld_where_an_arms_learning_rate_is_at_the_grids_edge(tmp_path):
    """sp's rate is the grid's lowest: its comparisons (against the reference, against repeat
    and against the reference continued to its compute) get no verdict, and the verdict line
    says why; repeat vs fresh keeps its verdict."""
    from selfplay.bench.report import paired_differences, render_markdown, summarize_bench

    bench, arms, rows = _plot_bench(tmp_path)
    plain = summarize_bench(bench, arms, rows, [], 60.0)
    search = _search({"sp": 0.25})
    summary = summarize_bench(bench, arms, rows, [], 60.0, lr_search=search)
    verdict = summary["verdict"]
    assert (
        "sp: **no verdict** (-0.100 ± 0.124): sp's learning rate is at the grid's edge (x0.25), "
        "widen lr_factors"
    ) in verdict
    assert "sp against `repeat`: **no verdict**" in verdict
    by = {(c["arm"], c["reference"]): c for c in summary["comparisons"]}
    before = {(c["arm"], c["reference"]): c for c in plain["comparisons"]}
    assert by[("repeat", "fresh")] == before[("repeat", "fresh")]
    assert by[("repeat", "fresh")]["verdict"] != "no verdict"
    for key in [("sp", "fresh"), ("sp", "repeat")]:
        assert by[key]["verdict"] == "no verdict" and "x0.25" in by[key]["no_verdict"]
        # The numbers are as they were: only the call is withheld.
        assert by[key]["p_holm"] == before[key]["p_holm"] and by[key]["mean"] == before[key]["mean"]
    (at_compute,) = summary["comparisons_at_compute"]
    assert at_compute["verdict"] == "no verdict"
    # The tables and the plot's labels say the same.
    paired = next(s for s in summary["sections"] if s["heading"].startswith("Paired with"))
    assert [r[-2] for r in paired["rows"] if r[0] == "sp"] == ["no verdict", "no verdict"]
    assert "sp's learning rate is at the grid's edge" in render_markdown(summary)
    assert [r["verdict"] for r in paired_differences(bench, arms, rows, search)] == [
        c["verdict"] for c in summary["comparisons"] + summary["comparisons_at_compute"]
    ]
    # Both arms of a comparison at the edge: both named.
    both = summarize_bench(
        bench, arms, rows, [], 60.0, lr_search=_search({"sp": 1.0, "repeat": 0.25})
    )
    assert (
        "the learning rates of sp (x1) and repeat (x0.25) are at the grid's edge, widen lr_factors"
        in both["verdict"]
    )
    # The search's table: each seed's own best, and which choices are at the edge.
    (section,) = [s for s in summary["sections"] if s["heading"].startswith("Learning rate")]
    assert "each seed's best" in section["columns"]
    sp_row = next(r for r in section["rows"] if r[0] == "sp")
    assert sp_row[-1] == "x0.25 = 0.000125 (lowest factor)" and sp_row[-2] == "x0.25, x0.25"
    assert "on seeds 0 and 1 at each factor" in section["text"][0]
    assert "d1 has no problem left" in section["text"][0]
    assert "1 of 3 arms chose the lowest or highest factor" in section["text"][0]


def test_a_search_that_did_not_record_edges_calls_its_verdicts_as_before(tmp_path):
    """A published search written before choices were marked (one seed, no ``edge``): its
    verdicts are called, and its table reads as it did."""
    from selfplay.bench.lr_search import lr_section
    from selfplay.bench.report import summarize_bench

    bench, arms, rows = _plot_bench(tmp_path)
    old = _search({"sp": 0.25})
    old["seed"] = old.pop("seeds")[0]
    del old["validation"]["requested"]
    for r in old["arms"].values():
        del r["edge"], r["accuracy_by_seed"]
    plain = summarize_bench(bench, arms, rows, [], 60.0)
    summary = summarize_bench(bench, arms, rows, [], 60.0, lr_search=old)
    assert summary["verdict"] == plain["verdict"]
    assert summary["comparisons"] == plain["comparisons"]
    section = lr_section(old)
    assert section["columns"] == ["arm", "learning rate", "x0.25", "x0.5", "x1", "chosen"]
    assert section["text"][0].startswith(
        "Every arm ran its first 1 round(s) on seed 0 at each factor of its own learning rate; "
        "its rounds then train, for every seed, at the one whose model answered best a "
        "validation set of 1000 train-split problems"
    )
    assert section["text"][0].endswith("The evaluation set never enters the choice.")


# ------------------------------------------------------------------------------------------------
# Seed models beside the paired differences


def _seed_bench(seed_acc: list[float], diffs: dict[str, list[float]]):
    """A primary family of comparisons against ``fresh`` with the given per-seed differences,
    and the seed models' accuracies."""
    names = ["fresh", *diffs]
    seeds = list(range(len(seed_acc)))
    bench = BenchConfig(
        seeds=seeds, reference="fresh", arms={n: [] for n in names},
        primary=[f"{a} vs fresh" for a in diffs],
    )  # fmt: skip
    final = {("fresh", s): {"acc_in": 0.7} for s in seeds}
    for a, ds in diffs.items():
        final.update({(a, s): {"acc_in": 0.7 + d} for s, d in zip(seeds, ds, strict=True)})
    rows = [
        {"arm": "fresh", "seed": s, "iteration": 0, "acc_in": a} for s, a in enumerate(seed_acc)
    ]
    return bench, {n: None for n in names}, rows, final


def test_the_seed_models_accuracy_stands_beside_each_primary_difference():
    from selfplay.bench.report import _seed_models_section, compare_arms

    seed_acc = [0.52, 0.89, 0.75, 0.60, 0.81]
    follows = [0.2 * a - 0.2 for a in seed_acc]  # weaker seeds lose more: r = 1
    noise = [0.01, -0.02, 0.015, -0.01, 0.0]  # unrelated to the seed model
    bench, arms, rows, final = _seed_bench(seed_acc, {"sp": follows, "sp2": noise})
    comps = compare_arms(bench, list(arms), final)
    (section,) = _seed_models_section(bench, arms, rows, comps)
    assert section["heading"] == "Seed models and the primary comparisons"
    assert section["columns"] == ["seed", "seed model acc in", "Δ sp − fresh", "Δ sp2 − fresh"]
    assert section["rows"][0] == ["0", "0.520", f"{follows[0]:+.3f}", "+0.010"]
    assert len(section["rows"]) == 5
    sd = statistics.stdev(seed_acc)
    assert f"over 5 seeds: 0.520–0.890 (range 0.370), SD {sd:.3f}." in section["text"][0]
    sp, sp2 = section["after"]
    assert sp == (
        "sp − fresh: slope +0.200 (least squares: difference per unit of seed-model accuracy), "
        "r = +1.00 over 5 seeds: the effect follows the seed model's strength."
    )
    assert sp2.startswith("sp2 − fresh: slope ") and "follows" not in sp2
    # Without a primary family, or with one seed model, no such section.
    plain = BenchConfig(seeds=bench.seeds, reference="fresh", arms=bench.arms)
    assert _seed_models_section(plain, arms, rows, compare_arms(plain, list(arms), final)) == []
    one = _seed_bench([0.5], {"sp": [0.1]})
    assert (
        _seed_models_section(one[0], one[1], one[2], compare_arms(one[0], ["fresh", "sp"], one[3]))
        == []
    )


def test_seed_models_of_equal_accuracy_have_no_slope():
    from selfplay.bench.report import _seed_models_section, compare_arms

    bench, arms, rows, final = _seed_bench([0.7, 0.7, 0.7], {"sp": [0.1, 0.2, 0.0]})
    (section,) = _seed_models_section(bench, arms, rows, compare_arms(bench, list(arms), final))
    assert "SD 0.000" in section["text"][0]
    assert section["after"] == ["sp − fresh: the seed models' accuracy does not vary; no slope."]


def test_a_primary_bench_reports_its_seed_models_in_the_summary(tmp_path):
    from selfplay.bench.report import summarize_bench

    bench, arms, rows = _plot_bench(tmp_path)
    bench.primary = ["sp vs repeat", "sp vs fresh"]
    for r in rows:
        if r["iteration"] == 0:
            r["acc_in"] = [0.6, 0.8, 0.4][r["seed"]]
    summary = summarize_bench(bench, arms, rows, [], 60.0)
    headings = [s["heading"] for s in summary["sections"]]
    assert (
        headings.index("Seed models and the primary comparisons")
        == headings.index("Secondary comparisons (final acc in)") + 1
    )
    (section,) = [s for s in summary["sections"] if s["heading"].startswith("Seed models")]
    want = [a - b for a, b in zip(FINAL_ACC["sp"], FINAL_ACC["repeat"], strict=True)]
    assert [r[2] for r in section["rows"]] == [f"{d:+.3f}" for d in want]
    assert all("follows the seed model's strength" in line for line in section["after"])


# ------------------------------------------------------------------------------------------------
# An arm short of its budget: the verdict line says by how much


def test_the_verdict_line_states_an_arms_shortfall_of_the_budget(tmp_path):
    from selfplay.bench.report import budget_shortfall, summarize_bench

    bench, arms, rows = _plot_bench(tmp_path)
    assert "of the budget" not in summarize_bench(bench, arms, rows, [], 60.0)["verdict"]
    for r in rows:
        r["budget_steps"] = 10 * r["iteration"]
        if r["arm"] == "sp" and r["iteration"] == 2:
            r["steps"] = 19 + (r["seed"] == 0)  # 19.33 of 20 steps, the mean over seeds
            r["capped_by_max_epochs"] = True
    summary = summarize_bench(bench, arms, rows, [], 60.0)
    verdict = summary["verdict"]
    short = "sp trained 96% of the budget (19.3 of 20 steps)"
    assert f"sp is **inconclusive** (-0.100 ± 0.124; {short})" in verdict
    assert verdict.count(short) == 2  # against the reference and against repeat
    final = {(r["arm"], r["seed"]): r for r in rows if r["iteration"] == 2}
    assert budget_shortfall(final, "sp", [1, 2]) == "sp trained 95% of the budget (19 of 20 steps)"
    assert budget_shortfall(final, "fresh", [0, 1, 2]) is None  # it met the budget
    # Rows that do not record the budget's steps (results written before) say nothing.
    del final[("sp", 1)]["budget_steps"]
    assert budget_shortfall(final, "sp", [1, 2]) is None


def test_a_rounds_budget_in_steps_is_the_plan_the_trainer_follows():
    from selfplay.bench.runner import planned_steps
    from selfplay.config import config_from_dict
    from selfplay.training.plan import plan_matched

    cfg = config_from_dict({"train": {"tokens": 2500, "batch_size": 16}})
    u = {"examples": 150, "supervised_tokens": 1500}  # 10 supervised tokens an example
    step = 16 * 1500 / 150
    rng = random.Random(0)
    for budget in (2500, 75_000, 7):
        lengths = [rng.randint(5, 15) for _ in range(400)]
        plan = plan_matched(lengths, budget, step)
        assert planned_steps(cfg, u, budget) == plan.steps
        capped = plan_matched(lengths[:20], budget, step, max_epochs=1)
        assert capped.steps <= planned_steps(cfg, u, budget)
    assert planned_steps(cfg, u, 0) == 0
    assert planned_steps(cfg, u, None) is None
    grpo = config_from_dict({"loop": {"method": "grpo"}})
    assert planned_steps(grpo, u, 2500) is None
