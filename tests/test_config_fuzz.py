"""Property-based fuzzing of the one typed-config helper and the four configurations on it
(model, trainer, annotation, demo): any override text gives a configuration or the
configuration's documented error (a ConfigError subclass), never another exception; and
whatever a valid override sets reads back with the field's type."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from affectgpt.config import ConfigError, coerce, field_types, parse_override

pytest.importorskip("yaml")

MODEL_KEYS = ["video.layers", "video.frames", "audio.clips", "lora", "lora.r", "lora.targets",
              "llm.dtype", "prompt.add_bos", "prompt.style", "generation.max_new_tokens",
              "generation.temperature", "name", "video", "nope", "video.layers.x", ""]
TRAIN_KEYS = ["epochs", "lr", "betas", "best_metric", "select_on", "val_size", "extra",
              "max_steps", "precision", "epoch", "warmup_ratio"]
ANNOTATE_KEYS = ["merge.max_tokens", "merge.model", "*.base_url", "merge.api_key_env",
                 "video-clue.accepts", "concurrency", "cache", "mergee.x", "merge", "filter.backend"]
DEMO_KEYS = ["fine", "annotate", "overrides", "lr", "test_fraction", "seeds", "clip_seconds",
             "nope", "preset"]
values = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "null", "~", "true", "maybe", "1", "-3", "2.5", "1e-3", "[1, 2]",
                     "[a, b", "{r: 4}", "{", "q_proj,v_proj", "'", "!!python/object:os.system",
                     "&a [*a]", "0x1f", ".inf", "nan", "\x00", "名字"]),
)


def _items(keys):
    return st.lists(st.tuples(st.sampled_from(keys), values).map(lambda kv: f"{kv[0]}={kv[1]}")
                    | st.text(max_size=15), max_size=3)


@given(_items(MODEL_KEYS))
@example(["lora={r: 4, alpha: 8}", "video.layers=2.5"])
def test_model_overrides(items):
    from affectgpt.model.config import apply_overrides, load_preset

    try:
        cfg = apply_overrides(load_preset("tiny"), items)
    except ConfigError:
        return
    assert isinstance(cfg.video.layers, int) and isinstance(cfg.prompt.add_bos, bool)


@given(st.dictionaries(st.sampled_from(TRAIN_KEYS), values, max_size=3))
def test_train_settings(settings):
    from affectgpt.train.config import TrainConfig, TrainSettingsError, apply_train_settings

    try:
        cfg = apply_train_settings(TrainConfig(), settings)
    except TrainSettingsError:
        return
    assert isinstance(cfg.epochs, int) and isinstance(cfg.lr, float)


@given(_items(ANNOTATE_KEYS))
def test_annotate_overrides(items):
    from affectgpt.annotate.config import AnnotateConfigError, apply_overrides, default_config

    try:
        cfg = apply_overrides(default_config(), items)
    except AnnotateConfigError:
        return
    assert isinstance(cfg.stages["merge"].max_tokens, int) and isinstance(cfg.concurrency, int)


@given(_items(DEMO_KEYS))
@example(["overrides=video.layers=1"])
def test_demo_overrides(items):
    from affectgpt.demo.config import DemoConfig, DemoConfigError

    try:
        cfg = DemoConfig().override(items)
    except DemoConfigError:
        return
    assert isinstance(cfg.fine, int) and isinstance(cfg.overrides, list)


@given(st.text(max_size=30))
def test_parse_override_splits_at_the_first_equals_sign_or_refuses(item):
    try:
        key, value = parse_override(item)
    except ConfigError:
        assert "=" not in item or not item.split("=", 1)[0].strip()
        return
    assert key == item.split("=", 1)[0].strip() and value == item.split("=", 1)[1].strip()


@dataclasses.dataclass
class _Section:
    n: int = 1
    ratio: float = 0.5
    on: bool = False
    tags: list[str] = dataclasses.field(default_factory=list)
    pair: tuple[float, float] = (0.0, 1.0)
    maybe: str | None = None


@given(st.sampled_from(list(field_types(_Section))), values)
def test_coerce_gives_the_field_type_or_a_config_error(name, value):
    hint = field_types(_Section)[name]
    try:
        out = coerce(value, hint, name)
    except ConfigError:
        return
    expected = {"n": int, "ratio": float, "on": bool, "tags": list, "pair": tuple,
                "maybe": (str, type(None))}[name]
    assert isinstance(out, expected)
