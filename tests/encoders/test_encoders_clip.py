"""CLIP vision encoder on tiny random transformers CLIP checkpoints (with and without the
visual projection, and a full CLIPModel whose text tower must not be read)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from affectgpt.encoders import _checkpoint  # noqa: E402
from affectgpt.encoders._checkpoint import CheckpointError  # noqa: E402
from affectgpt.encoders.clip import CLIPFrameEncoder, load_clip_vision  # noqa: E402

SIZE, PATCH = 32, 8
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              image_size=SIZE, patch_size=PATCH)


def _save(model, folder):
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    from transformers import (
        CLIPConfig,
        CLIPModel,
        CLIPVisionConfig,
        CLIPVisionModel,
        CLIPVisionModelWithProjection,
    )

    root = tmp_path_factory.mktemp("clip-tiny")
    torch.manual_seed(0)
    out = {
        "proj": _save(CLIPVisionModelWithProjection(CLIPVisionConfig(**VISION, projection_dim=16)),
                      root / "proj"),
        "plain": _save(CLIPVisionModel(CLIPVisionConfig(**VISION)), root / "plain"),
    }
    full = CLIPModel(CLIPConfig(
        text_config=dict(hidden_size=24, intermediate_size=48, num_hidden_layers=1,
                         num_attention_heads=4, vocab_size=99, max_position_embeddings=16),
        vision_config=VISION, projection_dim=12))
    out["full"] = _save(full, root / "full")
    (root / "full" / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}))
    return out


def _pixels(n=3, seed=1):
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_pooled_projected_matches_transformers(dirs):
    from transformers import CLIPVisionModelWithProjection

    enc = CLIPFrameEncoder.from_pretrained(dirs["proj"])
    reference = CLIPVisionModelWithProjection.from_pretrained(dirs["proj"]).eval()
    pixels = _pixels()
    with torch.no_grad():
        expected = reference(pixel_values=pixels).image_embeds
    out = enc.encode_frames(pixels)
    assert out.shape == (3, 16) and (enc.dim, enc.tokens_per_clip) == (16, 1)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert enc.fingerprint()["preprocessing"]["pooled"] == "image_embeds (visual projection)"


def test_plain_vision_model_pooled_and_patches(dirs):
    from transformers import CLIPVisionModel

    reference = CLIPVisionModel.from_pretrained(dirs["plain"]).eval()
    pixels = _pixels()
    with torch.no_grad():
        ref = reference(pixel_values=pixels, output_hidden_states=True)
    pooled = CLIPFrameEncoder.from_pretrained(dirs["plain"])
    torch.testing.assert_close(pooled.encode_frames(pixels), ref.pooler_output, atol=1e-5, rtol=1e-5)
    assert pooled.dim == 32
    patches = CLIPFrameEncoder.from_pretrained(dirs["plain"], output="patches")
    out = patches.encode_frames(pixels)
    n_patches = (SIZE // PATCH) ** 2
    assert out.shape == (3, n_patches, 32) and patches.tokens_per_clip == n_patches
    torch.testing.assert_close(out, ref.last_hidden_state[:, 1:], atol=1e-5, rtol=1e-5)
    second_last = CLIPFrameEncoder.from_pretrained(dirs["plain"], output="patches", layer=-2)
    torch.testing.assert_close(second_last.encode_frames(pixels), ref.hidden_states[-2][:, 1:],
                               atol=1e-5, rtol=1e-5)
    assert second_last.fingerprint() != patches.fingerprint()
    with pytest.raises(ValueError, match="layer"):
        CLIPFrameEncoder.from_pretrained(dirs["plain"], output="patches", layer=5)


def test_hub_layout_with_vision_model_prefix(dirs, tmp_path):
    """CLIPVisionModel checkpoints written by transformers 4 name tensors vision_model.*."""
    from safetensors.torch import load_file, save_file

    state = load_file(dirs["plain"] / "model.safetensors")
    assert not any(k.startswith("vision_model.") for k in state)  # transformers 5 layout
    (tmp_path / "config.json").write_text((dirs["plain"] / "config.json").read_text())
    save_file({"vision_model." + k: v for k, v in state.items()}, tmp_path / "model.safetensors")
    pixels = _pixels(2)
    a = CLIPFrameEncoder.from_pretrained(dirs["plain"])
    b = CLIPFrameEncoder.from_pretrained(tmp_path)
    assert torch.equal(a.encode_frames(pixels), b.encode_frames(pixels))
    assert a.fingerprint()["weights_sha256"] == b.fingerprint()["weights_sha256"]


def test_full_clip_model_reads_only_the_vision_tower(dirs, monkeypatch):
    from transformers import CLIPModel

    read = []
    real = _checkpoint.safe_open

    class Spy:
        def __init__(self, path, framework):
            self.handle = real(path, framework=framework)

        def __enter__(self):
            self.inner = self.handle.__enter__()
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

        def keys(self):
            return self.inner.keys()

        def get_tensor(self, key):
            read.append(key)
            return self.inner.get_tensor(key)

    monkeypatch.setattr(_checkpoint, "safe_open", Spy)
    enc = CLIPFrameEncoder.from_pretrained(dirs["full"])
    assert read and all(k.startswith(("vision_model.", "visual_projection.")) for k in read)
    reference = CLIPModel.from_pretrained(dirs["full"]).eval()
    pixels = _pixels(2)
    with torch.no_grad():
        expected = reference.visual_projection(reference.vision_model(pixel_values=pixels).pooler_output)
    assert enc.dim == 12
    torch.testing.assert_close(enc.encode_frames(pixels), expected, atol=1e-5, rtol=1e-5)
    # the folder's preprocessor_config.json statistics are used
    assert enc.frame_transform()["mean"] == (0.5, 0.5, 0.5)
    assert enc.fingerprint()["preprocessing"]["frames"]["std"] == [0.25, 0.25, 0.25]
    frames = np.full((1, 40, 60, 3), 255, np.uint8)
    assert torch.allclose(enc.preprocess(frames), torch.full((1, 3, SIZE, SIZE), 2.0))


def test_frozen_half_and_errors(dirs, tmp_path):
    enc = CLIPFrameEncoder.from_pretrained(dirs["proj"])
    torch.nn.Sequential(enc).train()
    assert not any(m.training for m in enc.modules())
    assert all(not p.requires_grad for p in enc.parameters())
    half = CLIPFrameEncoder.from_pretrained(dirs["proj"], dtype="bfloat16")
    assert half.dtype == torch.bfloat16 and half.fingerprint()["dtype"] == "bfloat16"
    pixels = _pixels(2)
    torch.testing.assert_close(half.encode_frames(pixels), enc.encode_frames(pixels),
                               atol=0.05, rtol=0.05)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_clip_vision(tmp_path / "missing")
    (tmp_path / "blip").mkdir()
    (tmp_path / "blip" / "config.json").write_text('{"model_type": "blip-2"}')
    with pytest.raises(ValueError, match="not a CLIP checkpoint"):
        load_clip_vision(tmp_path / "blip")
    from safetensors.torch import load_file, save_file

    state = load_file(dirs["proj"] / "model.safetensors")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((dirs["proj"] / "config.json").read_text())
    state["vision_model.post_layernorm.weight"] = torch.ones(7)
    save_file(state, broken / "model.safetensors")
    with pytest.raises(CheckpointError, match="post_layernorm.weight: checkpoint \\(7,\\)"):
        load_clip_vision(broken)
