"""Model-input features against known-good implementations in ``transformers``.

* ``kaldi_fbank`` vs the numpy Kaldi front end that ``ASTFeatureExtractor`` falls back to
  without torchaudio (``transformers.audio_utils.spectrogram`` with Kaldi mel filters).
  Tolerances (log-mel, natural log): float64 input max |diff| < 2e-6 (the reference stores
  the spectrum as complex64); float32 input max |diff| < 2e-3 and mean < 2e-5 (float32 FFT
  noise in near-empty bins).
* ``whisper_log_mel`` vs ``WhisperFeatureExtractor`` (atol 1e-5; identical in practice).
* ``preprocess_frames`` vs ``CLIPImageProcessor``'s PIL backend (atol 1e-5).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affectgpt.media import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    audio_clips,
    imagebind_audio_features,
    kaldi_fbank,
    preprocess_frames,
    whisper_log_mel,
)

audio_utils = pytest.importorskip("transformers.audio_utils")
SR = 16000
LOG_EPS = float(np.log(np.finfo(np.float32).eps))


def reference_fbank(wave: np.ndarray, window: str = "hann", num_bins: int = 128) -> np.ndarray:
    """ImageBind's fbank parameters through transformers' numpy Kaldi implementation."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "at least one mel filter has all zero values"
        filters = audio_utils.mel_filter_bank(
            num_frequency_bins=257, num_mel_filters=num_bins, min_frequency=20,
            max_frequency=SR // 2, sampling_rate=SR, norm=None, mel_scale="kaldi",
            triangularize_in_mel_space=True,
        )
    return audio_utils.spectrogram(
        wave.astype(np.float64), audio_utils.window_function(400, window, periodic=False),
        frame_length=400, hop_length=160, fft_length=512, power=2.0, center=False,
        preemphasis=0.97, mel_filters=filters, log_mel="log",
        mel_floor=float(np.finfo(np.float32).eps), remove_dc_offset=True,
    ).T


def signals(speech_wave) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    return {
        "speech": speech_wave,
        "noise": rng.uniform(-0.5, 0.5, 2 * SR).astype(np.float32),
        "sine": (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
    }


@pytest.mark.parametrize(("window_type", "hf_window"),
                         [("hanning", "hann"), ("povey", "povey"), ("hamming", "hamming")])
def test_kaldi_fbank_matches_transformers(speech_wave, window_type, hf_window):
    for name, wave in signals(speech_wave).items():
        expected = reference_fbank(wave, hf_window)
        exact = kaldi_fbank(torch.from_numpy(wave.astype(np.float64)), window_type=window_type)
        assert exact.dtype == torch.float64 and exact.shape == expected.shape, name
        assert np.abs(exact.numpy() - expected).max() < 2e-6, name
        single = kaldi_fbank(torch.from_numpy(wave), window_type=window_type)
        assert single.dtype == torch.float32
        diff = np.abs(single.double().numpy() - expected)
        assert diff.max() < 2e-3 and diff.mean() < 2e-5, name


def test_kaldi_fbank_shapes_and_options(speech_wave):
    wave = torch.from_numpy(speech_wave[: 2 * SR].astype(np.float64))
    base = kaldi_fbank(wave)
    assert base.shape == (198, 128)  # 1 + (32000 - 400) // 160
    assert kaldi_fbank(wave, num_mel_bins=64).shape == (198, 64)
    assert kaldi_fbank(wave[:399]).shape == (0, 128)
    assert kaldi_fbank(np.stack([speech_wave[:4000], np.zeros(4000, np.float32)]),
                       channel=1).min() == pytest.approx(LOG_EPS)
    # No edge snipping: frames centred on multiples of the shift.
    assert kaldi_fbank(wave, snip_edges=False).shape == ((32000 + 80) // 160, 128)
    assert kaldi_fbank(wave, round_to_power_of_two=False).shape == (198, 128)
    # Energy column: last with htk_compat, first without; the filterbank part is unchanged.
    with_energy = kaldi_fbank(wave, use_energy=True)
    assert with_energy.shape == (198, 129)
    torch.testing.assert_close(with_energy[:, :128], base)
    energy_first = kaldi_fbank(wave, use_energy=True, htk_compat=False)
    torch.testing.assert_close(energy_first[:, 0], with_energy[:, 128])
    frames = wave.unfold(0, 400, 160)
    raw = (frames - frames.mean(1, keepdim=True)).pow(2).sum(1).clamp_min(1.0).log()
    torch.testing.assert_close(with_energy[:, 128], raw)
    centred = kaldi_fbank(wave, subtract_mean=True)
    torch.testing.assert_close(centred.mean(0), torch.zeros(128, dtype=torch.float64),
                               atol=1e-9, rtol=0)
    assert not kaldi_fbank(wave, use_log_fbank=False).lt(0).any()
    dithered = kaldi_fbank(wave, dither=1.0, generator=torch.Generator().manual_seed(0))
    assert dithered.shape == base.shape and not torch.equal(dithered, base)
    with pytest.raises(ValueError):
        kaldi_fbank(wave, window_type="triangle")
    with pytest.raises(ValueError):
        kaldi_fbank(wave, low_freq=9000.0)


def test_kaldi_fbank_silence_hits_the_floor():
    features = kaldi_fbank(torch.zeros(SR))
    torch.testing.assert_close(features, torch.full_like(features, LOG_EPS))


def test_imagebind_features_follow_the_reference(speech_wave):
    features = imagebind_audio_features(speech_wave)
    assert features.shape == (8, 1, 128, 204) and features.dtype == torch.float32
    clips = audio_clips(speech_wave)
    for k in (0, 3, 7):
        clip = clips[k].astype(np.float64)
        expected = reference_fbank(clip - clip.mean()).T  # [128, 198]
        expected = (expected + 4.268) / 9.138
        np.testing.assert_allclose(features[k, 0, :, :198].numpy(), expected, atol=2e-4)
    # Frames 198..203 are zero padding in the log domain, normalised like the rest.
    padding = torch.full((8, 1, 128, 6), 4.268 / 9.138)
    torch.testing.assert_close(features[..., 198:], padding)


def test_imagebind_features_of_short_and_silent_audio():
    silent = imagebind_audio_features(np.zeros(SR // 2, np.float32))
    expected = (LOG_EPS + 4.268) / 9.138
    assert torch.allclose(silent[..., :198], torch.tensor(expected), atol=1e-5)
    tone = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(SR) / SR)).astype(np.float32)
    features = imagebind_audio_features(tone)  # 1 s: padded to 2 s, 8 identical clips
    for k in range(1, 8):
        torch.testing.assert_close(features[k], features[0])
    assert features[0, 0, :, 120:198].max() == pytest.approx(expected, abs=1e-5)  # the pad


@pytest.mark.parametrize("n_mels", [80, 128])
def test_whisper_log_mel_matches_feature_extractor(speech_wave, n_mels):
    transformers = pytest.importorskip("transformers")
    extractor = transformers.WhisperFeatureExtractor(feature_size=n_mels)
    rng = np.random.default_rng(3)
    for wave in (speech_wave, rng.uniform(-0.3, 0.3, 31 * SR).astype(np.float32)):
        expected = extractor(wave, sampling_rate=SR, return_tensors="np").input_features[0]
        ours = whisper_log_mel(wave, SR, n_mels)
        assert ours.shape == (n_mels, 3000)
        np.testing.assert_allclose(ours.numpy(), expected, atol=1e-5)
    with pytest.raises(ValueError):
        whisper_log_mel(speech_wave, 22050)


def _clip_reference(**kwargs):
    try:
        from transformers import CLIPImageProcessorPil as processor
    except ImportError:  # pragma: no cover - older transformers
        from transformers import CLIPImageProcessor as processor
    return processor(**kwargs)


def test_preprocess_frames_matches_clip_processor():
    x = np.linspace(0, 255, 640)[None, :, None] * np.ones((360, 1, 3))
    x[..., 1] = np.linspace(0, 255, 360)[:, None]
    rng = np.random.default_rng(0)
    frames = np.stack([x, x[::-1], rng.uniform(0, 255, x.shape)]).astype(np.uint8)
    centre = preprocess_frames(frames)
    assert centre.shape == (3, 3, 224, 224) and centre.dtype == torch.float32
    expected = _clip_reference()(list(frames), return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(centre.numpy(), expected, atol=1e-5)
    squash = preprocess_frames(frames, crop="resize")
    expected = _clip_reference(size={"height": 224, "width": 224}, do_center_crop=False)(
        list(frames), return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(squash.numpy(), expected, atol=1e-5)


def test_preprocess_frames_crop_modes_and_normalisation():
    frames = np.zeros((1, 100, 300, 3), np.uint8)
    frames[0, :, :100] = (255, 0, 0)
    frames[0, :, 100:200] = (0, 255, 0)
    frames[0, :, 200:] = (0, 0, 255)
    pixels = preprocess_frames(frames, size=32, mean=(0, 0, 0), std=(1, 1, 1))
    assert torch.allclose(pixels[0, 1, 2:-2, 2:-2], torch.ones(28, 28), atol=0.02)  # green
    squashed = preprocess_frames(frames, size=30, mean=(0, 0, 0), std=(1, 1, 1), crop="resize")
    assert squashed[0, 0, :, 2].min() > 0.95 and squashed[0, 2, :, -3].min() > 0.95
    flat = np.full((2, 50, 40, 3), 128, np.uint8)
    for mean, std in ((CLIP_MEAN, CLIP_STD), (IMAGENET_MEAN, IMAGENET_STD)):
        out = preprocess_frames(torch.from_numpy(flat), size=24, mean=mean, std=std)
        expected = (128 / 255 - torch.tensor(mean)) / torch.tensor(std)
        torch.testing.assert_close(out[:, :, 5, 5], expected.expand(2, 3).float())
    with pytest.raises(ValueError):
        preprocess_frames(flat, crop="pad")
    with pytest.raises(ValueError):
        preprocess_frames(flat.astype(np.float32))
