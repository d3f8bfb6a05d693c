"""Model-input transforms in torch: frame normalisation and audio filterbank features.

* :func:`preprocess_frames` -- resize/crop/normalise frames for EVA-CLIP / BLIP-2 / CLIP.
* :func:`kaldi_fbank` -- Kaldi's ``compute-fbank-feats`` (the semantics of
  ``torchaudio.compliance.kaldi.fbank``), without torchaudio.
* :func:`imagebind_audio_features` -- the ImageBind audio input of the reference: 8 clips of
  2 s, 128-bin log-mel filterbanks of 204 frames, normalised with mean -4.268 and std 9.138.
* :func:`whisper_log_mel` -- the log-mel spectrogram of ``WhisperFeatureExtractor``.

This module needs ``torch`` (the ``model`` extra); the decoders in
:mod:`affectgpt.media.video` and :mod:`affectgpt.media.audio` do not.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from .audio import audio_clips

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "IMAGEBIND_AUDIO_MEAN",
    "IMAGEBIND_AUDIO_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "imagebind_audio_features",
    "kaldi_fbank",
    "kaldi_mel_banks",
    "preprocess_frames",
    "whisper_log_mel",
    "whisper_mel_filters",
]

#: Pixel statistics of OpenAI CLIP, also used by EVA-CLIP and BLIP-2 (RGB, on [0, 1]).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: ImageNet pixel statistics (RGB, on [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Normalisation of ImageBind's audio log-mel input (its ``load_and_transform_audio_data``).
IMAGEBIND_AUDIO_MEAN = -4.268
IMAGEBIND_AUDIO_STD = 9.138

_CROPS = ("center", "resize")


# --------------------------------------------------------------------------- frames


def preprocess_frames(
    frames: np.ndarray | torch.Tensor,
    size: int = 224,
    mean: tuple[float, float, float] = CLIP_MEAN,
    std: tuple[float, float, float] = CLIP_STD,
    crop: str = "center",
    interpolation: str = "bicubic",
    *,
    face_crop: bool = False,
) -> torch.Tensor:
    """Turn ``[n, H, W, 3]`` uint8 RGB frames into a normalised ``[n, 3, size, size]`` tensor.

    Resizing uses Pillow (antialiased, the behaviour of torchvision transforms on PIL images,
    as in the CLIP / EVA-CLIP / BLIP-2 preprocessing), then pixels are scaled to ``[0, 1]``
    and normalised per channel with ``(x - mean) / std``.

    Args:
        frames: uint8 frames ``[n, H, W, 3]`` (e.g. from :func:`~affectgpt.media.read_frames`).
        size: output side length (224 for EVA-CLIP ViT-g/14).
        mean, std: per-channel statistics (default: CLIP's).
        crop: ``"center"`` resizes the shorter side to ``size`` and takes the central square
            (CLIP's eval transform; keeps the aspect ratio). ``"resize"`` squashes the whole
            frame to ``size x size`` -- what the Video-LLaMA / AffectGPT reference does
            (decord decodes straight to 224x224), so use it to reproduce the reference.
        interpolation: ``"bicubic"`` (default), ``"bilinear"`` or ``"nearest"``.
        face_crop: first replace the frames by square crops around the clip's face
            (:func:`~affectgpt.media.crop_faces` with its defaults: median box, margin 0.25;
            needs OpenCV, ``pip install 'affectgpt[faces]'``). A clip without a detectable
            face keeps its full frames (centre square). To know whether a face was found, or
            to change the crop options, call :func:`~affectgpt.media.crop_faces` yourself and
            pass its ``frames`` here instead.

    Returns:
        float32 tensor ``[n, 3, size, size]``.
    """
    from PIL import Image

    if crop not in _CROPS:
        raise ValueError(f"crop must be one of {_CROPS}, got {crop!r}")
    resample = {
        "bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST,
    }.get(interpolation)
    if resample is None:
        raise ValueError(f"unknown interpolation {interpolation!r}")
    if isinstance(frames, torch.Tensor):
        frames = frames.cpu().numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames [n, H, W, 3], got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {frames.dtype}")
    if face_crop and frames.shape[0]:
        from .faces import crop_faces

        frames = crop_faces(frames).frames

    out = np.empty((frames.shape[0], size, size, 3), np.uint8)
    for i, frame in enumerate(frames):
        image = Image.fromarray(frame)
        width, height = image.size
        if crop == "resize":
            image = image.resize((size, size), resample)
        else:
            # torchvision Resize(int): shorter side -> size, longer side truncated.
            if width <= height:
                new_w, new_h = size, int(size * height / width)
            else:
                new_w, new_h = int(size * width / height), size
            if (new_w, new_h) != (width, height):
                image = image.resize((new_w, new_h), resample)
            left = int(round((new_w - size) / 2.0))
            top = int(round((new_h - size) / 2.0))
            image = image.crop((left, top, left + size, top + size))
        out[i] = np.asarray(image)
    tensor = torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return tensor.sub_(mean_t).div_(std_t).contiguous()


# --------------------------------------------------------------------------- Kaldi fbank

_FLOAT_EPS = torch.finfo(torch.float32).eps  # Kaldi/torchaudio's log floor, also for float64


def _mel(freq):
    return 1127.0 * np.log(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


@functools.lru_cache(maxsize=32)
def _kaldi_mel_banks_np(
    num_bins: int, padded_window: int, sample_rate: float, low_freq: float, high_freq: float
) -> np.ndarray:
    num_fft_bins = padded_window // 2
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise ValueError(
            f"bad frequency range low_freq={low_freq}, high_freq={high_freq} for "
            f"sample_rate={sample_rate}"
        )
    mel_low, mel_high = _mel(low_freq), _mel(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    index = np.arange(num_bins, dtype=np.float64)[:, None]
    left = mel_low + index * delta
    center = mel_low + (index + 1.0) * delta
    right = mel_low + (index + 2.0) * delta
    mel = _mel(sample_rate / padded_window * np.arange(num_fft_bins))[None, :]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = np.maximum(0.0, np.minimum(up, down))
    # One more column for the Nyquist bin, whose weight is always zero in Kaldi.
    return np.pad(banks, ((0, 0), (0, 1)))


def kaldi_mel_banks(
    num_bins: int = 128,
    padded_window: int = 512,
    sample_rate: float = 16000,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
) -> torch.Tensor:
    """Kaldi's triangular mel filters (HTK mel scale, triangles in mel space, unnormalised).

    Returns ``[num_bins, padded_window // 2 + 1]`` float64 (the last, Nyquist, column is 0).
    ``high_freq <= 0`` counts down from the Nyquist frequency.
    """
    banks = _kaldi_mel_banks_np(num_bins, padded_window, float(sample_rate), low_freq, high_freq)
    return torch.from_numpy(banks.copy())


def _window(window_type: str, size: int, blackman_coeff: float, dtype) -> torch.Tensor:
    if window_type == "hanning":
        return torch.hann_window(size, periodic=False, dtype=dtype)
    if window_type == "hamming":
        return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46, dtype=dtype)
    if window_type == "povey":
        return torch.hann_window(size, periodic=False, dtype=dtype).pow(0.85)
    if window_type == "rectangular":
        return torch.ones(size, dtype=dtype)
    if window_type == "blackman":
        n = torch.arange(size, dtype=dtype)
        a = 2 * math.pi / (size - 1)
        return blackman_coeff - 0.5 * torch.cos(a * n) + (0.5 - blackman_coeff) * torch.cos(2 * a * n)
    raise ValueError(f"unknown window_type {window_type!r}")


def _frames(wave: torch.Tensor, size: int, shift: int, snip_edges: bool) -> torch.Tensor:
    """Split ``[samples]`` into ``[frames, size]`` the way Kaldi does."""
    count = wave.numel()
    if snip_edges:
        if count < size:
            return wave.new_empty((0, size))
        return wave.unfold(0, size, shift)
    # Kaldi without edge snipping: frames centred on multiples of the shift, with the signal
    # reflected at both ends.
    num = (count + shift // 2) // shift
    if num == 0:
        return wave.new_empty((0, size))
    pad = size // 2 - shift // 2
    flipped = torch.flip(wave, [0])
    if pad > 0:
        padded = torch.cat((flipped[-pad:], wave, flipped))
    else:
        padded = torch.cat((wave[-pad:], flipped))
    return padded.unfold(0, size, shift)[:num]


def kaldi_fbank(
    wave: torch.Tensor | np.ndarray,
    sample_rate: float = 16000,
    num_mel_bins: int = 128,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    *,
    window_type: str = "hanning",
    preemphasis: float = 0.97,
    remove_dc_offset: bool = True,
    dither: float = 0.0,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    use_energy: bool = False,
    htk_compat: bool = True,
    raw_energy: bool = True,
    energy_floor: float = 1.0,
    use_power: bool = True,
    use_log_fbank: bool = True,
    round_to_power_of_two: bool = True,
    snip_edges: bool = True,
    subtract_mean: bool = False,
    blackman_coeff: float = 0.42,
    channel: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Kaldi log-mel filterbank features (``torchaudio.compliance.kaldi.fbank`` semantics).

    Per frame of ``frame_length_ms`` every ``frame_shift_ms``: optional dither, DC offset
    removal, pre-emphasis ``x[t] - preemphasis * x[t-1]`` (first sample against itself),
    window, zero-padding to a power of two, power spectrum, Kaldi mel filters (HTK mel scale,
    ``low_freq`` .. ``high_freq``), natural log floored at float32 epsilon.

    The defaults are those ImageBind (and AST) use -- Hanning window, 128 bins, no dither,
    ``use_energy=False``, ``htk_compat=True`` -- not torchaudio's own defaults (Povey window,
    23 bins, dither 0). Every option has torchaudio's meaning; VTLN warping is not supported.

    Args:
        wave: ``[samples]`` or ``[channels, samples]`` (then ``channel`` is used), any float
            dtype (computation happens in that dtype; integers become float32). Kaldi expects
            16-bit-scaled samples but the features of ``[-1, 1]`` input differ only by a
            constant offset, and ImageBind uses ``[-1, 1]``.
        sample_rate: sampling frequency in Hz.
        num_mel_bins: number of triangular mel filters.
        frame_length_ms, frame_shift_ms: frame length and hop in milliseconds.
        generator: random generator for ``dither``.

    Returns:
        ``[frames, num_mel_bins]`` (plus one energy column when ``use_energy``: last with
        ``htk_compat``, else first). ``frames = 1 + (samples - length) // shift`` with
        ``snip_edges`` (0 if the input is shorter than one frame).
    """
    wave = torch.as_tensor(wave)
    if not wave.is_floating_point():
        wave = wave.float()
    if wave.dim() == 2:
        wave = wave[max(channel, 0)]
    elif wave.dim() != 1:
        raise ValueError(f"expected [samples] or [channels, samples], got {tuple(wave.shape)}")
    dtype = wave.dtype
    size = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    if size < 2 or shift < 1:
        raise ValueError("frame length/shift too small for this sample rate")
    padded = 1 << (size - 1).bit_length() if round_to_power_of_two else size
    eps = torch.tensor(_FLOAT_EPS, dtype=dtype)

    frames = _frames(wave, size, shift, snip_edges)
    if frames.shape[0] == 0:  # shorter than one frame
        return wave.new_zeros((0, num_mel_bins + int(use_energy)))
    if dither != 0.0:
        noise = torch.randn(frames.shape, generator=generator, dtype=dtype, device=frames.device)
        frames = frames + dither * noise
    if remove_dc_offset:
        frames = frames - frames.mean(dim=1, keepdim=True)
    energy = None
    if use_energy and raw_energy:
        energy = _log_energy(frames, eps, energy_floor)
    if preemphasis != 0.0:
        previous = torch.cat((frames[:, :1], frames[:, :-1]), dim=1)
        frames = frames - preemphasis * previous
    frames = frames * _window(window_type, size, blackman_coeff, dtype)
    if use_energy and not raw_energy:
        energy = _log_energy(frames, eps, energy_floor)
    if padded > size:
        frames = torch.nn.functional.pad(frames, (0, padded - size))

    spectrum = torch.fft.rfft(frames).abs()
    if use_power:
        spectrum = spectrum.pow(2.0)
    banks = kaldi_mel_banks(num_mel_bins, padded, sample_rate, low_freq, high_freq).to(dtype)
    features = spectrum @ banks.T
    if use_log_fbank:
        features = torch.maximum(features, eps).log()
    if energy is not None:
        column = energy.unsqueeze(1)
        features = torch.cat((features, column) if htk_compat else (column, features), dim=1)
    if subtract_mean and features.shape[0]:
        features = features - features.mean(dim=0, keepdim=True)
    return features


def _log_energy(frames: torch.Tensor, eps: torch.Tensor, energy_floor: float) -> torch.Tensor:
    energy = torch.maximum(frames.pow(2).sum(dim=1), eps).log()
    if energy_floor == 0.0:
        return energy
    return torch.maximum(energy, torch.tensor(math.log(energy_floor), dtype=energy.dtype))


# --------------------------------------------------------------------------- ImageBind audio


def imagebind_audio_features(
    wave: np.ndarray,
    sample_rate: int = 16000,
    n_clips: int = 8,
    *,
    clip_seconds: float = 2.0,
    num_mel_bins: int = 128,
    target_length: int = 204,
    mean: float = IMAGEBIND_AUDIO_MEAN,
    std: float = IMAGEBIND_AUDIO_STD,
) -> torch.Tensor:
    """ImageBind's audio input for one waveform: ``[n_clips, 1, num_mel_bins, target_length]``.

    Follows the reference (``load_and_transform_audio_data`` as AffectGPT calls it):

    1. clips placed by :func:`~affectgpt.media.audio_clips` (audio shorter than 2 s is
       zero-padded to 2 s; ``n_clips`` windows of 2 s spread evenly over the audio);
    2. per clip: subtract the clip's mean, :func:`kaldi_fbank` with a Hanning window,
       ``htk_compat``, no energy, no dither, 25 ms / 10 ms frames (198 frames for 2 s at
       16 kHz), transposed to ``[bins, frames]``;
    3. zero-pad (or cut) the frame axis to ``target_length`` -- the padding is 0 in the log
       domain, before normalisation, exactly as the reference;
    4. normalise with ``(x - mean) / std``.

    Args:
        wave: ``[samples]`` mono waveform at ``sample_rate`` (16 kHz for ImageBind), as
            returned by :func:`~affectgpt.media.read_audio`.

    Returns:
        float32 tensor ``[n_clips, 1, num_mel_bins, target_length]``.
    """
    clips = audio_clips(np.asarray(wave, dtype=np.float32), sample_rate, n_clips, clip_seconds)
    out = torch.zeros((n_clips, 1, num_mel_bins, target_length), dtype=torch.float32)
    for k, clip in enumerate(torch.from_numpy(np.ascontiguousarray(clips))):
        clip = clip - clip.mean()
        fbank = kaldi_fbank(clip, sample_rate, num_mel_bins).T  # [bins, frames]
        frames = min(fbank.shape[1], target_length)
        out[k, 0, :, :frames] = fbank[:, :frames]
    return (out - mean) / std


# --------------------------------------------------------------------------- Whisper


def _hz_to_mel_slaney(freq: np.ndarray) -> np.ndarray:
    freq = np.asarray(freq, dtype=np.float64)
    mels = 3.0 * freq / 200.0
    log_region = freq >= 1000.0
    logstep = 27.0 / np.log(6.4)
    return np.where(log_region, 15.0 + np.log(np.maximum(freq, 1e-10) / 1000.0) * logstep, mels)


def _mel_to_hz_slaney(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    freqs = 200.0 * mels / 3.0
    logstep = np.log(6.4) / 27.0
    return np.where(mels >= 15.0, 1000.0 * np.exp(logstep * (mels - 15.0)), freqs)


@functools.lru_cache(maxsize=8)
def _whisper_filters_np(n_mels: int, n_fft: int, sample_rate: int) -> np.ndarray:
    fft_freqs = np.linspace(0, sample_rate // 2, 1 + n_fft // 2)
    mel_points = np.linspace(
        _hz_to_mel_slaney(0.0), _hz_to_mel_slaney(sample_rate / 2.0), n_mels + 2
    )
    hz_points = _mel_to_hz_slaney(mel_points)
    widths = np.diff(hz_points)
    slopes = hz_points[None, :] - fft_freqs[:, None]  # [freqs, n_mels + 2]
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(down, up))  # [freqs, n_mels]
    filters *= 2.0 / (hz_points[2 : n_mels + 2] - hz_points[:n_mels])  # Slaney area norm
    return filters.T  # [n_mels, freqs]


def whisper_mel_filters(n_mels: int = 80, n_fft: int = 400, sample_rate: int = 16000) -> torch.Tensor:
    """Whisper's mel filters: Slaney mel scale and area normalisation, 0 Hz .. Nyquist.

    Returns ``[n_mels, n_fft // 2 + 1]`` float32.
    """
    return torch.from_numpy(_whisper_filters_np(n_mels, n_fft, sample_rate).astype(np.float32))


def whisper_log_mel(
    wave: np.ndarray | torch.Tensor,
    sample_rate: int = 16000,
    n_mels: int = 80,
    *,
    n_fft: int = 400,
    hop_length: int = 160,
    chunk_seconds: int = 30,
) -> torch.Tensor:
    """Whisper's log-mel input: ``[n_mels, chunk_seconds * sample_rate // hop_length]``.

    The computation of ``WhisperFeatureExtractor``: the waveform is zero-padded or cut to
    30 s, then a centred STFT (400-point periodic Hann window, hop 160, reflect padding; the
    last frame dropped), power spectrum, Slaney mel filters, ``log10`` floored at ``1e-10``,
    clamped to ``max - 8``, and mapped with ``(x + 4) / 4``.

    Args:
        wave: ``[samples]`` mono waveform at 16 kHz.
        sample_rate: must be 16000 (Whisper's rate; use ``read_audio(path, 16000)``).
        n_mels: 80 (Whisper up to large-v2) or 128 (large-v3).

    Returns:
        float32 tensor ``[n_mels, 3000]`` for the defaults.
    """
    if sample_rate != 16000:
        raise ValueError(f"Whisper expects 16 kHz audio, got sample_rate={sample_rate}")
    if isinstance(wave, torch.Tensor):
        wave = wave.to(torch.float32)
    else:
        wave = torch.from_numpy(np.asarray(wave, dtype=np.float32))
    if wave.dim() != 1:
        raise ValueError(f"expected a mono waveform [samples], got {tuple(wave.shape)}")
    length = chunk_seconds * sample_rate
    if wave.numel() >= length:
        wave = wave[:length]
    else:
        wave = torch.nn.functional.pad(wave, (0, length - wave.numel()))
    window = torch.hann_window(n_fft, dtype=torch.float32)
    stft = torch.stft(wave, n_fft, hop_length, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = whisper_mel_filters(n_mels, n_fft, sample_rate) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0
