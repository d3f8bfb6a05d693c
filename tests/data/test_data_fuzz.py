"""Property-based fuzzing of the manifest/CSV readers and the importers: any input gives
samples with safe names or a LabelFormatError (ManifestError, UnsafeSampleNameError), and
nothing is read or written outside the folders the caller named."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from affectgpt.data.importers import import_emer_fine, import_video_folder
from affectgpt.data.manifest import Sample, read_manifest, write_manifest
from affectgpt.eval.labels import LabelFormatError, UnsafeSampleNameError, read_table
from affectgpt.paths import unsafe_name_reason

hostile_names = st.one_of(
    st.text(max_size=16),
    st.sampled_from(["..", ".", "../escape", "..\\escape", "a/b", "/etc/passwd", "C:\\x",
                     "nul\x00byte", "line\nbreak", "bell\x07", "del\x7f", "c1\x85",
                     "sample_00000001", "ok name", "名字", "dots.in.name"]),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                         st.text(max_size=12))
field_values = st.one_of(json_scalars, st.lists(st.text(max_size=6), max_size=3),
                         st.dictionaries(st.text(max_size=4), json_scalars, max_size=2))
FIELDS = ["name", "video", "audio", "subtitle_en", "subtitle_zh", "description_en",
          "description_zh", "labels", "split", "source", "extra", "unknown"]
rows = st.lists(
    st.fixed_dictionaries({"name": st.one_of(hostile_names, json_scalars)},
                          optional={k: field_values for k in FIELDS[1:]}),
    max_size=5,
)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _write_rows(path: Path, records: list[dict]) -> None:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                        encoding="utf-8")
        return
    header = sorted({k for r in records for k in r} | {"name"})
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for r in records:
            writer.writerow([json.dumps(r[k]) if isinstance(r.get(k), (dict, list))
                             else r.get(k, "") for k in header])


def _check_read(path: Path) -> list:
    try:
        samples = read_manifest(path, strict=False)
    except UnsafeSampleNameError as exc:
        assert exc.path == str(path) and exc.line is not None and str(path) in str(exc)
        assert unsafe_name_reason(exc.name) is not None
        return []
    except LabelFormatError:  # ManifestError is one
        return []
    for sample in samples:
        assert unsafe_name_reason(sample.name) is None
    return samples


@given(rows, st.sampled_from([".jsonl", ".csv"]))
def test_manifest_rows_read_back_or_fail_typed(tmp_path, records, suffix):
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        root = Path(folder)
        (root / "data").mkdir()
        path = root / "data" / f"manifest{suffix}"
        _write_rows(path, records)
        before = _tree(root)
        samples = _check_read(path)
        assert _tree(root) == before  # reading writes nothing
        if samples:
            out = root / "out" / f"copy{suffix}"
            try:
                write_manifest(samples, out)
            except LabelFormatError:
                return  # e.g. a label holding both quote characters cannot be written as CSV
            changed = {k for k, v in _tree(root).items() if before.get(k) != v}
            assert changed == {str(out.relative_to(root))}
            again = read_manifest(out, strict=False)
            assert [s.name for s in again] == [s.name for s in samples]


@given(st.binary(max_size=400), st.sampled_from([".jsonl", ".csv"]))
@example(b'{"name": "a"}\n{"name": "../b"}\n', ".jsonl")
@example(b"name,labels\nok,[]\n/abs,[]\n", ".csv")
@example(b"name,labels\n\xff\xfe,[]\n", ".csv")
@example(b'name\n"unterminated\n', ".csv")
@example(b"[" * 5000 + b"\n", ".jsonl")
def test_manifest_reader_on_random_bytes(tmp_path, data, suffix):
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        path = Path(folder) / f"m{suffix}"
        path.write_bytes(data)
        _check_read(path)
        assert [p.name for p in Path(folder).iterdir()] == [path.name]


@given(st.binary(max_size=300), st.sampled_from([".csv", ".tsv", ".jsonl", ".json"]))
@example(b"[" * 5000, ".json")
@example(b"name,openset\na,b,c,d\n", ".csv")
@example(b"name,openset\n" + b"x" * 200_000 + b"\n", ".csv")
def test_table_reader_on_random_bytes(tmp_path, data, suffix):
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        path = Path(folder) / f"t{suffix}"
        path.write_bytes(data)
        try:
            rows = read_table(path)
        except LabelFormatError:
            return
        assert all(isinstance(r, dict) for r in rows)


@given(st.lists(st.tuples(hostile_names, st.text(max_size=8)), min_size=1, max_size=5))
def test_emer_fine_import_never_looks_outside_the_video_folder(tmp_path, table):
    """Names from the CSVs pick the videos: an unsafe name is refused with file and line,
    and every video found lies directly in the video folder (a video planted next to it,
    reachable with '../', is never picked)."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        root = Path(folder)
        videos = root / "videos"
        videos.mkdir()
        (root / "escape.mp4").write_bytes(b"\x00")  # what '../escape' would find
        for name, _ in table:
            if unsafe_name_reason(name) is None and name.strip() == name:
                try:
                    (videos / f"{name}.mp4").write_bytes(b"\x00")
                except OSError:
                    pass
        reason, labels = root / "reason.csv", root / "labels.csv"
        with open(reason, "w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows([("name", "chinese", "english"), *[(n, t, t)
                                                                         for n, t in table]])
        with open(labels, "w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows([("name", "openset"), *[(n, "['happy']") for n, _ in table]])
        try:
            samples = import_emer_fine(reason, labels, video_dir=videos)
        except UnsafeSampleNameError as exc:
            assert exc.path in (str(reason), str(labels)) and exc.line is not None
            return
        except LabelFormatError:
            return
        for sample in samples:
            assert unsafe_name_reason(sample.name) is None
            if sample.video is not None:
                assert Path(sample.video).parent == videos.resolve()


def test_unsafe_manifest_names_name_the_file_and_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"name": "fine"}\n\n{"name": "../../outside"}\n', encoding="utf-8")
    with pytest.raises(UnsafeSampleNameError) as info:
        read_manifest(path)
    error = info.value
    assert (error.path, error.line, error.name) == (str(path), 3, "../../outside")
    assert str(error).startswith(f"{path}, line 3: sample name '../../outside'")
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("name,labels\nfine,[]\n\"multi\nline\",[]\n", encoding="utf-8")
    with pytest.raises(UnsafeSampleNameError, match="line 3: .*control character"):
        read_manifest(csv_path)
    for bad in ("a/b", "/abs", "nul\x00", "..", "C:x"):
        with pytest.raises(UnsafeSampleNameError):
            write_manifest([Sample(name=bad)], tmp_path / "w.jsonl")
    assert not (tmp_path / "w.jsonl").exists()


def test_unsafe_subtitle_names_in_an_emer_import(tmp_path):
    reason = tmp_path / "reason.csv"
    reason.write_text("name,chinese,english\nfine,中,en\n../secret,中,en\n", encoding="utf-8")
    with pytest.raises(UnsafeSampleNameError) as info:
        import_emer_fine(reason, reason)
    assert info.value.line == 3 and info.value.path == str(reason)
    assert isinstance(info.value, LabelFormatError)  # what the CLI reports as bad input


def _tiny_video(path: Path) -> Path:
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(5):
            image = np.full((32, 32, 3), 50 * i, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_video_folder_import_gates_every_video(tmp_path, caplog):
    folder = tmp_path / "clips"
    folder.mkdir()
    _tiny_video(folder / "good.mp4")
    (folder / "playlist.mp4").write_text("#EXTM3U\n#EXTINF:1,\n/etc/hosts.ts\n")
    (folder / "empty.avi").write_bytes(b"")
    (folder / "noise.mkv").write_bytes(os.urandom(2000))
    samples = import_video_folder(folder)
    assert [s.name for s in samples] == ["good"]
    for name in ("playlist.mp4", "empty.avi", "noise.mkv"):
        assert f"left out {folder.resolve() / name}" in caplog.text
    assert "HLS" in caplog.text and "3 of 4 video(s) refused" in caplog.text
    assert [s.name for s in import_video_folder(folder, check_media=False)] == [
        "empty", "good", "noise", "playlist"]
