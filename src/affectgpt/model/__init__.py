"""The AffectGPT model on precomputed frozen features (needs the ``model`` extra).

- :class:`ModelConfig` (+ :func:`load_preset`, :func:`apply_overrides`): typed config and
  the packaged presets ``paper``, ``paper-llama2``, ``qwen2.5-lora``, ``small``, ``tiny``.
- :class:`QFormerAdapter`: a trainable branch (position embedding, Q-Former, projection);
  :func:`load_video_llama_qformer` maps Video-LLaMA checkpoint names onto it and
  :func:`load_video_llama_branches` loads them, reporting each branch's coverage.
- :class:`PromptBuilder`: prompt text -> ids / labels / placeholder masks;
  :func:`splice_features` writes projected features into the placeholder rows.
- :class:`AffectGPT`: adapters + frozen LLM (+ optional LoRA): ``forward`` (loss on the
  answer), ``generate``, ``save_pretrained`` / ``from_pretrained``.

Importing this package imports only the config; the torch parts load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from affectgpt.model.config import (
    AudioConfig,
    BranchConfig,
    ConfigError,
    GenerationSettings,
    LLMConfig,
    LoRAConfig,
    ModelConfig,
    PromptConfig,
    VideoConfig,
    apply_overrides,
    load_config,
    load_preset,
    preset_names,
)

if TYPE_CHECKING:  # pragma: no cover
    from affectgpt.model.adapters import (
        PartialCheckpointError,
        QFormerAdapter,
        load_video_llama_branches,
        load_video_llama_qformer,
    )
    from affectgpt.model.affectgpt import (
        AffectGPT,
        AffectGPTOutput,
        LLMMismatchError,
        count_adapter_parameters,
    )
    from affectgpt.model.prompt import PlaceholderMismatchError, PromptBatch, PromptBuilder

_LAZY = {
    "QFormerAdapter": "affectgpt.model.adapters",
    "load_video_llama_qformer": "affectgpt.model.adapters",
    "load_video_llama_branches": "affectgpt.model.adapters",
    "PartialCheckpointError": "affectgpt.model.adapters",
    "AffectGPT": "affectgpt.model.affectgpt",
    "AffectGPTOutput": "affectgpt.model.affectgpt",
    "LLMMismatchError": "affectgpt.model.affectgpt",
    "count_adapter_parameters": "affectgpt.model.affectgpt",
    "PlaceholderMismatchError": "affectgpt.model.prompt",
    "PromptBatch": "affectgpt.model.prompt",
    "PromptBuilder": "affectgpt.model.prompt",
    "splice_features": "affectgpt.model.prompt",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'affectgpt.model' has no attribute {name!r}")


__all__ = [
    "AffectGPT",
    "AffectGPTOutput",
    "AudioConfig",
    "BranchConfig",
    "ConfigError",
    "GenerationSettings",
    "LLMConfig",
    "LLMMismatchError",
    "LoRAConfig",
    "ModelConfig",
    "PartialCheckpointError",
    "PlaceholderMismatchError",
    "PromptBatch",
    "PromptBuilder",
    "PromptConfig",
    "QFormerAdapter",
    "VideoConfig",
    "apply_overrides",
    "count_adapter_parameters",
    "load_config",
    "load_preset",
    "load_video_llama_branches",
    "load_video_llama_qformer",
    "preset_names",
    "splice_features",
]
