"""Throughput of the loop's three workhorses on this machine: generation tokens/s (HF backend),
training tokens/s (TRL SFT) and verifier chains/s. Medians over repeats; writes JSON.

    python scripts/cpu_bench.py --out benchmarks/results/cpu_bench.json [--preset tiny] [--repeats 3]

``--decoders`` measures only the hf backend's decoders against each other (transformers
``generate``, selfplay's decode loop ``generation.decoder: loop``, and the loop with continuous
batching, ``generation.refill``) at one batch size, runs alternating so that load from other
processes falls on all of them:

    OMP_NUM_THREADS=1 python scripts/cpu_bench.py --decoders --out benchmarks/results/decode_loop_cpu.json

Refilling only pays where rows stop at different lengths: an untrained preset writes until
``max_new_tokens`` on every row, so give ``--model`` a trained checkpoint (a run's
``seed/model``) for completions of real, ragged lengths:

    OMP_NUM_THREADS=1 python scripts/cpu_bench.py --decoders --model runs/x/seed/model \
        --out benchmarks/results/decode_refill_cpu.json
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


DECODERS = {
    "generate": {"decoder": "generate"},
    "loop": {"decoder": "loop"},
    "loop-refill": {"decoder": "loop", "refill": True},
}


def bench_decoders(
    model, tok, task, batch_size: int, repeats: int, max_new_tokens: int = 64
) -> dict:
    """tok/s (tokens written up to each stop) of the decoders in :data:`DECODERS`, greedy and
    sampled (n=4), ``batch_size`` sequences per batch, 4 batches' worth of prompts of 2-4
    digits, shuffled, per run; medians of ``repeats``."""
    from selfplay.generation.hf import generate

    rng = random.Random(1)
    problems = [p for d in (2, 3, 4) for p in task.sample_problems("train", d, 400, rng)]
    rng.shuffle(problems)
    out = {}
    for mode, n in [("sampled", 4), ("greedy", 1)]:
        prompts = [p.prompt for p in problems][: 4 * batch_size // n]
        runs = {name: [] for name in DECODERS}
        steps_saved = None
        for r in range(repeats):
            for name, options in DECODERS.items():
                t0 = time.perf_counter()
                comps = generate(
                    model,
                    tok,
                    prompts,
                    n=n,
                    greedy=mode == "greedy",
                    max_new_tokens=max_new_tokens,
                    batch_size=batch_size,
                    seed=r,
                    **options,
                )
                seconds = time.perf_counter() - t0
                runs[name].append(sum(c.tokens for c in comps) / seconds)
                if name == "generate" and steps_saved is None:
                    lengths = [c.tokens for c in comps]
                    steps_saved = {
                        "mean_tokens": statistics.fmean(lengths),
                        "max_tokens": max(lengths),
                    }
        rates = {d: statistics.median(v) for d, v in runs.items()}
        out[mode] = {
            "n": n,
            "sequences": len(prompts) * n,
            "completion_tokens": steps_saved,
            "tokens_per_s": rates,
            "runs": runs,
            "loop_over_generate": rates["loop"] / rates["generate"],
            "refill_over_loop": rates["loop-refill"] / rates["loop"],
        }
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
    ap.add_argument(
        "--decoders", action="store_true", help="only compare the hf decoders (generate, loop)"
    )
    ap.add_argument("--batch-size", type=int, default=256, help="with --decoders")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="with --decoders")
    ap.add_argument("--model", help="a saved model directory instead of an untrained --preset")
    args = ap.parse_args()

    import datasets
    import torch
    from transformers.utils import logging as hf_logging

    from selfplay.engine.models import build_char_tokenizer, build_model, count_params
    from selfplay.tasks.arith import ArithTask

    datasets.disable_progress_bars()
    hf_logging.set_verbosity_error()
    task = ArithTask(["add"])
    tok = build_char_tokenizer()
    if args.model:
        from selfplay.engine.models import load_model

        model, tok = load_model(args.model)
    else:
        model = build_model(args.preset, tok)
    result = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "preset": None if args.model else args.preset,
        "model": args.model,
        "params": count_params(model),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.decoders:
        result["batch_size"] = args.batch_size
        result["max_new_tokens"] = args.max_new_tokens
        result["decoders"] = bench_decoders(
            model, tok, task, args.batch_size, args.repeats, args.max_new_tokens
        )
        out.write_text(json.dumps(result, indent=2) + "\n")
        for mode, r in result["decoders"].items():
            rates = r["tokens_per_s"]
            print(
                f"{mode:<8} generate {rates['generate']:>8,.0f}  loop {rates['loop']:>8,.0f}"
                f"  loop-refill {rates['loop-refill']:>8,.0f} tok/s  loop/generate "
                f"{r['loop_over_generate']:.2f}  refill/loop {r['refill_over_loop']:.2f}  "
                f"(batch {args.batch_size}, n={r['n']}, {args.model or args.preset}, "
                f"{result['machine']['torch_threads']} thread(s))"
            )
        print(f"wrote {out}")
        return
    result |= {
        "verifier": bench_verifier(task, args.repeats),
        "generation": bench_generation(model, tok, task, [64, 256, 1024], args.repeats),
        "training": bench_training(model, tok, task, args.repeats, args.train_tokens),
    }
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
