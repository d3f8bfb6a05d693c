"""Manifests: JSONL/CSV round trips, relative media paths, and errors that name the row."""

import json
from pathlib import Path

import pytest

from affectgpt.data.manifest import (
    ManifestError,
    Sample,
    format_label_list,
    media_report,
    read_manifest,
    write_manifest,
)
from affectgpt.eval.labels import parse_label_list, read_names


def _samples(root: Path) -> list[Sample]:
    (root / "videos").mkdir(parents=True, exist_ok=True)
    inside = root / "videos" / "a.mp4"
    inside.write_bytes(b"x")
    outside = root.parent / f"{root.name}-elsewhere.wav"
    outside.write_bytes(b"x")
    return [
        Sample(name="a", video=str(inside), audio=str(outside),
               subtitle_en='He said "no", then left, didn\'t he?', subtitle_zh="我哪知道啊！我，我，",
               description_en="Line one.\nLine two, with a comma.",
               description_zh="在视频中，他的表情显得严肃。", labels=["happy", "don't believe"],
               split="train", source="test", extra={"cue": "audio", "params": {"pitch": 72}}),
        Sample(name="b"),
        Sample(name="c", labels=["愤怒", "slightly angry"], split="test"),
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_round_trip(tmp_path, suffix):
    root = tmp_path / "ds"
    samples = _samples(root)
    path = write_manifest(samples, root / f"manifest{suffix}")
    assert read_manifest(path) == samples
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_media_paths_are_relative_inside_the_folder(tmp_path, suffix):
    root = tmp_path / "ds"
    samples = _samples(root)
    path = write_manifest(samples, root / f"manifest{suffix}")
    text = path.read_text(encoding="utf-8")
    assert "videos/a.mp4" in text and str(root / "videos") not in text
    assert str(tmp_path / "ds-elsewhere.wav") in text  # outside: stays absolute
    # The folder can move as a whole.
    moved = tmp_path / "moved"
    root.rename(moved)
    again = read_manifest(moved / path.name)
    assert again[0].video == str((moved / "videos" / "a.mp4").resolve())
    assert Path(again[0].video).is_file()


def test_relative_paths_resolve_against_the_manifest_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "m.jsonl"
    path.write_text(json.dumps({"name": "x", "video": "../clips/x.mp4", "audio": ""}) + "\n")
    (sample,) = read_manifest(path)
    assert sample.video == str((tmp_path / "clips" / "x.mp4").resolve())
    assert sample.audio is None
    with pytest.raises(ManifestError, match=r"line 1: video file not found.*sample 'x'"):
        read_manifest(path, check_media=True)


def test_csv_is_readable_by_other_tools(tmp_path):
    path = write_manifest(_samples(tmp_path / "ds"), tmp_path / "ds" / "m.csv")
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == ("name,video,audio,subtitle_en,subtitle_zh,description_en,description_zh,"
                     "labels,split,source,extra,subtitle_source")
    assert read_names(path, split="test") == ["c"]


def test_labels_written_in_csv_parse_back():
    labels = ["happy", "don't believe", 'say "hi"', "a, b"]
    assert parse_label_list(format_label_list(labels)) == labels
    with pytest.raises(ValueError, match="both quote"):
        format_label_list(["it's \"odd\""])


def test_labels_are_normalised(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"name": "a", "labels": ["Happy", "happy", " Sad "]}\n'
                    '{"name": "b", "labels": "[anger, frustration]"}\n')
    a, b = read_manifest(path)
    assert a.labels == ["happy", "sad"] and b.labels == ["anger", "frustration"]


@pytest.mark.parametrize(
    "lines, pattern",
    [
        (['{"name": "a"}', '{"name": "a"}'], r"line 2: duplicate name \(first on line 1\).*sample 'a'"),
        (['{"name": "a"}', "", '{"video": "x.mp4"}'], r"line 3: missing or empty 'name'"),
        (['{"name": "a"}', '{"name": "b", "labels": "happy, sad"}'],
         r"line 2: bad 'labels'.*sample 'b'"),
        (['{"name": "a",}'], r"line 1: not valid JSON"),
        (['["a"]'], r"line 1: expected a JSON object"),
        (['{"name": "a", "lables": []}'], r"line 1: unknown field\(s\) \['lables'\].*sample 'a'"),
        (['{"name": "a", "subtitle_en": 3}'], r"line 1: 'subtitle_en' must be a string"),
        (['{"name": "a", "extra": [1]}'], r"line 1: 'extra' must be an object"),
    ],
)
def test_bad_jsonl_rows_name_line_sample_and_file(tmp_path, lines, pattern):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=pattern) as info:
        read_manifest(path)
    assert "bad.jsonl" in str(info.value)


def test_bad_csv_rows_name_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('name,description_en,labels\na,"two\nlines",[happy]\nb,ok,"[\'x\'"\n',
                    encoding="utf-8")
    with pytest.raises(ManifestError, match=r"line 4: bad 'labels'.*sample 'b'.*bad\.csv"):
        read_manifest(path)
    path.write_text("name,labels\na,[x]\nb,[y],extra-value\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"line 3: expected 2 values, got 3"):
        read_manifest(path)
    path.write_text('name,extra\na,{not json}\n', encoding="utf-8")
    with pytest.raises(ManifestError, match=r"line 2: 'extra' is not JSON.*sample 'a'"):
        read_manifest(path)


def test_unknown_fields_kept_in_extra_when_not_strict(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("name,labels,speaker\na,[happy],spk1\n", encoding="utf-8")
    (sample,) = read_manifest(path, strict=False)
    assert sample.extra == {"speaker": "spk1"} and sample.labels == ["happy"]


def test_write_rejects_bad_input_and_keeps_the_old_file(tmp_path):
    path = write_manifest([Sample(name="a")], tmp_path / "m.csv")
    before = path.read_bytes()
    with pytest.raises(ManifestError, match="duplicate name"):
        write_manifest([Sample(name="x"), Sample(name="x")], path)
    with pytest.raises(ManifestError, match="both quote"):
        write_manifest([Sample(name="x", labels=["it's \"odd\""])], path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]
    with pytest.raises(ManifestError, match="unknown manifest format"):
        write_manifest([], tmp_path / "m.txt")


def test_media_report(tmp_path):
    samples = _samples(tmp_path / "ds")
    assert media_report(samples) == {"samples": 3, "video_missing": 2, "audio_files": 1,
                                     "labelled": 2, "described": 1}
