"""Real-footage stand-ins for the zero-shot tests: MP4 clips made of a real photograph (the
scikit-image sample images, e.g. the astronaut's face) with a slow zoom, and espeak-ng speech
(importable: tests/ is on sys.path through tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from speech_clips import AUDIO_RATE, mux_audio


def photo(name: str = "astronaut") -> np.ndarray:
    """A scikit-image sample photograph as ``[H, W, 3]`` uint8 RGB."""
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, -1)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def write_photo_clip(path: Path, image: np.ndarray, audio: np.ndarray | None, *,
                     seconds: float | None = None, fps: int = 8, size: int | None = None,
                     rotate: int = 0) -> Path:
    """An MP4 (H.264 + AAC) showing ``image`` with a slight zoom, and ``audio`` (16 kHz mono
    float32) unless None. ``rotate`` (90/270) stores the picture sideways with a display
    matrix that turns it upright again, as phones do for portrait video."""
    import av
    from PIL import Image

    if seconds is None:
        seconds = len(audio) / AUDIO_RATE + 0.3 if audio is not None else 2.0
    height, width = image.shape[:2]
    if size is not None:
        scale = size / max(height, width)
        width, height = (int(round(width * scale)) // 2 * 2, int(round(height * scale)) // 2 * 2)
    base = Image.fromarray(image).resize((width, height), Image.BICUBIC)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        stored_w, stored_h = (height, width) if rotate in (90, 270) else (width, height)
        video.width, video.height = stored_w, stored_h
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast"}
        if rotate:
            video.set_display_rotation(rotate)  # counter-clockwise, to show it upright
        sound = out.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio is not None \
            else None
        frames = max(1, int(round(seconds * fps)))
        for i in range(frames):
            zoom = 1.0 + 0.03 * i / frames
            crop_w, crop_h = width / zoom, height / zoom
            left, top = (width - crop_w) / 2, (height - crop_h) / 2
            frame = np.asarray(base.resize((width, height), Image.BICUBIC,
                                           box=(left, top, left + crop_w, top + crop_h)))
            if rotate:
                # stored turned clockwise by `rotate`; the display matrix turns it back
                frame = np.rot90(frame, k=-(rotate // 90))
            frame = np.ascontiguousarray(frame)
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            mux_audio(out, sound, audio)
    return path
