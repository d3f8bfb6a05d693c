"""HuBERT encoder on tiny random transformers checkpoints: mean-pooled output equals
transformers' own HubertModel; CTC checkpoints, old weight-norm names, normalisation."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from affectgpt.encoders._checkpoint import CheckpointError  # noqa: E402
from affectgpt.encoders.hubert import HubertAudioEncoder, load_hubert  # noqa: E402

SR = 16000
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            conv_dim=(16, 16, 16), conv_stride=(10, 8, 4), conv_kernel=(10, 8, 4),
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, vocab_size=12)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    from transformers import HubertConfig, HubertForCTC, HubertModel

    root = tmp_path_factory.mktemp("hubert-tiny")
    torch.manual_seed(0)
    HubertModel(HubertConfig(**TINY)).save_pretrained(root / "base")
    HubertForCTC(HubertConfig(**TINY)).save_pretrained(root / "ctc")
    HubertModel(HubertConfig(**TINY, feat_extract_norm="layer", do_stable_layer_norm=True)
                ).save_pretrained(root / "large")
    return {name: root / name for name in ("base", "ctc", "large")}


def _clips(n=3, seed=1):
    return 0.1 * torch.randn(n, 2 * SR, generator=torch.Generator().manual_seed(seed))


def _reference(model, clips, layer=None):
    with torch.no_grad():
        out = model(clips, output_hidden_states=layer is not None)
    states = out.last_hidden_state if layer is None else out.hidden_states[layer]
    return states.mean(dim=1)


def test_matches_transformers_mean_pooled(dirs):
    from transformers import HubertModel

    enc = HubertAudioEncoder.from_pretrained(dirs["base"])
    reference = HubertModel.from_pretrained(dirs["base"]).eval()
    clips = _clips()
    out = enc.encode_audio(clips)
    assert out.shape == (3, 32) and enc.dim == 32 and out.dtype == torch.float32
    torch.testing.assert_close(out, _reference(reference, clips), atol=1e-5, rtol=1e-5)
    assert not enc.normalize  # base models: feat_extract_norm "group" -> no normalisation
    layer1 = HubertAudioEncoder.from_pretrained(dirs["base"], layer=1)
    torch.testing.assert_close(layer1.encode_audio(clips), _reference(reference, clips, 1),
                               atol=1e-5, rtol=1e-5)
    assert layer1.fingerprint() != enc.fingerprint()


def test_ctc_checkpoint_and_old_weight_norm_names(dirs, tmp_path):
    from safetensors.torch import load_file
    from transformers import HubertForCTC

    enc = HubertAudioEncoder.from_pretrained(dirs["ctc"])
    reference = HubertForCTC.from_pretrained(dirs["ctc"]).eval().hubert
    clips = _clips(2)
    torch.testing.assert_close(enc.encode_audio(clips), _reference(reference, clips),
                               atol=1e-5, rtol=1e-5)
    assert not [k for k in enc.state_dict() if "lm_head" in k]

    # hub checkpoints such as facebook/hubert-base-ls960: a pytorch_model.bin with the
    # weight_g / weight_v names of torch's old weight norm, some without masked_spec_embed
    state = load_file(dirs["base"] / "model.safetensors")
    renamed = {k.replace("parametrizations.weight.original0", "weight_g")
                .replace("parametrizations.weight.original1", "weight_v"): v
               for k, v in state.items() if k != "masked_spec_embed"}
    assert any(k.endswith("weight_g") for k in renamed)
    (tmp_path / "config.json").write_text((dirs["base"] / "config.json").read_text())
    torch.save(renamed, tmp_path / "pytorch_model.bin")
    old = HubertAudioEncoder.from_pretrained(tmp_path)
    new = HubertAudioEncoder.from_pretrained(dirs["base"])
    torch.testing.assert_close(old.encode_audio(clips), new.encode_audio(clips))


def test_normalisation_follows_the_feature_extractor(dirs, tmp_path):
    from transformers import HubertModel, Wav2Vec2FeatureExtractor

    large = HubertAudioEncoder.from_pretrained(dirs["large"])
    assert large.normalize  # feat_extract_norm "layer" models expect normalised input
    extractor = Wav2Vec2FeatureExtractor(do_normalize=True, sampling_rate=SR)
    clips = _clips(2) + 0.3
    inputs = extractor(list(clips.numpy()), sampling_rate=SR, return_tensors="pt").input_values
    reference = HubertModel.from_pretrained(dirs["large"]).eval()
    torch.testing.assert_close(large.encode_audio(clips), _reference(reference, inputs),
                               atol=1e-4, rtol=1e-4)
    assert large.fingerprint()["preprocessing"]["normalize"] is True
    # preprocessor_config.json decides when present
    folder = tmp_path / "base-normalised"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((dirs["base"] / name).read_bytes())
    (folder / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True}))
    assert HubertAudioEncoder.from_pretrained(folder).normalize


def test_frozen_half_and_errors(dirs, tmp_path):
    enc = HubertAudioEncoder.from_pretrained(dirs["base"])
    clips = _clips(2)
    before = enc.encode_audio(clips)
    torch.nn.Sequential(enc).train()
    assert not any(m.training for m in enc.modules())
    assert all(not p.requires_grad for p in enc.parameters())
    assert torch.equal(enc.encode_audio(clips), before)  # dropout stays off
    fp = enc.fingerprint()
    assert fp["modality"] == "audio" and len(fp["weights_sha256"]) == 64
    half = HubertAudioEncoder.from_pretrained(dirs["base"], dtype="bfloat16")
    assert half.fingerprint()["dtype"] == "bfloat16"
    out = half.encode_audio(clips)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_hubert(tmp_path / "missing")
    (tmp_path / "w2v").mkdir()
    (tmp_path / "w2v" / "config.json").write_text('{"model_type": "wav2vec2"}')
    with pytest.raises(ValueError, match="not a HuBERT checkpoint"):
        load_hubert(tmp_path / "w2v")
    from safetensors.torch import load_file, save_file

    state = load_file(dirs["base"] / "model.safetensors")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((dirs["base"] / "config.json").read_text())
    save_file({k: v for k, v in state.items() if "layers.1.attention.q_proj" not in k},
              broken / "model.safetensors")
    with pytest.raises(CheckpointError, match="layers.1.attention.q_proj"):
        load_hubert(broken)
