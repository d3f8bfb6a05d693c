"""Importing a real Video-LLaMA / AffectGPT-2024 checkpoint layout.

The names and shapes come from ../shared/reference/video-llama-trainable-keys.json
(REFERENCE.md section 8: what a released ``.pth`` checkpoint's ``model`` dict holds for the
trainable branches), read at run time; the tensors are built here with exactly those names
and shapes (expanded scalars, so the 45 M-parameter checkpoint costs no memory)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from torch import nn  # noqa: E402

from affectgpt.model import (  # noqa: E402
    PartialCheckpointError,
    QFormerAdapter,
    apply_overrides,
    count_adapter_parameters,
    load_preset,
    load_video_llama_branches,
    load_video_llama_qformer,
)

KNOWN_BUFFERS = {"video_Qformer.bert.embeddings.position_ids": (1, 512),
                 "audio_Qformer.bert.embeddings.position_ids": (1, 512)}
PAPER = {"video": 22_104_064, "audio": 22_855_680}  # tests/model/test_model_adapters.py


def checkpoint_from(keys: dict, shapes: dict | None = None, drop=()) -> dict:
    """A checkpoint with the reference names: tensor i is filled with the value i (buffers:
    position ids). ``shapes`` overrides the shapes (for a smaller preset)."""
    model = {}
    for i, (name, shape) in enumerate(keys.items()):
        if name in drop:
            continue
        if name in KNOWN_BUFFERS:
            model[name] = torch.arange(shape[1])[None]
        else:
            model[name] = torch.tensor(float(i)).expand((shapes or keys)[name])
    return {"model": model, "epoch": 3}


def target(name: str) -> str:
    """Our parameter name for one checkpoint key (the mapping under test, key by key)."""
    (ours,) = load_video_llama_qformer({name: torch.zeros(1)})[0]
    return ours


@pytest.fixture(scope="module")
def paper_branches() -> nn.ModuleDict:
    """The `paper` preset's two branches, allocated, without its 7B LLM."""
    cfg = load_preset("paper")
    return nn.ModuleDict({branch: QFormerAdapter.from_config(getattr(cfg, branch), cfg.llm.hidden_size)
                          for branch in ("video", "audio")})


def test_every_reference_entry_maps_onto_the_paper_preset(video_llama_keys):
    cfg = load_preset("paper")
    with torch.device("meta"):
        own = {f"{b}.{k}": tuple(v.shape) for b in ("video", "audio")
               for k, v in QFormerAdapter.from_config(getattr(cfg, b), cfg.llm.hidden_size)
               .state_dict().items()}
    assert len(video_llama_keys) == 118
    covered = {}
    for name, shape in video_llama_keys.items():
        mapped, skipped = load_video_llama_qformer({name: torch.empty(shape, device="meta")})
        if skipped:
            assert KNOWN_BUFFERS.get(name) == shape, f"{name} neither maps nor is a known buffer"
            continue
        ((ours, tensor),) = mapped.items()
        assert own[ours] == shape, f"{name} -> {ours}: {shape} vs {own[ours]}"
        assert ours not in covered, f"{name} and {covered.get(ours)} both map to {ours}"
        covered[ours] = name
    assert set(covered) == set(own)  # no adapter parameter left uncovered
    total = sum(math.prod(video_llama_keys[n]) for n in covered.values())
    assert total == 44_959_744 == count_adapter_parameters(cfg)["total"]
    # a few correspondences written out by hand (LAVIS BertLMHeadModel -> Blip2QFormerModel)
    assert covered["video.qformer.encoder.layer.1.crossattention.attention.key.weight"] == \
        "video_Qformer.bert.encoder.layer.1.crossattention.self.key.weight"
    assert covered["audio.qformer.layernorm.bias"] == "audio_Qformer.bert.embeddings.LayerNorm.bias"
    assert covered["video.proj.weight"] == "llama_proj.weight"
    assert covered["audio.position_embedding.weight"] == "audio_position_embedding.weight"
    assert covered["video.position_embedding.weight"] == "video_frame_position_embedding.weight"


def test_full_reference_checkpoint_loads_with_full_coverage(paper_branches, video_llama_keys):
    report = load_video_llama_branches(paper_branches, checkpoint_from(video_llama_keys))
    assert sorted(report["skipped"]) == sorted(KNOWN_BUFFERS)
    assert len(report["loaded"]) == 116
    for branch, total in PAPER.items():
        coverage = report["coverage"][branch]
        assert set(coverage) == {"query_tokens", "position_embedding", "qformer", "proj", "all"}
        for counts in coverage.values():
            assert counts["parameters"] == counts["of_parameters"] > 0
            assert counts["tensors"] == counts["of_tensors"]
        assert coverage["all"]["parameters"] == total
    params = {f"{b}.{k}": v for b, m in paper_branches.items() for k, v in m.state_dict().items()}
    for i, name in enumerate(video_llama_keys):
        if name not in KNOWN_BUFFERS:
            assert bool((params[target(name)] == float(i)).all()), name


def test_missing_qformer_layer_is_refused_unless_allowed(paper_branches, video_llama_keys):
    layer1 = [k for k in video_llama_keys if k.startswith("video_Qformer.bert.encoder.layer.1.")]
    missing = sum(math.prod(video_llama_keys[k]) for k in layer1)
    assert len(layer1) == 26 and missing == 9_451_776
    with torch.no_grad():
        for p in paper_branches.parameters():
            p.fill_(-1.0)
    ckpt = checkpoint_from(video_llama_keys, drop=layer1)
    with pytest.raises(PartialCheckpointError) as err:
        load_video_llama_branches(paper_branches, ckpt)
    message = str(err.value)
    assert f"video branch only partly: {missing:,} of its {PAPER['video']:,} parameters " \
           f"({len(layer1)} tensors) are missing" in message
    assert f"video.qformer {len(layer1)} tensors / {missing:,} parameters" in message
    assert "audio" not in message and "allow_partial=True" in message
    assert all(bool((p == -1.0).all()) for p in paper_branches.parameters())  # nothing loaded

    report = load_video_llama_branches(paper_branches, ckpt, allow_partial=True)
    video = report["coverage"]["video"]
    assert video["all"]["parameters"] == PAPER["video"] - missing
    assert video["qformer"]["of_tensors"] - video["qformer"]["tensors"] == len(layer1)
    assert video["proj"]["parameters"] == video["proj"]["of_parameters"]
    assert report["coverage"]["audio"]["all"]["parameters"] == PAPER["audio"]
    qformer = paper_branches["video"].qformer.encoder.layer
    assert bool((qformer[1].crossattention.attention.key.weight == -1.0).all())  # kept
    assert not bool((qformer[0].crossattention.attention.key.weight == -1.0).any())  # loaded


# ------------------------------------------------------------------- through AffectGPT
@pytest.fixture
def two_layer_model(tiny_cfg):
    from affectgpt.model import AffectGPT

    return AffectGPT.from_config(apply_overrides(tiny_cfg, ["video.layers=2", "audio.layers=2"]))


def test_load_video_llama_into_the_model(two_layer_model, video_llama_keys, make_batch, tmp_path):
    model = two_layer_model
    own = model.state_dict()
    shapes = {n: tuple(own[target(n)].shape) for n in video_llama_keys if n not in KNOWN_BUFFERS}
    ckpt = checkpoint_from(video_llama_keys, shapes)
    torch.save(ckpt, tmp_path / "checkpoint_3.pth")
    batch = make_batch(model.config, targets=False)
    with torch.no_grad():
        before = model(batch).logits
    report = model.load_video_llama(tmp_path / "checkpoint_3.pth")
    assert len(report["loaded"]) == len(model.trainable_state_dict())
    assert report["coverage"]["video"]["all"]["parameters"] == \
        report["coverage"]["video"]["all"]["of_parameters"]
    assert bool((model.video.query_tokens == float(list(video_llama_keys).index("video_query_tokens"))).all())
    with torch.no_grad():
        assert not torch.allclose(model(batch).logits, before)

    # a video-only checkpoint (no audio branch at all) is not a partial one
    video_only = {k: v for k, v in ckpt["model"].items() if not k.startswith("audio")}
    report = model.load_video_llama(video_only)
    assert report["coverage"]["audio"]["all"]["parameters"] == 0
    # allow_partial is passed through
    partial = {k: v for k, v in video_only.items() if not k.startswith("video_Qformer.bert.encoder.layer.0.")}
    with pytest.raises(PartialCheckpointError, match="video branch only partly"):
        model.load_video_llama(partial)
    model.load_video_llama(partial, allow_partial=True)

    # without projections (an LLM of another size): proj left alone, and not required
    proj = model.audio.proj.weight.clone()
    ckpt["model"]["audio_llama_proj.weight"] = torch.zeros(7, 32)
    report = model.load_video_llama(ckpt, projections=False)
    assert torch.equal(model.audio.proj.weight, proj)
    assert "audio.proj.weight" in report["skipped"] and "proj" not in report["coverage"]["audio"]
    with pytest.raises(ValueError, match=r"audio\.proj\.weight: checkpoint \(7, 32\)"):
        model.load_video_llama(ckpt)
