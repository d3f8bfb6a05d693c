"""Typed configuration of an AffectGPT model, YAML presets and dotted overrides.

A :class:`ModelConfig` describes everything that shapes the model: the frozen LLM (and
optional LoRA adapters on it), the two trainable branches (a Q-Former adapter per
modality, sized for the features of one frozen encoder), the prompt and the generation
defaults. It round-trips through YAML/JSON (``to_dict`` / ``from_dict``), so a saved
checkpoint carries the exact configuration it was trained with.

Presets live in ``affectgpt/presets/<name>.yaml`` (package data)::

    cfg = load_preset("tiny")
    cfg = apply_overrides(cfg, ["video.layers=4", "lora.r=16", "llm.path=/models/vicuna"])

Overrides are ``dotted.key=value`` strings; the value is parsed as YAML (``16``, ``0.05``,
``true``, ``null``, ``[q_proj, v_proj]``, ``{r: 8}``) and converted to the field's type;
an unknown key is an error that lists the valid keys. ``lora=null`` switches LoRA off and
``lora.r=8`` switches it on (with the other LoRA fields at their defaults).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from affectgpt.config import ConfigError, build, merge, read_mapping
from affectgpt.config import apply_overrides as _apply_overrides

PROMPT_STYLES = ("vicuna-v0", "chat-template")
PROMPT_WORDINGS = ("reference", "short")  # the keys of model.prompt.WORDINGS
PROMPT_ORDERS = ("reference", "subtitle-first", "text-first")  # the keys of model.prompt.ORDERS
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEFAULT_QUESTION = "From what clues can we infer the person's emotional state?"
ALL_LINEAR_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]




# --------------------------------------------------------------------------- sections
@dataclass
class LLMConfig:
    """The frozen language model and its tokenizer.

    ``path`` is ``"smollm2"`` (the packaged SmolLM2-135M-Instruct, see
    :func:`affectgpt.llm.server.export_smollm2`), a local transformers folder, or
    ``"random"`` (a tiny randomly initialised Llama built from the fields below, for
    tests). ``tokenizer`` defaults to ``path``; it may also be ``"byte"`` (a built-in
    byte-level tokenizer that needs no files). ``hidden_size`` is the LLM's hidden size:
    required for ``"random"``, optional otherwise (checked against the loaded model, and
    used to count the adapter parameters without loading the LLM).
    ``dtype="auto"`` is bfloat16 on a CUDA device and float32 on the CPU. A random LLM
    is initialised with ``init_std`` (a larger value than transformers' 0.02 gives it
    peaked output distributions, so tiny tests can overfit it) from ``seed``.
    ``prefix_cache_mb``: memory for the frozen LLM's keys and values over the prompt text
    before the first feature token, computed once and reused by training steps and
    generation (:mod:`affectgpt.model.prefix`; 0 turns it off; never used with LoRA).
    """

    path: str | None = "smollm2"
    tokenizer: str | None = None
    dtype: str = "auto"
    hidden_size: int | None = None
    prefix_cache_mb: int = 1024
    # "random" LLMs only
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 128
    init_std: float = 0.02
    seed: int = 0
    # the embedding/LM-head rows of a random LLM (None: the tokenizer's size); a larger
    # value gives a random model the real head size of, e.g., Vicuna (32000)
    vocab_size: int | None = None


@dataclass
class LoRAConfig:
    """LoRA adapters on the frozen LLM (``lora: null`` = no LoRA, the 2024 paper's setting)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    targets: list[str] = field(default_factory=lambda: list(ALL_LINEAR_TARGETS))


@dataclass
class BranchConfig:
    """What the two trainable branches share: position embedding + Q-Former + projection.

    The input is a sequence of temporal positions (video frames or audio clips) of one or
    more feature tokens each, of size ``feature_dim``. A learnt position embedding
    (``max_positions`` x ``feature_dim``) is added to every token of a position;
    ``num_query`` learnt queries cross-attend to all tokens in every one of the
    ``layers`` Q-Former layers (``hidden``/``heads``/``intermediate`` sized, BERT-style,
    ``dropout`` on hidden states and attention); a linear layer maps the query outputs
    to the LLM's hidden size, one LLM input embedding per query.
    """

    encoder: str | None = None
    feature_dim: int = 768
    max_positions: int = 32
    num_query: int = 32
    layers: int = 2
    hidden: int = 768
    heads: int = 12
    intermediate: int = 3072
    dropout: float = 0.1

    @property
    def positions(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def tokens_per_position(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass
class VideoConfig(BranchConfig):
    """Video branch. Paper: ``frames`` = 8 frames x ``tokens_per_frame`` = 32 BLIP-2 query
    tokens (768-d) per frame (1 for an encoder with one pooled vector per frame), frame
    position embedding over 32 positions, video Q-Former with 32 queries."""

    encoder: str | None = "eva-vit-g+blip2-qformer"
    feature_dim: int = 768
    frames: int = 8
    tokens_per_frame: int = 32
    max_positions: int = 32
    num_query: int = 32

    @property
    def positions(self) -> int:
        return self.frames

    @property
    def tokens_per_position(self) -> int:
        return self.tokens_per_frame


@dataclass
class AudioConfig(BranchConfig):
    """Audio branch. Paper: ``clips`` = 8 ImageBind clip embeddings (1024-d, one token per
    clip), audio position embedding over 8 positions, audio Q-Former with 8 queries."""

    encoder: str | None = "imagebind-huge"
    feature_dim: int = 1024
    clips: int = 8
    tokens_per_clip: int = 1
    max_positions: int = 8
    num_query: int = 8

    @property
    def positions(self) -> int:
        return self.clips

    @property
    def tokens_per_position(self) -> int:
        return self.tokens_per_clip


@dataclass
class PromptConfig:
    """Prompt layout (see :mod:`affectgpt.model.prompt`).

    ``style``: ``"vicuna-v0"`` (``###Human: ... ###Assistant: ``, answer + ``###``) or
    ``"chat-template"`` (the tokenizer's own chat template, answer + end-of-turn token).
    ``wording``: ``"reference"`` (the reference code's sentences) or ``"short"`` (the same
    tags without the prose around them: a shorter sequence, cheaper on a CPU).
    ``order``: ``"reference"`` (audio, video, subtitle, question: the reference code's
    order), ``"subtitle-first"`` (subtitle, audio, video, question) or ``"text-first"``
    (subtitle and question first, the audio and video sentences last: everything before
    the first feature token is the same for every model on the same frozen LLM, so its
    keys and values can be computed once per clip and reused, see
    :class:`affectgpt.model.prefix.PrefixCache`).
    ``stop``: the answer terminator (trained into the labels) and the generation stop
    string; ``null`` = ``"###"`` for vicuna-v0 and the tokenizer's EOS token for
    chat-template. ``add_bos`` prepends the tokenizer's BOS token (vicuna-v0 only; a
    chat template adds its own). A prompt longer than ``max_length`` tokens is an error;
    a longer answer is truncated (its terminator kept).
    """

    style: str = "vicuna-v0"
    wording: str = "reference"
    order: str = "reference"
    question: str = DEFAULT_QUESTION
    stop: str | None = None
    add_bos: bool = True
    max_length: int = 1024
    padding_side: str = "right"


@dataclass
class GenerationSettings:
    """Defaults of :meth:`AffectGPT.generate` (the reference: top-p 0.9, T=1, 300 tokens).

    ``top_k`` 50 is the transformers default the reference inherited silently; set 0 to
    disable it. ``repetition_penalty`` > 1 (greedy or sampled) keeps a small LLM out of
    loops such as "The person is sad. The person is sad. ..."; 1.0 (the reference) is off."""

    max_new_tokens: int = 300
    do_sample: bool = True
    top_p: float = 0.9
    temperature: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.0


@dataclass
class ModelConfig:
    """The full model configuration (see the module docstring)."""

    name: str = "custom"
    llm: LLMConfig = field(default_factory=LLMConfig)
    lora: LoRAConfig | None = None
    video: VideoConfig = field(default_factory=VideoConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    generation: GenerationSettings = field(default_factory=GenerationSettings)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a (nested) dict; unknown keys and wrong types are errors.

        A top-level ``base: <preset>`` key starts from that preset and overlays the rest.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a model config must be a mapping, got {type(data).__name__}")
        data = dict(data)
        base = data.pop("base", None)
        if base is not None:
            cfg = merge(load_preset(str(base)), data)
        else:
            cfg = build(cls, data)
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> ModelConfig:
        path = Path(path)
        data = read_mapping(path, "model config")
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    # ------------------------------------------------------------------ validation
    def validate(self) -> ModelConfig:
        """Check value ranges and consistency; raise :class:`ConfigError`."""
        errors: list[str] = []
        if self.llm.dtype not in DTYPES:
            errors.append(f"llm.dtype must be one of {DTYPES}, got {self.llm.dtype!r}")
        if self.llm.path == "random":
            if not self.llm.hidden_size:
                errors.append("llm.hidden_size is required when llm.path is 'random'")
            if not self.llm.tokenizer:
                errors.append("llm.tokenizer is required when llm.path is 'random' "
                              "(e.g. 'byte' or 'smollm2')")
            elif self.llm.hidden_size and self.llm.hidden_size % max(self.llm.num_heads, 1):
                errors.append("llm.hidden_size must be divisible by llm.num_heads")
            if self.llm.init_std <= 0:
                errors.append("llm.init_std must be positive")
            if self.llm.vocab_size is not None and self.llm.vocab_size <= 0:
                errors.append("llm.vocab_size must be positive")
            if self.llm.num_heads % max(self.llm.num_kv_heads, 1):
                errors.append("llm.num_heads must be divisible by llm.num_kv_heads")
        if self.generation.repetition_penalty <= 0:
            errors.append("generation.repetition_penalty must be positive (1.0 is off)")
        if self.llm.hidden_size is not None and self.llm.hidden_size <= 0:
            errors.append("llm.hidden_size must be positive")
        if self.lora is not None:
            if self.lora.r <= 0 or self.lora.alpha <= 0:
                errors.append("lora.r and lora.alpha must be positive")
            if not 0.0 <= self.lora.dropout < 1.0:
                errors.append("lora.dropout must be in [0, 1)")
            if not self.lora.targets:
                errors.append("lora.targets must name at least one module")
        for branch_name in ("video", "audio"):
            b: BranchConfig = getattr(self, branch_name)
            keys = ["feature_dim", "max_positions", "num_query", "layers", "hidden", "heads",
                    "intermediate"]
            keys += ["frames", "tokens_per_frame"] if branch_name == "video" else [
                "clips", "tokens_per_clip"]
            for key in keys:
                if getattr(b, key) <= 0:
                    errors.append(f"{branch_name}.{key} must be positive")
            if b.heads > 0 and b.hidden % b.heads:
                errors.append(f"{branch_name}.hidden ({b.hidden}) must be divisible by "
                              f"{branch_name}.heads ({b.heads})")
            if b.positions > b.max_positions:
                what = "frames" if branch_name == "video" else "clips"
                errors.append(f"{branch_name}.{what} ({b.positions}) exceeds "
                              f"{branch_name}.max_positions ({b.max_positions})")
            if not 0.0 <= b.dropout < 1.0:
                errors.append(f"{branch_name}.dropout must be in [0, 1)")
        if self.prompt.style not in PROMPT_STYLES:
            errors.append(f"prompt.style must be one of {PROMPT_STYLES}, got {self.prompt.style!r}")
        if self.prompt.wording not in PROMPT_WORDINGS:
            errors.append(f"prompt.wording must be one of {PROMPT_WORDINGS}, "
                          f"got {self.prompt.wording!r}")
        if self.llm.prefix_cache_mb < 0:
            errors.append("llm.prefix_cache_mb must be >= 0")
        if self.prompt.order not in PROMPT_ORDERS:
            errors.append(f"prompt.order must be one of {PROMPT_ORDERS}, "
                          f"got {self.prompt.order!r}")
        if self.prompt.padding_side not in ("left", "right"):
            errors.append("prompt.padding_side must be 'left' or 'right'")
        if self.prompt.max_length <= 0:
            errors.append("prompt.max_length must be positive")
        if self.prompt.stop is not None and not self.prompt.stop:
            errors.append("prompt.stop must be a non-empty string or null")
        g = self.generation
        if g.max_new_tokens <= 0:
            errors.append("generation.max_new_tokens must be positive")
        if not 0.0 < g.top_p <= 1.0:
            errors.append("generation.top_p must be in (0, 1]")
        if g.temperature <= 0:
            errors.append("generation.temperature must be positive")
        if g.top_k < 0:
            errors.append("generation.top_k must be >= 0 (0 disables it)")
        if errors:
            raise ConfigError("invalid model config:\n  " + "\n  ".join(errors))
        return self


# --------------------------------------------------------------------------- presets
def preset_names() -> list[str]:
    """Names of the packaged presets (``affectgpt/presets/*.yaml``)."""
    folder = resources.files("affectgpt") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> ModelConfig:
    """The packaged preset ``name`` (e.g. ``"paper"``, ``"small"``, ``"tiny"``)."""
    resource = resources.files("affectgpt") / "presets" / f"{name}.yaml"
    if not resource.is_file():
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(preset_names())}")
    data = yaml.safe_load(resource.read_text(encoding="utf-8")) or {}
    if isinstance(data, dict) and data.get("base") == name:
        raise ConfigError(f"preset {name!r} names itself as its base")
    try:
        return ModelConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"preset {name!r}: {exc}") from exc


def load_config(spec: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ModelConfig:
    """A preset name or a YAML file path, then ``overrides``."""
    path = Path(spec)
    if str(spec).endswith((".yaml", ".yml")) or path.is_file():
        cfg = ModelConfig.from_yaml(path)
    else:
        cfg = load_preset(str(spec))
    return apply_overrides(cfg, overrides)


# --------------------------------------------------------------------------- overrides
def apply_overrides(cfg: ModelConfig, overrides: list[str] | tuple[str, ...]) -> ModelConfig:
    """A copy of ``cfg`` with ``["a.b=value", ...]`` applied, then validated."""
    cfg = _apply_overrides(cfg, overrides)
    cfg.validate()
    return cfg
