"""The self-play loop (expert iteration: STaR / ReST-EM / RFT; or GRPO, ``loop.method: grpo``).

    raw corpus U --seed SFT--> model_0
    for k in 1..K:
        problems = pool of the round                       (train split)
        chains   = generate(model_{k-1}, problems, n each)
        verdicts = verify(chains)                           (every chain, step by step)
        kept     = filter(chains)                           (verified, dedup, per-problem cap)
        model_k  = train(init = base | model_{k-1}, data = kept (+ raw mix), token budget)
        metrics  = evaluate(model_k, held-out test split, raw difficulties and harder)

With ``loop.method: grpo`` a round is one GRPO stage (:mod:`selfplay.grpo`: online RL with the
verifier as the reward, on the same pool) followed by the same evaluation.
The raw baselines (``loop.data_source: raw-repeat | raw-fresh``) skip the first three stages and
train on their slice of raw data (:mod:`selfplay.sources`). Each stage (:mod:`selfplay.stages`)
writes its artifact atomically and is skipped when it exists, so rerunning a killed run resumes
from the last finished stage.
"""

from __future__ import annotations

from pathlib import Path

from selfplay import artifacts, stages
from selfplay.config import RunConfig
from selfplay.errors import ConfigError
from selfplay.evaluation import subset, test_problems
from selfplay.generation import check_backend
from selfplay.metrics import cumulative, filter_metrics, generation_metrics
from selfplay.models import build_char_tokenizer, load_tokenizer, resolve_device, setup_device
from selfplay.rundir import prepare_run_dir, round_dir, seed_dir, write_metrics_log
from selfplay.sampling import curriculum_frontier, draw_pool
from selfplay.sources import (
    kept_examples,
    raw_corpus,
    raw_summary,
    round_budget,
    seed_budget,
    tokens_per_step,
    training_set,
    unique_tokens,
)
from selfplay.stages import STOP_ENV, StageInterrupt
from selfplay.tasks import Example, Problem, Task, make_task
from selfplay.tracking import check_tracking, log_stage

__all__ = ["STOP_ENV", "StageInterrupt", "prepare_run_dir", "run", "run_round", "run_seed"]


def _log(console, msg: str) -> None:
    if console is not None:
        console.print(msg)


def run_seed(
    cfg: RunConfig, task: Task, tests: list[Problem], device: str, console=None, progress=True
) -> tuple[list[Example], dict]:
    """Build the raw corpus U, train model_0 on it and evaluate it; returns U and its summary
    (size, tokens, supervised tokens: what the budgets are counted in)."""
    d = seed_dir(cfg.run_dir)
    drawn = (d / "raw.parquet").exists()
    raw = raw_corpus(cfg, task)
    if not drawn:
        stages.mark_done(d, "raw")
    tok = (
        load_tokenizer(cfg.model.name_or_path) if cfg.model.name_or_path else build_char_tokenizer()
    )
    u = raw_summary(cfg.run_dir, raw, tok)
    if (d / "metrics.json").exists():
        _checkpoint(cfg, 0)
        return raw, u
    budget = seed_budget(cfg, u["supervised_tokens"])
    if not stages.is_done("train", d):
        _log(
            console,
            f"[bold]seed[/]: model_0 on U = {len(raw)} examples, {budget:,} supervised tokens",
        )
    train = stages.train_model(
        cfg,
        stages.seed_train_config(cfg),
        None,
        raw,
        budget,
        tokens_per_step(cfg, u),
        d,
        seed=cfg.seed,
        device=device,
        progress="seed train" if progress else None,
        lora=cfg.model.lora if cfg.model.name_or_path else None,
    )
    ev = stages.evaluate_model(
        cfg, task, tests, d / "model", d, seed=cfg.seed, device=device, progress=progress
    )
    seconds = {"train": train["seconds"], "eval": ev["seconds"]}
    seconds["total"] = seconds["train"] + seconds["eval"]
    out = {
        "stage": "seed",
        "iteration": 0,
        "raw": u,
        "train": train,
        "eval": ev["eval"],
        "seconds": seconds,
        "cumulative": cumulative(None, train["params"], train["tokens"], 0, 0, seconds["total"]),
    }
    artifacts.write_json(d / "metrics.json", out)
    return raw, u


def _frontier(cfg: RunConfig, k: int) -> int | None:
    """With ``loop.curriculum``: the round's frontier difficulty, from earlier rounds' pass rates."""
    if not cfg.loop.curriculum:
        return None
    earlier = [artifacts.read_json(round_dir(cfg.run_dir, j) / "metrics.json") for j in range(1, k)]
    return curriculum_frontier(cfg, [m["generate"]["pass_rate_by_difficulty"] for m in earlier])


def _fill(cfg: RunConfig, task: Task, k: int, u: dict, frontier, tok) -> stages.Fill | None:
    """With ``loop.fill_budget``: the plan that fills the round's budget with unique kept chains."""
    if not cfg.loop.fill_budget:
        return None
    earlier = 0
    if cfg.train.data == "accumulate":
        earlier = sum(unique_tokens(tok, kept_examples(cfg.run_dir, [j])) for j in range(1, k))
    quota = round_budget(cfg, k, u["supervised_tokens"])
    if cfg.train.raw_mix:
        quota = round(quota * (1 - cfg.train.raw_mix))
    return stages.Fill(
        quota_tokens=quota,
        earlier_tokens=earlier,
        max_draws=cfg.loop.fill_max_draws,
        draw=lambda n, drawn: draw_pool(task, cfg, k, frontier, draw=n, exclude=drawn),
    )


def _checkpoint(cfg: RunConfig, k: int) -> Path:
    """Round ``k``'s checkpoint (0: the seed model); a finished round's that is gone is an error."""
    d = round_dir(cfg.run_dir, k) / "model"
    if not (d / "config.json").exists():
        raise ConfigError(
            f"{d}: the checkpoint of a finished stage is missing; delete train.json, eval.json "
            f"and metrics.json in {d.parent} to train it again"
        )
    return d


def run_round(
    cfg: RunConfig,
    task: Task,
    k: int,
    raw: list[Example],
    u: dict,
    tests: list[Problem],
    device: str,
    progress: bool = True,
) -> dict:
    """Round ``k``: its stages in order; returns its metrics (read back if it already finished)."""
    it = round_dir(cfg.run_dir, k)
    if (it / "metrics.json").exists():
        _checkpoint(cfg, k)
        return artifacts.read_json(it / "metrics.json")
    if cfg.loop.method == "grpo":
        from selfplay.grpo import run_grpo_iteration

        _checkpoint(cfg, k - 1)
        frontier = _frontier(cfg, k)
        return run_grpo_iteration(cfg, task, k, tests, device, progress=progress, frontier=frontier)
    prev = _checkpoint(cfg, k - 1)
    init_dir = prev if cfg.train.init_from == "previous" else _checkpoint(cfg, 0)
    tok = load_tokenizer(prev)
    seed = cfg.seed * 1000 + k
    out = {"stage": it.name, "iteration": k, "source": cfg.loop.data_source}
    gen_seconds, verifier_calls, generated, prefill = 0.0, 0, 0, 0

    selfplay = cfg.loop.data_source == "selfplay"
    if selfplay:
        frontier = _frontier(cfg, k)
        problems = draw_pool(task, cfg, k, frontier)
        fill = _fill(cfg, task, k, u, frontier, tok)
        gen = stages.generate_chains(
            cfg, task, prev, problems, it, seed=seed, device=device, progress=progress,
            fill=fill, note={"frontier": frontier},
        )  # fmt: skip
        ver = stages.verify_chains(task, problems, it)
        samples = stages.filter_chains(cfg.filters, it)
        out["generate"] = generation_metrics(samples, gen)
        out["filter"] = filter_metrics(samples)
        gen_seconds = gen["seconds"] + gen["verify_seconds"] + ver["seconds"]
        verifier_calls, generated = len(samples), gen["generated_tokens"]
        prompts = [s["generation_prompt"] or s["prompt"] for s in samples]
        prefill = (
            sum(map(len, tok(prompts, add_special_tokens=False)["input_ids"])) if prompts else 0
        )

    data = training_set(cfg, task, k, raw, u["supervised_tokens"], tok, tests)
    budget = round_budget(cfg, k, u["supervised_tokens"])
    train = stages.train_model(
        cfg, cfg.train, init_dir, data, budget, tokens_per_step(cfg, u), it, seed=seed,
        device=device, progress=f"train {k}" if progress else None, lora=cfg.model.lora,
        note={"init_from": str(init_dir.parent.relative_to(cfg.run_dir))},
    )  # fmt: skip
    # The seed model and the last round see the full evaluation set, the rounds between a subset.
    final = k == cfg.loop.iterations
    probe = tests if final else subset(tests, cfg.eval.n_intermediate)
    ev = stages.evaluate_model(
        cfg, task, probe, it / "model", it, seed=cfg.seed, device=device, progress=progress
    )

    out["train"] = train
    out["eval"] = ev["eval"]
    out["seconds"] = {"generate": gen_seconds, "train": train["seconds"], "eval": ev["seconds"]}
    out["seconds"]["total"] = sum(out["seconds"].values())
    before = artifacts.read_json(round_dir(cfg.run_dir, k - 1) / "metrics.json")["cumulative"]
    out["cumulative"] = cumulative(
        before, train["params"], train["tokens"], generated, verifier_calls,
        out["seconds"]["total"], prefill,
    )  # fmt: skip
    artifacts.write_json(it / "metrics.json", out)
    return out


def run(cfg: RunConfig, console=None, progress: bool = True, on_stage=None) -> list[dict]:
    """Run (or resume) the whole loop; returns one metrics record per finished stage.
    ``on_stage(metrics)`` is called after the seed stage and after every round."""
    if cfg.loop.schedule == "frontier":
        from selfplay.frontier import run_frontier

        return run_frontier(cfg, console, progress, on_stage)
    task = make_task(cfg)  # the task's config checks come before anything is written
    check_tracking(cfg)
    run_dir = prepare_run_dir(cfg)
    device = resolve_device(cfg.device)
    setup_device(device)
    check_backend(cfg)
    tests = test_problems(task, cfg)
    _log(
        console,
        f"run dir [bold]{run_dir}[/]  device {device}  task {cfg.task.name}  "
        f"test problems {len(tests)}",
    )
    raw, u = run_seed(cfg, task, tests, device, console, progress)
    write_metrics_log(run_dir)
    seed_metrics = artifacts.read_json(seed_dir(run_dir) / "metrics.json")
    log_stage(cfg, seed_dir(run_dir), seed_metrics)
    if on_stage:
        on_stage(seed_metrics)
    for k in range(1, cfg.loop.iterations + 1):
        metrics = run_round(cfg, task, k, raw, u, tests, device, progress)
        write_metrics_log(run_dir)
        log_stage(cfg, round_dir(run_dir, k), metrics)
        if on_stage:
            on_stage(metrics)
    return write_metrics_log(run_dir)
