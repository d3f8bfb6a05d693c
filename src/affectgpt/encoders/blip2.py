"""EVA-CLIP ViT-g + BLIP-2 image Q-Former: the paper's frozen visual encoder (per frame).

AffectGPT (after Video-LLaMA) encodes each of a clip's 8 frames with the frozen EVA-CLIP
ViT-g/14 (its last layer removed, as in BLIP-2), a LayerNorm (BLIP-2's ``ln_vision``), and
the frozen BLIP-2 image Q-Former with its 32 learned queries. The ``transformers`` BLIP-2
classes hold the same modules: :class:`~transformers.Blip2VisionModel` (the 39-layer ViT-g
whose ``post_layernorm`` is ``ln_vision``), ``query_tokens`` and
:class:`~transformers.Blip2QFormerModel` (its input LayerNorm is the Q-Former BERT's
embedding LayerNorm).

:func:`load_blip2_vision_qformer` reads those three parts from a LOCAL transformers BLIP-2
checkpoint folder -- e.g. a download of ``Salesforce/blip2-opt-2.7b`` or
``Salesforce/blip2-flan-t5-xxl`` -- and never the language model: only the
``vision_model.*``, ``qformer.*`` and ``query_tokens`` tensors are read (a sharded
checkpoint's LLM-only shards are not even opened). Video-LLaMA's Q-Former comes from LAVIS'
``blip2_pretrained_flant5xxl.pth``, the weights converted to ``Salesforce/blip2-flan-t5-xxl``;
the OPT checkpoints hold a Q-Former trained further with OPT, so their features differ.

Output contract (:class:`Blip2QFormerEncoder`): ``encode_frames([n, 3, 224, 224]) ->
[n, 32, 768]`` float32, the Q-Former's last hidden states of the 32 queries per frame
(``tokens_per_clip = num_query_tokens``, ``dim = qformer hidden size``) -- the input of
AffectGPT's video Q-Former. Frames are preprocessed with CLIP's mean/std, bicubic, and by
default ``crop="resize"`` (the whole frame squashed to 224x224, as the reference's decord
loader does); ``crop="center"`` gives CLIP's eval transform.

Precision: with ``dtype`` float16/bfloat16 the ViT runs in that dtype while the Q-Former and
its queries stay float32 (``keep_qformer_fp32``, as transformers and LAVIS do).
"""

from __future__ import annotations

import json
import os
import re
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
from affectgpt.encoders.base import resolve_dtype
from affectgpt.encoders.frames import FrameEncoder
from affectgpt.media.transforms import CLIP_MEAN, CLIP_STD

__all__ = ["BLIP2_NAME", "Blip2QFormerEncoder", "load_blip2_vision_qformer"]

BLIP2_NAME = "eva-vit-g+blip2-qformer"
_PREFIXES = ("vision_model.", "qformer.")
# Q-Former tensors of its text branch (not used for image features): some checkpoints hold
# them although the configuration does not build them (use_qformer_text_input=False).
_TEXT_BRANCH = re.compile(r"^(embeddings\.|encoder\.layer\.\d+\.(intermediate|output)\.)")


def _wanted(key: str) -> bool:
    return key.startswith(_PREFIXES) or key == "query_tokens"


def load_blip2_vision_qformer(path: str | os.PathLike):
    """The vision model, Q-Former and query tokens of a local transformers BLIP-2 folder.

    Returns ``(vision_model, qformer, query_tokens)``: a float32
    :class:`~transformers.Blip2VisionModel`, a :class:`~transformers.Blip2QFormerModel`
    and a ``[1, num_query_tokens, hidden]`` tensor. Only those tensors are read (see the
    module docstring); the language model is never built nor read.

    Raises:
        FileNotFoundError: ``path`` is not a folder with ``config.json`` and weights.
        ValueError: the folder is not a BLIP-2 checkpoint (``model_type`` other than
            ``blip-2``).
        CheckpointError: tensors are missing, unexpected or of the wrong shape.
    """
    folder = require_model_folder(path, "BLIP-2 checkpoint")
    model_type = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    if model_type != "blip-2":
        raise ValueError(f"{folder} is not a BLIP-2 checkpoint (config model_type {model_type!r}, "
                         "expected 'blip-2', e.g. Salesforce/blip2-opt-2.7b)")
    from transformers import Blip2Config, Blip2QFormerModel, Blip2VisionModel

    config = Blip2Config.from_pretrained(str(folder), local_files_only=True)
    state = read_tensors(folder, _wanted)
    if "query_tokens" not in state or not any(k.startswith("vision_model.") for k in state):
        raise CheckpointError(f"{folder} holds no BLIP-2 vision/Q-Former weights "
                              "(no query_tokens or vision_model.* tensors)")

    vision = build_uninitialised(lambda: Blip2VisionModel(config.vision_config))
    qformer = build_uninitialised(lambda: Blip2QFormerModel(config.qformer_config))
    vision_state = {k[len("vision_model."):]: v for k, v in state.items()
                    if k.startswith("vision_model.")}
    load_strict(vision, vision_state, source=f"{folder} (vision_model)")
    own = qformer.state_dict()
    qformer_state = {k[len("qformer."):]: v for k, v in state.items() if k.startswith("qformer.")}
    qformer_state = {k: v for k, v in qformer_state.items()
                     if k in own or not _TEXT_BRANCH.match(k)}
    load_strict(qformer, qformer_state, source=f"{folder} (qformer)")
    query_tokens = state["query_tokens"].float()
    expected = (1, config.num_query_tokens, config.qformer_config.hidden_size)
    if tuple(query_tokens.shape) != expected:
        raise CheckpointError(f"{folder}: query_tokens has shape {tuple(query_tokens.shape)}, "
                              f"expected {expected}")
    return vision.eval(), qformer.eval(), query_tokens


class Blip2QFormerEncoder(FrameEncoder):
    """Frozen BLIP-2 ViT + Q-Former: frames ``[n, 3, S, S] -> [n, num_query_tokens, hidden]``
    (``[n, 32, 768]`` for the released checkpoints, ``S = 224``). See the module docstring.

    Build it with :meth:`from_pretrained` (a local checkpoint folder). Frames are encoded
    ``batch_size`` at a time.
    """

    name = BLIP2_NAME

    def __init__(self, vision_model: nn.Module, qformer: nn.Module, query_tokens: torch.Tensor, *,
                 name: str = BLIP2_NAME, dtype: torch.dtype | str = torch.float32,
                 crop: str = "resize", face_crop: bool = False, keep_qformer_fp32: bool = True,
                 batch_size: int = 8):
        super().__init__()
        self.vision_model = vision_model
        self.query_tokens = nn.Parameter(query_tokens.detach().clone(), requires_grad=False)
        self.qformer = qformer
        self.name = name
        self.dim = int(qformer.config.hidden_size)
        self.tokens_per_clip = int(query_tokens.shape[1])
        self.batch_size = int(batch_size)
        self._set_transform(size=int(vision_model.config.image_size), mean=CLIP_MEAN,
                            std=CLIP_STD, crop=crop, interpolation="bicubic", face_crop=face_crop)
        dtype = resolve_dtype(dtype)
        self.keep_qformer_fp32 = bool(keep_qformer_fp32) and dtype != torch.float32
        self.freeze(dtype)
        if self.keep_qformer_fp32:
            self.qformer.float()
            self.query_tokens.data = self.query_tokens.data.float()

    @classmethod
    def from_pretrained(cls, local_dir: str | os.PathLike, dtype: torch.dtype | str = torch.float32,
                        **kwargs) -> Blip2QFormerEncoder:
        """Load from a local transformers BLIP-2 folder (:func:`load_blip2_vision_qformer`);
        ``kwargs`` go to the constructor."""
        vision, qformer, query_tokens = load_blip2_vision_qformer(local_dir)
        return cls(vision, qformer, query_tokens, dtype=dtype, **kwargs)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the vision model (the Q-Former may be kept in float32)."""
        return self.vision_model.embeddings.patch_embedding.weight.dtype

    def model_preprocessing(self) -> dict[str, Any]:
        vision = self.vision_model.config
        return {
            "vision": {"layers": vision.num_hidden_layers, "hidden": vision.hidden_size,
                       "patch": vision.patch_size, "ln_vision": "post_layernorm"},
            "qformer_dtype": str(self.qformer.layernorm.weight.dtype).removeprefix("torch."),
            "output": "qformer last_hidden_state of the query tokens",
        }

    def _encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        frames = self.check_frames(frames)
        out = []
        for start in range(0, frames.shape[0], self.batch_size):
            pixels = frames[start:start + self.batch_size]
            image_embeds = self.vision_model(pixel_values=pixels).last_hidden_state
            mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=pixels.device)
            queries = self.query_tokens.expand(image_embeds.shape[0], -1, -1)
            states = self.qformer(query_embeds=queries, encoder_hidden_states=image_embeds,
                                  encoder_attention_mask=mask).last_hidden_state
            out.append(states.float())
        return torch.cat(out)

