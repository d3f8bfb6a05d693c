"""The stages: what each sends to its back-end, how replies are validated, what it writes.

Every stage turns one sample (its manifest row plus the rows of its upstream stages) into
an ``output`` dict, or raises :class:`SampleFailure` with the reason. Model replies are
validated; an invalid reply is answered with a corrective turn (``max_attempts`` requests
in all) and a reply that stays invalid is a failure -- never replaced silently (the
``labels`` stage's opt-in ``fallback: lexicon`` is marked in the row).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from affectgpt.annotate.backends import (
    BackendError,
    FaceVideoClue,
    OpenAIBackend,
    ProsodyAudioClue,
    RecordedOutputs,
    TransformersBackend,
    audio_part,
    check_capabilities,
    redact_media,
    video_parts,
)
from affectgpt.annotate.config import AnnotateConfig, StageConfig
from affectgpt.annotate.prompts import LANGUAGE_NAMES, PromptSet, get_prompts, subtitle_hint
from affectgpt.data.manifest import Sample
from affectgpt.llm.cache import ResponseCache
from affectgpt.llm.client import LLMError, ask_validated

_CJK = re.compile(r"[\u4e00-\u9fff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_LATIN_LETTER = re.compile(r"[A-Za-z]")

POSITIVE = frozenset("""happy happiness joy joyful excited excitement pleased pleasure glad cheerful
delighted delight content contented satisfied satisfaction relieved relief amused amusement proud
pride love loving grateful gratitude hopeful hope enthusiastic enthusiasm elated confident""".split())
NEGATIVE = frozenset("""angry anger sad sadness fear fearful afraid scared worried worry anxious
anxiety disgust disgusted frustrated frustration upset annoyed annoyance disappointed
disappointment nervous depressed depression unhappy irritated irritation furious fury hurt
ashamed shame guilty guilt lonely helpless contempt distressed distress miserable grief
sorrow sorrowful rage resentful""".split())


class SampleFailure(Exception):
    """A sample this stage could not process; ``reason`` is recorded in the failures file."""

    def __init__(self, reason: str, *, last_reply: str | None = None, attempts: int = 0,
                 usage: dict[str, int] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.last_reply = last_reply
        self.attempts = attempts
        self.usage = dict(usage or {})


@dataclass
class StageResult:
    """What a stage produced for one sample, with what it sent and how."""

    output: dict[str, Any]
    messages: list[dict[str, Any]] | None = None
    attempts: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)


def clean_text(reply: str) -> str:
    """A free-text reply without code fences, an ``Answer:``-like prefix or surrounding
    whitespace."""
    text = reply.replace("```", " ").strip()
    text = re.sub(r"^(?:answer|output|description|translation|response)\s*[:：]\s*", "", text,
                  flags=re.I)
    return " ".join(text.split()) if "\n" not in text.strip() else text.strip()


def validate_description(min_words: int):
    def check(reply: str) -> str:
        text = clean_text(reply)
        if not text:
            raise ValueError("the reply is empty")
        words = len(text.split()) if not _CJK.search(text) else len(_CJK.findall(text)) // 2
        if words < min_words:
            raise ValueError(f"the reply is too short ({words} words; at least {min_words} needed)")
        return text
    return check


def validate_translation(target: str, source_text: str):
    def check(reply: str) -> str:
        text = clean_text(reply)
        if not text:
            raise ValueError("the reply is empty")
        if target == "zh":
            han = len(_CJK.findall(text))
            if han < max(2, len(source_text.split()) // 10):
                raise ValueError("the reply is not a Chinese translation (too few Chinese characters)")
            # a Chinese translation may keep a name in Latin letters, not whole sentences
            if len(_LATIN_LETTER.findall(text)) > 2 * han:
                raise ValueError("the reply is not a Chinese translation (mostly Latin letters)")
        else:
            if len(_LATIN_WORD.findall(text)) < 3 or len(_CJK.findall(text)) > len(text) // 4:
                raise ValueError("the reply is not an English translation")
        if text == " ".join(source_text.split()):
            raise ValueError("the reply repeats the text instead of translating it")
        return text
    return check


class Stage:
    """Base of the stages: holds the stage's config, prompt set and back-end."""

    name = ""

    def __init__(self, cfg: StageConfig, run: AnnotateConfig, cache: ResponseCache | None):
        self.cfg = cfg
        self.prompts: PromptSet = get_prompts(cfg.prompt_version)
        self.concurrency = cfg.concurrency or run.concurrency
        self.backend: Any = None
        if cfg.backend in ("openai", "transformers"):
            check_capabilities(self.name, cfg)
            self.backend = (OpenAIBackend(cfg, self.concurrency, cache) if cfg.backend == "openai"
                            else TransformersBackend(cfg, max_batch=self.concurrency))
        elif cfg.backend == "recorded":
            self.backend = RecordedOutputs(cfg.recorded, cfg.column)

    def describe(self) -> dict[str, Any]:
        info = {"backend": self.backend.describe() if self.backend is not None else
                {"kind": self.cfg.backend}}
        if self.cfg.backend in ("openai", "transformers"):
            info["params"] = self.cfg.decoding()
            info["prompt"] = {"version": self.prompts.version, "sha256": self.prompts.sha256()}
        return info

    def run(self, sample: Sample, upstream: dict[str, dict[str, Any]]) -> StageResult:
        raise NotImplementedError

    def close(self) -> None:
        if self.backend is not None and hasattr(self.backend, "close"):
            self.backend.close()

    # ------------------------------------------------------------------ helpers
    def ask(self, messages: list[dict[str, Any]], validate, correction: str,
            prompt_version: str | None = None) -> StageResult:
        """Send, validate, and on an invalid reply ask again with a corrective turn
        (:func:`~affectgpt.llm.client.ask_validated`); a sample failure when it stays invalid."""
        outcome = ask_validated(self.backend, messages, validate,
                                lambda reason: correction.format(reason=reason),
                                max_attempts=self.cfg.max_attempts, errors=(LLMError, BackendError),
                                prompt_version=prompt_version or self.prompts.version)
        if not outcome.ok:
            raise SampleFailure(outcome.reason, last_reply=outcome.last_reply,
                                attempts=outcome.attempts, usage=outcome.usage)
        return StageResult(outcome.value, redact_media(messages), outcome.attempts, outcome.usage,
                           outcome.finish_reason)


def _media(sample: Sample, kind: str) -> str:
    path = (sample.audio or sample.video) if kind == "audio" else sample.video
    if not path:
        raise SampleFailure(f"the sample has no {kind} file in the manifest")
    return path


def _media_failure(exc: Exception) -> SampleFailure:
    return SampleFailure(f"{type(exc).__name__}: {exc}")


class AudioClueStage(Stage):
    name = "audio-clue"

    def __init__(self, cfg, run, cache):
        super().__init__(cfg, run, cache)
        if cfg.backend == "packaged":
            self.backend = ProsodyAudioClue()

    def run(self, sample, upstream):
        from affectgpt.media import MediaError, NoAudioStreamError

        if self.cfg.backend == "recorded":
            return StageResult({"clue": self.backend.get(sample.name)})
        path = _media(sample, "audio")
        try:
            if self.cfg.backend == "packaged":
                text, measured = self.backend.clue(path, sample.subtitle_en)
                return StageResult({"clue": text, "measured": measured})
            prompt = self.prompts.audio_clue.format(subtitle_hint=subtitle_hint(sample.subtitle_en))
            messages = [{"role": "user", "content": [
                {"type": "text", "text": prompt},
                audio_part(path, self.cfg.max_audio_seconds)]}]
        except NoAudioStreamError:
            # a silent clip is a fact about the clip, not a failure: the merge says so
            return StageResult({"clue": None, "note": "the clip has no audio stream"})
        except (MediaError, FileNotFoundError, BackendError) as exc:
            raise _media_failure(exc) from None
        result = self.ask(messages, validate_description(self.cfg.min_words),
                          self.prompts.correction_text)
        result.output = {"clue": result.output}
        return result


class VideoClueStage(Stage):
    name = "video-clue"

    def __init__(self, cfg, run, cache):
        super().__init__(cfg, run, cache)
        if cfg.backend == "packaged":
            self.backend = FaceVideoClue(cfg.n_frames)

    def run(self, sample, upstream):
        from affectgpt.media import MediaError

        if self.cfg.backend == "recorded":
            return StageResult({"clue": self.backend.get(sample.name)})
        path = _media(sample, "video")
        try:
            if self.cfg.backend == "packaged":
                text, measured = self.backend.clue(path)
                return StageResult({"clue": text, "measured": measured})
            parts = video_parts(path, self.cfg.video_mode, self.cfg.n_frames, self.cfg.max_video_mb)
        except (MediaError, FileNotFoundError, BackendError) as exc:
            raise _media_failure(exc) from None
        messages = [{"role": "user", "content": [{"type": "text", "text": self.prompts.video_clue},
                                                 *parts]}]
        result = self.ask(messages, validate_description(self.cfg.min_words),
                          self.prompts.correction_text)
        result.output = {"clue": result.output}
        return result


def merge_messages(prompts: PromptSet, sample: Sample, audio_clue: str | None,
                   video_clue: str | None, language: str = "en") -> list[dict[str, str]]:
    """The disambiguation request: the clues and the subtitle -> one description."""
    subtitle = (sample.subtitle_zh or sample.subtitle_en) if language == "zh" else \
        (sample.subtitle_en or sample.subtitle_zh)
    text = prompts.merge.format(
        language=LANGUAGE_NAMES[language],
        audio_clue=" ".join((audio_clue or prompts.no_clue).split()),
        video_clue=" ".join((video_clue or prompts.no_clue).split()),
        subtitle=" ".join(subtitle.split()) or prompts.no_clue)
    return [{"role": "system", "content": prompts.merge_system}, {"role": "user", "content": text}]


class MergeStage(Stage):
    name = "merge"

    def __init__(self, cfg, run, cache):
        super().__init__(cfg, run, cache)
        self.use_audio = run.stages["audio-clue"].enabled
        self.use_video = run.stages["video-clue"].enabled

    def run(self, sample, upstream):
        if self.cfg.backend == "recorded":
            return StageResult({"description": self.backend.get(sample.name),
                                "language": self.cfg.language})
        audio = upstream.get("audio-clue", {}).get("clue") if self.use_audio else None
        video = upstream.get("video-clue", {}).get("clue") if self.use_video else None
        messages = merge_messages(self.prompts, sample, audio, video, self.cfg.language)
        result = self.ask(messages, validate_description(self.cfg.min_words),
                          self.prompts.correction_text)
        result.output = {"description": result.output, "language": self.cfg.language}
        return result


class TranslateStage(Stage):
    name = "translate"

    def run(self, sample, upstream):
        merged = upstream["merge"]
        source = merged.get("language", "en")
        target = "zh" if source == "en" else "en"
        if self.cfg.backend == "recorded":
            return StageResult({"text": self.backend.get(sample.name), "language": target})
        template = self.prompts.translate_en_zh if target == "zh" else self.prompts.translate_zh_en
        messages = [{"role": "user", "content": template.format(text=merged["description"])}]
        result = self.ask(messages, validate_translation(target, merged["description"]),
                          self.prompts.correction_text)
        result.output = {"text": result.output, "language": target}
        return result


class LabelsStage(Stage):
    name = "labels"

    def __init__(self, cfg, run, cache):
        super().__init__(cfg, run, cache)
        self.lexicon = None
        if cfg.backend == "lexicon" or cfg.fallback == "lexicon":
            from affectgpt.eval.lexicon import LexiconExtractor

            self.lexicon = LexiconExtractor()
            _ = self.lexicon.vocabulary  # built once here, not raced for by worker threads

    def describe(self):
        info = super().describe()
        if "prompt" in info:
            info["prompt"]["labels_version"] = self.prompts.labels_version
        if self.cfg.fallback != "none":
            info["fallback"] = self.cfg.fallback
        return info

    def run(self, sample, upstream):
        from affectgpt.eval.extract import (
            EXTRACT_CORRECTION_PROMPT,
            extraction_messages,
            validate_extraction,
        )
        from affectgpt.eval.labels import parse_label_list

        merged = upstream["merge"]
        text = merged["description"]
        if self.cfg.backend == "recorded":
            return StageResult({"labels": parse_label_list(self.backend.get(sample.name)),
                                "fallback": False})
        if self.cfg.backend == "lexicon":
            return StageResult({"labels": self.lexicon.extract(text), "fallback": False})
        try:
            result = self.ask(extraction_messages(text), validate_extraction,
                              EXTRACT_CORRECTION_PROMPT, self.prompts.labels_version)
        except SampleFailure as failure:
            if self.lexicon is None:
                raise
            return StageResult({"labels": self.lexicon.extract(text), "fallback": True},
                               notes={"llm_failure": failure.reason,
                                      "llm_last_reply": failure.last_reply},
                               attempts=failure.attempts, usage=failure.usage)
        result.output = {"labels": result.output, "fallback": False}
        return result


def clue_valence(text: str | None, lexicon) -> tuple[int, list[str]]:
    """+1 / -1 / 0 and the emotion words found: the sign of (positive - negative) words."""
    if not text:
        return 0, []
    words = lexicon.extract(text)
    score = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
    return (score > 0) - (score < 0), words


class FilterStage(Stage):
    """Rules over the finished rows: no labels, too short, audio and video clues of
    opposite valence. Every sample gets a row with ``keep`` and the ``reasons``."""

    name = "filter"

    def __init__(self, cfg, run, cache):
        super().__init__(cfg, run, cache)
        self.run_cfg = run
        from affectgpt.eval.lexicon import LexiconExtractor

        self.lexicon = LexiconExtractor()
        _ = self.lexicon.vocabulary

    def describe(self):
        return {"backend": {"kind": "rules"}, "rules": {
            "require_labels": self.cfg.require_labels, "min_words": self.cfg.min_words,
            "drop_contradictions": self.cfg.drop_contradictions}}

    def run(self, sample, upstream):
        reasons = []
        labels = upstream.get("labels", {}).get("labels")
        if self.cfg.require_labels and self.run_cfg.stages["labels"].enabled and not labels:
            reasons.append("no labels")
        description = upstream.get("merge", {}).get("description", "")
        if len(description.split()) < self.cfg.min_words and not _CJK.search(description):
            reasons.append(f"description under {self.cfg.min_words} words")
        checks: dict[str, Any] = {}
        if self.cfg.drop_contradictions:
            a, a_words = clue_valence(upstream.get("audio-clue", {}).get("clue"), self.lexicon)
            v, v_words = clue_valence(upstream.get("video-clue", {}).get("clue"), self.lexicon)
            checks = {"audio_valence": a, "audio_words": a_words, "video_valence": v,
                      "video_words": v_words}
            if a * v < 0:
                reasons.append(f"audio and video clues contradict (audio {a_words}, video {v_words})")
        return StageResult({"keep": not reasons, "reasons": reasons, **checks})


STAGE_CLASSES: dict[str, type[Stage]] = {
    "audio-clue": AudioClueStage, "video-clue": VideoClueStage, "merge": MergeStage,
    "translate": TranslateStage, "labels": LabelsStage, "filter": FilterStage,
}


def build_stage(name: str, run: AnnotateConfig, cache: ResponseCache | None = None) -> Stage:
    """The stage ``name`` of ``run``, its back-end started and checked."""
    return STAGE_CLASSES[name](run.stages[name], run, cache)
