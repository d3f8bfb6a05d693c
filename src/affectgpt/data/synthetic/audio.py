"""The sound of a clip: its sentence spoken by espeak-ng, placed on a quiet noise floor."""

from __future__ import annotations

import math
import re

import numpy as np

from affectgpt.data import speech


def speak(plan: dict, duration: tuple[float, float], fps: int) -> tuple[np.ndarray, int]:
    """Synthesise the clip's speech and fix its final timing (stored in ``plan``)."""
    voice = plan["voice"]
    text = plan["subtitle_en"]
    if voice["emotion"] == "neutral":
        text = re.sub(r"[!?]", ".", text)  # no exclamatory intonation in a neutral voice
    else:
        text = speech.spoken_text(text, voice["final"])
    voice["spoken_text"] = text
    audio, rate = speech.synthesize(text, voice)
    onset = plan["timing"]["speech_onset"]
    lo, hi = duration
    room = hi - onset - 0.2
    if len(audio) / rate > room:  # too long for the longest clip: speak faster, once
        factor = len(audio) / rate / room
        voice["speed"] = int(min(450, math.ceil(voice["speed"] * factor * 1.05)))
        audio, rate = speech.synthesize(text, voice)
    speech_len = len(audio) / rate
    clip = max(plan["timing"]["target_duration"], onset + speech_len + 0.3)
    n_frames = max(1, min(int(round(clip * fps)), int(math.floor(hi * fps + 1e-6))))
    n_frames = max(n_frames, int(math.ceil(lo * fps - 1e-6)))
    plan["timing"].update({"duration": round(n_frames / fps, 4), "n_frames": n_frames,
                           "speech_duration": round(speech_len, 4)})
    return audio, rate


def audio_track(plan: dict, speech_audio: np.ndarray, rate: int) -> np.ndarray:
    n = int(round(plan["timing"]["duration"] * rate))
    noise = np.random.Generator(np.random.PCG64(plan["noise"]["seed"]))
    track = (noise.standard_normal(n) * plan["noise"]["level"]).astype(np.float32)
    start = int(round(plan["timing"]["speech_onset"] * rate))
    part = speech_audio[: max(0, n - start)]
    if len(part) < len(speech_audio):  # cut: fade out the last 50 ms
        fade = min(len(part), int(0.05 * rate))
        if fade:
            part = part.copy()
            part[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    track[start:start + len(part)] += part
    return np.clip(track, -1.0, 1.0)
