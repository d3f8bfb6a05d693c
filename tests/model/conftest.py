"""Fixtures for the model tests: the `tiny` preset (random 2-layer Llama, byte tokenizer,
built in ~20 ms once torch/transformers are imported) and real random feature batches."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from affectgpt.model import AffectGPT, ModelConfig, apply_overrides, load_preset  # noqa: E402

TARGETS = ["The person smiles broadly and speaks fast, so they are happy.",
           "A flat voice and lowered eyes suggest sadness.",
           "Shouting; angry."]
SUBTITLES = ["I can't believe we won!", "", "Get out of my room!"]


def _make_batch(cfg: ModelConfig, n: int = 3, *, seed: int = 0, audio_mask=None,
               video: bool = True, audio: bool = True, targets: bool = True) -> dict:
    """A batch of random features shaped for ``cfg`` (reproducible from ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    v, a = cfg.video, cfg.audio
    batch = {
        "video": torch.randn(n, v.frames, v.tokens_per_frame, v.feature_dim, generator=g)
        if video else None,
        "audio": torch.randn(n, a.clips, a.feature_dim, generator=g) if audio else None,
        "subtitle": [SUBTITLES[i % len(SUBTITLES)] for i in range(n)],
    }
    if audio_mask is not None:
        batch["audio_mask"] = torch.tensor(audio_mask, dtype=torch.bool)
    if targets:
        batch["target"] = [TARGETS[i % len(TARGETS)] for i in range(n)]
    return batch


def _select(batch: dict, index: list[int]) -> dict:
    """The samples ``index`` of a batch."""
    out = {}
    for key, value in batch.items():
        if value is None:
            out[key] = None
        elif isinstance(value, torch.Tensor):
            out[key] = value[index]
        else:
            out[key] = [value[i] for i in index]
    return out


VIDEO_LLAMA_KEYS = (Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"
                    / "video-llama-trainable-keys.json").resolve()


@pytest.fixture(scope="session")
def video_llama_keys() -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of a real Video-LLaMA / AffectGPT-2024 checkpoint's trainable
    tensors (REFERENCE.md section 8), read from ../shared at run time."""
    if not VIDEO_LLAMA_KEYS.is_file():
        pytest.skip(f"reference checkpoint layout not found at {VIDEO_LLAMA_KEYS}")
    return {name: tuple(shape) for name, shape in json.loads(VIDEO_LLAMA_KEYS.read_text()).items()}


@pytest.fixture
def tiny_cfg() -> ModelConfig:
    return load_preset("tiny")


@pytest.fixture
def tiny_model(tiny_cfg) -> AffectGPT:
    return AffectGPT.from_config(tiny_cfg)


@pytest.fixture
def tiny_lora_model(tiny_cfg) -> AffectGPT:
    if importlib.util.find_spec("peft") is None:
        pytest.skip("peft not installed")
    return AffectGPT.from_config(apply_overrides(tiny_cfg, ["lora.r=8", "lora.dropout=0.0"]))


@pytest.fixture
def make_batch():
    """``make_batch(cfg, n=3, seed=0, audio_mask=None, video=True, audio=True, targets=True)``."""
    return _make_batch


@pytest.fixture
def select():
    """``select(batch, [i, ...])``: a sub-batch."""
    return _select
