"""The rounds schedule (``loop.schedule: rounds``): ``loop.iterations`` rounds on a pool of
``loop.pool_difficulties``.

Each round draws ``loop.problems_per_iter`` train-split problems (with ``loop.curriculum``, most
at a frontier difficulty that moves up the pool as the pass rate there reaches
``loop.curriculum_threshold``; with ``loop.fill_budget``, more draws until the kept chains fill
the round's budget), keeps what ``filters`` accept, and trains on every round's kept chains so
far (``train.data: accumulate``) or this round's (``replace``), plus ``train.raw_mix`` of U. The
raw baselines (``loop.data_source: raw-repeat | raw-fresh``) practise nothing and train on their
slice of raw data (:mod:`selfplay.engine.sources`). The seed model and the last round are evaluated on
the whole test set, the rounds between on ``eval.n_intermediate`` problems per difficulty.
"""

from __future__ import annotations

from selfplay.engine.evaluation import subset
from selfplay.engine.models import load_tokenizer
from selfplay.engine.sampling import curriculum_frontier, draw_pool
from selfplay.engine.sources import (
    kept_examples,
    round_budget,
    seed_budget,
    training_set,
    unique_tokens,
)
from selfplay.engine.stages import Fill
from selfplay.schedules.base import RoundPlan


class RoundsSchedule:
    def seed_data(self, ctx):
        return ctx.raw, seed_budget(ctx.cfg, ctx.u["supervised_tokens"])

    def seed_eval(self, ctx):
        return ctx.tests

    def after_seed(self, ctx) -> None:
        return None

    def plan(self, ctx, k: int) -> RoundPlan:
        cfg = ctx.cfg
        prev = ctx.checkpoint(k - 1)
        seed = cfg.seed * 1000 + k
        plan = RoundPlan(
            problems=[], select=cfg.filters, model_dirs=[prev], seed=seed, train_seed=seed
        )
        if cfg.loop.data_source != "selfplay":
            return plan
        frontier = self._curriculum(ctx, k)
        plan.problems = draw_pool(ctx.task, cfg, k, frontier)
        plan.note = {"frontier": frontier}
        plan.fill = self._fill(ctx, k, frontier, load_tokenizer(prev))
        return plan

    def training_data(self, ctx, k: int, plan: RoundPlan):
        cfg, u_tokens = ctx.cfg, ctx.u["supervised_tokens"]
        tok = load_tokenizer(plan.model_dirs[0])
        data = training_set(cfg, ctx.task, k, ctx.raw, u_tokens, tok, ctx.tests)
        return data, round_budget(cfg, k, u_tokens)

    def eval_problems(self, ctx, k: int, plan: RoundPlan, practice: dict):
        final = k == ctx.cfg.loop.iterations
        return ctx.tests if final else subset(ctx.tests, ctx.cfg.eval.n_intermediate)

    def summarize(self, ctx, k: int, plan: RoundPlan, practice: dict, evaluation: dict) -> dict:
        frontier = plan.note.get("frontier")
        return {} if frontier is None else {"frontier": frontier}

    def finish(self, ctx, stop: str | None) -> None:
        return None

    @staticmethod
    def _curriculum(ctx, k: int) -> int | None:
        """With ``loop.curriculum``: the round's frontier, from earlier rounds' pass rates."""
        if not ctx.cfg.loop.curriculum:
            return None
        rates = [ctx.record(j)["generate"]["pass_rate_by_difficulty"] for j in range(1, k)]
        return curriculum_frontier(ctx.cfg, rates)

    @staticmethod
    def _fill(ctx, k: int, frontier: int | None, tok) -> Fill | None:
        """With ``loop.fill_budget``: the plan that fills the round's budget with unique chains."""
        cfg = ctx.cfg
        if not cfg.loop.fill_budget:
            return None
        earlier = 0
        if cfg.train.data == "accumulate":
            earlier = sum(unique_tokens(tok, kept_examples(cfg.run_dir, [j])) for j in range(1, k))
        quota = round_budget(cfg, k, ctx.u["supervised_tokens"])
        if cfg.train.raw_mix:
            quota = round(quota * (1 - cfg.train.raw_mix))
        return Fill(
            quota_tokens=quota,
            earlier_tokens=earlier,
            max_draws=cfg.loop.fill_max_draws,
            draw=lambda n, drawn: draw_pool(ctx.task, cfg, k, frontier, draw=n, exclude=drawn),
        )
