"""AffectGPT.generate on the tiny preset (and a LoRA-trained one that learns to stop)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from affectgpt.model.affectgpt import cut_at_stop  # noqa: E402


def test_generate_returns_one_string_per_sample(tiny_model, make_batch):
    batch = make_batch(tiny_model.config, audio_mask=[True, False, True], targets=False)
    texts = tiny_model.generate(batch, max_new_tokens=12, seed=0)
    assert isinstance(texts, list) and len(texts) == 3 and all(isinstance(t, str) for t in texts)
    ids = tiny_model.generate_ids(batch, max_new_tokens=12, seed=0)
    assert ids.shape[0] == 3 and ids.shape[1] <= 12


def test_sampling_is_reproducible_with_a_seed_and_greedy_is_deterministic(tiny_model, make_batch):
    batch = make_batch(tiny_model.config, targets=False)
    a = tiny_model.generate_ids(batch, max_new_tokens=16, seed=123)
    b = tiny_model.generate_ids(batch, max_new_tokens=16, seed=123)
    c = tiny_model.generate_ids(batch, max_new_tokens=16, seed=124)
    assert torch.equal(a, b) and not torch.equal(a, c)
    g1 = tiny_model.generate_ids(batch, max_new_tokens=8, do_sample=False)
    g2 = tiny_model.generate_ids(batch, max_new_tokens=8, do_sample=False)
    assert torch.equal(g1, g2)


def test_generation_keeps_the_training_mode(tiny_model, make_batch):
    tiny_model.train()
    tiny_model.generate(make_batch(tiny_model.config, n=1, targets=False), max_new_tokens=2)
    assert tiny_model.training and tiny_model.video.training


def test_generation_stops_at_a_stop_string(tiny_model, make_batch):
    batch = make_batch(tiny_model.config, n=1, targets=False)
    free = tiny_model.generate_ids(batch, max_new_tokens=20, seed=5)
    text = tiny_model.tokenizer.decode(free[0])
    # the first ASCII letter the model produced, used as the stop string
    index, stop = next((i, ch) for i, ch in enumerate(text) if ch.isascii() and ch.isalpha())
    stopped = tiny_model.generate_ids(batch, max_new_tokens=20, seed=5, stop=stop)
    assert stopped.shape[1] < 20
    assert tiny_model.generate(batch, max_new_tokens=20, seed=5, stop=stop) == [
        text[:index].strip()]


def test_cut_at_stop():
    assert cut_at_stop(" happy, then sad.###Human: more", "###") == "happy, then sad."
    assert cut_at_stop("no stop here ", "###") == "no stop here"


def test_a_lora_trained_model_answers_and_stops_at_hashes(tiny_lora_model, make_batch):
    """End to end: train LoRA + adapters on one sample, then greedy decoding reproduces
    the answer and stops at the trained ``###`` terminator."""
    model = tiny_lora_model
    torch.manual_seed(0)
    batch = make_batch(model.config, n=1)
    batch["target"] = ["ok"]
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(40):
        loss = model(batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    prompt_only = dict(batch, target=None)
    ids = model.generate_ids(prompt_only, do_sample=False, max_new_tokens=30)
    assert model.tokenizer.decode(ids[0]) == "ok###"  # stopped right after the terminator
    assert model.generate(prompt_only, do_sample=False, max_new_tokens=30) == ["ok"]


def test_batched_greedy_generation_matches_single_samples(tiny_model, make_batch, select):
    """Left padding + position ids: a sample generates the same alone or in a batch."""
    batch = make_batch(tiny_model.config, audio_mask=[True, False, True], targets=False)
    batch["subtitle"] = ["A much longer subtitle than the others, for padding.", "", "ok"]
    full = tiny_model.generate_ids(batch, do_sample=False, max_new_tokens=12)
    for i in range(3):
        single = tiny_model.generate_ids(select(batch, [i]), do_sample=False, max_new_tokens=12)
        n = single.shape[1]
        assert full[i, :n].tolist() == single[0].tolist()
