"""ModelConfig: presets, YAML round trips, dotted overrides and validation."""

from __future__ import annotations

import pytest

from affectgpt.model import (
    ConfigError,
    LoRAConfig,
    ModelConfig,
    apply_overrides,
    load_config,
    load_preset,
    preset_names,
)


def test_all_presets_load_and_validate():
    names = preset_names()
    assert {"paper", "paper-llama2", "qwen2.5-lora", "small", "tiny"} <= set(names)
    for name in names:
        cfg = load_preset(name)
        assert cfg.name == name
        cfg.validate()


def test_paper_preset_matches_the_reference_architecture():
    cfg = load_preset("paper")
    v, a = cfg.video, cfg.audio
    assert (v.feature_dim, v.frames, v.tokens_per_frame, v.max_positions, v.num_query) == (
        768, 8, 32, 32, 32)
    assert (v.layers, v.hidden, v.heads, v.intermediate) == (2, 768, 12, 3072)
    assert (a.feature_dim, a.clips, a.max_positions, a.num_query, a.layers) == (1024, 8, 8, 8, 2)
    assert cfg.llm.path is None and cfg.llm.dtype == "bfloat16" and cfg.llm.hidden_size == 4096
    assert cfg.lora is None
    assert cfg.prompt.style == "vicuna-v0" and cfg.prompt.stop == "###"
    assert cfg.prompt.question == "From what clues can we infer the person's emotional state?"
    g = cfg.generation
    assert (g.do_sample, g.top_p, g.temperature, g.max_new_tokens) == (True, 0.9, 1.0, 300)


def test_derived_presets_inherit_from_paper():
    llama2 = load_preset("paper-llama2")
    assert llama2.video == load_preset("paper").video
    qwen = load_preset("qwen2.5-lora")
    assert qwen.lora == LoRAConfig(r=16, alpha=32, dropout=0.05, targets=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    assert qwen.prompt.style == "chat-template" and qwen.llm.hidden_size == 3584
    small = load_preset("small")
    assert small.llm.path == "smollm2" and small.audio.feature_dim == 512
    assert small.video.tokens_per_frame == 1


def test_overrides_convert_types_and_copy():
    base = load_preset("tiny")
    cfg = apply_overrides(base, ["video.layers=4", "audio.dropout=0.25", "llm.dtype=bfloat16",
                                 "prompt.add_bos=false", "generation.top_p=1",
                                 "prompt.question=Why?", "llm.tokenizer=byte"])
    assert cfg.video.layers == 4 and isinstance(cfg.video.layers, int)
    assert cfg.audio.dropout == 0.25
    assert cfg.prompt.add_bos is False
    assert cfg.generation.top_p == 1.0 and isinstance(cfg.generation.top_p, float)
    assert cfg.prompt.question == "Why?"
    assert base.video.layers == 1  # the input is not modified


def test_lora_overrides_switch_lora_on_and_off():
    cfg = apply_overrides(load_preset("tiny"), ["lora.r=16"])
    assert cfg.lora == LoRAConfig(r=16)
    cfg = apply_overrides(cfg, ["lora.targets=q_proj,v_proj"])
    assert cfg.lora.targets == ["q_proj", "v_proj"]
    cfg = apply_overrides(cfg, ["lora.targets=[o_proj]", "lora.alpha=8"])
    assert cfg.lora.targets == ["o_proj"] and cfg.lora.alpha == 8
    assert apply_overrides(cfg, ["lora=null"]).lora is None
    cfg = apply_overrides(load_preset("tiny"), ["lora={r: 4, alpha: 8}"])
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout) == (4, 8, 0.05)


@pytest.mark.parametrize("override, message", [
    ("video.layer=4", "did you mean 'layers'"),
    ("vidoe.layers=4", "did you mean 'video'"),
    ("video.layers=four", "video.layers must be an integer"),
    ("video.layers=2.5", "video.layers must be an integer"),
    ("prompt.add_bos=maybe", "must be true or false"),
    ("video.layers.x=1", "is a value, not a section"),
    ("video.layers", "key=value"),
    ("video.hidden=30", "divisible"),
    ("video.frames=64", "exceeds video.max_positions"),
    ("prompt.style=alpaca", "prompt.style must be one of"),
    ("prompt.wording=terse", "prompt.wording must be one of"),
    ("prompt.order=backwards", "prompt.order must be one of"),
    ("llm.prefix_cache_mb=-1", "llm.prefix_cache_mb must be >= 0"),
    ("llm.dtype=int8", "llm.dtype must be one of"),
    ("video=null", "cannot be null"),
])
def test_bad_overrides_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(load_preset("tiny"), [override])


def test_unknown_key_error_lists_valid_keys():
    with pytest.raises(ConfigError) as info:
        apply_overrides(load_preset("tiny"), ["audio.nope=1"])
    assert "valid keys" in str(info.value) and "num_query" in str(info.value)


def test_yaml_round_trip(tmp_path):
    cfg = apply_overrides(load_preset("qwen2.5-lora"), ["llm.path=/models/qwen", "lora.r=8"])
    path = tmp_path / "cfg.yaml"
    path.write_text(cfg.to_yaml(), encoding="utf-8")
    assert ModelConfig.from_yaml(path) == cfg
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_yaml_with_base_and_load_config(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: tiny\nname: mine\nvideo:\n  layers: 3\n", encoding="utf-8")
    cfg = load_config(path, ["audio.num_query=5"])
    assert cfg.name == "mine" and cfg.video.layers == 3 and cfg.audio.num_query == 5
    assert cfg.video.hidden == load_preset("tiny").video.hidden
    assert load_config("tiny") == load_preset("tiny")


def test_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("video:\n  layres: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*video\.layres"):
        ModelConfig.from_yaml(bad)
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_preset("nope")


def test_random_llm_needs_hidden_size_and_tokenizer():
    with pytest.raises(ConfigError, match="llm.hidden_size is required"):
        apply_overrides(load_preset("tiny"), ["llm.hidden_size=null"])
    with pytest.raises(ConfigError, match="llm.tokenizer is required"):
        apply_overrides(load_preset("tiny"), ["llm.tokenizer=null"])
