"""Every bad input raises a typed error that names the file; nothing falls back silently."""

from __future__ import annotations

import pickle
import shutil
import subprocess

import av
import numpy as np
import pytest
from media_fixtures import sine_stereo, write_audio, write_video, write_wav

from affectgpt.media import (
    CorruptMediaError,
    EmptyMediaError,
    MediaError,
    NoAudioStreamError,
    NoVideoStreamError,
    probe,
    read_audio,
    read_frames,
)

READERS = [read_frames, read_audio, probe]


def assert_names_file(error: MediaError, path) -> None:
    assert error.path == str(path)
    assert str(path) in str(error)
    assert error.reason and error.reason in str(error)


@pytest.mark.parametrize("reader", READERS)
def test_missing_file(tmp_path, reader):
    with pytest.raises(FileNotFoundError) as info:
        reader(tmp_path / "nope.mp4")
    assert "nope.mp4" in str(info.value)


@pytest.mark.parametrize("reader", READERS)
def test_directory(tmp_path, reader):
    with pytest.raises(IsADirectoryError):
        reader(tmp_path)


@pytest.mark.parametrize("reader", READERS)
def test_zero_length_file(tmp_path, reader):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(EmptyMediaError) as info:
        reader(path)
    assert_names_file(info.value, path)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(
    "content", [np.random.default_rng(0).bytes(50_000), b"this is not a video\n" * 10]
)
def test_garbage_bytes(tmp_path, reader, content):
    path = tmp_path / "garbage.mp4"
    path.write_bytes(content)
    with pytest.raises(CorruptMediaError) as info:
        reader(path)
    assert_names_file(info.value, path)


@pytest.fixture(scope="module")
def full_mp4(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trunc")
    return write_video(folder / "full.mp4", 100, 25, audio_seconds=4.0)


@pytest.mark.parametrize("reader", READERS)
def test_truncated_mp4_without_index(tmp_path, full_mp4, reader):
    # PyAV writes the index (moov) at the end: half a file has none.
    data = full_mp4.read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptMediaError) as info:
        reader(path)
    assert_names_file(info.value, path)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI not installed")
@pytest.mark.parametrize("reader", READERS)
def test_truncated_mp4_with_index_first(tmp_path, full_mp4, reader):
    faststart = tmp_path / "faststart.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(full_mp4), "-c", "copy",
                    "-movflags", "+faststart", str(faststart)], check=True)
    data = faststart.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(CorruptMediaError, match="truncated") as info:
        reader(path)
    assert_names_file(info.value, path)
    if reader is read_frames:  # even when the wanted frame lies before the cut
        with pytest.raises(CorruptMediaError):
            read_frames(path, 1)


@pytest.mark.parametrize("reader", [read_frames, read_audio])
def test_truncated_matroska(tmp_path, reader):
    full = write_video(tmp_path / "full.mkv", 250, 25, audio_seconds=10.0, audio_codec="libopus")
    data = full.read_bytes()
    path = tmp_path / "cut.mkv"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptMediaError) as info:
        reader(path)
    assert_names_file(info.value, path)


def test_audio_only_file_has_no_frames(tmp_path):
    path = write_wav(tmp_path / "speech.wav", sine_stereo(1.0, 16000), 16000)
    with pytest.raises(NoVideoStreamError) as info:
        read_frames(path)
    assert_names_file(info.value, path)
    m4a = write_audio(tmp_path / "tone.m4a", sine_stereo(1.0, 44100), 44100, "aac")
    with pytest.raises(NoVideoStreamError):
        read_frames(m4a)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI not installed")
def test_cover_art_is_not_a_video(tmp_path):
    from PIL import Image

    mp3 = write_audio(tmp_path / "tone.mp3", sine_stereo(1.0, 44100), 44100, "libmp3lame")
    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "cover.png")
    tagged = tmp_path / "tagged.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(mp3), "-i", str(tmp_path / "cover.png"),
                    "-map", "0", "-map", "1", "-c", "copy", "-disposition:v:0", "attached_pic",
                    str(tagged)], check=True)
    assert len(av.open(str(tagged)).streams.video) == 1
    with pytest.raises(NoVideoStreamError):
        read_frames(tagged)
    info = probe(tagged)
    assert not info.has_video and info.has_audio
    assert read_audio(tagged).size > 10000


def test_video_without_audio(media):
    path = media.video(20, 25)
    with pytest.raises(NoAudioStreamError) as info:
        read_audio(path)
    assert_names_file(info.value, path)
    assert not probe(path).has_audio


def test_video_stream_without_frames(tmp_path):
    path = tmp_path / "no_frames.mkv"
    container = av.open(str(path), "w")
    video = container.add_stream("libx264", rate=25)
    video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
    audio = container.add_stream("flac", rate=16000, layout="mono")
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.int16), format="s16",
                                       layout="mono")
    frame.sample_rate, frame.pts = 16000, 0
    for packet in [*audio.encode(frame), *audio.encode()]:
        container.mux(packet)
    container.close()
    with pytest.raises(EmptyMediaError) as info:
        read_frames(path)
    assert_names_file(info.value, path)
    assert read_audio(path).size == 16000


def test_container_without_packets(tmp_path):
    path = tmp_path / "header_only.mkv"
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    container.start_encoding()
    container.close()
    for reader in READERS:
        with pytest.raises(EmptyMediaError):
            reader(path)


def test_errors_pickle_and_rebuild_from_message():
    error = CorruptMediaError("/data/x.mp4", "cannot open container")
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is CorruptMediaError
    assert (clone.path, clone.reason, str(clone)) == (error.path, error.reason, str(error))
    # PyTorch's DataLoader re-raises worker errors as ``type(message)``.
    rebuilt = CorruptMediaError("Caught CorruptMediaError in DataLoader worker process 0.")
    assert "DataLoader" in str(rebuilt)
    assert issubclass(NoVideoStreamError, MediaError) and issubclass(EmptyMediaError, MediaError)


@pytest.mark.parametrize("reader", [read_audio, probe])
def test_truncated_wav(tmp_path, reader):
    full = write_wav(tmp_path / "full.wav", sine_stereo(2.0, 16000), 16000)
    path = tmp_path / "cut.wav"
    path.write_bytes(full.read_bytes()[:20000])
    with pytest.raises(CorruptMediaError, match="truncated") as info:
        reader(path)
    assert_names_file(info.value, path)
