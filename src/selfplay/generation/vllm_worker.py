"""Worker process of the ``vllm`` backend: ``python -m selfplay.generation.vllm_worker REQUEST``.

The request (JSON, written by :mod:`selfplay.generation.vllm`) holds the ``vllm.LLM`` arguments,
the sampling settings and this worker's shard of encoded prompts with one seed each. The worker
writes one JSON line per completion (``prompt_idx``, ``sample_idx``, ``token_ids``,
``finish_reason``) to the request's ``output`` file, under a temporary name renamed when complete,
and its timings to the ``stats`` file.
On failure it writes a one-line reason to the request's ``error`` file and exits with status 1.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

from selfplay.generation import engine_module, one_line


def _auto_dtype() -> str:
    import torch

    if torch.cuda.is_available():
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "auto"


def run_request(request: dict) -> tuple[list[dict], dict]:
    """Generate for one shard; returns the output rows and timings (engine start, generation)."""
    t0 = time.perf_counter()
    engine = importlib.import_module(engine_module())
    args = dict(request["engine"])
    if args.get("dtype") == "auto":
        args["dtype"] = _auto_dtype()
    llm = engine.LLM(**args)
    t1 = time.perf_counter()
    s = request["sampling"]
    params = [
        engine.SamplingParams(
            n=s["n"],
            temperature=s["temperature"],
            top_p=s["top_p"],
            max_tokens=s["max_tokens"],
            seed=seed,
            stop_token_ids=s["stop_token_ids"],
        )
        for seed in request["seeds"]
    ]
    prompts = [{"prompt_token_ids": ids} for ids in request["prompt_token_ids"]]
    outputs = llm.generate(prompts, params, use_tqdm=False)
    t2 = time.perf_counter()
    first = request["first_index"]
    rows = []
    for i, out in enumerate(outputs):
        for j, comp in enumerate(out.outputs):
            rows.append(
                {
                    "prompt_idx": first + i,
                    "sample_idx": getattr(comp, "index", j),
                    "token_ids": list(comp.token_ids),
                    "finish_reason": comp.finish_reason,
                }
            )
    return rows, {"start_seconds": t1 - t0, "generate_seconds": t2 - t1}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m selfplay.generation.vllm_worker REQUEST.json", file=sys.stderr)
        return 2
    request = json.loads(Path(argv[0]).read_text())
    try:
        rows, stats = run_request(request)
        Path(request["stats"]).write_text(json.dumps(stats))
        out = Path(request["output"])
        tmp = out.with_name(out.name + ".tmp")
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        os.replace(tmp, out)
    except Exception as exc:  # every failure is reported to the parent as one line
        Path(request["error"]).write_text(one_line(exc) + "\n")
        import traceback

        traceback.print_exc()  # into the worker's log, for whoever opens it
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
