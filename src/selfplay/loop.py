"""The self-play loop (expert iteration: STaR / ReST-EM / RFT).

    raw corpus --seed SFT--> model_0
    for k in 1..K:
        problems = pool of the round                       (train split)
        samples  = generate(model_{k-1}, problems, n each) (every chain verified, step by step)
        kept     = filter(samples)                         (verified, dedup, per-problem cap)
        model_k  = train(init = base | model_{k-1}, data = kept (+ raw mix), token budget)
        metrics  = evaluate(model_k, held-out test split, raw difficulties and harder)

Each stage writes its artifact under a temporary name and renames it; a stage whose artifact
exists is skipped, so rerunning a killed run resumes from the last finished stage.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from selfplay import artifacts
from selfplay.config import ConfigError, RunConfig, config_to_dict, dump_config
from selfplay.evaluation import evaluate, test_problems
from selfplay.filters import filter_samples, normalize_chain, reason_kind
from selfplay.generation import check_backend
from selfplay.models import (
    count_params,
    init_model,
    load_for_generation,
    load_for_training,
    resolve_device,
    setup_device,
)
from selfplay.sampling import curriculum_frontier, draw_pool, generate_samples
from selfplay.tasks import Example, Problem, Task, make_task
from selfplay.training import count_tokens, train_sft
from selfplay.verify import STATUSES

STOP_ENV = "SELFPLAY_STOP_AFTER"
"""Name of a stage (e.g. ``iter_001/generate``) after which the run stops as if killed: for tests."""


class StageInterrupt(RuntimeError):
    """Raised after the stage named in ``SELFPLAY_STOP_AFTER`` finishes."""


def _stage_done(name: str) -> None:
    if os.environ.get(STOP_ENV) == name:
        raise StageInterrupt(f"stopped after {name} ({STOP_ENV})")


def _log(console, msg: str) -> None:
    if console is not None:
        console.print(msg)


# ------------------------------------------------------------------------------------------------
# Run directory


def _environment() -> dict:
    import platform
    import subprocess

    import torch
    import transformers
    import trl

    from selfplay import __version__

    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return {
        "selfplay": __version__,
        "git": sha or "unknown",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
    }


_RESUMABLE_CHANGES = {"loop.iterations", "output_dir"}
"""Keys a rerun may change without invalidating finished stages."""


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "sft":
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def prepare_run_dir(cfg: RunConfig) -> Path:
    """Create the run directory, or check that an existing one holds the same run."""
    import yaml

    run_dir = cfg.run_dir
    path = run_dir / "config.yaml"
    if path.exists():
        old = _flatten(yaml.safe_load(path.read_text()) or {})
        new = _flatten(config_to_dict(cfg))
        # A key the saved config lacks (written by an older version) matches its default.
        defaults = _flatten(config_to_dict(RunConfig()))
        diff = [
            k
            for k in sorted(set(old) | set(new))
            if old.get(k, defaults.get(k)) != new.get(k) and k not in _RESUMABLE_CHANGES
        ]
        if diff:
            k = diff[0]
            raise ConfigError(
                f"{run_dir} holds a run with another config ({k}: {old.get(k)!r} there, {new.get(k)!r} now); use another output_dir or delete it"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    artifacts.clean_temporaries(run_dir)
    env = _environment()
    header = (
        "# resolved config of this run; " + ", ".join(f"{k} {v}" for k, v in env.items()) + "\n"
    )
    header += f"# rerun (resumes): selfplay run {path}\n"
    artifacts.write_text(path, header + dump_config(cfg))
    return run_dir


def write_metrics_log(run_dir: Path) -> list[dict]:
    """Rebuild ``metrics.jsonl`` from every finished stage (idempotent, so resume never duplicates)."""
    import json

    rows = []
    for path in [run_dir / "seed" / "metrics.json", *sorted(run_dir.glob("iter_*/metrics.json"))]:
        if path.exists():
            rows.append(artifacts.read_json(path))
    artifacts.write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return rows


# ------------------------------------------------------------------------------------------------
# Stages


def _examples_to_records(examples: list[Example]) -> list[dict]:
    return [asdict(e) for e in examples]


def _records_to_examples(records: list[dict]) -> list[Example]:
    return [
        Example(r["prompt"], r["completion"], r["problem_id"], r["difficulty"], r["source"])
        for r in records
    ]


def _in_and_harder(cfg: RunConfig, accuracy: dict) -> tuple[float | None, float | None]:
    top = max(cfg.raw.difficulties)
    inside = [accuracy[str(d)] for d in cfg.eval.difficulties if d <= top and str(d) in accuracy]
    harder = [accuracy[str(d)] for d in cfg.eval.difficulties if d > top and str(d) in accuracy]
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return mean(inside), mean(harder)


def _eval_block(cfg: RunConfig, metrics: dict) -> dict:
    acc_in, acc_harder = _in_and_harder(cfg, metrics["accuracy"])
    return {**metrics, "accuracy_in": acc_in, "accuracy_harder": acc_harder}


def run_seed(
    cfg: RunConfig, task: Task, tests: list[Problem], device: str, console=None, progress=True
) -> list[Example]:
    """Build the raw corpus U and train model_0 on it."""
    d = cfg.run_dir / "seed"
    raw_path = d / "raw.parquet"
    if raw_path.exists():
        raw = _records_to_examples(artifacts.read_parquet(raw_path))
    else:
        raw = task.raw_corpus(cfg, random.Random(f"raw-{cfg.seed}"))
        artifacts.write_parquet(raw_path, _examples_to_records(raw))
        _stage_done("seed/raw")
    if (d / "metrics.json").exists():
        return raw
    model_dir = d / "model"
    if not (model_dir.exists() and (d / "train.json").exists()):
        model, tok = init_model(cfg, device)
        budget = seed_budget(cfg, raw, tok)
        _log(
            console,
            f"[bold]seed[/]: training model_0 ({count_params(model) / 1e6:.2f}M params) on U = {len(raw)} examples, {budget:,} tokens",
        )
        seed_cfg = dataclasses.replace(cfg.train, lr=cfg.seed_train.lr)
        result = train_sft(
            model,
            tok,
            raw,
            seed_cfg,
            budget_tokens=budget,
            seed=cfg.seed,
            work_dir=d / ".trainer",
            device=device,
            progress="seed train" if progress else None,
            lora=cfg.model.lora if cfg.model.name_or_path else None,
            chat_template=cfg.model.chat_template,
        )
        artifacts.save_model_dir(model_dir, model, tok)
        artifacts.write_json(d / "train.json", {**asdict(result), "params": count_params(model)})
        shutil.rmtree(d / ".trainer", ignore_errors=True)
        _stage_done("seed/train")
    train = artifacts.read_json(d / "train.json")
    model, tok = load_for_generation(cfg, model_dir, device)
    t1 = time.perf_counter()
    metrics = evaluate(model, tok, task, tests, cfg, seed=cfg.seed, progress=progress)
    n_params = train["params"]
    out = {
        "stage": "seed",
        "iteration": 0,
        "raw": {
            "examples": len(raw),
            "tokens": sum(count_tokens(tok, raw)),
            "sources": {
                s: sum(e.source == s for e in raw) for s in sorted({e.source for e in raw})
            },
        },
        "train": train,
        "eval": _eval_block(cfg, metrics),
        "seconds": {
            "train": train["seconds"],
            "eval": time.perf_counter() - t1,
            "total": train["seconds"] + time.perf_counter() - t1,
        },
        "cumulative": {
            "train_tokens": train["tokens"],
            "generated_tokens": 0,
            "verifier_calls": 0,
            "flops": 6 * n_params * train["tokens"],
            "seconds": train["seconds"] + time.perf_counter() - t1,
        },
    }
    artifacts.write_json(d / "metrics.json", out)
    _stage_done("seed/eval")
    return raw


def _rate(samples: list[dict], pred) -> float:
    return sum(map(pred, samples)) / len(samples) if samples else 0.0


def _by_difficulty(samples: list[dict], pred) -> dict:
    ds = sorted({s["difficulty"] for s in samples})
    return {str(d): _rate([s for s in samples if s["difficulty"] == d], pred) for d in ds}


def round_budget(cfg: RunConfig, k: int, raw: list[Example], tok) -> int:
    """Round ``k``'s training-token budget: ``train.tokens``, or ``train.budget_epochs[k-1]``
    passes over U's tokens."""
    if cfg.train.budget_epochs is None:
        return cfg.train.tokens
    return round(cfg.train.budget_epochs[k - 1] * sum(count_tokens(tok, raw)))


def seed_budget(cfg: RunConfig, raw: list[Example], tok) -> int:
    if cfg.seed_train.epochs is None:
        return cfg.seed_train.tokens
    return round(cfg.seed_train.epochs * sum(count_tokens(tok, raw)))


def raw_stream_slice(
    cfg: RunConfig, k: int, data: list[Example], tok, raw: list[Example] | None = None
) -> list[Example]:
    """Round ``k``'s share of a raw baseline's data: one stream of shuffled passes over ``data``,
    cut into rounds of each round's budget, so the arm repeats data only once it has used it all.
    ``raw`` (U) sets the budgets given in epochs of U; it defaults to ``data``."""
    if not data:
        return []
    mean = sum(count_tokens(tok, data[:2000])) / min(len(data), 2000)
    u = data if raw is None else raw
    per_round = [max(1, round(round_budget(cfg, j, u, tok) / mean)) for j in range(1, k + 1)]
    start, stop = sum(per_round[:-1]), sum(per_round)
    out, n = [], len(data)
    for epoch in range(start // n, (stop - 1) // n + 1):
        order = list(range(n))
        random.Random(f"stream-{cfg.seed}-{epoch}").shuffle(order)
        lo, hi = max(start - epoch * n, 0), min(stop - epoch * n, n)
        out += [data[i] for i in order[lo:hi]]
    return out


def fresh_corpus(cfg: RunConfig, task: Task) -> list[Example]:
    """The ``raw-fresh`` baseline's corpus: ``fresh_multiplier x raw.size`` new problems from U's source."""
    path = cfg.run_dir / "fresh.parquet"
    if path.exists():
        return _records_to_examples(artifacts.read_parquet(path))
    size = max(1, round(cfg.loop.fresh_multiplier * cfg.raw.size))
    fresh_cfg = dataclasses.replace(cfg, raw=dataclasses.replace(cfg.raw, size=size))
    data = task.raw_corpus(fresh_cfg, random.Random(f"fresh-{cfg.seed}"))
    artifacts.write_parquet(path, _examples_to_records(data))
    return data


def training_set(
    cfg: RunConfig, k: int, raw: list[Example], tok=None, task: Task | None = None
) -> list[Example]:
    """Round ``k``'s training examples.

    ``selfplay``: this round's kept chains (every round's, with ``accumulate``) plus the raw mix.
    ``raw-repeat`` / ``raw-fresh``: the round's slice of the stream over U / the fresh corpus.
    """
    if cfg.loop.data_source == "raw-repeat":
        return raw_stream_slice(cfg, k, raw, tok)
    if cfg.loop.data_source == "raw-fresh":
        return raw_stream_slice(cfg, k, fresh_corpus(cfg, task), tok, raw)
    rounds = range(1, k + 1) if cfg.train.data == "accumulate" else [k]
    data: list[Example] = []
    for j in rounds:
        for r in artifacts.read_parquet(cfg.run_dir / f"iter_{j:03d}" / "kept.parquet"):
            data.append(
                Example(r["prompt"], r["text"], r["problem_id"], r["difficulty"], "selfplay")
            )
    if cfg.train.raw_mix > 0 and raw:
        n_raw = round(cfg.train.raw_mix / (1 - cfg.train.raw_mix) * max(len(data), 1))
        rng = random.Random(f"mix-{cfg.seed}-{k}")
        data += [raw[rng.randrange(len(raw))] for _ in range(n_raw)]
    return data


def diversity(samples: list[dict]) -> dict:
    """Distinct correct chains and distinct answers per practice problem (means over problems)."""
    chains: dict[str, set] = {}
    answers: dict[str, set] = {}
    for s in samples:
        chains.setdefault(s["problem_id"], set())
        answers.setdefault(s["problem_id"], set()).add(s["answer"])
        if s["valid"]:
            chains[s["problem_id"]].add(normalize_chain(s["text"]))
    n = max(len(chains), 1)
    return {
        "distinct_correct_chains_per_problem": sum(len(v) for v in chains.values()) / n,
        "unique_answers_per_problem": sum(len(v) for v in answers.values()) / n,
    }


def _unique_tokens(tok, kept: list[dict]) -> int:
    distinct = {(s["prompt"], s["text"]): s for s in kept}.values()
    return sum(count_tokens(tok, [Example(s["prompt"], s["text"], "", 0, "") for s in distinct]))


def _fill_budget(cfg, task, k, raw, model, tok, problems, samples, gen_stats, frontier, progress):
    """Draw and sample new problems until the round's training set holds its token budget in
    unique kept chains, or the draw cap is reached. Returns all samples and the merged stats."""
    earlier = 0
    if cfg.train.data == "accumulate":
        for j in range(1, k):
            kept = artifacts.read_parquet(cfg.run_dir / f"iter_{j:03d}" / "kept.parquet")
            earlier += _unique_tokens(tok, [r for r in kept if r.get("problem_id")])
    quota = round_budget(cfg, k, raw, tok)
    if cfg.train.raw_mix:
        quota = round(quota * (1 - cfg.train.raw_mix))
    drawn = {p.id for p in problems}
    draws = 0
    have = earlier + _unique_tokens(tok, [s for s in samples if s["kept"]])
    while have < quota and draws < cfg.loop.fill_max_draws:
        draws += 1
        more = draw_pool(task, cfg, k, frontier, draw=draws, exclude=drawn)
        if not more:
            break
        drawn |= {p.id for p in more}
        extra, stats = generate_samples(
            model, tok, task, more, cfg, seed=cfg.seed * 1000 + k + 7_777 * draws, progress=progress
        )
        samples = samples + extra
        filter_samples(samples, cfg.filters)
        gen_stats = _merge_gen_stats(gen_stats, stats)
        have = earlier + _unique_tokens(tok, [s for s in samples if s["kept"]])
    gen_stats["fill"] = {"quota_tokens": quota, "unique_tokens": have, "extra_draws": draws}
    return samples, gen_stats


def _merge_gen_stats(a: dict, b: dict) -> dict:
    out = dict(a)
    for key in (
        "problems",
        "samples",
        "generated_tokens",
        "truncated",
        "seconds",
        "verify_seconds",
    ):
        out[key] = a[key] + b[key]
    out["samples_by_origin"] = {
        o: a["samples_by_origin"].get(o, 0) + b["samples_by_origin"].get(o, 0)
        for o in {*a["samples_by_origin"], *b["samples_by_origin"]}
    }
    out["tokens_per_second"] = out["generated_tokens"] / max(out["seconds"], 1e-9)
    return out


def run_iteration(
    cfg: RunConfig,
    task: Task,
    k: int,
    raw: list[Example],
    tests: list[Problem],
    device: str,
    console=None,
    progress=True,
) -> dict:
    """One round; returns its metrics (read back if the round already finished).

    With ``loop.data_source: selfplay`` it generates, verifies, filters, trains and evaluates; the
    raw baselines skip straight to training on their slice of raw data, then evaluate.
    """
    it = cfg.run_dir / f"iter_{k:03d}"
    if (it / "metrics.json").exists():
        return artifacts.read_json(it / "metrics.json")
    prev_stage = cfg.run_dir / ("seed" if k == 1 else f"iter_{k - 1:03d}")
    init_dir = (
        prev_stage / "model"
        if cfg.train.init_from == "previous"
        else cfg.run_dir / "seed" / "model"
    )
    selfplay = cfg.loop.data_source == "selfplay"
    samples: list[dict] = []
    gen_stats = {"generated_tokens": 0, "seconds": 0.0, "verify_seconds": 0.0}

    if selfplay:
        # 1-2. Generate n chains per practice problem with model_{k-1}; verify each, step by step.
        if not ((it / "samples.parquet").exists() and (it / "generate.json").exists()):
            model, tok = load_for_generation(cfg, prev_stage / "model", device)
            frontier = None
            if cfg.loop.curriculum:
                earlier = [
                    artifacts.read_json(cfg.run_dir / f"iter_{j:03d}" / "metrics.json")
                    for j in range(1, k)
                ]
                frontier = curriculum_frontier(
                    cfg, [m["generate"]["pass_rate_by_difficulty"] for m in earlier]
                )
            problems = draw_pool(task, cfg, k, frontier)
            samples, gen_stats = generate_samples(
                model, tok, task, problems, cfg, seed=cfg.seed * 1000 + k, progress=progress
            )
            # 3. Filter: verified, de-duplicated, capped per problem; every sample keeps its reason.
            filter_samples(samples, cfg.filters)
            if cfg.loop.fill_budget:
                samples, gen_stats = _fill_budget(
                    cfg, task, k, raw, model, tok, problems, samples, gen_stats, frontier, progress
                )
            artifacts.write_parquet(it / "samples.parquet", samples)
            artifacts.write_json(it / "generate.json", {**gen_stats, "frontier": frontier})
            _stage_done(f"iter_{k:03d}/generate")
            del model
        gen_stats = artifacts.read_json(it / "generate.json")
        samples = artifacts.read_parquet(it / "samples.parquet")
        if not (it / "kept.parquet").exists():
            artifacts.write_parquet(
                it / "kept.parquet", [s for s in samples if s["kept"]] or [_EMPTY_KEPT]
            )
            _stage_done(f"iter_{k:03d}/kept")

    # 4. Retrain from the seed model or model_{k-1}, for the round's token budget.
    if not ((it / "model").exists() and (it / "train.json").exists()):
        model, tok = load_for_training(cfg, init_dir, device)
        data = [e for e in training_set(cfg, k, raw, tok, task) if e.problem_id]
        budget = round_budget(cfg, k, raw, tok)
        if selfplay and data and cfg.train.max_epochs is not None:
            budget = min(budget, round(cfg.train.max_epochs * sum(count_tokens(tok, data))))
        if data:
            result = asdict(
                train_sft(
                    model,
                    tok,
                    data,
                    cfg.train,
                    budget_tokens=budget,
                    seed=cfg.seed * 1000 + k,
                    work_dir=it / ".trainer",
                    device=device,
                    progress=f"train {k}" if progress else None,
                    lora=cfg.model.lora,
                    chat_template=cfg.model.chat_template,
                )
            )
        else:
            result = {
                "tokens": 0,
                "steps": 0,
                "examples": 0,
                "epochs": 0.0,
                "final_loss": None,
                "seconds": 0.0,
                "note": "nothing kept: model unchanged",
            }
        artifacts.save_model_dir(it / "model", model, tok)
        result |= {
            "init_from": str(init_dir.relative_to(cfg.run_dir)),
            "selfplay_examples": sum(e.source == "selfplay" for e in data),
            "distinct_examples": len({(e.prompt, e.completion) for e in data}),
        }
        unique = sum(count_tokens(tok, list({(e.prompt, e.completion): e for e in data}.values())))
        result |= {
            "unique_tokens": unique,
            # How often each unique training token was seen this round (1.0: no repeats).
            "reuse": result["tokens"] / unique if unique else 0.0,
        }
        artifacts.write_json(it / "train.json", result)
        shutil.rmtree(it / ".trainer", ignore_errors=True)
        _stage_done(f"iter_{k:03d}/train")
    train = artifacts.read_json(it / "train.json")

    # 5. Evaluate model_k on the held-out test problems.
    model, tok = load_for_generation(cfg, it / "model", device)
    t0 = time.perf_counter()
    metrics = evaluate(model, tok, task, tests, cfg, seed=cfg.seed, progress=progress)
    out = {"stage": f"iter_{k:03d}", "iteration": k, "source": cfg.loop.data_source}
    if selfplay:
        kept = [s for s in samples if s["kept"]]
        reasons = Counter(reason_kind(s["filter_reason"]) for s in samples if not s["kept"])
        out["generate"] = {
            **gen_stats,
            "pass_rate": _rate(samples, lambda s: s["status"] == "correct"),
            "valid_rate": _rate(samples, lambda s: s["valid"]),
            "pass_rate_by_difficulty": _by_difficulty(samples, lambda s: s["status"] == "correct"),
            "status_counts": {st: sum(s["status"] == st for s in samples) for st in STATUSES},
            **diversity(samples),
        }
        out["filter"] = {
            "kept": len(kept),
            "kept_problems": len({s["problem_id"] for s in kept}),
            "kept_by_difficulty": {
                str(d): sum(s["difficulty"] == d for s in kept)
                for d in sorted({s["difficulty"] for s in samples})
            },
            "rejected": dict(reasons),
        }
    out["train"] = train
    out["eval"] = _eval_block(cfg, metrics)
    out["seconds"] = {
        "generate": gen_stats["seconds"] + gen_stats["verify_seconds"],
        "train": train["seconds"],
        "eval": time.perf_counter() - t0,
    }
    out["seconds"]["total"] = sum(out["seconds"].values())
    prev = artifacts.read_json(prev_stage / "metrics.json")["cumulative"]
    n_params = count_params(model)
    out["cumulative"] = {
        "train_tokens": prev["train_tokens"] + train["tokens"],
        "generated_tokens": prev["generated_tokens"] + gen_stats["generated_tokens"],
        "verifier_calls": prev["verifier_calls"] + len(samples),
        "flops": prev["flops"]
        + 6 * n_params * train["tokens"]
        + 2 * n_params * gen_stats["generated_tokens"],
        "seconds": prev.get("seconds", 0.0) + out["seconds"]["total"],
    }
    artifacts.write_json(it / "metrics.json", out)
    _stage_done(f"iter_{k:03d}/eval")
    return out


# A Parquet file needs a schema: an empty kept set is stored as one placeholder row with no problem.
_EMPTY_KEPT = {
    "problem_id": "",
    "difficulty": 0,
    "prompt": "",
    "text": "",
    "kept": False,
    "filter_reason": "placeholder: nothing kept",
}


def run(cfg: RunConfig, console=None, progress: bool = True, on_stage=None) -> list[dict]:
    """Run (or resume) the whole loop; returns one metrics record per finished stage."""
    run_dir = prepare_run_dir(cfg)
    device = resolve_device(cfg.device)
    setup_device(device)
    check_backend(cfg)
    task = make_task(cfg)
    tests = test_problems(task, cfg)
    _log(
        console,
        f"run dir [bold]{run_dir}[/]  device {device}  task {cfg.task.name}  test problems {len(tests)}",
    )

    # Seed: raw corpus U -> model_0.
    raw = run_seed(cfg, task, tests, device, console, progress)
    rows = write_metrics_log(run_dir)
    if on_stage:
        on_stage(rows[-1])

    # Expert iteration.
    for k in range(1, cfg.loop.iterations + 1):
        run_iteration(cfg, task, k, raw, tests, device, console, progress)
        rows = write_metrics_log(run_dir)
        if on_stage:
            on_stage(rows[-1])
    return rows
