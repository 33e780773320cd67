"""Training tokens/s with and without packing, and the two ways a packed step can reach the model:
TRL's padding-free batch (a step's rows concatenated into one sequence, the shape FlashAttention's
varlen kernels take) and selfplay's packed rows (``(rows, max_length)`` with per-example position
ids: what ``train.packing`` uses when the attention kernel is SDPA or eager). Runs alternate
so that load from other processes falls on every variant; medians; writes JSON.

    OMP_NUM_THREADS=1 python scripts/packing_bench.py --budget 20000 --out benchmarks/results/packing_cpu.json

tok/s counts the non-padding tokens trained on (prompt + completion) over the whole stage.
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

VARIANTS = ("padded", "packed-rows", "packed-concatenated")


def run_variant(variant: str, preset: str, examples, budget: int, batch: int) -> dict:
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from selfplay.config import TrainConfig
    from selfplay.engine.models import build_char_tokenizer, build_model
    from selfplay.training import build_trainer, count_tokens

    tok = build_char_tokenizer()
    model = build_model(preset, tok, seed=0)
    packed = variant != "padded"
    cfg = TrainConfig(batch_size=batch, lr=1e-3, max_length=512 if packed else 256, packing=packed)
    with tempfile.TemporaryDirectory() as d:
        trainer, seen = build_trainer(
            model, tok, examples, cfg, budget_tokens=budget, seed=0, work_dir=Path(d)
        )
        if variant == "packed-concatenated":  # TRL's own collator: one sequence per step
            trainer.data_collator = DataCollatorForLanguageModeling(
                pad_token_id=tok.pad_token_id, padding_free=True
            )
        t0 = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t0
    if packed:
        tokens = trainer.packed_tokens
    else:
        lengths = count_tokens(tok, examples)
        tokens = round(seen * sum(lengths) / len(lengths))
    return {"tokens": tokens, "steps": trainer.args.max_steps, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--budget", type=int, default=60_000, help="training tokens per run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import torch

    from selfplay.config import config_from_dict
    from selfplay.tasks import Example, make_task

    task = make_task(config_from_dict({}))
    rng = random.Random(1)
    problems = [p for d in (1, 2, 3, 4, 5) for p in task.sample_problems("train", d, 400, rng)]
    examples = [Example(p.prompt, task.gold_chain(p), p.id, p.difficulty, "raw") for p in problems]
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for r in range(args.repeats):
        for v in VARIANTS:
            res = run_variant(v, args.preset, examples, args.budget, args.batch)
            runs[v].append(res)
            print(f"repeat {r}: {v:20s} {res['tokens'] / res['seconds']:8.0f} tok/s", flush=True)
    out = {
        "what": "training tok/s on CPU: padded batches, packed rows, packed concatenated (TRL)",
        "preset": args.preset,
        "batch_size": args.batch,
        "budget_tokens": args.budget,
        "threads": torch.get_num_threads(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "load_average": os.getloadavg(),
        "median_tokens_per_second": {
            v: statistics.median(x["tokens"] / x["seconds"] for x in rs) for v, rs in runs.items()
        },
        "runs": runs,
    }
    med = out["median_tokens_per_second"]
    out["ratio_rows_over_concatenated"] = med["packed-rows"] / med["packed-concatenated"]
    out["ratio_rows_over_padded"] = med["packed-rows"] / med["padded"]
    print(json.dumps({k: out[k] for k in ("median_tokens_per_second",)}, indent=1))
    print(
        f"packed rows / concatenated {out['ratio_rows_over_concatenated']:.2f}x, "
        f"packed rows / padded {out['ratio_rows_over_padded']:.2f}x"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
