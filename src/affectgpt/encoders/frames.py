"""The common part of the frozen video (frame) encoders.

A :class:`FrameEncoder` takes frames already turned into model input by
:func:`affectgpt.media.preprocess_frames` (``[n, 3, size, size]`` float32, normalised) and
returns one feature per frame: ``[n, dim]`` (``tokens_per_clip == 1``) or ``[n, tokens,
dim]``. The exact ``preprocess_frames`` arguments an encoder expects are
:meth:`FrameEncoder.frame_transform`; :meth:`FrameEncoder.preprocess` applies them to raw
``[n, H, W, 3]`` uint8 RGB frames, and they are part of :meth:`~FrozenEncoder.preprocessing`
(hence of the fingerprint)::

    frames = read_frames("clip.mp4", n=8)               # [8, H, W, 3] uint8
    features = encoder.encode_frames(encoder.preprocess(frames))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from affectgpt.encoders.base import FrozenEncoder

__all__ = ["FrameEncoder"]

_CROPS = ("center", "resize")


class FrameEncoder(FrozenEncoder):
    """Base of the video encoders: frame preprocessing parameters, input checks.

    Subclasses set :attr:`image_size`, :attr:`mean`, :attr:`std`, :attr:`crop`,
    :attr:`interpolation` and :attr:`face_crop` in ``__init__`` (before :meth:`freeze`), and
    implement ``_encode_frames`` and :meth:`model_preprocessing` (what happens inside the
    encoder, e.g. grey conversion or token selection).
    """

    modality = "video"
    image_size: int = 224
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    crop: str = "center"
    interpolation: str = "bicubic"
    face_crop: bool = False

    def _set_transform(self, *, size: int, mean, std, crop: str, interpolation: str,
                       face_crop: bool) -> None:
        if crop not in _CROPS:
            raise ValueError(f"crop must be one of {_CROPS}, got {crop!r}")
        self.image_size = int(size)
        self.mean = tuple(float(x) for x in mean)
        self.std = tuple(float(x) for x in std)
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("mean and std need one value per RGB channel")
        self.crop = crop
        self.interpolation = interpolation
        self.face_crop = bool(face_crop)

    def frame_transform(self) -> dict[str, Any]:
        """Keyword arguments of :func:`affectgpt.media.preprocess_frames` for this encoder."""
        return {"size": self.image_size, "mean": self.mean, "std": self.std, "crop": self.crop,
                "interpolation": self.interpolation, "face_crop": self.face_crop}

    def preprocess(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Raw ``[n, H, W, 3]`` uint8 RGB frames -> this encoder's ``[n, 3, size, size]`` input."""
        from affectgpt.media.transforms import preprocess_frames

        return preprocess_frames(frames, **self.frame_transform())

    def model_preprocessing(self) -> dict[str, Any]:
        """What the encoder does to its input and output beyond :meth:`frame_transform`."""
        return {}

    def preprocessing(self) -> dict[str, Any]:
        transform = self.frame_transform()
        transform["mean"], transform["std"] = list(transform["mean"]), list(transform["std"])
        return {"frames": transform, **self.model_preprocessing()}

    def check_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames`` as ``[n, 3, size, size]`` on the encoder's device and dtype, or ValueError."""
        size = self.image_size
        if frames.shape[1:] != (3, size, size):
            raise ValueError(
                f"{self.name} expects preprocessed frames [n, 3, {size}, {size}] (see "
                f"{type(self).__name__}.preprocess), got {tuple(frames.shape)}")
        if not frames.is_floating_point():
            raise ValueError(f"{self.name} expects float frames (normalised pixels), got "
                             f"{frames.dtype}; use {type(self).__name__}.preprocess")
        return frames.to(self.device, self.dtype)
