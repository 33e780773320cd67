"""Generation backends behind one function: ``generate(model, tokenizer, prompts, ...) -> [Completion]``.

Backends are named here and imported lazily, so a heavy dependency is only needed when used:

- ``hf``: transformers ``generate`` (or selfplay's decode loop, ``generation.decoder: loop``) in
  this process; ``model`` is a loaded model.
- ``vllm``: offline ``vllm.LLM`` in a worker subprocess per call; ``model`` is a checkpoint directory.

Both encode prompts with :func:`selfplay.engine.models.encode_prompts` (so a chat template is applied the
way training applies it) and turn token ids into :class:`Completion` with :func:`to_completion`, so
the records mean the same whichever backend made them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from selfplay.errors import ConfigError

if TYPE_CHECKING:
    from selfplay.config import RunConfig


@dataclass
class Completion:
    prompt_idx: int
    sample_idx: int
    text: str
    tokens: int
    """Generated tokens, the end-of-sequence token included when there was one."""
    finish_reason: str
    """``stop`` (end-of-sequence) or ``length`` (hit ``max_new_tokens``: truncated)."""


class WorkerError(ConfigError):
    """A backend or training worker process failed; reported to the user as one line."""


BACKENDS = {
    "hf": "selfplay.generation.hf:generate",
    "vllm": "selfplay.generation.vllm:generate",
}

VLLM_MISSING = "generation.backend 'vllm' needs the vllm package, which is not installed: pip install '.[vllm]'"


ENGINE_ENV = "SELFPLAY_VLLM_ENGINE"
"""Module providing ``LLM`` and ``SamplingParams`` (default ``vllm``); tests point it at a fake."""


def engine_module() -> str:
    return os.environ.get(ENGINE_ENV, "vllm")


def get_backend(name: str):
    if name not in BACKENDS:
        raise ValueError(f"unknown generation backend {name!r}; valid: {', '.join(BACKENDS)}")
    module, func = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), func)


def check_backend(cfg: RunConfig) -> None:
    """Fail before any work if the configured backend cannot run here."""
    if cfg.generation.backend == "vllm" and importlib.util.find_spec(engine_module()) is None:
        raise ConfigError(VLLM_MISSING)


def backend_options(cfg: RunConfig) -> dict[str, Any]:
    """Keyword arguments of the configured backend beyond the common ones (n, temperature, ...)."""
    g = cfg.generation
    if g.backend == "vllm":
        return {
            "chat_template": cfg.model.chat_template,
            "dtype": cfg.model.dtype,
            "tensor_parallel_size": g.tensor_parallel_size,
            "data_parallel_size": g.data_parallel_size,
            "gpu_memory_utilization": g.gpu_memory_utilization,
            "engine_args": dict(g.vllm),
        }
    return {
        "chat_template": cfg.model.chat_template,
        "cache": g.cache,
        "compile": g.compile,
        "decoder": g.decoder,
        "refill": g.refill,
    }


def one_line(exc: BaseException, limit: int = 400) -> str:
    """An exception as one line of at most about ``limit`` characters, e.g. for a worker's error file."""
    text = " ".join(str(exc).split()) or "(no message)"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}"


def to_completion(
    tokenizer,
    ids: list[int],
    stop_ids: set[int],
    pad_id: int | None,
    prompt_idx: int,
    sample_idx: int,
) -> Completion:
    """A completion from generated token ids: cut at the first stop token (counted in ``tokens``),
    padding dropped, decoded without special tokens."""
    stop = next((i for i, t in enumerate(ids) if t in stop_ids), None)
    body = ids[:stop] if stop is not None else ids
    body = [t for t in body if t != pad_id]
    return Completion(
        prompt_idx=prompt_idx,
        sample_idx=sample_idx,
        text=tokenizer.decode(body, skip_special_tokens=True),
        tokens=len(body) + (1 if stop is not None else 0),
        finish_reason="stop" if stop is not None else "length",
    )


__all__ = [
    "BACKENDS",
    "Completion",
    "WorkerError",
    "backend_options",
    "check_backend",
    "get_backend",
    "one_line",
    "to_completion",
]
