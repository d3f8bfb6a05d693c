"""Batching :class:`~affectgpt.data.dataset.EmotionDataset` items for :class:`AffectGPT`.

An item is ``{name, video, audio, subtitle, target, labels}`` where ``video`` is a
``[T, D]`` or ``[T, N, D]`` feature tensor (or None: the sample has no video) and
``audio`` a ``[A, D]`` tensor (or None: no audio track). :func:`collate_batch` stacks them
into the model's batch dict (see :mod:`affectgpt.model.affectgpt`)::

    video            [B, T, D] / [B, T, N, D] float32 (zeros where a sample has none), or None
    video_mask       [B] bool: which samples have video
    video_frame_mask [B, T] bool: valid frames (shorter sequences are zero-padded at the end)
    audio, audio_mask, audio_clip_mask   likewise for audio ([B, A, D])
    subtitle, target, name, labels       lists, passed through

A modality no sample of the batch has is ``None`` (its masks too). :class:`OptionalMedia`
turns a feature source's :class:`~affectgpt.media.NoAudioStreamError` (a video without an
audio track) into "no audio" for that sample; every other media error propagates with the
file named, so nothing is ever substituted silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

__all__ = ["OptionalMedia", "collate_batch"]


def _stack(values: list[torch.Tensor | None], name: str,
           ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """``(features [B, T, ...], has [B], position mask [B, T])`` or three Nones."""
    present = [v for v in values if v is not None]
    if not present:
        return None, None, None
    tail = tuple(present[0].shape[1:])
    for v in present:
        if v.ndim < 2 or tuple(v.shape[1:]) != tail:
            raise ValueError(f"{name} features of one batch must share their shape after the "
                             f"first (time) axis; got {tuple(present[0].shape)} and "
                             f"{tuple(v.shape)}")
    length = max(v.shape[0] for v in present)
    out = torch.zeros(len(values), length, *tail, dtype=torch.float32)
    has = torch.zeros(len(values), dtype=torch.bool)
    positions = torch.zeros(len(values), length, dtype=torch.bool)
    for i, v in enumerate(values):
        if v is None:
            continue
        if v.shape[0] == 0:
            raise ValueError(f"{name} features of sample {i} are empty")
        out[i, : v.shape[0]] = v.float()
        has[i] = True
        positions[i, : v.shape[0]] = True
    return out, has, positions


def collate_batch(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """EmotionDataset items -> an AffectGPT batch (see the module docstring)."""
    if not items:
        raise ValueError("cannot collate an empty list of items")
    batch: dict[str, Any] = {}
    for key, prefix in (("video", "video_frame_mask"), ("audio", "audio_clip_mask")):
        values = [None if item.get(key) is None else torch.as_tensor(item[key])
                  for item in items]
        features, has, positions = _stack(values, key)
        batch[key] = features
        batch[f"{key}_mask"] = has
        # all-True position masks carry no information; leave them out
        batch[prefix] = None if positions is None or bool(positions[has].all()) else positions
    batch["subtitle"] = [item.get("subtitle") or "" for item in items]
    targets = [item.get("target") for item in items]
    batch["target"] = None if any(t is None for t in targets) else [str(t) for t in targets]
    batch["name"] = [item.get("name") for item in items]
    batch["labels"] = [list(item.get("labels") or []) for item in items]
    return batch


class OptionalMedia:
    """Wrap a feature source (``name -> tensor``) so that a missing modality is ``None``.

    ``missing`` holds the names of samples that have no such modality: samples whose
    manifest row gives no file for it (``field`` is None: e.g. no video path), and
    samples whose file has no stream of it (:class:`~affectgpt.media.NoAudioStreamError`
    for audio read from a video file, :class:`~affectgpt.media.NoVideoStreamError`), and
    the names given as ``missing`` (known already, e.g. from a feature cache's failures).
    A separate audio file without audio is still an error (the manifest is wrong).
    """

    def __init__(self, source: Callable[[str], torch.Tensor], samples: Mapping[str, Any],
                 modality: str, missing: Iterable[str] = ()):
        from affectgpt.media import NoAudioStreamError, NoVideoStreamError

        if modality not in ("audio", "video"):
            raise ValueError("modality must be 'audio' or 'video'")
        self.source, self.samples, self.modality = source, samples, modality
        self.absent = NoAudioStreamError if modality == "audio" else NoVideoStreamError
        self.missing: set[str] = set(missing)

    def __call__(self, name: str) -> torch.Tensor | None:
        if name in self.missing:  # known already (e.g. from the feature cache's failures)
            return None
        sample = self.samples[name]
        if self.modality == "video" and not sample.video:
            self.missing.add(name)
            return None
        if self.modality == "audio" and not (sample.audio or sample.video):
            self.missing.add(name)
            return None
        try:
            return self.source(name)
        except self.absent:
            if self.modality == "audio" and sample.audio:
                raise  # an explicit audio file must hold audio
            self.missing.add(name)
            return None
