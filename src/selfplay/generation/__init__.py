"""Generation backends behind one function: ``generate(model, tokenizer, prompts, ...) -> [Completion]``.

Backends are named here and imported lazily, so a heavy dependency is only needed when used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass
class Completion:
    prompt_idx: int
    sample_idx: int
    text: str
    tokens: int
    """Generated tokens, the end-of-sequence token included when there was one."""
    finish_reason: str
    """``stop`` (end-of-sequence) or ``length`` (hit ``max_new_tokens``: truncated)."""


BACKENDS = {"hf": "selfplay.generation.hf:generate"}


def get_backend(name: str):
    if name not in BACKENDS:
        raise ValueError(f"unknown generation backend {name!r}; valid: {', '.join(BACKENDS)}")
    module, func = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), func)


__all__ = ["BACKENDS", "Completion", "get_backend"]
