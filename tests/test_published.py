"""Published numbers come from checked-in files: every results directory under
benchmarks/results/ re-derives its summary, and every published table in README.md and docs/
equals what its files give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfplay import artifacts
from selfplay.errors import ConfigError
from selfplay.publish import FILES, RESULTS, render_block, render_file, resummarize, stale_blocks

REPO = Path(__file__).resolve().parents[1]
RESULT_DIRS = sorted(p.parent for p in RESULTS.glob("*/summary.json"))
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("d", RESULT_DIRS, ids=[p.name for p in RESULT_DIRS])
def test_a_results_directory_is_complete_and_its_summary_re_derives(d):
    for f in FILES:
        assert (d / f).exists(), f
    prov = artifacts.read_json(d / "provenance.json")
    assert len(prov["commit"]) == 40 and prov["versions"]["torch"] and prov["machine"]["cpus"]
    assert sum((d / f).stat().st_size for f in FILES) < 2_000_000  # small: no checkpoints
    # The summary (and so report.md and every published table) is what results.parquet gives.
    stored = artifacts.read_json(d / "summary.json")
    assert json.loads(json.dumps(resummarize(d))) == stored


def test_every_published_table_equals_its_files():
    assert stale_blocks(DOCS) == []


def test_a_published_table_that_differs_from_its_files_is_found(tmp_path):
    root = tmp_path / "results"
    (root / "x").mkdir(parents=True)
    summary = {
        "title": "t",
        "verdict": "a is **better**.",
        "sections": [{"heading": "Main", "columns": ["arm", "acc"], "rows": [["a", "0.5"]]}],
    }
    (root / "x" / "summary.json").write_text(json.dumps(summary))
    good = "intro\n<!-- results: x | Main -->\n| arm | acc |\n|---|---|\n| a | 0.5 |\n<!-- /results -->\n"
    doc = tmp_path / "doc.md"
    doc.write_text(good)
    assert stale_blocks([doc], root) == []
    doc.write_text(good.replace("0.5", "0.9"))  # hand-edited number
    assert stale_blocks([doc], root) == [f"{doc}: x | Main"]
    assert render_file(doc.read_text(), root) == good
    assert render_block("x", "verdict", root) == "**Verdict.** a is **better**.\n"
    with pytest.raises(ConfigError, match="no section"):
        render_block("x", "Nope", root)
