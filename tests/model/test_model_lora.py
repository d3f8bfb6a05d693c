"""LoRA on/off: what trains, what is saved, modes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from affectgpt.model import AffectGPT, ConfigError, apply_overrides  # noqa: E402


def test_lora_off_has_no_lora_parameters(tiny_model):
    assert not tiny_model.has_lora
    assert not any("lora_" in n for n, _ in tiny_model.named_parameters())
    assert tiny_model.parameter_summary()["lora"] == 0


def test_lora_on_trains_lora_and_adapters_only(tiny_lora_model, make_batch):
    model = tiny_lora_model.train()
    assert model.has_lora and model.llm.training  # LoRA follows the training mode
    summary = model.parameter_summary()
    # r=8 on q,k,v,o,gate,up,down of 2 layers (hidden 64, kv 32, intermediate 128)
    per_layer = 8 * ((64 + 64) + (64 + 32) * 2 + (64 + 64) + (64 + 128) * 2 + (128 + 64))
    assert summary["lora"] == 2 * per_layer
    assert summary["trainable"] == summary["video"] + summary["audio"] + summary["lora"]
    out = model(make_batch(model.config))
    out.loss.backward()
    for name, p in model.named_parameters():
        if "lora_" in name or name.startswith(("video.", "audio.")):
            assert p.requires_grad and p.grad is not None, name
        else:
            assert not p.requires_grad and p.grad is None, name
    model.eval()
    assert not model.llm.training


def test_lora_round_trip(tiny_lora_model, make_batch, tmp_path):
    with torch.no_grad():
        for name, p in tiny_lora_model.named_parameters():
            if "lora_B" in name:  # zero at initialisation: make the adapters matter
                p.normal_(std=0.1)
    state = tiny_lora_model.trainable_state_dict()
    assert any("lora_A" in k for k in state) and any(k.startswith("video.") for k in state)
    assert not any("base_layer" in k or "embed_tokens" in k for k in state)
    path = tiny_lora_model.save_pretrained(tmp_path / "lora")
    loaded = AffectGPT.from_pretrained(path)
    assert loaded.has_lora
    batch = make_batch(tiny_lora_model.config)
    with torch.no_grad():
        assert torch.equal(tiny_lora_model(batch, return_logits=True).logits,
                           loaded(batch, return_logits=True).logits)
    # the same adapters without LoRA do not fit
    with pytest.raises(KeyError, match="unexpected"):
        AffectGPT.from_pretrained(path, overrides=["lora=null"])


def test_lora_targets_must_exist(tiny_cfg):
    with pytest.raises(ConfigError, match="match no module"):
        AffectGPT.from_config(apply_overrides(tiny_cfg, ["lora.targets=[qkv]"]))
