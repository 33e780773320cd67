"""Online RL on the verifier: one GRPO round with TRL's ``GRPOTrainer`` (DeepSeekMath, 2402.03300).

Where an expert-iteration round generates a batch, filters it and retrains, a GRPO round trains
while it generates: each of ``grpo.max_steps`` optimizer steps samples ``grpo.num_generations``
completions for each of ``batch_size / num_generations`` practice problems with the current
weights, scores each with the task's verifier (:func:`reward_of`), and takes a policy-gradient step
on the rewards normalised within each problem's group (the advantage). A group whose completions
all score the same carries no signal.

Every sample is recorded with its verdict, reward and advantage in ``samples.parquet`` (the schema
of expert iteration's samples, plus ``reward``, ``advantage``, ``step`` and ``group``), and the
round's cost is counted in the units of the other arms:

- ``generated_tokens``: completion tokens sampled (end-of-sequence included), ``prompt_tokens``:
  the prompt tokens prefilled for them (each completion prefills its prompt);
- ``train.tokens``: prompt + completion tokens through the training forward and backward pass (as
  in supervised training), ``train.loss_tokens``: the completion tokens the loss is on;
- ``scoring_tokens``: tokens through extra no-grad forward passes (the reference model when
  ``beta > 0``, old log-probabilities when a batch is reused);
FLOPs follow the one rule of :mod:`selfplay.engine.ledger` (scoring tokens are its *scored* tokens).
In a run, :func:`selfplay.engine.loop.grpo` makes a GRPO stage a round's practice step on any schedule.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from collections import Counter
from pathlib import Path

from selfplay.config import RunConfig
from selfplay.engine import artifacts
from selfplay.engine.filters import normalize_chain
from selfplay.engine.ledger import Cost, add_cost
from selfplay.engine.metrics import filter_metrics
from selfplay.engine.models import count_params, load_for_training, user_turn, uses_chat_template
from selfplay.engine.sampling import verdict_fields
from selfplay.errors import ConfigError
from selfplay.tasks import Problem, Task, verify_all
from selfplay.verify import STATUSES, Verdict

ORIGIN = "grpo"
"""``origin`` of a GRPO sample in ``samples.parquet``."""


def reward_of(verdict: Verdict, step_credit: float = 0.0) -> float:
    """A completion's reward: 1 for a valid chain (right answer, every step checks out), else
    ``step_credit`` x the fraction of its steps that check out (0 when ``step_credit`` is 0)."""
    if verdict.valid:
        return 1.0
    if step_credit <= 0 or not verdict.steps:
        return 0.0
    return step_credit * sum(s.ok for s in verdict.steps) / len(verdict.steps)


def check_trl_options(options: dict) -> None:
    """Fail early, in one line, on a ``grpo.trl`` key that ``trl.GRPOConfig`` does not have."""
    import difflib

    from trl import GRPOConfig

    names = [f.name for f in dataclasses.fields(GRPOConfig)]
    for key in options:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean 'grpo.trl.{close[0]}'?)" if close else ""
            raise ConfigError(f"grpo.trl.{key}: not an option of trl.GRPOConfig{hint}")


_TRAINER_CLASS = None


def _recording_trainer():
    """``GRPOTrainer`` that keeps every scored batch's advantages and counts the tokens it trains
    on, so the round's samples and budget come from what the trainer actually did."""
    global _TRAINER_CLASS
    if _TRAINER_CLASS is not None:
        return _TRAINER_CLASS
    from trl import GRPOTrainer

    class RecordingGRPOTrainer(GRPOTrainer):
        def _generate(self, prompts):
            t0 = time.perf_counter()
            out = super()._generate(prompts)
            self.selfplay_gen_seconds += time.perf_counter() - t0
            return out

        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            batch = self.selfplay_pending
            self.selfplay_pending = []
            advantages = out["advantages"].tolist()
            prompt_lens = out["prompt_mask"].sum(dim=1).tolist()
            if len(batch) != len(advantages):  # one reward call per scored batch, in order
                raise RuntimeError(
                    f"GRPO bookkeeping: {len(batch)} scored samples, {len(advantages)} advantages"
                )
            group0 = self.selfplay_groups
            g = self.num_generations
            for i, (rec, adv, plen) in enumerate(zip(batch, advantages, prompt_lens, strict=True)):
                rec["advantage"] = float(adv)
                rec["prompt_tokens"] = int(plen)
                rec["group"] = group0 + i // g
                rec["sample_idx"] = i % g
                rec["step"] = int(self.state.global_step)
            self.selfplay_groups += len(batch) // g
            self.selfplay_samples += batch
            # Extra no-grad forward passes over every sequence of the batch.
            seq_tokens = int(out["prompt_mask"].sum() + out["completion_mask"].sum())
            passes = ("ref_per_token_logps" in out) + ("old_per_token_logps" in out)
            self.selfplay_scoring_tokens += passes * seq_tokens
            return out

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            completion = int(inputs["completion_mask"].sum())
            self.selfplay_train_tokens += int(inputs["prompt_mask"].sum()) + completion
            self.selfplay_loss_tokens += completion
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    _TRAINER_CLASS = RecordingGRPOTrainer
    return _TRAINER_CLASS


def _verdict_record(p: Problem, text: str, ids: list[int], eos: set[int], v: Verdict) -> dict:
    """A sample in the schema of :func:`selfplay.engine.sampling.sample_record` (filled in later:
    ``sample_idx``, ``advantage``, ``group``, ``step``, ``prompt_tokens``)."""
    return {
        "problem_id": p.id,
        "difficulty": p.difficulty,
        "prompt": p.prompt,
        "gold": p.answer,
        "sample_idx": 0,
        "origin": ORIGIN,
        "generation_prompt": p.prompt,
        "text": text,
        "tokens": len(ids),
        "finish_reason": "stop" if ids and ids[-1] in eos else "length",
        **verdict_fields(v),
    }


def grpo_trainer_args(cfg: RunConfig, max_new_tokens: int, seed: int, work_dir: Path, device: str):
    """The ``trl.GRPOConfig`` of a round: ``grpo.*`` and the generation settings, then ``grpo.trl``."""
    import torch
    from trl import GRPOConfig

    g = cfg.grpo
    on_gpu = device.startswith("cuda")
    args = dict(
        output_dir=str(work_dir),
        max_steps=g.max_steps,
        per_device_train_batch_size=g.batch_size,
        gradient_accumulation_steps=1,
        num_generations=g.num_generations,
        learning_rate=g.lr,
        lr_scheduler_type="cosine",
        warmup_steps=0,
        weight_decay=0.0,
        beta=g.beta,
        epsilon=g.epsilon,
        temperature=cfg.generation.temperature,
        top_p=cfg.generation.top_p,
        max_completion_length=max_new_tokens,
        # Gradient checkpointing costs 1.4-3.5x on CPU and buys nothing at these sizes.
        gradient_checkpointing=False,
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
        use_cpu=not on_gpu,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
        log_completions=False,
    )
    args.update(g.trl)
    try:
        return GRPOConfig(**args)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"grpo: {exc}") from None


def train_grpo(
    cfg: RunConfig,
    task: Task,
    model,
    tok,
    pool: list[Problem],
    *,
    seed: int,
    work_dir: Path,
    device: str = "cpu",
    progress: str | None = None,
) -> tuple[list[dict], dict]:
    """Train ``model`` in place with GRPO on ``pool``; returns every scored sample and the stats."""
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback

    from selfplay.training import StepBar

    check_trl_options(cfg.grpo.trl)
    by_id = {p.id: p for p in pool}
    max_new = cfg.generation.max_new_tokens or task.max_new_tokens(max(p.difficulty for p in pool))
    chat = uses_chat_template(tok, cfg.model.chat_template)
    records = [
        {"prompt": user_turn(p.prompt) if chat else p.prompt, "problem_id": p.id} for p in pool
    ]
    eos = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    step_credit = cfg.grpo.step_credit
    state = {"verify_seconds": 0.0}
    trainer_box: list = []

    def verifier_reward(prompts, completions, completion_ids, problem_id, **_):
        t0 = time.perf_counter()
        problems = [by_id[pid] for pid in problem_id]
        texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        verdicts = verify_all(task, list(zip(problems, texts, strict=True)))
        batch = []
        for p, text, ids, v in zip(problems, texts, completion_ids, verdicts, strict=True):
            rec = _verdict_record(p, text, list(ids), eos, v)
            rec["reward"] = reward_of(v, step_credit)
            batch.append(rec)
        trainer_box[0].selfplay_pending = batch
        state["verify_seconds"] += time.perf_counter() - t0
        return [r["reward"] for r in batch]

    args = grpo_trainer_args(cfg, max_new, seed, work_dir, device)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    trainer = _recording_trainer()(
        model=model,
        reward_funcs=verifier_reward,
        args=args,
        train_dataset=Dataset.from_list(records),
        processing_class=tok,
    )
    trainer_box.append(trainer)
    trainer.selfplay_pending = []
    trainer.selfplay_samples = []
    trainer.selfplay_groups = 0
    trainer.selfplay_gen_seconds = 0.0
    trainer.selfplay_scoring_tokens = 0
    trainer.selfplay_train_tokens = 0
    trainer.selfplay_loss_tokens = 0
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(StepBar(progress))
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    history = [h for h in trainer.state.log_history if "loss" in h]
    samples = trainer.selfplay_samples
    gen_seconds = trainer.selfplay_gen_seconds
    stats = {
        "generated_tokens": sum(s["tokens"] for s in samples),
        "prompt_tokens": sum(s["prompt_tokens"] for s in samples),
        "scoring_tokens": trainer.selfplay_scoring_tokens,
        "train_tokens": trainer.selfplay_train_tokens,
        "loss_tokens": trainer.selfplay_loss_tokens,
        "steps": int(trainer.state.global_step),
        "losses": [float(h["loss"]) for h in history],
        "rewards": [float(h["reward"]) for h in history if "reward" in h],
        "kl": [float(h["kl"]) for h in history if "kl" in h],
        "gen_seconds": gen_seconds,
        "verify_seconds": state["verify_seconds"],
        "train_seconds": max(seconds - gen_seconds - state["verify_seconds"], 0.0),
        "max_new_tokens": max_new,
    }
    del trainer
    return samples, stats


def _rate(samples: list[dict], pred) -> float:
    return sum(map(pred, samples)) / len(samples) if samples else 0.0


def _decide(s: dict) -> None:
    """GRPO trains on every sample, weighted by its advantage: ``kept`` says it moved the policy."""
    moved = abs(s["advantage"]) > 1e-6
    s["kept"] = moved
    sign = "reinforced" if s["advantage"] > 0 else "discouraged"
    s["filter_reason"] = (
        f"{sign}: advantage {s['advantage']:+.2f}"
        if moved
        else "no signal: every completion in its group scored the same"
    )


def round_record(
    cfg: RunConfig, k: int, samples: list[dict], stats: dict, n_params: int, pool_size: int
) -> dict:
    """The round's metrics, in the keys the expert-iteration rounds write (``generate``,
    ``train``, ``seconds``), plus ``grpo`` (rewards, advantages); its cost is :func:`round_cost`."""
    ds = sorted({s["difficulty"] for s in samples})
    by_d = lambda pred: {  # noqa: E731
        str(d): _rate([s for s in samples if s["difficulty"] == d], pred) for d in ds
    }
    chains: dict[str, set] = {}
    for s in samples:
        chains.setdefault(s["problem_id"], set())
        if s["valid"]:
            chains[s["problem_id"]].add(normalize_chain(s["text"]))
    groups = Counter(s["group"] for s in samples if abs(s["advantage"]) > 1e-6)
    n_groups = len({s["group"] for s in samples})
    gen = {
        "problems": len({s["problem_id"] for s in samples}),
        "samples": len(samples),
        "samples_by_origin": {ORIGIN: len(samples)},
        "generated_tokens": stats["generated_tokens"],
        "prompt_tokens": stats["prompt_tokens"],
        "truncated": sum(s["finish_reason"] == "length" for s in samples),
        "seconds": stats["gen_seconds"],
        "verify_seconds": stats["verify_seconds"],
        "tokens_per_second": stats["generated_tokens"] / max(stats["gen_seconds"], 1e-9),
        "pass_rate": _rate(samples, lambda s: s["status"] == "correct"),
        "valid_rate": _rate(samples, lambda s: s["valid"]),
        "pass_rate_by_difficulty": by_d(lambda s: s["status"] == "correct"),
        "status_counts": {st: sum(s["status"] == st for s in samples) for st in STATUSES},
        "distinct_correct_chains_per_problem": sum(map(len, chains.values())) / max(len(chains), 1),
    }
    train = {
        "tokens": stats["train_tokens"],
        "loss_tokens": stats["loss_tokens"],
        "scoring_tokens": stats["scoring_tokens"],
        "steps": stats["steps"],
        "examples": len(samples),
        # Passes over the practice pool (each problem drawn once per pass, G completions each).
        "epochs": len(samples) / cfg.grpo.num_generations / max(pool_size, 1),
        "final_loss": stats["losses"][-1] if stats["losses"] else None,
        "losses": stats["losses"],
        "seconds": stats["train_seconds"],
        "params": n_params,
    }
    return {
        "stage": f"iter_{k:03d}",
        "iteration": k,
        "source": "selfplay",
        "method": "grpo",
        "generate": gen,
        "grpo": {
            "mean_reward": _rate(samples, lambda s: s["reward"]),
            "reward_by_step": stats["rewards"],
            "kl_by_step": stats["kl"],
            "mean_reward_by_difficulty": by_d(lambda s: s["reward"]),
            "groups": n_groups,
            "groups_with_signal": len(groups),
            "step_credit": cfg.grpo.step_credit,
            "max_new_tokens": stats["max_new_tokens"],
        },
        "filter": filter_metrics(samples),
        "train": train,
        "seconds": {
            "generate": stats["gen_seconds"] + stats["verify_seconds"],
            "train": stats["train_seconds"],
        },
    }


def round_cost(record: dict) -> Cost:
    """What a GRPO round spent, for the ledger: it trains on its samples, generates them (with
    their prompts' prefill) and scores them under the old and reference policies."""
    gen, train = record["generate"], record["train"]
    return Cost(
        train_tokens=train["tokens"],
        generated_tokens=gen["generated_tokens"],
        prefill_tokens=gen["prompt_tokens"],
        scored_tokens=train["scoring_tokens"],
        verifier_calls=gen["samples"],
        seconds=sum(record["seconds"].values()),
    )


def grpo_stage(
    cfg: RunConfig,
    task: Task,
    k: int,
    model_dir: Path,
    pool: list[Problem],
    out_dir: Path,
    *,
    device: str = "cpu",
    progress: bool = False,
) -> dict:
    """Round ``k``'s GRPO training from the checkpoint in ``model_dir``: writes ``model/``,
    ``samples.parquet`` and ``grpo.json`` (the round record) under ``out_dir``, or reads the
    record back if they exist."""
    out_dir = Path(out_dir)
    done = out_dir / "grpo.json"
    if done.exists() and (out_dir / "model").exists() and (out_dir / "samples.parquet").exists():
        return artifacts.read_json(done)
    if not pool:
        raise ConfigError(f"round {k}: the practice pool is empty (loop.problems_per_iter)")
    model, tok = load_for_training(cfg, model_dir, device)
    samples, stats = train_grpo(
        cfg,
        task,
        model,
        tok,
        pool,
        seed=cfg.seed * 1000 + k,
        work_dir=out_dir / ".trainer",
        device=device,
        progress=f"grpo {k}" if progress else None,
    )
    for s in samples:
        _decide(s)
    record = round_record(cfg, k, samples, stats, count_params(model), len(pool))
    record["train"]["init_from"] = str(model_dir)
    artifacts.save_model_dir(out_dir / "model", model, tok)
    artifacts.write_parquet(out_dir / "samples.parquet", samples)
    artifacts.write_json(done, record)
    shutil.rmtree(out_dir / ".trainer", ignore_errors=True)
    return record


def run_grpo_round(
    cfg: RunConfig,
    task: Task,
    model_dir: Path,
    pool: list[Problem],
    out_dir: Path,
    *,
    k: int = 1,
    device: str = "cpu",
    progress: bool = False,
    prev_cumulative: dict | None = None,
) -> dict:
    """One GRPO round on its own (no evaluation): train from ``model_dir`` on ``pool``, write the
    round under ``out_dir`` and return its metrics. A round whose ``metrics.json`` exists is done:
    its metrics are read back and nothing runs."""
    out_dir = Path(out_dir)
    if (out_dir / "metrics.json").exists():
        return artifacts.read_json(out_dir / "metrics.json")
    record = dict(
        grpo_stage(cfg, task, k, model_dir, pool, out_dir, device=device, progress=progress)
    )
    record["seconds"]["total"] = sum(record["seconds"].values())
    record["cumulative"] = add_cost(prev_cumulative, round_cost(record), record["train"]["params"])
    artifacts.write_json(out_dir / "metrics.json", record)
    return record
