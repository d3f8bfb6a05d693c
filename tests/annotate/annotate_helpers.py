"""Shared data and helpers of the annotation tests."""

from __future__ import annotations

from pathlib import Path

from affectgpt.data.manifest import read_manifest

SUBTITLES = [
    "I can't believe you did that again!",
    "We finally won the match, this is amazing.",
    "The bus leaves at nine tomorrow morning.",
    "Please, just leave me alone for a while.",
    "Oh no, I think I lost my keys somewhere.",
    "Thank you so much, that means a lot to me.",
]
AUDIO_CLUES = [
    "The voice is loud and sharp, with a fast speaking rate and rising intonation.",
    "The voice is bright and energetic, with laughter at the end.",
    "The voice is even and calm, at a moderate speed.",
    "The voice is quiet and slow, with long pauses and a low pitch.",
    "The voice is tense and hurried, its pitch rising.",
    "The voice is warm and soft, slightly trembling.",
]
VIDEO_CLUES = [
    "The person frowns, narrows the eyes and presses the lips together.",
    "The person smiles broadly and raises both arms.",
    "The face is relaxed and the gaze steady; no clear expression.",
    "The person looks down, the corners of the mouth turned down.",
    "The eyebrows are raised and the eyes widened; the person looks around.",
    "The person smiles with moist eyes and nods.",
]


def recorded_overrides(files: dict[str, Path]) -> list[str]:
    return [f"{stage}.{key}={value}" for stage, path in files.items()
            for key, value in (("backend", "recorded"), ("recorded", path))]


def server_overrides(base_url: str, model: str, max_tokens: int = 12) -> list[str]:
    """Point every openai stage at a server, small replies, no key, quick retries."""
    return [f"*.base_url={base_url}", f"*.model={model}", "*.api_key_env=",
            f"*.max_tokens={max_tokens}", "*.max_retries=1", "*.backoff=0.05", "*.timeout=120"]


def samples_of(manifest: Path) -> list[str]:
    return [s.name for s in read_manifest(manifest)]
