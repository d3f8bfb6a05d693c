"""Audio decoding, resampling and the reference clip placement."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from media_fixtures import sine_stereo, write_audio, write_video, write_wav

from affectgpt.media import audio_clip_starts, audio_clips, probe, read_audio

SR = 16000


def dominant_frequency(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return float(np.argmax(spectrum) * rate / wave.size)


def test_wav_at_target_rate_is_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    samples = rng.uniform(-0.9, 0.9, (1, 12345))
    path = write_wav(tmp_path / "mono16k.wav", samples, SR)
    expected = (np.clip(samples[0], -1, 1) * 32767).round().astype(np.int16) / 32768.0
    wave = read_audio(path, SR)
    assert wave.dtype == np.float32 and wave.shape == (12345,)
    np.testing.assert_allclose(wave, expected, atol=1e-7)


def test_stereo_is_averaged_not_summed(tmp_path):
    rng = np.random.default_rng(1)
    samples = rng.uniform(-0.95, 0.95, (2, 8000))
    samples[:, :100] = 0.95  # full-scale, in phase: a summing downmix would exceed 1
    path = write_wav(tmp_path / "stereo16k.wav", samples, SR)
    quantised = (np.clip(samples, -1, 1) * 32767).round() / 32768.0
    wave = read_audio(path, SR)
    np.testing.assert_allclose(wave, quantised.mean(axis=0), atol=1e-6)
    assert np.abs(wave).max() <= 1.0


def test_aac_in_mp4_is_downmixed_and_resampled(media):
    path = media.video(50, 25, audio_seconds=2.0)  # 440 Hz, 0.6 left / 0.2 right, 48 kHz AAC
    wave = read_audio(path, SR)
    assert abs(wave.size - 2 * SR) < 0.05 * SR
    middle = wave[SR // 4 : -SR // 4]
    assert dominant_frequency(middle, SR) == pytest.approx(440, abs=3)
    amplitude = np.sqrt(2) * middle.std()
    assert amplitude == pytest.approx(0.4, abs=0.02)  # (0.6 + 0.2) / 2


def test_resampling_preserves_a_sine(tmp_path):
    rate = 44100
    t = np.arange(rate) / rate
    path = write_wav(tmp_path / "sine44k.wav", (0.5 * np.sin(2 * np.pi * 1000 * t))[None], rate)
    wave = read_audio(path, SR)
    assert abs(wave.size - SR) <= 2
    expected = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(wave.size) / SR)
    core = slice(200, -200)  # away from the filter's edge effects
    assert np.abs(wave[core] - expected[core]).max() < 0.01


def test_upsampling_and_native_rate(tmp_path):
    rng = np.random.default_rng(2)
    path = write_wav(tmp_path / "mono8k.wav", rng.uniform(-0.5, 0.5, (1, 8000)), 8000)
    assert abs(read_audio(path, SR).size - 16000) <= 2
    assert read_audio(path, None).size == 8000


@pytest.mark.parametrize(("codec", "ext"), [("libmp3lame", "mp3"), ("flac", "flac"),
                                            ("libopus", "ogg"), ("aac", "m4a")])
def test_audio_only_formats(tmp_path, codec, ext):
    rate = 48000 if codec == "libopus" else 44100
    path = write_audio(tmp_path / f"tone.{ext}", sine_stereo(1.5, rate), rate, codec)
    wave = read_audio(path, SR)
    assert abs(wave.size - 1.5 * SR) < 0.1 * SR
    assert dominant_frequency(wave[2000:-2000], SR) == pytest.approx(440, abs=3)
    info = probe(path)
    assert info.has_audio and not info.has_video and info.sample_rate == rate


def test_overshooting_samples_are_clipped(tmp_path):
    path = tmp_path / "loud.wav"
    container = av.open(str(path), "w")
    stream = container.add_stream("pcm_f32le", rate=SR, layout="mono")
    frame = av.AudioFrame.from_ndarray(
        np.linspace(-1.5, 1.5, 4000, dtype=np.float32)[None], format="flt", layout="mono"
    )
    frame.sample_rate = SR
    for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    wave = read_audio(path, SR)
    assert wave.max() == 1.0 and wave.min() == -1.0


def test_speech_from_espeak(speech_wave):
    assert speech_wave.dtype == np.float32
    assert 1.5 * SR < speech_wave.size < 6 * SR
    assert 0.05 < np.abs(speech_wave).max() <= 1.0


# --------------------------------------------------------------------------- clip placement


@pytest.mark.parametrize(
    ("seconds", "expected_starts_s"),
    [
        (16, [0, 2, 4, 6, 8, 10, 12, 14]),  # exactly 8 x 2 s: contiguous clips
        (9, [0, 1, 2, 3, 4, 5, 6, 7]),  # spread over [0, 9 - 2]
        (30, [0, 4, 8, 12, 16, 20, 24, 28]),  # gaps between clips
        (2, [0] * 8),
        (1, [0] * 8),  # padded to one clip, all clips identical
    ],
)
def test_clip_starts_reference_rule(seconds, expected_starts_s):
    assert audio_clip_starts(int(seconds * SR), SR, 8, 2.0) == [s * SR for s in expected_starts_s]


def test_clip_starts_overlap_for_short_audio():
    # 4 s: windows start every 2/7 s, floored to whole samples.
    assert audio_clip_starts(4 * SR) == [int(k * Fraction(2, 7) * SR) for k in range(8)]
    assert audio_clip_starts(4 * SR) == [0, 4571, 9142, 13714, 18285, 22857, 27428, 32000]


def test_clip_starts_odd_length():
    num = 3 * SR + 5
    spacing = (Fraction(num / SR) - 2) / 7
    assert audio_clip_starts(num) == [int(k * spacing * SR) for k in range(8)]
    assert audio_clip_starts(num)[-1] + 2 * SR <= num


def test_audio_clips_cut_and_pad():
    wave = np.arange(16 * SR, dtype=np.float32)
    clips = audio_clips(wave)
    assert clips.shape == (8, 2 * SR) and clips.dtype == np.float32
    np.testing.assert_array_equal(clips.reshape(-1), wave)  # 16 s = 8 contiguous clips

    short = np.linspace(0.1, 1.0, SR // 2, dtype=np.float32)  # 0.5 s
    clips = audio_clips(short)
    assert clips.shape == (8, 2 * SR)
    for clip in clips:
        np.testing.assert_array_equal(clip[: short.size], short)
        assert not clip[short.size :].any()

    clips = audio_clips(np.ones(5 * SR, np.float32), n_clips=3, clip_seconds=1.0)
    assert clips.shape == (3, SR)


def test_audio_clips_rejects_bad_input():
    with pytest.raises(ValueError):
        audio_clips(np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError):
        audio_clips(np.zeros(100, np.float32), clip_seconds=0.00001)
    with pytest.raises(ValueError):
        audio_clip_starts(100, n_clips=0)


def test_video_with_audio_gives_both(tmp_path):
    path = write_video(tmp_path / "av.mkv", 30, 25, audio_seconds=1.2, audio_codec="libopus")
    assert abs(read_audio(path, SR).size - 1.2 * SR) < 0.1 * SR


@pytest.mark.parametrize(("ext", "codec"), [("avi", "pcm_s16le"), ("avi", "libmp3lame"),
                                            ("mov", "pcm_s16le"), ("webm", "libopus")])
def test_audio_tracks_of_video_containers(tmp_path, ext, codec):
    # (The containers' packet/sample counts differ from the decoded frames: no false alarm.)
    video_codec = "libvpx" if ext == "webm" else "libx264"
    path = write_video(tmp_path / f"clip.{ext}", 50, 25, codec=video_codec, audio_seconds=2.0,
                       audio_codec=codec)
    wave = read_audio(path, SR)
    assert abs(wave.size - 2 * SR) < 0.05 * SR
    assert dominant_frequency(wave[2000:-2000], SR) == pytest.approx(440, abs=3)
