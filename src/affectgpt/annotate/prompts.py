"""Versioned prompts of the EMER-Coarse pipeline (AffectGPT paper, section 3).

The protocol (paper section 3; REFERENCE.md section 5): per video, (1) an audio MLLM and
(2) a video MLLM are each asked for emotion-related clues ("first extracting
emotion-related descriptions from MLLMs"), (3) "disambiguation": a text LLM merges the
audio clue, the video clue and the subtitle into one reasoned description ("then using
them to disambiguate the subtitle"), (4) translation between English and Chinese, and
(5) label extraction: the emotional states of the main character that are clearly
identifiable, comma-separated, in list form, an empty list when there are none (the
extraction prompt of :mod:`affectgpt.eval.extract`).

A prompt set is frozen once released: change the wording under a new version name, never
in place, so rows written with an old version stay explained. Every row records the
version, the SHA-256 of its templates and the rendered text it sent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from affectgpt.eval.extract import (
    EXTRACT_CORRECTION_PROMPT,
    EXTRACT_EXAMPLES,
    EXTRACT_INSTRUCTION,
    EXTRACT_PROMPT_VERSION,
)


@dataclass(frozen=True)
class PromptSet:
    """The templates of one prompt version (``str.format`` fields in braces)."""

    version: str
    audio_clue: str
    video_clue: str
    merge_system: str
    merge: str
    no_clue: str
    translate_en_zh: str
    translate_zh_en: str
    correction_text: str
    labels_version: str = EXTRACT_PROMPT_VERSION

    def sha256(self) -> str:
        """Digest of every template (labels' included), recorded with each row."""
        payload = {**asdict(self), "labels": [EXTRACT_INSTRUCTION, EXTRACT_EXAMPLES,
                                              EXTRACT_CORRECTION_PROMPT]}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False)
                              .encode("utf-8")).hexdigest()


EMER_COARSE_V1 = PromptSet(
    version="emer-coarse-v1",
    audio_clue=(
        "Please act as an expert in the field of emotions. Listen to the speech and describe "
        "the emotion-related clues in the speaker's voice: tone, pitch, loudness, speaking "
        "rate, pauses, and any non-verbal sounds. Then infer the speaker's emotional state "
        "from these acoustic clues and explain your reasoning. Do not describe the content of "
        "the speech. Answer in one English paragraph.{subtitle_hint}"
    ),
    video_clue=(
        "Please act as an expert in the field of emotions. Watch the video and describe the "
        "emotion-related clues of the main character: facial expressions, eye and mouth "
        "movements, head and body movements, gestures, and how they change over time. Then "
        "infer the character's emotional state from these visual clues and explain your "
        "reasoning. Answer in one English paragraph."
    ),
    merge_system=(
        "Please act as an expert in the field of emotions. You combine clues from several "
        "modalities into one description of a person's emotional state."
    ),
    merge=(
        "We provide the clues of a video clip from three modalities: an acoustic description "
        "made by an audio model, a visual description made by a video model, and the subtitle "
        "(what the character says). The audio and video descriptions were made by models and "
        "may be wrong or contradict each other; the subtitle may be ambiguous on its own. "
        "Use the acoustic and visual clues to disambiguate the subtitle, and infer the "
        "emotional state of the main character. Write one paragraph in {language} that first "
        "lists the emotion-related clues from the audio, the video and the subtitle, then "
        "reasons about them, and ends with the emotional state(s) you infer.\n\n"
        "Acoustic clues: {audio_clue}\n"
        "Visual clues: {video_clue}\n"
        "Subtitle: {subtitle}"
    ),
    no_clue="(not available)",
    translate_en_zh=(
        "Translate the following English description of a person's emotional state into "
        "Chinese. Keep every clue and the reasoning; output only the Chinese translation.\n\n"
        "{text}"
    ),
    translate_zh_en=(
        "Translate the following Chinese description of a person's emotional state into "
        "English. Keep every clue and the reasoning; output only the English translation.\n\n"
        "{text}"
    ),
    correction_text=(
        "Your reply could not be used: {reason}. Answer again, following the instructions, "
        "with the text only."
    ),
)

PROMPT_SETS: dict[str, PromptSet] = {EMER_COARSE_V1.version: EMER_COARSE_V1}
LANGUAGE_NAMES = {"en": "English", "zh": "Chinese"}


def get_prompts(version: str) -> PromptSet:
    """The prompt set named ``version``; KeyError lists the known ones."""
    try:
        return PROMPT_SETS[version]
    except KeyError:
        raise KeyError(f"unknown prompt version {version!r}; known: "
                       f"{', '.join(PROMPT_SETS)}") from None


def subtitle_hint(subtitle: str) -> str:
    """The audio-clue prompt's optional subtitle line (it helps an audio model tell
    what is said from how it is said)."""
    subtitle = " ".join(subtitle.split())
    return f"\nThe speech says: \"{subtitle}\"" if subtitle else ""
