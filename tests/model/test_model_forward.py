"""AffectGPT.forward on the tiny preset: loss, gradients, masks, audio-less samples."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch.nn.functional as F  # noqa: E402

from affectgpt.model import AffectGPT, PlaceholderMismatchError, PromptBuilder  # noqa: E402
from affectgpt.model.prompt import IGNORE_INDEX  # noqa: E402


def test_forward_backward_grads_only_on_adapters(tiny_model, make_batch):
    model = tiny_model.train()
    out = model(make_batch(model.config, audio_mask=[True, False, True]))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.logits is None  # a training forward computes the loss only
    out.loss.backward()
    for name, p in model.named_parameters():
        if name.startswith(("video.", "audio.")):
            assert p.requires_grad and p.grad is not None, name
        else:
            assert not p.requires_grad and p.grad is None, name
    assert model.llm.training is False  # frozen LLM stays in eval mode
    assert model.video.training and model.audio.training
    assert model.num_trainable_parameters() == sum(
        p.numel() for n, p in model.named_parameters() if n.startswith(("video.", "audio.")))


def test_loss_is_the_mean_over_answer_tokens_only(tiny_model, make_batch):
    batch = make_batch(tiny_model.config)
    with torch.no_grad():
        out = tiny_model(batch, return_logits=True)
    assert out.logits.shape[:2] == out.labels.shape
    labels = out.labels
    # labels: -100 everywhere but the answer + "###"
    for row, target in enumerate(batch["target"]):
        keep = labels[row] != IGNORE_INDEX
        assert tiny_model.tokenizer.decode(labels[row][keep]) == target + "###"
    manual = F.cross_entropy(out.logits[:, :-1].reshape(-1, out.logits.shape[-1]).float(),
                             labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
    assert torch.allclose(out.loss, manual, atol=1e-5)


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_answer_only_head_gives_the_full_heads_loss_and_gradients(tiny_model, make_batch,
                                                                  padding_side):
    """The training forward projects only the positions that predict answer tokens; its
    loss and adapter gradients equal those computed from every position's logits."""
    model = tiny_model.train()
    model.config.prompt.padding_side = padding_side
    batch = make_batch(model.config, audio_mask=[True, False, True])
    grads = []
    try:
        for full in (True, False):
            model.zero_grad()
            torch.manual_seed(0)
            out = model(batch, return_logits=full)
            out.loss.backward()
            grads.append((out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                              if p.grad is not None}))
    finally:
        model.config.prompt.padding_side = "right"
        model.zero_grad()
    (full_loss, full_grads), (fast_loss, fast_grads) = grads
    assert torch.allclose(full_loss, fast_loss, atol=1e-5)
    assert full_grads.keys() == fast_grads.keys() and full_grads
    for name, grad in full_grads.items():
        assert torch.allclose(grad, fast_grads[name], atol=1e-5, rtol=1e-4), name


def test_left_and_right_padding_give_the_same_loss(tiny_model, make_batch):
    batch = make_batch(tiny_model.config)
    with torch.no_grad():
        tiny_model.config.prompt.padding_side = "right"
        right = tiny_model(batch, return_logits=True)
        tiny_model.config.prompt.padding_side = "left"
        left = tiny_model(batch, return_logits=True)
    assert torch.allclose(right.loss, left.loss, atol=1e-5)
    for row in range(3):
        r = right.logits[row][right.attention_mask[row].bool()]
        lft = left.logits[row][left.attention_mask[row].bool()]
        assert torch.allclose(r, lft, atol=1e-4)


def test_features_reach_the_llm(tiny_model, make_batch):
    batch = make_batch(tiny_model.config)
    other = dict(batch, video=batch["video"] + 1.0)
    with torch.no_grad():
        assert not torch.allclose(tiny_model(batch, return_logits=True).logits,
                                  tiny_model(other, return_logits=True).logits)


def test_audio_less_samples_drop_the_block_and_match_single_runs(tiny_model, make_batch, select):
    batch = make_batch(tiny_model.config, audio_mask=[True, False, True])
    with torch.no_grad():
        out = tiny_model(batch, return_logits=True)
    assert int(out.attention_mask[1].sum()) < int(out.attention_mask[0].sum())
    prompt = tiny_model.prompt(batch["subtitle"], batch["target"], has_audio=[True, False, True])
    assert prompt.audio_positions.sum(1).tolist() == [2, 0, 2]
    text = tiny_model.tokenizer.decode(prompt.input_ids[1])
    assert "<Audio>" not in text and "<Video>" in text
    # a sample without audio gives the same logits alone (audio=None) as inside the batch
    alone = select(batch, [1])
    alone["audio"], alone["audio_mask"] = None, None
    with torch.no_grad():
        single = tiny_model(alone, return_logits=True)
    n = int(single.attention_mask[0].sum())
    assert torch.allclose(single.logits[0, :n], out.logits[1, :n], atol=1e-4)


@pytest.mark.parametrize("how", ["mask", "none"])
def test_batch_without_audio_still_uses_every_audio_parameter(tiny_model, make_batch, how):
    """DDP safety: all adapter parameters get a (zero) gradient even with no audio."""
    if how == "mask":
        batch = make_batch(tiny_model.config, audio_mask=[False, False, False])
    else:
        batch = make_batch(tiny_model.config, audio=False)
    tiny_model.train()
    out = tiny_model(batch)
    out.loss.backward()
    for name, p in tiny_model.audio.named_parameters():
        assert p.grad is not None, name
        assert torch.count_nonzero(p.grad) == 0, name
    with torch.no_grad():
        reference = tiny_model(make_batch(tiny_model.config, audio=False)).loss
    assert torch.allclose(out.loss, reference)


def test_video_free_batch(tiny_model, make_batch):
    batch = make_batch(tiny_model.config, video=False)
    tiny_model.train()
    out = tiny_model(batch)
    out.loss.backward()
    assert all(p.grad is not None for p in tiny_model.video.parameters())


def test_placeholder_count_mismatch_raises(tiny_model, make_batch):
    cfg = tiny_model.config
    tiny_model.prompt = PromptBuilder(tiny_model.tokenizer, num_video_tokens=cfg.video.num_query + 1,
                                      num_audio_tokens=cfg.audio.num_query)
    with pytest.raises(PlaceholderMismatchError, match=r"video: 15 placeholder tokens"):
        tiny_model(make_batch(cfg))


def test_bad_batches_are_clear_errors(tiny_model, make_batch):
    cfg = tiny_model.config
    with pytest.raises(ValueError, match="feature_dim"):
        tiny_model(dict(make_batch(cfg), video=torch.randn(3, 4, 2, 17)))
    with pytest.raises(ValueError, match="audio has 2 samples for 3"):
        tiny_model(dict(make_batch(cfg), audio=torch.randn(2, 3, 12)))
    with pytest.raises(ValueError, match="audio_mask marks samples with audio but audio is None"):
        tiny_model(dict(make_batch(cfg, audio=False), audio_mask=torch.ones(3, dtype=torch.bool)))


def test_train_eval_modes(tiny_model):
    tiny_model.train()
    assert tiny_model.training and not tiny_model.llm.training
    tiny_model.eval()
    assert not tiny_model.video.training


def test_adapters_learn(tiny_model, make_batch):
    """A few AdamW steps on the adapters alone lower the loss on a fixed batch."""
    batch = make_batch(tiny_model.config)
    tiny_model.train()
    opt = torch.optim.AdamW([p for p in tiny_model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(8):
        loss = tiny_model(batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_random_llm_is_deterministic(tiny_cfg):
    a, b = AffectGPT.from_config(tiny_cfg), AffectGPT.from_config(tiny_cfg)
    assert a.llm_fingerprint() == b.llm_fingerprint()
    sa, sb = a.llm.state_dict(), b.llm.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_bfloat16_llm_with_float32_adapters(tiny_cfg, make_batch):
    from affectgpt.model import apply_overrides

    model = AffectGPT.from_config(apply_overrides(tiny_cfg, ["llm.dtype=bfloat16"]))
    assert model.llm_dtype == torch.bfloat16 and model.video.proj.weight.dtype == torch.float32
    model.train()
    out = model(make_batch(tiny_cfg))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.video.proj.weight.grad.dtype == torch.float32
    assert "frozen LLM" in model.summary() and "bfloat16" in model.summary()


def test_unset_llm_path_is_a_clear_error():
    from affectgpt.model import ConfigError, load_preset

    with pytest.raises(ConfigError, match=r"llm.path is not set \(preset 'paper'\)"):
        AffectGPT.from_config(load_preset("paper"))


@pytest.mark.gpu
def test_on_cuda_auto_dtype_is_bfloat16(tiny_cfg, make_batch):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from affectgpt.model import apply_overrides

    model = AffectGPT.from_config(apply_overrides(tiny_cfg, ["llm.dtype=auto"]), device="cuda")
    assert model.llm_dtype == torch.bfloat16 and model.device.type == "cuda"
    model.train()
    out = model(make_batch(tiny_cfg))  # CPU features are moved to the model's device
    out.loss.backward()
    assert model.video.proj.weight.grad is not None
    assert len(model.generate(make_batch(tiny_cfg, targets=False), max_new_tokens=4)) == 3
