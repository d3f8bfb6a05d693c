"""Cartoon talking faces drawn with Pillow for the synthetic corpus.

A face is described by three JSON-serialisable dicts, all drawn from seeded random
generators by :mod:`affectgpt.data.synthetic`:

- ``appearance`` (per clip): skin, hair, eye and shirt colours, hair style, face size and
  position, background. Random so that a model cannot key on trivia.
- ``motion`` (per clip): head sway, blinks, a generic talking animation (not lip-synced,
  so the picture never carries the speech prosody) and small idle expression drift.
- ``expression`` (per clip): the target action parameters of the emotion (zero for a
  neutral face), the peak intensity and when the expression ramps up.

:func:`render_clip_frames` turns them into frames; the same dicts give the same pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw

# Action parameters (roughly -1..1) and their value at full intensity per emotion.
ACTIONS = ("smile", "mouth_open", "mouth_width", "teeth", "brow_raise", "brow_tilt",
           "brow_together", "eye_open", "cheek", "nose", "lip_raise", "flush", "tears",
           "head_drop")
EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"smile": 1.0, "mouth_open": 0.45, "teeth": 1.0, "eye_open": -0.35, "cheek": 1.0,
              "brow_raise": 0.15},
    "sad": {"smile": -0.85, "brow_tilt": 1.0, "brow_raise": 0.1, "eye_open": -0.45,
            "tears": 1.0, "head_drop": 1.0},
    "angry": {"smile": -0.35, "mouth_open": 0.35, "mouth_width": 0.15, "teeth": 1.0,
              "brow_raise": -0.7, "brow_tilt": -1.0, "brow_together": 1.0, "eye_open": 0.15,
              "flush": 1.0},
    "surprised": {"mouth_open": 1.0, "mouth_width": -0.55, "brow_raise": 1.0, "eye_open": 1.0,
                  "head_drop": -0.6},
    "worried": {"smile": -0.3, "mouth_open": 0.15, "mouth_width": 0.5, "brow_raise": 0.55,
                "brow_tilt": 0.9, "brow_together": 0.7, "eye_open": 0.55},
    "disgusted": {"smile": -0.4, "nose": 1.0, "lip_raise": 1.0, "eye_open": -0.45,
                  "brow_raise": -0.45, "brow_tilt": -0.3, "mouth_open": 0.1},
}

SKIN_TONES = ((255, 224, 196), (241, 194, 160), (224, 172, 125), (198, 134, 66),
              (141, 85, 36), (92, 56, 32))
HAIR_COLOURS = ((20, 15, 10), (60, 40, 25), (110, 70, 30), (200, 170, 100), (150, 150, 150),
                (140, 50, 20))
IRIS_COLOURS = ((70, 45, 20), (40, 90, 160), (60, 120, 70), (30, 25, 20))
HAIR_STYLES = ("short", "long", "bald")


def _jitter(rng: np.random.Generator, colour, amount: int) -> list[int]:
    return [int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour]


def _random_colour(rng: np.random.Generator, lo: int = 30, hi: int = 230) -> list[int]:
    return [int(v) for v in rng.integers(lo, hi + 1, size=3)]


def sample_appearance(rng: np.random.Generator) -> dict:
    """Random look of one clip (sizes are fractions of the frame size)."""
    return {
        "skin": _jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 12),
        "hair": _jitter(rng, HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], 15),
        "hair_style": HAIR_STYLES[rng.integers(len(HAIR_STYLES))],
        "iris": _jitter(rng, IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))], 15),
        "shirt": _random_colour(rng),
        "bg_top": _random_colour(rng),
        "bg_bottom": _random_colour(rng),
        "window": bool(rng.random() < 0.5),
        "window_box": [round(float(v), 3) for v in rng.uniform(0.0, 1.0, size=4)],
        "window_colour": _random_colour(rng, 120, 255),
        "face_x": round(float(rng.uniform(0.4, 0.6)), 4),
        "face_y": round(float(rng.uniform(0.4, 0.5)), 4),
        "face_scale": round(float(rng.uniform(0.2, 0.25)), 4),
        "face_ratio": round(float(rng.uniform(1.2, 1.38)), 4),
        "eye_size": round(float(rng.uniform(0.85, 1.15)), 4),
        "eye_gap": round(float(rng.uniform(0.34, 0.42)), 4),
        "mouth_size": round(float(rng.uniform(0.85, 1.15)), 4),
        "brow_width": round(float(rng.uniform(0.05, 0.1)), 4),
    }


def sample_motion(rng: np.random.Generator, duration: float) -> dict:
    """Random head sway, blinks and idle drift of one clip (independent of the emotion)."""
    n_blinks = int(rng.integers(1, 3 + int(duration // 2.5)))
    return {
        "sway_x": [round(float(v), 4) for v in (rng.uniform(0.005, 0.02), rng.uniform(0.1, 0.5),
                                                 rng.uniform(0, 2 * math.pi))],
        "sway_y": [round(float(v), 4) for v in (rng.uniform(0.003, 0.012),
                                                 rng.uniform(0.15, 0.6),
                                                 rng.uniform(0, 2 * math.pi))],
        "roll": [round(float(v), 4) for v in (rng.uniform(0.5, 4.0), rng.uniform(0.1, 0.4),
                                               rng.uniform(0, 2 * math.pi))],
        "blinks": sorted(round(float(t), 3) for t in rng.uniform(0.2, duration - 0.2,
                                                                  size=n_blinks)),
        "drift_smile": round(float(rng.uniform(-0.08, 0.08)), 4),
        "drift_brow": round(float(rng.uniform(-0.08, 0.08)), 4),
        "talk_rate": round(float(rng.uniform(3.5, 5.5)), 3),
        "talk_amount": round(float(rng.uniform(0.12, 0.3)), 3),
    }


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def expression_at(t: float, expression: dict, motion: dict, talk: tuple[float, float]) -> dict:
    """Action parameters at time ``t`` (seconds): emotion ramp + idle drift + talking."""
    level = expression.get("peak", 0.0) * _smoothstep(
        (t - expression.get("onset", 0.0)) / max(expression.get("ramp", 1.0), 1e-3))
    targets = expression.get("targets", {})
    values = {k: level * targets.get(k, 0.0) for k in ACTIONS}
    values["smile"] += motion["drift_smile"] * math.sin(0.7 * t)
    values["brow_raise"] += motion["drift_brow"] * math.sin(0.5 * t + 1.0)
    start, end = talk
    if start <= t <= end:
        phase = motion["talk_rate"] * (t - start) * 2 * math.pi
        values["mouth_open"] += motion["talk_amount"] * (0.5 - 0.5 * math.cos(phase))
    blink = 1.0
    for bt in motion["blinks"]:
        d = abs(t - bt)
        if d < 0.06:
            blink = min(blink, 0.1)
        elif d < 0.16:
            blink = min(blink, 0.55)
    values["blink"] = blink
    return values


def _pose_at(t: float, motion: dict) -> tuple[float, float, float]:
    ax, fx, px = motion["sway_x"]
    ay, fy, py = motion["sway_y"]
    ar, fr, pr = motion["roll"]
    return (ax * math.sin(2 * math.pi * fx * t + px), ay * math.sin(2 * math.pi * fy * t + py),
            ar * math.sin(2 * math.pi * fr * t + pr))


def _mix(a, b, w: float) -> tuple[int, int, int]:
    return tuple(int(round(x + (y - x) * w)) for x, y in zip(a, b))


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 28,
             a0: float = 0.0, a1: float | None = None) -> list[tuple[float, float]]:
    """Points of an ellipse (closed when ``a1`` is None) or of an arc from a0 to a1."""
    if a1 is None:
        angles = [2 * math.pi * i / n for i in range(n)]
    else:
        angles = [a0 + (a1 - a0) * i / (n - 1) for i in range(n)]
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


def _quad(p0, p1, p2, n: int = 12) -> list[tuple[float, float]]:
    """Points of the quadratic Bezier curve p0 -> p2 with control point p1."""
    out = []
    for i in range(n):
        s = i / (n - 1)
        out.append(((1 - s) ** 2 * p0[0] + 2 * (1 - s) * s * p1[0] + s * s * p2[0],
                    (1 - s) ** 2 * p0[1] + 2 * (1 - s) * s * p1[1] + s * s * p2[1]))
    return out


def render_background(appearance: dict, size: int) -> Image.Image:
    """The static backdrop of a clip: vertical gradient and an optional window."""
    top = np.array(appearance["bg_top"], dtype=np.float32)
    bottom = np.array(appearance["bg_bottom"], dtype=np.float32)
    w = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    grad = np.broadcast_to(top * (1 - w) + bottom * w, (size, size, 3))
    image = Image.fromarray(np.ascontiguousarray(grad).astype(np.uint8), "RGB")
    if appearance["window"]:
        x0, y0, ww, wh = appearance["window_box"]
        box = (int(x0 * 0.7 * size), int(y0 * 0.4 * size),
               int((x0 * 0.7 + 0.12 + 0.18 * ww) * size), int((y0 * 0.4 + 0.15 + 0.2 * wh) * size))
        draw = ImageDraw.Draw(image)
        draw.rectangle(box, fill=tuple(appearance["window_colour"]),
                       outline=(60, 60, 60), width=max(1, size // 100))
        mx = (box[0] + box[2]) // 2
        draw.line([(mx, box[1]), (mx, box[3])], fill=(60, 60, 60), width=max(1, size // 150))
    return image


def render_face(background: Image.Image, appearance: dict, values: dict,
                pose: tuple[float, float, float], supersample: int = 2) -> Image.Image:
    """Draw one frame: the face with action ``values`` at head ``pose``.

    ``background`` is the backdrop at ``supersample`` times the output size; the frame is
    drawn at that size and reduced (a cheap anti-aliasing).
    """
    ss = supersample
    big = background.width
    image = background.copy()
    draw = ImageDraw.Draw(image)
    dx, dy, roll = pose
    scale = appearance["face_scale"] * big
    cx = (appearance["face_x"] + dx) * big
    cy = (appearance["face_y"] + dy + 0.025 * values["head_drop"]) * big
    cos_r, sin_r = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    hr = appearance["face_ratio"]

    def tf(points):
        return [(cx + scale * (x * cos_r - y * sin_r), cy + scale * (x * sin_r + y * cos_r))
                for x, y in points]

    def width(w: float) -> int:
        return max(1, int(round(w * scale)))

    skin = tuple(appearance["skin"])
    skin = _mix(skin, (215, 55, 45), 0.35 * max(0.0, values["flush"]))
    dark = _mix(skin, (0, 0, 0), 0.45)
    hair = tuple(appearance["hair"])
    style = appearance["hair_style"]
    v = values

    # Hair behind the head, body, ears, head.
    if style == "long":
        draw.polygon(tf(_ellipse(0, 0.35, 1.25, hr + 0.55)), fill=hair)
    draw.polygon(tf([(-0.35, hr - 0.4), (0.35, hr - 0.4), (0.4, hr + 0.5), (-0.4, hr + 0.5)]),
                 fill=dark)
    draw.polygon(tf([(-0.5, hr + 0.35), (0.5, hr + 0.35), (2.4, hr + 1.2), (2.6, hr + 4),
                     (-2.6, hr + 4), (-2.4, hr + 1.2)]), fill=tuple(appearance["shirt"]))
    for side in (-1, 1):
        draw.polygon(tf(_ellipse(side * 0.97, -0.05, 0.14, 0.24, 14)), fill=skin, outline=dark)
    draw.polygon(tf(_ellipse(0, 0, 1.0, hr, 40)), fill=skin, outline=dark)
    if style != "bald":
        cap = _ellipse(0, 0, 1.06, hr + 0.06, 20, math.pi * 1.02, math.pi * 1.98)
        fringe = _quad((0.98, -0.55 * hr), (0.1, -0.85 * hr), (-0.98, -0.55 * hr), 10)
        draw.polygon(tf(cap + fringe), fill=hair)

    # Cheeks: blush for flush/smile, raised-cheek lines for a smile.
    for side in (-1, 1):
        if v["cheek"] > 0.3:
            draw.line(tf(_quad((side * 0.55, 0.02), (side * 0.4, 0.1 + 0.05 * v["cheek"]),
                               (side * 0.22, 0.02))), fill=dark, width=width(0.025))
            draw.polygon(tf(_ellipse(side * 0.55, 0.28, 0.17, 0.1, 12)),
                         fill=_mix(skin, (235, 110, 110), 0.35 * min(1.0, v["cheek"])))

    # Eyes.
    gap = appearance["eye_gap"]
    esize = appearance["eye_size"]
    open_ = max(0.05, (1.0 + 0.6 * v["eye_open"]) * v["blink"])
    for side in (-1, 1):
        ex, ey = side * gap, -0.15
        rx, ry = 0.17 * esize, 0.085 * esize * open_
        draw.polygon(tf(_ellipse(ex, ey, rx, ry, 20)), fill=(245, 245, 240), outline=dark)
        ir = min(0.075 * esize, ry * 0.95)
        if ir > 0.01:
            draw.polygon(tf(_ellipse(ex, ey, ir, ir, 14)), fill=tuple(appearance["iris"]))
            draw.polygon(tf(_ellipse(ex, ey, ir * 0.45, ir * 0.45, 10)), fill=(10, 10, 10))
        # Upper lid line.
        draw.line(tf(_ellipse(ex, ey, rx * 1.05, ry * 1.05 + 0.01, 12, math.pi, 2 * math.pi)),
                  fill=dark, width=width(0.03))

    # Eyebrows: raise lifts both ends, tilt lifts the inner end (sad, worried) or lowers it
    # (angry), together pulls the inner ends towards the nose.
    base = -0.42 - 0.12 * v["brow_raise"]
    for side in (-1, 1):
        inner = (side * (0.16 - 0.05 * max(0.0, v["brow_together"])),
                 base - 0.1 * v["brow_tilt"])
        outer = (side * 0.62, base + 0.02 + 0.03 * v["brow_tilt"])
        mid = (side * 0.4, base - 0.08 - 0.02 * v["brow_raise"])
        draw.line(tf(_quad(inner, mid, outer, 8)), fill=_mix(hair, (0, 0, 0), 0.45),
                  width=width(appearance["brow_width"]), joint="curve")

    # Nose and disgust wrinkles.
    draw.line(tf([(0.02, -0.1), (0.09, 0.28 - 0.04 * v["nose"]), (-0.06, 0.32 - 0.04 * v["nose"])]),
              fill=dark, width=width(0.03))
    if v["nose"] > 0.25:
        for k in range(3):
            y = -0.08 + 0.06 * k
            draw.line(tf([(-0.1, y), (0.0, y - 0.03), (0.1, y)]), fill=dark, width=width(0.02))

    # Mouth: corners rise with smile; opening shows a dark interior and maybe teeth.
    msize = appearance["mouth_size"]
    half = 0.32 * msize * (1 + 0.3 * v["mouth_width"])
    my = 0.62
    corner_l = my - 0.12 * v["smile"]
    corner_r = my - 0.12 * v["smile"] - 0.12 * v["lip_raise"]
    opening = max(0.0, v["mouth_open"]) * 0.38
    lip = _mix(skin, (120, 20, 35), 0.7)
    upper = _quad((-half, corner_l), (0, my - opening * 0.35 - 0.06 * v["lip_raise"]),
                  (half, corner_r), 12)
    lower = _quad((half, corner_r), (0, my + opening + 0.14 * v["smile"]), (-half, corner_l), 12)
    if opening > 0.03:
        draw.polygon(tf(upper + lower), fill=(60, 15, 20), outline=lip)
        if v["teeth"] > 0.5 and opening > 0.06:
            th = min(opening * 0.45, 0.07)
            teeth = _quad((-half * 0.8, corner_l + 0.01), (0, my - opening * 0.3 + th * 2),
                          (half * 0.8, corner_r + 0.01), 10)
            draw.polygon(tf(upper[1:-1] + teeth[::-1]), fill=(240, 240, 235))
        draw.line(tf(upper), fill=lip, width=width(0.05), joint="curve")
        draw.line(tf(lower), fill=lip, width=width(0.05), joint="curve")
    else:
        draw.line(tf(_quad((-half, corner_l), (0, my + 0.14 * v["smile"]), (half, corner_r))),
                  fill=lip, width=width(0.06), joint="curve")

    # Tears below the eyes.
    if v["tears"] > 0.2:
        for side in (-1, 1):
            x = side * (gap + 0.04)
            length = 0.45 * v["tears"]
            draw.line(tf([(x, -0.06), (x + side * 0.02, -0.06 + length)]), fill=(120, 180, 235),
                      width=width(0.045))
            draw.polygon(tf(_ellipse(x + side * 0.02, -0.04 + length, 0.04, 0.055, 10)),
                         fill=(120, 180, 235))

    if ss > 1:
        image = image.reduce(ss)
    return image


def render_clip_frames(appearance: dict, motion: dict, expression: dict, *, size: int,
                       fps: int, n_frames: int, talk: tuple[float, float],
                       supersample: int = 2) -> Iterator[Image.Image]:
    """Yield the ``n_frames`` RGB frames of one clip."""
    background = render_background(appearance, size * supersample)
    for i in range(n_frames):
        t = i / fps
        yield render_face(background, appearance, expression_at(t, expression, motion, talk),
                          _pose_at(t, motion), supersample)
