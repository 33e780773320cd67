"""The engine: one runner (:mod:`selfplay.engine.loop`) and the stages it executes for every
schedule (generate, verify, filter, train, evaluate: :mod:`selfplay.engine.stages`), with what
they stand on: the run directory and its artifacts, models, sampling and evaluation over the
decoders of :mod:`selfplay.generation`, the filters, the training data's sources, GRPO's practice
step, the metrics, the cost ledger and tracking. A schedule (:mod:`selfplay.schedules`) only plans
what a round does; the trainers are :mod:`selfplay.training`."""
