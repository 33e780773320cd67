"""Throughput on a GPU: generation tok/s per backend and batch size, training tok/s and MFU, and
one loop iteration of configs/arith/rounds.yaml against the CPU figure. Prints a table and
writes JSON.

    python scripts/gpu_bench.py --out benchmarks/results/gpu_bench.json      # on the GPU machine
    python scripts/gpu_bench.py --smoke                                      # CPU, tiny, < 1 min

Goals it reports against: generation >= 0.5M tok/s for ``base`` at batch 1024 (best backend),
training >= 40% MFU for ``base`` (bf16 dense peak of the card), a loop iteration >= 10x
faster than on the 2-core CPU machine, and training through TRL costing at most 10% more time per
token than a plain PyTorch loop (``trl_overhead``, the worst preset). Measurements run most
important first (``base`` at batch 1024, ``base`` training through TRL, the loop iteration, the
plain loop on ``base``) and stop starting new ones once ``--budget-seconds`` is spent, so a short
device window still yields the headline numbers.

Generation uses untrained models, which rarely stop early: the worst case for padding and cache
length, as in ``scripts/cpu_bench.py``. ``tok/s`` counts generated tokens (end-of-sequence
included); each hf measurement follows a warm-up call with the same shapes (compilation, CUDA
graphs), reported as ``warmup_s``. ``hf-loop*`` rows are selfplay's own decode loop
(``generation.decoder: loop``, :mod:`selfplay.generation.decode`); ``hf-loop-graph`` captures a
CUDA graph per batch inside the timed call (the warm-up call warms kernels and the allocator,
not the graph). vLLM's figure includes starting its worker process and engine;
``steady tok/s`` is generation alone. Training tok/s counts non-padding tokens over the steps after
the first fifth (warm-up and compilation excluded); MFU = tok/s x (6N + 12 L d T) / peak, T the
mean sequence length. The ``plain`` training rows (``plain+compile``: ``torch.compile``d) train the
same model on the same examples and step plan as TRL's unpacked row (batch size, max length,
cosine schedule with 5% warmup, fused AdamW, gradient clipping, bf16 autocast over float32 weights
on CUDA, completion-only loss, right padding to the batch's longest) in a plain PyTorch loop
(:func:`train_plain`), timed and counted the same way; ``trl_overhead = plain tok/s / TRL tok/s -
1`` per preset.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]

CPU_REFERENCE = {
    "seed_seconds": 171.0,
    "iteration_seconds": 35.0,
    "source": "README.md: selfplay run configs/arith/rounds.yaml, seed 0, 2-core CPU machine "
    "(seed stage 171 s, iteration 1 35 s)",
}

PEAK_BF16_FLOPS = [
    # (substring of torch.cuda.get_device_name(), dense bf16 FLOP/s), first match wins
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM
    ("H200", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
]

GOALS = {
    "generation_base_1024_tokens_per_s": 0.5e6,
    "training_base_mfu": 0.40,
    "loop_iteration_speedup": 10.0,
    "training_trl_overhead": 0.10,
}
AT_MOST = {"training_trl_overhead"}
"""Goals met at or below their target; the others at or above."""


def peak_flops(name: str) -> float | None:
    return next((f for key, f in PEAK_BF16_FLOPS if key in name), None)


def environment(device: str) -> dict:
    import torch
    import transformers
    import trl

    env = {
        "device": device,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "flash_attn": importlib.util.find_spec("flash_attn") is not None,
        "vllm": None,
    }
    if importlib.util.find_spec("vllm") is not None:
        from importlib.metadata import version

        env["vllm"] = version("vllm")
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        env |= {
            "gpu": name,
            "gpus": torch.cuda.device_count(),
            "cuda": torch.version.cuda,
            "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
            "peak_bf16_flops": peak_flops(name),
        }
    return env


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


# ------------------------------------------------------------------------------------------------
# Generation


def arith_prompts(count: int, seed: int = 0) -> list[str]:
    from selfplay.config import config_from_dict
    from selfplay.tasks import make_task

    task = make_task(config_from_dict({}))
    rng = random.Random(seed)
    per = -(-count // 4)
    problems = [p for d in (2, 3, 4, 5) for p in task.sample_problems("train", d, per, rng)]
    return [p.prompt for p in problems][:count]


HF_BACKENDS = {
    "hf-dynamic": {},
    "hf-static": {"cache": "static"},
    "hf-static-compile": {"cache": "static", "compile": True},
    # selfplay's decode loop (generation.decoder: loop): eager steps, CUDA graph, graph + compile.
    "hf-loop": {"decoder": "loop", "cuda_graph": False},
    "hf-loop-graph": {"decoder": "loop"},
    "hf-loop-graph-compile": {"decoder": "loop", "compile": True},
    # The loop with continuous batching (generation.refill): rows refilled as they finish.
    "hf-loop-refill-graph": {"decoder": "loop", "refill": True},
}
"""hf backend variants by name: their ``hf.generate`` options. On CPU the graph and compile
options have no effect (the loop's steps run eagerly there)."""


def bench_generation_row(
    preset: str, backend: str, batch: int, args, models: dict, device: str
) -> dict:
    import torch

    from selfplay.generation import hf
    from selfplay.generation import vllm as vllm_backend

    model, tok, path = models[preset]
    n = args.n
    prompts = arith_prompts(max(1, 2 * batch // n), seed=batch)
    kw = dict(n=n, max_new_tokens=args.max_new_tokens, seed=0)
    row = {"preset": preset, "backend": backend, "batch_size": batch, "sequences": len(prompts) * n}

    def call():
        if backend == "vllm":
            return vllm_backend.generate(path, tok, prompts, **kw)
        return hf.generate(model, tok, prompts, batch_size=batch, **HF_BACKENDS[backend], **kw)

    def timed():
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        comps = call()
        if device == "cuda":
            torch.cuda.synchronize()
        return comps, time.perf_counter() - t0

    if backend != "vllm":
        _, row["warmup_s"] = timed()
    comps, seconds = timed()
    tokens = sum(c.tokens for c in comps)
    row |= {"new_tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}
    if backend == "vllm":
        gen = vllm_backend.LAST_CALL.get("generate_seconds")
        row["start_s"] = vllm_backend.LAST_CALL.get("start_seconds")
        row["steady_tokens_per_s"] = tokens / gen if gen else None
    return row


def load_models(presets: list[str], device: str, work: Path, need_dirs: bool) -> dict:
    """Per preset: an untrained model in the generation dtype, its tokenizer, a saved copy."""
    from selfplay.config import ModelConfig
    from selfplay.engine.models import build_char_tokenizer, build_model, generation_dtype

    tok = build_char_tokenizer()
    dtype = generation_dtype(ModelConfig(), device)
    out = {}
    for preset in presets:
        import torch

        model = build_model(preset, tok, seed=0)
        if dtype is not None:
            model = model.to(getattr(torch, dtype))
        path = None
        if need_dirs:
            path = work / preset
            model.save_pretrained(str(path))
            tok.save_pretrained(str(path))
        out[preset] = (model.to(device).eval(), tok, str(path) if path else None)
    return out


# ------------------------------------------------------------------------------------------------
# Training


def training_data() -> tuple[list, object]:
    """The training rows' examples (gold chains at difficulties 1-5) and the char tokenizer."""
    from selfplay.config import config_from_dict
    from selfplay.engine.models import build_char_tokenizer
    from selfplay.tasks import Example, make_task

    task = make_task(config_from_dict({}))
    rng = random.Random(2)
    problems = [p for d in (1, 2, 3, 4, 5) for p in task.sample_problems("train", d, 800, rng)]
    data = [Example(p.prompt, task.gold_chain(p), p.id, p.difficulty, "raw") for p in problems]
    return data, build_char_tokenizer()


def training_config(variant: str, args):
    from selfplay.config import TrainConfig

    packed = variant.startswith("packing")
    return TrainConfig(
        batch_size=args.train_batch,
        lr=1e-3,
        max_length=512 if packed else 256,
        packing=packed,
        compile=variant.endswith("compile"),
    )


def training_row(
    preset: str, variant: str, model, tok, data, marks, seconds: float, batch: int, env: dict
) -> dict:
    """A training row from ``marks`` (wall time, tokens seen so far) at each step's end: tok/s
    over the steps after the first fifth, and MFU."""
    from selfplay.engine.models import count_params
    from selfplay.training import count_tokens

    k = max(1, len(marks) // 5)
    (ta, na), (tb, nb) = (marks[k - 1], marks[-1]) if marks else ((0, 0), (0, 0))
    steady = (nb - na) / (tb - ta) if tb > ta and nb > na else None
    lengths = count_tokens(tok, data)
    mean_len = sum(lengths) / len(lengths)
    c = model.config
    n_params = count_params(model)
    flops_per_token = 6 * n_params + 12 * c.num_hidden_layers * c.hidden_size * mean_len
    peak = env.get("peak_bf16_flops")
    return {
        "preset": preset,
        "variant": variant,
        "params": n_params,
        "batch_size": batch,
        "steps": len(marks),
        "tokens": marks[-1][1] if marks else 0,
        "seconds": seconds,
        "tokens_per_s": steady or (marks[-1][1] / seconds if marks else 0.0),
        "mfu": (steady * flops_per_token / peak) if (steady and peak) else None,
        "flops_per_token": flops_per_token,
    }


def bench_training_row(preset: str, variant: str, args, device: str, env: dict) -> dict:
    """Training through TRL's ``SFTTrainer`` (:func:`selfplay.training.build_trainer`)."""
    import torch
    from transformers import TrainerCallback

    from selfplay.engine.models import build_model
    from selfplay.training import build_trainer

    data, tok = training_data()
    model = build_model(preset, tok, seed=0).to(device)
    cfg = training_config(variant, args)

    class StepClock(TrainerCallback):
        def __init__(self):
            self.marks = []

        def on_step_end(self, targs, state, control, **kwargs):
            if device == "cuda":
                torch.cuda.synchronize()
            self.marks.append((time.perf_counter(), int(state.num_input_tokens_seen or 0)))

    with tempfile.TemporaryDirectory() as d:
        trainer, _ = build_trainer(
            model,
            tok,
            data,
            cfg,
            budget_tokens=args.train_tokens,
            seed=0,
            work_dir=Path(d),
            device=device,
        )
        trainer.args.include_num_input_tokens_seen = "non_padding"  # per-step token counts
        clock = StepClock()
        trainer.add_callback(clock)
        t0 = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t0
    return training_row(
        preset, variant, model, tok, data, clock.marks, seconds, cfg.batch_size, env
    )


# Plain PyTorch training: what SFTTrainer does for the unpacked rows, without TRL or Trainer.

PLAIN_VARIANTS = ("plain", "plain+compile")
WARMUP = 0.05  # build_trainer's warmup_steps (a fraction of the steps)
MAX_GRAD_NORM = 1.0  # TrainingArguments' default, which build_trainer keeps


def encode_sft(tok, examples: list, max_length: int) -> list[tuple[list[int], list[int]]]:
    """``(input_ids, labels)`` per example as SFTTrainer builds them from prompt/completion
    records: prompt + completion + end-of-sequence, labels -100 on the prompt, cut at
    ``max_length``."""
    prompts = tok([e.prompt for e in examples])["input_ids"]
    full = tok([e.prompt + e.completion + tok.eos_token for e in examples])["input_ids"]
    out = []
    for p, ids in zip(prompts, full, strict=True):
        # The completion starts where the two tokenisations diverge (TRL's common prefix).
        diverge = (i for i, (a, b) in enumerate(zip(p, ids, strict=False)) if a != b)
        plen = next(diverge, min(len(p), len(ids)))
        labels = [-100] * plen + list(ids[plen:])
        out.append((list(ids)[:max_length], labels[:max_length]))
    return out


def pad_batch(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict:
    """Right padding to the batch's longest row, as TRL's collator pads: pad ids, label -100,
    attention mask 0."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    x = torch.full((len(rows), width), pad_id, dtype=torch.long)
    y = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (ids, labels) in enumerate(rows):
        x[r, : len(ids)] = torch.tensor(ids)
        y[r, : len(labels)] = torch.tensor(labels)
        mask[r, : len(ids)] = 1
    return {"input_ids": x, "attention_mask": mask, "labels": y}


def train_plain(
    model,
    tok,
    examples: list,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    max_length: int,
    seed: int = 0,
    compile: bool = False,
) -> dict:
    """Train ``model`` in place as :func:`selfplay.training.build_trainer` does for unpacked
    batches, in a plain loop: the same examples in the same plan (``plan_order``), cosine schedule
    with 5% warmup, AdamW (fused; weight decay 0), gradient clipping at 1, loss on the completion,
    bf16 autocast over float32 weights on CUDA.

    Returns ``marks`` (wall time, non-padding tokens so far at each step's end, CUDA
    synchronised), ``losses`` per step and ``tokens``."""
    import torch
    from transformers import get_cosine_schedule_with_warmup

    from selfplay.training import plan_order

    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    rows = encode_sft(tok, examples, max_length)
    order = plan_order(len(examples), steps, batch_size, seed)
    # transformers' AdamW for optim="adamw_torch_fused", on CPU as on CUDA.
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, fused=True)
    sched = get_cosine_schedule_with_warmup(opt, math.ceil(WARMUP * steps), steps)
    forward = torch.compile(model) if compile else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    model.train()
    marks, losses, seen = [], [], 0
    for step in range(steps):
        batch = [rows[i] for i in order[step * batch_size : (step + 1) * batch_size]]
        # Pinned host memory, as Trainer's data loader gives on CUDA (dataloader_pin_memory).
        inputs = {
            k: (v.pin_memory() if cuda else v).to(device, non_blocking=True)
            for k, v in pad_batch(batch, tok.pad_token_id).items()
        }
        with autocast:
            loss = forward(**inputs, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        seen += sum(len(ids) for ids, _ in batch)
        if cuda:
            torch.cuda.synchronize()
        marks.append((time.perf_counter(), seen))
    model.eval()
    return {"marks": marks, "losses": [float(v) for v in losses], "tokens": seen}


def bench_plain_row(preset: str, variant: str, args, device: str, env: dict) -> dict:
    """The unpacked TRL row's training (same model, examples, steps and settings) in
    :func:`train_plain`."""
    from selfplay.engine.models import build_model
    from selfplay.training import count_tokens, plan_steps

    if variant not in PLAIN_VARIANTS:
        raise ValueError(f"unknown plain variant {variant!r} (one of {', '.join(PLAIN_VARIANTS)})")
    data, tok = training_data()
    model = build_model(preset, tok, seed=0).to(device)
    cfg = training_config(variant, args)
    steps = plan_steps(count_tokens(tok, data), args.train_tokens, cfg.batch_size)
    t0 = time.perf_counter()
    res = train_plain(
        model,
        tok,
        data,
        steps=steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        max_length=cfg.max_length,
        compile=cfg.compile,
    )
    seconds = time.perf_counter() - t0
    return training_row(
        preset, variant, model, tok, data, res["marks"], seconds, cfg.batch_size, env
    )


def training_overhead(rows: list[dict]) -> list[dict]:
    """Per preset, TRL's unpacked row against the plain loop's: ``trl_overhead = plain tok/s /
    TRL tok/s - 1`` (``plain`` against the uncompiled TRL row, ``plain+compile`` against a
    compiled one when both ran)."""
    out = []
    for preset in dict.fromkeys(r["preset"] for r in rows):
        mine = [r for r in rows if r["preset"] == preset]
        for plain_variant in PLAIN_VARIANTS:
            compiled = plain_variant.endswith("compile")
            plain = next((r for r in mine if r["variant"] == plain_variant), None)
            trl = next(
                (
                    r
                    for r in mine
                    if not r["variant"].startswith(("plain", "packing"))
                    and r["variant"].endswith("compile") == compiled
                ),
                None,
            )
            if not (plain and trl and plain["tokens_per_s"] and trl["tokens_per_s"]):
                continue
            overhead = plain["tokens_per_s"] / trl["tokens_per_s"] - 1
            out.append(
                {
                    "preset": preset,
                    "trl_variant": trl["variant"],
                    "plain_variant": plain_variant,
                    "trl_tokens_per_s": trl["tokens_per_s"],
                    "plain_tokens_per_s": plain["tokens_per_s"],
                    "trl_overhead": overhead,
                    "target": GOALS["training_trl_overhead"],
                    "met": overhead <= GOALS["training_trl_overhead"],
                }
            )
    return out


# ------------------------------------------------------------------------------------------------
# One loop iteration


SMOKE_LOOP = [
    "raw.size=60",
    "raw.difficulties=[1,2]",
    "seed_train.tokens=1500",
    "loop.pool_difficulties=[1,2]",
    "loop.problems_per_iter=6",
    "generation.n=2",
    "generation.batch_size=16",
    "train.tokens=600",
    "train.batch_size=8",
    "eval.difficulties=[1,2]",
    "eval.n_per_difficulty=3",
    "eval.k=0",
]


def bench_loop(device: str, overrides: list[str], smoke: bool) -> dict:
    from selfplay.config import load_config
    from selfplay.engine.loop import run

    with tempfile.TemporaryDirectory() as d:
        extra = [f"output_dir={d}/run", "loop.iterations=1", f"device={device}", *overrides]
        cfg = load_config(REPO / "configs" / "arith" / "rounds.yaml", extra)
        t0 = time.perf_counter()
        rows = run(cfg, progress=False)
        wall = time.perf_counter() - t0
    seed, it = rows[0], rows[-1]
    out = {
        "config": "configs/arith/rounds.yaml",
        "overrides": extra[1:],
        "seed_seconds": seed["seconds"]["total"],
        "iteration_seconds": it["seconds"]["total"],
        "iteration_stages": it["seconds"],
        "wall_seconds": wall,
        "accuracy_in_after_iteration": it["eval"].get("accuracy_in"),
        "cpu_reference": CPU_REFERENCE,
        "iteration_speedup": None,
        "seed_speedup": None,
    }
    if not smoke:
        out["iteration_speedup"] = CPU_REFERENCE["iteration_seconds"] / out["iteration_seconds"]
        out["seed_speedup"] = CPU_REFERENCE["seed_seconds"] / out["seed_seconds"]
    return out


# ------------------------------------------------------------------------------------------------


def is_plain(variant: str) -> bool:
    return variant.startswith("plain")


def plan(args) -> list[tuple]:
    """Measurements, most important first; a preset's plain rows after its TRL rows."""
    backends = list(args.backends)
    gen = [("gen", p, b, bs) for p in args.presets for b in backends for bs in args.batch_sizes]
    variants = sorted(args.train_variants, key=is_plain)
    train = [("train", p, v) for p in args.presets for v in variants]
    head = [m for m in gen if m[1] == "base" and m[3] == 1024] + [
        m for m in train if m[1] == "base" and not is_plain(m[2])
    ]
    todo = head + ([("loop",)] if not args.skip_loop else [])
    todo += [m for m in train if m[1] == "base" and is_plain(m[2])]
    todo += [m for m in gen if m not in head]
    todo += [m for m in train if m not in todo]
    return todo if not args.skip_training else [m for m in todo if m[0] != "train"]


def goals(result: dict) -> dict:
    gen = [
        r["tokens_per_s"]
        for r in result["generation"]
        if r["preset"] == "base" and r["batch_size"] == 1024
    ]
    mfu = [r["mfu"] for r in result["training"] if r["preset"] == "base" and r["mfu"] is not None]
    loop = (result.get("loop") or {}).get("iteration_speedup")
    overhead = [o for o in result["training_overhead"] if o["plain_variant"] == "plain"]
    worst = max(overhead, key=lambda o: o["trl_overhead"], default=None)
    values = {
        "generation_base_1024_tokens_per_s": max(gen) if gen else None,
        "training_base_mfu": max(mfu) if mfu else None,
        "loop_iteration_speedup": loop,
        "training_trl_overhead": worst["trl_overhead"] if worst else None,
    }
    out = {}
    for k, v in values.items():
        met = None if v is None else (v <= GOALS[k] if k in AT_MOST else v >= GOALS[k])
        out[k] = {"value": v, "target": GOALS[k], "met": met}
    if worst:
        out["training_trl_overhead"]["preset"] = worst["preset"]  # the worst of those measured
    return out


def print_tables(result: dict) -> None:
    print(f"\ndevice: {result['environment'].get('gpu', result['environment']['device'])}")
    print("\ngeneration (tok/s, generated tokens)")
    print(
        f"  {'preset':<6} {'backend':<18} {'batch':>6} {'tok/s':>12} {'steady tok/s':>13} {'warmup s':>9}"
    )
    for r in result["generation"]:
        steady = r.get("steady_tokens_per_s")
        warm = r.get("warmup_s", r.get("start_s"))
        print(
            f"  {r['preset']:<6} {r['backend']:<18} {r['batch_size']:>6} {r['tokens_per_s']:>12,.0f}"
            f" {'' if steady is None else f'{steady:,.0f}':>13} {'' if warm is None else f'{warm:.1f}':>9}"
        )
    print("\ntraining (tok/s after warm-up, MFU of bf16 dense peak)")
    print(f"  {'preset':<6} {'variant':<16} {'batch':>6} {'tok/s':>12} {'MFU':>7}")
    for r in result["training"]:
        mfu = "" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        print(
            f"  {r['preset']:<6} {r['variant']:<16} {r['batch_size']:>6} {r['tokens_per_s']:>12,.0f} {mfu:>7}"
        )
    if result["training_overhead"]:
        print("\nTRL overhead (plain tok/s / TRL tok/s - 1, goal <= 0.10)")
        print(
            f"  {'preset':<6} {'TRL':<10} {'plain':<14} {'TRL tok/s':>12} {'plain tok/s':>12} {'overhead':>9}"
        )
        for o in result["training_overhead"]:
            print(
                f"  {o['preset']:<6} {o['trl_variant']:<10} {o['plain_variant']:<14}"
                f" {o['trl_tokens_per_s']:>12,.0f} {o['plain_tokens_per_s']:>12,.0f}"
                f" {o['trl_overhead']:>+9.3f}  {'met' if o['met'] else 'MISSED'}"
            )
    if result.get("loop"):
        lp = result["loop"]
        speed = lp["iteration_speedup"]
        print(
            f"\nloop iteration (configs/arith/rounds.yaml): seed {lp['seed_seconds']:.1f} s, "
            f"iteration {lp['iteration_seconds']:.1f} s"
            + (
                ""
                if speed is None
                else f" = {speed:.1f}x the CPU's {CPU_REFERENCE['iteration_seconds']:.0f} s"
            )
        )
    print("\ngoals")
    for k, g in result["goals"].items():
        v = "not measured" if g["value"] is None else f"{g['value']:,.3g}"
        mark = {None: "-", True: "met", False: "MISSED"}[g["met"]]
        target = f"{'<=' if k in AT_MOST else '>='} {g['target']:,.3g}"
        where = f" ({g['preset']})" if "preset" in g else ""
        print(f"  {k:<36} {v:>14}  target {target}  {mark}{where}")
    for s in result["skipped"]:
        print(f"  skipped: {s}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out", default=None, help="JSON path (default benchmarks/results/gpu_bench[_smoke].json)"
    )
    ap.add_argument("--smoke", action="store_true", help="CPU-sized run of every section (< 1 min)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--presets", nargs="+", default=["tiny", "small", "base"])
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[64, 256, 1024])
    ap.add_argument(
        "--backends",
        nargs="+",
        default=None,
        choices=[*HF_BACKENDS, "vllm"],
        help="default: hf-dynamic hf-loop-graph hf-loop-refill-graph hf-static-compile (+ vllm) "
        "on a GPU, "
        "hf-dynamic hf-static hf-loop on CPU",
    )
    ap.add_argument("--n", type=int, default=4, help="samples per prompt")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument(
        "--train-variants",
        nargs="+",
        default=["bf16", "packing+compile", "plain"],
        help="TRL rows (packing*: packed, *compile: torch.compile) and plain-loop rows "
        f"({', '.join(PLAIN_VARIANTS)})",
    )
    ap.add_argument("--train-tokens", type=int, default=3_000_000)
    ap.add_argument("--train-batch", type=int, default=256)
    ap.add_argument("--loop-overrides", nargs="*", default=["generation.batch_size=auto"])
    ap.add_argument("--skip-loop", action="store_true")
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--budget-seconds", type=float, default=540.0)
    args = ap.parse_args(argv)

    import datasets
    from transformers.utils import logging as hf_logging

    from selfplay.engine.models import resolve_device, setup_device

    datasets.disable_progress_bars()
    hf_logging.set_verbosity_error()
    device = resolve_device(args.device)
    setup_device(device)
    if args.smoke:
        args.presets, args.batch_sizes, args.n, args.max_new_tokens = ["tiny"], [8, 32], 2, 8
        args.train_tokens, args.train_batch = 1500, 16
        args.train_variants = ["default", "packing", "plain"]
        args.loop_overrides = SMOKE_LOOP + args.loop_overrides
    if args.backends is None:
        if device == "cuda":
            args.backends = [
                "hf-dynamic",
                "hf-loop-graph",
                "hf-loop-refill-graph",
                "hf-static-compile",
            ]
            if importlib.util.find_spec("vllm") is not None:
                args.backends.append("vllm")
        else:
            args.backends = ["hf-dynamic", "hf-static", "hf-loop"]
    out = Path(args.out or f"benchmarks/results/gpu_bench{'_smoke' if args.smoke else ''}.json")
    env = environment(device)
    deadline = Deadline(args.budget_seconds)
    result = {"environment": env, "settings": vars(args) | {"out": str(out)}}
    result |= {"generation": [], "training": [], "training_overhead": [], "loop": None}
    result["skipped"] = []
    with tempfile.TemporaryDirectory() as work:
        models = load_models(args.presets, device, Path(work), "vllm" in args.backends)
        for m in plan(args):
            label = " ".join(map(str, m))
            if deadline.left() <= 0:
                result["skipped"].append(f"{label} (time budget spent)")
                continue
            t0 = time.perf_counter()
            try:
                if m[0] == "gen":
                    result["generation"].append(bench_generation_row(*m[1:], args, models, device))
                elif m[0] == "train":
                    bench = bench_plain_row if is_plain(m[2]) else bench_training_row
                    result["training"].append(bench(*m[1:], args, device, env))
                else:
                    result["loop"] = bench_loop(device, args.loop_overrides, args.smoke)
            except Exception as exc:  # one failed measurement must not cost the others
                from selfplay.generation import one_line

                result["skipped"].append(f"{label} (failed: {one_line(exc)})")
            print(f"  {label}: {time.perf_counter() - t0:.1f} s", flush=True)
    result["training_overhead"] = training_overhead(result["training"])
    result["goals"] = goals(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_tables(result)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
