"""Reading a subset of a local checkpoint's tensors into a module, with strict checks.

Shared by the encoders that load part of a bigger checkpoint (BLIP-2's vision tower and
Q-Former without its LLM, CLIP's vision tower without its text tower, HuBERT without a CTC
head). Only the tensors a caller asks for are read: safetensors files are opened lazily,
and a sharded checkpoint's index is used to open only the shards that hold them;
``pytorch_model*.bin`` files are memory-mapped (``torch.load(mmap=True,
weights_only=True)``), so unwanted tensors are never read from disk.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from affectgpt.paths import UnsafeNameError, unsafe_name_reason

__all__ = [
    "CheckpointError",
    "build_uninitialised",
    "load_strict",
    "read_tensors",
    "read_weight_map",
    "require_model_folder",
    "torch_load_mmap",
    "weight_files",
]


class CheckpointError(ValueError):
    """A checkpoint lacks tensors the encoder needs, or holds them with the wrong shapes."""


def require_model_folder(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a folder that holds ``config.json``, or a clear FileNotFoundError."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise FileNotFoundError(f"{what}: no such folder {folder}")
    if not folder.is_dir():
        raise FileNotFoundError(f"{what}: {folder} is not a folder (expected a checkpoint folder)")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{what}: no config.json in {folder}")
    return folder


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a transformers checkpoint folder (safetensors preferred).

    Order of preference: ``model.safetensors``; the shards named by
    ``model.safetensors.index.json``; any ``*.safetensors``; ``pytorch_model.bin``; the
    shards named by ``pytorch_model.bin.index.json``; any ``pytorch_model*.bin``.
    """
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return _index_files(folder, index)
    found = sorted(folder.glob("*.safetensors"))
    if found:
        return found
    if (folder / "pytorch_model.bin").is_file():
        return [folder / "pytorch_model.bin"]
    index = folder / "pytorch_model.bin.index.json"
    if index.is_file():
        return _index_files(folder, index)
    found = sorted(folder.glob("pytorch_model*.bin"))
    if found:
        return found
    raise FileNotFoundError(f"no weights in {folder} (no *.safetensors or pytorch_model*.bin)")


def read_weight_map(index: Path) -> dict[str, Path]:
    """``{tensor name: shard path}`` from a sharded checkpoint's index (``weight_map``).

    Every shard must be named as a file directly in the index's folder: a name with ``..``,
    a separator, an absolute path or a control character raises
    :class:`~affectgpt.paths.UnsafeNameError` naming the index file and line, so a
    downloaded checkpoint cannot make the loader read files elsewhere.

    Raises:
        CheckpointError: the index is not JSON or has no ``weight_map`` of strings.
        UnsafeNameError: a shard name that would leave the folder.
    """
    index = Path(index)
    text = index.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{index}: not JSON ({exc.msg}, line {exc.lineno})") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(v, str) for v in weight_map.values()
    ):
        raise CheckpointError(f"{index}: expected a 'weight_map' object of tensor name -> "
                              "shard file name")
    shards: dict[str, Path] = {}
    for name in set(weight_map.values()):
        reason = unsafe_name_reason(name)
        if reason is not None:
            raise UnsafeNameError(name, reason, index, _line_of(text, name), "shard file name")
        shards[name] = index.parent / name
    return {key: shards[name] for key, name in weight_map.items()}


def _line_of(text: str, value: str) -> int | None:
    """The line of ``text`` (JSON) where the string ``value`` first appears, if found."""
    for encoded in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        pos = text.find(encoded)
        if pos >= 0:
            return text.count("\n", 0, pos) + 1
    return None


def _index_files(folder: Path, index: Path) -> list[Path]:
    files = sorted(set(read_weight_map(index).values()))
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{index.name} in {folder} names missing shards: {missing}")
    return files


def _index_map(folder: Path, files: list[Path]) -> dict[str, Path] | None:
    """key -> shard from a sharded checkpoint's index, when ``files`` are that index's shards."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            owner = read_weight_map(index)
            if set(owner.values()) == set(files):
                return owner
    return None


def read_tensors(folder: str | os.PathLike, keep: Callable[[str], bool]) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint folder whose names pass ``keep`` (names unchanged).

    Shards that hold no wanted tensor (per the index, when there is one) are not opened.
    """
    folder = Path(folder)
    files = weight_files(folder)
    owner = _index_map(folder, files)
    if owner is not None:
        files = sorted({path for key, path in owner.items() if keep(key)})
    out: dict[str, torch.Tensor] = {}
    for path in files:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():
                    if keep(key):
                        out[key] = handle.get_tensor(key)
        else:
            state = torch_load_mmap(path)
            for key, tensor in state.items():
                if keep(key):
                    out[key] = tensor.clone()  # detach from the memory map
            del state
    return out


def torch_load_mmap(path: str | os.PathLike):
    """``torch.load`` on CPU with ``weights_only=True``, memory-mapped (tensors are read only
    when used) unless the file has the legacy (non-zip) format."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as error:
        if "mmap" not in str(error):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def build_uninitialised(factory: Callable[[], nn.Module]) -> nn.Module:
    """``factory()`` with transformers' weight initialisation switched off (when available):
    every parameter is overwritten by :func:`load_strict` right after."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # pragma: no cover - other transformers versions
        no_init_weights = contextlib.nullcontext
    with no_init_weights():
        return factory()


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], *, source: str,
                optional: Iterable[str] = ()) -> None:
    """Copy ``state`` into ``module``'s parameters and persistent buffers, strictly.

    Every tensor of the module must be in ``state`` with the same shape (``optional``
    names may be absent: they are then set to zeros, e.g. a mask embedding that inference
    never uses), and ``state`` may hold nothing else. Values are cast to the module's dtype. Errors name ``source`` and list the
    offending tensors.
    """
    own = module.state_dict()
    optional = set(optional)
    missing = sorted(set(own) - set(state) - optional)
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
                   for k in set(own) & set(state) if tuple(state[k].shape) != tuple(own[k].shape))
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors: {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensors: {_short(unexpected)}")
    if wrong:
        problems.append(f"shape mismatch: {_short(wrong)}")
    if problems:
        raise CheckpointError(f"{source}: " + "; ".join(problems))
    with torch.no_grad():
        for key, target in own.items():
            if key in state:
                target.copy_(state[key].to(target.dtype))
            else:
                target.zero_()


def _short(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
