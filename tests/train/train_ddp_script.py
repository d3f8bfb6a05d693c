"""Run by test_train_ddp.py under ``python -m torch.distributed.run --nproc_per_node 2``.

Usage: ``train_ddp_script.py OUT_DIR``. Three runs in one launch, on the toy model whose
audio branch only some batches use (``find_unused_parameters``):

* ``OUT_DIR/a``: an uninterrupted run; each rank starts from different trainable weights
  (DDP must broadcast rank 0's); rank 0 writes its initial weights to ``initial.safetensors``;
* ``OUT_DIR/b``: the same run interrupted in the middle of step 4, then resumed by a new
  model and trainer (``resume="auto"``) in the same process group.

Every rank writes its final trainable weights to ``<run>/rank<r>.safetensors``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from train_toys import ToyDataset, collate, fast_config, make_model  # noqa: E402

from affectgpt.train import Trainer  # noqa: E402


def _save(model, path: str) -> None:
    save_file({k: v.contiguous() for k, v in model.trainable_state_dict().items()}, path)


def _trainer(out: str, seed: int):
    model = make_model(seed=seed, audio_branch=True)
    cfg = fast_config(out, epochs=2, batch_size=2, grad_accum=2, save_every_steps=2,
                      find_unused_parameters=os.environ.get("FIND_UNUSED", "1") == "1",
                      dist_timeout_s=60)
    return model, Trainer(model, ToyDataset(23), collate, cfg,
                          eval_fn=lambda m, epoch: {"epoch": float(epoch)})


def main() -> None:
    torch.set_num_threads(1)
    root = sys.argv[1]
    rank = int(os.environ["RANK"])

    model, trainer = _trainer(os.path.join(root, "a"), seed=100 + rank)
    if rank == 0:
        _save(model, os.path.join(root, "initial.safetensors"))
    trainer.fit()
    _save(model, os.path.join(root, "a", f"rank{rank}.safetensors"))

    model, trainer = _trainer(os.path.join(root, "b"), seed=100 + rank)
    model.crash_after = 7  # step 4 = micro-batches 7 and 8; checkpoint-3 ends epoch 1
    try:
        trainer.fit()
        raise AssertionError("the interruption did not happen")
    except KeyboardInterrupt:
        pass
    model, trainer = _trainer(os.path.join(root, "b"), seed=200 + rank)
    summary = trainer.fit(resume="auto")
    assert summary["resumed_from"].endswith("checkpoint-3"), summary["resumed_from"]
    _save(model, os.path.join(root, "b", f"rank{rank}.safetensors"))
    trainer.close()


if __name__ == "__main__":
    main()
