"""ImageBind audio encoder: official checkpoint names and shapes, checkpoint round trips
(fake checkpoints written under the official names), output contract, frozenness."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from affectgpt.encoders._checkpoint import CheckpointError  # noqa: E402
from affectgpt.encoders.imagebind import (  # noqa: E402
    ImageBindAudioEncoder,
    ImageBindAudioModel,
    clip_fbanks,
    from_official_names,
    load_imagebind_audio,
    to_official_names,
)
from affectgpt.media import audio_clips  # noqa: E402
from affectgpt.media.transforms import imagebind_audio_features  # noqa: E402

SR = 16000
# Official imagebind_huge.pth audio tensors (facebookresearch/ImageBind, imagebind_model.py)
HUGE_SHAPES = {
    "modality_preprocessors.audio.cls_token": (1, 1, 768),
    "modality_preprocessors.audio.rgbt_stem.proj.weight": (768, 1, 16, 16),
    "modality_preprocessors.audio.rgbt_stem.norm_layer.weight": (768,),
    "modality_preprocessors.audio.rgbt_stem.norm_layer.bias": (768,),
    "modality_preprocessors.audio.pos_embedding_helper.pos_embed": (1, 229, 768),
    "modality_heads.audio.0.weight": (768,),
    "modality_heads.audio.0.bias": (768,),
    "modality_heads.audio.2.weight": (1024, 768),
    "modality_postprocessors.audio.1.log_logit_scale": (),
}
BLOCK_SHAPES = {
    "attn.in_proj_weight": (2304, 768), "attn.in_proj_bias": (2304,),
    "attn.bias_k": (1, 1, 768), "attn.bias_v": (1, 1, 768),
    "attn.out_proj.weight": (768, 768), "attn.out_proj.bias": (768,),
    "norm_1.weight": (768,), "norm_1.bias": (768,), "norm_2.weight": (768,), "norm_2.bias": (768,),
    "mlp.fc1.weight": (3072, 768), "mlp.fc1.bias": (3072,),
    "mlp.fc2.weight": (768, 3072), "mlp.fc2.bias": (768,),
}
SMALL = dict(embed_dim=64, num_blocks=2, num_heads=4, out_dim=1024)


def _huge_official_shapes():
    shapes = dict(HUGE_SHAPES)
    for i in range(12):
        shapes.update({f"modality_trunks.audio.blocks.{i}.{k}": v for k, v in BLOCK_SHAPES.items()})
    return shapes


@pytest.fixture(scope="module")
def wave():
    """3.5 s of a chirp plus noise (any signal will do: the weights are random)."""
    t = np.arange(int(3.5 * SR)) / SR
    rng = np.random.default_rng(0)
    return (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.05 * rng.standard_normal(t.size)
            ).astype(np.float32)


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = ImageBindAudioModel(**SMALL).eval()
    state = model.official_state_dict()
    # other modalities' tensors are in the real file too: they must be ignored
    state["modality_trunks.vision.blocks.0.attn.in_proj_weight"] = torch.randn(6, 2)
    state["modality_heads.text.proj.0.weight"] = torch.randn(3)
    path = tmp_path_factory.mktemp("imagebind") / "imagebind_small.pth"
    torch.save(state, path)
    return model, path


def test_official_names_and_shapes_of_imagebind_huge():
    with torch.device("meta"):
        model = ImageBindAudioModel()
    official = model.official_state_dict()
    assert {k: tuple(v.shape) for k, v in official.items()} == _huge_official_shapes()
    assert len(official) == 9 + 12 * 14
    ours = from_official_names(official)
    assert list(ours) == list(model.state_dict())
    assert to_official_names(ours).keys() == official.keys()
    # stochastic depth rises from 0 to 0.1 over the 12 blocks, as in ImageBind-huge's audio trunk
    rates = [block.drop_path.p for block in model.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.1) and rates == sorted(rates)
    assert model.grid == (12, 19)


def test_round_trip_and_output_contract(small_checkpoint, wave):
    model, path = small_checkpoint
    loaded = load_imagebind_audio(path, num_heads=4)
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key

    fbank = imagebind_audio_features(wave)
    assert fbank.shape == (8, 1, 128, 204)
    encoder = ImageBindAudioEncoder(loaded)
    out = encoder.encode_fbank(fbank)
    assert out.shape == (8, 1024) and encoder.dim == 1024 and out.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(out, model(fbank))
    # ImageBind's postprocessor: L2-normalised, times the fixed logit scale 20
    torch.testing.assert_close(out.norm(dim=-1), torch.full((8,), 20.0))
    assert not torch.allclose(out[0], out[-1])
    # waveform clips through encode_audio give exactly imagebind_audio_features' input
    clips = torch.from_numpy(audio_clips(wave, SR, 8, 2.0))
    assert torch.equal(clip_fbanks(clips), fbank)
    torch.testing.assert_close(encoder.encode_audio(clips), out)

    normalized = ImageBindAudioEncoder(loaded, output="normalized").encode_fbank(fbank)
    torch.testing.assert_close(normalized * 20, out)
    cls = ImageBindAudioEncoder(loaded, output="cls")
    assert cls.encode_fbank(fbank).shape == (8, 64) and cls.dim == 64
    assert cls.fingerprint() != encoder.fingerprint()


@pytest.mark.slow
def test_imagebind_huge_sized_checkpoint_loads(tmp_path):
    """A checkpoint with ImageBind-huge's audio shapes (random values, stored as float16 to
    keep the file small): sizes are read off the shapes, values are copied exactly."""
    with torch.device("meta"):
        ref = ImageBindAudioModel()
    generator = torch.Generator().manual_seed(1)
    state = {k: torch.randn(v.shape, generator=generator).half()
             for k, v in ref.official_state_dict().items()}
    state["modality_postprocessors.audio.1.log_logit_scale"] = torch.tensor(math.log(20.0))
    torch.save(state, tmp_path / "imagebind_huge.pth")
    model = load_imagebind_audio(tmp_path / "imagebind_huge.pth")
    assert (model.embed_dim, len(model.blocks), model.out_dim, model.num_heads) == (768, 12, 1024, 12)
    official = model.official_state_dict()
    for key in ("modality_trunks.audio.blocks.11.attn.bias_v", "modality_heads.audio.2.weight",
                "modality_preprocessors.audio.pos_embedding_helper.pos_embed"):
        assert official[key].dtype == torch.float32
        assert torch.equal(official[key], state[key].float())


def test_frozen_and_half_precision(small_checkpoint, wave):
    _, path = small_checkpoint
    encoder = ImageBindAudioEncoder(load_imagebind_audio(path, num_heads=4, drop_path=0.5))
    fbank = imagebind_audio_features(wave)[:3]
    before = encoder.encode_fbank(fbank)
    parent = torch.nn.Sequential(encoder, torch.nn.Dropout(0.5))
    parent.train()
    assert not any(m.training for m in encoder.modules())
    assert all(not p.requires_grad for p in encoder.parameters())
    assert torch.equal(encoder.encode_fbank(fbank), before)  # drop path stays off
    fp = encoder.fingerprint()
    assert fp["modality"] == "audio" and fp["dim"] == 1024 and len(fp["weights_sha256"]) == 64
    assert fp["preprocessing"]["num_mel_bins"] == 128 and fp["preprocessing"]["scale"] == 20.0
    half = ImageBindAudioEncoder(load_imagebind_audio(path, num_heads=4), dtype="bfloat16")
    assert half.fingerprint()["dtype"] == "bfloat16"
    assert half.fingerprint()["weights_sha256"] != fp["weights_sha256"]
    # one clip: bfloat16 convolutions are slow on CPUs
    torch.testing.assert_close(half.encode_fbank(fbank[:1]), before[:1], atol=0.5, rtol=0.05)


def test_clear_errors(small_checkpoint, tmp_path):
    model, _ = small_checkpoint
    with pytest.raises(FileNotFoundError, match="imagebind_huge.pth"):
        load_imagebind_audio(tmp_path / "missing.pth")
    torch.save({"modality_trunks.vision.x": torch.zeros(1)}, tmp_path / "vision.pth")
    with pytest.raises(CheckpointError, match="no ImageBind audio tensors"):
        load_imagebind_audio(tmp_path / "vision.pth")
    state = model.official_state_dict()
    del state["modality_trunks.audio.blocks.1.attn.bias_k"]
    torch.save(state, tmp_path / "missing-bias.pth")
    with pytest.raises(CheckpointError, match=r"missing .*blocks\.1\.attn\.bias_k"):
        load_imagebind_audio(tmp_path / "missing-bias.pth", num_heads=4)
    state = model.official_state_dict()
    state["modality_heads.audio.0.weight"] = torch.ones(65)
    torch.save(state, tmp_path / "bad-shape.pth")
    with pytest.raises(CheckpointError, match=r"modality_heads\.audio\.0\.weight: checkpoint \(65,\)"):
        load_imagebind_audio(tmp_path / "bad-shape.pth", num_heads=4)
    state = model.official_state_dict()
    state["modality_trunks.audio.blocks.0.attn.extra"] = torch.ones(1)
    torch.save(state, tmp_path / "unknown.pth")
    with pytest.raises(CheckpointError, match="unexpected"):
        load_imagebind_audio(tmp_path / "unknown.pth", num_heads=4)
    with pytest.raises(CheckpointError, match="heads"):
        load_imagebind_audio(tmp_path / "bad-shape.pth", num_heads=5)
    with pytest.raises(ValueError, match=r"\[n, 1, 128, 204\]"):
        ImageBindAudioEncoder(model).encode_fbank(torch.zeros(2, 1, 128, 100))
