"""From media to descriptions: a :class:`Describer` (a model and the frozen encoders its
config names), batched prediction and resumable ``affectgpt infer``.

- :class:`Describer`: ``Describer.from_pretrained(dir).describe(path, subtitle=...)``
  runs the frozen encoders on one file and generates its description.
- :func:`predict`: greedy (or sampled) descriptions + extracted labels for samples, in
  batches, from feature sources (:class:`affectgpt.features.sources.ModelEncoders`).
- :func:`run_inference`: ``affectgpt infer``; appends every finished sample to a JSONL
  progress file (fsynced), so a rerun skips them; unreadable media go to a failures
  file and the run goes on; the result is a CSV ``name,description,openset`` that
  ``affectgpt evaluate --pred`` reads.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from affectgpt.data.collate import collate_batch
from affectgpt.data.manifest import Sample
from affectgpt.features.sources import MODALITIES, FeatureSettings, ModelEncoders
from affectgpt.io import JsonlStore

if TYPE_CHECKING:  # pragma: no cover
    from affectgpt.model.affectgpt import AffectGPT

__all__ = [
    "MAX_CLIP_SECONDS",
    "ClipTooLongError",
    "Describer",
    "Description",
    "InferenceInputError",
    "InferenceSummary",
    "extract_labels",
    "load_model",
    "predict",
    "run_inference",
    "write_predictions_csv",
    "ZeroShotDescriber",
]


class InferenceInputError(ValueError):
    """Inputs of ``affectgpt infer`` / ``describe`` that do not fit (e.g. an empty split)."""


# --------------------------------------------------------------------------- labels
_EXTRACTOR = None


def extract_labels(text: str) -> list[str]:
    """Emotion labels of a description by the offline lexicon extractor (shared instance)."""
    global _EXTRACTOR
    if _EXTRACTOR is None:
        from affectgpt.eval.lexicon import LexiconExtractor

        _EXTRACTOR = LexiconExtractor()
    return _EXTRACTOR.extract(text)


# --------------------------------------------------------------------------- prediction
def predict(model: AffectGPT, samples: Sequence[Sample], sources: Mapping[str, Callable],
            *, batch_size: int = 4, max_new_tokens: int | None = None, do_sample: bool = False,
            seed: int | None = 0, language: str = "en", on_error: str = "raise",
            progress: bool = False, desc: str = "predict") -> Iterator[dict[str, Any]]:
    """Yield one record per sample: ``name, description, openset, split`` (+ ``error``).

    Features come from ``sources`` (``{"video": f, "audio": g}``, ``name -> tensor or
    None``). ``on_error="record"`` yields ``{"name", "error"}`` for a sample whose media
    cannot be read and goes on; ``"raise"`` stops.
    """
    from tqdm.auto import tqdm

    from affectgpt.media import MediaError

    if on_error not in ("raise", "record"):
        raise ValueError("on_error must be 'raise' or 'record'")
    bar = tqdm(total=len(samples), desc=desc, unit="clip", disable=not progress,
               dynamic_ncols=True)
    try:
        for start in range(0, len(samples), batch_size):
            chunk = samples[start:start + batch_size]
            items, kept = [], []
            for sample in chunk:
                try:
                    item = {m: sources[m](sample.name) if sources.get(m) else None
                            for m in MODALITIES}
                except (MediaError, FileNotFoundError) as exc:
                    if on_error == "raise":
                        raise
                    yield {"name": sample.name, "error": f"{type(exc).__name__}: {exc}"}
                    continue
                zh = language == "zh"
                item.update(name=sample.name, target=None, labels=list(sample.labels),
                            subtitle=sample.subtitle_zh if zh else sample.subtitle_en)
                items.append(item)
                kept.append(sample)
            if items:
                batch = collate_batch(items)
                texts = model.generate(batch, max_new_tokens=max_new_tokens,
                                       do_sample=do_sample, seed=seed)
                for sample, item, text in zip(kept, items, texts):
                    yield {"name": sample.name, "description": text,
                           "openset": extract_labels(text), "split": sample.split,
                           "subtitle_source": sample.subtitle_source,
                           "has_video": item["video"] is not None,
                           "has_audio": item["audio"] is not None}
            bar.update(len(chunk))
    finally:
        bar.close()


# --------------------------------------------------------------------------- infer
@dataclass
class InferenceSummary:
    """What :func:`run_inference` did."""

    csv: str
    progress: str
    failures: str
    total: int
    done_before: int
    predicted: int
    failed: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _progress_paths(out: Path) -> tuple[Path, Path]:
    stem = out.with_suffix("")
    return (stem.parent / f"{stem.name}.progress.jsonl",
            stem.parent / f"{stem.name}.failures.jsonl")


def write_predictions_csv(records: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """``name,description,openset`` (labels as a bracketed list), written atomically."""
    import io

    from affectgpt.eval.labels import format_label_list
    from affectgpt.io import atomic_write

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["name", "description", "openset"])
    for r in records:
        writer.writerow([r["name"], r.get("description", ""), format_label_list(r["openset"])])
    return atomic_write(path, buffer.getvalue())


def run_inference(model: AffectGPT, samples: Sequence[Sample], out: str | Path, *,
                  batch_size: int = 8, max_new_tokens: int | None = None,
                  do_sample: bool = False, seed: int = 0, language: str = "en",
                  features: FeatureSettings | None = None,
                  cache_dirs: Mapping[str, str | os.PathLike] | None = None,
                  encoders: ModelEncoders | None = None,
                  progress: bool = True) -> InferenceSummary:
    """Describe ``samples`` with ``model`` into the CSV ``out`` (see the module docstring).

    Next to ``out``: ``<stem>.progress.jsonl`` (one fsynced line per finished sample; a
    rerun skips those) and ``<stem>.failures.jsonl`` (this run's unreadable samples,
    retried by the next run). The CSV holds every finished sample, in manifest order.
    Features are computed live unless ``cache_dirs`` (and ``features.cache``) are given,
    by ``encoders`` (default: those the model's config names).
    """
    started = time.perf_counter()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    progress_path, failures_path = _progress_paths(out)
    names = [s.name for s in samples]
    if len(set(names)) != len(names):
        raise ValueError("duplicate sample names in the manifest")
    settings = features or FeatureSettings(cache=False, progress=progress)
    predicted = failed = 0
    with JsonlStore(progress_path) as log, \
            JsonlStore(failures_path, unique=False, truncate=True) as bad:
        done: dict[str, dict] = {}
        for record in log.rows:
            done.setdefault(record["name"], record)
        todo = [s for s in samples if s.name not in done]
        if todo:
            sources, _ = (encoders or ModelEncoders(model.config, device=model.device)).sources(
                todo, settings, cache_dirs)
            for record in predict(model, todo, sources, batch_size=batch_size,
                                  max_new_tokens=max_new_tokens, do_sample=do_sample,
                                  seed=seed, language=language, on_error="record",
                                  progress=progress, desc="infer"):
                if "error" in record:
                    failed += 1
                    bad.append(record)
                else:
                    predicted += 1
                    done[record["name"]] = record
                    log.append(record)
    write_predictions_csv([done[n] for n in names if n in done], out)
    return InferenceSummary(str(out), str(progress_path), str(failures_path), len(samples),
                            len(samples) - len(todo), predicted, failed,
                            round(time.perf_counter() - started, 3))


@dataclass
class Description:
    """What :meth:`AffectGPT.describe` returns for one clip.

    ``description``: the generated text; ``labels``: emotion labels extracted from it
    (offline lexicon); ``subtitle``: the subtitle given to the model; ``has_audio`` /
    ``has_video``: which streams the file has (a silent video is described from its
    frames and subtitle); ``seconds``: wall-clock time of the call (encoders + LLM);
    ``path``: the file.
    """

    description: str
    labels: list[str]
    subtitle: str
    has_audio: bool
    has_video: bool
    seconds: float
    path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Describer:
    """A model and the frozen encoders its config names: describes media files.

    The encoders (``config.video.encoder`` / ``config.audio.encoder``) are loaded on first
    use, on the model's device; they are not part of the model, so they are neither
    trained nor saved with the adapters.

    With ``asr``, a clip described without a subtitle gets the transcript of its speech
    (the packaged Whisper-base unless ``transcriber``; cached in ``transcript_cache``,
    default ``<cache>/transcripts``); ``Description.extra`` then holds the transcript and
    ``subtitle_source="asr"``.

    .. code-block:: python

        describer = Describer.from_pretrained("runs/stage2/model")
        print(describer.describe("clip.mp4", subtitle="I can't believe it!").labels)
    """

    def __init__(self, model: AffectGPT, encoders: ModelEncoders | None = None, *,
                 asr: bool = False, transcriber: Any = None, transcript_cache: Any = None):
        self.model = model
        self.encoders = encoders or ModelEncoders(model.config, device=model.device)
        self.asr = asr
        self._transcriber, self._transcript_cache = transcriber, transcript_cache

    def transcribe(self, path: str | os.PathLike):
        """The (cached) :class:`~affectgpt.encoders.asr.Transcript` of ``path``'s speech."""
        from affectgpt.encoders.asr import (
            Transcriber,
            TranscriptCache,
            default_transcript_cache_dir,
        )

        if self._transcriber is None:
            self._transcriber = Transcriber()
        if self._transcript_cache is None:
            self._transcript_cache = TranscriptCache(default_transcript_cache_dir())
        return self._transcript_cache.transcribe(self._transcriber, path)

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike, **kwargs) -> Describer:
        """A trained model folder (``AffectGPT.save_pretrained``); ``kwargs`` as
        :func:`load_model`."""
        return cls(load_model(model_dir, **kwargs))

    def describe(self, path: str | os.PathLike, subtitle: str | None = None, *,
                 max_new_tokens: int | None = None, do_sample: bool = False,
                 seed: int = 0) -> Description:
        """Describe the emotional state of the person in one media file.

        Runs the frozen encoders on ``path``, then generates (greedy by default;
        ``do_sample`` samples reproducibly from ``seed``) and extracts labels with the
        offline lexicon. A video without an audio track is described from its frames and
        ``subtitle``.
        """
        started = time.perf_counter()
        video, audio = self.encoders.clip_features(path)
        extra: dict[str, Any] = {"subtitle_source": "given" if subtitle else "none"}
        if subtitle is None and self.asr and audio is not None:
            transcript = self.transcribe(path)
            subtitle = transcript.text
            extra.update(subtitle_source="asr", transcript=transcript.to_dict())
        item = {"name": Path(path).stem, "video": video, "audio": audio,
                "subtitle": subtitle or "", "target": None, "labels": []}
        text = self.model.generate(collate_batch([item]), max_new_tokens=max_new_tokens,
                                   do_sample=do_sample, seed=seed)[0]
        return Description(description=text, labels=extract_labels(text),
                           subtitle=subtitle or "", has_audio=audio is not None,
                           has_video=video is not None,
                           seconds=round(time.perf_counter() - started, 3),
                           path=os.fspath(path), extra=extra)


def load_model(model_dir: str | os.PathLike | None = None, preset: str = "small",
               overrides: Sequence[str] = (), device: str | None = "auto") -> AffectGPT:
    """A trained checkpoint (``model_dir``), or else ``preset`` with untrained adapters
    (seeded, so the same random adapters every time); ``device="auto"`` is CUDA when
    available."""
    from affectgpt.model.affectgpt import AffectGPT
    from affectgpt.model.llm import resolve_device

    device = resolve_device(device) if device else None
    if model_dir:
        return AffectGPT.from_pretrained(model_dir, device=device, overrides=list(overrides))
    from affectgpt.model.config import load_config

    torch.manual_seed(0)
    return AffectGPT.from_config(load_config(preset, list(overrides)), device=device)


# --------------------------------------------------------------------------- zero-shot
class ClipTooLongError(InferenceInputError):
    """A clip longer than the zero-shot describer's ``max_seconds``."""


#: longest clip :class:`ZeroShotDescriber` takes by default (the packaged Whisper-base
#: transcribes about 10x faster than real time on 2 CPU cores: 5 minutes take ~30 s)
MAX_CLIP_SECONDS = 300.0


class ZeroShotDescriber:
    """Describes clips without a trained model: measured clues + transcript + an LLM merge.

    For each clip: the speech is transcribed (the packaged Whisper-base with VAD trimming,
    transcripts cached) unless a subtitle is given; the main speaker's face is tracked and
    read by the packaged facial-expression CNN; the words are scored against label
    prototypes by packaged sentence encoders; prosody is measured; the readings are fused
    by score (:func:`affectgpt.clues.fusion.fuse`) into labels; and an LLM writes the
    description around the clues (:func:`affectgpt.clues.merge.merge_clues`).

    Args:
        llm: ``None``: the packaged SmolLM2-135M-Instruct, local, which only writes the
            description (the clues decide the labels); an
            :class:`~affectgpt.llm.endpoint.ChatEndpoint` (any OpenAI-compatible server),
            which also decides the labels (the paper's disambiguation step; ``decide``
            overrides); ``False``: no LLM, a description made from the clue sentences.
        asr: transcribe the speech when no subtitle is given.
        transcriber, transcript_cache: the speech recogniser and its cache (default: the
            packaged Whisper-base and ``<cache>/transcripts``).
        weights: fusion weights (default: those chosen on synthetic validation clips).
        n_frames: frames sampled for the face clue.
        max_seconds: longer clips are refused with :class:`ClipTooLongError`.

    ``describe(path)`` returns a :class:`Description` whose ``extra`` holds the transcript,
    ``subtitle_source`` (``given``/``asr``/``none``), every clue reading, the fused scores,
    the merge record (``labels_source``, ``llm_labels``, ``llm_contradicts_clues``,
    whether a fallback was used) and the time of each step.
    """

    def __init__(self, llm: Any = None, *, asr: bool = True, transcriber: Any = None,
                 transcript_cache: Any = None, weights: Any = None, n_frames: int = 8,
                 decide: str | None = None, max_seconds: float = MAX_CLIP_SECONDS,
                 max_tokens: int = 72, max_attempts: int = 2):
        from affectgpt.clues.fusion import DEFAULT_WEIGHTS

        self.llm_spec = llm
        self.asr = asr
        self._transcriber = transcriber
        self._transcript_cache = transcript_cache
        self.weights = weights or DEFAULT_WEIGHTS
        self.n_frames = n_frames
        self.decide = decide or ("clues" if llm is None or llm is False else "llm")
        if self.decide not in ("clues", "llm"):
            raise ValueError(f"decide must be 'clues' or 'llm', not {self.decide!r}")
        self.max_seconds = float(max_seconds)
        self.max_tokens = max_tokens
        self.max_attempts = max_attempts
        self._face = self._text = self._chat = None

    # ------------------------------------------------------------------ parts
    @property
    def transcriber(self):
        if self._transcriber is None:
            from affectgpt.encoders.asr import Transcriber

            self._transcriber = Transcriber()
        return self._transcriber

    @property
    def transcript_cache(self):
        if self._transcript_cache is None:
            from affectgpt.encoders.asr import TranscriptCache, default_transcript_cache_dir

            self._transcript_cache = TranscriptCache(default_transcript_cache_dir())
        return self._transcript_cache

    @property
    def face_clue(self):
        if self._face is None:
            from affectgpt.clues.face import FaceExpressionClue

            self._face = FaceExpressionClue(self.n_frames)
        return self._face

    @property
    def text_clue(self):
        if self._text is None:
            from affectgpt.clues.text import TextEmotionClue

            self._text = TextEmotionClue()
        return self._text

    @property
    def chat(self):
        """The merge LLM (loaded on first use), or ``None`` without one."""
        if self._chat is None and self.llm_spec is not False:
            if self.llm_spec is None:
                from affectgpt.clues.merge import LocalChatModel

                self._chat = LocalChatModel()
            else:
                from affectgpt.llm.endpoint import ChatEndpoint

                self._chat = (self.llm_spec.client() if isinstance(self.llm_spec, ChatEndpoint)
                              else self.llm_spec)  # anything with chat(messages, ...)
        return self._chat

    def describe_setup(self) -> dict[str, Any]:
        """What the describer uses (for records)."""
        from affectgpt.llm.client import redact_url

        if self.llm_spec is None:
            llm = "packaged SmolLM2-135M-Instruct (local)"
        elif self.llm_spec is False:
            llm = None
        else:
            llm = {"base_url": redact_url(getattr(self.llm_spec, "base_url", "")),
                   "model": getattr(self.llm_spec, "model", "")}
        return {"mode": "zero-shot", "llm": llm, "decide": self.decide, "asr": self.asr,
                "weights": self.weights.to_dict(), "n_frames": self.n_frames}

    # ------------------------------------------------------------------ describe
    def describe(self, path: str | os.PathLike, subtitle: str | None = None, *,
                 language: str | None = None, **_: Any) -> Description:
        """Describe one media file (see the class docstring).

        Raises:
            FileNotFoundError, affectgpt.media.MediaError: unreadable media.
            ClipTooLongError: the clip is longer than ``max_seconds``.
        """
        from affectgpt.clues.fusion import fuse
        from affectgpt.clues.labels import ClueReading
        from affectgpt.clues.merge import MergeResult, merge_clues, template_description
        from affectgpt.clues.prosody import measure_prosody, prosody_reading
        from affectgpt.media import NoAudioStreamError, probe, read_audio, read_frames

        started = time.perf_counter()
        timings: dict[str, float] = {}

        def lap(step: str, since: float) -> float:
            now = time.perf_counter()
            timings[step] = round(timings.get(step, 0.0) + now - since, 3)
            return now

        path = os.fspath(path)
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such file: {path}")
        info = probe(path)
        if not info.has_video and not info.has_audio:
            raise InferenceInputError(f"{path}: neither a video nor an audio stream")
        if info.duration > self.max_seconds:
            raise ClipTooLongError(
                f"{path} lasts {info.duration:.0f} s, over the zero-shot describer's limit of "
                f"{self.max_seconds:.0f} s; cut it into parts (e.g. ffmpeg -f segment "
                f"-segment_time 60) or raise the limit (--max-seconds)")
        t = time.perf_counter()
        frames = read_frames(path, n=self.n_frames) if info.has_video else None
        try:
            audio = read_audio(path, 16000) if info.has_audio else None
        except NoAudioStreamError:
            audio = None
        if audio is not None and audio.size == 0:
            audio = None
        t = lap("decode", t)

        transcript = None
        text = (subtitle or "").strip()
        source = "given" if text else "none"
        if not text and self.asr and audio is not None:
            transcript = self.transcript_cache.transcribe(self.transcriber, path)
            text = transcript.text
            source = "asr"
        t = lap("asr", t)

        if frames is not None:
            face = self.face_clue.read_frames(frames)
        else:
            face = ClueReading.unavailable("face", "The file has no video, so there is no "
                                           "facial-expression clue.", "no video stream")
        t = lap("faces", t)
        words = self.text_clue.read(text, source="subtitle" if source == "given" else "transcript")
        if audio is not None:
            vad_seconds = transcript.speech_seconds if transcript is not None and not \
                transcript.reason else None
            if vad_seconds is None:
                from affectgpt.clues.prosody import vad_speech_seconds

                vad_seconds = vad_speech_seconds(audio)
            voice = prosody_reading(measure_prosody(audio, 16000, text,
                                                    speech_seconds=vad_seconds))
        else:
            voice = ClueReading.unavailable("prosody", "The file has no audio, so the voice "
                                            "gives no clue.", "no audio stream")
        readings = [face, words, voice]
        fusion = fuse(readings, self.weights)
        t = lap("clues", t)

        notes = []
        if not face.available and frames is not None:
            notes.append("No face is visible in the clip; do not guess the facial expression.")
        chat = self.chat
        if chat is None:
            merged = MergeResult(template_description(readings, fusion), list(fusion.labels),
                                 "clues")
        else:
            merged = merge_clues(chat, readings, fusion, decide=self.decide,
                                 max_tokens=self.max_tokens, max_attempts=self.max_attempts,
                                 notes=notes)
        description = merged.description
        if not face.available and frames is not None and "face" not in description.lower():
            description = f"No face is visible in the clip. {description}"
        lap("merge", t)
        extra = {
            "mode": "zero-shot",
            "subtitle_source": source,
            "transcript": transcript.to_dict() if transcript is not None else None,
            "clues": {r.modality: r.to_dict() for r in readings},
            "has_face": face.available,
            "fusion": fusion.to_dict(),
            "merge": merged.to_dict(),
            "labels_source": merged.labels_source,
            "llm_contradicts_clues": merged.llm_contradicts_clues,
            "lexicon_fallback": merged.labels_source == "lexicon-fallback",
            "timings": timings,
            "duration": round(float(info.duration), 3),
            "setup": self.describe_setup(),
        }
        return Description(description=description, labels=list(merged.labels),
                           subtitle=text, has_audio=audio is not None,
                           has_video=frames is not None,
                           seconds=round(time.perf_counter() - started, 3), path=path,
                           extra=extra)
