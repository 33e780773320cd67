"""One training stage in a process started by ``accelerate launch`` (see
:func:`selfplay.training.launch_training`, which writes the request and builds the command)::

    accelerate launch --config_file configs/accelerate/fsdp.yaml --num_processes 8 \\
        -m selfplay.engine.train_worker runs/x/iter_001/.trainer/request.json

Every process loads the initial checkpoint, builds the same trainer as in-process training
(:func:`selfplay.training.build_trainer`: same step plan and data order) and trains; the Trainer's
accelerator does the rest (DDP, FSDP or DeepSpeed, as the accelerate config says). The full
weights are then saved by the Trainer, which gathers sharded ones, or, with LoRA, the adapters are
saved and the main process merges them into the initial weights. The main process writes the
result; a process that fails writes one line to ``error.rank<R>.txt`` and exits with status 1.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path


def run_request(request: dict) -> None:
    import torch

    from selfplay.config import LoraConfig, TrainConfig
    from selfplay.engine.models import load_model
    from selfplay.tasks import Example
    from selfplay.training import StepPlan, build_trainer, train_result

    cfg = TrainConfig(**request["train"])
    lora = LoraConfig(**request["lora"]) if request["lora"] else None
    examples = [Example(**e) for e in request["examples"]]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tok = load_model(
        request["init"], "cpu", attn_implementation=request.get("attn_implementation")
    )
    trainer, seen = build_trainer(
        model,
        tok,
        examples,
        cfg,
        budget_tokens=request["budget_tokens"],
        seed=request["seed"],
        work_dir=Path(request["trainer_dir"]),
        device=device,
        progress=request["progress"] if _rank() == 0 else None,
        lora=lora,
        chat_template=request["chat_template"],
        plan=StepPlan(**request["plan"]) if request.get("plan") else None,
    )
    if trainer is None:
        raise ValueError("nothing to train: no examples or a zero token budget")
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    out = Path(request["out"])
    if lora is not None and lora.r > 0:
        adapter = Path(request["trainer_dir"]) / "adapter"
        trainer.save_model(str(adapter))
        trainer.accelerator.wait_for_everyone()
        if trainer.is_world_process_zero():
            _merge_adapter(request["init"], adapter, out)
    else:
        trainer.save_model(str(out))  # gathers FSDP / ZeRO-3 shards; writes on the main process
        if trainer.is_world_process_zero():
            tok.save_pretrained(str(out))
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        result = train_result(trainer, examples, seen, cfg, seconds)
        Path(request["result"]).write_text(json.dumps(asdict(result)))


def _merge_adapter(init: str, adapter: Path, out: Path) -> None:
    """Initial weights + trained adapters -> a plain checkpoint (on CPU, in the weights' dtype)."""
    from peft import PeftModel

    from selfplay.engine.models import load_model

    base, tok = load_model(init, "cpu")
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))
    tok.save_pretrained(str(out))


def _rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m selfplay.engine.train_worker REQUEST.json", file=sys.stderr)
        return 2
    request = json.loads(Path(argv[0]).read_text())
    try:
        run_request(request)
    except Exception as exc:  # reported to the launching process as one line
        import traceback

        from selfplay.generation import one_line

        traceback.print_exc()
        Path(f"{request['error_prefix']}.rank{_rank()}.txt").write_text(one_line(exc) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
