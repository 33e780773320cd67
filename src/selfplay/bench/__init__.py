"""Benches: many runs of the one engine, compared. :mod:`selfplay.bench.config` reads a bench
config into arms, :mod:`selfplay.bench.runner` runs every arm x seed (seed models shared,
concurrent jobs, resumable), :mod:`selfplay.bench.lr_search` chooses learning rates,
:mod:`selfplay.bench.progress` shows it, and :mod:`selfplay.bench.report` (accuracy at equal
budgets, Holm + TOST), :mod:`selfplay.bench.climb` (the frontier each arm reaches) and
:mod:`selfplay.bench.sweep` (a bench per regime) summarize it."""
