"""ImageBind-huge's audio encoder (the paper's frozen audio encoder), in plain torch.

An independent implementation of the audio branch of ImageBind (Girdhar et al., 2023;
``facebookresearch/ImageBind``, ``imagebind/models/imagebind_model.py``) that loads the
official ``imagebind_huge.pth`` -- reading only its audio tensors -- without the
``imagebind`` package (and its timm / torchvision / torchaudio / pytorchvideo stack).

Architecture (:class:`ImageBindAudioModel`, defaults = ImageBind-huge):

- preprocessor: ``Conv2d(1, 768, kernel 16, stride 10, bias=False)`` over the ``[1, 128,
  204]`` log-mel filterbank -> a 12 x 19 grid of 228 patches, flattened, ``LayerNorm(768)``
  (eps 1e-5); a learned CLS token is prepended and a learned position embedding ``[1, 229,
  768]`` added;
- trunk: 12 pre-norm transformer blocks (768-d, 12 heads, MLP 3072 with GELU, LayerNorm eps
  1e-6): ``x + drop_path(attn(norm_1(x)))``, ``x + drop_path(mlp(norm_2(x)))``; the attention
  is ``nn.MultiheadAttention`` with ``add_bias_kv=True`` (a learned key and value appended to
  every sequence); stochastic depth rising linearly from 0 to 0.1 over the blocks (inactive in
  eval, i.e. always for a frozen encoder); no extra LayerNorm before or after the blocks;
- head: ``LayerNorm(768, eps 1e-6)`` -> the CLS token -> ``Linear(768, 1024, bias=False)``;
- postprocessor: L2 normalisation, then multiplication by ``exp(log_logit_scale)`` clipped at
  100, with ``log_logit_scale = log(20)`` a fixed buffer (ImageBind's ``Normalize`` and
  ``LearnableLogitScaling(20, learnable=False)``).

Output contract (:class:`ImageBindAudioEncoder`): ``encode_audio([n, samples]) -> [n, 1024]``
for 16 kHz mono clips (2 s in the reference), each clip turned into ImageBind's input by
:func:`clip_fbanks` (exactly the per-clip steps of
:func:`affectgpt.media.imagebind_audio_features`); ``encode_fbank([n, 1, 128, 204]) ->
[n, 1024]`` takes that input directly. ``output`` selects:

- ``"scaled"`` (default): ImageBind's audio embedding as its forward pass returns it -- unit
  L2 norm times the logit scale 20, so every row has norm 20. This is what Video-LLaMA /
  AffectGPT feed their audio Q-Former (``get_audio_feature``'s second output);
- ``"normalized"``: the same direction with unit norm;
- ``"cls"``: ``[n, 768]``, the head's LayerNorm-ed CLS token before the projection
  (``get_audio_feature``'s first output).

Checkpoint names (:func:`to_official_names` / :func:`from_official_names`), ours ->
official::

    patch_embed.weight        modality_preprocessors.audio.rgbt_stem.proj.weight
    patch_norm.{weight,bias}  modality_preprocessors.audio.rgbt_stem.norm_layer.{weight,bias}
    cls_token                 modality_preprocessors.audio.cls_token
    pos_embed                 modality_preprocessors.audio.pos_embedding_helper.pos_embed
    blocks.<i>.<rest>         modality_trunks.audio.blocks.<i>.<rest>
    head_norm.{weight,bias}   modality_heads.audio.0.{weight,bias}
    head_proj.weight          modality_heads.audio.2.weight
    log_logit_scale           modality_postprocessors.audio.1.log_logit_scale

(``<rest>``: ``attn.{in_proj_weight, in_proj_bias, bias_k, bias_v, out_proj.weight,
out_proj.bias}``, ``norm_1``, ``norm_2``, ``mlp.fc1``, ``mlp.fc2``.)
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from affectgpt.encoders._checkpoint import CheckpointError, torch_load_mmap
from affectgpt.encoders.base import FrozenEncoder
from affectgpt.media.transforms import IMAGEBIND_AUDIO_MEAN, IMAGEBIND_AUDIO_STD, kaldi_fbank

__all__ = [
    "IMAGEBIND_AUDIO_PREFIXES",
    "ImageBindAudioEncoder",
    "ImageBindAudioModel",
    "clip_fbanks",
    "from_official_names",
    "load_imagebind_audio",
    "to_official_names",
]

Output = Literal["scaled", "normalized", "cls"]
IMAGEBIND_AUDIO_PREFIXES = (
    "modality_preprocessors.audio.",
    "modality_trunks.audio.",
    "modality_heads.audio.",
    "modality_postprocessors.audio.",
)
_PRE, _TRUNK, _HEAD, _POST = IMAGEBIND_AUDIO_PREFIXES
_FIXED_NAMES = {
    "patch_embed.weight": _PRE + "rgbt_stem.proj.weight",
    "patch_norm.weight": _PRE + "rgbt_stem.norm_layer.weight",
    "patch_norm.bias": _PRE + "rgbt_stem.norm_layer.bias",
    "cls_token": _PRE + "cls_token",
    "pos_embed": _PRE + "pos_embedding_helper.pos_embed",
    "head_norm.weight": _HEAD + "0.weight",
    "head_norm.bias": _HEAD + "0.bias",
    "head_proj.weight": _HEAD + "2.weight",
    "log_logit_scale": _POST + "1.log_logit_scale",
}
_FIXED_BACK = {v: k for k, v in _FIXED_NAMES.items()}
_BLOCK_REST = re.compile(
    r"^blocks\.(\d+)\.(attn\.(in_proj_weight|in_proj_bias|bias_k|bias_v|out_proj\.weight|"
    r"out_proj\.bias)|(norm_1|norm_2|mlp\.fc1|mlp\.fc2)\.(weight|bias))$")


# ---------------------------------------------------------------------- network
class _DropPath(nn.Module):
    """Stochastic depth per sample (only in training mode, i.e. never in a frozen encoder)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p:g}"


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    """Pre-norm transformer block with ImageBind's attention (bias_k/bias_v)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, drop_path: float):
        super().__init__()
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.MultiheadAttention(dim, heads, bias=True, add_bias_kv=True,
                                          batch_first=True)
        self.drop_path = _DropPath(drop_path)
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, mlp_ratio * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm_1(x)
        x = x + self.drop_path(self.attn(h, h, h, need_weights=False)[0])
        return x + self.drop_path(self.mlp(self.norm_2(x)))


class ImageBindAudioModel(nn.Module):
    """ImageBind's audio preprocessor + trunk + head + postprocessor (module docstring).

    ``forward(fbank [n, 1, mel_bins, target_length], output)`` -> ``[n, out_dim]`` (or
    ``[n, embed_dim]`` for ``output="cls"``). The defaults build ImageBind-huge's audio
    branch; smaller sizes are for tests.
    """

    def __init__(self, *, embed_dim: int = 768, num_blocks: int = 12, num_heads: int = 12,
                 mlp_ratio: int = 4, out_dim: int = 1024, num_mel_bins: int = 128,
                 target_length: int = 204, kernel_size: int = 16, stride: int = 10,
                 drop_path: float = 0.1, logit_scale: float = 20.0,
                 max_logit_scale: float = 100.0):
        super().__init__()
        self.embed_dim, self.out_dim = int(embed_dim), int(out_dim)
        self.num_heads = int(num_heads)
        self.input_shape = (1, int(num_mel_bins), int(target_length))
        self.kernel_size, self.stride = int(kernel_size), int(stride)
        self.grid = ((num_mel_bins - kernel_size) // stride + 1,
                     (target_length - kernel_size) // stride + 1)
        self.max_logit_scale = float(max_logit_scale)
        self.patch_embed = nn.Conv2d(1, embed_dim, kernel_size, stride=stride, bias=False)
        self.patch_norm = nn.LayerNorm(embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], embed_dim))
        rates = [drop_path * i / max(num_blocks - 1, 1) for i in range(num_blocks)]
        self.blocks = nn.ModuleList(_Block(embed_dim, num_heads, mlp_ratio, rate) for rate in rates)
        self.head_norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head_proj = nn.Linear(embed_dim, out_dim, bias=False)
        self.register_buffer("log_logit_scale", torch.tensor(math.log(logit_scale)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """A random initialisation (for tests; real weights come from the checkpoint)."""
        with torch.no_grad():
            scale = self.embed_dim ** -0.5
            nn.init.normal_(self.cls_token).mul_(scale)
            nn.init.normal_(self.pos_embed).mul_(scale)
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.xavier_uniform_(module.weight)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
                elif isinstance(module, nn.MultiheadAttention):
                    nn.init.xavier_uniform_(module.in_proj_weight)
                    nn.init.zeros_(module.in_proj_bias)
                    nn.init.normal_(module.bias_k, std=0.02)
                    nn.init.normal_(module.bias_v, std=0.02)

    def tokens(self, fbank: torch.Tensor) -> torch.Tensor:
        """Preprocessor: ``[n, 1, mel, frames]`` -> ``[n, 1 + patches, embed_dim]``."""
        if tuple(fbank.shape[1:]) != self.input_shape:
            raise ValueError(f"expected ImageBind audio input [n, {', '.join(map(str, self.input_shape))}]"
                             f", got {tuple(fbank.shape)}")
        x = self.patch_embed(fbank).flatten(2).transpose(1, 2)
        x = self.patch_norm(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        return x + self.pos_embed

    def cls(self, fbank: torch.Tensor) -> torch.Tensor:
        """Preprocessor, trunk and the head's LayerNorm + CLS selection: ``[n, embed_dim]``."""
        x = self.tokens(fbank)
        for block in self.blocks:
            x = block(x)
        return self.head_norm(x)[:, 0]

    def forward(self, fbank: torch.Tensor, output: Output = "scaled") -> torch.Tensor:
        cls = self.cls(fbank)
        if output == "cls":
            return cls
        embedding = nn.functional.normalize(self.head_proj(cls), dim=-1, p=2)
        if output == "normalized":
            return embedding
        return torch.clamp(self.log_logit_scale.exp(), max=self.max_logit_scale) * embedding

    def official_state_dict(self) -> dict[str, torch.Tensor]:
        """This model's state dict under the official ``imagebind_huge.pth`` names."""
        return to_official_names(self.state_dict())


# ---------------------------------------------------------------------- names
def to_official_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state-dict names -> the official ImageBind names (see the module docstring)."""
    out = {}
    for key, value in state.items():
        if key in _FIXED_NAMES:
            out[_FIXED_NAMES[key]] = value
        elif _BLOCK_REST.match(key):
            out[_TRUNK + key] = value
        else:
            raise KeyError(f"no official ImageBind name for {key!r}")
    return out


def from_official_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official ImageBind audio names -> ours; other modalities' tensors must be left out
    first (see :data:`IMAGEBIND_AUDIO_PREFIXES`)."""
    out, unknown = {}, []
    for key, value in state.items():
        if key in _FIXED_BACK:
            out[_FIXED_BACK[key]] = value
        elif key.startswith(_TRUNK) and _BLOCK_REST.match(key[len(_TRUNK):]):
            out[key[len(_TRUNK):]] = value
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"unexpected ImageBind audio tensors: {sorted(unknown)[:8]}")
    return out


# ---------------------------------------------------------------------- loading
def load_imagebind_audio(checkpoint_path: str | os.PathLike, *, num_heads: int = 12,
                         drop_path: float = 0.1) -> ImageBindAudioModel:
    """ImageBind's audio branch from the official ``imagebind_huge.pth`` (or any checkpoint
    with the official names), float32, eval mode.

    Only the ``modality_{preprocessors,trunks,heads,postprocessors}.audio.*`` tensors are
    used (the file is memory-mapped, so the other modalities are not read). The sizes
    (width, depth, output size, patch grid) are read off the tensor shapes; ``num_heads``
    (12 in ImageBind-huge) cannot be and is checked to divide the width. Every tensor must
    be present with the expected shape, except the fixed (non-learned) logit scale, which
    defaults to ``log(20)``.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: audio tensors missing, unexpected or of inconsistent shapes.
    """
    path = Path(checkpoint_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ImageBind checkpoint not found: {path} (the official file is "
                                "imagebind_huge.pth from dl.fbaipublicfiles.com/imagebind)")
    raw = torch_load_mmap(path)
    for wrapper in ("model", "state_dict", "module"):
        if isinstance(raw, dict) and wrapper in raw and isinstance(raw[wrapper], dict):
            raw = raw[wrapper]
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} does not hold a state dict")
    audio = {k: v for k, v in raw.items() if k.startswith(IMAGEBIND_AUDIO_PREFIXES)}
    if not audio:
        raise CheckpointError(f"{path} holds no ImageBind audio tensors "
                              f"(no keys starting with {IMAGEBIND_AUDIO_PREFIXES[0]!r})")
    state = from_official_names(audio)
    del raw

    try:
        embed_dim, in_ch, kernel, _ = state["patch_embed.weight"].shape
        out_dim = state["head_proj.weight"].shape[0]
        num_tokens = state["pos_embed"].shape[1]
    except KeyError as error:
        name = next(iter(to_official_names({error.args[0]: None})))
        raise CheckpointError(f"{path}: missing ImageBind audio tensor {name}") from None
    num_blocks = 0
    while f"blocks.{num_blocks}.norm_1.weight" in state:
        num_blocks += 1
    if embed_dim % num_heads:
        raise CheckpointError(f"{path}: width {embed_dim} is not divisible by {num_heads} heads")
    with torch.device("meta"):  # no random initialisation: every tensor is loaded below
        model = ImageBindAudioModel(embed_dim=embed_dim, num_blocks=num_blocks,
                                    num_heads=num_heads, out_dim=out_dim, kernel_size=kernel,
                                    drop_path=drop_path)
    model.to_empty(device="cpu")
    if in_ch != 1 or num_tokens != model.pos_embed.shape[1]:
        raise CheckpointError(
            f"{path}: position embedding for {num_tokens - 1} patches, but a [1, 128, 204] "
            f"input with kernel {kernel} and stride {model.stride} gives "
            f"{model.pos_embed.shape[1] - 1}")
    # the logit scale is a fixed constant (log 20), not a learned weight: tolerate its absence
    state.setdefault("log_logit_scale", torch.tensor(math.log(20.0)))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        problems = []
        if missing:
            problems.append(f"missing {sorted(to_official_names(dict.fromkeys(missing)))[:8]}")
        if unexpected:
            problems.append(f"unexpected {sorted(to_official_names(dict.fromkeys(unexpected)))[:8]}")
        if wrong:
            problems.append("wrong shape " + ", ".join(
                f"{to_official_names({k: None}).popitem()[0]}: checkpoint "
                f"{tuple(state[k].shape)}, expected {tuple(own[k].shape)}" for k in wrong[:8]))
        raise CheckpointError(f"{path}: ImageBind audio tensors " + "; ".join(problems))
    with torch.no_grad():
        for key, target in own.items():
            target.copy_(state[key].to(target.dtype))
    return model.eval()


# ---------------------------------------------------------------------- input features
def clip_fbanks(clips: torch.Tensor | np.ndarray, sample_rate: int = 16000, *,
                num_mel_bins: int = 128, target_length: int = 204,
                mean: float = IMAGEBIND_AUDIO_MEAN, std: float = IMAGEBIND_AUDIO_STD) -> torch.Tensor:
    """ImageBind's input for ready-cut clips: ``[n, samples] -> [n, 1, mel_bins, target_length]``.

    Per clip, as :func:`affectgpt.media.imagebind_audio_features` (which also cuts the
    clips): subtract the clip's mean, Kaldi fbank (Hanning window, 25/10 ms, 128 bins),
    zero-pad or cut to ``target_length`` frames, normalise with ``(x - mean) / std``.
    """
    clips = torch.as_tensor(clips).detach().to("cpu", torch.float32)
    out = torch.zeros((clips.shape[0], 1, num_mel_bins, target_length), dtype=torch.float32)
    for k, clip in enumerate(clips):
        fbank = kaldi_fbank(clip - clip.mean(), sample_rate, num_mel_bins).T
        frames = min(fbank.shape[1], target_length)
        out[k, 0, :, :frames] = fbank[:, :frames]
    return (out - mean) / std


# ---------------------------------------------------------------------- frozen encoder
class ImageBindAudioEncoder(FrozenEncoder):
    """Frozen ImageBind audio encoder: 16 kHz clips ``[n, samples] -> [n, 1024]`` (module
    docstring for ``output``). Build it with :meth:`from_checkpoint`."""

    name = "imagebind-audio"
    modality = "audio"
    sample_rate = 16000

    def __init__(self, model: ImageBindAudioModel, *, name: str = "imagebind-audio",
                 output: Output = "scaled", dtype: torch.dtype | str = torch.float32,
                 batch_size: int = 16):
        super().__init__()
        if output not in ("scaled", "normalized", "cls"):
            raise ValueError(f"output must be 'scaled', 'normalized' or 'cls', not {output!r}")
        self.model = model
        self.name = name
        self.output = output
        self.dim = model.embed_dim if output == "cls" else model.out_dim
        self.batch_size = int(batch_size)
        self.freeze(dtype)

    @classmethod
    def from_checkpoint(cls, checkpoint_path: str | os.PathLike,
                        dtype: torch.dtype | str = torch.float32, **kwargs) -> ImageBindAudioEncoder:
        """From the official ``imagebind_huge.pth`` (:func:`load_imagebind_audio`)."""
        return cls(load_imagebind_audio(checkpoint_path), dtype=dtype, **kwargs)

    def preprocessing(self) -> dict[str, Any]:
        _, mel, frames = self.model.input_shape
        scale = min(math.exp(float(self.model.log_logit_scale)), self.model.max_logit_scale)
        return {
            "sample_rate": self.sample_rate, "num_mel_bins": mel, "target_length": frames,
            "fbank": "kaldi, hanning, 25 ms / 10 ms, clip mean removed, zero-padded",
            "mean": IMAGEBIND_AUDIO_MEAN, "std": IMAGEBIND_AUDIO_STD,
            "output": self.output,
            "scale": round(scale, 4) if self.output == "scaled" else 1.0,
        }

    def encode_fbank(self, fbank: torch.Tensor) -> torch.Tensor:
        """ImageBind input ``[n, 1, 128, 204]`` (e.g. from
        :func:`affectgpt.media.imagebind_audio_features`) -> float32 ``[n, dim]``."""
        fbank = torch.as_tensor(fbank)
        if fbank.ndim != 4 or fbank.shape[0] == 0:
            raise ValueError(f"expected fbank features [n, 1, mel, frames], got {tuple(fbank.shape)}")
        with torch.no_grad():
            out = []
            for start in range(0, fbank.shape[0], self.batch_size):
                batch = fbank[start:start + self.batch_size].to(self.device, self.dtype)
                out.append(self.model(batch, self.output).float())
            return torch.cat(out)

    def _encode_audio(self, clips: torch.Tensor) -> torch.Tensor:
        _, mel, frames = self.model.input_shape
        return self.encode_fbank(clip_fbanks(clips, self.sample_rate, num_mel_bins=mel,
                                             target_length=frames))
