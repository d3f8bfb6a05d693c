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


def build_features(manifest: str | Path, encoder_name: str, out: str | Path, *, workers: int = 2,
                   shard_size: int = 64, fresh: bool = False, dtype: str = "float32",
                   progress: bool = True) -> BuildSummary:
    """Encode every clip of ``manifest`` with ``encoder_name`` into the cache at ``out``."""
    samples = {s.name: s for s in read_manifest(manifest)}
    encoder = load_encoder(encoder_name, dtype)
    if encoder.modality != "audio":
        raise ValueError(f"encoder {encoder_name!r} is not an audio encoder")
    loader = AudioClipLoader(samples, sample_rate=encoder.sample_rate)
    fingerprint = {"encoder": encoder.fingerprint(), "inputs": loader.parameters(),
                   "encoder_name": encoder_name}
    return build_feature_cache(list(samples), loader, encoder.encode_audio, fingerprint, out,
                               workers=workers, shard_size=shard_size, fresh=fresh, progress=progress,
                               errors=(MediaError, FileNotFoundError))
