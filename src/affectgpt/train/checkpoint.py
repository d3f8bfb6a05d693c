"""Checkpoint folders: written atomically, found again after a crash, pruned.

Layout of ``<out_dir>/checkpoint-<step>/``::

    trainable.safetensors  trainable weights only (the model's ``trainable_state_dict()``)
    optimizer.pt           AdamW state
    scheduler.pt           LambdaLR state
    rng.pt                 python / numpy / torch CPU / CUDA generator states, one per rank
    trainer_state.json     step, epoch, sampler position, best score, config

A checkpoint is written into ``<out_dir>/.tmp-checkpoint-<step>-<pid>/`` and renamed into
place, then ``<out_dir>/latest`` (a one-line file naming the folder) is replaced
atomically. A crash leaves at worst a ``.tmp-*`` folder, which is never read and is
removed by the next save.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from affectgpt.io import atomic_write
from affectgpt.paths import join_inside

WEIGHTS = "trainable.safetensors"
PRETRAINED_WEIGHTS = "adapters.safetensors"  # affectgpt.model's save_pretrained folders
OPTIMIZER = "optimizer.pt"
SCHEDULER = "scheduler.pt"
RNG = "rng.pt"
STATE = "trainer_state.json"
LATEST = "latest"
BEST = "best"
FILES = (WEIGHTS, OPTIMIZER, SCHEDULER, RNG, STATE)
_NAME = re.compile(r"^checkpoint-(\d+)$")
TMP_PREFIX = ".tmp-checkpoint-"


# --------------------------------------------------------------------------- RNG
def capture_rng() -> dict[str, Any]:
    """This process's generator states, as plain lists and tensors (``weights_only`` safe)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            torch.cuda.set_rng_state(cuda[0])


# --------------------------------------------------------------------------- save
def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step}"


def is_complete(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in FILES)


def trainable_to_cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies (safetensors refuses shared or strided storage)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}


def save_checkpoint(out_dir: str | Path, step: int, *, weights: dict[str, torch.Tensor],
                    optimizer: dict, scheduler: dict, rng: dict, state: dict,
                    update_latest: bool = True) -> Path:
    """Write ``checkpoint-<step>`` atomically and point ``latest`` at it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / checkpoint_name(step)
    tmp = out_dir / f"{TMP_PREFIX}{step}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        save_file(trainable_to_cpu(weights), str(tmp / WEIGHTS), metadata={"step": str(step)})
        torch.save(optimizer, tmp / OPTIMIZER)
        torch.save(scheduler, tmp / SCHEDULER)
        torch.save(rng, tmp / RNG)
        (tmp / STATE).write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        for name in FILES:
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
        if target.exists():  # the same step saved again (a rerun after a resume)
            trash = out_dir / f"{TMP_PREFIX}old-{step}-{uuid.uuid4().hex[:8]}"
            os.rename(target, trash)
            os.rename(tmp, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if update_latest:
        atomic_write(out_dir / LATEST, target.name + "\n")
    return target


def remove_stale_temp(out_dir: str | Path) -> list[Path]:
    """Delete leftover ``.tmp-checkpoint-*`` folders (from a crash mid-save)."""
    removed = []
    for p in Path(out_dir).glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def list_checkpoints(out_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, by step (temporary and partial folders are ignored)."""
    out = []
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return out
    for p in out_dir.iterdir():
        m = _NAME.match(p.name)
        if m and is_complete(p):
            out.append((int(m.group(1)), p))
    return sorted(out)


def read_pointer(out_dir: str | Path, name: str = LATEST) -> Path | None:
    """The complete checkpoint a pointer file (``latest``, ``best``) names, or ``None``.

    The pointer must name a folder directly in ``out_dir``; anything else (``..``, an
    absolute path, a separator) raises :class:`~affectgpt.paths.UnsafeNameError`.
    """
    pointer = Path(out_dir) / name
    if not pointer.is_file():
        return None
    folder = pointer.read_text(encoding="utf-8").strip()
    if not folder:
        return None
    target = join_inside(out_dir, folder, what="checkpoint folder name", path=pointer, line=1)
    return target if is_complete(target) else None


def find_latest(out_dir: str | Path) -> Path | None:
    """The checkpoint ``latest`` names, else the complete checkpoint with the highest step."""
    pointed = read_pointer(out_dir, LATEST)
    found = list_checkpoints(out_dir)
    if pointed is not None:
        return pointed
    return found[-1][1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, given the folder itself or a run folder (its latest)."""
    path = Path(path)
    if is_complete(path):
        return path
    latest = find_latest(path)
    if latest is None:
        raise FileNotFoundError(f"no complete checkpoint at {path}")
    return latest


def load_trainable(path: str | Path) -> dict[str, torch.Tensor]:
    """Trainable weights from a ``.safetensors`` file, a checkpoint folder, a run folder
    (its latest checkpoint) or a model folder of ``AffectGPT.save_pretrained``
    (``adapters.safetensors``)."""
    path = Path(path)
    if path.is_file():
        return load_file(str(path))
    for name in (WEIGHTS, PRETRAINED_WEIGHTS):
        if (path / name).is_file():
            return load_file(str(path / name))
    return load_file(str(resolve_checkpoint(path) / WEIGHTS))


def load_state(path: Path) -> dict[str, Any]:
    return json.loads((path / STATE).read_text(encoding="utf-8"))


def prune(out_dir: str | Path, keep_last: int | None, protect: set[Path] = frozenset()) -> list[Path]:
    """Delete all but the ``keep_last`` newest complete checkpoints, never one in ``protect``."""
    if keep_last is None:
        return []
    found = list_checkpoints(out_dir)
    keep = {p.resolve() for _, p in found[-keep_last:]} | {p.resolve() for p in protect}
    removed = []
    for _, p in found:
        if p.resolve() not in keep:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed
