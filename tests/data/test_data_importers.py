"""Importers on the shared EMER-Fine files (read by path) and on folders of videos."""

import logging

import pytest

from affectgpt.data.importers import import_emer_fine, import_video_folder
from affectgpt.data.manifest import ManifestError, read_manifest, write_manifest
from affectgpt.eval.labels import read_labels


@pytest.fixture(scope="module")
def emer(emer_fine_files):
    return import_emer_fine(emer_fine_files["reason"], emer_fine_files["labels"],
                            emer_fine_files["subtitles"])


def test_emer_fine_has_332_complete_samples(emer, emer_fine_files):
    assert len(emer) == 332 and len({s.name for s in emer}) == 332
    assert emer[0].name == "sample_00000000"
    gold = read_labels(emer_fine_files["labels"])
    for s in emer:
        assert s.labels and s.labels == gold[s.name]
        assert len(s.description_en.split()) > 50 and s.description_zh
        assert bool(s.subtitle_en) == bool(s.subtitle_zh)
        assert s.video is None and s.source == "emer-fine"
    # 20 clips have no speech: their subtitle rows are empty.
    assert sum(not s.subtitle_en for s in emer) == 20
    first = emer[0]
    assert first.labels[:3] == ["pleasurable", "self-deprecating", "relaxed"]
    assert first.subtitle_zh.startswith("我哪知道啊")
    assert first.description_en.startswith("In the video, the opening scene shows a male")
    mean_words = sum(len(s.description_en.split()) for s in emer) / len(emer)
    assert 150 < mean_words < 300  # "about 219 English words each"


def test_emer_fine_manifest_round_trip(emer, tmp_path):
    path = write_manifest(emer, tmp_path / "emer-fine.jsonl")
    assert read_manifest(path) == emer
    path = write_manifest(emer, tmp_path / "emer-fine.csv")
    assert read_manifest(path) == emer


def test_emer_fine_videos_found_and_missing_ones_reported(emer_fine_files, tmp_path, caplog):
    (tmp_path / "sample_00000000.mp4").write_bytes(b"\x00")
    (tmp_path / "sample_00000007.AVI").write_bytes(b"\x00")
    with caplog.at_level(logging.WARNING, logger="affectgpt.data.importers"):
        samples = import_emer_fine(emer_fine_files["reason"], emer_fine_files["labels"],
                                   video_dir=tmp_path)
    by_name = {s.name: s for s in samples}
    assert by_name["sample_00000000"].video == str(tmp_path / "sample_00000000.mp4")
    assert by_name["sample_00000007"].video == str(tmp_path / "sample_00000007.AVI")
    assert sum(s.video is None for s in samples) == 330
    assert "330 of 332 EMER-Fine samples have no video" in caplog.text
    assert all(s.subtitle_en == "" for s in samples)  # no subtitles file given


def test_emer_fine_sample_without_labels_is_an_error(emer_fine_files, tmp_path):
    lines = emer_fine_files["labels"].read_text(encoding="utf-8").splitlines()
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(line for line in lines if "sample_00000021" not in line) + "\n")
    with pytest.raises(ManifestError, match=r"1 sample\(s\) have no gold labels.*sample_00000021"):
        import_emer_fine(emer_fine_files["reason"], labels)


def test_video_folder_with_subtitles(tmp_path, caplog):
    videos = tmp_path / "clips"
    videos.mkdir()
    for name in ("b.avi", "a.mp4", "notes.txt", ".hidden.mp4"):
        (videos / name).write_bytes(b"\x00")
    subs = tmp_path / "subtitle.csv"
    subs.write_text("name,chinese,english\na,你好。,Hello.\nz,再见,Bye\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="affectgpt.data.importers"):
        samples = import_video_folder(videos, subs, check_media=False)  # 1-byte stand-ins
    assert [s.name for s in samples] == ["a", "b"]
    assert (samples[0].subtitle_en, samples[0].subtitle_zh) == ("Hello.", "你好。")
    assert samples[1].subtitle_en == "" and samples[1].video == str(videos / "b.avi")
    assert samples[0].source == "clips"
    assert "1 video(s) without a subtitle row, 1 subtitle row(s) without a video" in caplog.text


def test_video_folder_errors(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"\x00")
    (tmp_path / "a.mkv").write_bytes(b"\x00")
    with pytest.raises(ManifestError, match="two videos for one name"):
        import_video_folder(tmp_path)
    with pytest.raises(FileNotFoundError):
        import_video_folder(tmp_path / "nope")
    (tmp_path / "a.mkv").unlink()
    subs = tmp_path / "subs.csv"
    subs.write_text("name,text\na,hello\n")
    with pytest.raises(ManifestError, match="lacks column"):
        import_video_folder(tmp_path, subs)
