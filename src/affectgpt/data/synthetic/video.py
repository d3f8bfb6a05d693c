"""The picture of a clip: the drawn face's frames, its mouth moving while the person talks."""

from __future__ import annotations

from collections.abc import Iterator

from PIL import Image

from affectgpt.data import faces


def talk_window(plan: dict) -> tuple[float, float]:
    """When the drawn mouth moves: from the speech onset for the sentence's length at the
    speaker's own (neutral) rate, so the picture carries no prosody."""
    words = len(plan["subtitle_en"].split())
    start = plan["timing"]["speech_onset"]
    return start, start + words * 60.0 / plan["voice"]["speaker"]["speed"]


def render_frames(plan: dict, size: int, fps: int) -> Iterator[Image.Image]:
    """The clip's RGB frames as planned; the timing must be fixed by
    :func:`affectgpt.data.synthetic.audio.speak` first."""
    return faces.render_clip_frames(
        plan["face"]["appearance"], plan["face"]["motion"], plan["face"]["expression"],
        size=size, fps=fps, n_frames=plan["timing"]["n_frames"], talk=talk_window(plan))
