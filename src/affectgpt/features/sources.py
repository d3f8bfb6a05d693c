"""Feature sources for a model: from a manifest and a :class:`ModelConfig` to
``{"video": name -> tensor, "audio": name -> tensor}``.

- :class:`FeatureSettings`: cache or live, where the caches live, workers, dtype, what to do
  with unreadable media;
- :func:`cache_folder_name` / :func:`default_cache_dirs`: the one place cache folders are
  named (``<root>/<encoder name made a folder name>``);
- :class:`ModelEncoders`: the frozen encoders a config names (loaded on first use and
  checked against the branch sizes); :meth:`ModelEncoders.sources` builds or completes a
  cache per encoder and gives the sources, :meth:`ModelEncoders.clip_features` the
  features of one file.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from affectgpt.data.collate import OptionalMedia
from affectgpt.data.manifest import Sample
from affectgpt.model.config import ConfigError, ModelConfig

__all__ = ["MODALITIES", "FeatureSettings", "ModelEncoders", "SampleMediaError",
           "cache_folder_name", "default_cache_dirs"]

MODALITIES = ("video", "audio")


class SampleMediaError(RuntimeError):
    """Samples whose media cannot be read (listed with the file and the reason)."""

    def __init__(self, failures: Mapping[str, str], total: int, hint: str = ""):
        self.failures = dict(failures)
        lines = [f"  {name}: {reason}" for name, reason in list(self.failures.items())[:10]]
        more = len(self.failures) - len(lines)
        super().__init__(f"{len(self.failures)} of {total} samples cannot be read:\n"
                         + "\n".join(lines) + (f"\n  ... and {more} more" if more > 0 else "")
                         + (f"\n{hint}" if hint else ""))


@dataclass
class FeatureSettings:
    """Where a manifest's features come from.

    ``cache`` (default True): build (or complete) a feature cache per encoder and read
    it; False computes features from the media at every use. ``root``: the caches'
    parent folder (default ``<manifest dir>/features``; one subfolder per encoder, the
    folder ``affectgpt features --out`` would use). ``workers``: decoding processes
    while building. ``dtype``: the encoders' weights. ``skip_bad_media``: leave samples
    whose media cannot be read out of training (listed in the results) instead of
    stopping; a clip without an audio track is never bad, it is a sample without audio.
    """

    cache: bool = True
    root: str | None = None
    workers: int = 0
    dtype: str = "float32"
    skip_bad_media: bool = False
    progress: bool = True


def cache_folder_name(encoder: str) -> str:
    """A folder name for an encoder name (``whisper:/models/x`` -> ``whisper_models_x``)."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", encoder).strip("_") or "encoder"


def default_cache_dirs(config: ModelConfig, manifest: str | Path | None = None,
                       root: str | Path | None = None) -> dict[str, Path]:
    """``{modality: <root or <manifest dir>/features>/<encoder folder name>}``."""
    if root is None and manifest is None:
        raise ValueError("default_cache_dirs needs a manifest or a root folder")
    base = Path(root) if root else Path(manifest).resolve().parent / "features"
    return {m: base / cache_folder_name(getattr(config, m).encoder or m) for m in MODALITIES}


class ModelEncoders:
    """The frozen encoders named by ``config`` (loaded on first use, never trained).

    ``encoder(modality)`` checks that the encoder's output fits the branch
    (``feature_dim``, tokens per frame / clip); frames and clips per sample follow the
    config (``video.frames``, ``audio.clips``).
    """

    def __init__(self, config: ModelConfig, *, dtype: str = "float32",
                 device: torch.device | str | None = None):
        self.config = config
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._encoders: dict[str, Any] = {}

    def name(self, modality: str) -> str:
        return getattr(self.config, modality).encoder or ""

    def encoder(self, modality: str):
        """The loaded encoder of ``modality`` (``ConfigError`` when the config names none
        that :func:`~affectgpt.encoders.registry.load_encoder` knows or its size differs)."""
        if modality in self._encoders:
            return self._encoders[modality]
        from affectgpt.encoders.registry import ENCODERS, load_encoder

        branch = getattr(self.config, modality)
        name = branch.encoder
        try:
            if not name:
                raise ValueError("no encoder")
            encoder = load_encoder(name, self.dtype)
        except ValueError as exc:
            raise ConfigError(
                f"{modality}.encoder {name!r} of model config {self.config.name!r} is not a "
                f"frozen encoder ({exc}); set it to one of: {', '.join(ENCODERS)} (e.g. "
                f"--set {modality}.encoder=...) with {modality}.feature_dim matching") from None
        if encoder.modality != modality:
            raise ConfigError(f"{modality}.encoder {name!r} is a {encoder.modality} encoder")
        tokens = branch.tokens_per_position
        if encoder.dim != branch.feature_dim or encoder.tokens_per_clip != tokens:
            raise ConfigError(
                f"{modality}.encoder {name!r} gives {encoder.tokens_per_clip} x {encoder.dim} "
                f"features per position but the {modality} branch expects {tokens} x "
                f"{branch.feature_dim}: set {modality}.feature_dim={encoder.dim} and "
                f"{'video.tokens_per_frame' if modality == 'video' else 'audio.tokens_per_clip'}"
                f"={encoder.tokens_per_clip}")
        encoder = encoder.to(self.device)
        self._encoders[modality] = encoder
        return encoder

    def loader(self, modality: str, samples: Mapping[str, Sample]):
        """The decode + preprocess step of ``modality`` for ``samples``."""
        from affectgpt.features.jobs import AudioClipLoader, FrameLoader

        encoder = self.encoder(modality)
        if modality == "audio":
            return AudioClipLoader(dict(samples), sample_rate=encoder.sample_rate,
                                   n_clips=self.config.audio.clips)
        return FrameLoader(dict(samples), encoder.frame_transform(),
                           n_frames=self.config.video.frames)

    def live(self, modality: str, samples: Mapping[str, Sample]):
        """:class:`~affectgpt.features.jobs.LiveFeatures` of ``modality`` for ``samples``."""
        from affectgpt.features.jobs import LiveFeatures

        return LiveFeatures(self.loader(modality, samples), self.encoder(modality),
                            self.name(modality))

    def has_file(self, modality: str, sample: Sample) -> bool:
        return bool(sample.video) if modality == "video" else bool(sample.audio or sample.video)

    def sources(self, samples: Sequence[Sample], settings: FeatureSettings | None = None,
                cache_dirs: Mapping[str, str | os.PathLike] | None = None, *,
                build: bool = True) -> tuple[dict[str, OptionalMedia], dict[str, Any]]:
        """Feature sources ``{"video": ..., "audio": ...}`` for ``samples`` and a report.

        With ``settings.cache`` each modality's cache (``cache_dirs[modality]``) is built
        or completed first; samples the cache could not encode are computed live when
        asked for (so their error surfaces with the file named). The report lists per
        modality the encoder, cache folder, seconds, and the samples whose media failed
        (``bad``: other than a missing audio track). ``build=False`` only reads caches
        another process built (the other ranks of a distributed run).
        """
        from affectgpt.features.cache import build_feature_cache, iter_failures
        from affectgpt.features.jobs import CachedFeatures
        from affectgpt.media import MediaError

        settings = settings or FeatureSettings()
        by_name = {s.name: s for s in samples}
        sources: dict[str, OptionalMedia] = {}
        report: dict[str, Any] = {}
        for modality in MODALITIES:
            started = time.perf_counter()
            live = self.live(modality, by_name)
            source: Callable[[str], torch.Tensor] = live
            entry: dict[str, Any] = {"encoder": self.name(modality), "cache": None}
            if settings.cache and cache_dirs and cache_dirs.get(modality):
                folder = Path(cache_dirs[modality])
                names = [s.name for s in samples if self.has_file(modality, s)]
                if build:
                    built = build_feature_cache(
                        names, live.loader, live.encoder, live.fingerprint, folder,
                        workers=settings.workers, progress=settings.progress,
                        errors=(MediaError, FileNotFoundError))
                    entry.update(encoded=built.encoded, cached=built.skipped)
                source = CachedFeatures(folder, live.fingerprint, fallback=live)
                no_stream, bad = [], {}
                for failure in iter_failures(folder):
                    name = failure["name"]
                    # a video without an audio track is a sample without audio; a separate
                    # audio file that has none is a bad file
                    if failure.get("missing_stream") == modality and not (
                            modality == "audio" and by_name[name].audio):
                        no_stream.append(name)
                    else:
                        bad[name] = failure["reason"]
                entry.update(cache=str(folder), no_stream=sorted(no_stream), bad=bad)
            entry["seconds"] = round(time.perf_counter() - started, 3)
            sources[modality] = OptionalMedia(source, by_name, modality,
                                              missing=entry.get("no_stream", ()))
            report[modality] = entry
        return sources, report

    def clip_features(self, path: str | os.PathLike,
                      ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(video [T, ...] or None, audio [A, D] or None)`` of one media file: None for
        a file without that stream (a silent video, an audio file)."""
        from affectgpt.media import EmptyMediaError, NoAudioStreamError, NoVideoStreamError

        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such media file: {path}")
        sample = {"clip": Sample(name="clip", video=path)}
        out: list[torch.Tensor | None] = []
        for modality, absent in (("video", NoVideoStreamError), ("audio", NoAudioStreamError)):
            try:
                out.append(self.live(modality, sample)("clip"))
            except absent:
                out.append(None)
        if out[0] is None and out[1] is None:
            raise EmptyMediaError(path, "neither a video nor an audio stream")
        return out[0], out[1]
