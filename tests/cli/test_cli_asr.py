"""Speech to subtitle in the verbs that read clips: `import-videos --asr`, `annotate run`
and `infer` transcribe clips that have no subtitle (packaged Whisper-base), cache the
transcripts next to their output and mark the subtitle `subtitle_source: asr`."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng not installed", allow_module_level=True)
for _module in ("faster_whisper", "skimage", "cv2", "fer"):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"{_module} not installed", allow_module_level=True)

from affectgpt.cli import main  # noqa: E402
from affectgpt.data.manifest import read_manifest  # noqa: E402

LINE = "We won the final match today, I am so happy!"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from photo_clips import photo, write_photo_clip
    from speech_clips import espeak

    root = tmp_path_factory.mktemp("asr-cli")
    videos = root / "videos"
    videos.mkdir()
    speech = espeak(LINE, root / "line.wav")
    write_photo_clip(videos / "talk.mp4", photo("astronaut"), speech, size=160)
    write_photo_clip(videos / "silent.mp4", photo("astronaut"), None, seconds=1.0, size=160)
    return root


def test_import_videos_asr(folder, tmp_path):
    plain = tmp_path / "plain.jsonl"
    assert main(["import-videos", "--video-dir", str(folder / "videos"), "--out", str(plain)]) == 0
    assert all(not s.subtitle_en and not s.subtitle_source for s in read_manifest(plain))
    out = tmp_path / "manifest.jsonl"
    assert main(["import-videos", "--video-dir", str(folder / "videos"), "--out", str(out),
                 "--asr"]) == 0
    samples = {s.name: s for s in read_manifest(out)}
    talk = samples["talk"]
    assert talk.subtitle_source == "asr" and "match" in talk.subtitle_en.lower()
    assert talk.extra["asr"]["language"] == "en"
    silent = samples["silent"]  # no audio track: said, not invented
    assert silent.subtitle_source == "asr" and silent.subtitle_en == ""
    assert silent.extra["asr"]["reason"]
    assert any((tmp_path / "manifest.transcripts").rglob("*.json"))


def test_annotate_run_transcribes_missing_subtitles(folder, tmp_path):
    manifest = tmp_path / "in.jsonl"
    assert main(["import-videos", "--video-dir", str(folder / "videos"), "--out",
                 str(manifest)]) == 0
    out = tmp_path / "annotation"
    argv = ["annotate", "run", "--manifest", str(manifest), "--out", str(out), "--no-progress",
            "--set", "audio-clue.backend=packaged", "--set", "video-clue.enabled=false",
            "--set", "merge.enabled=false", "--set", "translate.enabled=false",
            "--set", "labels.enabled=false", "--set", "filter.enabled=false"]
    assert main(argv) == 0
    transcribed = {s.name: s for s in read_manifest(out / "manifest.asr.jsonl")}
    assert "happy" in transcribed["talk"].subtitle_en.lower()
    rows = [json.loads(line) for line in (out / "audio-clue.jsonl").read_text().splitlines()]
    talk = next(r for r in rows if r["name"] == "talk")["output"]["measured"]
    # the speaking rate now has words to count: transcript words over VAD speech time
    assert talk["speech_time_source"] == "vad" and 1.0 < talk["words_per_second"] < 5.0
    assert main([*argv]) == 0  # resumed: the same transcribed manifest, nothing redone


def test_infer_transcribes_and_records_the_source(folder, tmp_path):
    pytest.importorskip("transformers")
    import torch

    from affectgpt.model import AffectGPT, load_config

    torch.manual_seed(0)
    model_dir = tmp_path / "model"
    AffectGPT.from_config(load_config("tiny", [
        "video.encoder=face-cnn", "video.feature_dim=128", "video.tokens_per_frame=1",
        "video.frames=4", "audio.encoder=whisper-base-clip", "audio.feature_dim=512",
        "audio.clips=4", "audio.max_positions=4"])).save_pretrained(model_dir)
    manifest = tmp_path / "in.jsonl"
    assert main(["import-videos", "--video-dir", str(folder / "videos"), "--out",
                 str(manifest)]) == 0
    out = tmp_path / "pred.csv"
    assert main(["infer", "--model", str(model_dir), "--manifest", str(manifest), "--out",
                 str(out), "--max-new-tokens", "4", "--quiet"]) == 0
    samples = {s.name: s for s in read_manifest(tmp_path / "pred.manifest.jsonl")}
    assert samples["talk"].subtitle_source == "asr" and "match" in samples["talk"].subtitle_en
    progress = [json.loads(line) for line in (tmp_path / "pred.progress.jsonl").open()]
    assert {r["name"]: r["subtitle_source"] for r in progress} == {"talk": "asr",
                                                                  "silent": "asr"}
