"""`affectgpt features`: run a frozen encoder once per clip of a manifest into a cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from affectgpt.data.manifest import Sample, read_manifest
from affectgpt.features.cache import BuildSummary, build_feature_cache
from affectgpt.media import MediaError, audio_clips, read_audio, read_frames

AUDIO_ENCODERS = {
    "whisper-base": "the packaged Whisper-base, each 2 s clip encoded in Whisper's 30 s window",
    "whisper-base-clip": "the packaged Whisper-base, only the clip's own frames (about 18x faster)",
    "whisper:DIR": "any local transformers Whisper checkpoint folder",
    "imagebind-audio[:PTH]": "ImageBind-huge audio (the paper's), 1024-d per 2 s clip, from the "
                             "official imagebind_huge.pth (default <cache>/models/imagebind_huge.pth)",
    "hubert:DIR": "a local transformers HuBERT folder, mean-pooled per 2 s clip",
}
VIDEO_ENCODERS = {
    "eva-vit-g+blip2-qformer:DIR": "EVA ViT-g + BLIP-2 Q-Former (the paper's), 32x768 per frame, "
                                   "from a local BLIP-2 folder (the LLM is not loaded)",
    "clip:DIR": "a local transformers CLIP folder, the pooled (projected) embedding per frame",
    "clip-patches:DIR": "a local transformers CLIP folder, last-layer patch tokens per frame",
    "face-cnn": "fer's mini-XCEPTION expression CNN on the face crop, 128-d per frame (CPU)",
}
#: every encoder name, audio and video
ENCODERS = {**AUDIO_ENCODERS, **VIDEO_ENCODERS}


def _path_of(name: str, prefix: str) -> str:
    path = name[len(prefix):]
    if not path:
        raise ValueError(f"encoder {name!r} needs a path: {prefix}PATH")
    return path


def load_encoder(name: str, dtype: str = "float32"):
    """A frozen encoder by name (see :data:`ENCODERS`; ``DIR``/``PTH`` are local paths)."""
    if name in ("whisper-base", "whisper-base-clip") or name.startswith("whisper:"):
        from affectgpt.encoders.whisper import WhisperAudioEncoder

        if name == "whisper-base":
            return WhisperAudioEncoder.from_packaged(dtype=dtype)
        if name == "whisper-base-clip":
            return WhisperAudioEncoder.from_packaged(dtype=dtype, window="clip")
        return WhisperAudioEncoder.from_pretrained(name.split(":", 1)[1], dtype=dtype)
    if name == "imagebind-audio" or name.startswith("imagebind-audio:"):
        from affectgpt.encoders.imagebind import ImageBindAudioEncoder
        from affectgpt.paths import cache_root

        path = (_path_of(name, "imagebind-audio:") if ":" in name
                else cache_root() / "models" / "imagebind_huge.pth")
        return ImageBindAudioEncoder.from_checkpoint(path, dtype=dtype)
    if name.startswith("hubert:"):
        from affectgpt.encoders.hubert import HubertAudioEncoder

        return HubertAudioEncoder.from_pretrained(_path_of(name, "hubert:"), dtype=dtype)
    if name.startswith("eva-vit-g+blip2-qformer:"):
        from affectgpt.encoders.blip2 import Blip2QFormerEncoder

        return Blip2QFormerEncoder.from_pretrained(_path_of(name, "eva-vit-g+blip2-qformer:"),
                                                   dtype=dtype)
    if name.startswith(("clip:", "clip-patches:")):
        from affectgpt.encoders.clip import CLIPFrameEncoder

        prefix = name.split(":", 1)[0]
        output = "patches" if prefix == "clip-patches" else "pooled"
        return CLIPFrameEncoder.from_pretrained(_path_of(name, prefix + ":"), dtype=dtype,
                                                output=output)
    if name == "face-cnn":
        from affectgpt.encoders.face import FaceCNNEncoder

        return FaceCNNEncoder.from_packaged(dtype=dtype)
    raise ValueError(f"unknown encoder {name!r}; available: {', '.join(ENCODERS)}")


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
    """Features computed on the fly from raw media (what the reference code does each step)."""

    def __init__(self, samples: dict[str, Sample], encoder, encoder_name: str):
        self.encoder = encoder  # a FrozenEncoder: calling it encodes audio clips or frames
        self.loader = make_loader(samples, encoder)
        self.fingerprint = feature_fingerprint(encoder, encoder_name, self.loader)

    def __call__(self, name: str) -> torch.Tensor:
        return self.encoder(self.loader(name))


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
    live = LiveFeatures({s.name: s for s in samples}, encoder, encoder_name)
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
