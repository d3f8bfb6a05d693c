"""EVA ViT-g + BLIP-2 Q-Former encoder on a tiny random BLIP-2 (OPT) checkpoint saved by
transformers: same output as transformers' own Blip2Model, LLM never read, frozen."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from affectgpt.encoders import _checkpoint  # noqa: E402
from affectgpt.encoders._checkpoint import CheckpointError  # noqa: E402
from affectgpt.encoders.blip2 import Blip2QFormerEncoder, load_blip2_vision_qformer  # noqa: E402
from affectgpt.media.transforms import CLIP_MEAN  # noqa: E402

SIZE = 28
QUERIES = 4


def _config():
    from transformers import Blip2Config, OPTConfig

    text = OPTConfig(hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2,
                     vocab_size=100, word_embed_proj_dim=16, max_position_embeddings=64)
    return Blip2Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, image_size=SIZE, patch_size=14,
                           initializer_range=0.02),
        qformer_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=64, encoder_hidden_size=32,
                            cross_attention_frequency=1),
        text_config=text.to_dict(), num_query_tokens=QUERIES)


@pytest.fixture(scope="module")
def blip2_dir(tmp_path_factory):
    """A full Blip2ForConditionalGeneration checkpoint, sharded so that some shards hold
    only language-model tensors."""
    from transformers import Blip2ForConditionalGeneration

    torch.manual_seed(0)
    model = Blip2ForConditionalGeneration(_config())
    with torch.no_grad():
        model.query_tokens.normal_()
    folder = tmp_path_factory.mktemp("blip2-tiny")
    model.save_pretrained(folder, max_shard_size="20KB")
    return folder


@pytest.fixture(scope="module")
def encoder(blip2_dir):
    return Blip2QFormerEncoder.from_pretrained(blip2_dir)


def _pixels(n=3, seed=1):
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_matches_transformers_get_qformer_features(blip2_dir, encoder):
    from transformers import Blip2Model

    reference = Blip2Model.from_pretrained(blip2_dir).eval()
    pixels = _pixels()
    with torch.no_grad():
        expected = reference.get_qformer_features(pixels)
    if not isinstance(expected, torch.Tensor):
        expected = expected.last_hidden_state
    ours = encoder.encode_frames(pixels)
    assert ours.shape == (3, QUERIES, 32) and ours.dtype == torch.float32
    assert (encoder.tokens_per_clip, encoder.dim) == (QUERIES, 32)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(encoder(pixels), ours)  # forward dispatches to encode_frames


def test_language_model_is_never_read(blip2_dir, monkeypatch):
    opened, read = [], []
    real = _checkpoint.safe_open

    class Spy:
        def __init__(self, path, framework):
            opened.append(path)
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
    vision, qformer, query_tokens = load_blip2_vision_qformer(blip2_dir)
    assert read and not [k for k in read if k.startswith(("language_model.", "language_projection."))]
    index = json.loads((blip2_dir / "model.safetensors.index.json").read_text())["weight_map"]
    llm_only = {f for f in set(index.values())
                if all(k.startswith("language") for k, v in index.items() if v == f)}
    assert llm_only, "the fixture should have shards holding only LLM tensors"
    assert not {p.rsplit("/", 1)[-1] for p in map(str, opened)} & llm_only
    enc = Blip2QFormerEncoder(vision, qformer, query_tokens)
    assert not [k for k in enc.state_dict() if "language" in k]


def test_frozen_eval_and_fingerprint(encoder, blip2_dir):
    parent = torch.nn.Sequential(encoder, torch.nn.Dropout(0.5))
    parent.train()
    assert not any(m.training for m in encoder.modules())
    assert all(not p.requires_grad for p in encoder.parameters())
    pixels = _pixels(2)
    out = encoder.encode_frames(pixels)
    assert not out.requires_grad
    assert torch.equal(out, encoder.encode_frames(pixels))  # no dropout
    fp = encoder.fingerprint()
    assert fp["encoder"] == "eva-vit-g+blip2-qformer" and fp["modality"] == "video"
    assert fp["tokens_per_clip"] == QUERIES and len(fp["weights_sha256"]) == 64
    assert fp["preprocessing"]["frames"]["crop"] == "resize"
    assert fp["preprocessing"]["frames"]["mean"] == list(CLIP_MEAN)
    json.dumps(fp)
    other = Blip2QFormerEncoder.from_pretrained(blip2_dir, crop="center")
    assert other.fingerprint()["weights_sha256"] == fp["weights_sha256"]
    assert other.fingerprint() != fp


def test_half_precision_keeps_qformer_fp32(blip2_dir, encoder):
    half = Blip2QFormerEncoder.from_pretrained(blip2_dir, dtype="bfloat16")
    assert half.vision_model.embeddings.patch_embedding.weight.dtype == torch.bfloat16
    assert half.qformer.layernorm.weight.dtype == torch.float32
    assert half.query_tokens.dtype == torch.float32
    assert half.fingerprint()["dtype"] == "bfloat16"
    assert half.fingerprint()["weights_sha256"] != encoder.fingerprint()["weights_sha256"]
    pixels = _pixels(2)
    out = half.encode_frames(pixels)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out, encoder.encode_frames(pixels), atol=0.1, rtol=0.1)


def test_preprocess_raw_frames_and_shape_errors(encoder):
    frames = np.random.default_rng(0).integers(0, 256, (2, 50, 70, 3), dtype=np.uint8)
    pixels = encoder.preprocess(frames)
    assert pixels.shape == (2, 3, SIZE, SIZE)
    assert encoder.encode_frames(pixels).shape == (2, QUERIES, 32)
    with pytest.raises(ValueError, match=r"\[n, 3, 28, 28\]"):
        encoder.encode_frames(torch.zeros(2, 3, 32, 32))
    with pytest.raises(TypeError, match="encode_frames"):
        encoder.encode_audio(torch.zeros(2, 16000))


def test_clear_errors(tmp_path, blip2_dir):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        Blip2QFormerEncoder.from_pretrained(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="config.json"):
        Blip2QFormerEncoder.from_pretrained(tmp_path)
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "config.json").write_text('{"model_type": "clip"}')
    with pytest.raises(ValueError, match="not a BLIP-2 checkpoint"):
        Blip2QFormerEncoder.from_pretrained(tmp_path / "clip")

    from safetensors.torch import save_file

    state = {}
    for shard in sorted(blip2_dir.glob("*.safetensors")):
        from safetensors.torch import load_file
        state.update(load_file(shard))
    (tmp_path / "no-weights").mkdir()
    (tmp_path / "no-weights" / "config.json").write_text((blip2_dir / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="no weights"):
        Blip2QFormerEncoder.from_pretrained(tmp_path / "no-weights")
    llm_only = tmp_path / "llm-only"
    llm_only.mkdir()
    (llm_only / "config.json").write_text((blip2_dir / "config.json").read_text())
    save_file({k: v for k, v in state.items() if k.startswith("language")},
              llm_only / "model.safetensors")
    with pytest.raises(CheckpointError, match="no BLIP-2 vision/Q-Former weights"):
        Blip2QFormerEncoder.from_pretrained(llm_only)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((blip2_dir / "config.json").read_text())
    dropped = "qformer.encoder.layer.1.crossattention.attention.key.weight"
    save_file({k: v for k, v in state.items() if k != dropped}, broken / "model.safetensors")
    with pytest.raises(CheckpointError, match="crossattention.attention.key.weight"):
        Blip2QFormerEncoder.from_pretrained(broken)
