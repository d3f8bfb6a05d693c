"""Subtitles from speech: fill the empty subtitles of a manifest with Whisper transcripts.

::

    from affectgpt.data import read_manifest, write_manifest
    from affectgpt.data.asr import transcribe_missing_subtitles
    from affectgpt.encoders.asr import Transcriber, TranscriptCache

    samples = read_manifest("my-videos/manifest.jsonl")
    samples = transcribe_missing_subtitles(samples, Transcriber(),
                                           TranscriptCache("out/transcripts"))
    write_manifest(samples, "out/manifest.jsonl")

A sample is transcribed when both its subtitles are empty and it was not transcribed
before (``subtitle_source != "asr"``). English goes to ``subtitle_en``, Chinese to
``subtitle_zh``; speech in another language is, by default, translated into English by
Whisper (``task="translate"``) and goes to ``subtitle_en``. Transcribed samples get
``subtitle_source="asr"`` (also when nothing was said: the subtitle stays empty and the
sample is not transcribed again) and a record in ``extra["asr"]`` (language, its
probability, the reason for an empty transcript). Samples that already have a subtitle and
no recorded source are marked ``subtitle_source="given"``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal

from affectgpt.data.manifest import Sample

if TYPE_CHECKING:  # pragma: no cover
    from affectgpt.encoders.asr import Transcriber, Transcript, TranscriptCache

__all__ = ["OtherLanguages", "subtitle_field", "transcribe_missing_subtitles"]

#: what to do with speech in a language other than English or Chinese
OtherLanguages = Literal["translate", "skip"]
_SUBTITLE_FIELD = {"en": "subtitle_en", "zh": "subtitle_zh", "yue": "subtitle_zh"}
NO_MEDIA = "no video or audio file"


def subtitle_field(language: str | None) -> str | None:
    """The :class:`Sample` field that holds subtitles in ``language`` (``None``: no field)."""
    return _SUBTITLE_FIELD.get(language or "")


def _needs_transcript(sample: Sample) -> bool:
    return (not sample.subtitle_en.strip() and not sample.subtitle_zh.strip()
            and sample.subtitle_source != "asr")


def _record(transcript: Transcript, transcriber: Transcriber) -> dict:
    record = {"language": transcript.language,
              "language_probability": round(transcript.language_probability, 4),
              "model": transcriber.model_id, "seconds": round(transcript.seconds, 3),
              "speech_seconds": round(transcript.speech_seconds, 3)}
    if transcript.reason:
        record["reason"] = transcript.reason
    return record


def transcribe_missing_subtitles(
    samples: Iterable[Sample],
    transcriber: Transcriber,
    cache: TranscriptCache | None = None,
    *,
    other_languages: OtherLanguages = "translate",
    on_error: Literal["record", "raise"] = "record",
    progress: Callable[[int, int, Sample], None] | None = None,
) -> list[Sample]:
    """Fill empty subtitles from the speech of each sample's audio (or video) file.

    Args:
        samples: the samples (not modified; changed samples are copies).
        transcriber: the speech recogniser (:class:`affectgpt.encoders.asr.Transcriber`).
        cache: where transcripts are kept between runs; ``None`` always transcribes.
        other_languages: speech that is neither English nor Chinese is ``"translate"``-d
            into English by Whisper (a second pass; the original text is kept in
            ``extra["asr"]["text"]``) or ``"skip"``-ped (subtitles stay empty).
        on_error: a file that cannot be decoded is recorded in ``extra["asr"]["error"]``
            (``"record"``; the sample stays untranscribed and is tried again next time) or
            raises (``"raise"``).
        progress: called as ``progress(done, total, sample)`` after each sample.

    Returns:
        The samples in order, transcribed where needed.

    Raises:
        FileNotFoundError, affectgpt.media.MediaError: with ``on_error="raise"``.
    """
    from affectgpt.media import MediaError

    if other_languages not in ("translate", "skip"):
        raise ValueError(f"other_languages must be 'translate' or 'skip', not {other_languages!r}")
    if on_error not in ("record", "raise"):
        raise ValueError(f"on_error must be 'record' or 'raise', not {on_error!r}")
    samples = list(samples)

    def run(source, task="transcribe"):
        if cache is None:
            return transcriber.transcribe(source, task=task)
        return cache.transcribe(transcriber, source, task=task)

    out: list[Sample] = []
    for index, sample in enumerate(samples, 1):
        if not _needs_transcript(sample):
            if not sample.subtitle_source and (sample.subtitle_en or sample.subtitle_zh):
                sample = dataclasses.replace(sample, subtitle_source="given")
            out.append(sample)
        else:
            out.append(_transcribe_sample(sample, run, transcriber, other_languages, on_error,
                                          MediaError))
        if progress is not None:
            progress(index, len(samples), out[-1])
    return out


def _transcribe_sample(sample, run, transcriber, other_languages, on_error, media_error):
    media = sample.audio or sample.video
    extra = {k: v for k, v in sample.extra.items() if k != "asr"}
    if not media:
        return dataclasses.replace(sample, extra={**extra, "asr": {"reason": NO_MEDIA}})
    try:
        transcript = run(media)
        record = _record(transcript, transcriber)
        target = subtitle_field(transcript.language)
        text = transcript.text
        if text and target is None:
            record["text"] = text
            if other_languages == "translate":
                translated = run(media, "translate")
                text, target = translated.text, "subtitle_en"
                record["translated_from"] = transcript.language
            else:
                text = ""
                record["reason"] = f"language {transcript.language!r} skipped"
    except (FileNotFoundError, media_error) as exc:
        if on_error == "raise":
            raise
        return dataclasses.replace(sample, extra={**extra, "asr": {"error": str(exc)}})
    changes = {"subtitle_source": "asr", "extra": {**extra, "asr": record}}
    if text and target is not None:
        changes[target] = text
    return dataclasses.replace(sample, **changes)
