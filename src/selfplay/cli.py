"""``selfplay`` command line.

selfplay run CONFIG [key=value ...]     run or resume the loop (e.g. train.lr=3e-4 output_dir=runs/x)
selfplay summary DIR [--format F]       the per-stage table of a run or bench (F: table, csv, json)
selfplay verify TASK FILE [--gold]      verify a file of completions; status counts and reasons
selfplay config CONFIG [key=value ...]  print the resolved config (--keys: every key and its doc)
selfplay export DIR --to OUT [--all]    the kept chains as a Hugging Face dataset with a card
                                        (--push-to-hub REPO: and on the hub)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from selfplay.errors import ConfigError

NARROW_LEAVES_OUT = [
    "gen tok", "sec", "valid", "harder", "in", "pass", "labels correct", "practised",
    "probe frontier", "test frontier", "train tok", "kept",
]  # fmt: skip
"""The stage table's columns a terminal too narrow for all of them goes without, first to last."""


def summary_table(rows: list[dict], title: str = "selfplay", width: int | None = None):
    """A rich table: one row per stage (seed, iter_001, ...), in ``width`` columns (``None``: at
    its natural width). Where the full table is wider, its headers take two lines and token
    counts read ``1.2M``, then the accuracies share one column, then the columns of
    :data:`NARROW_LEAVES_OUT` are left out as needed (its caption names them): a stage name or
    a number is never cut."""
    from selfplay.views.run import stage_table

    full = _stage_rich_table(title, *stage_table(rows))
    if width is None or _natural_width(full) <= width:
        return full
    for compact in (None, True):
        t = _stage_rich_table(title, *stage_table(rows, compact, short=True), narrow=True)
        if _natural_width(t) <= width:
            return t
    columns, table = stage_table(rows, compact=True, short=True)
    left_out = []
    for col in (c for c in NARROW_LEAVES_OUT if c in columns):
        i = columns.index(col)
        columns, table = columns[:i] + columns[i + 1 :], [r[:i] + r[i + 1 :] for r in table]
        left_out.append(col)
        t = _stage_rich_table(title, columns, table, narrow=True)
        if _natural_width(t) <= width:
            break
    cut = ", ".join(left_out)
    t.caption = f"left out at {width} columns: {cut}; --format csv has every column"
    t.caption_justify = "left"
    return t


def _stage_rich_table(title: str, columns: list[str], table: list[list[str]], narrow=False):
    """The stage table as rich renders it; ``narrow``: headers on two lines, lighter rules, and
    every cell kept whole (a terminal too narrow wraps the accuracies' shared column only)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from selfplay.views.chains import printable

    title = Text(printable(title))  # a run directory's name is not markup
    if not narrow:
        t = Table(title=title, title_justify="left")
        for col in columns:
            t.add_column(col, justify="left" if col == "stage" else "right")
    else:
        t = Table(
            title=title,
            title_justify="left",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            collapse_padding=True,
        )
        for i, col in enumerate(columns):
            head, _, tail = col.rpartition(" ")
            shared = col.startswith("test % ")  # the accuracies' one column
            t.add_column(
                f"{head}\n{tail}" if head else col, justify="left" if i == 0 else "right",
                no_wrap=not shared, overflow="fold",
                min_width=None if shared else max((len(r[i]) for r in table), default=0),
            )  # fmt: skip
    for row in table:
        t.add_row(*row)
    return t


def _natural_width(renderable) -> int:
    """The columns ``renderable`` takes when nothing limits it."""
    import io

    from rich.console import Console
    from rich.measure import Measurement

    console = Console(width=10_000, file=io.StringIO())
    return Measurement.get(console, console.options, renderable).maximum


def print_summary(run_dir: Path, rows: list[dict], title: str) -> None:
    """Any run's per-stage table (on a terminal, in its width); a climb's adds the legend of its
    columns and its final model (``final.json``: every evaluation difficulty) or that it has
    none yet; then the run's warnings and the stage in progress, if it reports one."""
    from selfplay.views import climb as fr
    from selfplay.views.chains import frontier_threshold, inert
    from selfplay.views.run import is_climb, progress_line, run_warnings

    _print_stage_table(rows, title)
    for warning in run_warnings(rows):
        _console().print(f"[yellow]warning:[/] {inert(warning)}")
    if is_climb(rows):
        final = fr.read_final(run_dir)
        print(fr.LEGEND.format(t=frontier_threshold(run_dir)))
        print(fr.final_line(final, fr.difficulties(rows, final)) if final else "final: not yet")
    line = progress_line(run_dir)
    if line:
        print(line)


def _print_stage_table(rows: list[dict], title: str) -> None:
    """A run's stage table: on a terminal, in its width; elsewhere, at its natural width."""
    width = _console().width if sys.stdout.isatty() else None
    _print_wide(summary_table(rows, title, width))


def _console():
    from rich.console import Console

    # A pipe or log file gets a wide table rather than rich's 80-column default.
    return Console(width=None if sys.stdout.isatty() else 150)


def _print_wide(table) -> None:
    """A table into a pipe or log file at its natural width (a climb over many difficulties is
    wider than 150 columns); on a terminal, at the terminal's."""
    from rich.measure import Measurement

    console = _console()
    if not sys.stdout.isatty():
        wide = Measurement.get(console, console.options.update_width(10_000), table).maximum
        console.width = max(console.width, wide)
    console.print(table)


def _progress(args) -> bool:
    """Bars only on a terminal: in a log file every redraw would be a line."""
    return not args.no_progress and sys.stderr.isatty()


def _bench_runs(d: Path) -> list[Path]:
    """The run directories of a bench (or sweep) directory: one per arm x seed."""
    return sorted(p.parent for p in Path(d).glob("**/seed_*/*/config.yaml"))


def _not_a_bench(d: Path, command: str) -> None:
    """A bench directory where a run directory is wanted: a one-line error naming its runs."""
    if (Path(d) / "bench.yaml").exists() and not (Path(d) / "config.yaml").exists():
        runs = _bench_runs(d)
        shown = ", ".join(str(r) for r in runs[:4]) + (", ..." if len(runs) > 4 else "")
        raise ConfigError(
            f"{d} is a bench directory; {command} takes one of its {len(runs)} arm runs "
            f"(<bench>/seed_<s>/<arm>): {shown or 'none has started'}"
        )


def _cmd_run(args) -> int:
    from selfplay.config import load_config

    console = _console()
    cfg = load_config(args.config, args.overrides)  # ConfigError -> one line, below
    if args.dry_run:
        console.print(dry_run_plan(cfg, redo=args.redo), markup=False)
        return 0
    from selfplay.bench.progress import quiet_libraries
    from selfplay.threads import describe, size_threads

    quiet_libraries()
    if cfg.device != "cuda":
        console.print(describe(size_threads()))
    from selfplay.engine.loop import run
    from selfplay.views.run import fmt_rate

    def on_stage(row):
        r = row["eval"]
        acc = "  ".join(f"d{d}={fmt_rate(v)}" for d, v in r["accuracy"].items() if d != "all")
        extra = ""
        if "generate" in row:
            kept = row.get("filter", {}).get("kept")
            extra = f"pass {fmt_rate(row['generate'].get('pass_rate'))}  kept {kept}  "
        console.print(
            f"[green]done[/] {row['stage']}: {extra}accuracy {acc}  ({row['seconds']['total']:.0f}s)"
        )

    from selfplay import bars

    # The bars also go to progress.json, so that summary and inspect elsewhere see this stage.
    bars.mirror_to(cfg.run_dir / bars.PROGRESS_FILE)
    try:
        rows = run(
            cfg, console=console, progress=_progress(args), on_stage=on_stage, redo=args.redo
        )
    finally:
        bars.mirror_to(None)
    title = (
        f"{cfg.name}: accuracy by difficulty (greedy, held-out); raw corpus difficulties "
        f"{cfg.raw.difficulties}"
    )
    print_summary(cfg.run_dir, rows, title)
    from selfplay.views.run import run_warnings

    broken = run_warnings(rows)
    if args.strict and broken:
        print(
            f"selfplay: --strict: the run looks broken ({len(broken)} warnings above)",
            file=sys.stderr,
        )
        return 3
    console.print(f"artifacts in {cfg.run_dir}/ (metrics.jsonl, iter_*/samples.parquet)")
    console.print(
        f"browse every chain: selfplay report {cfg.run_dir} (writes report.html); "
        f"the last round's: selfplay inspect {cfg.run_dir}"
    )
    return 0


def _cmd_bench(args) -> int:
    from selfplay.bench.config import arm_config, load_bench_config

    console = _console()
    bench, arms = load_bench_config(args.config, args.overrides)  # ConfigError -> one line
    if args.dry_run:
        lines = [f"bench {bench.bench_dir}: {_arms_seeds(arms, bench)}"]
        lines.append(
            f"reference arm: {bench.reference}; sweep regimes: {len(bench.sweep) or 'none'}"
        )
        for name, cfg in arms.items():
            lines.append(f"arm {name} (seed_<s>/{name}/):")
            lines += ["  " + line for line in dry_run_plan(cfg).splitlines()[1:]]
        console.print("\n".join(lines), markup=False)
        return 0
    from selfplay.bench.progress import quiet_libraries

    quiet_libraries()
    console.print(f"bench [bold]{bench.bench_dir}[/]: {_arms_seeds(arms, bench)}")
    if bench.jobs == 1:  # runs in this process; with jobs > 1 each worker is sized as it starts
        from selfplay.threads import describe, size_threads

        console.print(describe(size_threads()))
    if bench.sweep:  # every regime is a bench of its own
        from selfplay.bench.sweep import run_sweep

        run_sweep(bench, console=console, progress=_progress(args))
    else:
        from selfplay.bench.runner import run_bench

        run_bench(bench, arms, console=console, progress=_progress(args))
    from selfplay.engine import artifacts

    summary = artifacts.read_json(bench.bench_dir / "summary.json")
    for table in summary_tables(summary):
        console.print(table)
    console.print(f"report: {bench.bench_dir / 'report.md'}")
    if not bench.sweep:
        from selfplay.views.html import build_report

        console.print(f"in a browser, with every arm's chains: {build_report(bench.bench_dir)}")
        play = next((n for n, c in arms.items() if c.loop.data_source == "selfplay"), None)
        if play is not None:
            run_dir = arm_config(bench, play, bench.seeds[0]).run_dir
            console.print(
                f"the labels {play} trained on in its last round: selfplay inspect {run_dir}",
                markup=False,
            )
    return 0


def _arms_seeds(arms: dict, bench) -> str:
    n = len(bench.seeds)
    return f"{len(arms)} arm{'s' * (len(arms) != 1)} x {n} seed{'s' * (n != 1)}"


def summary_tables(summary: dict) -> list:
    """A bench or sweep summary for the terminal: its verdict, warnings and first table."""
    from rich.table import Table
    from rich.text import Text

    out = []
    if summary.get("verdict"):
        out.append(Text("Verdict. " + summary["verdict"].replace("**", ""), style="bold"))
    out += [Text("Warning: " + w, style="yellow") for w in summary.get("warnings", [])]
    # The first table, and any other the summary marks for the terminal.
    secs = summary["sections"]
    for sec in secs[:1] + [x for x in secs[1:] if x.get("terminal")]:
        t = Table(title=sec["heading"], title_justify="left")
        for i, c in enumerate(sec["columns"]):
            t.add_column(str(c), justify="left" if i == 0 else "right")
        for row in sec["rows"]:
            t.add_row(*map(str, row))
        out.append(t)
    return out


def _cmd_inspect(args) -> int:
    from selfplay.config import ConfigError
    from selfplay.views.chains import (
        eval_iterations,
        finished_iterations,
        frontier_header,
        group_reasons,
        load_eval_samples,
        load_samples,
        reasons_lines,
        rejection_reasons,
        render_compare,
        render_sample,
        select,
    )

    console = _console()
    _not_a_bench(args.run_dir, "inspect")
    if args.eval:
        its = eval_iterations(args.run_dir)
        if not its:
            raise ConfigError(f"{args.run_dir}: no checkpoint has evaluation samples yet")
    else:
        its = finished_iterations(args.run_dir)
        if not its:
            from selfplay.views.run import progress_line

            now = progress_line(args.run_dir)
            raise ConfigError(
                f"{args.run_dir}: no iteration has generated samples yet"
                + (f" ({now})" if now else "")
            )
    if args.compare:
        if not args.problem:
            raise ConfigError("--compare needs --problem ID")
        console.print(render_compare(args.run_dir, args.problem, args.limit, evaluation=args.eval))
        return 0
    it = args.iter if args.iter is not None else its[-1]
    if args.eval:
        samples, where = load_eval_samples(args.run_dir, it), f"checkpoint {it} evaluation"
    else:
        if it not in its:
            from selfplay.engine.rundir import missing_samples

            gone = missing_samples(args.run_dir, it)  # a finished round's file, deleted
            if gone:
                raise ConfigError(gone)
            raise ConfigError(
                f"--iter {it}: no samples; finished iterations: {', '.join(map(str, its))}"
            )
        samples, where = load_samples(args.run_dir, it), f"iteration {it}"
        header = frontier_header(args.run_dir, it, samples)
        if header:  # a climb's round: what its probe found and what it practised
            print(header)
            where = f"round {it}"
    kept = {"kept": True, "rejected": False}.get(args.decision)
    rows = select(
        samples, status=args.status, difficulty=args.difficulty, problem=args.problem, kept=kept,
        valid=args.valid, reason=args.reason, right_answer_wrong_steps=args.wrong_steps,
    )  # fmt: skip
    for s in rows[: args.limit]:
        console.print(render_sample(s))
    console.print(
        f"{min(len(rows), args.limit)} of {len(rows)} matching samples shown "
        f"({where}: {len(samples)} samples)"
    )
    if not args.eval and not rows and samples:
        reasons = rejection_reasons(samples)
        if reasons:  # what there is to look for instead: the rejections, by kind
            lines = [f"rejection reasons in {where}, by kind ({len(reasons):,} rejected):"]
            text = "\n".join(lines + reasons_lines(group_reasons(reasons)))
            console.print(text, markup=False, highlight=False, soft_wrap=True)
    return 0


def _cmd_report(args) -> int:
    from selfplay.views.html import build_report

    out = build_report(args.dir, args.out)
    print(f"wrote {_shown(out)}")
    return 0


def _cmd_verify(args) -> int:
    from selfplay.bench.progress import quiet_libraries
    from selfplay.engine import artifacts
    from selfplay.views.verify_file import summarize, summary_tables, verify_file

    quiet_libraries()
    verdicts = verify_file(
        args.task,
        args.file,
        gold=args.gold,
        timeout=args.timeout,
        memory_mb=args.memory_mb,
        progress=_progress(args),
    )
    console = _console()
    what = "gold solutions" if args.gold else "completions"
    for table in summary_tables(
        summarize(verdicts, args.top), f"{args.task}: {what} in {args.file}"
    ):
        console.print(table)
    if args.out:
        artifacts.write_parquet(args.out, [v.row() for v in verdicts])
        console.print(f"verdicts in {_shown(args.out, markup=True)}")
    return 0


def _cmd_export(args) -> int:
    from selfplay.bench.progress import quiet_libraries
    from selfplay.views.export import check_repo_id, export, push_to_hub

    if args.private and not args.push_to_hub:
        raise ConfigError("--private: only with --push-to-hub REPO")
    if args.push_to_hub:
        check_repo_id(args.push_to_hub)  # before anything is written
    quiet_libraries()
    counts = export(args.dir, args.to, every=args.all)
    print(
        f"{counts['rows']:,} rows ({counts['kept']:,} kept) in {args.to}: "
        f"datasets.load_from_disk('{args.to}'), or the Parquet in {args.to / 'data'}; "
        f"card: {args.to / 'README.md'}"
    )
    if args.push_to_hub:
        print(f"pushed to {push_to_hub(args.to, args.push_to_hub, private=args.private)}")
    return 0


def _cmd_summary(args) -> int:
    from selfplay.config import ConfigError
    from selfplay.engine.artifacts import REQUIRED
    from selfplay.engine.rundir import write_metrics_log
    from selfplay.views.run import progress_line, stage_records, write_records

    run_dir = Path(args.run_dir)
    if (run_dir / "bench.yaml").exists() and not (run_dir / "config.yaml").exists():
        every = _bench_runs(run_dir)
        runs = [r for r in every if (r / "seed" / "metrics.json").exists()]
        going = {r: line for r in every if (line := progress_line(r))}
        if not runs and (args.format != "table" or not going):
            raise ConfigError(f"{run_dir}: a bench directory whose arms have not started")
        if args.format != "table":  # every arm x seed's stages, a run column first
            records = [
                rec
                for r in runs
                for rec in stage_records(
                    write_metrics_log(r, REQUIRED), run=str(r.relative_to(run_dir))
                )
            ]
            write_records(records, args.format, sys.stdout)
            return 0
        for r in runs:  # a bench: every arm x seed's table, what is running, where its report is
            _print_stage_table(write_metrics_log(r, REQUIRED), str(r))
        for r, line in going.items():
            print(f"{r}: {line}")
        print(
            f"{len(runs)} of {len(every)} arm runs have a finished stage; the bench's report: "
            f"{run_dir / 'report.md'}"
        )
        return 0
    if not (run_dir / "config.yaml").exists():
        raise ConfigError(f"{run_dir}: not a run directory (no config.yaml)")
    rows = write_metrics_log(run_dir, REQUIRED)
    if not rows:
        line = progress_line(run_dir)
        if line and args.format == "table":  # the seed stage is under way
            print(f"{run_dir}: no finished stage yet; {line}")
            return 0
        raise ConfigError(f"{run_dir}: no finished stage yet" + (f"; {line}" if line else ""))
    if args.format != "table":
        write_records(stage_records(rows), args.format, sys.stdout)
        return 0
    print_summary(run_dir, rows, str(run_dir))
    return 0


def _cmd_config(args) -> int:
    from selfplay.config import RunConfig, config_keys, dump_config, load_config

    if args.keys:
        for key, type_name, default, doc in config_keys(RunConfig):
            print(f"{key}: {type_name} = {default!r}" + (f"\n    {doc}" if doc else ""))
        return 0
    if args.config is None:
        raise ConfigError("config: give a CONFIG file, or --keys to list every key")
    print(dump_config(load_config(args.config, args.overrides)), end="")
    return 0


def run_dir_state(cfg, redo: str | None = None) -> str:
    """What ``selfplay run`` would do with its run directory: start a new run, or resume one
    (and from where; with ``redo``, which stages it removes first); where it would refuse, the
    same one-line error. Reads only."""
    from selfplay.engine.rundir import check_run_dir, finished_rounds, stages_to_redo
    from selfplay.engine.tracking import check_tracking
    from selfplay.generation import check_backend

    check_tracking(cfg)  # the checks the real run makes before it writes anything
    check_backend(cfg)
    if not check_run_dir(cfg):
        if redo is not None:
            raise ConfigError(f"--redo {redo}: {cfg.run_dir} holds no run to redo a stage of")
        return "new"
    if redo is not None:
        names = [p.name for p in stages_to_redo(cfg.run_dir, redo)]
        return f"redoes {', '.join(names)}: removes their directories, then resumes"
    done, n = finished_rounds(cfg.run_dir), cfg.loop.iterations
    if not done:
        return "resumes: no stage finished yet"
    if done[-1] == 0:
        return f"resumes after the seed stage: 0 of {n} rounds finished"
    left = "" if done[-1] < n else "; nothing left to run"
    return f"resumes: {done[-1]} of {n} rounds finished{left}"


def dry_run_plan(cfg, redo: str | None = None) -> str:
    """What ``selfplay run`` would do for ``cfg``, with its budgets; nothing is run or written.
    Where the real run would refuse (e.g. a run directory holding another config), the same
    one-line error."""
    lp, g, t = cfg.loop, cfg.generation, cfg.train
    seed = (
        f"{cfg.seed_train.epochs} passes over U"
        if cfg.seed_train.epochs is not None
        else f"{cfg.seed_train.tokens:,} supervised tokens"
    )
    rounds = (
        ", ".join(f"{e} x U" for e in t.budget_epochs)
        if t.budget_epochs is not None
        else f"{t.tokens:,} supervised tokens each"
    )
    state = run_dir_state(cfg, redo)
    lines = [
        f"run {cfg.run_dir} ({state}); task {cfg.task.name}; model "
        + (cfg.model.name_or_path or f"preset {cfg.model.preset}"),
        f"seed: U = {cfg.raw.size:,} problems, difficulties {cfg.raw.difficulties}; "
        f"model_0 trains {seed}",
        f"{lp.iterations} rounds, data {lp.data_source}; training budget {rounds}"
        + (f", at most {t.max_epochs} passes over a round's set" if t.max_epochs else ""),
    ]
    if lp.data_source == "selfplay":
        lines.append(
            f"each round: {lp.problems_per_iter:,} problems x {g.n} samples "
            f"= {lp.problems_per_iter * g.n:,} chains verified"
            + (f" (at most {g.max_new_tokens} new tokens each)" if g.max_new_tokens else "")
        )
    lines.append(
        f"evaluation after every stage: {cfg.eval.n_per_difficulty} problems x difficulties "
        f"{cfg.eval.difficulties} (greedy; pass@k / maj@k with k={cfg.eval.k})"
    )
    if cfg.tracking.backend != "none":
        lines.append(
            f"tracking: {cfg.tracking.backend} in {cfg.tracking.dir or cfg.run_dir / 'tracking'}"
        )
    return "\n".join(lines)


RUN_EXAMPLES = [
    "selfplay run configs/arith/rounds.yaml --dry-run",
    "selfplay run configs/arith/rounds.yaml loop.iterations=5 train.lr=3e-4 output_dir=runs/longer",
]
BENCH_EXAMPLES = [
    "selfplay bench configs/arith/bench-quick.yaml --dry-run",
    "selfplay bench configs/arith/bench-quick.yaml 'seeds=[0]' verdict=false output_dir=runs/smoke",
    "selfplay bench configs/arith/bench.yaml 'seeds=[0,1,2]' run.train.lr=3e-4 jobs=2",
]
"""Shown under ``--help``; a test runs each one's arguments (with ``--dry-run``)."""


def _examples(examples: list[str]) -> str:
    return (
        "examples (quote a value with brackets: a shell may read [0] as a file pattern):\n"
        + "\n".join(f"  {e}" for e in examples)
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="selfplay", description="Self-play (expert iteration) with verified reasoning chains."
    )
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("selfplay")
    except PackageNotFoundError:
        from selfplay import __version__ as v
    p.add_argument("--version", action="version", version=f"selfplay {v}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "run", help="run or resume the loop on a config", epilog=_examples(RUN_EXAMPLES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    r.add_argument("config", help="YAML config, e.g. configs/arith/rounds.yaml")
    r.add_argument(
        "overrides", nargs="*", help="key=value overrides (train.lr=3e-4; examples below)"
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--dry-run", action="store_true", help="print what would run and its budgets")
    r.add_argument(
        "--strict", action="store_true",
        help="exit with status 3 when the finished run looks broken (its warnings)",
    )  # fmt: skip
    r.add_argument(
        "--redo", metavar="STAGE",
        help="remove STAGE (seed, iter_001, ...) and every stage after it, then run them again "
        "(what a damaged artifact's error says to run)",
    )  # fmt: skip
    r.set_defaults(func=_cmd_run)
    b = sub.add_parser(
        "bench", help="run arms under equal budgets over seeds; write results and a report",
        epilog=_examples(BENCH_EXAMPLES), formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    b.add_argument("config", help="bench YAML, e.g. configs/arith/bench.yaml")
    b.add_argument(
        "overrides", nargs="*",
        help="key=value overrides: a bench key (seeds, jobs, ...) or run.<key> for the arms' run",
    )  # fmt: skip
    b.add_argument("--no-progress", action="store_true", help="no progress bars")
    b.add_argument("--dry-run", action="store_true", help="print the arms, seeds and budgets")
    b.set_defaults(func=_cmd_bench)
    i = sub.add_parser("inspect", help="show generated chains with the verifier's step marks")
    i.add_argument("run_dir", type=Path)
    i.add_argument("--iter", type=int, help="iteration (default: the last with samples)")
    i.add_argument("--status", choices=["correct", "wrong", "unparseable", "timeout", "error"])
    i.add_argument("--difficulty", type=int)
    i.add_argument("--problem", help="problem id, e.g. 4729+386")
    i.add_argument("--decision", choices=["kept", "rejected"], help="the filter's decision")
    validity = i.add_mutually_exclusive_group()
    validity.add_argument(
        "--valid", dest="valid", action="store_const", const=True,
        help="only valid chains (right answer, every step checks out)",
    )  # fmt: skip
    validity.add_argument(
        "--invalid", dest="valid", action="store_const", const=False, help="only invalid chains"
    )
    i.add_argument(
        "--reason", metavar="TEXT",
        help="only chains whose filter, verdict or step reason contains TEXT (e.g. duplicate)",
    )  # fmt: skip
    i.add_argument(
        "--wrong-steps", action="store_true",
        help="right answer, wrong steps: the final answer is correct but a step fails",
    )  # fmt: skip
    i.add_argument(
        "--eval", action="store_true",
        help="the held-out evaluation's greedy generations of checkpoint --iter (0: seed model)",
    )  # fmt: skip
    i.add_argument("--limit", type=int, default=10)
    i.add_argument(
        "--compare",
        action="store_true",
        help="one problem's samples across iterations side by side (with --eval: its greedy "
        "evaluation generations across checkpoints)",
    )
    i.set_defaults(func=_cmd_inspect)
    rp = sub.add_parser(
        "report", help="write a self-contained report.html into a run or bench directory"
    )
    rp.add_argument("dir", type=Path)
    rp.add_argument("--out", type=Path, help="write the page here (default DIR/report.html)")
    rp.set_defaults(func=_cmd_report)
    c = sub.add_parser("config", help="print a config resolved with its overrides and defaults")
    c.add_argument("config", nargs="?", help="run YAML, e.g. configs/arith/rounds.yaml")
    c.add_argument("overrides", nargs="*", help="key=value overrides")
    c.add_argument("--keys", action="store_true", help="list every config key with its doc")
    c.set_defaults(func=_cmd_config)
    v = sub.add_parser(
        "verify",
        help="verify a JSONL/Parquet file of problems with completions; print status counts",
    )
    v.add_argument("task", help="task name, e.g. arith, gsm8k, math, countdown, code")
    v.add_argument("file", type=Path, help="JSONL, JSONL.gz or Parquet; one problem per line")
    v.add_argument(
        "--gold",
        action="store_true",
        help="verify the task's gold solutions instead of 'completion'",
    )
    v.add_argument("--out", type=Path, help="write every verdict to this Parquet file")
    v.add_argument("--timeout", type=float, default=10.0, help="seconds per completion")
    v.add_argument("--memory-mb", type=int, default=1024, help="memory per sandboxed program")
    v.add_argument("--top", type=int, default=10, help="reasons to list")
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.set_defaults(func=_cmd_verify)
    s = sub.add_parser(
        "summary", help="print the per-stage table of a run directory (a bench: of every arm)"
    )
    s.add_argument("run_dir")
    s.add_argument(
        "--format", choices=["table", "csv", "json"], default="table",
        help="table (default); csv or json: every column with its numbers unrounded",
    )  # fmt: skip
    s.set_defaults(func=_cmd_summary)
    e = sub.add_parser(
        "export", help="a run's or bench's kept chains as a Hugging Face dataset with a card"
    )
    e.add_argument("dir", type=Path, help="a run directory or a bench directory")
    e.add_argument("--to", type=Path, required=True, help="a new directory for the dataset")
    e.add_argument(
        "--all", action="store_true", help="every sample with its verdict, not only the kept"
    )
    e.add_argument(
        "--push-to-hub", metavar="REPO",
        help="then push the rows and the card to this Hugging Face dataset repo (user/name), "
        "as the token HF_TOKEN or a login (hf auth login) gives",
    )  # fmt: skip
    e.add_argument("--private", action="store_true", help="with --push-to-hub: a private repo")
    e.set_defaults(func=_cmd_export)
    return p


def _shown(text, markup: bool = False) -> str:
    """A path or message as a terminal should show it: its control characters as escapes (a path
    or an error may hold model text); with ``markup``, rich markup escaped too."""
    from selfplay.views.chains import inert, printable

    return inert(text) if markup else printable(text)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"selfplay: error: {_shown(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "selfplay: interrupted; rerun the same command to resume from the last finished stage",
            file=sys.stderr,
        )
        return 130
    except OSError as exc:
        print(
            _shown(f"selfplay: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")),
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
