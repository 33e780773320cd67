"""vLLM backend: offline ``vllm.LLM`` in worker subprocesses, one set per call.

Each call writes the encoded prompts to a request file, starts ``data_parallel_size`` workers
(``python -m selfplay.generation.vllm_worker``), each on its own ``tensor_parallel_size`` GPUs and
its own contiguous shard of the prompts, and reads their token ids back. A worker exits when its
shard is done, so every byte of GPU memory vLLM took is returned before training starts.

Every prompt is sampled with its own seed (``seed`` and its index), so results do not depend on
how the prompts were sharded. Prompts are encoded and completions decoded here, with the same
helpers as the ``hf`` backend, so both produce the same records from the same token ids.
A worker's error comes back as one line (:class:`~selfplay.generation.WorkerError`).
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selfplay.bars import bar as progress_bar
from selfplay.engine.models import encode_prompts, stop_token_ids, uses_chat_template
from selfplay.generation import (  # ENGINE_ENV: re-exported
    ENGINE_ENV,  # noqa: F401
    VLLM_MISSING,
    Completion,
    WorkerError,
    engine_module,
    to_completion,
)

LAST_CALL: dict[str, float] = {}
"""Timings of the last call, slowest worker: ``start_seconds`` (process and engine start, weights
loaded, CUDA graphs captured) and ``generate_seconds`` (generation alone), for benchmarks."""


def prompt_seed(seed: int, prompt_idx: int) -> int:
    """The sampling seed of one prompt: independent of batching and sharding."""
    return (seed * 1_000_003 + prompt_idx) % (2**63 - 1)


def shard_bounds(count: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` ranges splitting ``count`` items into at most ``shards``
    non-empty parts whose sizes differ by at most one.

    >>> shard_bounds(5, 2), shard_bounds(1, 3)
    ([(0, 3), (3, 5)], [(0, 1)])
    """
    shards = max(1, min(shards, count))
    base, extra = divmod(count, shards)
    bounds, start = [], 0
    for i in range(shards):
        stop = start + base + (i < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def visible_gpus() -> list[str]:
    """GPU ids this process may hand to workers (``CUDA_VISIBLE_DEVICES``, else all)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []


def gpu_groups(tensor_parallel_size: int, data_parallel_size: int) -> list[str | None]:
    """``CUDA_VISIBLE_DEVICES`` of each worker (``None``: leave the environment as it is)."""
    if data_parallel_size == 1:
        return [None]  # one engine sees what this process sees, and reports what it lacks
    gpus = visible_gpus()
    need = tensor_parallel_size * data_parallel_size
    if len(gpus) < need:
        raise WorkerError(
            f"generation: tensor_parallel_size {tensor_parallel_size} x data_parallel_size "
            f"{data_parallel_size} needs {need} GPUs, {len(gpus)} visible"
        )
    t = tensor_parallel_size
    return [",".join(gpus[i * t : (i + 1) * t]) for i in range(data_parallel_size)]


def _release_cuda_memory() -> None:
    """Hand cached blocks of this process back to the driver before a worker claims its share."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def generate(
    model,
    tokenizer,
    prompts: list[str],
    *,
    n: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    greedy: bool = False,
    max_new_tokens: int = 64,
    batch_size: int | str | None = None,
    seed: int = 0,
    progress: str | None = None,
    chat_template: str = "auto",
    dtype: str = "auto",
    tensor_parallel_size: int = 1,
    data_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.85,
    engine_args: dict | None = None,
) -> list[Completion]:
    """``n`` completions per prompt, in (prompt, sample) order, like the ``hf`` backend.

    ``model`` is a checkpoint directory or hub name (a loaded model is accepted and its
    ``name_or_path`` used: it must be saved there). ``batch_size`` is ignored: vLLM schedules its
    own batches. ``engine_args`` go to ``vllm.LLM`` and override the values above.
    """
    import importlib.util

    if greedy:
        n = 1
    if not prompts:
        return []
    if importlib.util.find_spec(engine_module()) is None:
        raise WorkerError(VLLM_MISSING)
    path = model if isinstance(model, (str, Path)) else getattr(model, "name_or_path", "")
    if not path:
        raise WorkerError("generation: the vllm backend needs a saved model directory or hub name")
    chat = uses_chat_template(tokenizer, chat_template)
    ids = encode_prompts(tokenizer, prompts, chat)
    stops = stop_token_ids(tokenizer, chat)
    for t in _checkpoint_eos_ids(path):  # as the hf backend, which reads the loaded model's
        if t not in stops:
            stops.append(t)
    pad_id = tokenizer.pad_token_id
    engine = {
        "model": str(path),
        "tokenizer": str(path),
        "dtype": dtype,
        "tensor_parallel_size": tensor_parallel_size,
        "gpu_memory_utilization": gpu_memory_utilization,
        "seed": seed,
        **(engine_args or {}),
    }
    sampling = {
        "n": n,
        "temperature": 0.0 if greedy else temperature,
        "top_p": 1.0 if greedy else top_p,
        "max_tokens": max_new_tokens,
        "stop_token_ids": stops,
    }
    groups = gpu_groups(tensor_parallel_size, data_parallel_size)
    shards = shard_bounds(len(prompts), len(groups))
    _release_cuda_memory()
    work = Path(tempfile.mkdtemp(prefix="selfplay-vllm-"))
    rows = _run_workers(work, engine, sampling, ids, seed, shards, groups, progress)
    shutil.rmtree(work, ignore_errors=True)
    out = []
    stop_set = set(stops)
    for r in rows:
        out.append(
            to_completion(
                tokenizer, r["token_ids"], stop_set, pad_id, r["prompt_idx"], r["sample_idx"]
            )
        )
    out.sort(key=lambda c: (c.prompt_idx, c.sample_idx))
    expected = len(prompts) * n
    if len(out) != expected:
        raise WorkerError(
            f"generation: vllm workers returned {len(out)} completions, not {expected}"
        )
    return out


def _checkpoint_eos_ids(path) -> list[int]:
    """End-of-sequence ids of the checkpoint's ``generation_config.json`` (none if it has none)."""
    from transformers import GenerationConfig

    try:
        eos = GenerationConfig.from_pretrained(str(path)).eos_token_id
    except (OSError, ValueError):
        return []
    if eos is None:
        return []
    return [int(t) for t in eos] if isinstance(eos, (list, tuple)) else [int(eos)]


def worker_command(request: Path) -> list[str]:
    return [sys.executable, "-m", "selfplay.generation.vllm_worker", str(request)]


def _run_workers(
    work: Path,
    engine: dict,
    sampling: dict,
    ids: list[list[int]],
    seed: int,
    shards: list[tuple[int, int]],
    groups: list[str | None],
    progress: str | None,
) -> list[dict]:
    """Start one worker per shard, wait for all (stopping the rest at the first failure), and
    return their rows. Workers' output goes to ``worker_<i>.log`` in ``work``."""
    procs, logs = [], []
    bar = progress_bar(len(ids), progress, "prompt")
    try:
        for i, ((start, stop), gpus) in enumerate(zip(shards, groups, strict=False)):
            request = work / f"request_{i}.json"
            request.write_text(
                json.dumps(
                    {
                        "engine": engine,
                        "sampling": sampling,
                        "prompt_token_ids": ids[start:stop],
                        "seeds": [prompt_seed(seed, j) for j in range(start, stop)],
                        "first_index": start,
                        "output": str(work / f"output_{i}.jsonl"),
                        "error": str(work / f"error_{i}.txt"),
                        "stats": str(work / f"stats_{i}.json"),
                    }
                )
            )
            env = dict(os.environ)
            if gpus is not None:
                env["CUDA_VISIBLE_DEVICES"] = gpus
            logs.append(open(work / f"worker_{i}.log", "w"))  # noqa: SIM115 (closed below)
            procs.append(
                subprocess.Popen(
                    worker_command(request), env=env, stdout=logs[-1], stderr=subprocess.STDOUT
                )
            )
        pending, failure = set(range(len(procs))), None
        while pending and failure is None:
            for i in sorted(pending):
                code = procs[i].poll()
                if code is None:
                    continue
                pending.discard(i)
                if code != 0:
                    failure = _failure(work, i, code)
                    break
                bar.update(shards[i][1] - shards[i][0])
            if pending and failure is None:
                time.sleep(0.2)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()
        bar.close()
    if failure is not None:
        raise WorkerError(failure)
    rows = []
    LAST_CALL.clear()
    for i in range(len(procs)):
        with open(work / f"output_{i}.jsonl") as f:
            rows += [json.loads(line) for line in f]
        for key, value in json.loads((work / f"stats_{i}.json").read_text()).items():
            LAST_CALL[key] = max(LAST_CALL.get(key, 0.0), value)
    return rows


def _failure(work: Path, i: int, code: int) -> str:
    """One line saying why worker ``i`` failed; its log is kept (the temporary dir is not removed)."""
    err = work / f"error_{i}.txt"
    if err.exists():
        why = " ".join(err.read_text().split())
    else:
        lines = [ln.strip() for ln in (work / f"worker_{i}.log").read_text().splitlines()]
        last = next((ln for ln in reversed(lines) if ln), "no output")
        why = f"exited with code {code}: {last}"
    return f"generation (vllm worker {i}): {why} (log: {work / f'worker_{i}.log'})"
