"""`affectgpt features`: run a frozen encoder once per clip of a manifest into a cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from affectgpt.data.manifest import Sample, read_manifest
from affectgpt.features.cache import BuildSummary, build_feature_cache
from affectgpt.media import MediaError, audio_clips, read_audio

AUDIO_ENCODERS = {
    "whisper-base": "the packaged Whisper-base, each 2 s clip encoded in Whisper's 30 s window",
    "whisper-base-clip": "the packaged Whisper-base, only the clip's own frames (about 18x faster)",
    "whisper:DIR": "any local transformers Whisper checkpoint folder",
}


def load_encoder(name: str, dtype: str = "float32"):
    """A frozen encoder by name (see :data:`AUDIO_ENCODERS`)."""
    from affectgpt.encoders.whisper import WhisperAudioEncoder

    if name == "whisper-base":
        return WhisperAudioEncoder.from_packaged(dtype=dtype)
    if name == "whisper-base-clip":
        return WhisperAudioEncoder.from_packaged(dtype=dtype, window="clip")
    if name.startswith("whisper:"):
        return WhisperAudioEncoder.from_pretrained(name.split(":", 1)[1], dtype=dtype)
    raise ValueError(f"unknown encoder {name!r}; available: {', '.join(AUDIO_ENCODERS)}")


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


def feature_fingerprint(encoder, encoder_name: str, loader: AudioClipLoader) -> dict:
    """What a cache must match: the encoder's fingerprint and the input parameters."""
    return {"encoder": encoder.fingerprint(), "inputs": loader.parameters(), "encoder_name": encoder_name}


class LiveFeatures:
    """Features computed on the fly from raw media (what the reference code does each step)."""

    def __init__(self, samples: dict[str, Sample], encoder, encoder_name: str):
        self.encoder = encoder
        self.loader = AudioClipLoader(samples, sample_rate=encoder.sample_rate)
        self.fingerprint = feature_fingerprint(encoder, encoder_name, self.loader)

    def __call__(self, name: str) -> torch.Tensor:
        return self.encoder.encode_audio(self.loader(name))


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


def audio_features(samples: list[Sample], encoder_name: str, cache_dir: str | Path | None = None,
                   dtype: str = "float32") -> LiveFeatures | CachedFeatures:
    """The audio features of ``samples``: from the cache at ``cache_dir`` when there is one
    (checked against the encoder), otherwise computed from the media."""
    live = LiveFeatures({s.name: s for s in samples}, load_encoder(encoder_name, dtype), encoder_name)
    if cache_dir is not None and (Path(cache_dir) / "meta.json").is_file():
        return CachedFeatures(cache_dir, live.fingerprint, fallback=live)
    return live


def build_features(manifest: str | Path, encoder_name: str, out: str | Path, *, workers: int = 2,
                   shard_size: int = 64, fresh: bool = False, dtype: str = "float32",
                   progress: bool = True) -> BuildSummary:
    """Encode every clip of ``manifest`` with ``encoder_name`` into the cache at ``out``."""
    samples = {s.name: s for s in read_manifest(manifest)}
    encoder = load_encoder(encoder_name, dtype)
    if encoder.modality != "audio":
        raise ValueError(f"encoder {encoder_name!r} is not an audio encoder")
    loader = AudioClipLoader(samples, sample_rate=encoder.sample_rate)
    fingerprint = feature_fingerprint(encoder, encoder_name, loader)
    return build_feature_cache(list(samples), loader, encoder.encode_audio, fingerprint, out,
                               workers=workers, shard_size=shard_size, fresh=fresh, progress=progress,
                               errors=(MediaError, FileNotFoundError))
