"""``selfplay bench``: is verified self-generated data worth more than raw data, at equal budget?

Every arm of a seed starts from the same seed model (trained once on U, shared by hard links) and
gets the same training-token budget (``loop.iterations x train.tokens``). Arms are runs of the
ordinary loop with config overrides, so each one is a normal, resumable run directory:

    <bench>/bench.yaml                    resolved bench config
    <bench>/seed_<s>/<arm>/...            one run directory per arm and seed
    <bench>/seed_<s>/<arm>@compute/       a raw arm continued to self-play's compute (compute_match)
    <bench>/results.parquet               one row per arm x seed x checkpoint
    <bench>/summary.json                  the report as data: tables (mean +- 95% CI over seeds)
    <bench>/report.md, *.png              the summary rendered, and plots
"""

from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path

import yaml

from selfplay.bench.climb import (
    collect_climb_results,
    is_climb_bench,
    summarize_climb,
    write_climb_plots,
)
from selfplay.bench.config import COMPUTE_SUFFIX, BenchConfig, arm_config, continued_arms
from selfplay.bench.executors import Job, open_executor
from selfplay.bench.progress import bench_progress, bench_seconds, run_seconds
from selfplay.bench.report import render_markdown, summarize_bench, write_plots
from selfplay.config import RunConfig
from selfplay.engine import artifacts
from selfplay.engine.loop import run
from selfplay.engine.rundir import link_run, read_metrics, share_seed
from selfplay.engine.sources import tokens_per_step
from selfplay.errors import ConfigError


def run_bench(
    bench: BenchConfig, arms: dict[str, RunConfig], console=None, progress: bool = True
) -> list[dict]:
    """Run (or resume) every arm for every seed, then write results, report and plots."""
    t0 = time.perf_counter()
    bench_dir = bench.bench_dir
    bench_dir.mkdir(parents=True, exist_ok=True)
    artifacts.write_text(bench_dir / "bench.yaml", yaml.safe_dump(asdict(bench), sort_keys=False))
    with open_executor(bench) or nullcontext() as ex:
        search = None
        if bench.lr_factors:
            from selfplay.bench.lr_search import chosen_overrides, run_lr_search

            search = run_lr_search(
                bench, arms, lambda jobs: run_configs(bench, jobs, console, progress, ex)
            )
            # The arms as they run: each with its chosen learning rate (bench.yaml says so).
            bench = chosen_overrides(bench, search)
            arms = {name: arm_config(bench, name, bench.seeds[0]) for name in bench.arms}
            artifacts.write_text(
                bench_dir / "bench.yaml", yaml.safe_dump(asdict(bench), sort_keys=False)
            )
        if ex is not None:
            run_arms_parallel(bench, arms, console, progress, ex)
        else:
            run_arms(bench, arms, console, progress)
        if bench.compute_match:
            run_continued(bench, arms, console, progress, ex)
        where = ex.describe() if ex is not None else "1 process on this machine"
    climb = is_climb_bench(arms)
    rows = collect_climb_results(bench, arms) if climb else collect_results(bench, arms)
    artifacts.write_parquet(bench_dir / "results.parquet", rows)
    if climb:
        threshold = next(iter(arms.values())).loop.frontier.threshold
        plots = write_climb_plots(bench_dir, rows, threshold)
    else:
        plots = write_plots(bench_dir, rows, bench, arms, lr_search=search)
    # The stages' recorded times, so a resumed bench reports its whole time, not this session's.
    dirs = [[arm_config(bench, a, s).run_dir for a in arms] for s in bench.seeds]
    wall = bench_seconds(dirs) + continued_seconds(bench, arms)
    if search:
        from selfplay.bench.lr_search import search_seconds

        wall += search_seconds(bench_dir)
    prov = write_provenance(bench_dir, wall, time.perf_counter() - t0, bench.jobs, where=where)
    if climb:
        summary = summarize_climb(bench, arms, rows, plots, prov)
    else:
        summary = summarize_bench(bench, arms, rows, plots, prov, lr_search=search)
    write_summary(bench_dir, summary)
    return rows


def run_arms(bench: BenchConfig, arms: dict[str, RunConfig], console, progress: bool) -> None:
    """Every arm x seed in turn; a seed's first arm trains the seed model the others share."""
    with bench_progress(len(bench.seeds) * len(arms), console, bar=progress) as step:
        for seed in bench.seeds:
            shared = None
            for name in arms:
                cfg = arm_config(bench, name, seed)
                step(f"seed {seed}, arm [cyan]{name}[/]", cfg.run_dir)
                if shared is not None:
                    share_seed(shared, cfg.run_dir / "seed")
                run(cfg, console=None, progress=progress)
                shared = shared or cfg.run_dir / "seed"
        step()


def continued_configs(bench: BenchConfig, arms: dict[str, RunConfig], seed: int) -> list:
    """``(name, config)`` of each raw arm continued to self-play's compute for one seed: the
    same run with as many more rounds as its training FLOPs need to reach the most expensive
    self-play arm's total (training + generation), in ``<arm>@compute/``. Empty until every arm
    of the seed has finished."""
    configs = {name: arm_config(bench, name, seed) for name in arms}
    spent = {}
    for name, cfg in configs.items():
        stages = _finished_stages(cfg)
        if stages is None:
            return []
        spent[name] = (stages[-1]["cumulative"]["flops"] - stages[0]["cumulative"]["flops"], stages)
    target = max(f for n, (f, _) in spent.items() if arms[n].loop.data_source == "selfplay")
    out = []
    for name in continued_arms(arms, bench.compute_match_arms):
        base = configs[name]
        flops, stages = spent[name]
        rounds = len(stages) - 1
        per_round = flops / rounds if rounds and flops > 0 else 0.0
        extra = math.ceil((target - flops) / per_round - 1e-9) if per_round else 0
        out.append(
            (
                name + COMPUTE_SUFFIX,
                replace(
                    base,
                    output_dir=str(base.run_dir.with_name(name + COMPUTE_SUFFIX)),
                    loop=replace(base.loop, iterations=rounds + max(extra, 0)),
                ),
            )
        )
    return out


def bench_runs(bench: BenchConfig, arms: dict[str, RunConfig], seed: int) -> list:
    """``(name, config)`` of every run of a seed: the arms, then any continued raw arms."""
    runs = [(name, arm_config(bench, name, seed)) for name in arms]
    if bench.compute_match:
        runs += [
            (name, cfg)
            for name, cfg in continued_configs(bench, arms, seed)
            if (cfg.run_dir / "config.yaml").exists()
        ]
    return runs


def _finished_stages(cfg: RunConfig) -> list[dict] | None:
    """A run's stage records when all its rounds are done, else ``None``."""
    if not (cfg.run_dir / "metrics.jsonl").exists():
        return None
    stages = read_metrics(cfg.run_dir)
    return stages if len(stages) == cfg.loop.iterations + 1 else None


def run_continued(
    bench: BenchConfig, arms: dict[str, RunConfig], console, progress: bool, ex=None
) -> None:
    """Continue the raw arms (``compute_match_arms``, default every raw arm) to the self-play
    arms' compute (``compute_match``); rerunning resumes."""
    jobs = []
    for seed in bench.seeds:
        for name, cfg in continued_configs(bench, arms, seed):
            src = arm_config(bench, name.removesuffix(COMPUTE_SUFFIX), seed).run_dir
            link_run(src, cfg.run_dir)
            jobs.append((f"seed {seed}, [cyan]{name}[/] ({cfg.loop.iterations} rounds)", cfg))
    run_configs(bench, jobs, console, progress, ex)


def run_configs(bench: BenchConfig, jobs: list, console, progress: bool, ex=None) -> None:
    """Independent runs ``(label, config)``, each resumable: one after another here, or on the
    executor ``ex``."""
    if not jobs:
        return
    workers = ex.workers if ex is not None else 1
    with bench_progress(len(jobs), console, bar=progress, jobs=workers) as step:
        if ex is None:
            for label, cfg in jobs:
                step(label, cfg.run_dir)
                run(cfg, console=None, progress=progress)
        else:
            todo = [Job(label, cfg) for label, cfg in jobs]
            run_jobs(ex, todo, step, lambda job: [])
        step()


def continued_seconds(bench: BenchConfig, arms: dict[str, RunConfig]) -> float:
    """Seconds the continued rounds took (the rounds they share with their arm counted once)."""
    total = 0.0
    for seed in bench.seeds:
        for name, cfg in bench_runs(bench, arms, seed)[len(arms) :]:
            arm = arm_config(bench, name.removesuffix(COMPUTE_SUFFIX), seed)
            total += max(0.0, run_seconds(cfg.run_dir)[1] - run_seconds(arm.run_dir)[1])
    return total


def run_jobs(ex, todo: list[Job], step, then) -> None:
    """Runs the ``todo`` jobs on the executor ``ex`` (:mod:`selfplay.bench.executors`), as many
    at once as it holds, and what ``then(job)`` returns once a job has finished (a seed's arms
    after its seed model). While they run, their progress (each run's bars, written to its
    ``progress.json``) is shown through ``step.live``. A failed run stops the bench (finished
    runs stay; rerunning resumes)."""
    from concurrent.futures import FIRST_COMPLETED, wait

    queue, running = list(todo), {}
    try:
        while queue or running:
            while queue and len(running) < ex.workers:
                job = queue.pop(0)
                sharing = min(ex.workers, len(running) + 1 + len(queue))
                running[ex.submit(job, sharing)] = job
            done, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
            for fut in done:
                job = running.pop(fut)
                try:
                    fut.result()
                except ConfigError as exc:
                    raise ConfigError(f"{job.label}: {exc}") from None
                if job.arm:
                    step(job.label, job.cfg.run_dir, finished=True)
                queue += then(job)
            step.live({t.label: t.cfg.run_dir for t in running.values()})
    except BaseException:
        for fut in running:
            ex.cancel(fut)
        raise


def run_arms_parallel(
    bench: BenchConfig, arms: dict[str, RunConfig], console, progress: bool, ex
) -> None:
    """The arms on the executor ``ex`` (processes here, or a Ray cluster's tasks), as many at
    once as it holds. Each seed's seed model is trained first, alone or beside other seeds' (in
    the seed's first arm); once it is done, the seed's arms all start from it."""
    names = list(arms)

    def arm_job(seed: int, name: str) -> Job:
        return Job(f"seed {seed}, arm [cyan]{name}[/]", arm_config(bench, name, seed))

    def then(job: Job) -> list[Job]:
        if not job.seed_only:
            return []
        seed = job.cfg.seed
        shared = job.cfg.run_dir / "seed"
        for other in names[1:]:
            share_seed(shared, arm_config(bench, other, seed).run_dir / "seed")
        return [arm_job(seed, name) for name in names]

    seeds = [
        Job(f"seed {s}, seed model", arm_config(bench, names[0], s), seed_only=True, arm=False)
        for s in bench.seeds
    ]
    total = len(bench.seeds) * len(arms)
    with bench_progress(total, console, bar=progress, jobs=ex.workers) as step:
        run_jobs(ex, seeds, step, then)


def write_provenance(
    bench_dir: Path,
    wall: float,
    elapsed: float | None = None,
    jobs: int = 1,
    commit: str | None = None,
    where: str | None = None,
) -> dict:
    """``provenance.json``: the code's commit, the libraries, the machine, the runs' recorded
    times (summed over resumed invocations; with ``jobs`` > 1 several ran at once) and the
    elapsed time of the invocation that finished it, so a published table can say what
    produced it. ``commit``: the one the results were produced at, when that is not the code
    at hand (a run published later); whether its tree had uncommitted changes is then not
    known (``None``). ``where``: the executor that ran the runs, when one did (e.g. a Ray
    cluster's)."""
    import platform

    from selfplay.engine.rundir import environment, git

    ran_here = commit is None
    commit = commit or git("rev-parse", "HEAD") or "unknown"
    path = bench_dir / "provenance.json"
    prev = artifacts.read_json(path) if path.exists() else {}
    # A bench finished over several invocations (resumed, or arms added) says so: every commit
    # that ran part of it, and the elapsed time of them all.
    commits = [c for c in prev.get("commits") or [prev.get("commit")] if c and c != commit]
    total = (prev.get("elapsed_total_seconds") or prev.get("elapsed_seconds") or 0.0) + (
        elapsed or 0.0
    )
    out = {
        "commit": commit,
        "commits": [*commits, commit],
        "invocations": prev.get("invocations", 1 if prev else 0) + 1,
        "elapsed_total_seconds": total,
        "uncommitted_changes": (
            bool(git("status", "--porcelain", "--untracked-files=no")) if ran_here else None
        ),
        "versions": environment(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            **cpu_model(),
        },
        "wall_seconds": wall,
        "elapsed_seconds": elapsed,
        "jobs": jobs,
    }
    if where:
        out["executor"] = where
    artifacts.write_json(path, out)
    return out


def cpu_model() -> dict:
    """The CPU's model name and the vector instructions torch's kernels use on it: a rerun on
    one machine is bit-identical, but the same commit and seed have given other numbers on
    another machine, and the kind of CPU is the first thing to compare."""
    import torch

    out = {"cpu_capability": torch.backends.cpu.get_cpu_capability()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                out["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return out


def write_summary(bench_dir: Path, summary: dict) -> None:
    """``summary.json`` (the report as data) and ``report.md`` rendered from it."""
    artifacts.write_json(bench_dir / "summary.json", summary)
    artifacts.write_text(bench_dir / "report.md", render_markdown(summary))


# ------------------------------------------------------------------------------------------------
# Results


def collect_results(bench: BenchConfig, arms: dict[str, RunConfig]) -> list[dict]:
    """One row per arm x seed x checkpoint (the seed model is every arm's checkpoint 0). Costs
    and data counts are totals since the seed model; ``round_*`` columns are the round's own."""
    rows = []
    for seed in bench.seeds:
        for name, cfg in bench_runs(bench, arms, seed):
            if not (cfg.run_dir / "metrics.jsonl").exists():
                continue
            stages = read_metrics(cfg.run_dir)
            fresh_path = cfg.run_dir / "fresh.json"
            fresh = artifacts.read_json(fresh_path) if fresh_path.exists() else {}
            seed_row = stages[0]
            u = seed_row["raw"]
            u_sup = u.get("supervised_tokens") or u.get("tokens") or 1
            steps = supervised = seen = distinct_sum = distinct_max = 0
            budget_steps: int | None = 0
            capped = False
            for st in stages:
                ev, cum, tr = st["eval"], st["cumulative"], st["train"]
                if st["iteration"]:
                    planned = planned_steps(cfg, u, tr.get("budget"))
                    if planned is None or budget_steps is None:
                        budget_steps = None
                    else:
                        budget_steps += planned
                    steps += tr.get("steps", 0)
                    supervised += tr.get("supervised_tokens", 0)
                    seen += tr.get("steps", 0) * tr.get("batch_size", 0)
                    distinct_sum += tr.get("distinct_examples", 0)
                    distinct_max = max(distinct_max, tr.get("distinct_examples", 0))
                    capped = capped or bool(tr.get("capped_by_max_epochs"))
                unique = _unique_examples(cfg, distinct_sum, distinct_max, u, fresh)
                row = {
                    "arm": name,
                    "seed": seed,
                    "stage": st["stage"],
                    "iteration": st["iteration"],
                    "source": cfg.loop.data_source,
                    "fresh_multiplier": cfg.loop.fresh_multiplier
                    if cfg.loop.data_source == "raw-fresh"
                    else None,
                    "steps": steps,
                    "supervised_tokens": supervised,
                    "round_steps": tr.get("steps", 0) if st["iteration"] else 0,
                    "round_supervised_tokens": tr.get("supervised_tokens", 0)
                    if st["iteration"]
                    else 0,
                    "round_budget": tr.get("budget") if st["iteration"] else None,
                    "budget_steps": budget_steps,
                    "unique_examples": unique,
                    "examples_seen": seen,
                    "reuse": seen / unique if unique else None,
                    "capped_by_max_epochs": capped,
                    "train_tokens": cum["train_tokens"] - seed_row["cumulative"]["train_tokens"],
                    "generated_tokens": cum["generated_tokens"],
                    "verifier_calls": cum["verifier_calls"],
                    "flops": float(cum["flops"] - seed_row["cumulative"]["flops"]),
                    "seconds": cum.get("seconds", 0.0) - seed_row["cumulative"].get("seconds", 0.0),
                    "epochs_of_U": supervised / u_sup,
                    "acc_in": ev.get("accuracy_in"),
                    "acc_in_se": ev.get("accuracy_in_se"),
                    "n_in": ev.get("n_in"),
                    "acc_harder": ev.get("accuracy_harder"),
                    "acc_harder_se": ev.get("accuracy_harder_se"),
                    "n_harder": ev.get("n_harder"),
                    "valid": ev.get("valid", {}).get("all"),
                    "pass_rate": st.get("generate", {}).get("pass_rate"),
                    "kept": st.get("filter", {}).get("kept"),
                    "distinct_correct_chains": st.get("generate", {}).get(
                        "distinct_correct_chains_per_problem"
                    ),
                    "unique_answers": st.get("generate", {}).get("unique_answers_per_problem"),
                    "seed_train_tokens": seed_row["train"]["tokens"],
                    "seed_supervised_tokens": seed_row["train"].get("supervised_tokens"),
                    "fresh_size": fresh.get("size"),
                    "overlap_u": fresh.get("overlap_u"),
                    "overlap_u_twins": fresh.get("overlap_u_twins"),
                    "overlap_eval": fresh.get("overlap_eval"),
                }
                for key, by_d in ev.items():
                    if isinstance(by_d, dict) and key.startswith(("pass@", "maj@")):
                        row[key] = by_d.get("all")
                for d, v in ev["accuracy"].items():
                    if d != "all":
                        row[f"acc_{d}"] = v
                        row[f"n_{d}"] = ev.get("n", {}).get(d)
                rows.append(row)
    return rows


def planned_steps(cfg: RunConfig, u: dict, budget: int | None) -> int | None:
    """The optimizer steps a round's budget of supervised tokens asks for (before
    ``train.max_epochs`` can cap them: :func:`selfplay.training.plan_matched`); ``None`` where
    the rows cannot say (a round without a recorded budget, a round trained by GRPO)."""
    if budget is None or cfg.loop.method != "expert_iteration" or not u.get("supervised_tokens"):
        return None
    return max(1, round(budget / tokens_per_step(cfg, u))) if budget > 0 else 0


def _unique_examples(cfg: RunConfig, distinct_sum: int, distinct_max: int, u: dict, fresh: dict):
    """Distinct examples trained on since the seed model: a raw stream's slices are disjoint until
    it wraps around its corpus; an accumulating self-play set holds every earlier round's."""
    if cfg.loop.data_source == "raw-repeat":
        return min(distinct_sum, u.get("examples", distinct_sum))
    if cfg.loop.data_source == "raw-fresh":
        return min(distinct_sum, fresh.get("size", distinct_sum))
    return distinct_max if cfg.train.data == "accumulate" else distinct_sum
