"""The cost ledger: what a stage spent, by one rule for every schedule, method and arm.

    FLOPs = 6 N x trained tokens                      (forward and backward)
          + 2 N x (generated + prefill + scored tokens) (forward only)

``N`` is the model's parameter count; *trained* tokens are every token through a training step
(prompt included, padding not); *prefill* tokens are the prompt tokens of every generated sample;
*scored* tokens are forward passes that generate nothing (GRPO's log-probabilities of its own
samples under the old and the reference policy). Evaluation and the frontier's probe measure the
model and are not counted; verifier calls are counted apart (a call is one sample's verdict).

Every stage record carries ``cumulative``: its own :class:`Cost` added to the previous stage's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields


@dataclass
class Cost:
    train_tokens: int = 0
    generated_tokens: int = 0
    prefill_tokens: int = 0
    scored_tokens: int = 0
    verifier_calls: int = 0
    seconds: float = 0.0
    """Wall-clock seconds."""
    cpu_seconds: float = 0.0
    """CPU seconds of the run's process, all its threads (what a shared machine does not inflate
    as much as wall time)."""

    def flops(self, n_params: int) -> float:
        forward = self.generated_tokens + self.prefill_tokens + self.scored_tokens
        return 6 * n_params * self.train_tokens + 2 * n_params * forward


def add_cost(prev: dict | None, cost: Cost, n_params: int) -> dict:
    """The ``cumulative`` block after a stage that spent ``cost``: ``prev`` (the previous stage's
    block; ``None`` for the seed stage) plus it, FLOPs included.

    >>> add_cost({"train_tokens": 10, "flops": 60}, Cost(train_tokens=5, generated_tokens=2), 1)
    ...     # doctest: +NORMALIZE_WHITESPACE
    {'train_tokens': 15, 'generated_tokens': 2, 'prefill_tokens': 0, 'scored_tokens': 0,
     'verifier_calls': 0, 'seconds': 0.0, 'cpu_seconds': 0.0, 'flops': 94}
    """
    prev = prev or {}
    out = {f.name: prev.get(f.name, 0) + getattr(cost, f.name) for f in fields(Cost)}
    out["flops"] = prev.get("flops", 0) + cost.flops(n_params)
    return out


class Clock:
    """Wall and CPU seconds since it was made."""

    def __init__(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall0, time.process_time() - self.cpu0


__all__ = ["Clock", "Cost", "add_cost"]
