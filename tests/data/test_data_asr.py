"""Subtitles from speech for a manifest (real Whisper-base on espeak-ng clips), and the
``subtitle_source`` manifest field."""

from __future__ import annotations

import json

import pytest
from speech_clips import (
    CHINESE,
    ENGLISH,
    character_error_rate,
    word_error_rate,
)

from affectgpt.data import ManifestError, Sample, read_manifest, write_manifest
from affectgpt.data.asr import NO_MEDIA, subtitle_field, transcribe_missing_subtitles


@pytest.fixture
def samples(speech_dir, tmp_path) -> list[Sample]:
    return [
        Sample(name="en", video=str(speech_dir / "english.mp4")),
        Sample(name="zh", video=str(speech_dir / "chinese.mp4"), labels=["angry"]),
        Sample(name="fr", audio=str(speech_dir / "french.mp4")),
        Sample(name="quiet", video=str(speech_dir / "silence.mp4")),
        Sample(name="mute", video=str(speech_dir / "no-audio.mp4")),
        Sample(name="given", video=str(speech_dir / "english.mp4"), subtitle_en="Hello there."),
        Sample(name="gone", video=str(tmp_path / "deleted.mp4")),
        Sample(name="bare"),
    ]


def test_missing_subtitles_are_transcribed(asr_cache, transcriber, samples, tmp_path,
                                           monkeypatch):
    from affectgpt.encoders.asr import NO_AUDIO_TRACK, NO_SPEECH, Transcriber, TranscriptCache

    cache = TranscriptCache(tmp_path / "transcripts")
    seen = []
    out = transcribe_missing_subtitles(samples, transcriber, cache,
                                       progress=lambda i, n, s: seen.append((i, n, s.name)))
    assert seen == [(i, 8, s.name) for i, s in enumerate(samples, 1)]
    by = {s.name: s for s in out}
    assert [s.name for s in out] == [s.name for s in samples]
    assert all(s.subtitle_source == "" and "asr" not in s.extra for s in samples)  # untouched

    en, zh, fr = by["en"], by["zh"], by["fr"]
    assert en.subtitle_source == "asr" and en.subtitle_zh == ""
    assert word_error_rate(ENGLISH, en.subtitle_en) <= 0.2, en.subtitle_en
    assert en.extra["asr"]["language"] == "en" and en.extra["asr"]["model"] == transcriber.model_id
    assert zh.subtitle_source == "asr" and zh.subtitle_en == "" and zh.labels == ["angry"]
    assert character_error_rate(CHINESE, zh.subtitle_zh) <= 0.35, zh.subtitle_zh
    assert zh.extra["asr"]["language"] == "zh"
    # French: translated into English, the French words kept beside it
    assert fr.subtitle_source == "asr" and fr.extra["asr"]["translated_from"] == "fr"
    assert "happy" in fr.subtitle_en.lower() and "content" in fr.extra["asr"]["text"]

    assert by["quiet"].subtitle_source == "asr" and by["quiet"].subtitle_en == ""
    assert by["quiet"].extra["asr"]["reason"] == NO_SPEECH
    assert by["mute"].extra["asr"]["reason"] == NO_AUDIO_TRACK
    assert by["given"].subtitle_en == "Hello there." and by["given"].subtitle_source == "given"
    assert "asr" not in by["given"].extra
    assert by["gone"].subtitle_source == "" and "deleted.mp4" in by["gone"].extra["asr"]["error"]
    assert by["bare"].extra["asr"] == {"reason": NO_MEDIA} and by["bare"].subtitle_source == ""

    # the manifest keeps all of it
    path = write_manifest(out, tmp_path / "manifest.jsonl")
    back = read_manifest(path)
    assert back == out

    # a second run transcribes nothing new: done samples are skipped, the rest hit the cache
    calls = []
    fresh = Transcriber()
    real = fresh.transcribe
    monkeypatch.setattr(fresh, "transcribe", lambda src, **kw: calls.append(src) or real(src, **kw))
    again = transcribe_missing_subtitles(back, fresh, cache)
    assert again == back and calls == [] and not fresh.loaded
    # the same clips not yet marked in a manifest are answered by the cache
    hits = cache.hits
    retry = transcribe_missing_subtitles(
        [s for s in samples if s.name in ("en", "mute")], fresh, cache)
    assert [s.subtitle_en for s in retry] == [en.subtitle_en, ""]
    assert cache.hits == hits + 2 and calls == [] and not fresh.loaded


def test_failures_can_raise_and_options_are_checked(asr_cache, transcriber, samples):
    gone = [s for s in samples if s.name == "gone"]
    with pytest.raises(FileNotFoundError):
        transcribe_missing_subtitles(gone, transcriber, on_error="raise")
    with pytest.raises(ValueError, match="other_languages"):
        transcribe_missing_subtitles(gone, transcriber, other_languages="guess")
    with pytest.raises(ValueError, match="on_error"):
        transcribe_missing_subtitles(gone, transcriber, on_error="ignore")


def test_other_languages_can_be_skipped(asr_cache, transcriber, samples):
    (fr,) = transcribe_missing_subtitles([s for s in samples if s.name == "fr"], transcriber,
                                         other_languages="skip")
    assert fr.subtitle_en == fr.subtitle_zh == "" and fr.subtitle_source == "asr"
    assert fr.extra["asr"]["reason"] == "language 'fr' skipped"
    assert "content" in fr.extra["asr"]["text"]


def test_subtitle_field():
    assert subtitle_field("en") == "subtitle_en" and subtitle_field("zh") == "subtitle_zh"
    assert subtitle_field("fr") is None and subtitle_field(None) is None


# --------------------------------------------------------------------------- manifest field


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_subtitle_source_round_trips(tmp_path, suffix):
    rows = [Sample(name="a", subtitle_en="hi", subtitle_source="given"),
            Sample(name="b", subtitle_zh="你好", subtitle_source="asr"),
            Sample(name="c")]
    path = write_manifest(rows, tmp_path / f"m{suffix}")
    assert read_manifest(path) == rows


def test_manifests_without_subtitle_source_still_read(tmp_path):
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps({"name": "a", "subtitle_en": "hi"}) + "\n", encoding="utf-8")
    assert read_manifest(old)[0].subtitle_source == ""
    csv = tmp_path / "old.csv"
    csv.write_text("name,subtitle_en\na,hi\n", encoding="utf-8")
    assert read_manifest(csv)[0].subtitle_source == ""


def test_bad_subtitle_source_is_refused(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"name": "a", "subtitle_source": "whisper"}) + "\n",
                   encoding="utf-8")
    with pytest.raises(ManifestError, match="subtitle_source") as info:
        read_manifest(bad)
    assert info.value.line == 1
