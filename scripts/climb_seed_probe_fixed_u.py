"""Seed-model probe on a fixed U of 1-3 digit reversed addition (seed-diagnosis.md):

OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/climb_seed_probe_fixed_u.py VARIANT TOKENS LR SIZE BATCH
"""

import random
import sys
import time

import torch

from selfplay.engine.models import build_char_tokenizer, build_model
from selfplay.generation.hf import generate
from selfplay.tasks.arith import ArithTask
from selfplay.tasks.base import Example
from selfplay.training.plain import train_mixture


def decode(model, tok, prompts: list[str], max_new_tokens: int) -> list[list[str]]:
    """Greedy answers through the hf backend's unpadded decoder, one list per prompt."""
    outs = generate(model, tok, prompts, greedy=True, max_new_tokens=max_new_tokens,
                    decoder="grouped", chat_template="none", batch_size=512)  # fmt: skip
    return [[c.text] for c in outs]


torch.set_num_threads(1)
variant, tokens, lr, size = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
digits = [1, 2, 3]
task = ArithTask(["add"], reversed_=True)
rng = random.Random(0)


def draw(n, split):
    out = []
    while len(out) < n:
        d = rng.choice(digits)
        out += task.sample_problems(split, d, 1, rng)
    return out


train = draw(size, "train")
tok = build_char_tokenizer()
bos = "<s>" if "bos" in variant else ""
ex = [Example(bos + p.prompt, p.answer, p.id, p.difficulty, "raw") for p in train]
print(variant, "unique", len({e.problem_id for e in ex}), "ex", ex[0])
model = build_model("tiny", tok, position="rope" if "rope" in variant else "nope")
t = time.process_time()
r = train_mixture(
    model,
    tok,
    {"raw": ex},
    {"raw": 1.0},
    tokens=tokens,
    batch_size=int(sys.argv[5]) if len(sys.argv) > 5 else 128,
    lr=lr,
    warmup=0.05,
    decay=0.3,
    seed=0,
)
print(
    "train", {k: r[k] for k in ("steps", "tokens", "loss")}, "cpu", round(time.process_time() - t)
)
for d in [1, 2, 3, 4]:
    ps = task.sample_problems("test", d, 100, random.Random(d))
    outs = decode(model, tok, [bos + p.prompt for p in ps], d + 2)
    acc = sum(o[0] == p.answer for o, p in zip(outs, ps, strict=False)) / len(ps)
    u = sum(o[0][:1] == p.answer[:1] for o, p in zip(outs, ps, strict=False)) / len(ps)
    print(
        f"  d={d} acc={acc:.2f} units={u:.2f} e.g. {ps[0].prompt}->{outs[0][0]} gold {ps[0].answer}"
    )
