"""The frontier schedule (``loop.schedule: frontier``): self-improvement that climbs past the
raw corpus's difficulty.

    raw corpus U --seed--> model_0
    for k in 1..K:
        probe    = greedy accuracy of model_{k-1} per difficulty on a validation split (or,
                   label-free, the share of problems whose sampled / committee answers agree)
        frontier = largest d with every difficulty 1..d solved (>= threshold)
        practise = frontier + 1 (accelerated: every solved difficulty above the trained ones too)
        labels   = model_{k-1}'s own answers to train-split problems of those difficulties
        kept     = labels the filter accepts (verifier | majority of samples or models | none;
                   + the length check)
        model_k  = model_{k-1} trained on batches mixing the newest kept / older kept / U
        metrics  = the probe, the frontier, label accuracy, test accuracy per difficulty
    until the frontier reaches loop.frontier.max_difficulty, stalls stall_rounds rounds, or K

After Lee et al. 2025, "Self-Improving Transformers Overcome Easy-to-Hard and Length
Generalization Challenges" (NoPE, reversed addition, one length more per round, the newest round
at half of each batch). Two departures: a round moves on only once its difficulty is solved on the
validation split (else it labels the same difficulty again), and every shorter difficulty must
stay solved for the frontier to count.

The validation split is a fixed hash-based quarter of the train split, never practised on; the test
split only reports. The schedule plans; generation, verification, the filter, training and
evaluation are the loop's stages, so every backend, trainer and task runs it (on a CPU the
``grouped`` decoder and the ``plain`` trainer make the climb fast at ~1M parameters).
"""

from __future__ import annotations

import dataclasses
import functools
import random
import shutil
from pathlib import Path

from selfplay.engine import artifacts, stages
from selfplay.engine.evaluation import (
    accuracy_by_difficulty,
    agreement_by_difficulty,
    solved_frontier,
)
from selfplay.engine.filters import choose_labels
from selfplay.engine.ledger import Clock, Cost, add_cost
from selfplay.engine.models import load_for_generation
from selfplay.engine.rundir import finished_rounds, round_dir, seed_dir
from selfplay.engine.sampling import draw_problems, evaluation_keys, is_validation
from selfplay.engine.sources import (
    examples_to_records,
    fresh_corpus,
    kept_examples,
    records_to_examples,
    seed_budget,
)
from selfplay.engine.stages import MEMBER_SEED
from selfplay.errors import ConfigError
from selfplay.schedules.base import RoundPlan
from selfplay.tasks import Example
from selfplay.training import Mixture

# ------------------------------------------------------------------------------------------------
# The schedule as pure functions


def next_practice(
    accuracy: dict[int, float],
    threshold: float,
    trained_max: int,
    max_difficulty: int,
    accelerated: bool = False,
    lowest: int = 1,
    ahead: int = 1,
) -> list[int]:
    """Difficulties to label next round, from the probe's accuracy per difficulty.

    The next ``ahead`` difficulties past the frontier (the same ones again until they are
    solved). Accelerated: also every difficulty above ``trained_max`` (the largest with training
    data) that the model already solves, so a model that extrapolates several lengths gets them
    all labelled at once. Never past ``max_difficulty``; empty when the frontier is there.

    >>> next_practice({1: 1, 2: 1, 3: 0.2}, 0.9, trained_max=2, max_difficulty=10)
    [3]
    >>> next_practice({1: 1, 2: 1, 3: 1, 4: 0.95, 5: 0.1}, 0.9, 2, 10, accelerated=True)
    [3, 4, 5]
    >>> next_practice({1: 1, 2: 1, 3: 0.2}, 0.9, 2, 10, ahead=2)
    [3, 4]
    """
    f = solved_frontier(accuracy, threshold, lowest)
    if f >= max_difficulty:
        return []
    top = min(max_difficulty, f + ahead)
    if not accelerated:
        return list(range(f + 1, top + 1))
    return list(range(min(trained_max + 1, f + 1), top + 1))


def should_stop(frontiers: list[int], max_difficulty: int, stall_rounds: int) -> str | None:
    """Why the climb stops after these per-round frontiers (probe order), or None.

    >>> should_stop([5, 6, 6, 6, 6], 32, 3)
    'frontier stalled at 6 for 3 rounds'
    >>> should_stop([5, 6, 7], 32, 3) is None
    True
    """
    if frontiers and frontiers[-1] >= max_difficulty:
        return f"frontier reached max_difficulty {max_difficulty}"
    if (
        len(frontiers) > stall_rounds
        and max(frontiers[-stall_rounds:]) <= frontiers[-stall_rounds - 1]
    ):
        return f"frontier stalled at {frontiers[-stall_rounds - 1]} for {stall_rounds} rounds"
    return None


def member_dirs(stage_dir, majority_models: int) -> list:
    """Where a stage keeps the committee's other models (``filters.majority_models`` - 1)."""
    return [stage_dir / "members" / str(j) for j in range(1, majority_models)]


def fresh_examples(cfg, task, raw: list[Example], tests) -> list[Example]:
    """``raw-fresh``'s corpus on the frontier: U's source at U's difficulties with gold answers,
    sharing no problem with U, its twins, the evaluation set (``fresh.json`` has the counts
    checked) or the probe's validation side."""
    fresh = [
        Example(e.prompt, e.completion, e.problem_id, e.difficulty, "raw-fresh")
        for e in fresh_corpus(cfg, task, raw, tests)
        if not is_validation(e.problem_id)
    ]
    if not fresh:
        raise ConfigError("loop.fresh_multiplier: the fresh corpus is empty")
    return fresh


PROBE_ACCURACY = "probe_accuracy.json"
"""A label-free probe's report: the greedy answers' accuracy per difficulty (never read for a
decision) and the tokens the probe generated."""

ORACLE = "oracle.parquet"
"""An oracle round's labels: the gold label of every problem it practises."""


def write_oracle(ctx, it, problems) -> None:
    """The gold label of each practised problem, in U's format (the answer alone when U holds
    answers only, else the task's gold chain), as round ``it``'s training examples."""
    answer_only = ctx.cfg.raw.answer_only_rate >= 1.0
    examples = [
        Example(
            p.prompt,
            p.answer if answer_only else ctx.task.gold_chain(p),
            p.id,
            p.difficulty,
            "oracle",
        )
        for p in problems
    ]
    artifacts.write_parquet(Path(it) / ORACLE, examples_to_records(examples))


def fresh_slice(fresh: list[Example], n: int, k: int) -> list[Example]:
    """Round ``k``'s slice of ``n`` (``loop.problems_per_iter``) examples of the ``fresh`` corpus:
    disjoint from the other rounds' until the corpus wraps."""
    return [fresh[i % len(fresh)] for i in range((k - 1) * n, k * n)]


def _mean(xs: list) -> float | None:
    return sum(xs) / len(xs) if xs else None


def lowest_difficulty(task) -> int:
    """The task's easiest difficulty (where "every difficulty up to d solved" starts)."""
    return getattr(task, "min_difficulty", 1)


def with_solved(evaluation: dict, threshold: float, lowest: int = 1) -> dict:
    """An evaluation block with ``solved``: the test frontier (every difficulty from the lowest
    up to d at >= threshold)."""
    acc = {int(d): a for d, a in evaluation["accuracy"].items() if d != "all"}
    return {**evaluation, "solved": solved_frontier(acc, threshold, lowest)}


def eval_row(
    acc: dict[int, float], raw_difficulties: list[int], threshold: float, lowest: int = 1
) -> dict:
    """Accuracy per difficulty, inside U's difficulties (*in*) and above (*harder*), and solved."""
    top = max(raw_difficulties)
    inside = [a for d, a in acc.items() if d <= top]
    harder = [a for d, a in acc.items() if d > top]
    accuracy = {str(d): a for d, a in sorted(acc.items())}
    accuracy["all"] = _mean(list(acc.values())) or 0.0
    return {
        "accuracy": accuracy,
        "accuracy_in": _mean(inside),
        "accuracy_harder": _mean(harder),
        "solved": solved_frontier(acc, threshold, lowest),
    }


# ------------------------------------------------------------------------------------------------
# The schedule


class FrontierSchedule:
    def seed_data(self, ctx):
        # The whole sequence counts: a budget of all tokens over U, batches drawn from it.
        return Mixture({"raw": ctx.raw}, {"raw": 1.0}), seed_budget(ctx.cfg, ctx.u["tokens"])

    def seed_eval(self, ctx):
        top = max(ctx.cfg.raw.difficulties) + ctx.cfg.loop.frontier.probe_ahead
        return [p for p in ctx.tests if p.difficulty <= top]

    def after_seed(self, ctx) -> None:
        """Record where the climb starts, and train (or, resuming, finish) a committee's other
        seed models, adding their cost to the seed record; a seed stage shared from a run
        without the committee (a bench's first arm) gets them the same way."""
        cfg, d = ctx.cfg, seed_dir(ctx.run_dir)
        m = ctx.record(0)
        have = m.get("members") or []
        changed = "frontier" not in m
        m["frontier"] = {"trained_max": max(cfg.raw.difficulties)}
        m["eval"] = with_solved(m["eval"], cfg.loop.frontier.threshold, lowest_difficulty(ctx.task))
        if len(have) < cfg.filters.majority_models - 1:
            clock, members = Clock(), []
            data, budget = self.seed_data(ctx)
            for j, where in enumerate(member_dirs(d, cfg.filters.majority_models), start=1):
                member_cfg = dataclasses.replace(cfg, seed=cfg.seed + MEMBER_SEED * j)
                members.append(
                    stages.train_model(
                        member_cfg,
                        stages.seed_train_config(cfg),
                        None,
                        data,
                        budget,
                        0,
                        where,
                        seed=member_cfg.seed,
                        device=ctx.device,
                    )
                )
            wall, cpu = clock.read()
            extra = sum(x["tokens"] for x in members) - sum(x["tokens"] for x in have)
            cost = Cost(train_tokens=extra, seconds=wall, cpu_seconds=cpu)
            m["cumulative"] = add_cost(m["cumulative"], cost, m["train"]["params"])
            m["members"], changed = members, True
        if changed:  # a new file: a hard-linked original (a shared seed stage) stays as it is
            artifacts.write_json(d / "metrics.json", m)

    def plan(self, ctx, k: int) -> RoundPlan | str:
        cfg, fr = ctx.cfg, ctx.cfg.loop.frontier
        prev = ctx.record(k - 1)
        c = prev["cumulative"]
        clock = c.get("cpu_seconds", c["seconds"]) if fr.budget_clock == "cpu" else c["seconds"]
        if fr.time_budget_s is not None and clock >= fr.time_budget_s:
            return (
                f"time budget spent ({clock:.0f} of {fr.time_budget_s:g} {fr.budget_clock} seconds)"
            )
        trained_max = prev["frontier"]["trained_max"]
        it = round_dir(ctx.run_dir, k)
        probe = self._probe(ctx, k, trained_max)
        frontiers = [ctx.record(j)["frontier"]["probe_solved"] for j in range(1, k)]
        lowest = lowest_difficulty(ctx.task)
        stop = should_stop(
            [*frontiers, solved_frontier(probe, fr.threshold, lowest)],
            fr.max_difficulty,
            fr.stall_rounds,
        )
        if stop:
            shutil.rmtree(it, ignore_errors=True)  # the probe of a round that does not run
            return stop
        practice = next_practice(
            probe,
            fr.threshold,
            trained_max,
            fr.max_difficulty,
            fr.accelerated,
            lowest,
            fr.practice_ahead,
        )
        prev_stage = round_dir(ctx.run_dir, k - 1)
        members = member_dirs(prev_stage, cfg.filters.majority_models)
        plan = RoundPlan(
            problems=[],
            select=functools.partial(choose_labels, cfg=cfg.filters, widths=None),
            model_dirs=[ctx.checkpoint(k - 1), *(m / "model" for m in members)],
            seed=cfg.seed + 1000 * k,
            train_seed=cfg.seed + k,
            greedy=cfg.generation.n == 1,
            note={"probe": probe, "practice": practice, "trained_max": trained_max},
            members=[
                (m / "model", where)
                for m, where in zip(
                    members, member_dirs(it, cfg.filters.majority_models), strict=True
                )
            ],
        )
        if cfg.loop.data_source in ("raw-fresh", "raw-repeat"):  # U's difficulties only
            plan.note["practice"] = (
                sorted(cfg.raw.difficulties) if cfg.loop.data_source == "raw-fresh" else []
            )
            return plan
        rng = random.Random(f"practice-{cfg.seed}-{k}")
        per = max(1, cfg.loop.problems_per_iter // len(practice))
        # no arm practises an evaluation problem's twin
        banned = evaluation_keys(ctx.task, cfg, ctx.tests)
        plan.problems = [
            p for d in practice for p in draw_problems(ctx.task, d, per, rng, False, banned)
        ]
        if cfg.loop.data_source == "oracle":  # gold labels for these problems; nothing generated
            write_oracle(ctx, it, plan.problems)
            plan.problems, plan.note["oracle"] = [], True
            return plan
        task = ctx.task
        width = getattr(task, "answer_width", None)
        if fr.length_filter and width is not None:
            widths = {p.id: width(p) for p in plan.problems}
            plan.select = functools.partial(choose_labels, cfg=cfg.filters, widths=widths)
        return plan

    def training_data(self, ctx, k: int, plan: RoundPlan):
        """Batches mixing the newest round's labels (a raw arm: its fresh slice, or nothing), the
        older rounds' and U, by ``loop.frontier.mix_*``, for ``train.tokens`` tokens."""
        fr = ctx.cfg.loop.frontier
        new = self._round_examples(ctx, k)
        old = [e for j in range(1, k) for e in self._round_examples(ctx, j)]
        shares = {"new": fr.mix_new, "old": fr.mix_old, "raw": fr.mix_raw}
        mixture = Mixture({"new": new, "old": old, "raw": ctx.raw}, shares, ("new", "old"))
        return mixture, ctx.cfg.train.tokens

    def eval_problems(self, ctx, k: int, plan: RoundPlan, practice: dict):
        upto = min(
            max(ctx.cfg.eval.difficulties),
            self._trained_max(plan, practice) + ctx.cfg.loop.frontier.probe_ahead,
        )
        return [p for p in ctx.tests if p.difficulty <= upto]

    def summarize(self, ctx, k: int, plan: RoundPlan, practice: dict, evaluation: dict) -> dict:
        cfg = ctx.cfg
        labels = [s for s in practice["samples"] if s.get("label")]
        kept = [s for s in labels if s["kept"]]
        out = {
            "frontier": {
                "probe": {str(d): a for d, a in plan.note["probe"].items()},
                "probe_solved": solved_frontier(
                    plan.note["probe"], cfg.loop.frontier.threshold, lowest_difficulty(ctx.task)
                ),
                "practice": plan.note["practice"],
                "trained_max": self._trained_max(plan, practice),
            },
        }
        checked = round_dir(ctx.run_dir, k) / PROBE_ACCURACY
        if checked.exists():  # a label-free probe: what it would have scored by the verifier
            seen = artifacts.read_json(checked)
            out["frontier"] |= {
                "probe_kind": "agreement",
                "probe_accuracy": seen["accuracy"],
                "probe_accuracy_solved": solved_frontier(
                    {int(d): a for d, a in seen["accuracy"].items()},
                    cfg.loop.frontier.threshold,
                    lowest_difficulty(ctx.task),
                ),
                "probe_generated_tokens": seen["generated_tokens"],
            }
        blocks = practice["blocks"]
        if "grpo" not in blocks:  # the labels: one per practised problem
            filt = dict(blocks.get("filter") or {})
            filt |= {
                "problems": len(labels),
                "kept": len(kept),
                "label_accuracy": _mean([s["status"] == "correct" for s in labels]),
                "kept_accuracy": _mean([s["status"] == "correct" for s in kept]),
            }
            if cfg.loop.data_source == "raw-fresh":
                n = len(self._round_examples(ctx, k))
                filt |= {"problems": n, "kept": n, "fresh_reused": self._fresh_reused(ctx, k)}
            if cfg.loop.data_source == "oracle":  # gold labels: all right, all kept
                n = len(self._round_examples(ctx, k))
                filt |= {"problems": n, "kept": n, "label_accuracy": 1.0, "kept_accuracy": 1.0}
            out["filter"] = filt
        else:
            g = blocks["grpo"]
            out["filter"] = {
                **blocks["filter"],
                "problems": len({s["problem_id"] for s in practice["samples"]}),
                # groups whose rewards differed: the gradient
                "kept": g["groups_with_signal"],
                "label_accuracy": blocks["generate"]["pass_rate"],
                "kept_accuracy": None,
            }
        out["eval"] = with_solved(
            evaluation, cfg.loop.frontier.threshold, lowest_difficulty(ctx.task)
        )
        return out

    def finish(self, ctx, stop: str | None) -> None:
        """Every evaluation difficulty for the last model (rounds measure only up to the
        frontier): ``final.json``."""
        last = finished_rounds(ctx.run_dir)[-1]
        model_dir = ctx.checkpoint(last)
        path = ctx.run_dir / "final.json"
        stop = stop or "loop.iterations reached"
        rel = str(model_dir.relative_to(ctx.run_dir))
        if path.exists():  # a finished run resumed: its last model was measured already
            done = artifacts.read_json(path)
            if done.get("model") == rel and done.get("stop") == stop:
                return
        model, tok = load_for_generation(ctx.cfg, model_dir, ctx.device)
        acc = accuracy_by_difficulty(model, tok, ctx.task, ctx.tests, ctx.cfg, ctx.cfg.seed)
        c = ctx.record(last)["cumulative"]
        out = {
            "model": rel,
            "stop": stop,
            "eval": eval_row(
                acc,
                ctx.cfg.raw.difficulties,
                ctx.cfg.loop.frontier.threshold,
                lowest_difficulty(ctx.task),
            ),
            "seconds": c["seconds"],
            "cpu_seconds": c.get("cpu_seconds"),
        }
        artifacts.write_json(path, out)
        ctx.log(f"stopped: {stop}; last model solves 1..{out['eval']['solved']} (test)")

    # -- helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _probe(ctx, k: int, trained_max: int) -> dict[int, float]:
        """model_{k-1}'s score per difficulty on the validation split (``probe.json``): greedy
        accuracy, or with ``probe: agreement`` the label-free agreement of its answers (the
        greedy answers' accuracy, for the report only, in ``probe_accuracy.json``)."""
        fr, cfg = ctx.cfg.loop.frontier, ctx.cfg
        path = round_dir(ctx.run_dir, k) / "probe.json"
        if path.exists():
            return {int(a): b for a, b in artifacts.read_json(path).items()}
        upto = min(fr.max_difficulty, trained_max + fr.probe_ahead)
        rng = random.Random(f"validation-{cfg.seed}")
        val = [
            p
            for d in range(lowest_difficulty(ctx.task), upto + 1)
            for p in draw_problems(ctx.task, d, fr.val_per_difficulty, rng, True)
        ]
        model, tok = load_for_generation(cfg, ctx.checkpoint(k - 1), ctx.device)
        if fr.probe == "agreement":
            others = member_dirs(round_dir(ctx.run_dir, k - 1), cfg.filters.majority_models)
            models = [(model, tok)]
            models += [load_for_generation(cfg, m / "model", ctx.device) for m in others]
            width = getattr(ctx.task, "answer_width", None)
            widths = {p.id: width(p) for p in val} if fr.length_filter and width else None
            probe, accuracy, tokens = agreement_by_difficulty(
                models, ctx.task, val, cfg, cfg.seed, fr.probe_samples, widths
            )
            artifacts.write_json(
                path.with_name(PROBE_ACCURACY),
                {
                    "accuracy": {str(a): b for a, b in accuracy.items()},
                    "generated_tokens": tokens,
                },
            )
        else:
            probe = accuracy_by_difficulty(model, tok, ctx.task, val, cfg, cfg.seed)
        artifacts.write_json(path, {str(a): b for a, b in probe.items()})
        return probe

    @staticmethod
    def _trained_max(plan: RoundPlan, practice: dict) -> int:
        new = practice.get("new_difficulty")
        if plan.note.get("oracle"):  # every practised problem got its gold label
            new = max(plan.note["practice"], default=None)
        return max(plan.note["trained_max"], new) if new is not None else plan.note["trained_max"]

    def _round_examples(self, ctx, j: int) -> list[Example]:
        """Round ``j``'s new training examples: its kept labels, or a raw arm's fresh slice."""
        source = ctx.cfg.loop.data_source
        if source == "oracle":
            return records_to_examples(artifacts.read_parquet(round_dir(ctx.run_dir, j) / ORACLE))
        if source == "selfplay":
            has = (round_dir(ctx.run_dir, j) / "kept.parquet").exists()
            return kept_examples(ctx.run_dir, [j]) if has else []
        if source == "raw-repeat":
            return []
        return fresh_slice(self._fresh(ctx), ctx.cfg.loop.problems_per_iter, j)

    def _fresh(self, ctx) -> list[Example]:
        """The raw-fresh corpus, read once per run: every round's slices come from it."""
        if getattr(self, "_fresh_of", None) != ctx.run_dir:
            self._fresh_of = ctx.run_dir
            self._fresh_all = fresh_examples(ctx.cfg, ctx.task, ctx.raw, ctx.tests)
        return self._fresh_all

    def _fresh_reused(self, ctx, k: int) -> int:
        n = ctx.cfg.loop.problems_per_iter
        return min(max(0, k * n - len(self._fresh(ctx))), n)
