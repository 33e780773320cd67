"""What does a 1M-parameter NoPE model need to learn reversed addition? One seed-model probe.

Trains the library's ``tiny`` preset (NoPE) with the frontier schedule's own trainer
(``selfplay.training.plain.train_mixture``) on fresh answer-only reversed addition problems of 1..N
digits, then greedy-decodes 200 problems per length 1..N+3 and appends one JSON line to --out:

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/climb_seed_probe.py --name G --fullloss
    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/climb_seed_probe.py --name B --wd 0.01 \\
        --beta2 0.98 --warmup 0.1 --tokens 500000

``--fmt pad`` is the library's format (operands zero-padded to one width); ``--fmt lee`` draws the
two operands' lengths independently and does not pad them. ``--fullloss`` puts the loss on every
token (prompt and answer) instead of the answer only (``train.loss``).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

import selfplay.engine.models as models
from selfplay.generation.hf import generate
from selfplay.tasks.base import Example
from selfplay.training.plain import train_mixture


def decode(model, tok, prompts: list[str], max_new_tokens: int) -> list[list[str]]:
    """Greedy answers through the hf backend's unpadded decoder, one list per prompt."""
    outs = generate(model, tok, prompts, greedy=True, max_new_tokens=max_new_tokens,
                    decoder="grouped", chat_template="none", batch_size=512)  # fmt: skip
    return [[c.text] for c in outs]


def number(d: int, rng: random.Random) -> str:
    if d == 1:
        return str(rng.randint(0, 9))
    return str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(d - 1))


def problem(da: int, db: int, fmt: str, rng: random.Random) -> tuple[str, str]:
    x, y = number(da, rng), number(db, rng)
    s = str(int(x) + int(y))[::-1]
    w = max(da, db)
    if fmt == "pad":
        return f"Q:{x.zfill(w)[::-1]}+{y.zfill(w)[::-1]}=", s.ljust(w + 1, "0")
    return f"Q:{x[::-1]}+{y[::-1]}=", s.ljust(w + 1, "0")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--fmt", choices=["pad", "lee"], default="pad")
    ap.add_argument("--N", type=int, default=4, help="largest operand length in training")
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--lr", type=float, default=2.5e-4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=200_000, help="training problems drawn")
    ap.add_argument("--wd", type=float, default=0.0)
    ap.add_argument("--beta2", type=float, default=0.99)
    ap.add_argument("--warmup", type=float, default=0.05)
    ap.add_argument("--decay", type=float, default=0.3)
    ap.add_argument("--shape", default="", help="hidden,layers,heads,intermediate (else tiny)")
    ap.add_argument("--fullloss", action="store_true", help="loss on prompt and answer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/climb/seed-probes.jsonl"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    rng = random.Random(a.seed)
    train = []
    for _ in range(a.size):
        if a.fmt == "pad":
            da = db = rng.randint(1, a.N)
        else:
            da, db = rng.randint(1, a.N), rng.randint(1, a.N)
        p, c = problem(da, db, a.fmt, rng)
        ex = Example("", p + c, p, max(da, db), "raw") if a.fullloss else Example(p, c, p, 0, "raw")
        train.append(ex)
    tok = models.build_char_tokenizer()
    preset = "tiny"
    if a.shape:
        models.PRESETS["probe"] = tuple(map(int, a.shape.split(",")))
        preset = "probe"
    model = models.build_model(preset, tok, position="nope", seed=a.seed)
    t = time.process_time()
    r = train_mixture(model, tok, {"raw": train}, {"raw": 1.0}, tokens=a.tokens,
                      batch_size=a.batch, lr=a.lr, warmup=a.warmup, decay=a.decay, seed=a.seed,
                      weight_decay=a.wd, betas=(0.9, a.beta2))  # fmt: skip
    cpu = time.process_time() - t
    test_rng = random.Random(999)
    acc = {}
    for d in range(1, a.N + 4):
        ps = [problem(d, d, a.fmt, test_rng) for _ in range(200)]
        outs = decode(model, tok, [p for p, _ in ps], d + 2)
        acc[d] = round(sum(o[0] == c for o, (_, c) in zip(outs, ps, strict=True)) / len(ps), 3)
    res = dict(
        vars(a), out=str(a.out), steps=r["steps"], loss=round(r["loss"], 4), cpu=round(cpu), acc=acc
    )
    print(json.dumps(res), flush=True)
    with a.out.open("a") as f:
        f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
