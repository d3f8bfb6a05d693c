"""HuBERT (transformers ``HubertModel``) as a frozen audio encoder, one vector per clip.

:func:`load_hubert` reads a LOCAL transformers HuBERT folder: a ``HubertModel`` checkpoint
(e.g. ``facebook/hubert-large-ll60k``, or ``TencentGameMate/chinese-hubert-large``, the
HuBERT most MER baselines use) or a checkpoint with a head (``HubertForCTC``,
``HubertForSequenceClassification``: its ``hubert.*`` tensors are read, the head is not).
Older checkpoints' weight-norm names (``weight_g``/``weight_v``) are mapped to the
parametrisation names of current torch; ``masked_spec_embed`` (used only for training-time
masking) may be absent.

Output contract (:class:`HubertAudioEncoder`): ``encode_audio([n, samples]) -> [n, hidden]``
float32 for 16 kHz mono clips (2 s in the reference): each clip is normalised to zero mean
and unit variance when ``normalize`` (default: the folder's ``preprocessor_config.json``
``do_normalize``, else ``True`` for ``feat_extract_norm == "layer"`` models -- the large
ones -- and ``False`` for the base ones, as their feature extractors do), encoded, and the
hidden states of layer ``layer`` (default ``-1``: the last hidden state; ``k``: output of
transformer layer ``k``) are mean-pooled over time (20 ms frames, 99 for 2 s).
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn

from affectgpt.encoders._checkpoint import (
    CheckpointError,
    build_uninitialised,
    load_strict,
    read_tensors,
    require_model_folder,
)
from affectgpt.encoders.base import FrozenEncoder

__all__ = ["HubertAudioEncoder", "load_hubert"]

_HEAD_PREFIXES = ("hubert.",)
_WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0",
                "weight_v": "parametrizations.weight.original1"}


def _rename_weight_norm(state: dict[str, torch.Tensor], own: set[str]) -> dict[str, torch.Tensor]:
    """Map ``weight_g``/``weight_v`` to ``parametrizations.weight.original{0,1}`` (or back),
    whichever the module uses."""
    out = {}
    for key, value in state.items():
        if key not in own:
            for old, new in _WEIGHT_NORM.items():
                if key.endswith("." + old) and key[: -len(old)] + new in own:
                    key = key[: -len(old)] + new
                    break
                if key.endswith("." + new) and key[: -len(new)] + old in own:
                    key = key[: -len(new)] + old
                    break
        out[key] = value
    return out


def load_hubert(path: str | os.PathLike) -> nn.Module:
    """The ``HubertModel`` of a local transformers HuBERT folder (float32, eval mode).

    Raises:
        FileNotFoundError: ``path`` is not a folder with ``config.json`` and weights.
        ValueError: not a HuBERT checkpoint.
        CheckpointError: tensors missing, unexpected or of the wrong shape.
    """
    folder = require_model_folder(path, "HuBERT checkpoint")
    model_type = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    if model_type != "hubert":
        raise ValueError(f"{folder} is not a HuBERT checkpoint (config model_type {model_type!r})")
    from transformers import HubertConfig, HubertModel

    config = HubertConfig.from_pretrained(str(folder), local_files_only=True)
    state = read_tensors(folder, lambda key: True)
    prefix = next((p for p in _HEAD_PREFIXES if any(k.startswith(p) for k in state)), "")
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not any(k.startswith("feature_extractor.") for k in state):
        raise CheckpointError(f"{folder} holds no HuBERT encoder weights "
                              "(no feature_extractor.* tensors)")
    model = build_uninitialised(lambda: HubertModel(config))
    own = set(model.state_dict())
    state = _rename_weight_norm(state, own)
    load_strict(model, state, source=str(folder), optional=("masked_spec_embed",))
    return model.eval()


def _default_normalize(folder, config) -> bool:
    path = folder / "preprocessor_config.json"
    if path.is_file():
        value = json.loads(path.read_text(encoding="utf-8")).get("do_normalize")
        if value is not None:
            return bool(value)
    return getattr(config, "feat_extract_norm", "group") == "layer"


class HubertAudioEncoder(FrozenEncoder):
    """Frozen HuBERT: 16 kHz clips ``[n, samples] -> [n, hidden]`` (module docstring)."""

    name = "hubert"
    modality = "audio"
    sample_rate = 16000

    def __init__(self, model: nn.Module, *, name: str = "hubert", layer: int = -1,
                 normalize: bool = False, dtype: torch.dtype | str = torch.float32,
                 batch_size: int = 8):
        super().__init__()
        n_layers = int(model.config.num_hidden_layers)
        if not -n_layers <= layer <= n_layers or layer == 0:
            raise ValueError(f"layer must be in [-{n_layers}, -1] or [1, {n_layers}], got {layer}")
        self.model = model
        self.name = name
        self.layer = int(layer)
        self.normalize = bool(normalize)
        self.dim = int(model.config.hidden_size)
        self.batch_size = int(batch_size)
        self.freeze(dtype)

    @classmethod
    def from_pretrained(cls, local_dir: str | os.PathLike, dtype: torch.dtype | str = torch.float32,
                        **kwargs) -> HubertAudioEncoder:
        """Load a local HuBERT folder (:func:`load_hubert`); ``normalize`` defaults to the
        folder's feature-extractor setting (module docstring)."""
        model = load_hubert(local_dir)
        folder = require_model_folder(local_dir, "HuBERT checkpoint")
        kwargs.setdefault("normalize", _default_normalize(folder, model.config))
        return cls(model, dtype=dtype, **kwargs)

    def preprocessing(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "normalize": self.normalize,
                "layer": self.layer, "pooling": "mean over time"}

    def _encode_audio(self, clips: torch.Tensor) -> torch.Tensor:
        clips = clips.detach().to(self.device, torch.float32)
        if self.normalize:  # Wav2Vec2FeatureExtractor's zero_mean_unit_var_norm
            clips = (clips - clips.mean(1, keepdim=True)) / torch.sqrt(
                clips.var(1, correction=0, keepdim=True) + 1e-7)
        out = []
        for start in range(0, clips.shape[0], self.batch_size):
            batch = clips[start:start + self.batch_size].to(self.dtype)
            if self.layer == -1:
                states = self.model(batch).last_hidden_state
            else:
                states = self.model(batch, output_hidden_states=True).hidden_states[self.layer]
            out.append(states.float().mean(dim=1))
        return torch.cat(out)
