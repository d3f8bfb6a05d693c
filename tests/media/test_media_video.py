"""Frame decoding: the right frames, upright, with few decoded frames."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from media_fixtures import HEIGHT, WIDTH, decode_index, is_upright, pattern_frame

from affectgpt.media import (
    CorruptMediaError,
    probe,
    read_frames,
    sample_frame_indices,
    sample_frames,
)
from affectgpt.media import video as video_module


def returned_indices(frames: np.ndarray) -> list[int]:
    return [decode_index(frame) for frame in frames]


@pytest.mark.parametrize(
    ("num_frames", "fps"),
    [(1, 25), (5, 10), (7, 30000 / 1001), (8, 25), (9, 60), (100, 12.5), (301, 30)],
)
def test_mp4_returns_reference_frames(media, num_frames, fps):
    path = media.video(num_frames, fps)
    frames = read_frames(path, 8)
    assert frames.shape == (8, HEIGHT, WIDTH, 3) and frames.dtype == np.uint8
    assert returned_indices(frames) == sample_frame_indices(num_frames, 8)
    assert all(is_upright(frame) for frame in frames)


@pytest.mark.parametrize(
    ("ext", "codec", "num_frames", "fps"),
    [("mkv", "libx264", 301, 30), ("mkv", "libx264", 7, 25), ("webm", "libvpx", 50, 24),
     ("avi", "mpeg4", 77, 15), ("mov", "libx264", 100, 29.97)],
)
def test_other_containers(media, ext, codec, num_frames, fps):
    path = media.video(num_frames, fps, ext=ext, codec=codec, gop=12)
    result = sample_frames(path, 8)
    assert result.num_frames == num_frames
    assert returned_indices(result.frames) == sample_frame_indices(num_frames, 8)


@pytest.mark.parametrize("n", [1, 4, 16])
def test_other_frame_counts(media, n):
    path = media.video(100, 25)
    assert returned_indices(read_frames(path, n)) == sample_frame_indices(100, n)


def test_metadata_and_timestamps(media):
    path = media.video(100, 25)
    result = sample_frames(path, 8)
    assert result.indices == [0, 12, 25, 37, 50, 62, 75, 87]
    assert result.timestamps == pytest.approx([i / 25 for i in result.indices], abs=1e-6)
    assert result.fps == pytest.approx(25.0)
    assert result.rotation == 0


def test_explicit_indices_any_order(media):
    path = media.video(301, 30)
    wanted = [300, 5, 5, 150, -1, 0, 299, 6]
    result = sample_frames(path, indices=wanted)
    expected = [i % 301 for i in wanted]
    assert returned_indices(result.frames) == expected
    assert result.indices == expected
    with pytest.raises(IndexError):
        sample_frames(path, indices=[301])


def test_random_access_with_b_frames_and_seeking(media):
    # Short GOP + B-frames: every read seeks, skips non-reference pictures, and must still
    # return exactly the requested frames.
    path = media.video(301, 30, gop=10)
    rng = np.random.default_rng(0)
    for _ in range(12):
        wanted = sorted(rng.choice(301, size=8, replace=False).tolist())
        assert returned_indices(sample_frames(path, indices=wanted).frames) == wanted
    consecutive = list(range(40, 60))
    assert returned_indices(sample_frames(path, indices=consecutive).frames) == consecutive


def test_long_video_is_not_fully_decoded(media):
    path = media.video(301, 30, gop=10)
    stats = sample_frames(path, 8).stats
    assert stats["mode"] == "seek" and stats["table"] == "index"
    assert stats["seeks"] >= 7
    # Each target needs at most its GOP prefix: far fewer than the 301 frames.
    assert stats["frames_decoded"] <= 8 * 10


def test_close_targets_decode_forward_without_seeking(media):
    path = media.video(301, 30)  # one keyframe every 250 frames (x264 default)
    stats = sample_frames(path, 8).stats
    assert stats["seeks"] <= 1  # only the jump to the keyframe at frame 250
    assert stats["frames_decoded"] < 264  # non-reference B-frames were skipped
    assert stats["packets_skipped"] > 0


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_variable_frame_rate_uses_timestamps(media, ext):
    rng = np.random.default_rng(1)
    gaps = rng.choice([10, 40, 100, 250], size=120)
    times = np.concatenate([[0], np.cumsum(gaps)[:-1]]).tolist()
    path = media.video(120, 25, ext=ext, frame_times_ms=times, gop=15)
    result = sample_frames(path, 8)
    assert result.num_frames == 120
    expected = sample_frame_indices(120, 8)  # frame index = presentation order
    assert returned_indices(result.frames) == expected
    assert result.timestamps == pytest.approx([times[i] / 1000 for i in expected], abs=2e-3)
    assert result.stats["table"] == "scan"


ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI not installed")


def ffmpeg_frame(path, index: int) -> np.ndarray:
    """Frame ``index`` as the ffmpeg CLI shows it (select filter, autorotate on)."""
    info = probe(path)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{index})",
         "-vsync", "0", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(info.height, info.width, 3)


@ffmpeg
@pytest.mark.parametrize(
    ("rotation", "hflip"), [(90, False), (180, False), (270, False), (90, True), (0, True)]
)
def test_rotation_matches_ffmpeg_autorotate(media, rotation, hflip):
    path = media.video(20, 25, rotation=rotation, hflip=hflip)
    result = sample_frames(path, indices=[7])
    expected = ffmpeg_frame(path, 7)
    assert result.frames[0].shape == expected.shape
    assert np.abs(result.frames[0].astype(int) - expected).mean() < 1.0
    info = probe(path)
    assert (info.rotation, info.mirrored) == (result.rotation, hflip)
    assert (info.width, info.height) == (expected.shape[1], expected.shape[0])


def test_rotated_video_is_upright(media):
    # The display matrix says "rotate 90 degrees counter-clockwise"; undoing that gives back
    # the stored picture, which must then decode as the right frame.
    path = media.video(20, 25, rotation=90)
    result = sample_frames(path, 8)
    assert result.frames.shape == (8, WIDTH, HEIGHT, 3)
    assert result.rotation == 90
    stored = [np.rot90(frame, -1) for frame in result.frames]
    assert returned_indices(stored) == sample_frame_indices(20, 8)
    expected = np.rot90(pattern_frame(result.indices[3]), 1)
    assert np.abs(result.frames[3].astype(int) - expected).mean() < 3


@ffmpeg
def test_pixels_match_ffmpeg_cli(media):
    path = media.video(100, 25)
    result = sample_frames(path, 8)
    for j in (0, 5):
        expected = ffmpeg_frame(path, result.indices[j])
        assert np.abs(result.frames[j].astype(int) - expected).mean() < 1.0


def test_probe_video_with_audio(media):
    path = media.video(50, 25, audio_seconds=2.0)
    info = probe(path)
    assert info.has_video and info.has_audio
    assert info.num_frames == 50 and info.fps == pytest.approx(25)
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert info.rotation == 0 and not info.mirrored
    assert info.sample_rate == 48000 and info.audio_channels == 2
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert info.video_codec == "h264" and info.audio_codec == "aac"


def test_probe_counts_frames_without_header_count(media):
    path = media.video(77, 24, ext="webm", codec="libvpx")
    assert probe(path).num_frames == pytest.approx(77, abs=2)  # duration * fps estimate
    assert probe(path, count_frames=True).num_frames == 77


def test_sequential_fallback_returns_the_same_frames(media, monkeypatch):
    path = media.video(100, 25, gop=10)
    monkeypatch.setattr(video_module, "_decode_by_seeking", lambda *args: None)
    result = sample_frames(path, 8)
    assert result.stats["mode"] == "sequential"
    assert returned_indices(result.frames) == sample_frame_indices(100, 8)
    assert result.timestamps == pytest.approx([i / 25 for i in result.indices], abs=1e-6)


def test_frame_that_cannot_be_decoded_is_an_error_not_a_substitute(media, monkeypatch):
    # A header that promises more frames than the stream holds: the last sampled frames do
    # not exist, and the reader must say so instead of returning other frames.
    path = media.video(40, 25)
    real = video_module._table_from_index

    def inflated(stream):
        table = real(stream)
        step = table.pts[1] - table.pts[0]
        table.pts.extend(table.pts[-1] + step * (j + 1) for j in range(60))
        return table

    monkeypatch.setattr(video_module, "_table_from_index", inflated)
    with pytest.raises(CorruptMediaError, match="could not be decoded") as info:
        read_frames(path, 8)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("ext", "codec", "b_frames", "mode"),
    [
        ("avi", "mpeg4", 2, "seek"),  # AVI stamps frames from 1: calibrated on the first frame
        ("avi", "libx264", None, "sequential"),  # decode-order stamps: picked by ordinal
        ("ts", "libx264", None, "sequential"),  # parser-interpolated stamps after a seek
        ("mpg", "mpeg2video", 2, "sequential"),
        ("mkv", "mpeg2video", 2, "seek"),
    ],
)
def test_containers_with_unreliable_timestamps(media, ext, codec, b_frames, mode):
    path = media.video(301, 25, ext=ext, codec=codec, gop=15, b_frames=b_frames)
    result = sample_frames(path, 8)
    assert result.num_frames == 301
    assert returned_indices(result.frames) == sample_frame_indices(301, 8)
    assert result.stats["mode"] == mode
    wanted = [5, 16, 17, 31, 46, 100, 200, 299]
    assert returned_indices(sample_frames(path, indices=wanted).frames) == wanted
