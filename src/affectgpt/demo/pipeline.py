"""`affectgpt demo`: the AffectGPT story end to end on a CPU, from nothing to a report.

Steps (each also a CLI verb; each is skipped on a re-run when it finished before):

1. ``corpus``: a synthetic two-stage corpus (`affectgpt make-synthetic --coarse/--fine`):
   real mp4 clips whose emotion cue lives in the video, the audio, the subtitle or all,
   a coarse pool and a fine set with a seeded train/test split.
2. ``annotate``: the coarse pool through the EMER-Coarse pipeline (`affectgpt annotate`)
   with the packaged CPU models, its labels scored against the generator's truth; stage 1
   learns from these annotations or, by default, from the generator's coarse descriptions
   (``stage1_targets``: the packaged clue models are far weaker than the paper's MLLMs).
3. ``features``: frozen-encoder features of every clip into caches (`affectgpt features`).
4. ``untrained``, ``text-only`` (the frozen LLM on subtitles), ``stage1``,
   ``stage2-only``, ``stage2``: the systems of the paper's Table 4 in miniature
   (`affectgpt train`), the trained ones scored on the fine test split after every epoch
   with the 2024 set metric (lexical grouping).
   With ``rl=true``, ``stage2-rl``: GRPO from each seed's stage-2 export
   (`affectgpt train --stage rl`, :mod:`affectgpt.demo.rl`), scored like the others as
   "stage 1 + 2 + RL" (its steps live in ``rl-<RL settings hash>/``).
5. ``describe``: one test clip described by the two-stage model (`affectgpt describe`).
6. ``report``: ``runs/demo-<time>/report.html`` and ``report.md``, with the two-stage
   model in ``runs/demo-<time>/model`` (``affectgpt serve-demo --model ...``).

The work lives in ``<out>/demo-work/``: corpus, feature caches and annotation in
``data-<hash>/`` (shared by runs whose settings differ only in training), checkpoints and
evaluations in ``<settings hash>/``. A later run with the same settings reuses what
finished unless ``fresh``; every write is atomic or append-only, so Ctrl-C leaves nothing
corrupt and the next run continues.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from affectgpt.data.manifest import Sample, read_manifest, write_manifest
from affectgpt.demo.config import ANNOTATION_SETTINGS, DATA_SETTINGS, RL_SETTINGS, DemoConfig
from affectgpt.demo.rl import RL_NOTE, RL_STEP, RL_SYSTEM
from affectgpt.io import atomic_write

log = logging.getLogger("affectgpt.demo")

#: the systems of the miniature Table 4, in order: (name, step, what it is); the steps of a
#: trained or randomly initialised system run once per seed (``<step>-seed<k>``), the
#: text-only one once (nothing in it is random or trained)
SYSTEMS = (
    ("untrained", "untrained", "random adapters on the frozen encoders and LLM"),
    ("text only", "text-only", "the frozen LLM given the subtitle alone (only the adapters "
     "train, and they read video and audio); deterministic: one run"),
    ("stage 1 only", "stage1", "trained on the coarse pool"),
    ("stage 2 only", "stage2-only", "trained on the fine train split from random adapters"),
    ("stage 1 + stage 2", "stage2", "stage 2 initialised from stage 1's validation-selected "
     "checkpoint (the paper's recipe)"),
)
#: the steps that only an optional setting runs (setting -> step-name prefix): the
#: results file times them apart from what the defaults run
OPTIONAL_STEPS = {"modalities": "stage2-only-no-", "rl": "stage2-rl-"}
#: the modality ablation (Table 1 / Figure 5 in miniature): the stage-2 recipe with
#: modalities withheld in training and testing
MODALITY_SYSTEMS = (
    ("A+V+T", "stage2-only", "audio, video and subtitle (= stage 2 only)"),
    ("A+T", "stage2-only-no-video", "video withheld"),
    ("V+T", "stage2-only-no-audio", "audio withheld"),
    ("T", "text-only", "the frozen LLM given the subtitle alone (= text only)"),
)
SINGLE_RUN_STEPS = ("text-only",)
#: how the training targets were rewritten (:attr:`DemoConfig.targets`), for the report
TARGET_NOTES = {"descriptions": "", "label-first": ", conclusion first (both stages)",
                "labels": ", reduced to the primary label (both stages)"}
CUES = ("audio", "video", "text", "all")


@dataclass
class StepRecord:
    """What one step did: outputs, wall seconds, CPU seconds of this process (all its
    threads, child processes included; what a contended machine inflates least), and
    whether an earlier run's result was reused."""

    name: str
    seconds: float
    reused: bool
    detail: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: float | None = None


class Steps:
    """Runs named steps once: a finished step leaves ``steps/<name>.json`` (atomic) and is
    reused afterwards. A step interrupted half-way has no marker and runs again; the
    functions it calls resume on their own (clips, caches, annotation rows, checkpoints)."""

    def __init__(self, work: Path, console: Console):
        self.folder = work / "steps"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.console = console
        self.records: list[StepRecord] = []

    def run(self, name: str, title: str, fn: Callable[[], tuple[dict[str, Any], str]], *,
            marker: Path | None = None) -> StepRecord:
        """Run ``fn`` (returning ``(outputs, detail)``) unless its marker (default
        ``steps/<name>.json``) says it finished."""
        marker = marker or self.folder / f"{name}.json"
        if marker.is_file():
            saved = json.loads(marker.read_text(encoding="utf-8"))
            record = StepRecord(name, saved["seconds"], True, saved.get("detail", ""),
                                saved["outputs"], saved.get("cpu_seconds"))
            self.console.print(f"[dim]✓ {title}: reused ({record.detail})[/dim]")
        else:
            self.console.rule(f"[bold]{title}")
            started, cpu_started = time.perf_counter(), _cpu_seconds()
            outputs, detail = fn()
            record = StepRecord(name, round(time.perf_counter() - started, 2), False, detail,
                                outputs, round(_cpu_seconds() - cpu_started, 2))
            atomic_write(marker, json.dumps({"seconds": record.seconds,
                                             "cpu_seconds": record.cpu_seconds,
                                             "detail": detail, "outputs": outputs},
                                            indent=1) + "\n")
            self.console.print(f"✓ {title}: {detail} ({record.seconds:.1f} s)")
        self.records.append(record)
        return record


# --------------------------------------------------------------------------- helpers
def _cpu_seconds() -> float:
    """CPU seconds used so far by this process and its finished child processes."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _cue(sample: Sample) -> str:
    return (sample.extra.get("synthetic") or {}).get("cue", "all")


def _scores_by_cue(predictions: dict[str, list[str]], samples: Sequence[Sample],
                   grouping: str = "lexical") -> dict[str, dict[str, float]]:
    """``{cue: {accuracy, recall, avg}}`` on the samples whose emotion is in that cue."""
    from affectgpt.eval.scoring import score_predictions

    out = {}
    for cue in CUES:
        subset = [s for s in samples if _cue(s) == cue]
        if subset:
            scores = score_predictions(predictions, subset, grouping)
            out[cue] = {m: scores[f"whole/{m}"] for m in ("accuracy", "recall", "avg")}
    return out


def _split_manifests(fine_manifest: Path, folder: Path) -> tuple[Path, Path]:
    samples = read_manifest(fine_manifest)
    train = write_manifest([s for s in samples if s.split == "train"], folder / "train.jsonl")
    test = write_manifest([s for s in samples if s.split == "test"], folder / "test.jsonl")
    return train, test


def _conclusion(labels: Sequence[str]) -> str:
    words = list(labels)
    joined = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"The person seems {joined}."


def target_manifest(manifest: str | Path, out: Path, style: str) -> Path:
    """A copy of ``manifest`` with the English target descriptions of
    :attr:`DemoConfig.targets` ``style``, written to ``out``: ``"labels"``, the primary label
    alone (``"sad."``); ``"label-first"``, the conclusion (``"The person seems sad and
    sorrowful."``) moved in front of the clues, so that evaluation needs to generate only
    the first sentence. Samples without labels have nothing to teach and are left out."""
    samples = [s for s in read_manifest(manifest) if s.labels]
    if not samples:
        raise RuntimeError(f"{manifest}: no sample has labels to train on")
    out_samples = []
    for s in samples:
        if style == "labels":
            target = f"{s.labels[0]}."
        elif style == "label-first":
            conclusion = _conclusion(s.labels)
            clues = s.description_en.strip()
            if clues.endswith(conclusion):  # the generator's descriptions end with it
                clues = clues[: -len(conclusion)].strip()
            target = f"{conclusion} {clues}".strip()
        else:
            raise ValueError(f"unknown target style {style!r}")
        out_samples.append(dataclasses.replace(s, description_en=target))
    return write_manifest(out_samples, out)


# --------------------------------------------------------------------------- the demo
class Demo:
    """One demo run (see the module docstring); :meth:`run` returns the report folder."""

    def __init__(self, cfg: DemoConfig, out: str | Path = "runs", *, fresh: bool = False,
                 progress: bool = True, console: Console | None = None):
        self.cfg = cfg
        self.out = Path(out)
        root = self.out / "demo-work"
        # corpus, features and annotation are shared by runs that only train differently
        self.data = root / f"data-{cfg.fingerprint(DATA_SETTINGS)}"
        self.annotation = self.data / f"annotate-{cfg.fingerprint(ANNOTATION_SETTINGS)}"
        self.work = root / cfg.fingerprint()
        # the optional RL steps: a folder of their own inside the work folder, named by the
        # RL settings, so that changing them re-runs only the RL steps
        self.rl_work = self.work / f"rl-{cfg.fingerprint(RL_SETTINGS)}"
        if fresh:
            for folder in (self.work, self.data):
                if folder.exists():
                    shutil.rmtree(folder)
        self.work.mkdir(parents=True, exist_ok=True)
        (self.data / "steps").mkdir(parents=True, exist_ok=True)
        atomic_write(self.work / "demo-config.json", json.dumps(cfg.to_dict(), indent=1) + "\n")
        self.progress = progress
        self.console = console or Console(stderr=False)
        self.steps = Steps(self.work, self.console)
        self.features_root = self.data / "features"

    # ------------------------------------------------------------------ steps
    def corpus(self) -> StepRecord:
        def make():
            from affectgpt.data.synthetic import make_synthetic_corpus

            c = self.cfg
            corpus = make_synthetic_corpus(
                self.data / "corpus", coarse=c.coarse, fine=c.fine,
                test_fraction=c.test_fraction, seed=c.seed, fine_style=c.fine_style,
                duration=tuple(c.clip_seconds), size=c.clip_size, emotions=c.emotions,
                workers=c.workers,
                progress=self.progress)
            train, test = _split_manifests(corpus.fine_manifest, self.data / "corpus" / "fine")
            n_test = len(read_manifest(test))
            return ({"coarse": str(corpus.coarse_manifest), "fine": str(corpus.fine_manifest),
                     "train": str(train), "test": str(test)},
                    f"{c.coarse} coarse + {c.fine} fine clips ({c.fine - n_test} train, "
                    f"{n_test} test)")

        return self.steps.run("corpus", "1/6 synthetic corpus", make,
                              marker=self.data / "steps" / "corpus.json")

    def annotate(self, coarse_manifest: str) -> StepRecord:
        def run():
            from affectgpt.demo.annotation import annotate_coarse_pool

            manifest, summary = annotate_coarse_pool(
                coarse_manifest, self.annotation, self.cfg, progress=self.progress)
            agreement = summary["agreement"].get("avg", 0.0)
            return ({"annotated": str(manifest), **summary},
                    f"{summary['exported']} of {summary['clips']} clips annotated and kept, "
                    f"labels agree with the truth at Avg {100 * agreement:.1f} "
                    f"({summary['tokens']} tokens generated)")

        if not self.cfg.annotate:
            def skip():
                return ({"off": True},
                        "annotation off: stage 1 uses the generator's coarse descriptions")

            return self.steps.run("annotate", "2/6 annotation (off)", skip)
        return self.steps.run("annotate", "2/6 annotate the coarse pool (EMER-Coarse "
                                          "pipeline)", run,
                              marker=self.annotation / "done.json")

    def features(self, manifests: Sequence[str]) -> StepRecord:
        def build():
            from affectgpt.features.sources import (
                FeatureSettings,
                ModelEncoders,
                default_cache_dirs,
            )
            from affectgpt.model import load_config

            config = load_config(self.cfg.preset, list(self.cfg.overrides))
            encoders = ModelEncoders(config)
            settings = FeatureSettings(root=str(self.features_root), workers=self.cfg.workers,
                                       progress=self.progress)
            samples = [s for m in manifests for s in read_manifest(m)]
            unique = list({s.name: s for s in samples}.values())
            _, report = encoders.sources(unique, settings,
                                         default_cache_dirs(config, manifests[0],
                                                            self.features_root))
            bad = {m: r.get("bad") for m, r in report.items() if r.get("bad")}
            if bad:
                raise RuntimeError(f"clips that cannot be read: {bad}")
            names = ", ".join(f"{r['encoder']}" for r in report.values())
            return ({"root": str(self.features_root), "report": report},
                    f"{len(unique)} clips through {names}")

        return self.steps.run("features", "3/6 frozen-encoder features", build,
                              marker=self.data / "steps" / "features.json")

    def _score_test(self, model, step: str, test_manifest: str,
                    withhold: Sequence[str] = (), folder: Path | None = None
                    ) -> tuple[dict[str, Any], float]:
        """Describe the test clips with ``model`` (cached features, greedy), score them, save
        ``<folder>/test-predictions.json`` (default folder: the step's in the work folder);
        returns ``(scores by column, seconds)``."""
        import torch

        from affectgpt.eval.scoring import score_predictions
        from affectgpt.features.sources import FeatureSettings, ModelEncoders, default_cache_dirs
        from affectgpt.inference import predict

        started = time.perf_counter()
        c = self.cfg
        samples = read_manifest(test_manifest)
        sources, _ = ModelEncoders(model.config).sources(
            samples, FeatureSettings(root=str(self.features_root), progress=False),
            default_cache_dirs(model.config, test_manifest, self.features_root))
        sources = {m: None if m in withhold else f for m, f in sources.items()}
        with torch.no_grad():
            records = list(predict(model, samples, sources, batch_size=c.eval_batch_size,
                                   max_new_tokens=c.eval_max_new_tokens,
                                   progress=self.progress, desc=f"{step}: test"))
        preds = {r["name"]: r["openset"] for r in records}
        scores = score_predictions(preds, samples)
        columns = {m: scores[f"whole/{m}"] for m in ("accuracy", "recall", "avg")}
        columns.update({f"cue {cue}": v["avg"]
                        for cue, v in _scores_by_cue(preds, samples).items()})
        seconds = time.perf_counter() - started
        atomic_write((folder or self.work / step) / "test-predictions.json", json.dumps(
            {"scores": columns, "withheld": list(withhold), "seconds": round(seconds, 3),
             "predictions": records}, indent=1, ensure_ascii=False) + "\n")
        return columns, seconds

    def _train(self, step: str, title: str, *, seed: int, manifest: str, test_manifest: str,
               epochs: int, init_from: str | None = None, withhold: Sequence[str] = (),
               stage: int = 1) -> StepRecord:
        def train():
            from affectgpt.features.sources import FeatureSettings
            from affectgpt.model import AffectGPT
            from affectgpt.train import TrainConfig
            from affectgpt.train.pipeline import EvalSettings, train_stage

            c = self.cfg
            two = stage == 2
            lr = c.stage2_lr if two and c.stage2_lr is not None else c.lr
            min_lr = c.stage2_min_lr if two and c.stage2_min_lr is not None else c.min_lr
            warmup = (c.stage2_warmup_steps if two and c.stage2_warmup_steps is not None
                      else c.warmup_steps)
            cfg = TrainConfig(stage=step, out_dir=str(self.work / step), epochs=epochs,
                              batch_size=c.batch_size, lr=lr, min_lr=min_lr,
                              warmup_steps=warmup, seed=seed, device=c.device,
                              val_size=c.val_fraction, val_seed=c.seed, select_on=c.select_on,
                              eval_every=1, keep_last=1, init_from=init_from,
                              progress=self.progress, smooth_window=3)
            # the test split is scored at the selected checkpoint only, unless the paper
            # protocol (best epoch on test) needs it every epoch
            result = train_stage(
                c.preset, overrides=list(c.overrides), train=cfg, manifest=manifest,
                eval_manifest=test_manifest if c.select_on == "test" else None,
                withhold=withhold,
                features=FeatureSettings(root=str(self.features_root), progress=False),
                evaluation=EvalSettings(batch_size=c.eval_batch_size,
                                        max_new_tokens=c.eval_max_new_tokens),
                resume="auto")
            r = result.results
            model = AffectGPT.from_pretrained(result.model_dir)
            test, test_s = self._score_test(model, step, test_manifest, withhold)
            t = r["timings"]
            profile = {"train_forward_backward_s": round(t["train_s"] - t.get("eval_s", 0), 3),
                       "val_generation_s": t.get("eval_s", 0.0),
                       "test_generation_s": round(test_s, 3),
                       "feature_cache_read_s": t["features_s"], "export_s": t["export_s"]}
            return ({"out_dir": str(result.out_dir), "model": str(result.model_dir),
                     "seed": seed, "steps": r["train"]["step"], "test": test,
                     "selection": r["protocol"]["selection"],
                     "selected_epoch": r["protocol"]["selected_epoch"],
                     "val_clips": r["protocol"]["validation"]["n"], "profile": profile},
                    f"{r['train']['step']} steps, checkpoint {r['protocol']['selection']} "
                    f"(epoch {r['protocol']['selected_epoch']}), test Avg "
                    f"{100 * test['avg']:.1f}")

        return self.steps.run(step, title, train)

    def reinforce(self, stage2: StepRecord, *, seed: int, train_manifest: str,
                  test_manifest: str) -> StepRecord:
        """The optional RL step of ``seed`` (``rl=true``): GRPO from the stage-2 step's
        validation-selected export on its train split, the checkpoint chosen on its
        validation split (:mod:`affectgpt.demo.rl`), then the test split scored as for
        every system; with ``rl_wheel_dir`` also the EW score on test of both models."""
        step = self.step_name(RL_STEP, seed)

        def train():
            from affectgpt.demo.rl import (
                RL_SYSTEM,
                SUPERVISED_SYSTEM,
                ew_score,
                rl_settings,
                run_rl,
                saved_predictions,
                validation_manifests,
            )
            from affectgpt.model import AffectGPT

            c = self.cfg
            folder = self.rl_work / step
            manifest, val = validation_manifests(
                train_manifest, stage2.outputs["out_dir"], self.rl_work / "splits" / step)
            result = run_rl(c, seed=seed, init_from=stage2.outputs["model"],
                            manifest=manifest, val_manifest=val, out_dir=folder,
                            features_root=self.features_root, progress=self.progress)
            r = result.results
            model = AffectGPT.from_pretrained(result.model_dir)
            test, test_s = self._score_test(model, step, test_manifest, folder=folder)
            ew = None
            if c.rl_wheel_dir:
                samples = read_manifest(test_manifest)
                ew = {name: ew_score(saved_predictions(Path(path) / "test-predictions.json"),
                                     samples, c.rl_wheel_dir)
                      for name, path in ((SUPERVISED_SYSTEM, stage2.outputs["out_dir"]),
                                         (RL_SYSTEM, folder))}
            t = r["timings"]
            profile = {"rl_train_s": round(t["train_s"] - t.get("eval_s", 0), 3),
                       "rl_val_generation_s": t.get("eval_s", 0.0),
                       "test_generation_s": round(test_s, 3),
                       "feature_cache_read_s": t["features_s"], "export_s": t["export_s"]}
            scores = r["scores"]
            return ({"out_dir": str(result.out_dir), "model": str(result.model_dir),
                     "init_from": r["init"]["from"], "seed": seed,
                     "steps": r["train"]["step"], "test": test, "ew": ew,
                     "selection": scores["selection"],
                     "selected_epoch": scores["selected_epoch"],
                     "best_metric": r["train_config"]["best_metric"],
                     "val_clips": r["samples"]["eval"], "train_clips": r["samples"]["train"],
                     "reward": {"first_epoch": r["rl"]["first_epoch"],
                                "last_epoch": r["rl"]["last_epoch"]},
                     "settings": rl_settings(c), "profile": profile},
                    f"{r['train']['step']} GRPO steps, checkpoint {scores['selection']} "
                    f"(epoch {scores['selected_epoch']}), test Avg {100 * test['avg']:.1f} "
                    f"(stage 1 + 2: {100 * stage2.outputs['test']['avg']:.1f})")

        return self.steps.run(step, f"4/6 RL (GRPO) after stage 1 + 2, seed {seed}", train,
                              marker=self.rl_work / "steps" / f"{step}.json")

    def untrained(self, test_manifest: str, *, seed: int, step: str = "untrained",
                  withhold: Sequence[str] = ()) -> StepRecord:
        """Score a model that was never trained: random adapters (drawn with ``seed``) on
        the frozen encoders and LLM, or (``withhold`` both) the frozen LLM given the
        subtitle alone, which is all a text-only system can be when only the adapters
        train."""
        def evaluate():
            from affectgpt.model import AffectGPT, load_config
            from affectgpt.model.llm import resolve_device
            from affectgpt.train.trainer import seed_everything

            c = self.cfg
            seed_everything(seed)
            model = AffectGPT.from_config(load_config(c.preset, list(c.overrides)),
                                          device=resolve_device(c.device, 0))
            test, seconds = self._score_test(model, step, test_manifest, withhold)
            return ({"seed": seed, "test": test,
                     "profile": {"test_generation_s": round(seconds, 3)}},
                    f"test Avg {100 * test['avg']:.1f}")

        title = ("4/6 untrained baseline" if not withhold else
                 "4/6 text-only baseline (the frozen LLM given the subtitle alone)")
        return self.steps.run(step, f"{title}, seed {seed}", evaluate)

    def describe(self, model_dir: str, test_manifest: str) -> StepRecord:
        def run():
            from affectgpt.inference import Describer

            samples = read_manifest(test_manifest)
            clip = next((s for s in samples if _cue(s) == "all"), samples[0])
            described = Describer.from_pretrained(model_dir).describe(clip.video, clip.subtitle_en,
                                       max_new_tokens=self.cfg.describe_max_new_tokens)
            data = {**described.to_dict(), "name": clip.name, "cue": _cue(clip),
                    "gold_labels": list(clip.labels), "system": "stage 1 + stage 2"}
            return ({"clip": data},
                    f"{clip.name}: {', '.join(described.labels) or '(no emotion words)'}")

        return self.steps.run("describe", "5/6 describe a test clip", run)

    # ------------------------------------------------------------------ run
    def step_name(self, step: str, seed: int) -> str:
        """The step (and work folder) of ``step`` for ``seed``."""
        return step if step in SINGLE_RUN_STEPS else f"{step}-seed{seed}"

    def run(self, results_file: str | Path | None = None) -> Path:
        """Run (or reuse) every step, then write the report; returns the report folder.

        ``results_file``: also write the seeds' results there (what ``make demo`` does with
        ``benchmarks/results/demo-cpu.json``); the report folder always gets a copy as
        ``demo-results.json``."""
        from affectgpt.machine import machine_info

        c = self.cfg
        started = time.perf_counter()
        self.machine = machine_info()
        self.console.print(f"machine: {self.machine['cpu']} ({self.machine['cores']} cores; "
                           f"{self.machine['vector_extensions']}; torch kernels "
                           f"{self.machine.get('torch_cpu_capability')})")
        corpus = self.corpus().outputs
        annotation = self.annotate(corpus["coarse"]).outputs
        # the annotation is shared by runs whose stage1_targets differ: choose here
        coarse = (annotation["annotated"] if self.cfg.stage1_targets == "annotated"
                  else corpus["coarse"])
        self.features([corpus["coarse"], corpus["fine"]])
        test, train = corpus["test"], corpus["train"]
        targets = ("its pipeline annotations" if c.stage1_targets == "annotated"
                   else "its generated coarse descriptions")
        if c.targets != "descriptions":
            coarse = str(target_manifest(coarse, self.work / "targets" / "stage1.jsonl",
                                         c.targets))
            train = str(target_manifest(train, self.work / "targets" / "stage2.jsonl",
                                        c.targets))
            targets += (", as labels alone" if c.targets == "labels"
                        else ", conclusion first")
        self.untrained(test, seed=c.seeds[0], step="text-only", withhold=("video", "audio"))
        first_s12 = None
        for seed in c.seeds:
            def name(step: str, seed: int = seed) -> str:
                return self.step_name(step, seed)

            self.untrained(test, seed=seed, step=name("untrained"))
            s1 = self._train(name("stage1"), f"4/6 stage 1 on the coarse pool ({targets}), "
                             f"seed {seed}", seed=seed, manifest=coarse, test_manifest=test,
                             epochs=c.stage1_epochs)
            self._train(name("stage2-only"), f"4/6 stage 2 only (from random adapters), seed "
                        f"{seed}", seed=seed, manifest=train, test_manifest=test,
                        epochs=c.stage2_epochs, stage=2)
            s12 = self._train(name("stage2"), f"4/6 stage 2 from stage 1, seed {seed}",
                              seed=seed, manifest=train, test_manifest=test,
                              epochs=c.stage2_epochs, init_from=s1.outputs["out_dir"], stage=2)
            first_s12 = first_s12 or s12
            if c.rl:
                self.reinforce(s12, seed=seed, train_manifest=train, test_manifest=test)
            if c.modalities and seed in c.seeds[:c.modality_seeds]:
                for modality in ("video", "audio"):
                    self._train(name(f"stage2-only-no-{modality}"),
                                f"4/6 modality ablation: stage 2 only without {modality}, "
                                f"seed {seed}", seed=seed, manifest=train,
                                test_manifest=test, epochs=c.stage2_epochs,
                                withhold=(modality,), stage=2)
        self.describe(first_s12.outputs["model"], test)
        from affectgpt.report import write_report

        self.console.rule("[bold]6/6 report")
        report_dir = self.out / time.strftime("demo-%Y%m%d-%H%M%S")
        seconds = time.perf_counter() - started
        summary = self.summary(test, seconds)
        results = self.results(test, summary)
        html, _ = write_report(report_dir, results)
        # the two-stage model next to its report (adapters only: a few MB), for
        # `affectgpt describe --model` and `affectgpt serve-demo --model`
        shutil.copytree(first_s12.outputs["model"], report_dir / "model", dirs_exist_ok=True)
        atomic_write(report_dir / "results.json", json.dumps(
            {**results, "findings": summary["findings"]}, indent=1, ensure_ascii=False) + "\n")
        text = json.dumps(summary, indent=1, ensure_ascii=False) + "\n"
        atomic_write(report_dir / "demo-results.json", text)
        if results_file is not None:
            atomic_write(Path(results_file), text)
        self._print_summary(summary, html, seconds)
        return report_dir

    # ------------------------------------------------------------------ results
    def _runs(self, step: str, seeds: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """The outputs of every seed's run of ``step`` (``seeds``: of those seeds only)."""
        seeds = self.cfg.seeds[:1] if step in SINGLE_RUN_STEPS else (seeds or self.cfg.seeds)
        return [self.steps_output(self.step_name(step, seed)) for seed in seeds]

    def summary(self, test_manifest: str, seconds: float) -> dict[str, Any]:
        """The seeds' results (the demo results file): machine, settings, every score per
        seed, mean ± std per system, the findings, step timings and the per-step profile."""
        from affectgpt.demo.results import RESULTS_SCHEMA, aggregate, check_findings
        from affectgpt.train.config import SELECTION_LABELS

        c = self.cfg
        rl_systems = ((RL_SYSTEM, RL_STEP, RL_NOTE),) if c.rl else ()
        blocks = {"systems": SYSTEMS + rl_systems,
                  "modalities": MODALITY_SYSTEMS if c.modalities else ()}
        out_blocks: dict[str, list[dict[str, Any]]] = {}
        means: dict[str, dict[str, Any]] = {}
        for block, systems in blocks.items():
            rows = []
            # the modality block compares its rows on the seeds it ran
            seeds = c.seeds[:c.modality_seeds] if block == "modalities" else None
            for name, step, note in systems:
                runs = self._runs(step, seeds)
                agg = aggregate({name: [r["test"] for r in runs]})[name]
                means[name] = agg
                rows.append({"name": name, "step": step, "note": note, "runs": len(runs),
                             "seeds": [r["seed"] for r in runs], "scores": agg,
                             "selected_epochs": [r.get("selected_epoch") for r in runs]})
            out_blocks[block] = rows
        profile: dict[str, float] = {}
        defaults_profile: dict[str, float] = {}  # the same over the steps the defaults run
        for record in self.steps.records:  # as measured when each step ran
            parts = dict(record.outputs.get("profile") or {})
            if record.name in ("corpus", "annotate", "features", "describe"):
                parts[f"{record.name}_s"] = record.seconds
            optional = any(record.name.startswith(p) for p in OPTIONAL_STEPS.values())
            for totals in (profile,) if optional else (profile, defaults_profile):
                for key, value in parts.items():
                    totals[key] = round(totals.get(key, 0.0) + value, 3)
        out = {
            "schema": RESULTS_SCHEMA,
            "created": time.strftime("%Y-%m-%d"),
            "machine": self.machine,
            "seeds": list(c.seeds),
            "selection": SELECTION_LABELS[c.select_on],
            "test_clips": len(read_manifest(test_manifest)),
            "settings": c.to_dict(),
            "systems": out_blocks["systems"],
            "modalities": out_blocks["modalities"],
            "findings": check_findings(means),
            "timings": [{"name": r.name, "seconds": r.seconds, "cpu_seconds": r.cpu_seconds,
                         "reused": r.reused} for r in self.steps.records],
            "profile": profile,
            "defaults_profile": defaults_profile,
            "steps_seconds": round(sum(r.seconds for r in self.steps.records), 1),
            "optional_steps_seconds": {
                setting: round(sum(r.seconds for r in self.steps.records
                                   if r.name.startswith(prefix)), 1)
                for setting, prefix in OPTIONAL_STEPS.items()
                if any(r.name.startswith(prefix) for r in self.steps.records)},
            "total_seconds": round(seconds, 1),
        }
        if c.rl:
            out["rl"] = self._rl_summary()
        return out

    def _rl_summary(self) -> dict[str, Any]:
        """The RL block of the results: settings, folder, each seed's selection and, with
        the wheel tables, the EW score on test of stage 1 + 2 and of RL (mean ± std)."""
        from affectgpt.demo.results import mean_std
        from affectgpt.demo.rl import SUPERVISED_SYSTEM, rl_settings

        runs = self._runs(RL_STEP)
        ew = None
        if all(r.get("ew") and None not in r["ew"].values() for r in runs):
            ew = {}
            for name in (SUPERVISED_SYSTEM, RL_SYSTEM):
                values = [r["ew"][name] for r in runs]
                mean, std = mean_std(values)
                ew[name] = {"mean": mean, "std": std, "values": values}
        return {"system": RL_SYSTEM, "settings": rl_settings(self.cfg),
                "folder": str(self.rl_work),
                "runs": [{k: r.get(k) for k in ("seed", "init_from", "steps", "best_metric",
                                                "selection", "selected_epoch", "val_clips",
                                                "train_clips", "reward")} for r in runs],
                "ew": ew}

    def results(self, test_manifest: str, summary: dict[str, Any]) -> dict[str, Any]:
        """The report's results structure (:mod:`affectgpt.report.schema`) from
        :meth:`summary`."""
        from affectgpt.demo.results import finding_line

        c = self.cfg
        metrics = ("accuracy", "recall", "avg")
        systems, rows = [], []
        modality_rows = [dict(r, name=f"{r['name']} ({r['note']})")
                         for r in summary["modalities"] if r["name"] not in ("A+V+T", "T")]
        for row in summary["systems"] + modality_rows:
            scores = row["scores"]
            systems.append({"name": row["name"], "note": row["note"], "runs": row["runs"],
                            "scores": {"test": {m: scores[m]["mean"] for m in metrics}},
                            "std": {"test": {m: scores[m]["std"] for m in metrics}}})
            rows.append({"system": row["name"], "scores": {
                cue: scores[f"cue {cue}"]["mean"] for cue in CUES
                if f"cue {cue}" in scores}})
        series = {}
        for name, step in (("stage 2 only", "stage2-only"), ("stage 1 + stage 2", "stage2")):
            curve = self._val_curve(self.step_name(step, c.seeds[0]))
            if curve["epochs"]:
                series[f"{name} (seed {c.seeds[0]})"] = curve
        figures = []
        for step, label in (("stage1", "stage 1"), ("stage2-only", "stage 2 only"),
                            ("stage2", "stage 1 + stage 2")):
            for plot, what in (("loss.png", "loss"), ("scores.png", "validation scores")):
                path = self.work / self.step_name(step, c.seeds[0]) / plot
                if path.is_file():
                    figures.append({"path": str(path.resolve()),
                                    "title": f"{label}, seed {c.seeds[0]}: {what}"})
        if c.rl:
            folder = self.rl_work / self.step_name(RL_STEP, c.seeds[0])
            for plot, what in (("rewards.png", "reward per component"),
                               ("scores.png", "validation scores")):
                if (folder / plot).is_file():
                    figures.append({"path": str((folder / plot).resolve()),
                                    "title": f"{RL_SYSTEM}, seed {c.seeds[0]}: {what}"})
        clip = dict(self.steps_output("describe")["clip"])
        clip["video"] = str(Path(clip.pop("path", clip.get("video", ""))).resolve())
        clip.pop("extra", None)
        n_test, seeds = summary["test_clips"], len(c.seeds)
        profile = summary["profile"]
        machine = summary["machine"]
        return {
            "title": "AffectGPT demo: two-stage training on a synthetic corpus",
            "summary": (
                f"{c.coarse} coarse clips for stage 1, {c.fine} fine clips with gold "
                f"descriptions for stage 2 ({n_test} held out for testing; each stage keeps "
                f"{100 * c.val_fraction:.0f}% of its training clips for validation). Frozen "
                f"{c.preset} model (encoders + LLM), trainable Q-Former adapters. Scores: the "
                "2024 set metric (x100, lexical synonym grouping) on the test split at the "
                f"checkpoint chosen by: {summary['selection']}; mean ± std (population) over "
                f"{seeds} seed(s). Findings: "
                + "; ".join(finding_line(f) for f in summary["findings"]) + "."),
            "primary_split": "test",
            "systems": systems,
            "ablation": {"split": "test", "cues": list(CUES), "rows": rows},
            "epoch_curves": {"metric": "avg", "split": "val", "window": 3, "series": series},
            "figures": figures,
            "clip": clip,
            "timings": [{"name": r.name, "seconds": r.seconds, "reused": r.reused,
                         "detail": r.detail} for r in self.steps.records],
            # with RL off, its settings would only clutter the table: "rl" alone says so
            "config": {k: (", ".join(map(str, v)) if isinstance(v, list) else v)
                       for k, v in c.to_dict().items()
                       if c.rl or k == "rl" or k not in RL_SETTINGS},
            "environment": {"CPU": machine["cpu"],
                            "vector extensions": machine["vector_extensions"],
                            "cores": str(machine["cores"]),
                            "torch CPU kernels": str(machine.get("torch_cpu_capability")),
                            "work folder": str(self.work.resolve()),
                            "data folder": str(self.data.resolve())},
            "notes": [
                "Protocol: checkpoints (and the demo's hyper-parameters) are chosen on "
                "validation splits carved from the training side; the test split is scored "
                f"once, at the selected checkpoint ({summary['selection']}).",
                "Where the time went (as measured when each step ran): " + ", ".join(
                    f"{k.removesuffix('_s').replace('_', ' ')} {v:.0f} s"
                    for k, v in sorted(profile.items(), key=lambda kv: -kv[1])) + ".",
                self._annotation_note(),
                "Cue = the modality that carries the emotion in a test clip (the others are "
                "neutral): the audio and video columns show whether a system reads that "
                "modality; the text-only system can only get the text column right.",
                *self._rl_notes(summary),
            ],
        }

    def _rl_notes(self, summary: dict[str, Any]) -> list[str]:
        """The report's lines about the RL step (none when it is off)."""
        from affectgpt.demo.results import ew_line

        rl = summary.get("rl")
        if not rl:
            return []
        s = rl["settings"]
        reward = ", ".join(f"{k} {v:g}" for k, v in s["rl_reward"].items())
        return [f"{RL_SYSTEM}: GRPO from each seed's validation-selected stage 1 + 2 export "
                f"on the same fine train split, {s['rl_epochs']} epoch(s) at lr "
                f"{s['rl_lr']:g}, {s['rl_group_size']} descriptions of up to "
                f"{s['rl_max_new_tokens']} tokens sampled per clip, KL weight "
                f"{s['rl_kl_coef']:g}, reward weights {reward}; the checkpoint chosen on the "
                "same validation split as stage 2 (val/avg), then the test split scored "
                "once like every system.", ew_line(rl)]

    def _val_curve(self, step: str) -> dict[str, list]:
        log_file = self.work / step / "eval_log.jsonl"
        curve: dict[str, list] = {"epochs": [], "values": []}
        if log_file.is_file():
            for line in log_file.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                if "val/avg" in record["scores"]:
                    curve["epochs"].append(record["epoch"])
                    curve["values"].append(record["scores"]["val/avg"])
        return curve

    def _annotation_note(self) -> str:
        out = self.steps_output("annotate")
        if out.get("off"):
            return "Annotation was off: stage 1 learned from the generator's coarse descriptions."
        agreement = out.get("agreement") or {}
        what = ("the pipeline's own annotations" if self.cfg.stage1_targets == "annotated" else
                "the generator's coarse descriptions (stage1_targets=generated)")
        return (f"The EMER-Coarse pipeline annotated {out['clips']} coarse clips with the "
                f"packaged CPU models and kept {out['exported']}; its labels agree with the "
                f"generator's truth at Avg {100 * agreement.get('avg', 0):.1f} (Accuracy_s "
                f"{100 * agreement.get('accuracy', 0):.1f}, Recall_s "
                f"{100 * agreement.get('recall', 0):.1f}). Stage 1 learned from {what}"
                f"{TARGET_NOTES[self.cfg.targets]}. "
                f"Annotations: {out.get('csv')}.")

    def steps_output(self, name: str) -> dict[str, Any]:
        return next(r.outputs for r in self.steps.records if r.name == name)

    def _print_summary(self, summary: dict[str, Any], html: Path, seconds: float) -> None:
        from affectgpt.demo.results import COLUMN_LABELS, COLUMNS, finding_line, format_cell

        for block, title in (("systems", "Table 4 in miniature"),
                             ("modalities", "Modality ablation (stage-2 recipe)")):
            if not summary[block]:
                continue
            table = Table(title=f"{title}: test split ({summary['test_clips']} clips), 2024 "
                                f"set metric x100, mean ± std over "
                                f"{max(r['runs'] for r in summary[block])} seed(s); "
                                f"checkpoint: {summary['selection']}")
            for col in ("system", *(COLUMN_LABELS.get(c, c) for c in COLUMNS)):
                table.add_column(col, justify="left" if col == "system" else "right")
            for row in summary[block]:
                table.add_row(row["name"], *(format_cell(row["scores"].get(c))
                                             for c in COLUMNS))
            self.console.print(table)
        for finding in summary["findings"]:
            self.console.print(f"  {'✓' if finding['holds'] else '✗'} {finding_line(finding)}")
        if summary.get("rl"):
            from affectgpt.demo.results import ew_line

            self.console.print(f"  {ew_line(summary['rl'])}")
        self.console.print(f"demo finished in {seconds:.0f} s; report: {html.resolve()}")


def run_demo(cfg: DemoConfig | None = None, out: str | Path = "runs", *, fresh: bool = False,
             progress: bool | None = None, results_file: str | Path | None = None) -> Path:
    """Run the demo with ``cfg`` (default: the embedded settings); returns the report folder.
    ``results_file``: also write the seeds' results (JSON) there."""
    if progress is None:
        progress = sys.stderr.isatty()
    return Demo(cfg or DemoConfig(), out, fresh=fresh, progress=progress).run(results_file)
