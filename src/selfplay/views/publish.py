"""Published results: a bench's small result files, checked in under
``benchmarks/results/<name>/``, and the tables in README.md and docs/ rendered from them.

    benchmarks/results/<name>/   bench.yaml (resolved config), provenance.json (commit, library
                                 versions, machine, wall time), results.parquet (one row per arm x
                                 seed x checkpoint), summary.json, report.md

and, for a single run (``selfplay run``), config.yaml, provenance.json, metrics.jsonl (one row per
stage), summary.json and report.md.

A published table sits in a Markdown file between two comments that name its source:

    <!-- results: bench-quick | Paired with `raw-fresh-1x` (final acc in) -->
    | arm | ... |
    <!-- /results -->

(the section heading of ``summary.json``; ``verdict`` renders the verdict line). ``render_file``
rewrites every such block from the files; ``stale_blocks`` lists the ones that differ, and
``resummarize`` rebuilds a summary from results.parquet and bench.yaml alone, so a test can check
that the checked-in files, the summary and the published tables agree.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from selfplay.engine import artifacts
from selfplay.errors import ConfigError
from selfplay.schedules import supports

RESULTS = Path(__file__).resolve().parents[3] / "benchmarks" / "results"
REPO = RESULTS.parents[1]
DOCS = REPO / "docs"
PUBLISHED_PLOTS = {
    # results name: (its plots' prefix in docs/, the plots docs/ shows (None: all), the name of
    # its report.md's copy in docs/ (None: none))
    "bench": ("bench_", None, "bench-report.md"),
    "bench-arms": ("bench_arms_", None, "bench-arms-report.md"),
    "ablation": ("ablation_", None, "ablation-report.md"),
    "bench-grpo": ("grpo_bench_", ("accuracy_vs_tokens.png", "paired_differences.png"), None),
    "bench-grpo-vs-ei": ("grpo_bench_vs_ei_", ("paired_differences.png",), None),
    "sweep": ("", None, "sweep-report.md"),
}
"""The plots of published results that docs/ shows, and where."""
FILES = ("bench.yaml", "provenance.json", "results.parquet", "summary.json", "report.md")
RUN_FILES = ("config.yaml", "provenance.json", "metrics.jsonl", "summary.json", "report.md")
"""A published single run's files."""
OPTIONAL_FILES = ("lr_search.json",)
"""Copied when the bench wrote them (``lr_search.json``: a bench with ``lr_factors``)."""
BLOCK = re.compile(
    r"(<!-- results: (?P<name>[^|]+?) \| (?P<heading>.+?) -->\n)(?P<body>.*?)(<!-- /results -->)",
    re.S,
)


def is_run_dir(path: Path) -> bool:
    """A single run's directory (``config.yaml``), not a bench's (``bench.yaml``)."""
    return (Path(path) / "config.yaml").exists() and not (Path(path) / "bench.yaml").exists()


def result_files(results_dir: Path) -> tuple[str, ...]:
    """The files a published results directory holds: a run's or a bench's."""
    return RUN_FILES if (Path(results_dir) / "metrics.jsonl").exists() else FILES


def repo_relative(path: Path, repo: Path = REPO, ran_in: Path | None = None) -> None:
    """Rewrite the paths under ``repo`` (and under ``ran_in``, the checkout the result ran in,
    where that is another one: a worktree) in a published text file (a config's ``output_dir``,
    its rerun comment) relative to it, so the file says the same on any checkout."""
    text = Path(path).read_text()
    new = text
    for top in (repo, ran_in):
        if top is not None:
            new = new.replace(f"{Path(top).resolve()}/", "")
    if new != text:
        artifacts.write_text(path, new)


def checkout_of(path: Path) -> Path | None:
    """The git checkout (work tree) that holds ``path``, if any."""
    import subprocess

    done = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--show-toplevel"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    top = done.stdout.strip()
    return Path(top) if done.returncode == 0 and top else None


def copy_run(run_dir: Path, name: str, root: Path = RESULTS) -> Path:
    """Publish a finished run's small files to ``root/name``: its resolved config, its stages'
    metrics and its provenance (no models, no samples); the summary is derived from them."""
    from selfplay.bench.runner import write_provenance, write_summary
    from selfplay.config import read_yaml_mapping
    from selfplay.engine.rundir import git, read_metrics

    run_dir = Path(run_dir)
    config = read_yaml_mapping(run_dir / "config.yaml")
    loop = config.get("loop") or {}
    schedule = loop.get("schedule", "rounds")
    if not supports(schedule, "publish"):
        raise ConfigError(f"{run_dir}: a {schedule} run; publish it through its bench")
    rows = read_metrics(run_dir)
    want = int(loop.get("iterations", 0)) + 1
    if len(rows) < want:
        raise ConfigError(f"{run_dir}: not a finished run ({len(rows)} of {want} stages)")
    out = Path(root) / name
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "config.yaml", out / "config.yaml")
    repo_relative(out / "config.yaml", ran_in=checkout_of(run_dir))
    artifacts.write_jsonl(out / "metrics.jsonl", rows)
    (out / "provenance.json").unlink(missing_ok=True)  # a run is published once, not resumed
    # The commit the run ran at (its config.yaml's header), not the one publishing it.
    ran_at = run_commit(run_dir / "config.yaml")
    if ran_at:  # its full name, where this repository has it
        ran_at = git("rev-parse", "--verify", "--quiet", f"{ran_at}^{{commit}}") or ran_at
    write_provenance(out, sum(r["seconds"]["total"] for r in rows), commit=ran_at)
    write_summary(out, resummarize(out))
    return out


def run_commit(config_path: Path) -> str | None:
    """The short commit a run's config.yaml header names (``git <sha>``), if any."""
    first = Path(config_path).read_text().split("\n", 1)[0]
    m = re.search(r"\bgit ([0-9a-f]{7,40})\b", first)
    return m[1] if m else None


def copy_results(bench_dir: Path, name: str, root: Path = RESULTS) -> Path:
    """Copy a finished bench's small files (no checkpoints, no samples) to ``root/name``."""
    bench_dir = Path(bench_dir)
    missing = [f for f in FILES if not (bench_dir / f).exists()]
    if missing:
        raise ConfigError(f"{bench_dir}: not a finished bench (no {missing[0]})")
    out = Path(root) / name
    out.mkdir(parents=True, exist_ok=True)
    for f in FILES:
        shutil.copyfile(bench_dir / f, out / f)
    for f in OPTIONAL_FILES:
        if (bench_dir / f).exists():
            shutil.copyfile(bench_dir / f, out / f)
    repo_relative(out / "bench.yaml", ran_in=checkout_of(bench_dir))
    return out


def resummarize(results_dir: Path, plots: list[str] | None = None) -> dict:
    """The summary that a results directory's results.parquet and bench.yaml give (a run's:
    its metrics.jsonl and config.yaml), listing ``plots`` (default: the plots it lists now)."""
    from selfplay.bench.config import BenchConfig, arm_configs
    from selfplay.bench.report import summarize_bench
    from selfplay.bench.sweep import summarize_sweep
    from selfplay.config import build_dataclass, read_yaml_mapping

    d = Path(results_dir)
    if (d / "metrics.jsonl").exists():  # a single run
        from selfplay.views.run import summarize_run

        rows = artifacts.read_jsonl(d / "metrics.jsonl")
        config = read_yaml_mapping(d / "config.yaml")
        return summarize_run(d.name, config, rows, artifacts.read_json(d / "provenance.json"))
    bench = build_dataclass(BenchConfig, read_yaml_mapping(d / "bench.yaml"))
    rows = artifacts.read_parquet(d / "results.parquet")
    stored = artifacts.read_json(d / "summary.json")
    wall = artifacts.read_json(d / "provenance.json")
    plots = stored["plots"] if plots is None else plots
    if stored.get("kind") == "sweep":
        return summarize_sweep(bench, rows, plots, wall)
    if stored.get("kind") == "climb-bench":
        from selfplay.bench.climb import summarize_climb

        return summarize_climb(bench, arm_configs(bench, bench.seeds[0]), rows, plots, wall)
    search = artifacts.read_json(d / "lr_search.json") if (d / "lr_search.json").exists() else None
    arms = arm_configs(bench, bench.seeds[0])
    return summarize_bench(bench, arms, rows, plots, wall, lr_search=search)


def draw_plots(results_dir: Path, out_dir: Path) -> list[str]:
    """A published bench's (or sweep's) plots drawn again from its results.parquet and
    bench.yaml alone (nothing is trained), into ``out_dir``; their names."""
    from dataclasses import replace

    from selfplay.bench.config import BenchConfig, arm_configs
    from selfplay.bench.report import write_plots
    from selfplay.bench.sweep import write_sweep_plot
    from selfplay.config import build_dataclass, read_yaml_mapping

    d = Path(results_dir)
    kind = artifacts.read_json(d / "summary.json").get("kind")
    if kind not in ("bench", "sweep"):
        raise ConfigError(f"{d}: a {kind} result; only a bench's or a sweep's plots are drawn here")
    bench = build_dataclass(BenchConfig, read_yaml_mapping(d / "bench.yaml"))
    rows = artifacts.read_parquet(d / "results.parquet")
    if kind == "sweep":
        return [write_sweep_plot(replace(bench, output_dir=str(out_dir)), rows)]
    return write_plots(Path(out_dir), rows, bench, arm_configs(bench, bench.seeds[0]))


def publish_plots(name: str, root: Path = RESULTS, docs: Path = DOCS) -> list[Path]:
    """Draw a published bench's plots again from its files, list them in its summary (derived
    again, so report.md shows them), and copy the ones docs/ shows (``PUBLISHED_PLOTS``) there
    under its prefix, with its report beside them; the files written in docs/."""
    import tempfile

    from selfplay.bench.runner import write_summary

    d = Path(root) / name
    prefix, shown, report = PUBLISHED_PLOTS.get(name, ("", (), None))
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        names = draw_plots(d, Path(tmp))
        write_summary(d, resummarize(d, plots=names))
        for n in names:
            if shown is None or n in shown:
                shutil.copyfile(Path(tmp) / n, Path(docs) / f"{prefix}{n}")
                written.append(Path(docs) / f"{prefix}{n}")
    if report:
        # The report as published beside its plots: each image under its name in docs/.
        text = re.sub(
            r"(!\[[^\]]*\]\()([^)/:]+\.png\))",
            rf"\g<1>{prefix}\g<2>",
            (d / "report.md").read_text(),
        )
        artifacts.write_text(Path(docs) / report, text)
        written.append(Path(docs) / report)
    return written


def rereference(results_dir: Path, reference: str) -> None:
    """Make a published results directory compare against another of its arms: bench.yaml names
    it, and summary.json and report.md are derived again from results.parquet."""
    import yaml

    from selfplay.bench.runner import write_summary

    d = Path(results_dir)
    data = yaml.safe_load((d / "bench.yaml").read_text())
    if reference not in (data.get("arms") or {}):
        raise ConfigError(f"--reference: {reference!r} is not an arm of {d / 'bench.yaml'}")
    data["reference"] = reference
    artifacts.write_text(d / "bench.yaml", yaml.safe_dump(data, sort_keys=False))
    write_summary(d, resummarize(d))


def render_block(name: str, heading: str, root: Path = RESULTS) -> str:
    """The Markdown of one published table (or, for ``verdict``, the verdict line)."""
    from selfplay.bench.report import markdown_table

    path = Path(root) / name / "summary.json"
    if not path.exists():
        raise ConfigError(f"{path}: no such results file")
    summary = artifacts.read_json(path)
    if heading == "verdict":
        return f"**Verdict.** {summary.get('verdict', '')}\n"
    for sec in summary["sections"]:
        if sec["heading"] == heading:
            return markdown_table(sec["columns"], sec["rows"]) + "\n"
    raise ConfigError(f"{path}: no section {heading!r}")


def render_file(text: str, root: Path = RESULTS) -> str:
    """``text`` with every published block rendered from its files."""

    def sub(m: re.Match) -> str:
        return m.group(1) + render_block(m["name"].strip(), m["heading"].strip(), root) + m.group(5)

    return BLOCK.sub(sub, text)


def stale_blocks(paths: list[Path], root: Path = RESULTS) -> list[str]:
    """``file: name | heading`` for every published block that differs from its files."""
    out = []
    for path in paths:
        text = Path(path).read_text()
        for m in BLOCK.finditer(text):
            want = render_block(m["name"].strip(), m["heading"].strip(), root)
            if m["body"] != want:
                out.append(f"{path}: {m['name'].strip()} | {m['heading'].strip()}")
    return out
