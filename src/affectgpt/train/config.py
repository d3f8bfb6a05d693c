"""Training configuration: one dataclass, serialisable to JSON and back."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from affectgpt.config import ConfigError, coerce, errors_as, field_types, unknown_key_message

PRECISIONS = ("fp32", "bf16")

#: where checkpoints are chosen (``TrainConfig.select_on``) and how that is labelled wherever
#: it is printed, stored or plotted
SELECTION_LABELS = {
    "val": "best epoch on validation",
    "test": "best epoch on test (paper protocol)",
    "last": "last epoch (no selection)",
}
#: score prefixes that cover test samples (the eval manifest's test split, or all of it)
TEST_SIDE = ("test/", "whole/")


class TrainSettingsError(ConfigError):
    """Invalid ``affectgpt train`` trainer settings (--train, --train-config)."""


@dataclass
class TrainConfig:
    """Everything the :class:`~affectgpt.train.trainer.Trainer` needs besides the model and data.

    Steps and epochs
        A *step* is one optimizer update; it consumes ``grad_accum`` micro-batches of
        ``batch_size`` samples on every process, so the effective batch is
        ``batch_size * grad_accum * world_size``.

        ``iters_per_epoch=None`` (the default) makes an epoch a true pass over the training
        data: ``ceil(batches / grad_accum)`` steps, the last one possibly with fewer
        micro-batches. An int reproduces the paper's (LAVIS') fixed-length "epochs":
        ``iters_per_epoch`` steps per epoch, whatever the data size (stage 1: 1000 on
        EMER-Coarse, stage 2: 88 on EMER-Fine train). The data stream then runs on across
        the boundaries of passes over the data deterministically (pass ``k`` is shuffled with
        seed ``seed + k``), so such an "epoch" is only a unit of schedule, evaluation and
        checkpoints, not a pass over the data. It counts optimizer steps; LAVIS counts
        micro-batches, which is the same at the paper's ``grad_accum=1``.

    Learning rate
        Linear warm-up from ``warmup_start_lr`` to ``lr`` over ``warmup_steps`` steps (or
        ``round(warmup_ratio * total_steps)`` when ``warmup_steps`` is None), then a cosine
        decay to ``min_lr`` at the last step; see :func:`affectgpt.train.schedule.lr_at`.

    Precision
        ``"bf16"`` runs the forward pass under ``torch.autocast("cuda", torch.bfloat16)``
        on CUDA only (on CPU it falls back to fp32 with a warning). Trainable weights and
        optimizer state stay fp32. fp16 autocast is deliberately not offered: the reference
        code's fp16 autocast over a bf16 LLM is one of its defects.

    Protocol: train, validation, test
        Every run has three roles. ``val_size`` samples (a count, or a fraction of the
        training samples; 0: none) are carved from the training samples by a seeded split
        (``val_seed``, :func:`affectgpt.data.splits.validation_split`), never trained on,
        written to ``<out>/splits/validation.csv``, and scored at every evaluation
        (``val/avg``, ``val/accuracy``, ...). ``select_on`` says what chooses the exported
        checkpoint: ``"val"`` (default: ``best_metric`` defaults to ``val/avg``; the last
        checkpoint when there is no validation sample), ``"test"`` (the authors' protocol:
        best epoch on the eval manifest's test split, as their MER-UniBench scripts do;
        ``best_metric`` defaults to ``test/avg`` and the choice is labelled "best epoch on
        test (paper protocol)" everywhere) or ``"last"`` (no selection). The eval manifest
        (test side) is scored every evaluation for the curves but chooses nothing unless
        ``select_on="test"``: a ``best_metric`` on ``test/`` or ``whole/`` needs that.

    Evaluation, checkpoints, logs
        ``eval_every`` and ``save_every`` count epochs; ``save_every_steps`` adds checkpoints
        inside epochs. The last step and every new best of ``best_metric`` (per
        ``best_mode``) are always saved; ``keep_last`` keeps that many newest checkpoints
        plus the best (None keeps all: a stage-1 checkpoint holds the ~45 M trainable
        weights and their AdamW moments). ``smooth_window`` is the centred moving-average
        window of the smoothed score curves. ``max_steps`` stops (and saves) after that
        global step without changing the schedule: for smoke runs and tests. A fresh run
        (no resume) refuses an ``out_dir`` holding checkpoints unless ``overwrite``, which
        deletes them and the logs first.

    Distributed
        Under ``torchrun`` each process reads ``batch_size`` samples per micro-batch from its
        own shard. ``find_unused_parameters`` is passed to DDP: set it when the model's
        forward may leave a trainable parameter unused (see :mod:`affectgpt.train.trainer`).
    """

    stage: str = "stage1"
    out_dir: str = "runs/stage1"
    init_from: str | None = None

    # optimisation
    lr: float = 3e-5
    min_lr: float = 1e-5
    warmup_start_lr: float = 0.0
    warmup_steps: int | None = None
    warmup_ratio: float = 0.0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    max_grad_norm: float | None = None

    # data and length
    epochs: int = 100
    iters_per_epoch: int | None = None
    batch_size: int = 3
    grad_accum: int = 1
    drop_last: bool = False
    shuffle: bool = True
    num_workers: int = 0
    seed: int = 42

    # numerics and devices
    precision: str = "fp32"
    device: str = "auto"
    deterministic: bool = False
    freeze_eval: bool = True
    find_unused_parameters: bool = False
    dist_timeout_s: float = 3600.0

    # protocol: validation carved from the training samples, what selects the checkpoint
    val_size: int | float = 0.1
    val_seed: int = 0
    select_on: str = "val"

    # evaluation, logging, checkpoints
    eval_every: int = 1
    save_every: int = 1
    save_every_steps: int | None = None
    keep_last: int | None = 3
    best_metric: str | None = None
    best_mode: str = "max"
    smooth_window: int = 5
    plots: bool = True
    log_every: int = 1
    progress: bool = True
    max_steps: int | None = None
    overwrite: bool = False

    # free-form notes kept with the run (config.json, checkpoints); the trainer ignores them
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):
            self.betas = tuple(self.betas)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS} (fp16 autocast is not "
                             f"supported on purpose), got {self.precision!r}")
        for name in ("epochs", "batch_size", "grad_accum", "eval_every", "save_every",
                     "smooth_window", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("iters_per_epoch", "save_every_steps", "keep_last", "max_steps"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be None or >= 1, got {value!r}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError("warmup_steps must be >= 0")
        if not 0.0 <= self.warmup_ratio <= 1.0:
            raise ValueError("warmup_ratio must be in [0, 1]")
        if self.lr <= 0 or self.min_lr < 0 or self.warmup_start_lr < 0:
            raise ValueError("lr must be > 0; min_lr and warmup_start_lr >= 0")
        if self.num_workers < 0:
            raise ValueError("num_workers must be >= 0")
        if self.best_mode not in ("max", "min"):
            raise ValueError("best_mode must be 'max' or 'min'")
        if isinstance(self.val_size, bool) or not isinstance(self.val_size, (int, float)):
            raise ValueError(f"val_size must be a count or a fraction, got {self.val_size!r}")
        if self.val_size < 0 or (isinstance(self.val_size, float) and self.val_size > 1):
            raise ValueError(f"val_size must be a count >= 0 or a fraction in [0, 1], got "
                             f"{self.val_size!r}")
        if self.select_on not in SELECTION_LABELS:
            raise ValueError(f"select_on must be one of {sorted(SELECTION_LABELS)}, got "
                             f"{self.select_on!r}")
        if self.best_metric is not None:
            if self.select_on == "last":
                raise ValueError("select_on='last' chooses no checkpoint: leave best_metric "
                                 "unset")
            if self.select_on == "val" and self.best_metric.startswith(TEST_SIDE):
                raise ValueError(
                    f"best_metric {self.best_metric!r} would choose checkpoints on the "
                    "evaluation (test-side) data; choose on validation ('val/avg', ...) or "
                    "ask for the paper protocol explicitly with select_on='test'")

    @property
    def selection_label(self) -> str:
        """How the exported checkpoint is chosen, in words (printed, stored, plotted)."""
        return SELECTION_LABELS[self.select_on]

    def default_best_metric(self, has_val: bool, has_test: bool) -> str | None:
        """``best_metric`` when unset: ``val/avg`` (``select_on="val"`` with validation
        samples), ``test/avg`` or ``whole/avg`` (``select_on="test"``: the eval manifest's
        test split, or all of it when it has none), else None (the last checkpoint)."""
        if self.best_metric is not None:
            return self.best_metric
        if self.select_on == "val":
            return "val/avg" if has_val else None
        if self.select_on == "test":
            return "test/avg" if has_test else "whole/avg"
        return None

    # ------------------------------------------------------------------ presets / serialisation
    @classmethod
    def paper(cls, stage: int | str = 1, **overrides: Any) -> TrainConfig:
        """The paper's setting (section 4): batch 3, 100 "epochs" of 1000 (stage 1,
        EMER-Coarse) or 88 (stage 2, EMER-Fine train) iterations, AdamW, lr 3e-5 -> 1e-5,
        weight decay 0.05. The warm-up (1000 steps from 1e-6) follows the LAVIS/Video-LLaMA
        configs the reference builds on; the paper itself does not state it."""
        s = str(stage).removeprefix("stage")
        if s not in ("1", "2"):
            raise ValueError("stage must be 1 or 2")
        base = dict(stage=f"stage{s}", out_dir=f"runs/stage{s}", lr=3e-5, min_lr=1e-5,
                    warmup_start_lr=1e-6, warmup_steps=1000, weight_decay=0.05, epochs=100,
                    iters_per_epoch=1000 if s == "1" else 88, batch_size=3, grad_accum=1)
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {unknown}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def apply_train_settings(base: TrainConfig, settings: Mapping[str, Any]) -> TrainConfig:
    """``base`` with ``settings`` (``{field: value}``, values converted to the fields'
    types), checked; :class:`TrainSettingsError` names what is wrong."""
    hints = field_types(TrainConfig)
    data = base.to_dict()
    with errors_as(TrainSettingsError):
        for key, value in settings.items():
            if key not in hints:
                raise ConfigError(unknown_key_message(key, key, list(hints), ""))
            data[key] = coerce(value, hints[key], key)
    try:
        return TrainConfig.from_dict(data)
    except ValueError as exc:
        raise TrainSettingsError(f"invalid trainer settings: {exc}") from None
