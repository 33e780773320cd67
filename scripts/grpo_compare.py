"""GRPO against expert iteration from the same seed model, at equal generated tokens per round.

For each seed: the expert-iteration run (``selfplay run`` of the config) trains model_0 and its
rounds; the GRPO arm copies that run's seed stage and, in each round, takes as many GRPO steps as
spend the tokens expert iteration generated in that round (its mean completion length times
``grpo.batch_size`` per step), on the same practice pool, then evaluates on the same test set.

    python scripts/grpo_compare.py --seeds 0 1 --out benchmarks/results/grpo/compare.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from selfplay.config import load_config
from selfplay.engine import artifacts, rundir
from selfplay.engine.evaluation import test_problems
from selfplay.engine.loop import RunContext, prepare_run_dir, run, run_round
from selfplay.schedules.rounds import RoundsSchedule
from selfplay.tasks import make_task


def run_grpo_arm(cfg, ei_dir: Path, out_dir: Path) -> list[dict]:
    """GRPO rounds from the expert-iteration run's model_0, each taking as many steps as spend
    the tokens expert iteration generated in that round."""
    task = make_task(cfg)
    tests = test_problems(task, cfg)
    prepare_run_dir(cfg)  # config.yaml, so `selfplay inspect` and `report` read the arm
    if not (out_dir / "seed").exists():
        shutil.copytree(ei_dir / "seed", out_dir / "seed")
    rows = [artifacts.read_json(out_dir / "seed" / "metrics.json")]
    for k in range(1, cfg.loop.iterations + 1):
        ei = artifacts.read_json(ei_dir / f"iter_{k:03d}" / "metrics.json")["generate"]
        per_sample = ei["generated_tokens"] / ei["samples"]
        steps = max(1, math.ceil(ei["generated_tokens"] / (cfg.grpo.batch_size * per_sample)))
        at = dataclasses.replace(cfg, grpo=dataclasses.replace(cfg.grpo, max_steps=steps))
        ctx = RunContext(at, task, tests, "cpu", [], {}, progress=False)
        rec = run_round(ctx, RoundsSchedule(), k)
        rows.append(rec)
        print(
            f"  grpo round {k}: {steps} steps, generated {rec['generate']['generated_tokens']:,} "
            f"(EI {ei['generated_tokens']:,}), reward {rec['grpo']['mean_reward']:.3f}, "
            f"acc {rec['eval']['accuracy']['all']:.3f}",
            flush=True,
        )
    return rows


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        e = r["eval"]
        out.append(
            {
                "stage": r["stage"],
                "accuracy": e["accuracy"],
                "valid": e.get("valid"),
                "accuracy_in": e["accuracy_in"],
                "accuracy_harder": e["accuracy_harder"],
                "pass_rate_practice": r.get("generate", {}).get("pass_rate"),
                "mean_reward": r.get("grpo", {}).get("mean_reward"),
                "train_steps": r.get("train", {}).get("steps"),
                "cumulative": r["cumulative"],
            }
        )
    return out


def environment() -> dict:
    """The run environment (``rundir.environment``, with the working tree's state) and the machine."""
    env = rundir.environment()
    if env["git"] != "unknown" and rundir.git("status", "--porcelain"):
        env["git"] += "-dirty"
    return {
        **env,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs ({platform.processor() or 'cpu'})",
        "load_average_at_start": os.getloadavg(),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/arith/rounds.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--runs", default="runs/grpo-compare")
    ap.add_argument("--out", default="benchmarks/results/grpo/compare.json")
    ap.add_argument(
        "--arm",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help="a GRPO arm and its overrides (of the run config, after the common ones); "
        "default: grpo (no overrides) and grpo-steps (grpo.step_credit=0.5)",
    )
    ap.add_argument("overrides", nargs="*", help="key=value overrides of the run config")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = {
        "what": __doc__.splitlines()[0],
        "config": args.config,
        "overrides": args.overrides,
        "environment": environment(),
        "seeds": {},
    }
    t_start = time.perf_counter()
    for seed in args.seeds:
        over = [*args.overrides, f"seed={seed}", "device=cpu"]
        ei_cfg = load_config(args.config, [*over, f"output_dir={args.runs}/ei-s{seed}"])
        t0 = time.perf_counter()
        print(f"seed {seed}: expert iteration", flush=True)
        ei_rows = run(ei_cfg, progress=False)
        t_ei = time.perf_counter() - t0
        arms = {"expert_iteration": {"rows": summary(ei_rows), "seconds": t_ei}}
        for spec in args.arm or ["grpo:", "grpo-steps:grpo.step_credit=0.5"]:
            name, _, extra = spec.partition(":")
            grpo_over = [x for x in extra.split(",") if x]
            run_over = [*over, f"output_dir={args.runs}/{name}-s{seed}", "loop.method=grpo"]
            cfg = load_config(args.config, [*run_over, *grpo_over])
            print(f"seed {seed}: {name}", flush=True)
            t0 = time.perf_counter()
            rows = run_grpo_arm(cfg, ei_cfg.run_dir, cfg.run_dir)
            arms[name] = {
                "rows": summary(rows),
                "seconds": time.perf_counter() - t0,
                "overrides": grpo_over,
                "grpo_config": asdict(cfg.grpo),
            }
        result["seeds"][str(seed)] = arms
        result["wall_seconds"] = time.perf_counter() - t_start
        result["load_average_at_end"] = os.getloadavg()
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    for seed, arms in result["seeds"].items():
        for name, arm in arms.items():
            accs = " -> ".join(f"{r['accuracy']['all']:.3f}" for r in arm["rows"])
            gen = arm["rows"][-1]["cumulative"]["generated_tokens"]
            print(f"seed {seed} {name:>18}: accuracy {accs}  generated {gen:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
