"""Prosody: the speaking rate is transcript words over VAD speech time (the '40.5 words per
second' of a loudness-measured voiced time is gone), Chinese counts characters."""

from __future__ import annotations

import numpy as np
import pytest

from affectgpt.clues.prosody import (
    MAX_PLAUSIBLE_RATE,
    count_words,
    measure_prosody,
    prosody_clue,
    prosody_reading,
    vad_speech_seconds,
)

pytest.importorskip("faster_whisper")


def test_speaking_rate_of_real_speech_is_plausible(photo_clips):
    speech = photo_clips["speech"]
    vad = vad_speech_seconds(speech)
    assert 1.5 < vad <= len(speech) / 16000 + 0.1
    p = measure_prosody(speech, 16000, photo_clips["line"], speech_seconds=vad)
    assert p.speech_time_source == "vad" and p.rate_unit == "words"
    # espeak-ng at 150 words per minute: 2.5 words per second, pauses between sentences
    assert 1.5 < p.words_per_second < 4.5
    assert p.words_per_second == pytest.approx(photo_clips["words"] / vad)
    assert f"{p.words_per_second:.1f} words per second" in prosody_clue(p)


def test_an_impossible_rate_is_not_reported(photo_clips):
    # a mis-measured speech time (0.4 s for 15 words) would say 37 words per second
    p = measure_prosody(photo_clips["speech"], 16000, photo_clips["line"], speech_seconds=0.4)
    assert p.words_per_second is None
    assert "words per second" not in prosody_clue(p)


def test_chinese_rate_counts_characters():
    assert count_words("我真的很生气，你怎么能这样对我") == (14, "characters")
    assert count_words("I am fine") == (3, "words")
    assert MAX_PLAUSIBLE_RATE["characters"] > MAX_PLAUSIBLE_RATE["words"]


def test_silence_gives_an_unavailable_reading():
    reading = prosody_reading(measure_prosody(np.zeros(32000, np.float32), 16000, ""))
    assert not reading.available and "no emotional clue" in reading.text
    assert vad_speech_seconds(np.zeros(32000, np.float32)) == 0.0


def test_reading_moves_towards_arousal(photo_clips):
    loud = np.clip(photo_clips["speech"] * 8, -1, 1)
    quiet = photo_clips["speech"] * 0.02
    high = prosody_reading(measure_prosody(loud, 16000))
    low = prosody_reading(measure_prosody(quiet, 16000))
    assert high.available and low.available
    assert high.arousal > low.arousal
    assert abs(sum(high.scores.values()) - 1) < 1e-6
