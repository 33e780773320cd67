"""Check in a bench's result files and render the published tables from them.

    python scripts/publish_results.py runs/arith-bench-quick bench-quick   # copy the files
    python scripts/publish_results.py --render                              # README.md, docs/*.md
    python scripts/publish_results.py runs/arith-bench-grpo bench-grpo-vs-ei --reference selfplay-verified
    python scripts/publish_results.py runs/arith-default default-run        # a single run
    python scripts/publish_results.py --plots                               # plots, from the files

summary.json and report.md are derived again from the rows by this code; ``--reference ARM``
publishes the same rows compared against another arm (its bench.yaml says so).

``--plots`` draws every published bench's and sweep's plots again from its results.parquet and
bench.yaml (nothing is trained), lists them in its summary, and copies the ones docs/ shows there
(``selfplay.views.publish.PUBLISHED_PLOTS``: docs/bench_*.png, docs/ablation_*.png, ...) with
the reports beside them.

A published table is a block ``<!-- results: NAME | SECTION -->`` ... ``<!-- /results -->``
(see ``selfplay.views.publish``); ``tests/test_published.py`` fails when one differs from its files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from selfplay.bench.runner import write_summary
from selfplay.engine.artifacts import read_json
from selfplay.errors import ConfigError
from selfplay.views.publish import (
    copy_results,
    copy_run,
    is_run_dir,
    publish_plots,
    render_file,
    rereference,
    resummarize,
)

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    try:
        return publish()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def publish() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench_dir", nargs="?", type=Path, help="a finished bench or run directory")
    ap.add_argument("name", nargs="?", help="its name under benchmarks/results/")
    ap.add_argument("--render", action="store_true", help="rewrite the published tables")
    ap.add_argument("--reference", help="compare against this arm instead of the bench's own")
    ap.add_argument(
        "--plots", action="store_true", help="draw the published plots again from the files"
    )
    args = ap.parse_args()
    if args.bench_dir is not None:
        if not args.name:
            ap.error("give the results name after the bench directory")
        if not args.bench_dir.is_dir():
            raise ConfigError(f"{args.bench_dir}: no such directory")
        if is_run_dir(args.bench_dir):
            if args.reference:
                ap.error("--reference: a single run has no arms")
            out = copy_run(args.bench_dir, args.name)
        else:
            out = copy_results(args.bench_dir, args.name)
            if args.reference:
                rereference(out, args.reference)
            else:
                # The summary and report as this code derives them from the rows (a bench run
                # before a report change would otherwise publish its older wording).
                write_summary(out, resummarize(out))
        print(f"copied to {out}")
    if args.plots:
        for summary in sorted((REPO / "benchmarks" / "results").glob("*/summary.json")):
            if read_json(summary).get("kind") in ("bench", "sweep"):
                for path in publish_plots(summary.parent.name):
                    print(f"drew {path.relative_to(REPO)}")
    if args.render:
        for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
            text = path.read_text()
            new = render_file(text)
            if new != text:
                path.write_text(new)
                print(f"rendered {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
