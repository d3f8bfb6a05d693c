"""QFormerAdapter shapes, checks and parameter counts; Video-LLaMA checkpoint mapping."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from affectgpt.model import (  # noqa: E402
    QFormerAdapter,
    count_adapter_parameters,
    load_preset,
    load_video_llama_qformer,
)


def small_adapter(**kw) -> QFormerAdapter:
    args = dict(feature_dim=16, num_query=4, max_positions=8, llm_hidden=24, layers=2,
                hidden=32, heads=4, intermediate=64, dropout=0.0, tokens_per_position=3)
    args.update(kw)
    torch.manual_seed(0)
    return QFormerAdapter(**args).eval()


def test_video_and_audio_shapes():
    video = small_adapter()
    x = torch.randn(2, 5, 3, 16)  # [B, T frames, N tokens, D]
    assert video(x).shape == (2, 4, 24)
    audio = small_adapter(tokens_per_position=1)
    assert audio(torch.randn(2, 6, 16)).shape == (2, 4, 24)  # [B, A clips, D]


def test_input_checks():
    adapter = small_adapter()
    with pytest.raises(ValueError, match="feature_dim"):
        adapter(torch.randn(1, 2, 3, 15))
    with pytest.raises(ValueError, match="max_positions"):
        adapter(torch.randn(1, 9, 3, 16))
    with pytest.raises(ValueError, match="tokens per position"):
        adapter(torch.randn(1, 2, 4, 16))
    with pytest.raises(ValueError, match=r"\[B, T, N, D\]"):
        adapter(torch.randn(16))


def test_position_embedding_is_added_per_frame():
    adapter = small_adapter()
    with torch.no_grad():
        adapter.position_embedding.weight.normal_()  # Video-LLaMA's N(0, 1) scale
    x = torch.randn(1, 4, 3, 16)
    with torch.no_grad():
        base = adapter(x)
        # permuting the tokens inside a frame changes nothing (cross-attention is a set op)
        assert torch.allclose(adapter(x[:, :, [2, 0, 1]]), base, atol=1e-5)
        # position t's embedding is added to every token of frame t
        shifted = x + adapter.position_embedding.weight[:4][None, :, None, :]
        adapter.position_embedding.weight.zero_()
        assert torch.allclose(adapter(shifted), base, atol=1e-5)


def test_frame_mask_hides_padded_frames():
    adapter = small_adapter()
    x = torch.randn(2, 4, 3, 16)
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    y = x.clone()
    y[0, 3] = torch.randn(3, 16) * 10  # change only a masked frame
    with torch.no_grad():
        a, b = adapter(x, mask), adapter(y, mask)
        assert torch.allclose(a, b, atol=1e-5)
        assert not torch.allclose(adapter(x), adapter(y), atol=1e-3)
    with pytest.raises(ValueError, match="at least one valid position"):
        adapter(x, torch.zeros(2, 4, dtype=torch.bool))


def test_paper_adapters_have_about_45m_parameters():
    cfg = load_preset("paper")
    counts = count_adapter_parameters(cfg)  # meta tensors: nothing allocated
    # video: 2 x (self-attn 2,363,904 + cross-attn 2,363,904 + FFN 4,723,968) + LayerNorm
    #        1,536 + queries 32x768 + frame positions 32x768 + proj 768x4096+4096
    assert counts["video"] == 22_104_064
    # audio: cross-attention keys/values from 1024-d; 8 queries; positions 8x1024
    assert counts["audio"] == 22_855_680
    assert counts["total"] == 44_959_744
    # the same count from real (allocated) adapters, built alone (no 7B LLM)
    video = QFormerAdapter.from_config(cfg.video, llm_hidden=4096)
    assert sum(p.numel() for p in video.parameters()) == counts["video"]
    assert video(torch.randn(1, 8, 32, 768)).shape == (1, 32, 4096)


# --------------------------------------------------------------------------- Video-LLaMA
def _lavis_name(ours: str) -> str:
    """Our Q-Former parameter name -> LAVIS BertLMHeadModel name (the inverse mapping)."""
    if ours.startswith("layernorm."):
        return "bert.embeddings.LayerNorm." + ours.split(".", 1)[1]
    name = "bert." + ours
    name = name.replace(".attention.attention.", ".attention.self.")
    return name.replace(".crossattention.attention.", ".crossattention.self.")


def video_llama_checkpoint(video: QFormerAdapter, audio: QFormerAdapter) -> dict:
    """A synthetic Video-LLaMA checkpoint with the released names and the right shapes."""
    g = torch.Generator().manual_seed(1)
    sd = {}
    for adapter, names in (
        (video, ("video_query_tokens", "video_frame_position_embedding", "video_Qformer",
                 "llama_proj")),
        (audio, ("audio_query_tokens", "audio_position_embedding", "audio_Qformer",
                 "audio_llama_proj")),
    ):
        for key, value in adapter.state_dict().items():
            if key == "query_tokens":
                theirs = names[0]
            elif key.startswith("position_embedding."):
                theirs = names[1] + key[len("position_embedding"):]
            elif key.startswith("qformer."):
                theirs = names[2] + "." + _lavis_name(key[len("qformer."):])
            else:
                theirs = names[3] + key[len("proj"):]
            sd[theirs] = torch.randn(value.shape, generator=g)
        # text-only parts and buffers that LAVIS checkpoints may hold
        sd[f"{names[2]}.bert.embeddings.position_ids"] = torch.arange(512)[None]
        sd[f"{names[2]}.bert.encoder.layer.0.intermediate.dense.weight"] = torch.zeros(3, 3)
        sd[f"{names[2]}.bert.encoder.layer.0.output.LayerNorm.weight"] = torch.zeros(3)
    # frozen parts that are not ours
    sd["llama_model.model.embed_tokens.weight"] = torch.zeros(4, 4)
    sd["Qformer.bert.encoder.layer.0.attention.self.query.weight"] = torch.zeros(2, 2)
    sd["query_tokens"] = torch.zeros(1, 32, 768)
    sd["visual_encoder.blocks.0.attn.qkv.weight"] = torch.zeros(2, 2)
    return {"model": sd}


def test_video_llama_names_map_onto_every_adapter_parameter():
    cfg = load_preset("tiny")
    video = QFormerAdapter.from_config(cfg.video, 64)
    audio = QFormerAdapter.from_config(cfg.audio, 64)
    ckpt = video_llama_checkpoint(video, audio)
    mapped, skipped = load_video_llama_qformer(ckpt)
    ours = {f"video.{k}" for k in video.state_dict()} | {f"audio.{k}" for k in audio.state_dict()}
    assert set(mapped) == ours
    sd = ckpt["model"]
    assert torch.equal(mapped["video.query_tokens"], sd["video_query_tokens"])
    assert torch.equal(mapped["video.proj.weight"], sd["llama_proj.weight"])
    assert torch.equal(mapped["audio.position_embedding.weight"],
                       sd["audio_position_embedding.weight"])
    assert torch.equal(
        mapped["video.qformer.encoder.layer.0.crossattention.attention.key.weight"],
        sd["video_Qformer.bert.encoder.layer.0.crossattention.self.key.weight"])
    assert torch.equal(mapped["audio.qformer.layernorm.bias"],
                       sd["audio_Qformer.bert.embeddings.LayerNorm.bias"])
    assert torch.equal(mapped["video.qformer.encoder.layer.0.output_query.LayerNorm.weight"],
                       sd["video_Qformer.bert.encoder.layer.0.output_query.LayerNorm.weight"])
    assert "llama_model.model.embed_tokens.weight" in skipped
    assert "query_tokens" in skipped  # the frozen image Q-Former's queries
    assert "video_Qformer.bert.embeddings.position_ids" in skipped
    assert "video_Qformer.bert.encoder.layer.0.intermediate.dense.weight" in skipped
    # a DDP-saved checkpoint ("module." prefix) maps the same way
    again, _ = load_video_llama_qformer({f"module.{k}": v for k, v in sd.items()})
    assert set(again) == ours


def test_load_video_llama_into_the_model(tiny_model, make_batch, tmp_path):
    ckpt = video_llama_checkpoint(tiny_model.video, tiny_model.audio)
    ckpt["epoch"] = 3
    torch.save(ckpt, tmp_path / "checkpoint_3.pth")
    batch = make_batch(tiny_model.config, targets=False)
    with torch.no_grad():
        before = tiny_model(batch).logits
    report = tiny_model.load_video_llama(tmp_path / "checkpoint_3.pth")
    assert len(report["loaded"]) == len(tiny_model.trainable_state_dict())
    assert torch.equal(tiny_model.video.query_tokens, ckpt["model"]["video_query_tokens"])
    with torch.no_grad():
        assert not torch.allclose(tiny_model(batch).logits, before)
    # without projections (an LLM of another size): proj left alone
    proj = tiny_model.audio.proj.weight.clone()
    ckpt["model"]["audio_llama_proj.weight"] = torch.zeros(7, 32)
    report = tiny_model.load_video_llama(ckpt, projections=False)
    assert torch.equal(tiny_model.audio.proj.weight, proj)
    assert "audio.proj.weight" in report["skipped"]
    with pytest.raises(ValueError, match=r"audio\.proj\.weight: checkpoint \(7, 32\)"):
        tiny_model.load_video_llama(ckpt)
