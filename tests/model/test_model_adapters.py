"""QFormerAdapter shapes, checks and parameter counts (Video-LLaMA import:
test_model_video_llama.py)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from affectgpt.model import (  # noqa: E402
    QFormerAdapter,
    count_adapter_parameters,
    load_preset,
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
