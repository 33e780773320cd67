"""The run config's sections as dataclasses, every field documented where it is declared, each
section checking its own ranges (``check``). :mod:`selfplay.config` reads YAML into them; tasks
read the sections they need (``task``, ``raw``) without the parser above them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from selfplay.errors import ConfigError


def need(ok: bool, key: str, what: str) -> None:
    """A one-line :class:`ConfigError` naming ``key`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}: {what}")


def _difficulties(key: str, ds: list[int]) -> None:
    need(len(ds) > 0 and all(d >= 1 for d in ds), key, "must be a non-empty list of integers >= 1")


@dataclass
class LoraConfig:
    """Low-rank adapters (``peft``) instead of full fine-tuning. After each training stage the
    adapters are merged into the weights, so every checkpoint is a plain model directory."""

    r: int = 0
    """Adapter rank (0 = off: full fine-tuning)."""
    alpha: float = 16.0
    """Scale numerator: the update is ``alpha / r x B A``."""
    dropout: float = 0.0
    """Dropout on the adapter's input."""
    target_modules: list[str] | str = "all-linear"
    """Modules that get adapters: names (e.g. ``[q_proj, v_proj]``), a regex matched against full
    module names, or ``all-linear``."""

    def check(self) -> None:
        need(self.r >= 0, "model.lora.r", "must be >= 0 (0 = off)")
        need(self.alpha > 0, "model.lora.alpha", "must be > 0")
        need(0.0 <= self.dropout < 1.0, "model.lora.dropout", "must be in [0, 1)")
        need(
            len(self.target_modules) > 0,
            "model.lora.target_modules",
            "must be 'all-linear', a regex or a non-empty list of module names",
        )


@dataclass
class ModelConfig:
    preset: Literal["tiny", "small", "base"] = "tiny"
    """Size of a from-scratch Llama with a character tokenizer: tiny ~1M, small ~10M, base ~100M params."""
    position: Literal["rope", "nope"] = "rope"
    """Position encoding of a from-scratch preset: ``rope`` (rotary) or ``nope`` (none: causal
    attention alone tells positions apart, which lets a model trained on short problems run on
    longer ones). Saved in the checkpoint's config, so it reloads as trained."""
    name_or_path: str | None = None
    """Any Hugging Face causal LM (hub name or local directory); overrides ``preset`` when set."""
    chat_template: Literal["auto", "none"] = "auto"
    """``auto``: if the tokenizer has a chat template, a prompt is rendered as a user turn with the
    generation prompt (generation) and the completion as the assistant turn (training); ``none``:
    plain text. The character tokenizer of the presets has no template."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights for generation. ``auto``: bfloat16 on a GPU that supports it, else the checkpoint's
    dtype. Training keeps float32 weights under ``auto`` (bf16 autocast on a GPU); any other value
    is used for training too."""
    attn_implementation: str = "auto"
    """Attention kernel passed to transformers. ``auto``: ``flash_attention_2`` on a GPU when the
    ``flash-attn`` package is installed, else ``sdpa``."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """LoRA adapters (``r > 0``) for the rounds, and for the seed stage of a pretrained
    ``name_or_path`` (a from-scratch preset's seed stage always trains every weight)."""

    def check(self) -> None:
        self.lora.check()


@dataclass
class TaskConfig:
    name: str = "arith"
    """Task name; see ``selfplay.tasks.TASKS``."""
    ops: list[str] = field(default_factory=lambda: ["add"])
    """Operations of the ``arith`` task: ``add`` (column addition with carries), ``mul`` (partial products)."""
    index_hints: bool = False
    """``arith`` addition with index hints: every prompt digit and chain step carries its column's
    letter, so the chain format itself does not tie the model to the lengths it was trained on."""
    reversed: bool = False
    """``arith``: operands and answer least-significant digit first, the answer zero-padded to a
    fixed width (addition: longer operand + 1 digits), the format that generalizes in length."""
    data: str | None = None
    """Problems of a dataset task (``gsm8k``, ``math``, ``code``): a local JSONL / JSONL.gz / Parquet
    file, or a Hugging Face hub dataset name (e.g. ``openai/gsm8k``). ``null``: the task's default."""
    data_subset: str | None = None
    """Hub dataset configuration (e.g. ``main`` for ``openai/gsm8k``)."""
    data_split: str | None = None
    """Hub dataset split to read (``null``: the task's default, e.g. ``train`` for GSM8K, ``test``
    for HumanEval). Held-out problems are a fixed hash-based 20% of the problems read."""
    timeout: float = 10.0
    """Verifier wall-clock limit per completion, in seconds (the code sandbox, math-verify)."""
    memory_mb: int = 1024
    """Memory limit of one sandboxed program (``code``), in MiB."""

    def check(self) -> None:
        need(self.timeout > 0, "task.timeout", "must be > 0")
        need(self.memory_mb >= 64, "task.memory_mb", "must be >= 64")


@dataclass
class RawConfig:
    """The raw corpus U: a limited, capped-difficulty stand-in for scraped data."""

    size: int = 2000
    """Number of problems in U."""
    difficulties: list[int] = field(default_factory=lambda: [1, 2, 3])
    """Difficulties (for ``arith``: digit counts) drawn uniformly for U."""
    slip_rate: float = 0.0
    """Fraction of U whose chain carries a realistic slip (dropped carry, wrong digit sum) that propagates."""
    answer_only_rate: float = 0.0
    """Fraction of U that carries only the final answer, no chain."""
    hint_rate: float = 0.0
    """Fraction of U shown with its answer as a hint in the prompt, so a from-scratch model learns to
    read hints (needed for ``loop.rationalize``)."""

    def check(self) -> None:
        need(self.size > 0, "raw.size", "must be > 0")
        for key in ("slip_rate", "answer_only_rate", "hint_rate"):
            need(0.0 <= getattr(self, key) <= 1.0, f"raw.{key}", "must be in [0, 1]")
        need(
            self.slip_rate + self.answer_only_rate <= 1.0,
            "raw.slip_rate",
            "slip_rate + answer_only_rate must be <= 1",
        )
        _difficulties("raw.difficulties", self.difficulties)


@dataclass
class SeedConfig:
    """Supervised training on U that produces model_0."""

    tokens: int = 600_000
    """Training-token budget for the seed model (U is repeated as needed)."""
    epochs: float | None = None
    """If set, the seed budget in passes over U instead (``tokens`` is then ignored), so the seed
    model of a small and of a large corpus see each item equally often."""
    lr: float = 3e-3
    """Learning rate from scratch; the rounds use ``train.lr`` (lower: they continue a trained model)."""

    def check(self) -> None:
        need(self.tokens >= 0, "seed_train.tokens", "must be >= 0")
        need(self.epochs is None or self.epochs >= 0, "seed_train.epochs", "must be >= 0 or null")
        need(self.lr > 0, "seed_train.lr", "must be > 0")


@dataclass
class FrontierConfig:
    """The frontier schedule (``loop.schedule: frontier``): practise just past the largest
    difficulty solved, on the model's own answers, one round at a time (see ``selfplay.schedules.frontier``)."""

    threshold: float = 0.9
    """A difficulty is solved when greedy accuracy on the validation split reaches this."""
    accelerated: bool = False
    """Practise every difficulty above the trained ones that is already solved, plus the next one,
    in one round (instead of only the next one)."""
    practice_ahead: int = 1
    """Difficulties past the frontier labelled each round: 1, the next one only; 2, the next two
    (the further one has fewer right answers, but a verifier keeps only those, so labelling it
    early costs generation, not label quality)."""
    max_difficulty: int = 32
    """Stop once the frontier reaches this difficulty."""
    stall_rounds: int = 3
    """Stop when the frontier has not moved up for this many rounds."""
    time_budget_s: float | None = None
    """Start no new round once the run has spent this many seconds (``null``: no limit)."""
    budget_clock: Literal["cpu", "wall"] = "cpu"
    """What ``time_budget_s`` counts: ``cpu``, the run process's CPU seconds (all its threads), so
    other jobs on a shared machine do not cut the climb short; ``wall``, elapsed seconds."""
    val_per_difficulty: int = 100
    """Validation problems per difficulty for the probe (train split, never practised on)."""
    probe_ahead: int = 2
    """The probe (and the per-round evaluation) covers difficulties up to the largest practised + this."""
    probe: Literal["verifier", "agreement"] = "verifier"
    """What the probe scores per difficulty, and so what decides the practice and the stop.
    ``verifier``: greedy accuracy on the validation split (the verifier judges each answer; on
    arithmetic that is ground truth). ``agreement``: label-free: the share of validation problems
    whose answers all agree (the greedy answer, ``probe_samples`` sampled answers at
    ``generation.temperature`` and a committee's other models' greedy answers; of the width the
    prompt implies with ``length_filter``), so no gold answer chooses what to practise or when to
    stop; the greedy answers' accuracy is recorded for the report only."""
    probe_samples: int = 4
    """With ``probe: agreement``: sampled answers per validation problem beside the greedy one."""
    length_filter: bool = True
    """Keep only answers of the width the prompt implies (needs no ground truth)."""
    mix_new: float = 0.5
    """Share of each training batch from the newest round's kept data."""
    mix_old: float = 0.25
    """Share from all earlier rounds' kept data."""
    mix_raw: float = 0.25
    """Share from U. Shares of empty sources go to the others."""

    def check(self) -> None:
        need(0.0 <= self.threshold <= 1.0, "loop.frontier.threshold", "must be in [0, 1]")
        need(self.max_difficulty >= 1, "loop.frontier.max_difficulty", "must be >= 1")
        need(self.stall_rounds >= 1, "loop.frontier.stall_rounds", "must be >= 1")
        need(self.val_per_difficulty >= 1, "loop.frontier.val_per_difficulty", "must be >= 1")
        need(self.probe_ahead >= 0, "loop.frontier.probe_ahead", "must be >= 0")
        need(self.probe_samples >= 0, "loop.frontier.probe_samples", "must be >= 0")
        need(self.practice_ahead >= 1, "loop.frontier.practice_ahead", "must be >= 1")
        shares = (self.mix_new, self.mix_old, self.mix_raw)
        need(
            min(shares) >= 0 and sum(shares) > 0,
            "loop.frontier.mix_new",
            "mix shares must be >= 0 and not all 0",
        )


@dataclass
class LoopConfig:
    schedule: Literal["rounds", "frontier"] = "rounds"
    """``rounds``: a fixed number of rounds on ``pool_difficulties``; ``frontier``: the frontier
    schedule of ``loop.frontier``, with ``iterations`` as its round cap."""
    frontier: FrontierConfig = field(default_factory=FrontierConfig)
    iterations: int = 3
    """Number of rounds K."""
    method: Literal["expert_iteration", "grpo"] = "expert_iteration"
    """How a round improves the model. ``expert_iteration``: generate, verify, filter, retrain on
    the kept chains (``generation``, ``filters``, ``train``); ``grpo``: online RL with the verifier
    as the reward on the same practice pool (``grpo``; see :mod:`selfplay.engine.grpo`)."""
    pool_difficulties: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    """Difficulties of the problems the model practises on in each round."""
    problems_per_iter: int = 1000
    """Problems drawn (from the training split) per round."""
    data_source: Literal["selfplay", "raw-repeat", "raw-fresh", "oracle"] = "selfplay"
    """What each round trains on. ``selfplay``: the model's own filtered chains. The baselines
    generate nothing: ``raw-repeat`` walks through U again (the data wall); ``raw-fresh`` through a
    fresh corpus of ``fresh_multiplier x raw.size`` problems from the same source (more internet);
    ``oracle`` (frontier schedule) the gold labels of the very problems a self-play round would
    practise, in U's format: what a perfect labeller gives, the bound self-generation is measured
    against (it uses ground truth)."""
    fresh_multiplier: float = 1.0
    """Size of the ``raw-fresh`` corpus, in multiples of U."""
    rationalize: bool = False
    """STaR's rationalization: problems with no correct sample are retried with the answer given as a
    hint (``task.hint_prompt``); chains that verify are trained on with the plain prompt."""
    curriculum: bool = False
    """Practise mostly at a frontier difficulty that moves up the pool as the model passes it."""
    curriculum_threshold: float = 0.5
    """Pass rate at the frontier that moves it one pool difficulty up for the next round."""
    curriculum_easy_mix: float = 0.3
    """With ``curriculum``: fraction of the round's problems from easier pool difficulties."""
    fill_budget: bool = False
    """Fill the budget: after the round's first draw, keep drawing ``problems_per_iter`` new
    problems and sampling them until the round's training set holds at least the round's token
    budget in *unique* kept chains (so nothing is repeated) or ``fill_max_draws`` draws were made."""
    fill_max_draws: int = 4
    """With ``fill_budget``: extra problem draws allowed per round (the sampling cap)."""

    def check(self) -> None:
        self.frontier.check()
        _difficulties("loop.pool_difficulties", self.pool_difficulties)
        need(self.iterations >= 0, "loop.iterations", "must be >= 0")
        need(self.problems_per_iter > 0, "loop.problems_per_iter", "must be > 0")
        need(self.fresh_multiplier > 0, "loop.fresh_multiplier", "must be > 0")
        need(self.fill_max_draws >= 0, "loop.fill_max_draws", "must be >= 0")
        need(
            0.0 <= self.curriculum_threshold <= 1.0,
            "loop.curriculum_threshold",
            "must be in [0, 1]",
        )
        need(0.0 <= self.curriculum_easy_mix < 1.0, "loop.curriculum_easy_mix", "must be in [0, 1)")


@dataclass
class GenerationConfig:
    backend: Literal["hf", "vllm"] = "hf"
    """Generation backend: ``hf`` (transformers ``generate``, in process) or ``vllm`` (offline
    ``vllm.LLM`` in a subprocess per call, so its GPU memory is returned; ``pip install '.[vllm]'``)."""
    n: int = 4
    """Samples per problem."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int | None = None
    """Upper bound on completion length; ``null`` asks the task for a bound that fits the hardest problem."""
    batch_size: int | Literal["auto"] = 256
    """Sequences per forward pass (prompts x n) of the ``hf`` backend. ``auto``: as many as fit in
    free GPU memory (estimated from the KV cache and activations; 256 on CPU). vLLM batches itself."""
    cache: Literal["dynamic", "static"] = "dynamic"
    """KV cache of the ``hf`` backend: ``dynamic`` grows per step; ``static`` is preallocated, the
    shape ``compile`` needs."""
    compile: bool = False
    """``hf`` backend on a GPU: compile the decoding step (``torch.compile``, CUDA graphs); needs
    ``cache: static`` or ``decoder: loop``. Ignored on CPU."""
    decoder: Literal["generate", "loop", "grouped"] = "generate"
    """Decoding of the ``hf`` backend: ``generate`` (transformers ``model.generate``), ``loop``
    (selfplay's own loop: a static KV cache whatever ``cache`` says, sampling and stop tracking on
    the device, a host sync only every 16 tokens, and on a GPU a CUDA graph replayed per token),
    or ``grouped`` (prompts of one token length decoded together with no padding: the fastest
    path for a small model on a CPU; ``cache`` and ``compile`` do not apply). Greedy output is
    token-identical across the three; sampled output is as reproducible per seed but draws
    different samples."""
    refill: bool = False
    """``decoder: loop`` only: continuous batching. ``batch_size`` rows decode the whole list of
    prompts; a row that finishes takes the next prompt at the next check (every 16 tokens)
    instead of padding until the batch's longest row stops. Greedy output is the same; sampled
    output draws other samples (one seeded stream). Needs sdpa or eager attention and no
    sliding-window layers."""
    tensor_parallel_size: int = 1
    """``vllm``: GPUs that hold one copy of the model."""
    data_parallel_size: int = 1
    """``vllm``: copies of the model, each generating for its own shard of the prompts on its own
    ``tensor_parallel_size`` GPUs (results do not depend on it: every prompt has its own seed)."""
    gpu_memory_utilization: float = 0.85
    """``vllm``: fraction of each GPU's memory the engine may take (weights + KV cache)."""
    vllm: dict[str, Any] = field(default_factory=dict)
    """Passed through to ``vllm.LLM`` (e.g. ``enforce_eager``, ``max_model_len``); overrides the
    values above."""
    adaptive_max_n: int = 0
    """Difficulty-aware sampling (DART-Math): keep sampling problems with fewer than
    ``adaptive_target`` valid chains, ``n`` at a time, up to this many samples (0 = off)."""
    adaptive_target: int = 1
    """Valid chains wanted per problem before adaptive sampling stops for it."""

    def check(self) -> None:
        need(self.n >= 1, "generation.n", "must be >= 1")
        need(self.temperature > 0, "generation.temperature", "must be > 0")
        need(0 < self.top_p <= 1, "generation.top_p", "must be in (0, 1]")
        need(
            self.batch_size == "auto" or self.batch_size >= 1,
            "generation.batch_size",
            "must be >= 1 or 'auto'",
        )
        need(
            self.max_new_tokens is None or self.max_new_tokens >= 1,
            "generation.max_new_tokens",
            "must be >= 1",
        )
        need(
            not self.compile or self.cache == "static" or self.decoder == "loop",
            "generation.compile",
            "needs generation.cache: static (or generation.decoder: loop)",
        )
        need(
            self.decoder == "generate" or self.backend == "hf",
            "generation.decoder",
            f"'{self.decoder}' is a decoder of the hf backend, not of "
            f"'{self.backend}' (use decoder: generate)",
        )
        need(
            self.decoder != "grouped" or (self.cache == "dynamic" and not self.compile),
            "generation.decoder",
            "grouped decodes with the model's own cache: no generation.cache: static or compile",
        )
        need(
            not self.refill or self.decoder == "loop",
            "generation.refill",
            "needs generation.decoder: loop",
        )
        for key in ("tensor_parallel_size", "data_parallel_size", "adaptive_target"):
            need(getattr(self, key) >= 1, f"generation.{key}", "must be >= 1")
        need(
            0 < self.gpu_memory_utilization <= 1,
            "generation.gpu_memory_utilization",
            "must be in (0, 1]",
        )


@dataclass
class FilterConfig:
    verified: bool = True
    """Keep only samples the verifier accepts. ``false`` keeps everything (model-collapse control)."""
    require_valid_steps: bool = True
    """With ``verified``: also require every step to check out, not only the final answer."""
    require_checked_steps: bool = False
    """With ``verified``: also require every step to hold a claim the verifier checked. A gsm8k
    line that writes no arithmetic is ``unchecked`` (it counts as ok otherwise); this drops the
    chains that have one."""
    dedup: bool = True
    """Drop a chain identical to one already kept for the same problem."""
    max_per_problem: int = 2
    """Cap on kept chains per problem (0 = no cap)."""
    majority: bool = False
    """Keep only samples whose answer wins the vote among the problem's samples (no ground truth
    needed; combine with ``verified: false`` for the label-free arm)."""
    majority_min_votes: int = 2
    """The winning answer needs at least this many votes."""
    majority_models: int = 1
    """On the frontier schedule, with ``majority``: vote across this many models trained from
    different seeds (Lee et al. 2025's committee). The loop trains all of them on U, each round
    every one answers the problems (``generation.n`` each) and every one trains on what the vote
    keeps; the first is the run's model. 1: the vote is over one model's samples."""
    balance_difficulty: bool = False
    """Cap every difficulty's kept chains at the count of the difficulty with the fewest (among
    those with any), so easy problems do not dominate the training set."""

    def check(self) -> None:
        need(self.majority_min_votes >= 1, "filters.majority_min_votes", "must be >= 1")
        need(self.majority_models >= 1, "filters.majority_models", "must be >= 1")
        need(
            self.majority_models == 1 or self.majority,
            "filters.majority_models",
            "> 1 needs filters.majority (the committee votes)",
        )
        need(self.max_per_problem >= 0, "filters.max_per_problem", "must be >= 0")


@dataclass
class TrainConfig:
    init_from: Literal["base", "previous"] = "previous"
    """``previous``: continue from model_{k-1}; ``base``: restart each round from the seed model (ReST-EM)."""
    data: Literal["accumulate", "replace"] = "accumulate"
    """``accumulate``: train on every round's kept chains so far; ``replace``: this round's only."""
    raw_mix: float = 0.0
    """Fraction of each round's training examples drawn from the raw corpus U."""
    tokens: int = 300_000
    """Training-token budget per round."""
    budget_epochs: list[float] | None = None
    """Per-round budgets in passes over U's tokens (one entry per round, e.g. ``[1, 3, 12]`` puts
    checkpoints at 1, 4 and 16 epochs of U); overrides ``tokens``, so budgets scale with U's size."""
    max_epochs: float | None = None
    """Cap on passes over a round's training set: spend at most ``max_epochs x its tokens`` of the
    budget (``null``: always spend the whole budget, repeating a small kept set as often as needed).
    On the frontier schedule (plain trainer) the whole budget is spent, but neither the newest
    round's kept set nor the older rounds' is drawn more than ``max_epochs`` times its size: the
    rest of each batch comes from the other sources."""
    lr: float = 1e-3
    batch_size: int = 64
    """Examples per optimizer step, over all processes."""
    max_length: int = 128
    packing: bool = False
    """Pack examples into rows of ``max_length`` tokens (TRL best-fit packing with per-example
    position ids, so no example attends to another); the loss stays on completions. Each step
    still processes about ``batch_size`` examples' tokens. With FlashAttention a step's rows go
    to the model as one padding-free sequence (its varlen kernels); with SDPA or eager they stay
    ``(rows, max_length)``, one shape every step, since a single batch-long sequence would cost
    attention quadratic in the step's tokens (:func:`selfplay.training.packed_rows_collator`)."""
    compile: bool = False
    """``torch.compile`` the model for training (TRL ``torch_compile``)."""
    num_processes: int = 1
    """Training processes (one per GPU). More than 1, or an ``accelerate_config``, runs each
    training stage under ``accelerate launch`` in a subprocess (DDP, FSDP or DeepSpeed)."""
    accelerate_config: str | None = None
    """An ``accelerate`` config file for the training stage, e.g. ``configs/accelerate/fsdp.yaml``
    (``ddp``, ``fsdp``, ``zero2``, ``zero3``); ``num_processes`` overrides the file's."""
    trainer: Literal["plain", "trl"] | None = None
    """``trl``: TRL's ``SFTTrainer`` (GPU, packing, LoRA, chat templates, ``accelerate``);
    ``plain``: a minimal PyTorch loop with a warmup-stable-decay rate (``warmup``, ``decay``),
    several times faster for a ~1M-parameter model on a CPU. ``null``: the schedule's choice
    (rounds: ``trl``; frontier: ``plain``)."""
    loss: Literal["answer", "sequence"] | None = None
    """What the loss covers: ``answer``, the completion only; ``sequence``, every token of prompt
    and completion (the prompt is the problem, never generated; predicting where ``+`` and ``=``
    fall makes a NoPE model count digits, which aligns the operands: 1-4 digit U solved in a
    quarter of the steps). ``null``: the schedule's choice (rounds: ``answer``; frontier:
    ``sequence``)."""
    warmup: float = 0.05
    """``trainer: plain``: fraction of a stage's steps with a linear warmup of the rate."""
    decay: float = 0.3
    """``trainer: plain``: fraction of a stage's steps over which the rate decays linearly to 0."""
    sft: dict[str, Any] = field(default_factory=dict)
    """``trainer: trl``: passed through to ``trl.SFTConfig`` (overrides the values above)."""

    def check(self) -> None:
        need(0.0 <= self.raw_mix < 1.0, "train.raw_mix", "must be in [0, 1)")
        need(self.tokens >= 0, "train.tokens", "must be >= 0")
        need(self.lr > 0, "train.lr", "must be > 0")
        need(
            self.max_epochs is None or self.max_epochs > 0,
            "train.max_epochs",
            "must be > 0 or null",
        )
        need(self.batch_size >= 1, "train.batch_size", "must be >= 1")
        need(self.max_length >= 8, "train.max_length", "must be >= 8")
        need(self.num_processes >= 1, "train.num_processes", "must be >= 1")
        need(
            self.accelerate_config is None or Path(self.accelerate_config).is_file(),
            "train.accelerate_config",
            f"file not found: {self.accelerate_config}",
        )
        need(
            self.budget_epochs is None or all(x >= 0 for x in self.budget_epochs),
            "train.budget_epochs",
            "needs one budget >= 0 per round",
        )
        need(
            self.warmup >= 0 and self.decay >= 0 and self.warmup + self.decay <= 1,
            "train.warmup",
            "warmup and decay must be >= 0 with warmup + decay <= 1",
        )


@dataclass
class GrpoConfig:
    """Online RL with the task's verifier as the reward (GRPO, TRL's ``GRPOTrainer``): used when
    ``loop.method: grpo``. Each round samples ``num_generations`` completions per practice problem,
    scores them, and takes ``max_steps`` policy-gradient steps on the group-normalised rewards."""

    num_generations: int = 8
    """Group size G: completions per prompt; advantages are rewards relative to their group."""
    batch_size: int = 64
    """Completions per optimizer step (a multiple of ``num_generations``): batch_size / G prompts."""
    max_steps: int = 20
    """Optimizer steps per round; each step generates a fresh batch (on-policy)."""
    lr: float = 5e-5
    """Learning rate (cosine decay within the round). 5e-4, the arith rounds' SFT rate, collapsed
    a tiny model's policy within 13 steps; 5e-5 held it (docs/grpo.md)."""
    beta: float = 0.0
    """KL coefficient against the round's initial model (0 = no reference model, TRL's default)."""
    epsilon: float = 0.2
    """PPO-style clipping of the probability ratio (only bites with ``trl.num_iterations > 1``)."""
    step_credit: float = 0.0
    """Partial credit (0 = off): a chain that is not valid earns ``step_credit x`` the fraction of
    its steps that check out; a valid chain always earns 1."""
    trl: dict[str, Any] = field(default_factory=dict)
    """Passed through to ``trl.GRPOConfig`` (e.g. ``num_iterations``, ``loss_type``,
    ``scale_rewards``); overrides the values above."""

    def check(self) -> None:
        need(
            self.num_generations >= 2,
            "grpo.num_generations",
            "must be >= 2 (advantages need a group)",
        )
        need(
            self.batch_size >= 1 and self.batch_size % self.num_generations == 0,
            "grpo.batch_size",
            f"must be a positive multiple of grpo.num_generations ({self.num_generations})",
        )
        need(self.max_steps >= 1, "grpo.max_steps", "must be >= 1")
        need(self.lr > 0, "grpo.lr", "must be > 0")
        need(self.beta >= 0, "grpo.beta", "must be >= 0")
        need(self.epsilon > 0, "grpo.epsilon", "must be > 0")
        need(
            0.0 <= self.step_credit < 1.0,
            "grpo.step_credit",
            "must be in [0, 1) (a valid chain earns 1)",
        )


@dataclass
class EvalConfig:
    difficulties: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    """Difficulties evaluated; include ones harder than the raw corpus."""
    n_per_difficulty: int = 100
    """Held-out test problems per difficulty (all there are if the split has fewer). The same
    problems for every seed and checkpoint; aggregates are micro-averages over problems."""
    n_intermediate: int | None = None
    """Problems per difficulty at checkpoints between the seed model and the last round (the
    first ones of the full set; ``null``: the full set everywhere)."""
    k: int = 4
    """Samples per problem for pass@k and maj@k (0 = greedy only)."""
    temperature: float = 1.0

    def check(self) -> None:
        _difficulties("eval.difficulties", self.difficulties)
        need(self.n_per_difficulty >= 1, "eval.n_per_difficulty", "must be >= 1")
        need(
            self.n_intermediate is None or self.n_intermediate >= 1,
            "eval.n_intermediate",
            "must be >= 1 or null",
        )
        need(self.k >= 0, "eval.k", "must be >= 0")
        need(self.temperature > 0, "eval.temperature", "must be > 0")


@dataclass
class TrackingConfig:
    backend: Literal["none", "tensorboard", "wandb", "trackio"] = "none"
    """Where training curves (through TRL's ``report_to``) and every round's metrics are logged;
    offline: files under ``dir`` (wandb runs with ``WANDB_MODE=offline`` unless it is set)."""
    dir: str | None = None
    """Log directory; default ``<run dir>/tracking`` (a bench: ``<bench dir>/tracking``)."""
    project: str = "selfplay"
    """Project name (wandb, trackio)."""
    run_name: str | None = None
    """Name of this run in the dashboard; default the run's ``name`` (a bench:
    ``<bench>/<arm>/seed_<s>``). wandb and trackio identify the run by this name plus a hash of
    the run directory: a rerun of the directory resumes it, another directory is another run."""


@dataclass
class RunConfig:
    name: str = "run"
    output_dir: str | None = None
    """Run directory; default ``runs/<name>``."""
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    raw: RawConfig = field(default_factory=RawConfig)
    seed_train: SeedConfig = field(default_factory=SeedConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    grpo: GrpoConfig = field(default_factory=GrpoConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path("runs") / self.name
