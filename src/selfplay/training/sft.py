"""Supervised fine-tuning on prompt/completion data with TRL's ``SFTTrainer``.

Loss is taken on the completion only. Training runs for a budget of *tokens* (prompt + completion,
the tokens a forward pass processes), so arms and rounds can be compared at equal cost; the data is
repeated or cut short to meet it. On CPU, gradient checkpointing is off (it costs 1.4-3.5x here) and
training is fp32; on GPU, float32 weights under bf16 autocast, fused AdamW, and optionally
padding-free packing (``train.packing``) and ``torch.compile`` (``train.compile``).

A tokenizer with a chat template (``model.chat_template: auto``) trains on conversational records:
the prompt as a user turn, the completion as the assistant turn (TRL renders both and keeps the
loss on the assistant turn), exactly the token ids :func:`selfplay.engine.models.encode_prompts` gives
the generation backends. LoRA adapters (``model.lora.r > 0``) are merged into the weights at the end.

With ``train.num_processes > 1`` or an ``accelerate_config``, :func:`train_sft` runs the stage in
worker processes under ``accelerate launch`` (:mod:`selfplay.engine.train_worker`): DDP, FSDP or DeepSpeed
as the config says, with the same data order and step plan as in process.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import yaml
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from selfplay.bars import bar as progress_bar
from selfplay.config import LoraConfig, TrainConfig
from selfplay.engine.models import uses_chat_template
from selfplay.tasks import Example
from selfplay.training.plan import (
    StepPlan,
    TrainResult,
    chat_record,
    count_tokens,
    plan_order,
    plan_steps,
)


class StepBar(TrainerCallback):
    """A step bar that shows the running loss, instead of printing each log line."""

    def __init__(self, desc: str | None):
        self.desc, self.bar = desc, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar = progress_bar(state.max_steps, self.desc, "step")

    def on_step_end(self, args, state, control, **kwargs):
        self.bar.update(1)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{float(logs['loss']):.3f}")

    def on_train_end(self, args, state, control, **kwargs):
        self.bar.close()


@functools.cache
def sync_free_trainer_class():
    """``SFTTrainer`` without a host synchronisation per optimizer step, on one process.

    TRL's ``compute_loss`` turns its step metrics (entropy, token accuracy, tokens seen) into
    Python numbers every step, and ``Trainer`` checks every step's loss for NaN on the host; each
    is a device-to-host sync that stalls a GPU between steps. This subclass computes the same
    loss the same way (the fused LM head's log-probabilities, summed over loss tokens, divided by
    the batch's loss tokens) but keeps the metrics' sums on the device and reads them once per
    logging step; the logged entropy and accuracy are then ratios of the window's sums rather
    than means of per-step ratios. Any configuration TRL's plain path does not cover (several
    processes, a custom loss, label smoothing, DFT, MoE auxiliary loss, sequence parallelism) falls
    back to TRL's own ``compute_loss``."""
    import torch
    from trl import SFTTrainer

    class SyncFreeSFTTrainer(SFTTrainer):
        def _lean(self) -> bool:
            pc = getattr(self.accelerator, "parallelism_config", None)
            return (
                self.accelerator.num_processes == 1
                and self.compute_loss_func is None
                and self.label_smoother is None
                and self.args.loss_type == "nll"
                and not self.aux_loss_enabled
                and not (pc is not None and getattr(pc, "sp_enabled", False))
            )

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not self._lean():
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            mode = "train" if self.model.training else "eval"
            inputs["use_cache"] = False
            outputs = model(**inputs, fused_lm_head=True)
            per_token_loss = -outputs.log_probs  # zero on ignored positions
            count = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
            loss = per_token_loss.sum() / torch.as_tensor(count).clamp(min=1)
            sums = self.__dict__.setdefault("_device_sums", {}).setdefault(mode, {})
            with torch.no_grad():
                step = {
                    "valid": outputs.label_mask.sum(),
                    "entropy": outputs.entropy.detach().sum(),
                    "correct": outputs.is_top1.sum(),
                }
                if mode == "train":
                    if "attention_mask" in inputs:
                        step["tokens"] = inputs["attention_mask"].sum()
                    else:  # padding-free rows: every position is a token
                        step["tokens"] = torch.as_tensor(inputs["position_ids"].size(-1))
                for k, v in step.items():
                    sums[k] = sums[k] + v if k in sums else v.clone()
            return (loss, outputs) if return_outputs else loss

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            mode = "train" if self.model.training else "eval"
            sums = self.__dict__.get("_device_sums", {}).pop(mode, None)
            if sums:
                # One sync for the whole logging window.
                vals = torch.stack([sums[k].float() for k in sorted(sums)]).tolist()
                got = dict(zip(sorted(sums), vals, strict=True))
                valid = got["valid"]
                m = self._metrics[mode]
                m["entropy"] = [got["entropy"] / valid if valid > 0 else 0.0]
                m["mean_token_accuracy"] = [got["correct"] / valid if valid > 0 else 0.0]
                if "tokens" in got:
                    self._total_train_tokens += int(got["tokens"]) // self._tp_size
                m["num_tokens"] = [self._total_train_tokens]
            super().log(logs, start_time)

    return SyncFreeSFTTrainer


def _peft_config(lora: LoraConfig | None):
    if lora is None or lora.r == 0:
        return None
    import peft

    return peft.LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )


def has_varlen_attention(model) -> bool:
    """Whether the model's attention kernel takes packed sequences as one row with boundaries
    (FlashAttention's varlen kernels); SDPA and eager do not."""
    return "flash" in str(getattr(model.config, "_attn_implementation", "") or "")


def packed_rows_collator(pad_token_id: int, max_length: int):
    """Packed rows as a ``(rows, max_length)`` batch with per-example position ids and no
    attention mask, for kernels without varlen support.

    TRL's padding-free collator concatenates a step's rows into one sequence: with FlashAttention
    that is one varlen call, but SDPA and eager then build a dense mask over the whole batch, a
    quadratic cost in the step's tokens (and a new shape, so a recompile, every step). Kept as
    rows, transformers derives each row's block-diagonal mask from the position ids (no example
    attends to another), attention costs ``rows x max_length^2``, and every step has the same
    shape. The first token of each example and the padding carry no loss."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    class PackedRows(DataCollatorForLanguageModeling):
        def torch_call(self, examples):
            out = super().torch_call(examples)
            out.pop("attention_mask", None)
            out["labels"][out["position_ids"] == 0] = -100
            return out

    return PackedRows(
        pad_token_id=pad_token_id,
        padding_free=False,
        return_position_ids=True,
        pad_to_multiple_of=max_length,
    )


def build_trainer(
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
    lora: LoraConfig | None = None,
    chat_template: str = "auto",
    plan: StepPlan | None = None,
):
    """An ``SFTTrainer`` that spends about ``budget_tokens`` on ``examples`` (or follows ``plan``:
    its steps and examples per step) and the number of examples it goes through, or ``(None, 0)``
    when there is nothing to train. In launched workers the same call gives the same plan on every
    process; ``per_device_train_batch_size`` is the process's share of the batch."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig

    chat = uses_chat_template(tokenizer, chat_template)
    lengths = count_tokens(tokenizer, examples, chat)
    if plan is None:
        plan = StepPlan(plan_steps(lengths, budget_tokens, cfg.batch_size), cfg.batch_size)
    steps, batch_size = plan.steps, plan.batch_size
    if steps == 0 or not examples:
        return None, 0
    # Exactly steps x batch examples as whole shuffled passes over the data, so every batch is
    # full (a small set would otherwise end each pass on a short batch and miss the budget) and
    # the number of repeats is exact.
    order = plan_order(len(examples), steps, batch_size, seed)
    if chat:
        records = [chat_record(examples[i]) for i in order]
    else:
        records = [
            {"prompt": examples[i].prompt, "completion": examples[i].completion} for i in order
        ]
    data = Dataset.from_list(records)
    on_gpu = device.startswith("cuda")
    per_device = batch_size // cfg.num_processes
    if cfg.packing:
        # A packed row holds up to max_length tokens of whole examples: take as many rows per step
        # as hold a batch's worth of tokens (the step count is fixed below, once rows are known).
        mean = sum(lengths) / len(lengths)
        per_device = max(1, round(per_device * mean / cfg.max_length))
    args = dict(
        output_dir=str(work_dir),
        max_steps=steps,
        per_device_train_batch_size=per_device,
        learning_rate=cfg.lr,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        weight_decay=0.0,
        max_length=cfg.max_length,
        # train.loss: the completion (answer), or every token of prompt and completion (sequence).
        completion_only_loss=cfg.loss != "sequence",
        packing=cfg.packing,
        gradient_checkpointing=False,
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
        # Fused AdamW (transformers' default optimizer with torch >= 2.8), named for the record.
        optim="adamw_torch_fused",
        torch_compile=cfg.compile,
        use_cpu=not on_gpu,
        report_to="none",
        save_strategy="no",
        logging_steps=max(1, steps // 20),
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,  # our own bar below; the default one also prints every log dict
        # Checking every step's loss for NaN / inf is a host sync per step.
        logging_nan_inf_filter=False,
        dataset_num_proc=None,
    )
    if cfg.packing:
        args["packing_strategy"] = "bfd"  # implies padding-free: position ids, no cross-attention
    args.update(cfg.sft)
    sft_args = SFTConfig(**args)
    # Quiet the trainer's own chatter; the caller prints a summary.
    logging.getLogger("transformers").setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    trainer = sync_free_trainer_class()(
        model=model,
        args=sft_args,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=_peft_config(lora),
    )
    if cfg.packing and not has_varlen_attention(model):
        trainer.data_collator = packed_rows_collator(tokenizer.pad_token_id, cfg.max_length)
    if cfg.packing and "max_steps" not in cfg.sft:
        rows = len(trainer.train_dataset)
        world = trainer.args.world_size
        trainer.args.max_steps = max(
            1, math.ceil(rows / (sft_args.per_device_train_batch_size * world))
        )
        # One pass over the packed rows: the tokens it trains on, known before it starts (TRL's
        # own count is one row's width per step once the rows are not concatenated).
        trainer.packed_tokens = sum(map(len, trainer.train_dataset["input_ids"]))
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(StepBar(progress))
    return trainer, len(order)


def train_result(
    trainer, examples: list[Example], seen_examples: int, cfg: TrainConfig, seconds: float
) -> TrainResult:
    """What a finished ``trainer`` did: tokens processed, steps, epochs over the data, last loss."""
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    tokens = (
        getattr(trainer, "packed_tokens", 0)
        or int(trainer.state.num_input_tokens_seen or 0)
        or next((int(h["num_tokens"]) for h in reversed(history) if "num_tokens" in h), 0)
    )
    steps = trainer.args.max_steps
    batch = seen_examples // steps if steps else 0
    if not tokens:
        lengths = count_tokens(trainer.processing_class, examples)
        tokens = round(steps * batch * sum(lengths) / len(lengths))
    return TrainResult(
        tokens=tokens,
        steps=steps,
        examples=len(examples),
        epochs=seen_examples / len(examples),
        final_loss=losses[-1] if losses else None,
        seconds=seconds,
        batch_size=batch,
        first_loss=losses[0] if len(losses) > 1 else None,  # one logged loss: no trend
    )


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
    lora: LoraConfig | None = None,
    chat_template: str = "auto",
    plan: StepPlan | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``examples`` for about ``budget_tokens`` tokens, or as
    ``plan`` says (steps and examples per step).

    ``lora`` (``r > 0``): train adapters and merge them into ``model`` at the end.
    ``chat_template`` (``auto`` | ``none``): conversational records when the tokenizer has a template.
    With ``cfg.num_processes > 1`` or ``cfg.accelerate_config`` the stage runs under
    ``accelerate launch`` and the trained weights are loaded back into ``model``.
    """
    kwargs = dict(
        budget_tokens=budget_tokens,
        seed=seed,
        work_dir=work_dir,
        device=device,
        progress=progress,
        lora=lora,
        chat_template=chat_template,
        plan=plan,
    )
    if cfg.num_processes > 1 or cfg.accelerate_config is not None:
        return launch_training(model, tokenizer, examples, cfg, **kwargs)
    trainer, seen = build_trainer(model, tokenizer, examples, cfg, **kwargs)
    if trainer is None:
        return TrainResult(0, 0, len(examples), 0.0, None, 0.0)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    if _peft_config(lora) is not None:
        # Merging swaps each adapted layer back for a plain one holding W + alpha/r BA, inside the
        # caller's model object: it leaves as a plain model, ready to save or generate with.
        trainer.model.merge_and_unload()
    return train_result(trainer, examples, seen, cfg, seconds)


# ------------------------------------------------------------------------------------------------
# Training in launched worker processes (accelerate: DDP, FSDP, DeepSpeed)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(cfg: TrainConfig, request: Path, port: int | None = None) -> list[str]:
    """The ``accelerate launch`` command line that runs :mod:`selfplay.engine.train_worker` on ``request``.

    ``train.accelerate_config`` chooses the strategy (DDP, FSDP, DeepSpeed); without one, more
    than one process means DDP (``--multi_gpu``). ``train.num_processes`` overrides the file's.
    On one machine a free rendezvous ``port`` is passed unless the file sets one, so two runs on
    one node do not collide.
    """
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    file_cfg: dict = {}
    if cfg.accelerate_config is not None:
        cmd += ["--config_file", str(cfg.accelerate_config)]
        file_cfg = yaml.safe_load(Path(cfg.accelerate_config).read_text()) or {}
    elif cfg.num_processes > 1:
        cmd += ["--multi_gpu"]
    cmd += ["--num_processes", str(cfg.num_processes)]
    one_machine = int(file_cfg.get("num_machines", 1) or 1) <= 1
    if port is not None and "main_process_port" not in file_cfg and one_machine:
        cmd += ["--main_process_port", str(port)]
    return cmd + ["-m", "selfplay.engine.train_worker", str(request)]


def launch_training(
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
    lora: LoraConfig | None = None,
    chat_template: str = "auto",
    plan: StepPlan | None = None,
) -> TrainResult:
    """:func:`train_sft` in worker processes under ``accelerate launch``.

    The model and tokenizer are saved to ``work_dir/init``, the examples and settings to a request
    file; the workers train (each plans the same steps and data order as :func:`train_sft`) and
    save the full weights, adapters merged, to ``work_dir/out``, which are loaded back into
    ``model``. A worker's error comes back as one line.
    """
    from transformers import AutoModelForCausalLM

    from selfplay.generation import WorkerError

    if not examples or (budget_tokens <= 0 and (plan is None or plan.steps == 0)):
        return TrainResult(0, 0, len(examples), 0.0, None, 0.0)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    init, out = work_dir / "init", work_dir / "out"
    model.save_pretrained(str(init))
    tokenizer.save_pretrained(str(init))
    request = work_dir / "request.json"
    request.write_text(
        json.dumps(
            {
                "init": str(init),
                "out": str(out),
                "examples": [asdict(e) for e in examples],
                "train": asdict(cfg),
                "lora": asdict(lora) if lora is not None else None,
                "chat_template": chat_template,
                "attn_implementation": getattr(model.config, "_attn_implementation", None),
                "budget_tokens": budget_tokens,
                "plan": asdict(plan) if plan is not None else None,
                "seed": seed,
                "trainer_dir": str(work_dir / "trainer"),
                "progress": progress,
                "result": str(work_dir / "result.json"),
                "error_prefix": str(work_dir / "error"),
            }
        )
    )
    for stale in [work_dir / "result.json", *work_dir.glob("error.rank*.txt")]:
        stale.unlink(missing_ok=True)
    cmd = launch_command(cfg, request, port=_free_port())
    proc = subprocess.run(cmd)
    errors = sorted(work_dir.glob("error.rank*.txt"))
    if errors:
        raise WorkerError(
            f"training worker ({errors[0].stem[6:]}): {errors[0].read_text().strip()}"
        )
    if proc.returncode != 0 or not (work_dir / "result.json").exists():
        raise WorkerError(
            f"training: accelerate launch exited with code {proc.returncode} (see the output above): {' '.join(cmd)}"
        )
    trained = AutoModelForCausalLM.from_pretrained(str(out), dtype=model.dtype)
    model.load_state_dict(trained.state_dict())
    return TrainResult(**json.loads((work_dir / "result.json").read_text()))
