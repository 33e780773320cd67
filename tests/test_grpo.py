"""GRPO rounds: the verifier's reward, one tiny round on CPU (parameters move, the loss is logged,
samples carry rewards and advantages, the budget is counted), resume, config errors."""

from __future__ import annotations

import pytest
import torch

from selfplay.config import ConfigError, config_from_dict
from selfplay.engine import artifacts
from selfplay.engine.grpo import reward_of, run_grpo_round
from selfplay.engine.models import init_model
from selfplay.engine.sampling import draw_pool
from selfplay.tasks import Problem, make_task
from selfplay.verify import StepMark, Verdict

OK, BAD = StepMark("1+2=3 c0", True), StepMark("1+2=4 c0", False, "wrong sum")


@pytest.mark.parametrize(
    "verdict, credit, reward",
    [
        (Verdict("correct", "3", (OK, OK)), 0.0, 1.0),  # valid chain
        (Verdict("correct", "3", (OK, OK)), 0.5, 1.0),  # valid: credit never lowers it
        (Verdict("correct", "3", ()), 0.0, 0.0),  # right answer, no chain: not valid
        (Verdict("correct", "3", (OK, BAD)), 0.0, 0.0),  # right answer through a bad step
        (Verdict("wrong", "4", (OK, BAD)), 0.0, 0.0),  # wrong, credit off
        (Verdict("wrong", "4", (OK, BAD)), 0.5, 0.25),  # half the steps ok x 0.5
        (Verdict("wrong", "4", (OK, OK, OK, BAD)), 0.8, 0.6),
        (Verdict("correct", "3", (BAD, BAD)), 0.5, 0.0),  # no step ok
        (Verdict("unparseable", None, ()), 0.5, 0.0),  # nothing to credit
        (Verdict("timeout", None, (OK,)), 0.5, 0.5),
    ],
)
def test_reward_of_verdicts(verdict, credit, reward):
    assert reward_of(verdict, credit) == pytest.approx(reward)


def grpo_config(tmp_path, **grpo):
    return config_from_dict(
        {
            "name": "grpo",
            "device": "cpu",
            "output_dir": str(tmp_path / "run"),
            "loop": {"problems_per_iter": 16, "pool_difficulties": [1, 2]},
            "generation": {"max_new_tokens": 12},
            "grpo": {"num_generations": 4, "batch_size": 16, "max_steps": 2, "lr": 1e-3, **grpo},
        }
    )


class DigitTask:
    """arith prompts, but a completion is valid iff it starts with a digit: a random model gets
    that right about a tenth of the time, so groups mix rewards and the gradient is not zero."""

    name = "digit"

    def __init__(self, cfg):
        self.inner = make_task(cfg)

    def sample_problems(self, split, difficulty, n, rng):
        return self.inner.sample_problems(split, difficulty, n, rng)

    def max_new_tokens(self, difficulty):
        return 12

    def verify(self, problem: Problem, completion: str) -> Verdict:
        ok = completion[:1].isdigit()
        return Verdict("correct" if ok else "wrong", completion[:1], (StepMark(completion, ok),))


def seed_dir(tmp_path, cfg):
    model, tok = init_model(cfg, "cpu")
    path = tmp_path / "model_0"
    artifacts.save_model_dir(path, model, tok)
    return path


def test_grpo_round_trains_and_records(tmp_path):
    cfg = grpo_config(tmp_path)
    task = DigitTask(cfg)
    m0 = seed_dir(tmp_path, cfg)
    pool = draw_pool(task, cfg, 1)
    out = tmp_path / "run" / "iter_001"
    m = run_grpo_round(cfg, task, m0, pool, out, prev_cumulative={"flops": 5, "train_tokens": 7})

    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(str(m0)).state_dict()
    after = AutoModelForCausalLM.from_pretrained(str(out / "model")).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)

    samples = artifacts.read_parquet(out / "samples.parquet")
    # 2 steps x 16 completions, in groups of 4 that share a problem.
    assert len(samples) == 32
    assert {s["origin"] for s in samples} == {"grpo"}
    groups: dict[int, list] = {}
    for s in samples:
        groups.setdefault(s["group"], []).append(s)
        assert s["reward"] == (1.0 if s["text"][:1].isdigit() else 0.0)
        assert s["tokens"] >= 1 and s["prompt_tokens"] == len(s["prompt"])
    assert len(groups) == 8
    for g in groups.values():
        assert len({s["problem_id"] for s in g}) == 1
        assert sorted(s["sample_idx"] for s in g) == [0, 1, 2, 3]
        rewards = [s["reward"] for s in g]
        mean = sum(rewards) / 4
        for s in g:
            # TRL's default advantage: reward minus the group mean, over the group's std.
            assert (s["advantage"] > 0) == (s["reward"] > mean)
            assert s["kept"] == (abs(s["advantage"]) > 1e-6)
            if len(set(rewards)) == 1:
                assert s["advantage"] == 0.0 and s["filter_reason"].startswith("no signal")
    assert any(s["advantage"] != 0 for s in samples), "no group had mixed rewards"

    gen, train = m["generate"], m["train"]
    assert train["steps"] == 2 and len(train["losses"]) == 2
    assert train["epochs"] == pytest.approx(8 / len(pool))  # 8 problems drawn
    assert gen["generated_tokens"] == sum(s["tokens"] for s in samples)
    assert gen["prompt_tokens"] == sum(s["prompt_tokens"] for s in samples)
    assert train["loss_tokens"] == gen["generated_tokens"]  # one pass over every completion
    assert train["tokens"] == gen["generated_tokens"] + gen["prompt_tokens"]
    n = train["params"]
    # The ledger's rule: 6N per trained token, 2N per generated and prefilled (prompt) token.
    assert m["cumulative"]["flops"] == 5 + 6 * n * train["tokens"] + 2 * n * (
        gen["generated_tokens"] + gen["prompt_tokens"]
    )
    assert m["cumulative"]["prefill_tokens"] == gen["prompt_tokens"]
    assert m["cumulative"]["train_tokens"] == 7 + train["tokens"]
    assert m["cumulative"]["generated_tokens"] == gen["generated_tokens"]
    assert m["cumulative"]["verifier_calls"] == 32
    assert m["grpo"]["mean_reward"] == pytest.approx(sum(s["reward"] for s in samples) / 32)
    assert artifacts.read_json(out / "metrics.json") == m


def test_grpo_kl_counts_reference_passes(tmp_path):
    cfg = grpo_config(tmp_path, beta=0.1, max_steps=1)
    task = DigitTask(cfg)
    m = run_grpo_round(cfg, task, seed_dir(tmp_path, cfg), draw_pool(task, cfg, 1), tmp_path / "o")
    assert m["train"]["scoring_tokens"] == m["train"]["tokens"]  # one reference forward pass
    assert len(m["grpo"]["kl_by_step"]) == 1


def test_grpo_round_on_arith_with_step_credit(tmp_path):
    cfg = grpo_config(tmp_path, step_credit=0.5, max_steps=1)
    task = make_task(cfg)
    pool = draw_pool(task, cfg, 1)
    m = run_grpo_round(cfg, task, seed_dir(tmp_path, cfg), pool, tmp_path / "o")
    samples = artifacts.read_parquet(tmp_path / "o" / "samples.parquet")
    ids = {p.id: p for p in pool}
    for s in samples:
        v = task.verify(ids[s["problem_id"]], s["text"])
        assert s["status"] == v.status and s["reward"] == reward_of(v, 0.5)
    assert m["grpo"]["step_credit"] == 0.5


def test_finished_round_is_skipped(tmp_path, monkeypatch):
    cfg = grpo_config(tmp_path, max_steps=1)
    task = DigitTask(cfg)
    m0 = seed_dir(tmp_path, cfg)
    pool = draw_pool(task, cfg, 1)
    out = tmp_path / "round"
    first = run_grpo_round(cfg, task, m0, pool, out)

    import selfplay.engine.grpo as grpo

    def boom(*a, **k):
        raise AssertionError("a finished round was run again")

    monkeypatch.setattr(grpo, "train_grpo", boom)
    assert run_grpo_round(cfg, task, m0, pool, out) == first
    # Killed after training but before metrics.json: the round's artifacts are reused too.
    (out / "metrics.json").unlink()
    again = run_grpo_round(cfg, task, m0, pool, out)
    assert again["train"] == first["train"]


@pytest.mark.parametrize(
    "grpo, key",
    [
        ({"num_generations": 1}, "grpo.num_generations"),
        ({"num_generations": 4, "batch_size": 10}, "grpo.batch_size"),
        ({"max_steps": 0}, "grpo.max_steps"),
        ({"lr": 0}, "grpo.lr"),
        ({"beta": -0.1}, "grpo.beta"),
        ({"epsilon": 0}, "grpo.epsilon"),
        ({"step_credit": 1.0}, "grpo.step_credit"),
        ({"stepcredit": 0.5}, "grpo.stepcredit"),
        ({"lr": "fast"}, "grpo.lr"),
    ],
)
def test_bad_grpo_config_is_one_line(grpo, key):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"grpo": grpo})
    msg = str(err.value)
    assert msg.startswith(key) and "\n" not in msg


def test_bad_trl_option_is_one_line(tmp_path):
    cfg = grpo_config(tmp_path, trl={"num_iteratons": 2})
    task = DigitTask(cfg)
    pool = draw_pool(task, cfg, 1)
    with pytest.raises(ConfigError, match=r"^grpo\.trl\.num_iteratons: .*num_iterations"):
        run_grpo_round(cfg, task, seed_dir(tmp_path, cfg), pool, tmp_path / "o")
    cfg = grpo_config(tmp_path, trl={"num_generations": 3})  # 16 completions per step
    with pytest.raises(ConfigError) as err:
        run_grpo_round(cfg, task, seed_dir(tmp_path, cfg), pool, tmp_path / "o2")
    assert str(err.value).startswith("grpo") and "\n" not in str(err.value)


def test_empty_pool_is_a_config_error(tmp_path):
    cfg = grpo_config(tmp_path)
    with pytest.raises(ConfigError, match="practice pool is empty"):
        run_grpo_round(cfg, DigitTask(cfg), tmp_path / "none", [], tmp_path / "o")


@pytest.mark.parametrize(
    "over, key",
    [
        (["loop.data_source=raw-repeat"], "loop.data_source"),
        (["loop.rationalize=true"], "loop.rationalize"),
        (["train.init_from=base"], "train.init_from"),
        (["loop.fill_budget=true"], "loop.fill_budget"),
        (["generation.adaptive_max_n=8"], "generation.adaptive_max_n"),
        (["loop.method=ppo"], "loop.method"),
    ],
)
def test_grpo_method_rejects_expert_iteration_options(over, key):
    with pytest.raises(ConfigError) as err:
        config_from_dict({}, ["loop.method=grpo", *over])
    assert str(err.value).startswith(key)
    config_from_dict({}, ["loop.method=grpo"])  # alone it is fine


@pytest.mark.slow
def test_grpo_iterations_evaluate_and_accumulate(tmp_path):
    import dataclasses

    from selfplay.engine.evaluation import test_problems
    from selfplay.engine.grpo import round_cost
    from selfplay.engine.loop import RunContext, run_round
    from selfplay.schedules.rounds import RoundsSchedule

    cfg = config_from_dict(
        {
            "output_dir": str(tmp_path / "run"),
            "device": "cpu",
            "loop": {"method": "grpo", "problems_per_iter": 8, "pool_difficulties": [1, 2]},
            "generation": {"max_new_tokens": 12, "batch_size": 32},
            "grpo": {"num_generations": 4, "batch_size": 8, "max_steps": 1},
            "eval": {"difficulties": [1, 2], "n_per_difficulty": 4, "k": 2},
        }
    )
    task = DigitTask(cfg)
    seed = cfg.run_dir / "seed"
    model, tok = init_model(cfg, "cpu")
    artifacts.save_model_dir(seed / "model", model, tok)
    base = {"train_tokens": 100, "generated_tokens": 0, "verifier_calls": 0, "flops": 10}
    artifacts.write_json(seed / "metrics.json", {"cumulative": {**base, "seconds": 1.0}})
    tests = test_problems(task, cfg)
    ctx = RunContext(cfg, task, tests, "cpu", [], {}, progress=False)
    m1 = run_round(ctx, RoundsSchedule(), 1)
    # Round 2 with more steps (as a compute-matched comparison sets grpo.max_steps).
    cfg2 = dataclasses.replace(cfg, grpo=dataclasses.replace(cfg.grpo, max_steps=2))
    ctx2 = RunContext(cfg2, task, tests, "cpu", [], {}, progress=False)
    m2 = run_round(ctx2, RoundsSchedule(), 2)
    assert m1["train"]["init_from"] == "seed" and m2["train"]["init_from"] == "iter_001"
    assert m1["train"]["steps"] == 1 and m2["train"]["steps"] == 2
    assert set(m2["eval"]["accuracy"]) == {"1", "2", "all"}
    c1, c2 = m1["cumulative"], m2["cumulative"]
    n = m1["train"]["params"]
    assert c1["flops"] == 10 + round_cost(m1).flops(n)
    assert c2["flops"] == c1["flops"] + round_cost(m2).flops(n)
    assert (
        c2["generated_tokens"]
        == m1["generate"]["generated_tokens"] + m2["generate"]["generated_tokens"]
    )
    assert run_round(ctx, RoundsSchedule(), 2) == m2


@pytest.mark.slow
def test_loop_method_grpo_runs_rounds_and_resumes(tmp_path, monkeypatch):
    from selfplay.engine.loop import STOP_ENV, StageInterrupt, run

    data = {
        "output_dir": str(tmp_path / "run"),
        "device": "cpu",
        "raw": {"size": 100, "difficulties": [1, 2]},
        "seed_train": {"tokens": 3000},
        "loop": {"method": "grpo", "iterations": 1, "problems_per_iter": 8},
        "generation": {"batch_size": 32},
        "grpo": {"num_generations": 4, "batch_size": 8, "max_steps": 2},
        "eval": {"difficulties": [1, 2], "n_per_difficulty": 4, "k": 2},
    }
    cfg = config_from_dict(data)
    monkeypatch.setenv(STOP_ENV, "iter_001/grpo")
    with pytest.raises(StageInterrupt):
        run(cfg, progress=False)
    it = cfg.run_dir / "iter_001"
    assert (it / "samples.parquet").exists() and not (it / "metrics.json").exists()
    monkeypatch.delenv(STOP_ENV)
    rows = run(cfg, progress=False)  # resumes: the GRPO stage is read back, then evaluated
    assert [r["stage"] for r in rows] == ["seed", "iter_001"]
    m = rows[-1]
    assert m["method"] == "grpo" and m["train"]["steps"] == 2 and "accuracy" in m["eval"]
    assert m["cumulative"]["generated_tokens"] == m["generate"]["generated_tokens"]
    samples = artifacts.read_parquet(it / "samples.parquet")
    assert len(samples) == 16 and {"reward", "advantage"} <= set(samples[0])
