"""The frozen-prefix key/value cache: same losses, gradients and generations as running the
whole prompt, reuse across steps and models, its memory bound, and when it is off."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from affectgpt.model import AffectGPT, apply_overrides  # noqa: E402
from affectgpt.model.prefix import PrefixCache, frozen_prefix_lengths  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_shared_cache():
    """Each test starts without the process-wide cache other tests filled."""
    PrefixCache.release_shared()
    yield
    PrefixCache.release_shared()


def _model(cfg, *overrides: str) -> AffectGPT:
    return AffectGPT.from_config(apply_overrides(cfg, list(overrides)))


def _with_cache(model: AffectGPT, on: bool) -> AffectGPT:
    model.config.llm.prefix_cache_mb = 64 if on else 0
    model._prefix_cache = None
    return model


@pytest.mark.parametrize("order", ["reference", "text-first"])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_cached_prefix_gives_the_same_loss_and_gradients(tiny_cfg, make_batch, order,
                                                         padding_side):
    model = _model(tiny_cfg, f"prompt.order={order}", f"prompt.padding_side={padding_side}")
    model.train()
    batch = make_batch(model.config, n=4, audio_mask=[True, False, True, True])
    batch["subtitle"][3] = "A much longer subtitle, so that the prefixes differ in length."
    results = []
    for on in (False, True):
        _with_cache(model, on).zero_grad()
        torch.manual_seed(0)  # the same adapter dropout
        loss = model(batch).loss
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                        if p.grad is not None}))
    assert model.prefix_cache is not None and model.prefix_cache.misses > 0
    (plain, plain_grads), (cached, cached_grads) = results
    assert torch.allclose(plain, cached, atol=1e-5)
    assert plain_grads.keys() == cached_grads.keys() and plain_grads
    for name, grad in plain_grads.items():
        assert torch.allclose(grad, cached_grads[name], atol=1e-5, rtol=1e-4), name


@pytest.mark.parametrize("order", ["reference", "text-first"])
def test_cached_prefix_gives_the_same_generations(tiny_cfg, make_batch, order):
    model = _model(tiny_cfg, f"prompt.order={order}")
    batch = make_batch(model.config, n=3, audio_mask=[True, False, True], targets=False)
    text_only = make_batch(model.config, n=3, video=False, audio=False, targets=False)
    for b in (batch, text_only):
        plain = _with_cache(model, False).generate_ids(b, max_new_tokens=8, do_sample=False)
        cached = _with_cache(model, True).generate_ids(b, max_new_tokens=8, do_sample=False)
        assert plain.tolist() == cached.tolist()
        sampled = [_with_cache(model, on).generate_ids(b, max_new_tokens=8, do_sample=True,
                                                       seed=3) for on in (False, True)]
        assert sampled[0].tolist() == sampled[1].tolist()


def test_prefixes_are_computed_once_and_shared_by_models_on_the_same_llm(tiny_cfg, make_batch):
    first = _with_cache(_model(tiny_cfg, "prompt.order=text-first"), True)
    batch = make_batch(first.config, n=3)
    with torch.no_grad():
        first(batch)
        cache = first.prefix_cache
        assert (cache.misses, cache.hits, len(cache)) == (3, 0, 3)  # one per subtitle
        first(batch)
        assert (cache.misses, cache.hits) == (3, 3)
        second = _with_cache(_model(tiny_cfg, "prompt.order=text-first"), True)
        assert second.prefix_cache is cache  # same frozen weights: same cache
        second(batch)
        assert cache.misses == 3
        other = _with_cache(_model(tiny_cfg, "prompt.order=text-first", "llm.seed=1"), True)
        assert other.prefix_cache is not cache  # other weights: keys and values differ


def test_reference_order_shares_one_prefix_among_all_clips(tiny_cfg, make_batch):
    model = _with_cache(_model(tiny_cfg), True)
    lengths = frozen_prefix_lengths(model.prompt(["a", "much longer subtitle"], ["x", "y"]))
    assert lengths[0] == lengths[1] > 10  # "###Human: Close your ... sound that <Audio>"
    with torch.no_grad():
        model(make_batch(model.config, n=3))
    assert len(model.prefix_cache) == 1


def test_prefix_stops_before_features_and_before_the_answer(tiny_model):
    prompt = tiny_model.prompt(["hi"], ["sad."], has_video=[False], has_audio=[False])
    (n,) = frozen_prefix_lengths(prompt)
    first_answer = int((prompt.labels[0] != -100).nonzero()[0])
    assert n == first_answer - 1  # the token predicting the answer runs with the suffix
    prompt = tiny_model.prompt(["hi"], ["sad."])
    (n,) = frozen_prefix_lengths(prompt)
    assert n == int(prompt.audio_positions[0].nonzero()[0])


def test_memory_bound_evicts_least_recently_used(tiny_model):
    llm = tiny_model.llm
    one = PrefixCache(1 << 30).lookup(llm, [[5, 6, 7]])[0]
    size = sum(k.numel() * k.element_size() * 2 for k, _ in one)
    cache = PrefixCache(2 * size)
    cache.lookup(llm, [[5, 6, 7], [8, 9, 10]])
    cache.lookup(llm, [[5, 6, 7]])  # now the most recently used
    cache.lookup(llm, [[11, 12, 13]])
    assert len(cache) == 2 and cache.bytes <= cache.max_bytes
    cache.lookup(llm, [[5, 6, 7]])
    assert cache.hits == 2  # [5, 6, 7] was kept, [8, 9, 10] evicted
    cache.lookup(llm, [list(range(3, 30))])  # larger than the whole budget: not stored
    assert cache.bytes <= cache.max_bytes
    for (k, v), (k2, v2) in zip(one, cache.lookup(llm, [[5, 6, 7]])[0]):
        assert torch.allclose(k, k2, atol=1e-4) and torch.allclose(v, v2, atol=1e-4)


def test_no_cache_with_lora_or_when_turned_off(tiny_lora_model, tiny_cfg):
    assert tiny_lora_model.prefix_cache is None  # LoRA changes the LLM: nothing is frozen
    assert _model(tiny_cfg, "llm.prefix_cache_mb=0").prefix_cache is None


def test_segment_attention_equals_the_block_masked_packed_batch(tiny_cfg, make_batch):
    """Training batches are packed into one row; the LLM's attention runs each row's
    queries on its own keys. The full block mask alone (plain sdpa) gives the same loss."""
    from affectgpt.model.prefix import SEGMENT_ATTENTION

    model = _with_cache(_model(tiny_cfg, "prompt.order=text-first"), True)
    assert model.llm.config._attn_implementation == SEGMENT_ATTENTION
    batch = make_batch(model.config, n=4, audio_mask=[True, False, True, True])
    with torch.no_grad():
        segmented = model(batch).loss
        model.llm.config._attn_implementation = "sdpa"  # the mask alone keeps rows apart
        try:
            masked = model(batch).loss
        finally:
            model.llm.config._attn_implementation = SEGMENT_ATTENTION
        plain = _with_cache(model, False)(batch).loss
    assert torch.allclose(segmented, masked, atol=1e-5)
    assert torch.allclose(segmented, plain, atol=1e-5)


def test_no_cache_for_an_llm_on_another_attention(tiny_cfg):
    from transformers import AutoModelForCausalLM

    from affectgpt.model.llm import load_tokenizer

    model = _model(tiny_cfg)
    config = model.llm.config
    config._attn_implementation = "eager"
    llm = AutoModelForCausalLM.from_config(config)
    other = AffectGPT(model.config, llm, load_tokenizer(model.config.llm.tokenizer))
    assert other.llm.config._attn_implementation == "eager"  # left as it was
    assert other.prefix_cache is None
