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
    "Describer",
    "Description",
    "InferenceInputError",
    "InferenceSummary",
    "extract_labels",
    "load_model",
    "predict",
    "run_inference",
    "write_predictions_csv",
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

    .. code-block:: python

        describer = Describer.from_pretrained("runs/stage2/model")
        print(describer.describe("clip.mp4", subtitle="I can't believe it!").labels)
    """

    def __init__(self, model: AffectGPT, encoders: ModelEncoders | None = None):
        self.model = model
        self.encoders = encoders or ModelEncoders(model.config, device=model.device)

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
        item = {"name": Path(path).stem, "video": video, "audio": audio,
                "subtitle": subtitle or "", "target": None, "labels": []}
        text = self.model.generate(collate_batch([item]), max_new_tokens=max_new_tokens,
                                   do_sample=do_sample, seed=seed)[0]
        return Description(description=text, labels=extract_labels(text),
                           subtitle=subtitle or "", has_audio=audio is not None,
                           has_video=video is not None,
                           seconds=round(time.perf_counter() - started, 3),
                           path=os.fspath(path))


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
