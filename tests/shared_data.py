"""Where the test suite finds the real datasets (GSM8K train, HumanEval), which live outside the
repository: ``$SELFPLAY_SHARED_DATA``, else ``../shared/data`` beside the checkout, else
``/work/shared/data``. Tests that need them skip, with the path, when none exists."""

from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = [
    os.environ.get("SELFPLAY_SHARED_DATA"),
    Path(__file__).resolve().parents[2] / "shared" / "data",
    "/work/shared/data",
]
SHARED_DATA = next(
    (Path(c) for c in _CANDIDATES if c and Path(c).is_dir()), Path("/work/shared/data")
)
GSM8K_TRAIN = SHARED_DATA / "gsm8k" / "train.jsonl"
HUMANEVAL = SHARED_DATA / "humaneval" / "HumanEval.jsonl.gz"
