"""Model-agnostic training: :class:`TrainConfig`, :class:`Trainer`, schedule, checkpoints.

Typical use (single process, or every process under ``torchrun``)::

    from affectgpt.train import TrainConfig, Trainer

    cfg = TrainConfig.paper(stage=1, out_dir="runs/stage1")
    trainer = Trainer(model, dataset, collate_fn, cfg, eval_fn=evaluate)
    summary = trainer.fit(resume="auto")
    trainer.close()
"""

from affectgpt.train.checkpoint import find_latest, load_trainable
from affectgpt.train.config import TrainConfig
from affectgpt.train.sampler import ResumableBatchSampler
from affectgpt.train.schedule import build_optimizer, lr_at, make_scheduler, parameter_groups
from affectgpt.train.trainer import Trainer, loss_of, seed_everything

__all__ = [
    "ResumableBatchSampler", "TrainConfig", "Trainer", "build_optimizer", "find_latest",
    "load_trainable", "loss_of", "lr_at", "make_scheduler", "parameter_groups",
    "seed_everything",
]
