"""The loop: one runner for every schedule (expert iteration: STaR / ReST-EM / RFT; or GRPO).

    raw corpus U --seed SFT--> model_0
    for k in 1..K:
        plan     = schedule.plan(k)                      (which problems, which filter; or stop)
        chains   = generate(model_{k-1}, problems, n each)
        verdicts = verify(chains)                         (every chain, step by step)
        kept     = filter(chains)                         (the plan's filter)
        model_k  = train(init, schedule.training_data(k)) (kept chains, U, raw data, mixtures)
        metrics  = evaluate(model_k, schedule.eval_problems(k))

A schedule (:mod:`selfplay.schedules`) only plans; the stages (:mod:`selfplay.engine.stages`), decoders,
trainers, evaluation and the cost ledger (:mod:`selfplay.engine.ledger`) are the same for all of them.
With ``loop.method: grpo`` the practice step is one GRPO stage (online RL with the verifier as
the reward, :mod:`selfplay.engine.grpo`) in place of generate, verify, filter and train. Each stage
writes its artifact atomically and is skipped when it exists, so rerunning a killed run resumes
from the last finished stage.
"""

from __future__ import annotations

from pathlib import Path

from selfplay.config import RunConfig
from selfplay.engine import artifacts, stages
from selfplay.engine.evaluation import test_problems
from selfplay.engine.ledger import Clock, Cost, add_cost
from selfplay.engine.metrics import filter_metrics, generation_metrics
from selfplay.engine.models import (
    build_char_tokenizer,
    load_tokenizer,
    resolve_device,
    setup_device,
)
from selfplay.engine.rundir import (
    check_run_dir,
    check_stages,
    prepare_run_dir,
    redo_stage,
    round_dir,
    seed_dir,
    write_metrics_log,
    writer_lock,
)
from selfplay.engine.sources import raw_corpus, raw_summary, tokens_per_step
from selfplay.engine.stages import MEMBER_SEED, STOP_ENV, StageInterrupt
from selfplay.engine.tracking import check_tracking, log_stage
from selfplay.errors import ConfigError
from selfplay.generation import check_backend
from selfplay.schedules import make_schedule
from selfplay.schedules.base import RoundPlan, RunContext, Schedule
from selfplay.tasks import make_task

__all__ = ["STOP_ENV", "RunContext", "StageInterrupt", "prepare_run_dir", "run", "run_round"]


def run(
    cfg: RunConfig,
    console=None,
    progress: bool = True,
    on_stage=None,
    until_seed: bool = False,
    lock_wait_s: float = 0.0,
    redo: str | None = None,
) -> list[dict]:
    """Run (or resume) the whole loop; returns one metrics record per finished stage.
    ``on_stage(metrics)`` is called after the seed stage and after every round; ``until_seed``
    stops after the seed stage (a bench trains a seed's shared model so); ``lock_wait_s``: how
    long to wait for another writer of the run directory (a retried attempt's predecessor);
    ``redo``: a stage (``seed``, ``iter_<k>``) to do again, with every stage after it.

    A resumed run first checks its finished stages' artifacts: a missing or damaged one is a
    one-line error naming it and the ``redo`` that writes it again."""
    task = make_task(cfg)  # the task's config checks come before anything is written
    check_tracking(cfg)
    check_backend(cfg)
    with writer_lock(cfg.run_dir, lock_wait_s):  # one writer per run directory
        if redo is not None:
            if not check_run_dir(cfg):  # the run there is this one: never another's stages
                raise ConfigError(f"--redo {redo}: {cfg.run_dir} holds no run to redo a stage of")
            removed = redo_stage(cfg.run_dir, redo)
            if console is not None:
                console.print(f"redo: removed {', '.join(f'{n}/' for n in removed)}")
        return _run(cfg, task, console, progress, on_stage, until_seed)


def _run(cfg: RunConfig, task, console, progress: bool, on_stage, until_seed: bool) -> list[dict]:
    schedule = make_schedule(cfg.loop.schedule)
    run_dir = prepare_run_dir(cfg)
    check_stages(run_dir)  # a finished stage whose artifacts are damaged is not built on
    device = resolve_device(cfg.device)
    setup_device(device)
    tests = test_problems(task, cfg)
    ctx = RunContext(cfg, task, tests, device, [], {}, progress, console)
    ctx.log(
        f"run dir [bold]{run_dir}[/]  device {device}  task {cfg.task.name}  "
        f"schedule {cfg.loop.schedule}  test problems {len(tests)}"
    )
    run_seed(ctx, schedule)
    if until_seed:
        return write_metrics_log(run_dir)
    stop = None
    for k in range(0, cfg.loop.iterations + 1):
        if k > 0:
            out = run_round(ctx, schedule, k)
            if isinstance(out, str):
                stop = out
                break
        write_metrics_log(run_dir)
        record = ctx.record(k)  # this stage's (a resumed run's log holds later ones too)
        log_stage(cfg, round_dir(run_dir, k), record)
        if on_stage:
            on_stage(record)
    schedule.finish(ctx, stop)
    return write_metrics_log(run_dir)


def run_seed(ctx: RunContext, schedule: Schedule) -> None:
    """Build the raw corpus U, train model_0 on it and evaluate it (``seed/``); fills ``ctx.raw``
    and ``ctx.u`` (U's size, tokens, supervised tokens: what the budgets are counted in)."""
    cfg, d = ctx.cfg, seed_dir(ctx.run_dir)
    drawn = (d / "raw.parquet").exists()
    ctx.raw = raw_corpus(cfg, ctx.task)
    if not drawn:
        stages.mark_done(d, "raw")
    tok = (
        load_tokenizer(cfg.model.name_or_path) if cfg.model.name_or_path else build_char_tokenizer()
    )
    ctx.u = raw_summary(ctx.run_dir, ctx.raw, tok)
    if not (d / "metrics.json").exists():
        clock = Clock()
        data, budget = schedule.seed_data(ctx)
        if not stages.is_done("train", d):
            ctx.log(
                f"[bold]seed[/]: model_0 on U = {len(ctx.raw)} examples, budget {budget:,} tokens"
            )
        train = stages.train_model(
            cfg, stages.seed_train_config(cfg), None, data, budget, tokens_per_step(cfg, ctx.u), d,
            seed=cfg.seed, device=ctx.device, progress="seed train" if ctx.progress else None,
            lora=cfg.model.lora if cfg.model.name_or_path else None,
        )  # fmt: skip
        ev = stages.evaluate_model(
            cfg, ctx.task, schedule.seed_eval(ctx), d / "model", d, seed=cfg.seed,
            device=ctx.device, progress=ctx.progress,
        )  # fmt: skip
        wall, cpu = clock.read()
        # Resumed after a kill, this session saw only part of the stage; its records say more.
        wall = max(wall, train["seconds"] + ev["seconds"])
        cost = Cost(train_tokens=train["tokens"], seconds=wall, cpu_seconds=cpu)
        out = {
            "stage": "seed",
            "iteration": 0,
            "raw": ctx.u,
            "train": train,
            "eval": ev["eval"],
            "seconds": {"train": train["seconds"], "eval": ev["seconds"], "total": wall},
            "cumulative": add_cost(None, cost, train["params"]),
        }
        artifacts.write_json(d / "metrics.json", out)
    schedule.after_seed(ctx)
    ctx.checkpoint(0)


def run_round(ctx: RunContext, schedule: Schedule, k: int) -> dict | str:
    """Round ``k``: plan, practise (generate -> verify -> filter -> train, or GRPO), evaluate;
    returns its metrics (read back if it already finished), or why the run stops before it."""
    cfg, it = ctx.cfg, round_dir(ctx.run_dir, k)
    if (it / "metrics.json").exists():
        ctx.checkpoint(k)
        return ctx.record(k)
    ctx.checkpoint(k - 1)
    clock = Clock()
    # Plan: what to practise (the frontier's probe measures model_{k-1} here), or stop.
    plan = schedule.plan(ctx, k)
    if isinstance(plan, str):
        return plan
    # Practise: generate -> verify -> filter -> train, or a GRPO stage.
    practice = METHODS[cfg.loop.method](ctx, schedule, k, plan, it)
    # Evaluate the new model.
    ev = stages.evaluate_model(
        cfg, ctx.task, schedule.eval_problems(ctx, k, plan, practice), it / "model", it,
        seed=cfg.seed, device=ctx.device, progress=ctx.progress,
    )  # fmt: skip
    wall, cpu = clock.read()
    # Resumed after a kill, this session saw only part of the round; its stages' records say more.
    wall = max(wall, sum(practice["seconds"].values()) + ev["seconds"])
    cost = practice["cost"]
    cost.seconds, cost.cpu_seconds = wall, cpu
    out = {
        "stage": it.name,
        "iteration": k,
        "source": cfg.loop.data_source,
        "method": cfg.loop.method,
        **practice["blocks"],
        "eval": ev["eval"],
        "seconds": {**practice["seconds"], "eval": ev["seconds"], "total": wall, "cpu": cpu},
        "cumulative": add_cost(ctx.record(k - 1)["cumulative"], cost, practice["params"]),
    }
    out |= schedule.summarize(ctx, k, plan, practice, ev["eval"])
    artifacts.write_json(it / "metrics.json", out)
    return out


def expert_iteration(ctx: RunContext, schedule: Schedule, k: int, plan: RoundPlan, it: Path):
    """Generate -> verify -> filter (if the plan practises any problem) -> train, for the run's
    model and a committee's other models."""
    cfg = ctx.cfg
    blocks: dict = {}
    samples: list[dict] = []
    cost = Cost()
    gen_seconds = 0.0
    if plan.problems:
        gen = stages.generate_chains(
            cfg, ctx.task, plan.model_dirs, plan.problems, it, seed=plan.seed,
            device=ctx.device, progress=ctx.progress, fill=plan.fill, greedy=plan.greedy,
            note=plan.note,
        )  # fmt: skip
        ver = stages.verify_chains(ctx.task, plan.problems, it)
        samples = stages.filter_chains(plan.select, it)
        blocks = {"generate": generation_metrics(samples, gen), "filter": filter_metrics(samples)}
        gen_seconds = gen["seconds"] + gen["verify_seconds"] + ver["seconds"]
        cost.generated_tokens = gen["generated_tokens"]
        cost.prefill_tokens = gen.get("prefill_tokens", 0)
        cost.verifier_calls = len(samples)
    data, budget = schedule.training_data(ctx, k, plan)
    init_dir = plan.model_dirs[0] if cfg.train.init_from == "previous" else ctx.checkpoint(0)
    step = tokens_per_step(cfg, ctx.u)
    progress = f"train {k}" if ctx.progress else None
    train = stages.train_model(
        cfg, cfg.train, init_dir, data, budget, step, it, seed=plan.train_seed,
        device=ctx.device, progress=progress, lora=cfg.model.lora,
        note={"init_from": str(init_dir.parent.relative_to(ctx.run_dir))},
    )  # fmt: skip
    members = [
        stages.train_model(
            cfg,
            cfg.train,
            prev,
            data,
            budget,
            step,
            where,
            seed=plan.train_seed + MEMBER_SEED * j,
            device=ctx.device,
            lora=cfg.model.lora,
        )  # fmt: skip
        for j, (prev, where) in enumerate(plan.members, start=1)
    ]
    blocks["train"] = train
    if members:
        blocks["members"] = members
    cost.train_tokens = train["tokens"] + sum(m["tokens"] for m in members)
    kept = [s for s in samples if s["kept"]]
    return {
        "blocks": blocks,
        "samples": samples,
        "cost": cost,
        "params": train["params"],
        "seconds": {"generate": gen_seconds, "train": train["seconds"]},
        # The hardest difficulty the round's model trained on a label of its own.
        "new_difficulty": max((s["difficulty"] for s in kept), default=None),
    }


def grpo(ctx: RunContext, schedule: Schedule, k: int, plan: RoundPlan, it: Path):
    """One GRPO stage on the plan's problems: online RL from model_{k-1} with the verifier as the
    reward; it samples while it trains, so it has no separate generate, filter or train stage."""
    from selfplay.engine.grpo import grpo_stage

    rec = grpo_stage(
        ctx.cfg, ctx.task, k, plan.model_dirs[0], plan.problems, it, device=ctx.device,
        progress=ctx.progress,
    )  # fmt: skip
    stages.mark_done(it, "grpo")
    samples = artifacts.read_parquet(it / "samples.parquet")
    rec["train"]["init_from"] = str(plan.model_dirs[0].parent.relative_to(ctx.run_dir))
    gen, tr = rec["generate"], rec["train"]
    cost = Cost(
        train_tokens=tr["tokens"], generated_tokens=gen["generated_tokens"],
        prefill_tokens=gen["prompt_tokens"], scored_tokens=tr["scoring_tokens"],
        verifier_calls=gen["samples"],
    )  # fmt: skip
    right = [s["difficulty"] for s in samples if s["status"] == "correct"]
    return {
        "blocks": {key: rec[key] for key in ("generate", "grpo", "filter", "train")},
        "samples": samples,
        "cost": cost,
        "params": tr["params"],
        "seconds": dict(rec["seconds"]),
        # GRPO keeps no labels: the longest difficulty it was rewarded on.
        "new_difficulty": max(right, default=None),
    }


METHODS = {"expert_iteration": expert_iteration, "grpo": grpo}
"""``loop.method`` -> the round's practice step."""
