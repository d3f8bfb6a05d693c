"""The frozen encoders by name: what ``video.encoder`` / ``audio.encoder`` of a model config
and ``affectgpt features --encoder`` accept. Each is imported only when asked for."""

from __future__ import annotations

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
