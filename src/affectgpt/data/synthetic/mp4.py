"""Writing a clip to MP4 (atomically) and reading back what a clip holds."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from affectgpt.io import atomic_path


def _video_codec() -> str:
    import av

    for name in ("libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # codec not built into this PyAV
            continue
    raise RuntimeError("PyAV has neither libx264 nor mpeg4 encoders")


def _x264_options() -> dict[str, str]:
    """libx264 settings. Its AVX-512 kernels read memory they never wrote, so the same
    frames encoded twice in one process differed; on CPUs with AVX-512 the encoder is held
    to its AVX2 kernels, which give the files an AVX2-only machine writes."""
    options = {"preset": "veryfast", "crf": "20"}
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return options
    if " avx512f" in flags:
        options["x264-params"] = "asm=AVX2"
    return options


def write_mp4(path: Path, frames, audio: np.ndarray, sample_rate: int, *, size: int, fps: int,
              comment: str = "") -> None:
    """Encode RGB ``frames`` (PIL images) and mono float ``audio`` into an MP4 at ``path``
    (H.264 or MPEG-4 video, AAC audio), atomically."""
    import av

    codec = _video_codec()
    with atomic_path(path, "wb") as handle:
        with av.open(handle, "w", format="mp4") as container:
            if comment:
                container.metadata["comment"] = comment
            vs = container.add_stream(codec, rate=fps)
            vs.width = vs.height = size
            vs.pix_fmt = "yuv420p"
            vs.codec_context.thread_count = 1
            vs.options = _x264_options() if codec == "libx264" else {"qscale": "3"}
            aus = container.add_stream("aac", rate=sample_rate)
            aus.layout = "mono"
            for i, image in enumerate(frames):
                frame = av.VideoFrame.from_image(image)
                frame.pts, frame.time_base = i, Fraction(1, fps)
                for packet in vs.encode(frame):
                    container.mux(packet)
            for packet in vs.encode():
                container.mux(packet)
            aframe = av.AudioFrame.from_ndarray(audio[None, :].astype(np.float32), format="fltp",
                                                layout="mono")
            aframe.sample_rate, aframe.pts = sample_rate, 0
            for packet in aus.encode(aframe):
                container.mux(packet)
            for packet in aus.encode():
                container.mux(packet)


def file_comment(path: Path) -> str | None:
    import av

    try:
        with av.open(str(path)) as container:
            return container.metadata.get("comment")
    except Exception:  # unreadable or partial file: regenerate
        return None


def probe_clip(path: str | Path) -> dict:
    """Decode a clip with PyAV: size, fps, frame count, duration, audio rate and RMS."""
    import av

    with av.open(str(path)) as container:
        v = container.streams.video[0]
        info = {"width": v.codec_context.width, "height": v.codec_context.height,
                "fps": float(v.average_rate) if v.average_rate else None,
                "video_codec": v.codec_context.name, "frames": 0}
        for _ in container.decode(video=0):
            info["frames"] += 1
        info["duration"] = info["frames"] / info["fps"] if info["fps"] else None
    with av.open(str(path)) as container:
        if not container.streams.audio:
            info.update(audio_rate=None, audio_seconds=0.0, audio_rms=0.0)
            return info
        a = container.streams.audio[0]
        chunks = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        info.update(audio_codec=a.codec_context.name, audio_rate=a.codec_context.sample_rate,
                    audio_seconds=len(samples) / a.codec_context.sample_rate,
                    audio_rms=float(np.sqrt(np.mean(np.square(samples)))) if len(samples) else 0.0)
    return info
