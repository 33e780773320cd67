"""Throughput on a GPU: generation tok/s per backend and batch size, training tok/s and MFU, and
one loop iteration of configs/arith/default.yaml against the CPU figure. Prints a table and
writes JSON.

    python scripts/gpu_bench.py --out benchmarks/results/gpu_bench.json      # on the GPU machine
    python scripts/gpu_bench.py --smoke                                      # CPU, tiny, < 1 min

Goals it reports against: generation >= 0.5M tok/s for ``base`` at batch 1024 (best backend),
training >= 40% MFU for ``base`` (bf16 dense peak of the card), and a loop iteration >= 10x
faster than on the 2-core CPU machine. Measurements run most important first (``base`` at batch
1024, ``base`` training, the loop iteration) and stop starting new ones once ``--budget-seconds``
is spent, so a short device window still yields the headline numbers.

Generation uses untrained models, which rarely stop early: the worst case for padding and cache
length, as in ``scripts/cpu_bench.py``. ``tok/s`` counts generated tokens (end-of-sequence
included); each hf measurement follows a warm-up call with the same shapes (compilation, CUDA
graphs), reported as ``warmup_s``. ``hf-loop*`` rows are selfplay's own decode loop
(``generation.decoder: loop``, :mod:`selfplay.generation.decode`); ``hf-loop-graph`` captures a
CUDA graph per batch inside the timed call (the warm-up call warms kernels and the allocator,
not the graph). vLLM's figure includes starting its worker process and engine;
``steady tok/s`` is generation alone. Training tok/s counts non-padding tokens over the steps after
the first fifth (warm-up and compilation excluded); MFU = tok/s x (6N + 12 L d T) / peak, T the
mean sequence length.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
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
    "source": "README.md: selfplay run configs/arith/default.yaml, seed 0, 2-core CPU machine "
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
}


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
    from selfplay.models import build_char_tokenizer, build_model, generation_dtype

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


def bench_training_row(preset: str, variant: str, args, device: str, env: dict) -> dict:
    import torch
    from transformers import TrainerCallback

    from selfplay.config import TrainConfig, config_from_dict
    from selfplay.models import build_char_tokenizer, build_model, count_params
    from selfplay.tasks import Example, make_task
    from selfplay.training import build_trainer, count_tokens

    task = make_task(config_from_dict({}))
    rng = random.Random(2)
    problems = [p for d in (1, 2, 3, 4, 5) for p in task.sample_problems("train", d, 800, rng)]
    data = [Example(p.prompt, task.gold_chain(p), p.id, p.difficulty, "raw") for p in problems]
    tok = build_char_tokenizer()
    model = build_model(preset, tok, seed=0).to(device)
    packed = variant.startswith("packing")
    cfg = TrainConfig(
        batch_size=args.train_batch,
        lr=1e-3,
        max_length=512 if packed else 256,
        packing=packed,
        compile=variant.endswith("compile"),
    )

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
    marks = clock.marks
    k = max(1, len(marks) // 5)
    (ta, na), (tb, nb) = marks[k - 1], marks[-1]
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
        "batch_size": cfg.batch_size,
        "steps": len(marks),
        "tokens": marks[-1][1] if marks else 0,
        "seconds": seconds,
        "tokens_per_s": steady or (marks[-1][1] / seconds if marks else 0.0),
        "mfu": (steady * flops_per_token / peak) if (steady and peak) else None,
        "flops_per_token": flops_per_token,
    }


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
    from selfplay.loop import run

    with tempfile.TemporaryDirectory() as d:
        extra = [f"output_dir={d}/run", "loop.iterations=1", f"device={device}", *overrides]
        cfg = load_config(REPO / "configs" / "arith" / "default.yaml", extra)
        t0 = time.perf_counter()
        rows = run(cfg, progress=False)
        wall = time.perf_counter() - t0
    seed, it = rows[0], rows[-1]
    out = {
        "config": "configs/arith/default.yaml",
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


def plan(args) -> list[tuple]:
    """Measurements, most important first."""
    backends = list(args.backends)
    gen = [("gen", p, b, bs) for p in args.presets for b in backends for bs in args.batch_sizes]
    train = [("train", p, v) for p in args.presets for v in args.train_variants]
    head = [m for m in gen if m[1] == "base" and m[3] == 1024] + [
        m for m in train if m[1] == "base"
    ]
    todo = head + ([("loop",)] if not args.skip_loop else [])
    todo += [m for m in gen if m not in head]
    todo += [m for m in train if m not in head]
    return todo if not args.skip_training else [m for m in todo if m[0] != "train"]


def goals(result: dict) -> dict:
    gen = [
        r["tokens_per_s"]
        for r in result["generation"]
        if r["preset"] == "base" and r["batch_size"] == 1024
    ]
    mfu = [r["mfu"] for r in result["training"] if r["preset"] == "base" and r["mfu"] is not None]
    loop = (result.get("loop") or {}).get("iteration_speedup")
    values = {
        "generation_base_1024_tokens_per_s": max(gen) if gen else None,
        "training_base_mfu": max(mfu) if mfu else None,
        "loop_iteration_speedup": loop,
    }
    return {
        k: {"value": v, "target": GOALS[k], "met": None if v is None else v >= GOALS[k]}
        for k, v in values.items()
    }


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
    if result.get("loop"):
        lp = result["loop"]
        speed = lp["iteration_speedup"]
        print(
            f"\nloop iteration (configs/arith/default.yaml): seed {lp['seed_seconds']:.1f} s, "
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
        print(f"  {k:<36} {v:>14}  target {g['target']:,.3g}  {mark}")
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
        help="default: hf-dynamic hf-loop-graph hf-static-compile (+ vllm) on a GPU, "
        "hf-dynamic hf-static hf-loop on CPU",
    )
    ap.add_argument("--n", type=int, default=4, help="samples per prompt")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--train-variants", nargs="+", default=["bf16", "packing+compile"])
    ap.add_argument("--train-tokens", type=int, default=3_000_000)
    ap.add_argument("--train-batch", type=int, default=256)
    ap.add_argument("--loop-overrides", nargs="*", default=["generation.batch_size=auto"])
    ap.add_argument("--skip-loop", action="store_true")
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--budget-seconds", type=float, default=540.0)
    args = ap.parse_args(argv)

    import datasets
    from transformers.utils import logging as hf_logging

    from selfplay.models import resolve_device, setup_device

    datasets.disable_progress_bars()
    hf_logging.set_verbosity_error()
    device = resolve_device(args.device)
    setup_device(device)
    if args.smoke:
        args.presets, args.batch_sizes, args.n, args.max_new_tokens = ["tiny"], [8, 32], 2, 8
        args.train_tokens, args.train_batch = 1500, 16
        args.train_variants = ["default", "packing"]
        args.loop_overrides = SMOKE_LOOP + args.loop_overrides
    if args.backends is None:
        if device == "cuda":
            args.backends = ["hf-dynamic", "hf-loop-graph", "hf-static-compile"]
            if importlib.util.find_spec("vllm") is not None:
                args.backends.append("vllm")
        else:
            args.backends = ["hf-dynamic", "hf-static", "hf-loop"]
    out = Path(args.out or f"benchmarks/results/gpu_bench{'_smoke' if args.smoke else ''}.json")
    env = environment(device)
    deadline = Deadline(args.budget_seconds)
    result = {"environment": env, "settings": vars(args) | {"out": str(out)}}
    result |= {"generation": [], "training": [], "loop": None, "skipped": []}
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
                    result["training"].append(bench_training_row(*m[1:], args, device, env))
                else:
                    result["loop"] = bench_loop(device, args.loop_overrides, args.smoke)
            except Exception as exc:  # one failed measurement must not cost the others
                from selfplay.generation import one_line

                result["skipped"].append(f"{label} (failed: {one_line(exc)})")
            print(f"  {label}: {time.perf_counter() - t0:.1f} s", flush=True)
    result["goals"] = goals(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_tables(result)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
