"""The trainable branches: a Q-Former adapter per modality, and Video-LLaMA weight import.

:class:`QFormerAdapter` is the video (or audio) branch of Video-LLaMA / AffectGPT::

    features [B, T, N, D]            T positions (frames / clips) x N tokens, D = feature dim
      + position_embedding[t]        one learnt D-vector per position, added to its N tokens
      -> keys/values [B, T*N, D]
    query_tokens [1, Q, H]           Q learnt queries
      -> Q-Former (L layers: self-attention over the queries, cross-attention to the
         keys/values in every layer, feed-forward)            -> [B, Q, H]
      -> proj: Linear(H, LLM hidden)                           -> [B, Q, LLM hidden]

The Q-Former is transformers' :class:`~transformers.Blip2QFormerModel` (the BLIP-2 /
LAVIS Q-Former without its text branch) with ``cross_attention_frequency=1`` and
``encoder_hidden_size`` = the feature size, i.e. exactly the query path of LAVIS'
``BertLMHeadModel`` that Video-LLaMA instantiates, so the released Video-LLaMA weights
map onto it one-to-one (:func:`load_video_llama_qformer`).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping

import torch
from torch import nn

from affectgpt.model.config import BranchConfig


class QFormerAdapter(nn.Module):
    """Position embedding + Q-Former + projection (see the module docstring).

    ``tokens_per_position`` (``None`` = any) is checked against the input, to catch
    features from another encoder early.
    """

    def __init__(
        self,
        *,
        feature_dim: int,
        num_query: int,
        max_positions: int,
        llm_hidden: int,
        layers: int = 2,
        hidden: int = 768,
        heads: int = 12,
        intermediate: int = 3072,
        dropout: float = 0.1,
        tokens_per_position: int | None = None,
        initializer_range: float = 0.02,
    ):
        super().__init__()
        from transformers import Blip2QFormerConfig, Blip2QFormerModel

        self.feature_dim = feature_dim
        self.num_query = num_query
        self.max_positions = max_positions
        self.tokens_per_position = tokens_per_position
        self.qformer_config = Blip2QFormerConfig(
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=intermediate,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            cross_attention_frequency=1,
            encoder_hidden_size=feature_dim,
            initializer_range=initializer_range,
            use_qformer_text_input=False,
        )
        # Same parameter layout as Video-LLaMA: query tokens [1, Q, H], position embedding
        # over the *input* feature size.
        self.query_tokens = nn.Parameter(torch.empty(1, num_query, hidden))
        self.position_embedding = nn.Embedding(max_positions, feature_dim)
        self.qformer = Blip2QFormerModel(self.qformer_config)
        self.proj = nn.Linear(hidden, llm_hidden)
        if not self.query_tokens.is_meta:
            nn.init.normal_(self.query_tokens, std=initializer_range)
            # Video-LLaMA keeps nn.Embedding's N(0, 1) init; BERT-style 0.02 keeps the
            # position signal from swamping freshly initialised features.
            nn.init.normal_(self.position_embedding.weight, std=initializer_range)

    @classmethod
    def from_config(cls, cfg: BranchConfig, llm_hidden: int) -> QFormerAdapter:
        return cls(
            feature_dim=cfg.feature_dim,
            num_query=cfg.num_query,
            max_positions=cfg.max_positions,
            llm_hidden=llm_hidden,
            layers=cfg.layers,
            hidden=cfg.hidden,
            heads=cfg.heads,
            intermediate=cfg.intermediate,
            dropout=cfg.dropout,
            tokens_per_position=cfg.tokens_per_position,
        )

    @property
    def llm_hidden(self) -> int:
        return self.proj.out_features

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T, N, D]`` (or ``[B, T, D]`` for one token per position) -> ``[B, Q, H_llm]``.

        ``mask`` (optional, ``[B, T]`` bool) marks the valid positions (e.g. a video
        shorter than T frames); masked positions are not attended to.
        """
        if features.ndim == 3:
            features = features.unsqueeze(2)
        if features.ndim != 4:
            raise ValueError("expected features [B, T, N, D] or [B, T, D], got shape "
                             f"{tuple(features.shape)}")
        b, t, n, d = features.shape
        if d != self.feature_dim:
            raise ValueError(f"feature size {d} does not match this adapter's feature_dim "
                             f"{self.feature_dim} (features from another encoder?)")
        if t > self.max_positions:
            raise ValueError(f"{t} positions exceed the position embedding's "
                             f"max_positions {self.max_positions}")
        if self.tokens_per_position is not None and n != self.tokens_per_position:
            raise ValueError(f"{n} tokens per position, expected {self.tokens_per_position} "
                             "(features from another encoder?)")
        param = self.query_tokens
        features = features.to(device=param.device, dtype=param.dtype)
        positions = self.position_embedding(torch.arange(t, device=param.device))  # [T, D]
        keys = (features + positions[None, :, None, :]).reshape(b, t * n, d)
        encoder_mask = None
        if mask is not None:
            if tuple(mask.shape) != (b, t):
                raise ValueError(f"mask must be [B, T] = {(b, t)}, got {tuple(mask.shape)}")
            mask = mask.to(device=param.device, dtype=torch.bool)
            if not bool(mask.any(dim=1).all()):
                raise ValueError("every sample needs at least one valid position in mask")
            encoder_mask = mask[:, :, None].expand(b, t, n).reshape(b, t * n).long()
        queries = self.query_tokens.expand(b, -1, -1)
        hidden = self.qformer(
            query_embeds=queries,
            encoder_hidden_states=keys,
            encoder_attention_mask=encoder_mask,
        ).last_hidden_state
        return self.proj(hidden)

    def extra_repr(self) -> str:
        return (f"feature_dim={self.feature_dim}, num_query={self.num_query}, "
                f"max_positions={self.max_positions}, llm_hidden={self.llm_hidden}")


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# --------------------------------------------------------------------------- Video-LLaMA import
# Names in Video-LLaMA / AffectGPT (video_llama/models/video_llama.py) -> ours. The
# Q-Formers there are LAVIS BertLMHeadModel with the text-only parts removed
# (cls, word/position embeddings, the text feed-forward `intermediate`/`output`).
_BRANCH_PREFIXES = {
    "video": {
        "video_query_tokens": "video.query_tokens",
        "video_frame_position_embedding.": "video.position_embedding.",
        "video_Qformer.": "video.qformer.",
        "llama_proj.": "video.proj.",
    },
    "audio": {
        "audio_query_tokens": "audio.query_tokens",
        "audio_position_embedding.": "audio.position_embedding.",
        "audio_Qformer.": "audio.qformer.",
        "audio_llama_proj.": "audio.proj.",
    },
}
_QFORMER_RULES = [
    # (LAVIS pattern, our replacement or None to drop as text-only / buffer)
    (re.compile(r"^bert\.embeddings\.LayerNorm\.(weight|bias)$"), r"layernorm.\1"),
    (re.compile(r"^bert\.embeddings\.(position_ids|word_embeddings\..*|position_embeddings\..*)$"),
     None),
    (re.compile(r"^bert\.encoder\.layer\.(\d+)\.(attention|crossattention)\.self\.(query|key|value)"
                r"\.(weight|bias)$"), r"encoder.layer.\1.\2.attention.\3.\4"),
    (re.compile(r"^bert\.encoder\.layer\.(\d+)\.(attention|crossattention)\.output\."
                r"(dense|LayerNorm)\.(weight|bias)$"), r"encoder.layer.\1.\2.output.\3.\4"),
    (re.compile(r"^bert\.encoder\.layer\.(\d+)\.(intermediate_query|output_query)\."
                r"(dense|LayerNorm)\.(weight|bias)$"), r"encoder.layer.\1.\2.\3.\4"),
    (re.compile(r"^bert\.encoder\.layer\.(\d+)\.(intermediate|output)\..*$"), None),
    (re.compile(r"^cls\..*$"), None),
]


def load_video_llama_qformer(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map a Video-LLaMA / AffectGPT checkpoint's branch weights to :class:`AffectGPT` names.

    ``state_dict`` is the checkpoint's ``["model"]`` dict (a dict that holds a ``"model"``
    dict is unwrapped). Returns ``(mapped, skipped)``: ``mapped`` uses the names of
    :meth:`AffectGPT.state_dict` (``video.query_tokens``, ``video.position_embedding.weight``,
    ``video.qformer.encoder.layer.0.crossattention.attention.key.weight``, ``video.proj.weight``,
    ``audio.*`` likewise); ``skipped`` lists every key left out: the frozen parts
    (``llama_model.*``, the image ``Qformer.*``, ``visual_encoder.*``, ``audio_encoder.*``)
    and the Q-Formers' text-only parts and buffers. A ``module.`` prefix (DDP) is removed.
    Nothing is loaded here; see :meth:`AffectGPT.load_video_llama`.
    """
    if "model" in state_dict and isinstance(state_dict["model"], Mapping):
        state_dict = state_dict["model"]
    mapped: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    for key, tensor in state_dict.items():
        name = key[len("module."):] if key.startswith("module.") else key
        target = _map_key(name)
        if target is None:
            skipped.append(key)
            continue
        if target in mapped:
            raise ValueError(f"two checkpoint keys map to {target!r} (one is {key!r})")
        mapped[target] = tensor
    return mapped, skipped


def _map_key(name: str) -> str | None:
    for prefixes in _BRANCH_PREFIXES.values():
        for theirs, ours in prefixes.items():
            if theirs.endswith("."):
                if not name.startswith(theirs):
                    continue
                rest = name[len(theirs):]
                if ours.endswith(".qformer."):
                    for pattern, replacement in _QFORMER_RULES:
                        if pattern.match(rest):
                            return None if replacement is None else ours + pattern.sub(
                                replacement, rest)
                    return None
                return ours + rest
            if name == theirs:
                return ours
    return None


# The parts of a branch, as Video-LLaMA names them: video_query_tokens,
# video_frame_position_embedding, video_Qformer, llama_proj (audio_* likewise).
BRANCH_PARTS = ("query_tokens", "position_embedding", "qformer", "proj")


class PartialCheckpointError(ValueError):
    """A Video-LLaMA checkpoint that covers a branch only partly (e.g. a Q-Former layer is
    missing); :func:`load_video_llama_branches` refuses it unless ``allow_partial=True``."""


def read_video_llama_checkpoint(
    checkpoint: str | os.PathLike | Mapping[str, torch.Tensor],
) -> Mapping[str, torch.Tensor]:
    """A ``.pth`` path read with ``torch.load(weights_only=True)``, or the dict itself."""
    if isinstance(checkpoint, Mapping):
        return checkpoint
    path = os.fspath(checkpoint)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled objects other than tensors and containers
        raise ValueError(
            f"{path} cannot be read with torch.load(weights_only=True) ({exc}); if "
            "you trust the file, load it yourself and pass the dict") from exc


def load_video_llama_branches(
    branches: Mapping[str, nn.Module],
    checkpoint: str | os.PathLike | Mapping[str, torch.Tensor],
    *,
    projections: bool = True,
    allow_partial: bool = False,
) -> dict:
    """Initialise branch adapters (``{"video": QFormerAdapter, "audio": ...}``) from a
    Video-LLaMA / AffectGPT checkpoint (a ``.pth`` path or its loaded dict).

    Shapes must match (else ``ValueError``). ``projections=False`` leaves the ``proj``
    layers alone (for an LLM of another hidden size). A branch the checkpoint covers only
    partly (some of its parameters but not all, e.g. a missing Q-Former layer) raises
    :class:`PartialCheckpointError` naming the branch and what is missing, unless
    ``allow_partial=True`` (then the missing parameters keep their current values); a
    branch the checkpoint does not hold at all is left as it is.

    Returns ``{"loaded": [...], "skipped": [...], "coverage": {...}}``: ``loaded`` our
    parameter names, ``skipped`` the checkpoint keys not used, and ``coverage[branch]``
    ``{part: {"parameters", "of_parameters", "tensors", "of_tensors"}}`` for each part of
    :data:`BRANCH_PARTS` (without ``proj`` when ``projections=False``) plus ``"all"``.
    """
    mapped, skipped = load_video_llama_qformer(read_video_llama_checkpoint(checkpoint))
    own = {f"{branch}.{k}": v for branch, module in branches.items()
           for k, v in module.state_dict().items()}
    if not projections:
        for key in [k for k in mapped if k.split(".")[1] == "proj"]:
            skipped.append(key)
            del mapped[key]
    bad = [f"{k}: checkpoint {tuple(v.shape)}, model {tuple(own[k].shape)}"
           for k, v in mapped.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    unknown = [k for k in mapped if k not in own]
    if bad or unknown:
        raise ValueError("Video-LLaMA weights do not fit this model's branches: "
                         + "; ".join(bad + [f"{k}: no such parameter" for k in unknown]))
    coverage = _coverage(own, mapped, projections)
    partial = {b: c for b, c in coverage.items()
               if 0 < c["all"]["parameters"] < c["all"]["of_parameters"]}
    if partial and not allow_partial:
        raise PartialCheckpointError("; ".join(
            _describe_missing(branch, coverage[branch], own, mapped) for branch in partial)
            + ". Pass allow_partial=True to load it anyway (the missing parameters keep their "
              "current values).")
    if not mapped:
        warnings.warn("no Video-LLaMA branch weights found in the checkpoint", stacklevel=2)
    for branch, module in branches.items():
        prefix = f"{branch}."
        module.load_state_dict({k[len(prefix):]: v for k, v in mapped.items() if k.startswith(prefix)},
                               strict=False)
    return {"loaded": sorted(mapped), "skipped": skipped, "coverage": coverage}


def _coverage(own: Mapping[str, torch.Tensor], mapped: Mapping[str, torch.Tensor],
              projections: bool) -> dict[str, dict[str, dict[str, int]]]:
    coverage: dict[str, dict[str, dict[str, int]]] = {}
    for name, tensor in own.items():
        branch, part = name.split(".")[:2]
        if part == "proj" and not projections:
            continue
        counts = coverage.setdefault(branch, {})
        for key in (part, "all"):
            entry = counts.setdefault(key, {"parameters": 0, "of_parameters": 0,
                                            "tensors": 0, "of_tensors": 0})
            entry["of_parameters"] += tensor.numel()
            entry["of_tensors"] += 1
            if name in mapped:
                entry["parameters"] += tensor.numel()
                entry["tensors"] += 1
    return coverage


def _describe_missing(branch: str, coverage: Mapping[str, Mapping[str, int]],
                      own: Mapping[str, torch.Tensor], mapped: Mapping[str, torch.Tensor]) -> str:
    total = coverage["all"]
    parts = ", ".join(
        f"{branch}.{part} {c['of_tensors'] - c['tensors']} tensors / "
        f"{c['of_parameters'] - c['parameters']:,} parameters"
        for part, c in coverage.items() if part != "all" and c["tensors"] < c["of_tensors"])
    examples = [k for k in own if k.startswith(f"{branch}.") and k not in mapped][:3]
    return (f"the checkpoint covers the {branch} branch only partly: "
            f"{total['of_parameters'] - total['parameters']:,} of its "
            f"{total['of_parameters']:,} parameters ({total['of_tensors'] - total['tensors']} "
            f"tensors) are missing ({parts}; e.g. {', '.join(examples)})")
