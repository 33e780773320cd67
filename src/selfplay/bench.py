"""``selfplay bench``: is verified self-generated data worth more than raw data, at equal budget?

Every arm of a seed starts from the same seed model (trained once on U, shared by hard links) and
gets the same training-token budget (``loop.iterations x train.tokens``). Arms are runs of the
ordinary loop with config overrides, so each one is a normal, resumable run directory:

    <bench>/bench.yaml                    resolved bench config
    <bench>/seed_<s>/<arm>/...            one run directory per arm and seed
    <bench>/results.parquet               one row per arm x seed x checkpoint
    <bench>/summary.json                  the report as data: tables (mean +- 95% CI over seeds)
    <bench>/report.md, *.png              the summary rendered, and plots
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import yaml

from selfplay import artifacts
from selfplay.bench_config import BenchConfig, arm_config
from selfplay.bench_report import render_markdown, summarize_bench, write_plots
from selfplay.config import RunConfig
from selfplay.loop import run


def _share_seed(src: Path, dst: Path) -> None:
    """Give an arm the seed model another arm trained (hard links; atomic rename)."""
    if (dst / "metrics.json").exists() or not (src / "metrics.json").exists():
        return
    tmp = dst.with_name(f".seed.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp, copy_function=os.link)
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)


def run_bench(
    bench: BenchConfig, arms: dict[str, RunConfig], console=None, progress: bool = True
) -> list[dict]:
    """Run (or resume) every arm for every seed, then write results, report and plots."""
    bench_dir = bench.bench_dir
    bench_dir.mkdir(parents=True, exist_ok=True)
    artifacts.write_text(bench_dir / "bench.yaml", yaml.safe_dump(asdict(bench), sort_keys=False))
    t0 = time.perf_counter()
    total = len(bench.seeds) * len(arms)
    done = 0
    for seed in bench.seeds:
        shared = None
        for name in arms:
            cfg = arm_config(bench, name, seed)
            done += 1
            if console is not None:
                console.print(
                    f"[bold]bench[/] {done}/{total}: seed {seed}, arm [cyan]{name}[/]  ({time.perf_counter() - t0:.0f}s so far)"
                )
            if shared is not None:
                _share_seed(shared, cfg.run_dir / "seed")
            run(cfg, console=None, progress=progress)
            shared = shared or cfg.run_dir / "seed"
    rows = collect_results(bench, arms)
    artifacts.write_parquet(bench_dir / "results.parquet", rows)
    plots = write_plots(bench_dir, rows)
    summary = summarize_bench(bench, arms, rows, plots, wall=time.perf_counter() - t0)
    write_summary(bench_dir, summary)
    return rows


def write_summary(bench_dir: Path, summary: dict) -> None:
    """``summary.json`` (the report as data) and ``report.md`` rendered from it."""
    artifacts.write_json(bench_dir / "summary.json", summary)
    artifacts.write_text(bench_dir / "report.md", render_markdown(summary))


# ------------------------------------------------------------------------------------------------
# Results


def collect_results(bench: BenchConfig, arms: dict[str, RunConfig]) -> list[dict]:
    """One row per arm x seed x checkpoint (the seed model is every arm's checkpoint 0)."""
    rows = []
    for seed in bench.seeds:
        for name in arms:
            cfg = arm_config(bench, name, seed)
            path = cfg.run_dir / "metrics.jsonl"
            if not path.exists():
                continue
            stages = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            seed_row = stages[0]
            u_tokens = seed_row["raw"].get("tokens") or 1
            for st in stages:
                ev, cum = st["eval"], st["cumulative"]
                row = {
                    "arm": name,
                    "seed": seed,
                    "stage": st["stage"],
                    "iteration": st["iteration"],
                    "source": cfg.loop.data_source,
                    "fresh_multiplier": cfg.loop.fresh_multiplier
                    if cfg.loop.data_source == "raw-fresh"
                    else None,
                    "train_tokens": cum["train_tokens"] - seed_row["cumulative"]["train_tokens"],
                    "generated_tokens": cum["generated_tokens"],
                    "verifier_calls": cum["verifier_calls"],
                    "flops": float(cum["flops"] - seed_row["cumulative"]["flops"]),
                    "seconds": cum.get("seconds", 0.0) - seed_row["cumulative"].get("seconds", 0.0),
                    "epochs_of_U": (cum["train_tokens"] - seed_row["cumulative"]["train_tokens"])
                    / u_tokens,
                    "acc_in": ev.get("accuracy_in"),
                    "acc_harder": ev.get("accuracy_harder"),
                    "valid": ev.get("valid", {}).get("all"),
                    "pass_rate": st.get("generate", {}).get("pass_rate"),
                    "kept": st.get("filter", {}).get("kept"),
                    "distinct_correct_chains": st.get("generate", {}).get(
                        "distinct_correct_chains_per_problem"
                    ),
                    "unique_answers": st.get("generate", {}).get("unique_answers_per_problem"),
                    "reuse": st["train"].get("reuse") if st["iteration"] else None,
                    "seed_train_tokens": seed_row["train"]["tokens"],
                }
                for key, by_d in ev.items():
                    if isinstance(by_d, dict) and key.startswith(("pass@", "maj@")):
                        row[key] = by_d.get("all")
                for d, v in ev["accuracy"].items():
                    if d != "all":
                        row[f"acc_{d}"] = v
                rows.append(row)
    return rows
