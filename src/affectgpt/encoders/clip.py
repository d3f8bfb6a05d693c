"""A transformers CLIP vision tower as a frozen frame encoder.

:func:`load_clip_vision` reads the vision tower of a LOCAL transformers CLIP folder, any of:

- a full :class:`~transformers.CLIPModel` checkpoint (``model_type: clip``, e.g. a download of
  ``openai/clip-vit-large-patch14``): only ``vision_model.*`` and ``visual_projection.*`` are
  read, never the text tower;
- a :class:`~transformers.CLIPVisionModelWithProjection` folder (``clip_vision_model`` with a
  ``visual_projection``);
- a :class:`~transformers.CLIPVisionModel` folder (no projection).

Output contract (:class:`CLIPFrameEncoder`), frames ``[n, 3, S, S]`` (``S`` =
``config.image_size``):

- ``output="pooled"`` (default): ``[n, dim]`` -- the projected image embedding
  (``image_embeds``, ``dim = projection_dim``) when the checkpoint has a visual projection,
  otherwise the pooled CLS state (``pooler_output``: post-LayerNorm CLS, ``dim =
  hidden_size``). Not L2-normalised (CLIP normalises only to compute similarities).
- ``output="patches"``: ``[n, P, hidden_size]`` -- the patch tokens (CLS dropped,
  ``P = (S / patch_size)^2``) of hidden layer ``layer`` (``-1``: the last encoder layer,
  ``-2``: the penultimate, as LLaVA-style models use).

Frames are preprocessed with the folder's ``preprocessor_config.json`` mean/std when it has
one (else CLIP's), bicubic, centre crop (CLIP's eval transform) unless ``crop="resize"``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Literal

import torch
from torch import nn

from affectgpt.encoders._checkpoint import (
    CheckpointError,
    build_uninitialised,
    load_strict,
    read_tensors,
    require_model_folder,
)
from affectgpt.encoders.frames import FrameEncoder
from affectgpt.media.transforms import CLIP_MEAN, CLIP_STD

__all__ = ["CLIPFrameEncoder", "load_clip_vision"]

Output = Literal["pooled", "patches"]


_VISION_PREFIX = "vision_model."
# a CLIPVisionModel saved by transformers 5 has no "vision_model." prefix
_BARE = ("embeddings.", "encoder.", "pre_layrnorm.", "post_layernorm.")


def _wanted(key: str) -> bool:
    return key.startswith((_VISION_PREFIX, "visual_projection.") + _BARE)


def _vision_state(state: dict[str, torch.Tensor], folder) -> dict[str, torch.Tensor]:
    """The vision-tower tensors without prefix (from either layout)."""
    prefixed = {k[len(_VISION_PREFIX):]: v for k, v in state.items() if k.startswith(_VISION_PREFIX)}
    bare = {k: v for k, v in state.items() if k.startswith(_BARE)}
    if prefixed and bare:
        raise CheckpointError(f"{folder} holds vision tensors both with and without the "
                              f"'vision_model.' prefix, e.g. {sorted(bare)[0]}")
    return prefixed or bare


def load_clip_vision(path: str | os.PathLike) -> nn.Module:
    """The vision tower of a local transformers CLIP folder (see the module docstring).

    Returns a float32 :class:`~transformers.CLIPVisionModelWithProjection` when the checkpoint
    has ``visual_projection.weight``, else a :class:`~transformers.CLIPVisionModel`, in eval
    mode.

    Raises:
        FileNotFoundError: ``path`` is not a folder with ``config.json`` and weights.
        ValueError: not a CLIP checkpoint.
        CheckpointError: tensors missing, unexpected or of the wrong shape.
    """
    folder = require_model_folder(path, "CLIP checkpoint")
    model_type = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    if model_type not in ("clip", "clip_vision_model"):
        raise ValueError(f"{folder} is not a CLIP checkpoint (config model_type {model_type!r}, "
                         "expected 'clip' or 'clip_vision_model')")
    from transformers import (
        CLIPConfig,
        CLIPVisionConfig,
        CLIPVisionModel,
        CLIPVisionModelWithProjection,
    )

    if model_type == "clip":
        full = CLIPConfig.from_pretrained(str(folder), local_files_only=True)
        config = full.vision_config
        config.projection_dim = full.projection_dim
    else:
        config = CLIPVisionConfig.from_pretrained(str(folder), local_files_only=True)
    state = read_tensors(folder, _wanted)
    vision = _vision_state(state, folder)
    if not vision:
        raise CheckpointError(f"{folder} holds no CLIP vision weights (no vision_model.* tensors)")
    projection = {k: v for k, v in state.items() if k.startswith("visual_projection.")}
    if "visual_projection.weight" in projection:
        config.projection_dim = int(projection["visual_projection.weight"].shape[0])
        model = build_uninitialised(lambda: CLIPVisionModelWithProjection(config))
    else:
        model = build_uninitialised(lambda: CLIPVisionModel(config))
    prefixed = any(k.startswith(_VISION_PREFIX) for k in model.state_dict())
    state = {(_VISION_PREFIX + k if prefixed else k): v for k, v in vision.items()}
    state.update(projection)
    load_strict(model, state, source=str(folder))
    return model.eval()


def _preprocessor_stats(folder) -> tuple[tuple, tuple] | None:
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text(encoding="utf-8"))
    mean, std = config.get("image_mean"), config.get("image_std")
    if mean is None or std is None:
        return None
    return tuple(mean), tuple(std)


class CLIPFrameEncoder(FrameEncoder):
    """Frozen CLIP vision tower: frames ``[n, 3, S, S]`` -> ``[n, dim]`` (pooled) or
    ``[n, P, hidden]`` (patch tokens). See the module docstring for the contract."""

    name = "clip"

    def __init__(self, model: nn.Module, *, name: str = "clip", output: Output = "pooled",
                 layer: int = -1, dtype: torch.dtype | str = torch.float32,
                 mean=CLIP_MEAN, std=CLIP_STD, crop: str = "center",
                 interpolation: str = "bicubic", face_crop: bool = False, batch_size: int = 32):
        super().__init__()
        if output not in ("pooled", "patches"):
            raise ValueError(f"output must be 'pooled' or 'patches', not {output!r}")
        self.model = model
        self.name = name
        self.output = output
        config = model.config
        n_layers = int(config.num_hidden_layers)
        if not -n_layers <= layer < n_layers + 1 or layer == 0:
            raise ValueError(f"layer must be a hidden layer index in [-{n_layers}, -1] or "
                             f"[1, {n_layers}], got {layer}")
        self.layer = int(layer)
        self.projected = hasattr(model, "visual_projection")
        self.batch_size = int(batch_size)
        if output == "pooled":
            self.dim = int(config.projection_dim if self.projected else config.hidden_size)
            self.tokens_per_clip = 1
        else:
            self.dim = int(config.hidden_size)
            self.tokens_per_clip = (int(config.image_size) // int(config.patch_size)) ** 2
        self._set_transform(size=int(config.image_size), mean=mean, std=std, crop=crop,
                            interpolation=interpolation, face_crop=face_crop)
        self.freeze(dtype)

    @classmethod
    def from_pretrained(cls, local_dir: str | os.PathLike, dtype: torch.dtype | str = torch.float32,
                        **kwargs) -> CLIPFrameEncoder:
        """Load a local CLIP folder (:func:`load_clip_vision`); the folder's
        ``preprocessor_config.json`` mean/std are used unless given; ``kwargs`` go to the
        constructor."""
        model = load_clip_vision(local_dir)
        stats = _preprocessor_stats(require_model_folder(local_dir, "CLIP checkpoint"))
        if stats is not None:
            kwargs.setdefault("mean", stats[0])
            kwargs.setdefault("std", stats[1])
        return cls(model, dtype=dtype, **kwargs)

    def model_preprocessing(self) -> dict[str, Any]:
        if self.output == "pooled":
            what = "image_embeds (visual projection)" if self.projected else "pooler_output"
            return {"output": "pooled", "pooled": what}
        return {"output": "patches", "layer": self.layer, "cls_token": "dropped"}

    def _encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        frames = self.check_frames(frames)
        out = []
        for start in range(0, frames.shape[0], self.batch_size):
            pixels = frames[start:start + self.batch_size]
            if self.output == "pooled":
                result = self.model(pixel_values=pixels)
                feats = result.image_embeds if self.projected else result.pooler_output
            elif self.layer == -1:
                feats = self.model(pixel_values=pixels).last_hidden_state[:, 1:]
            else:
                hidden = self.model(pixel_values=pixels, output_hidden_states=True).hidden_states
                feats = hidden[self.layer][:, 1:]
            out.append(feats.float())
        return torch.cat(out)
