"""From media to descriptions: the frozen encoders a model names, batched prediction,
resumable ``affectgpt infer`` and single-clip ``describe``.

- :class:`ModelEncoders`: the frozen encoders named by a :class:`ModelConfig`
  (``video.encoder`` / ``audio.encoder``, names of :func:`affectgpt.features.jobs.load_encoder`),
  loaded on first use and checked against the branch sizes; they give feature sources
  for a manifest (from a feature cache they build and reuse, or live from the media)
  and the features of one clip.
- :func:`predict`: greedy (or sampled) descriptions + extracted labels for samples, in
  batches.
- :func:`run_inference`: ``affectgpt infer``; appends every finished sample to a JSONL
  progress file (fsynced), so a rerun skips them; unreadable media go to a failures
  file and the run goes on; the result is a CSV ``name,description,openset`` that
  ``affectgpt evaluate --pred`` reads.
- :func:`describe_clip` / :class:`Description`: what ``AffectGPT.describe(path)`` returns.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from affectgpt.data.collate import OptionalMedia, collate_batch
from affectgpt.data.manifest import Sample
from affectgpt.model.config import ConfigError, ModelConfig

if TYPE_CHECKING:  # pragma: no cover
    from affectgpt.model.affectgpt import AffectGPT

__all__ = [
    "Description",
    "FeatureSettings",
    "InferenceInputError",
    "InferenceSummary",
    "ModelEncoders",
    "SampleMediaError",
    "describe_clip",
    "extract_labels",
    "predict",
    "run_inference",
]

MODALITIES = ("video", "audio")


class InferenceInputError(ValueError):
    """Inputs of ``affectgpt infer`` / ``describe`` that do not fit (e.g. an empty split)."""


class SampleMediaError(RuntimeError):
    """Samples whose media cannot be read (listed with the file and the reason)."""

    def __init__(self, failures: Mapping[str, str], total: int, hint: str = ""):
        self.failures = dict(failures)
        lines = [f"  {name}: {reason}" for name, reason in list(self.failures.items())[:10]]
        more = len(self.failures) - len(lines)
        super().__init__(f"{len(self.failures)} of {total} samples cannot be read:\n"
                         + "\n".join(lines) + (f"\n  ... and {more} more" if more > 0 else "")
                         + (f"\n{hint}" if hint else ""))


# --------------------------------------------------------------------------- labels
_EXTRACTOR = None


def extract_labels(text: str) -> list[str]:
    """Emotion labels of a description by the offline lexicon extractor (shared instance)."""
    global _EXTRACTOR
    if _EXTRACTOR is None:
        from affectgpt.eval.lexicon import LexiconExtractor

        _EXTRACTOR = LexiconExtractor()
    return _EXTRACTOR.extract(text)


# --------------------------------------------------------------------------- encoders
@dataclass
class FeatureSettings:
    """Where a manifest's features come from.

    ``cache`` (default True): build (or complete) a feature cache per encoder and read
    it; False computes features from the media at every use. ``root``: the caches'
    parent folder (default ``<manifest dir>/features``; one subfolder per encoder, the
    folder ``affectgpt features --out`` would use). ``workers``: decoding processes
    while building. ``dtype``: the encoders' weights. ``skip_bad_media``: leave samples
    whose media cannot be read out of training (listed in the results) instead of
    stopping; a clip without an audio track is never bad, it is a sample without audio.
    """

    cache: bool = True
    root: str | None = None
    workers: int = 0
    dtype: str = "float32"
    skip_bad_media: bool = False
    progress: bool = True


def cache_folder_name(encoder: str) -> str:
    """A folder name for an encoder name (``whisper:/models/x`` -> ``whisper_models_x``)."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", encoder).strip("_") or "encoder"


class _Live:
    """Features computed from the media: a loader (decode + preprocess) and an encoder."""

    def __init__(self, loader, encoder):
        self.loader, self.encoder = loader, encoder

    def __call__(self, name: str) -> torch.Tensor:
        return self.encoder(self.loader(name)).cpu()


class ModelEncoders:
    """The frozen encoders named by ``config`` (loaded on first use, never trained).

    ``encoder(modality)`` checks that the encoder's output fits the branch
    (``feature_dim``, tokens per frame / clip); frames and clips per sample follow the
    config (``video.frames``, ``audio.clips``).
    """

    def __init__(self, config: ModelConfig, *, dtype: str = "float32",
                 device: torch.device | str | None = None):
        self.config = config
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._encoders: dict[str, Any] = {}

    def name(self, modality: str) -> str:
        return getattr(self.config, modality).encoder or ""

    def encoder(self, modality: str):
        """The loaded encoder of ``modality`` (``ConfigError`` when the config names none
        that :func:`~affectgpt.features.jobs.load_encoder` knows or its size differs)."""
        if modality in self._encoders:
            return self._encoders[modality]
        from affectgpt.features.jobs import ENCODERS, load_encoder

        branch = getattr(self.config, modality)
        name = branch.encoder
        try:
            if not name:
                raise ValueError("no encoder")
            encoder = load_encoder(name, self.dtype)
        except ValueError as exc:
            raise ConfigError(
                f"{modality}.encoder {name!r} of model config {self.config.name!r} is not a "
                f"frozen encoder ({exc}); set it to one of: {', '.join(ENCODERS)} (e.g. "
                f"--set {modality}.encoder=...) with {modality}.feature_dim matching") from None
        if encoder.modality != modality:
            raise ConfigError(f"{modality}.encoder {name!r} is a {encoder.modality} encoder")
        tokens = branch.tokens_per_position
        if encoder.dim != branch.feature_dim or encoder.tokens_per_clip != tokens:
            raise ConfigError(
                f"{modality}.encoder {name!r} gives {encoder.tokens_per_clip} x {encoder.dim} "
                f"features per position but the {modality} branch expects {tokens} x "
                f"{branch.feature_dim}: set {modality}.feature_dim={encoder.dim} and "
                f"{'video.tokens_per_frame' if modality == 'video' else 'audio.tokens_per_clip'}"
                f"={encoder.tokens_per_clip}")
        encoder = encoder.to(self.device)
        self._encoders[modality] = encoder
        return encoder

    def loader(self, modality: str, samples: Mapping[str, Sample]):
        """The decode + preprocess step of ``modality`` for ``samples``."""
        from affectgpt.features.jobs import AudioClipLoader, FrameLoader

        encoder = self.encoder(modality)
        if modality == "audio":
            return AudioClipLoader(dict(samples), sample_rate=encoder.sample_rate,
                                   n_clips=self.config.audio.clips)
        return FrameLoader(dict(samples), encoder.frame_transform(),
                           n_frames=self.config.video.frames)

    def has_file(self, modality: str, sample: Sample) -> bool:
        return bool(sample.video) if modality == "video" else bool(sample.audio or sample.video)

    def sources(self, samples: Sequence[Sample], settings: FeatureSettings | None = None,
                cache_dirs: Mapping[str, str | os.PathLike] | None = None, *,
                build: bool = True) -> tuple[dict[str, OptionalMedia], dict[str, Any]]:
        """Feature sources ``{"video": ..., "audio": ...}`` for ``samples`` and a report.

        With ``settings.cache`` each modality's cache (``cache_dirs[modality]``) is built
        or completed first; samples the cache could not encode are computed live when
        asked for (so their error surfaces with the file named). The report lists per
        modality the encoder, cache folder, seconds, and the samples whose media failed
        (``bad``: other than a missing audio track). ``build=False`` only reads caches
        another process built (the other ranks of a distributed run).
        """
        from affectgpt.features.cache import build_feature_cache, iter_failures
        from affectgpt.features.jobs import CachedFeatures, feature_fingerprint
        from affectgpt.media import MediaError

        settings = settings or FeatureSettings()
        by_name = {s.name: s for s in samples}
        sources: dict[str, OptionalMedia] = {}
        report: dict[str, Any] = {}
        for modality in MODALITIES:
            started = time.perf_counter()
            encoder = self.encoder(modality)
            loader = self.loader(modality, by_name)
            live = _Live(loader, encoder)
            source: Callable[[str], torch.Tensor] = live
            entry: dict[str, Any] = {"encoder": self.name(modality), "cache": None}
            if settings.cache and cache_dirs and cache_dirs.get(modality):
                folder = Path(cache_dirs[modality])
                fingerprint = feature_fingerprint(encoder, self.name(modality), loader)
                names = [s.name for s in samples if self.has_file(modality, s)]
                if build:
                    built = build_feature_cache(
                        names, loader, encoder, fingerprint, folder, workers=settings.workers,
                        progress=settings.progress, errors=(MediaError, FileNotFoundError))
                    entry.update(encoded=built.encoded, cached=built.skipped)
                source = CachedFeatures(folder, fingerprint, fallback=live)
                absent = "NoAudioStreamError" if modality == "audio" else "NoVideoStreamError"
                no_stream, bad = [], {}
                for failure in iter_failures(folder):
                    name, reason = failure["name"], failure["reason"]
                    if reason.startswith(absent) and not (modality == "audio"
                                                          and by_name[name].audio):
                        no_stream.append(name)
                    else:
                        bad[name] = reason
                entry.update(cache=str(folder), no_stream=sorted(no_stream), bad=bad)
            entry["seconds"] = round(time.perf_counter() - started, 3)
            sources[modality] = OptionalMedia(source, by_name, modality,
                                              missing=entry.get("no_stream", ()))
            report[modality] = entry
        return sources, report

    def clip_features(self, path: str | os.PathLike,
                      ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(video [T, ...] or None, audio [A, D] or None)`` of one media file: None for
        a file without that stream (a silent video, an audio file)."""
        from affectgpt.media import NoAudioStreamError, NoVideoStreamError

        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such media file: {path}")
        sample = {"clip": Sample(name="clip", video=path)}
        out: list[torch.Tensor | None] = []
        for modality, absent in (("video", NoVideoStreamError), ("audio", NoAudioStreamError)):
            try:
                out.append(_Live(self.loader(modality, sample), self.encoder(modality))("clip"))
            except absent:
                out.append(None)
        if out[0] is None and out[1] is None:
            from affectgpt.media import EmptyMediaError

            raise EmptyMediaError(path, "neither a video nor an audio stream")
        return out[0], out[1]


def encoders_for(model: AffectGPT) -> ModelEncoders:
    """The model's :class:`ModelEncoders`, created on first use and kept on the instance
    (a plain attribute: the encoders are not submodules, so they are neither trained nor
    saved with the adapters)."""
    encoders = model.__dict__.get("_frozen_encoders")
    if encoders is None or encoders.device != model.device:
        encoders = ModelEncoders(model.config, device=model.device)
        model.__dict__["_frozen_encoders"] = encoders
    return encoders


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


def _companions(out: Path) -> tuple[Path, Path]:
    stem = out.with_suffix("")
    return (stem.parent / f"{stem.name}.progress.jsonl",
            stem.parent / f"{stem.name}.failures.jsonl")


def _read_progress(path: Path) -> dict[str, dict]:
    """Finished records; a torn last line (a crash mid-write) is cut off the file."""
    if not path.is_file():
        return {}
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        with open(path, "r+b") as f:
            f.truncate(len(data))
    done: dict[str, dict] = {}
    for line in data.decode("utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            done.setdefault(record["name"], record)
    return done


def _append_synced(handle, record: dict) -> None:
    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    handle.flush()
    os.fsync(handle.fileno())


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
                  progress: bool = True) -> InferenceSummary:
    """Describe ``samples`` with ``model`` into the CSV ``out`` (see the module docstring).

    Next to ``out``: ``<stem>.progress.jsonl`` (one fsynced line per finished sample; a
    rerun skips those) and ``<stem>.failures.jsonl`` (this run's unreadable samples,
    retried by the next run). The CSV holds every finished sample, in manifest order.
    Features are computed live unless ``cache_dirs`` (and ``features.cache``) are given.
    """
    started = time.perf_counter()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    progress_path, failures_path = _companions(out)
    done = _read_progress(progress_path)
    names = [s.name for s in samples]
    if len(set(names)) != len(names):
        raise ValueError("duplicate sample names in the manifest")
    todo = [s for s in samples if s.name not in done]
    settings = features or FeatureSettings(cache=False, progress=progress)
    predicted = failed = 0
    failures_path.write_text("", encoding="utf-8")
    if todo:
        sources, _ = encoders_for(model).sources(todo, settings, cache_dirs)
        with open(progress_path, "a", encoding="utf-8") as log, \
                open(failures_path, "a", encoding="utf-8") as bad:
            for record in predict(model, todo, sources, batch_size=batch_size,
                                  max_new_tokens=max_new_tokens, do_sample=do_sample,
                                  seed=seed, language=language, on_error="record",
                                  progress=progress, desc="infer"):
                if "error" in record:
                    failed += 1
                    _append_synced(bad, record)
                else:
                    predicted += 1
                    done[record["name"]] = record
                    _append_synced(log, record)
    write_predictions_csv([done[n] for n in names if n in done], out)
    return InferenceSummary(str(out), str(progress_path), str(failures_path), len(samples),
                            len(samples) - len(todo), predicted, failed,
                            round(time.perf_counter() - started, 3))


# --------------------------------------------------------------------------- describe
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


def describe_clip(model: AffectGPT, path: str | os.PathLike, subtitle: str | None = None, *,
                  max_new_tokens: int | None = None, do_sample: bool = False,
                  seed: int = 0) -> Description:
    """Run the model's frozen encoders on ``path`` and generate its description."""
    started = time.perf_counter()
    video, audio = encoders_for(model).clip_features(path)
    item = {"name": Path(path).stem, "video": video, "audio": audio,
            "subtitle": subtitle or "", "target": None, "labels": []}
    text = model.generate(collate_batch([item]), max_new_tokens=max_new_tokens,
                          do_sample=do_sample, seed=seed)[0]
    return Description(description=text, labels=extract_labels(text),
                       subtitle=subtitle or "", has_audio=audio is not None,
                       has_video=video is not None,
                       seconds=round(time.perf_counter() - started, 3), path=os.fspath(path))


# --------------------------------------------------------------------------- CLI
def domain_errors() -> tuple[type[BaseException], ...]:
    """Errors of train / infer / describe that mean bad input (one line, exit status 2)."""
    from affectgpt.media import MediaError
    from affectgpt.train.cli import TrainSettingsError

    errors: tuple[type[BaseException], ...] = (SampleMediaError, InferenceInputError,
                                               MediaError, TrainSettingsError)
    try:
        from affectgpt.model.affectgpt import LLMMismatchError
    except ImportError:  # no transformers: no checkpoint can have been loaded either
        return errors
    return (*errors, LLMMismatchError)


def load_model(model_dir: str | os.PathLike | None = None, preset: str = "small",
               overrides: Sequence[str] = (), device: str | None = "auto") -> AffectGPT:
    """A trained checkpoint (``model_dir``), or else ``preset`` with untrained adapters
    (seeded, so the same random adapters every time); ``device="auto"`` is CUDA when
    available."""
    from affectgpt.model.affectgpt import AffectGPT
    from affectgpt.train.dist import resolve_device

    device = resolve_device(device) if device else None
    if model_dir:
        return AffectGPT.from_pretrained(model_dir, device=device, overrides=list(overrides))
    from affectgpt.model.config import load_config

    torch.manual_seed(0)
    return AffectGPT.from_config(load_config(preset, list(overrides)), device=device)


def _load_model(args) -> AffectGPT:
    if not getattr(args, "model", None):
        import warnings

        warnings.warn(f"no --model: the {args.preset!r} preset's adapters are untrained "
                      "(random); the description shows the pipeline, not a trained model",
                      stacklevel=2)
    return load_model(getattr(args, "model", None), getattr(args, "preset", "small"),
                      args.overrides, getattr(args, "device", None))


def add_model_source_options(p, *, preset: bool) -> None:
    """``--model`` (or, with ``preset``, ``--model``/``--preset``), ``--set`` and ``--device``:
    what :func:`load_model` takes, for every command that loads a model."""
    if preset:
        source = p.add_mutually_exclusive_group()
        source.add_argument("--model", help="trained model folder (OUT/model of affectgpt "
                                            "train, AffectGPT.save_pretrained)")
        source.add_argument("--preset", default="small",
                            help="without --model: a preset with untrained adapters, to try "
                                 "the pipeline (default: %(default)s)")
    else:
        p.add_argument("--model", required=True,
                       help="trained model folder (OUT/model of affectgpt train)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="dotted model-config override, e.g. --set llm.path=/models/vicuna")
    p.add_argument("--device", default="auto",
                   help="cpu, cuda, cuda:1 or auto (CUDA when available; default: %(default)s)")


def _add_model_options(p, *, preset: bool) -> None:
    add_model_source_options(p, preset=preset)
    p.add_argument("--max-new-tokens", type=int,
                   help="longest description in tokens (default: the model's generation "
                        "setting)")
    p.add_argument("--sample", action="store_true",
                   help="sample (top-p, temperature of the model config) instead of greedy "
                        "decoding; reproducible with --seed")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")


def add_infer_parser(subparsers):
    """Register ``affectgpt infer``."""
    p = subparsers.add_parser(
        "infer", help="describe every clip of a manifest with a trained model (resumable)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Describe the clips of a manifest with a trained model and extract labels.

Writes OUT (CSV: name,description,openset) that `affectgpt evaluate --pred OUT` reads.
Next to it, OUT-stem.progress.jsonl gets one fsynced line per finished clip: an
interrupted run continues where it stopped (finished clips are skipped, none is written
twice). Clips whose media cannot be read are listed in OUT-stem.failures.jsonl and the
run goes on (a rerun retries them); a clip without an audio track is described from its
frames and subtitle.

Example:
  affectgpt infer --model runs/stage2/model --manifest fine/manifest.jsonl --split test \\
      --out runs/stage2/test-predictions.csv
  affectgpt evaluate --gold fine/manifest.jsonl --gold-column labels \\
      --pred runs/stage2/test-predictions.csv --split test""")
    _add_model_options(p, preset=False)
    p.add_argument("--manifest", required=True, help="manifest (JSONL/CSV) of the clips")
    p.add_argument("--split", help="only the samples whose split is this (train, test)")
    p.add_argument("--out", required=True, help="predictions CSV to write")
    p.add_argument("--batch-size", type=int, default=8,
                   help="clips per generate call (default: %(default)s)")
    p.add_argument("--language", choices=("en", "zh"), default="en",
                   help="subtitle language given to the model (default: %(default)s)")
    p.add_argument("--features-dir",
                   help="read (and complete) feature caches under this folder, one "
                        "subfolder per encoder; default: compute features from the media")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_infer)
    return p


def add_describe_parser(subparsers):
    """Register ``affectgpt describe``."""
    p = subparsers.add_parser(
        "describe", help="describe the emotional state of the person in one video",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Run the model's frozen encoders on one video (or audio) file, generate an
EMER-style description of the person's emotional state and extract its labels (offline
lexicon). A video without an audio track is described from its frames and subtitle.

Examples:
  affectgpt describe clip.mp4 --subtitle "I can't believe it!" --model runs/stage2/model
  affectgpt describe clip.mp4 --preset small --json     # untrained adapters""")
    p.add_argument("video", help="the media file")
    p.add_argument("--subtitle", default=None, help="what is said in the clip")
    _add_model_options(p, preset=True)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_describe)
    return p


def cmd_infer(args) -> int:
    from affectgpt.data.manifest import read_manifest

    samples = read_manifest(args.manifest)
    if args.split:
        samples = [s for s in samples if s.split == args.split]
        if not samples:
            raise InferenceInputError(f"no sample of {args.manifest} has split {args.split!r}")
    model = _load_model(args)
    cache_dirs = None
    if args.features_dir:
        cache_dirs = {m: Path(args.features_dir) / cache_folder_name(
            getattr(model.config, m).encoder or m) for m in MODALITIES}
    summary = run_inference(
        model, samples, args.out, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, do_sample=args.sample, seed=args.seed,
        language=args.language,
        features=FeatureSettings(cache=bool(cache_dirs), progress=not args.quiet),
        cache_dirs=cache_dirs, progress=not args.quiet)
    print(f"{summary.total} clips: {summary.predicted} described, {summary.done_before} done "
          f"before, {summary.failed} failed ({summary.seconds:.1f} s) -> {summary.csv}"
          + (f"; failures in {summary.failures}" if summary.failed else ""))
    return 0


def cmd_describe(args) -> int:
    model = _load_model(args)
    result = model.describe(args.video, args.subtitle, max_new_tokens=args.max_new_tokens,
                            do_sample=args.sample, seed=args.seed)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        streams = ", ".join(m for m, has in (("video", result.has_video),
                                              ("audio", result.has_audio)) if has)
        print(result.description)
        print(f"labels: {', '.join(result.labels) if result.labels else '(none)'}")
        print(f"({streams}; {result.seconds:.1f} s)")
    return 0
