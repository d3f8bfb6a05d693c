"""The interface shared by AffectGPT's frozen feature encoders.

A frozen encoder turns raw media into fixed features for the trainable branches (Q-Formers
and projections). "Frozen" is enforced, not just configured once:

- every parameter has ``requires_grad=False`` and the forward pass runs under
  :func:`torch.no_grad`, so no gradient ever reaches the encoder (not
  :func:`torch.inference_mode`: its tensors could not be saved for the backward pass of
  the trainable modules that consume them);
- the module is ALWAYS in eval mode: :meth:`FrozenEncoder.train` ignores its argument, so
  ``model.train()`` on a parent model never switches dropout back on (the reference code
  put its audio encoder in eval mode once, and training re-enabled dropout);
- weights may be held in float32, float16 or bfloat16 (``dtype``); outputs are float32.

Shape contracts (``n`` clips per sample, ``tokens_per_clip`` = 1 for pooled encoders):

- audio encoders: :meth:`FrozenEncoder.encode_audio` ``[n, samples] -> [n, dim]``
  (mono float waveforms at :attr:`FrozenEncoder.sample_rate`), or ``[n, tokens, dim]``
  when ``tokens_per_clip > 1``;
- video encoders: :meth:`FrozenEncoder.encode_frames` ``[n, 3, H, W] -> [n, dim]`` or
  ``[n, tokens, dim]`` (e.g. 32 Q-Former queries per frame).

:meth:`FrozenEncoder.fingerprint` identifies the exact features an encoder produces
(weights, preprocessing, package version); a feature cache stores it and refuses to mix
features from different encoders.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Literal

import torch
from torch import nn

Modality = Literal["audio", "video"]
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """``torch.float16``, ``"float16"``/``"fp16"``/``"half"`` etc. -> a supported torch dtype."""
    if isinstance(dtype, str):
        names = {"float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
                 "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
                 "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
        key = dtype.lower().removeprefix("torch.")
        if key not in names:
            raise ValueError(f"unsupported dtype {dtype!r}; use one of {sorted(names)}")
        dtype = names[key]
    if dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"unsupported dtype {dtype}; use float32, float16 or bfloat16")
    return dtype


def state_dict_sha256(module: nn.Module) -> str:
    """SHA-256 over a module's state dict: names, dtypes, shapes and raw bytes, sorted by name.

    Deterministic across loads, processes and devices (tensors are hashed as contiguous
    CPU bytes); it changes when any weight, dtype or shape changes.
    """
    digest = hashlib.sha256()
    state = module.state_dict()
    for name in sorted(state):
        tensor = state[name].detach()
        header = f"{name}|{str(tensor.dtype).removeprefix('torch.')}|{tuple(tensor.shape)}\n"
        digest.update(header.encode("utf-8"))
        data = tensor.to("cpu").contiguous().reshape(-1)
        if data.numel():
            digest.update(data.view(torch.uint8).numpy().data)
    return digest.hexdigest()


class FrozenEncoder(nn.Module):
    """Base class of the frozen encoders (see the module docstring for the contract).

    A subclass sets the class attributes, builds its network in ``__init__`` and then calls
    :meth:`freeze` (which also casts to ``dtype``), and implements :meth:`preprocessing`
    and :meth:`encode_audio` or :meth:`encode_frames` (the forward pass proper; the public
    wrappers add ``no_grad``). Calling the module dispatches on :attr:`modality`.
    """

    #: short identifier of the encoder, e.g. ``"whisper-base"`` (instances may refine it)
    name: str = "frozen-encoder"
    #: ``"audio"`` (:meth:`encode_audio`) or ``"video"`` (:meth:`encode_frames`)
    modality: ClassVar[Modality] = "audio"
    #: feature size of one output token
    dim: int = 0
    #: output tokens per clip or frame; 1 means pooled ``[n, dim]`` outputs
    tokens_per_clip: int = 1
    #: audio sample rate expected by :meth:`encode_audio` (audio encoders only)
    sample_rate: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self._hash_memo: tuple[tuple, str] | None = None

    # ------------------------------------------------------------------ frozen-ness
    def freeze(self, dtype: torch.dtype | str = torch.float32) -> FrozenEncoder:
        """Cast the weights to ``dtype``, switch gradients off and enter eval mode."""
        self.to(resolve_dtype(dtype))
        for param in self.parameters():
            param.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> FrozenEncoder:
        """Stay in eval mode whatever ``mode`` is: a frozen encoder never trains."""
        return super().train(False)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the weights (the first floating-point parameter)."""
        for param in self.parameters():
            if param.is_floating_point():
                return param.dtype
        return torch.float32

    @property
    def device(self) -> torch.device:
        """The device of the weights."""
        for param in self.parameters():
            return param.device
        return torch.device("cpu")

    # ------------------------------------------------------------------ identity
    def preprocessing(self) -> dict[str, Any]:
        """The parameters of the input preprocessing that shape the features (JSON-able)."""
        return {}

    def weights_sha256(self) -> str:
        """:func:`state_dict_sha256` of this encoder, memoised until a tensor changes."""
        key = tuple((name, t.data_ptr(), t.dtype, t.device, t._version)
                    for name, t in self.state_dict(keep_vars=True).items())
        if self._hash_memo is None or self._hash_memo[0] != key:
            self._hash_memo = (key, state_dict_sha256(self))
        return self._hash_memo[1]

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this encoder's features, for feature caches.

        Keys: ``encoder`` (name), ``modality``, ``dim``, ``tokens_per_clip``, ``dtype``,
        ``weights_sha256`` (:meth:`weights_sha256`), ``preprocessing``
        (:meth:`preprocessing`) and ``affectgpt`` (package version). Two encoders produce
        interchangeable features only if their fingerprints are equal.
        """
        from affectgpt import __version__

        return {
            "encoder": self.name,
            "modality": self.modality,
            "dim": self.dim,
            "tokens_per_clip": self.tokens_per_clip,
            "dtype": str(self.dtype).removeprefix("torch."),
            "weights_sha256": self.weights_sha256(),
            "preprocessing": self.preprocessing(),
            "affectgpt": __version__,
        }

    # ------------------------------------------------------------------ encoding
    def encode_audio(self, clips: torch.Tensor) -> torch.Tensor:
        """Encode mono waveforms ``[n_clips, samples]`` -> float32 ``[n_clips, dim]``."""
        if self.modality != "audio":
            raise TypeError(f"{self.name} is a {self.modality} encoder: use encode_frames")
        clips = _as_batch(clips, 2, "clips [n_clips, samples]")
        with torch.no_grad():
            return self._encode_audio(clips).float()

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Encode frames ``[n_frames, 3, H, W]`` -> float32 ``[n_frames, dim]`` (or tokens)."""
        if self.modality != "video":
            raise TypeError(f"{self.name} is an {self.modality} encoder: use encode_audio")
        frames = _as_batch(frames, 4, "frames [n_frames, 3, H, W]")
        with torch.no_grad():
            return self._encode_frames(frames).float()

    def _encode_audio(self, clips: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """:meth:`encode_audio` or :meth:`encode_frames`, according to :attr:`modality`."""
        if self.modality == "audio":
            return self.encode_audio(inputs)
        return self.encode_frames(inputs)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, modality={self.modality!r}, dim={self.dim}, frozen"


def _as_batch(x: torch.Tensor, ndim: int, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if x.ndim != ndim:
        raise ValueError(f"expected {what}, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"expected {what}, got an empty batch")
    return x
