"""Per-sample inputs and features of one frozen encoder: loaders (decode + preprocess),
live features, cached features, and building a manifest's cache (``affectgpt features``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from affectgpt.data.manifest import Sample, read_manifest
from affectgpt.encoders.registry import AUDIO_ENCODERS, ENCODERS, VIDEO_ENCODERS, load_encoder
from affectgpt.features.cache import BuildSummary, build_feature_cache
from affectgpt.media import MediaError, audio_clips, read_audio, read_frames


@dataclass
class AudioClipLoader:
    """Decode one sample's audio (its own audio file, else its video's track) into
    ``n_clips`` clips of ``clip_seconds``; runs in data-loader worker processes."""

    samples: dict[str, Sample]
    sample_rate: int = 16000
    n_clips: int = 8
    clip_seconds: float = 2.0

    def __call__(self, name: str) -> torch.Tensor:
        sample = self.samples[name]
        path = sample.audio or sample.video
        if not path:
            raise MediaError(f"<sample {name}>", "the manifest gives neither an audio nor a video file")
        wave = read_audio(path, self.sample_rate)
        return torch.from_numpy(audio_clips(wave, self.sample_rate, self.n_clips, self.clip_seconds))

    def parameters(self) -> dict:
        return {"sample_rate": self.sample_rate, "n_clips": self.n_clips, "clip_seconds": self.clip_seconds}


@dataclass
class FrameLoader:
    """Decode ``n_frames`` uniformly sampled frames of one sample's video and preprocess them
    for a video encoder (``transform``: its :meth:`~FrameEncoder.frame_transform`, the
    keyword arguments of :func:`~affectgpt.media.preprocess_frames`); runs in data-loader
    worker processes."""

    samples: dict[str, Sample]
    transform: dict
    n_frames: int = 8

    def __call__(self, name: str) -> torch.Tensor:
        from affectgpt.media.transforms import preprocess_frames

        sample = self.samples[name]
        if not sample.video:
            raise MediaError(f"<sample {name}>", "the manifest gives no video file")
        return preprocess_frames(read_frames(sample.video, self.n_frames), **self.transform)

    def parameters(self) -> dict:
        transform = {k: list(v) if isinstance(v, tuple) else v for k, v in self.transform.items()}
        return {"n_frames": self.n_frames, "frames": transform}


def make_loader(samples: dict[str, Sample], encoder) -> AudioClipLoader | FrameLoader:
    """The input loader an encoder needs: audio clips or preprocessed frames."""
    if encoder.modality == "audio":
        return AudioClipLoader(samples, sample_rate=encoder.sample_rate)
    return FrameLoader(samples, encoder.frame_transform())


def feature_fingerprint(encoder, encoder_name: str, loader: AudioClipLoader | FrameLoader) -> dict:
    """What a cache must match: the encoder's fingerprint and the input parameters."""
    return {"encoder": encoder.fingerprint(), "inputs": loader.parameters(), "encoder_name": encoder_name}


class LiveFeatures:
    """Features computed from the media at every call (what the reference code does each
    step): a loader (decode + preprocess, picklable) and a frozen encoder."""

    def __init__(self, loader: AudioClipLoader | FrameLoader, encoder, encoder_name: str = ""):
        self.loader = loader
        self.encoder = encoder  # a FrozenEncoder: calling it encodes audio clips or frames
        self.fingerprint = feature_fingerprint(encoder, encoder_name, loader)

    @classmethod
    def for_samples(cls, samples: dict[str, Sample], encoder, encoder_name: str) -> LiveFeatures:
        """With the loader the encoder needs (:func:`make_loader`)."""
        return cls(make_loader(samples, encoder), encoder, encoder_name)

    def __call__(self, name: str) -> torch.Tensor:
        return self.encoder(self.loader(name)).cpu()


class CachedFeatures:
    """Features read from a cache built by :func:`build_features`; refused when built with
    another encoder, weights or preprocessing. Samples missing from the cache are computed
    live when ``fallback`` is given, else raise KeyError naming the sample."""

    def __init__(self, cache_dir: str | Path, fingerprint: dict, fallback: LiveFeatures | None = None):
        from affectgpt.features.cache import FeatureCache

        self.cache = FeatureCache(cache_dir)
        self.cache.check(fingerprint)
        self.fingerprint = fingerprint
        self.fallback = fallback

    def __call__(self, name: str) -> torch.Tensor:
        if name in self.cache or self.fallback is None:
            return self.cache.get(name)
        return self.fallback(name)


def features(samples: list[Sample], encoder_name: str, cache_dir: str | Path | None = None,
             dtype: str = "float32", *, modality: str | None = None) -> LiveFeatures | CachedFeatures:
    """The features of ``samples`` by any encoder: from the cache at ``cache_dir`` when there
    is one (checked against the encoder), otherwise computed from the media. ``modality``
    (``"audio"``/``"video"``), when given, must be the encoder's."""
    encoder = load_encoder(encoder_name, dtype)
    if modality is not None and encoder.modality != modality:
        raise ValueError(f"encoder {encoder_name!r} is a {encoder.modality} encoder, not {modality}")
    live = LiveFeatures.for_samples({s.name: s for s in samples}, encoder, encoder_name)
    if cache_dir is not None and (Path(cache_dir) / "meta.json").is_file():
        return CachedFeatures(cache_dir, live.fingerprint, fallback=live)
    return live


def audio_features(samples: list[Sample], encoder_name: str, cache_dir: str | Path | None = None,
                   dtype: str = "float32") -> LiveFeatures | CachedFeatures:
    """The audio features of ``samples``: from the cache at ``cache_dir`` when there is one
    (checked against the encoder), otherwise computed from the media."""
    return features(samples, encoder_name, cache_dir, dtype, modality="audio")


def video_features(samples: list[Sample], encoder_name: str, cache_dir: str | Path | None = None,
                   dtype: str = "float32") -> LiveFeatures | CachedFeatures:
    """The per-frame video features of ``samples`` (cache or media, as :func:`audio_features`)."""
    return features(samples, encoder_name, cache_dir, dtype, modality="video")


def build_features(manifest: str | Path, encoder_name: str, out: str | Path, *, workers: int = 2,
                   shard_size: int = 64, fresh: bool = False, dtype: str = "float32",
                   progress: bool = True) -> BuildSummary:
    """Encode every clip of ``manifest`` with ``encoder_name`` (audio clips or video frames,
    according to the encoder) into the cache at ``out``."""
    samples = {s.name: s for s in read_manifest(manifest)}
    encoder = load_encoder(encoder_name, dtype)
    loader = make_loader(samples, encoder)
    fingerprint = feature_fingerprint(encoder, encoder_name, loader)
    return build_feature_cache(list(samples), loader, encoder, fingerprint, out,
                               workers=workers, shard_size=shard_size, fresh=fresh, progress=progress,
                               errors=(MediaError, FileNotFoundError))


__all__ = ["AUDIO_ENCODERS", "ENCODERS", "VIDEO_ENCODERS", "AudioClipLoader", "CachedFeatures",
           "FrameLoader", "LiveFeatures", "audio_features", "build_features",
           "feature_fingerprint", "features", "load_encoder", "make_loader", "video_features"]
