"""Throughput of the loop's three workhorses on this machine: generation tokens/s (HF backend),
training tokens/s (TRL SFT) and verifier chains/s. Medians over repeats; writes JSON.

    python scripts/cpu_bench.py --out benchmarks/results/cpu_bench.json [--preset tiny] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def bench_verifier(task, repeats: int) -> dict:
    rng = random.Random(0)
    problems = [p for d in range(1, 6) for p in task.sample_problems("train", d, 400, rng)]
    chains = [task.gold_chain(p) for p in problems]
    slipped = [task.gold_chain(p, "wrong_sum", rng) for p in problems]
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for p, c, s in zip(problems, chains, slipped, strict=True):
            task.verify(p, c)
            task.verify(p, s)
        rates.append(2 * len(problems) / (time.perf_counter() - t0))
    return {"chains_per_s": statistics.median(rates), "runs": rates, "chains": 2 * len(problems)}


def bench_generation(model, tok, task, batch_sizes: list[int], repeats: int) -> dict:
    from selfplay.generation.hf import generate

    rng = random.Random(1)
    problems = [p for d in (2, 3, 4) for p in task.sample_problems("train", d, 200, rng)]
    prompts = [p.prompt for p in problems]
    out = {}
    for bs in batch_sizes:
        rates = []
        for r in range(repeats):
            t0 = time.perf_counter()
            comps = generate(
                model, tok, prompts[: max(bs, 256)], n=4, max_new_tokens=64, batch_size=bs, seed=r
            )
            rates.append(sum(c.tokens for c in comps) / (time.perf_counter() - t0))
        out[str(bs)] = {"tokens_per_s": statistics.median(rates), "runs": rates}
    return out


def bench_training(model, tok, task, repeats: int, tokens: int) -> dict:
    from selfplay.config import TrainConfig
    from selfplay.training import train_sft

    rng = random.Random(2)
    problems = [p for d in (1, 2, 3, 4) for p in task.sample_problems("train", d, 500, rng)]
    from selfplay.tasks import Example

    data = [Example(p.prompt, task.gold_chain(p), p.id, p.difficulty, "raw") for p in problems]
    rates = []
    for r in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            res = train_sft(
                model,
                tok,
                data,
                TrainConfig(batch_size=64),
                budget_tokens=tokens,
                seed=r,
                work_dir=Path(d),
            )
        rates.append(res.tokens / res.seconds)
    return {
        "tokens_per_s": statistics.median(rates),
        "runs": rates,
        "tokens_per_run": tokens,
        "batch_size": 64,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/cpu_bench.json")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-tokens", type=int, default=100_000)
    args = ap.parse_args()

    import datasets
    import torch
    from transformers.utils import logging as hf_logging

    from selfplay.models import build_char_tokenizer, build_model, count_params
    from selfplay.tasks.arith import ArithTask

    datasets.disable_progress_bars()
    hf_logging.set_verbosity_error()
    task = ArithTask(["add"])
    tok = build_char_tokenizer()
    model = build_model(args.preset, tok)
    result = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "preset": args.preset,
        "params": count_params(model),
        "verifier": bench_verifier(task, args.repeats),
        "generation": bench_generation(model, tok, task, [64, 256, 1024], args.repeats),
        "training": bench_training(model, tok, task, args.repeats, args.train_tokens),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"verifier   {result['verifier']['chains_per_s']:>10,.0f} chains/s")
    for bs, r in result["generation"].items():
        print(
            f"generation {r['tokens_per_s']:>10,.0f} tok/s  (batch {bs}, n=4, sampling, {args.preset})"
        )
    print(
        f"training   {result['training']['tokens_per_s']:>10,.0f} tok/s  (TRL SFT, batch 64, {args.preset})"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
