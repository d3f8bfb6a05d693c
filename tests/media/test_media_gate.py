"""The media gate: local files only, whitelisted formats, no playlists, limits with typed errors."""

from __future__ import annotations

import pickle
import socket
import threading

import pytest
from hostile_media import write_concat_script, write_hls_playlist, write_png, write_silent_flac
from media_fixtures import sine_stereo, write_video, write_wav

from affectgpt.media import (
    DEFAULT_LIMITS,
    DecodedSizeLimitError,
    DurationLimitError,
    MediaError,
    MediaLimitError,
    MediaLimits,
    MediaRefusedError,
    ResolutionLimitError,
    StreamCountLimitError,
    UnsupportedFormatError,
    UnsupportedProtocolError,
    check_media,
    default_limits,
    probe,
    read_audio,
    read_frames,
    set_default_limits,
)
from affectgpt.media import gate as gate_module

READERS = [read_frames, read_audio, probe]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """2 s of 96 x 64 video at 25 fps with a 2 s stereo audio track (two streams)."""
    return write_video(tmp_path_factory.mktemp("gate") / "clip.mp4", 50, 25, audio_seconds=2.0)


@pytest.fixture
def listener():
    """A TCP listener on loopback that counts the connections it gets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    hits: list[bytes] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    hits.append(conn.recv(512))
                except OSError:
                    hits.append(b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], hits
    stop.set()
    thread.join(2)
    server.close()


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/clip.mp4",
    "tcp://127.0.0.1:{port}",
    "concat:{clip}|{clip}",
    "subfile,,start,0,end,0,,:{clip}",
    "pipe:0",
    "file:{clip}",
])
def test_urls_and_protocols_are_refused_before_ffmpeg_sees_them(reader, url, listener, clip):
    port, hits = listener
    target = url.format(port=port, clip=clip)
    with pytest.raises(UnsupportedProtocolError) as info:
        reader(target)
    assert info.value.path == target and "only local files" in str(info.value)
    assert hits == []


def test_a_local_file_whose_name_looks_like_a_protocol_is_read(tmp_path, clip, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "take:1.mp4").write_bytes(clip.read_bytes())
    assert read_frames("take:1.mp4", 2).shape == (2, 64, 96, 3)


def test_nul_in_a_path_is_refused(clip):
    with pytest.raises(UnsupportedProtocolError):
        probe(str(clip) + "\x00.mp4")


@pytest.mark.parametrize("reader", READERS)
def test_hls_playlist_is_refused_and_the_segment_never_read(tmp_path, reader):
    (tmp_path / "private").mkdir()
    secret = write_video(tmp_path / "private" / "secret.ts", 20, 25, audio_seconds=0.8)
    playlist = write_hls_playlist(tmp_path / "upload.m3u8", str(secret))
    with pytest.raises(UnsupportedFormatError, match="HLS") as info:
        reader(playlist)
    assert info.value.path == str(playlist)


def test_the_format_whitelist_alone_stops_playlists(tmp_path, monkeypatch, clip):
    """Second line of defence: with the content sniffing switched off, FFmpeg itself refuses
    the hls and concat demuxers (format_whitelist)."""
    monkeypatch.setattr(gate_module, "_TEXT_SIGNATURES", ())
    secret = write_video(tmp_path / "secret.ts", 20, 25)
    playlist = write_hls_playlist(tmp_path / "upload.m3u8", str(secret))
    (tmp_path / "sibling.mp4").write_bytes(clip.read_bytes())
    script = write_concat_script(tmp_path / "list.txt", "sibling.mp4")
    for path in (playlist, script):
        with pytest.raises(UnsupportedFormatError, match="not one of the accepted formats"):
            read_frames(path)


def test_playlist_with_bom_and_blank_lines_is_still_a_playlist(tmp_path):
    path = tmp_path / "x.mp4"
    path.write_bytes(b"\xef\xbb\xbf\n  #EXTM3U\n#EXTINF:1,\nseg.ts\n")
    with pytest.raises(UnsupportedFormatError, match="HLS"):
        probe(path)


def test_formats_outside_the_whitelist(tmp_path, clip):
    with pytest.raises(UnsupportedFormatError) as info:
        probe(write_png(tmp_path / "photo.mp4"))
    assert "png" in str(info.value) or "accepted formats" in str(info.value)
    # A narrower whitelist refuses MP4 itself: FFmpeg is told which demuxers it may use.
    with pytest.raises(UnsupportedFormatError):
        probe(clip, limits=MediaLimits(formats={"matroska", "webm"}))
    assert probe(clip, limits=MediaLimits(formats={"mov", "mp4"})).has_video


def test_limits_are_validated():
    with pytest.raises(ValueError, match="max_duration"):
        MediaLimits(max_duration=0)
    with pytest.raises(ValueError, match="max_streams"):
        MediaLimits(max_streams=-1)
    with pytest.raises(ValueError, match="cannot be allowed"):
        MediaLimits(formats=DEFAULT_LIMITS.formats | {"hls"})
    with pytest.raises(ValueError, match="non-empty"):
        MediaLimits(formats="mp4")
    assert isinstance(MediaLimits(formats=["wav"]).formats, frozenset)


def test_stream_count_limit(clip):
    with pytest.raises(StreamCountLimitError) as info:
        probe(clip, limits=MediaLimits(max_streams=1))
    error = info.value
    assert (error.limit, error.value, error.maximum) == ("max_streams", 2, 1)
    assert str(clip) in str(error)
    assert probe(clip, limits=MediaLimits(max_streams=2)).has_audio


@pytest.mark.parametrize("limits, which", [
    (MediaLimits(max_width=95), "max_width"),
    (MediaLimits(max_height=63), "max_height"),
    (MediaLimits(max_pixels=96 * 64 - 1), "max_pixels"),
])
def test_resolution_limits(clip, limits, which):
    with pytest.raises(ResolutionLimitError) as info:
        read_frames(clip, 2, limits=limits)
    assert info.value.limit == which


def test_declared_duration_limit(clip):
    with pytest.raises(DurationLimitError) as info:
        read_audio(clip, limits=MediaLimits(max_duration=1.5))
    assert info.value.value == pytest.approx(2.0, abs=0.1) and info.value.maximum == 1.5
    assert read_audio(clip, limits=MediaLimits(max_duration=2.5)).size > 0


def test_decoded_duration_limit_when_the_header_is_silent(tmp_path):
    path = write_silent_flac(tmp_path / "undeclared.flac", 6.0, declare_length=False)
    assert probe(path, limits=MediaLimits(max_duration=2)).duration == 0.0  # header only
    with pytest.raises(DurationLimitError, match="decoded"):
        read_audio(path, limits=MediaLimits(max_duration=2))
    assert read_audio(path, 8000).size == 48000


def test_decoded_size_limit(clip):
    frame_bytes = 64 * 96 * 3
    with pytest.raises(DecodedSizeLimitError) as info:
        read_frames(clip, 8, limits=MediaLimits(max_decoded_bytes=8 * frame_bytes - 1))
    assert info.value.value == 8 * frame_bytes
    assert read_frames(clip, 8, limits=MediaLimits(max_decoded_bytes=8 * frame_bytes)).shape[0] == 8
    with pytest.raises(DecodedSizeLimitError):
        read_audio(clip, 16000, limits=MediaLimits(max_decoded_bytes=2 * 16000 * 4 - 4096))


def test_process_wide_default_limits(tmp_path):
    path = write_wav(tmp_path / "a.wav", sine_stereo(1.0, 8000), 8000)
    previous = set_default_limits(MediaLimits(max_duration=0.5))
    try:
        assert default_limits().max_duration == 0.5
        with pytest.raises(DurationLimitError):
            read_audio(path)
        assert read_audio(path, limits=MediaLimits()).size == 16000  # explicit limits win
    finally:
        set_default_limits(previous)
    assert default_limits() == previous
    assert read_audio(path).size == 16000
    with pytest.raises(TypeError):
        set_default_limits({"max_duration": 1})


def test_check_media(clip, tmp_path):
    check_media(clip)
    with pytest.raises(StreamCountLimitError):
        check_media(clip, MediaLimits(max_streams=1))
    with pytest.raises(UnsupportedFormatError):
        check_media(write_hls_playlist(tmp_path / "a.m3u8", "seg.ts"))


def test_refusals_are_media_errors_that_pickle(tmp_path):
    errors = [
        UnsupportedFormatError("a.mp4", "playlist"),
        UnsupportedProtocolError("http://x", "url"),
        ResolutionLimitError("a.mp4", "too big", 99, 10, "max_width"),
        DurationLimitError("a.mp4", "too long", 3.5, 2.0),
        StreamCountLimitError("a.mp4", "many", 50, 16),
        DecodedSizeLimitError("a.mp4", "large", 10, 5),
    ]
    for error in errors:
        assert isinstance(error, MediaRefusedError) and isinstance(error, MediaError)
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        if isinstance(error, MediaLimitError):
            assert (copy.limit, copy.value, copy.maximum) == (error.limit, error.value,
                                                              error.maximum)
    assert ResolutionLimitError("a", "b", 1, 2, "max_width").limit == "max_width"
    assert DurationLimitError("message only").limit == "max_duration"


@pytest.mark.parametrize("ext", ["mp4", "mkv", "ts"])  # frame table from the index / the packets
def test_video_span_is_checked_even_when_the_header_declares_nothing(tmp_path, monkeypatch, ext):
    path = write_video(tmp_path / f"v.{ext}", 60, 25)  # 2.4 s
    monkeypatch.setattr(gate_module, "_declared_duration", lambda container: None)
    with pytest.raises(DurationLimitError, match="video stream runs past"):
        read_frames(path, 2, limits=MediaLimits(max_duration=1.0))
    assert read_frames(path, 2, limits=MediaLimits(max_duration=3.0)).shape[0] == 2
