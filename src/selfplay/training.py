"""Supervised fine-tuning on prompt/completion data with TRL's ``SFTTrainer``.

Loss is taken on the completion only. Training runs for a budget of *tokens* (prompt + completion,
the tokens a forward pass processes), so arms and rounds can be compared at equal cost; the data is
repeated or cut short to meet it. On CPU, gradient checkpointing is off (it costs 1.4-3.5x here) and
training is fp32; on GPU, bf16.
"""

from __future__ import annotations

import logging
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from selfplay.config import TrainConfig
from selfplay.tasks import Example


class _ProgressBar(TrainerCallback):
    """A step bar that shows the running loss, instead of printing each log line."""

    def __init__(self, desc: str | None):
        self.desc, self.bar = desc, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar = tqdm(
            total=state.max_steps,
            desc=self.desc,
            unit="step",
            disable=self.desc is None,
            leave=False,
        )

    def on_step_end(self, args, state, control, **kwargs):
        self.bar.update(1)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{float(logs['loss']):.3f}")

    def on_train_end(self, args, state, control, **kwargs):
        self.bar.close()


@dataclass
class TrainResult:
    tokens: int
    """Tokens processed (prompt + completion, padding excluded)."""
    steps: int
    examples: int
    """Distinct training examples available."""
    epochs: float
    """How many times the data was gone through: > 1 means repeated data."""
    final_loss: float | None
    seconds: float


def count_tokens(tokenizer, examples: list[Example]) -> list[int]:
    """Sequence length of each example as trained: prompt + completion + end-of-sequence."""
    texts = [e.prompt + e.completion for e in examples]
    if not texts:
        return []
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [len(x) + 1 for x in ids]


def plan_steps(lengths: list[int], budget_tokens: int, batch_size: int) -> int:
    """Optimizer steps that spend ``budget_tokens`` on batches of ``batch_size`` examples."""
    if not lengths or budget_tokens <= 0:
        return 0
    mean = sum(lengths) / len(lengths)
    return max(1, math.ceil(budget_tokens / (mean * batch_size)))


def train_sft(
    model,
    tokenizer,
    examples: list[Example],
    cfg: TrainConfig,
    *,
    budget_tokens: int,
    seed: int,
    work_dir: Path,
    device: str = "cpu",
    progress: str | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``examples`` for about ``budget_tokens`` tokens."""
    import time

    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    lengths = count_tokens(tokenizer, examples)
    steps = plan_steps(lengths, budget_tokens, cfg.batch_size)
    if steps == 0:
        return TrainResult(0, 0, len(examples), 0.0, None, 0.0)
    # Lay out exactly steps x batch examples as whole shuffled passes over the data, so every batch
    # is full (a small set would otherwise end each pass on a short batch and miss the budget) and
    # the number of repeats is exact.
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < steps * cfg.batch_size:
        one_pass = list(range(len(examples)))
        rng.shuffle(one_pass)
        order += one_pass
    order = order[: steps * cfg.batch_size]
    data = Dataset.from_list(
        [{"prompt": examples[i].prompt, "completion": examples[i].completion} for i in order]
    )
    on_gpu = device.startswith("cuda")
    args = dict(
        output_dir=str(work_dir),
        max_steps=steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        weight_decay=0.0,
        max_length=cfg.max_length,
        completion_only_loss=True,
        gradient_checkpointing=False,
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
        use_cpu=not on_gpu,
        report_to="none",
        save_strategy="no",
        logging_steps=max(1, steps // 20),
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,  # our own bar below; the default one also prints every log dict
        dataset_num_proc=None,
    )
    args.update(cfg.sft)
    sft_args = SFTConfig(**args)
    # Quiet the trainer's own chatter; the caller prints a summary.
    logging.getLogger("transformers").setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    trainer = SFTTrainer(model=model, args=sft_args, train_dataset=data, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(_ProgressBar(progress))
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    tokens = int(trainer.state.num_input_tokens_seen or 0) or next(
        (int(h["num_tokens"]) for h in reversed(history) if "num_tokens" in h), 0
    )
    if not tokens:
        tokens = round(steps * cfg.batch_size * sum(lengths) / len(lengths))
    seen_examples = steps * cfg.batch_size
    return TrainResult(
        tokens=tokens,
        steps=steps,
        examples=len(examples),
        epochs=seen_examples / len(examples),
        final_loss=losses[-1] if losses else None,
        seconds=seconds,
    )
