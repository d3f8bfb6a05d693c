"""Run by test_train_grpo.py under ``python -m torch.distributed.run --nproc_per_node 2``.

Usage: ``grpo_ddp_script.py OUT_DIR``. GRPO on the tiny model, 8 clips over 2 ranks.
Every rank writes ``rank<r>.safetensors`` (its final trainable weights) and
``rank<r>.json`` (the clips whose descriptions it scored).
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from safetensors.torch import save_file  # noqa: E402
from test_train_grpo import Clips, make_policy  # noqa: E402

from affectgpt.eval.rewards import CompositeReward, LengthPenalty  # noqa: E402
from affectgpt.train.grpo import GRPOConfig, GRPOTrainer, grpo_train_config  # noqa: E402


def main(out: str) -> None:
    # a rank stuck for 2 minutes prints every thread's stack and exits (the test then fails
    # with the stacks in its message instead of waiting for its timeout)
    faulthandler.dump_traceback_later(120, exit=True)
    rank = int(os.environ["RANK"])
    policy = make_policy(seed=0)
    reward = CompositeReward([(LengthPenalty(0, rate=0.1, unit="chars"), 1.0)])
    cfg = grpo_train_config(out_dir=out, lr=1e-2, min_lr=1e-2, batch_size=2, epochs=1,
                            progress=False, plots=False, seed=3, device="cpu",
                            dist_timeout_s=60)
    trainer = GRPOTrainer(policy, Clips(8, seed=2), reward, cfg=cfg,
                          grpo=GRPOConfig(group_size=3, max_new_tokens=3, kl_coef=0.1),
                          extractor="answer")
    try:
        trainer.fit()
    finally:
        trainer.close()
    save_file({k: v.contiguous() for k, v in policy.trainable_state_dict().items()},
              os.path.join(out, f"rank{rank}.safetensors"))
    names = sorted({name for name, _ in trainer.cache._items})
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(names, f)


if __name__ == "__main__":
    main(sys.argv[1])
