"""Learning-rate schedule (linear warm-up, then cosine) and AdamW parameter groups."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

# Parameters whose name contains one of these (case-insensitive) get no weight decay.
NO_DECAY_KEYWORDS = ("bias", "norm", "query_tokens", "queries", "pos_emb", "position_emb",
                     "cls_token")
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
    nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*, SyncBatchNorm
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)
EMBEDDING_TYPES: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)


def warmup_steps_for(total_steps: int, warmup_steps: int | None, warmup_ratio: float) -> int:
    """``warmup_steps`` when given, else ``round(warmup_ratio * total_steps)``."""
    if warmup_steps is not None:
        return int(warmup_steps)
    return int(round(warmup_ratio * total_steps))


def lr_at(step: int, *, lr: float, min_lr: float, total_steps: int, warmup_steps: int,
          warmup_start_lr: float = 0.0) -> float:
    """Learning rate of optimizer step ``step`` (0-based: the rate the ``step``-th update uses).

    With ``W = warmup_steps`` and ``T = total_steps``::

        step < W :  warmup_start_lr + (lr - warmup_start_lr) * (step + 1) / W
        step >= W:  min_lr + (lr - min_lr) * 0.5 * (1 + cos(pi * p)),
                    p = min(1, (step - W) / max(1, T - W - 1))

    so the last warm-up step (``W - 1``) and the first cosine step (``W``) use ``lr``, and
    the last step (``T - 1``) uses exactly ``min_lr``; steps past ``T`` stay at ``min_lr``.
    (LAVIS, which the reference builds on, decays once per epoch; this decays per step.)
    """
    if step < warmup_steps:
        return warmup_start_lr + (lr - warmup_start_lr) * (step + 1) / warmup_steps
    p = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps - 1))
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * p))


def make_scheduler(optimizer: torch.optim.Optimizer, *, lr: float, min_lr: float,
                   total_steps: int, warmup_steps: int,
                   warmup_start_lr: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following :func:`lr_at` for every group (groups must share ``lr``).

    Call ``scheduler.step()`` once after every ``optimizer.step()``. The lambda is a closure,
    so ``state_dict()`` holds only the step counter and rates, never the formula's arguments.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
        group["initial_lr"] = lr

    def factor(step: int) -> float:
        return lr_at(step, lr=lr, min_lr=min_lr, total_steps=total_steps,
                     warmup_steps=warmup_steps, warmup_start_lr=warmup_start_lr) / lr

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _no_decay(name: str, param: nn.Parameter, module: nn.Module,
              keywords: Iterable[str]) -> bool:
    if param.ndim <= 1:  # biases, norm scales, scalar gates
        return True
    if isinstance(module, NORM_TYPES + EMBEDDING_TYPES):
        return True
    lowered = name.lower()
    return any(k in lowered for k in keywords)


def parameter_groups(model: nn.Module, weight_decay: float, *,
                     no_decay_keywords: Iterable[str] = NO_DECAY_KEYWORDS) -> list[dict]:
    """Two AdamW groups over the *trainable* parameters of ``model`` (``requires_grad``).

    No weight decay for: 0-/1-d tensors (biases, norm scales), any parameter of a
    normalisation or embedding module (position embeddings), and names containing one of
    ``no_decay_keywords`` (query tokens such as ``video_query_tokens``, ``pos_embed`` ...).
    Frozen parameters never enter a group. Each group carries ``param_names``.
    """
    keywords = tuple(k.lower() for k in no_decay_keywords)
    decay, no_decay, decay_names, no_decay_names = [], [], [], []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for pname, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            full = f"{module_name}.{pname}" if module_name else pname
            if _no_decay(full, param, module, keywords):
                no_decay.append(param)
                no_decay_names.append(full)
            else:
                decay.append(param)
                decay_names.append(full)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay, "param_names": decay_names})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "param_names": no_decay_names})
    if not groups:
        raise ValueError("the model has no trainable parameters (requires_grad=True)")
    return groups


def build_optimizer(model: nn.Module, *, lr: float, weight_decay: float,
                    betas: tuple[float, float] = (0.9, 0.999),
                    eps: float = 1e-8) -> torch.optim.AdamW:
    """AdamW over :func:`parameter_groups` (trainable parameters only)."""
    return torch.optim.AdamW(parameter_groups(model, weight_decay), lr=lr, betas=betas, eps=eps)
