"""Training without a host sync per step: the same loss and weights as TRL's own ``SFTTrainer``,
its metrics read once per logging step, and TRL's path wherever the plain one does not apply."""

from __future__ import annotations

import sys

import pytest
import torch

from selfplay.config import TrainConfig
from selfplay.engine.models import build_char_tokenizer, build_model
from selfplay.tasks import Example
from selfplay.training import build_trainer, sync_free_trainer_class

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def examples() -> list[Example]:
    return [
        Example(f"Q:{a}+{b}=", f"{a}+{b}={a + b}", f"{a}+{b}", 1, "raw")
        for a in range(12)
        for b in range(12)
    ]


def trained(tmp_path, stock: bool, steps_between_logs: int = 6):
    """A tiny model trained ~20 steps (stock: TRL's ``SFTTrainer`` itself), with how many
    ``Tensor.item`` / ``tolist`` / ``__bool__`` calls (host syncs) the trainer made."""
    from trl import SFTTrainer

    tok = build_char_tokenizer()
    model = build_model("tiny", tok, seed=0)
    trainer, _ = build_trainer(
        model, tok, examples(), TrainConfig(batch_size=8, sft={"logging_steps": steps_between_logs}),
        budget_tokens=24 * 8 * 10, seed=0, work_dir=tmp_path / ("stock" if stock else "lean"),
    )  # fmt: skip
    if stock:
        trainer.__class__ = SFTTrainer
    syncs = []
    originals = {n: getattr(torch.Tensor, n) for n in ("item", "tolist", "__bool__")}

    def counting(fn):
        def call(self, *args, **kwargs):
            # transformers' SDPA mask fast path asks "any padding?" twice a forward, in any loop
            # (a plain PyTorch one included): counted apart from the trainers' own syncs.
            caller = sys._getframe(1).f_code.co_filename
            syncs.append("mask" if caller.endswith("masking_utils.py") else "trainer")
            return fn(self, *args, **kwargs)

        return call

    with pytest.MonkeyPatch.context() as mp:
        for name, fn in originals.items():
            mp.setattr(torch.Tensor, name, counting(fn))
        trainer.train()
    syncs = syncs.count("trainer")
    return trainer, model, syncs


def test_same_loss_and_weights_as_trl_with_far_fewer_host_syncs(tmp_path):
    lean, lean_model, lean_syncs = trained(tmp_path, stock=False)
    stock, stock_model, stock_syncs = trained(tmp_path, stock=True)
    steps = lean.state.max_steps
    assert steps == stock.state.max_steps >= 15
    for a, b in zip(lean_model.parameters(), stock_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    logs = [h for h in lean.state.log_history if "loss" in h]
    ref = [h for h in stock.state.log_history if "loss" in h]
    assert [h["loss"] for h in logs] == pytest.approx([h["loss"] for h in ref])
    # The same tokens counted; entropy and accuracy as the window's ratios (close to TRL's means).
    assert [h["num_tokens"] for h in logs] == [h["num_tokens"] for h in ref]
    for key in ("entropy", "mean_token_accuracy"):
        assert [h[key] for h in logs] == pytest.approx([h[key] for h in ref], abs=0.05)
    # TRL syncs several times a step; the sync-free path only when it logs (and once as the
    # data loader starts and training ends).
    assert stock_syncs >= 4 * steps
    assert lean_syncs <= 3 * len(logs) + 5 < steps


def test_configurations_the_plain_path_does_not_cover_use_trl(tmp_path):
    tok = build_char_tokenizer()
    trainer, _ = build_trainer(
        build_model("tiny", tok, seed=0), tok, examples(), TrainConfig(batch_size=8),
        budget_tokens=800, seed=0, work_dir=tmp_path,
    )  # fmt: skip
    assert isinstance(trainer, sync_free_trainer_class()) and trainer._lean()
    assert not trainer.args.logging_nan_inf_filter
    trainer.args.loss_type = "dft"
    assert not trainer._lean()
    trainer.args.loss_type = "nll"
    trainer.compute_loss_func = lambda *a, **k: None
    assert not trainer._lean()
