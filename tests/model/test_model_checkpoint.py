"""save_pretrained / from_pretrained: trainable weights only, identical outputs, checks."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from safetensors.torch import load_file  # noqa: E402

from affectgpt.model import AffectGPT, ModelConfig  # noqa: E402
from affectgpt.model.affectgpt import LLMMismatchError  # noqa: E402


def perturb(model: AffectGPT) -> None:
    """Move the trainable weights away from their initialisation (as training would)."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


def test_round_trip_gives_identical_outputs(tiny_model, make_batch, tmp_path):
    perturb(tiny_model)
    path = tiny_model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in path.iterdir()) == [
        "adapters.safetensors", "config.yaml", "meta.json"]
    assert ModelConfig.from_yaml(path / "config.yaml") == tiny_model.config
    saved = load_file(str(path / "adapters.safetensors"))
    assert set(saved) == set(tiny_model.trainable_state_dict())
    assert all(k.startswith(("video.", "audio.")) for k in saved)  # no LLM weights
    meta = json.loads((path / "meta.json").read_text())
    assert meta["parameters"]["trainable"] == tiny_model.num_trainable_parameters()
    assert meta["llm"]["embed_sha256"] == tiny_model.llm_fingerprint()["embed_sha256"]

    loaded = AffectGPT.from_pretrained(path)
    batch = make_batch(tiny_model.config)
    with torch.no_grad():
        a, b = tiny_model(batch, return_logits=True), loaded(batch, return_logits=True)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.loss, b.loss)
    gen = make_batch(tiny_model.config, targets=False)
    assert tiny_model.generate(gen, max_new_tokens=10, seed=3) == loaded.generate(
        gen, max_new_tokens=10, seed=3)


def test_saving_again_replaces_the_checkpoint(tiny_model, tmp_path):
    target = tmp_path / "last"
    tiny_model.save_pretrained(target)
    first = load_file(str(target / "adapters.safetensors"))["video.proj.weight"]
    perturb(tiny_model)
    tiny_model.save_pretrained(target)
    second = load_file(str(target / "adapters.safetensors"))["video.proj.weight"]
    assert not torch.equal(first, second)
    assert torch.equal(second, tiny_model.video.proj.weight.detach())
    assert [p.name for p in tmp_path.iterdir()] == ["last"]  # no temporary folders left


def test_loading_against_another_llm_is_refused(tiny_model, tmp_path):
    path = tiny_model.save_pretrained(tmp_path / "ckpt")
    with pytest.raises(LLMMismatchError, match="embed_sha256"):
        AffectGPT.from_pretrained(path, overrides=["llm.seed=1"])
    model = AffectGPT.from_pretrained(path, overrides=["llm.seed=1"], check_llm=False)
    assert torch.equal(model.video.proj.weight, tiny_model.video.proj.weight)


def test_weights_must_match_the_architecture(tiny_model, tmp_path):
    path = tiny_model.save_pretrained(tmp_path / "ckpt")
    with pytest.raises(KeyError, match="missing"):
        AffectGPT.from_pretrained(path, overrides=["video.layers=2"])
    with pytest.raises(FileNotFoundError):
        AffectGPT.from_pretrained(tmp_path / "nothing")
