"""The FrozenEncoder contract, on two small concrete encoders (no weights needed)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from affectgpt.encoders.base import FrozenEncoder, resolve_dtype, state_dict_sha256  # noqa: E402


class TinyAudio(FrozenEncoder):
    name = "tiny-audio"
    modality = "audio"
    dim = 8
    sample_rate = 16000

    def __init__(self, dtype=torch.float32, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.proj = torch.nn.Linear(16, self.dim)
        self.drop = torch.nn.Dropout(0.5)
        self.register_buffer("scale", torch.tensor(2.0))
        self.freeze(dtype)

    def preprocessing(self):
        return {"frame": 16}

    def _encode_audio(self, clips):
        frames = clips.reshape(clips.shape[0], -1, 16).to(self.dtype)
        return self.drop(self.proj(frames)).mean(1) * self.scale


class TinyVideo(FrozenEncoder):
    name = "tiny-video"
    modality = "video"
    dim = 4
    tokens_per_clip = 2

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, self.dim * 2)
        self.freeze()

    def _encode_frames(self, frames):
        return self.proj(frames.mean((2, 3))).reshape(-1, 2, self.dim)


def test_always_eval_and_no_grad():
    enc = TinyAudio()
    parent = torch.nn.Sequential(enc, torch.nn.Dropout(0.1))
    parent.train()
    assert parent[1].training and not enc.training and not enc.drop.training
    enc.train(True)
    assert not enc.training
    assert all(not p.requires_grad for p in enc.parameters())
    clips = torch.randn(3, 160)
    a, b = enc(clips), enc.encode_audio(clips)
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # dropout is off
    assert a.shape == (3, 8) and not a.requires_grad
    assert "frozen" in repr(enc)


@pytest.mark.parametrize("dtype", ["float16", "bf16", torch.bfloat16, "torch.float32"])
def test_dtypes(dtype):
    enc = TinyAudio(dtype=dtype)
    assert enc.dtype == resolve_dtype(dtype)
    out = enc.encode_audio(torch.randn(2, 32))
    assert out.dtype == torch.float32
    assert enc.fingerprint()["dtype"] == str(resolve_dtype(dtype)).removeprefix("torch.")


def test_resolve_dtype_rejects_others():
    for bad in ("int8", torch.float64, "float8"):
        with pytest.raises(ValueError):
            resolve_dtype(bad)


def test_fingerprint_tracks_weights():
    a, b = TinyAudio(seed=0), TinyAudio(seed=0)
    fp = a.fingerprint()
    assert json.loads(json.dumps(fp)) == fp
    assert fp == b.fingerprint()
    assert fp["preprocessing"] == {"frame": 16} and fp["encoder"] == "tiny-audio"
    assert TinyAudio(seed=1).fingerprint()["weights_sha256"] != fp["weights_sha256"]
    assert TinyAudio(dtype="float16").fingerprint()["weights_sha256"] != fp["weights_sha256"]
    with torch.no_grad():
        a.scale.mul_(1.5)  # buffers count too; the memo sees in-place changes
    assert a.fingerprint()["weights_sha256"] != fp["weights_sha256"]
    with torch.no_grad():
        b.proj.weight.data = b.proj.weight.data.clone()  # same values, new storage
    assert b.fingerprint() == fp
    assert state_dict_sha256(b) == fp["weights_sha256"]


def test_shape_contracts_and_modality_dispatch():
    audio, video = TinyAudio(), TinyVideo()
    out = video(torch.randn(5, 3, 8, 8))
    assert out.shape == (5, 2, 4)
    with pytest.raises(TypeError):
        audio.encode_frames(torch.randn(1, 3, 8, 8))
    with pytest.raises(TypeError):
        video.encode_audio(torch.randn(1, 16))
    with pytest.raises(ValueError, match="n_clips, samples"):
        audio.encode_audio(torch.randn(16))
    with pytest.raises(ValueError, match="empty"):
        audio.encode_audio(torch.randn(0, 16))
    with pytest.raises(ValueError, match="n_frames, 3, H, W"):
        video.encode_frames(torch.randn(3, 8, 8))
