"""A torch dataset over a manifest whose features come from raw media or a feature cache."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

from affectgpt.data.manifest import Sample

FeatureSource = Callable[[str], torch.Tensor]


class EmotionDataset(Dataset):
    """Items ``{name, audio, video, subtitle, target, labels}`` for the samples of a manifest.

    ``audio`` and ``video`` are feature sources (``name -> tensor``), e.g.
    :func:`affectgpt.features.jobs.audio_features`, which reads a feature cache when one
    exists and decodes the media otherwise; a modality without a source is ``None``.
    ``language`` picks the English or Chinese subtitle and target description.
    Errors of a sample (unreadable media) propagate with the sample's file named: the
    caller decides whether to skip and record it — nothing is substituted silently.
    """

    def __init__(self, samples: Sequence[Sample], *, audio: FeatureSource | None = None,
                 video: FeatureSource | None = None, language: str = "en"):
        if language not in ("en", "zh"):
            raise ValueError("language must be 'en' or 'zh'")
        self.samples = list(samples)
        self.audio, self.video, self.language = audio, video, language

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        s = self.samples[index]
        zh = self.language == "zh"
        return {
            "name": s.name,
            "audio": self.audio(s.name) if self.audio is not None else None,
            "video": self.video(s.name) if self.video is not None else None,
            "subtitle": s.subtitle_zh if zh else s.subtitle_en,
            "target": s.description_zh if zh else s.description_en,
            "labels": list(s.labels),
        }
