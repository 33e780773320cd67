"""The gsm8k verifier on GSM8K train: the gold audit, and its false-accept rate on gold chains
with one written result wrong, in the annotated style and in prose (annotations removed).

    python scripts/verifier_audit.py [--data train.jsonl] [--seed 0] \
        [--out benchmarks/results/gsm8k_verifier_audit.json]

Deterministic for a given seed and data file (see ``selfplay.tasks.gsm8k.audit_corrupted``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from selfplay.engine import rundir
from selfplay.tasks.gsm8k import GSM8KTask, audit_corrupted, audit_gold, verify_gsm8k

ROOT = Path(__file__).resolve().parents[1]


def gold_rejections(records: list[dict]) -> list[dict]:
    """Every gold chain the verifier does not accept: its line in the file and the first bad step."""
    out = []
    for i, rec in enumerate(records):
        p = GSM8KTask.problem_from_record(rec, i)
        v = verify_gsm8k(p, p.meta["gold"])
        if not v.valid:
            bad = v.steps[v.first_bad_step] if v.first_bad_step is not None else None
            out.append(
                {
                    "line": i + 1,
                    "step": bad.text if bad else "",
                    "why": bad.why if bad else v.why,
                    "gold_answer": p.answer,
                }
            )
    return out


def main() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from shared_data import GSM8K_TRAIN

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(GSM8K_TRAIN))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/gsm8k_verifier_audit.json"))
    args = ap.parse_args()
    path = Path(args.data)
    if not path.is_file():
        raise SystemExit(f"error: GSM8K train file not found: {path}")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    t0 = time.perf_counter()
    gold = audit_gold(records)
    corrupted = audit_corrupted(records, seed=args.seed)
    result = {
        "data": path.name,
        "records": len(records),
        "seed": args.seed,
        "commit": rundir.git("rev-parse", "HEAD"),
        "gold": {k: dict(v) for k, v in gold.items()},
        "gold_rejected": gold_rejections(records),
        "corrupted": corrupted,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"gold valid {gold['chains'].get('accepted', 0)}/{len(records)}")
    for style, r in corrupted.items():
        print(
            f"{style:<10} gold valid {r['gold_valid']}/{r['gold_chains']}  corrupted {r['corrupted']}"
            f"  still valid {r['still_valid']} ({r['false_accept_rate']:.2%})"
            f"  on checked lines {r['slip_on_checked_line']['still_valid']}"
            f"/{r['slip_on_checked_line']['corrupted']}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
