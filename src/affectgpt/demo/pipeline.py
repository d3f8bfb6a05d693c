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
from affectgpt.demo.config import ANNOTATION_SETTINGS, DATA_SETTINGS, DemoConfig
from affectgpt.io import atomic_write

log = logging.getLogger("affectgpt.demo")

#: the systems in the results table, in order (name, step, what it is)
SYSTEMS = (
    ("untrained", "untrained", "random adapters on the frozen encoders and LLM"),
    ("text only", "text-only", "the frozen LLM given the subtitle alone (only the adapters "
     "train, and they read video and audio)"),
    ("stage 1 only", "stage1", "trained on the coarse pool"),
    ("stage 2 only", "stage2-only", "trained on the fine train split from random adapters"),
    ("stage 1 + stage 2", "stage2", "stage 2 initialised from stage 1 (the paper's recipe)"),
)
CUES = ("audio", "video", "text", "all")


@dataclass
class StepRecord:
    """What one step did: outputs, seconds, and whether an earlier run's result was reused."""

    name: str
    seconds: float
    reused: bool
    detail: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)


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
                                saved["outputs"])
            self.console.print(f"[dim]✓ {title}: reused ({record.detail})[/dim]")
        else:
            self.console.rule(f"[bold]{title}")
            started = time.perf_counter()
            outputs, detail = fn()
            record = StepRecord(name, round(time.perf_counter() - started, 2), False, detail,
                                outputs)
            atomic_write(marker, json.dumps({"seconds": record.seconds, "detail": detail,
                                             "outputs": outputs}, indent=1) + "\n")
            self.console.print(f"✓ {title}: {detail} ({record.seconds:.1f} s)")
        self.records.append(record)
        return record


# --------------------------------------------------------------------------- helpers
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
                duration=tuple(c.clip_seconds), size=c.clip_size, workers=c.workers,
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

    def _train(self, step: str, title: str, *, manifest: str, test_manifest: str,
               epochs: int, init_from: str | None = None, withhold: Sequence[str] = (),
               eval_every: int = 1) -> StepRecord:
        def train():
            from affectgpt.features.sources import FeatureSettings
            from affectgpt.train import TrainConfig
            from affectgpt.train.pipeline import EvalSettings, train_stage

            c = self.cfg
            cfg = TrainConfig(stage=step, out_dir=str(self.work / step), epochs=epochs,
                              batch_size=c.batch_size, lr=c.lr, min_lr=c.min_lr,
                              warmup_steps=c.warmup_steps, seed=c.seed, device=c.device,
                              eval_every=eval_every, keep_last=1, init_from=init_from,
                              progress=self.progress, smooth_window=3)
            result = train_stage(
                c.preset, overrides=list(c.overrides), train=cfg, manifest=manifest,
                eval_manifest=test_manifest, withhold=withhold,
                features=FeatureSettings(root=str(self.features_root), progress=False),
                evaluation=EvalSettings(batch_size=c.eval_batch_size,
                                        max_new_tokens=c.eval_max_new_tokens),
                resume="auto")
            r = result.results
            last = r["scores"]["last"] or {}
            return ({"out_dir": str(result.out_dir), "model": str(result.model_dir),
                     "steps": r["train"]["step"], "last": last,
                     "last_epoch": r["scores"]["last_epoch"]},
                    f"{r['train']['step']} steps, test Avg {100 * last.get('test/avg', 0):.1f}")

        return self.steps.run(step, title, train)

    def untrained(self, test_manifest: str, *, step: str = "untrained",
                  withhold: Sequence[str] = ()) -> StepRecord:
        """Score a model that was never trained: random adapters on the frozen encoders and
        LLM, or (``withhold`` both) the frozen LLM given the subtitle alone, which is all a
        text-only system can be when only the adapters train."""
        def evaluate():
            import torch

            from affectgpt.eval.scoring import score_predictions
            from affectgpt.features.sources import (
                FeatureSettings,
                ModelEncoders,
                default_cache_dirs,
            )
            from affectgpt.inference import predict
            from affectgpt.model import AffectGPT, load_config
            from affectgpt.model.llm import resolve_device
            from affectgpt.train.trainer import seed_everything

            c = self.cfg
            config = load_config(c.preset, list(c.overrides))
            samples = read_manifest(test_manifest)
            sources, _ = ModelEncoders(config).sources(
                samples, FeatureSettings(root=str(self.features_root), progress=False),
                default_cache_dirs(config, test_manifest, self.features_root))
            sources = {m: None if m in withhold else f for m, f in sources.items()}
            seed_everything(c.seed)
            model = AffectGPT.from_config(config, device=resolve_device(c.device, 0))
            with torch.no_grad():
                records = list(predict(model, samples, sources, batch_size=c.eval_batch_size,
                                       max_new_tokens=c.eval_max_new_tokens,
                                       progress=self.progress, desc=step))
            preds = {r["name"]: r["openset"] for r in records}
            scores = score_predictions(preds, samples)
            folder = self.work / step
            atomic_write(folder / "predictions.json", json.dumps(
                {"scores": scores, "withheld": list(withhold), "predictions": records},
                indent=1, ensure_ascii=False) + "\n")
            return ({"predictions": str(folder / "predictions.json"), "last": scores},
                    f"test Avg {100 * scores.get('test/avg', 0):.1f}")

        title = ("4/6 untrained baseline" if not withhold else
                 "4/6 text-only baseline (the frozen LLM given the subtitle alone)")
        return self.steps.run(step, title, evaluate)

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
    def run(self) -> Path:
        """Run (or reuse) every step, then write the report; returns the report folder."""
        c = self.cfg
        started = time.perf_counter()
        corpus = self.corpus().outputs
        annotation = self.annotate(corpus["coarse"]).outputs
        # the annotation is shared by runs whose stage1_targets differ: choose here
        coarse = (annotation["annotated"] if self.cfg.stage1_targets == "annotated"
                  else corpus["coarse"])
        self.features([corpus["coarse"], corpus["fine"]])
        test = corpus["test"]
        self.untrained(test)
        self.untrained(test, step="text-only", withhold=("video", "audio"))
        targets = ("its pipeline annotations" if c.stage1_targets == "annotated"
                   else "its generated coarse descriptions")
        self._train("stage1", f"4/6 stage 1 on the coarse pool ({targets})", manifest=coarse,
                    test_manifest=test, epochs=c.stage1_epochs, eval_every=c.stage1_epochs)
        self._train("stage2-only", "4/6 stage 2 only (from random adapters)",
                    manifest=corpus["train"], test_manifest=test, epochs=c.stage2_epochs)
        s12 = self._train("stage2", "4/6 stage 2 from stage 1", manifest=corpus["train"],
                          test_manifest=test, epochs=c.stage2_epochs,
                          init_from=str(self.work / "stage1"))
        self.describe(s12.outputs["model"], test)
        from affectgpt.report import write_report

        self.console.rule("[bold]6/6 report")
        report_dir = self.out / time.strftime("demo-%Y%m%d-%H%M%S")
        results, checks = self.results(test)
        html, _ = write_report(report_dir, results)
        # the two-stage model next to its report (adapters only: a few MB), for
        # `affectgpt describe --model` and `affectgpt serve-demo --model`
        shutil.copytree(s12.outputs["model"], report_dir / "model", dirs_exist_ok=True)
        atomic_write(report_dir / "results.json", json.dumps(
            {**results, "checks": checks}, indent=1, ensure_ascii=False) + "\n")
        self._print_summary(results, checks, html, time.perf_counter() - started)
        return report_dir

    # ------------------------------------------------------------------ results
    def _system_predictions(self, step: str) -> tuple[dict[str, list[str]], dict[str, Any]]:
        """The last evaluation's predictions of a system and its per-epoch test curve."""
        folder = self.work / step
        if step in ("untrained", "text-only"):
            data = json.loads((folder / "predictions.json").read_text(encoding="utf-8"))
            return {r["name"]: r["openset"] for r in data["predictions"]}, {}
        files = sorted((folder / "predictions").glob("epoch-*.json"))
        last = json.loads(files[-1].read_text(encoding="utf-8"))
        curve = {"epochs": [], "values": []}
        for line in (folder / "eval_log.jsonl").read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            curve["epochs"].append(record["epoch"])
            curve["values"].append(record["scores"].get("test/avg"))
        return {r["name"]: r["openset"] for r in last["predictions"]}, curve

    def results(self, test_manifest: str) -> tuple[dict[str, Any], dict[str, bool]]:
        """The report's results structure (:mod:`affectgpt.report.schema`) and the checks
        of the paper's findings (trained > untrained, > text only; two stages >= one)."""
        from affectgpt.eval.scoring import score_predictions

        c = self.cfg
        samples = read_manifest(test_manifest)
        systems, rows, series = [], [], {}
        for name, step, note in SYSTEMS:
            preds, curve = self._system_predictions(step)
            scores = score_predictions(preds, samples)
            systems.append({"name": name, "note": note, "scores": {"test": {
                m: scores[f"test/{m}"] for m in ("accuracy", "recall", "avg")}}})
            rows.append({"system": name, "scores": {  # Avg only: four readable columns
                cue: v["avg"] for cue, v in _scores_by_cue(preds, samples).items()}})
            if step in ("stage2-only", "stage2"):
                series[name] = curve
        by_name = {s["name"]: s["scores"]["test"]["avg"] for s in systems}
        checks = {
            "trained > untrained": by_name["stage 1 + stage 2"] > by_name["untrained"],
            "trained > text only": by_name["stage 1 + stage 2"] > by_name["text only"],
            "stage 1 + stage 2 >= stage 2 only":
                by_name["stage 1 + stage 2"] >= by_name["stage 2 only"],
        }
        figures = []
        for step, label in (("stage1", "stage 1"), ("stage2-only", "stage 2 only"),
                            ("stage2", "stage 1 + stage 2")):
            for plot, what in (("loss.png", "loss"), ("scores.png", "test scores")):
                path = self.work / step / plot
                if path.is_file():
                    figures.append({"path": str(path.resolve()), "title": f"{label}: {what}"})
        clip = dict(self.steps_output("describe")["clip"])
        clip["video"] = str(Path(clip.pop("path", clip.get("video", ""))).resolve())
        clip.pop("extra", None)
        n_test = len(samples)
        return {
            "title": "AffectGPT demo: two-stage training on a synthetic corpus",
            "summary": (
                f"{c.coarse} coarse clips for stage 1, {c.fine} fine clips with gold "
                f"descriptions for stage 2 ({n_test} held out for testing). Frozen {c.preset} model "
                "(encoders + LLM), trainable Q-Former adapters. Scores: the 2024 set metric "
                "(x100, lexical synonym grouping) on the test split, after the last epoch. "
                + "; ".join(f"{k}: {'yes' if v else 'no'}" for k, v in checks.items()) + "."),
            "primary_split": "test",
            "systems": systems,
            "ablation": {"split": "test", "cues": list(CUES), "rows": rows},
            "epoch_curves": {"metric": "avg", "split": "test", "window": 3, "series": series},
            "figures": figures,
            "clip": clip,
            "timings": [{"name": r.name, "seconds": r.seconds, "reused": r.reused,
                         "detail": r.detail} for r in self.steps.records],
            "config": {k: (", ".join(map(str, v)) if isinstance(v, list) else v)
                       for k, v in c.to_dict().items()},
            "environment": {"work folder": str(self.work.resolve()),
                            "data folder": str(self.data.resolve())},
            "notes": [
                self._annotation_note(),
                "Cue = the modality that carries the emotion in a test clip (the others are "
                "neutral): the audio and video columns show whether a system reads that "
                "modality; the text-only system can only get the text column right.",
            ],
        }, checks

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
                f"{100 * agreement.get('recall', 0):.1f}). Stage 1 learned from {what}. "
                f"Annotations: {out.get('csv')}.")

    def steps_output(self, name: str) -> dict[str, Any]:
        return next(r.outputs for r in self.steps.records if r.name == name)

    def _print_summary(self, results: dict[str, Any], checks: dict[str, bool], html: Path,
                       seconds: float) -> None:
        table = Table(title="Test split, 2024 set metric (x100)")
        for col in ("system", "Accuracy_s", "Recall_s", "Avg", *[f"cue {c}" for c in CUES]):
            table.add_column(col, justify="left" if col == "system" else "right")
        ablation = {r["system"]: r["scores"] for r in results["ablation"]["rows"]}
        for system in results["systems"]:
            s = system["scores"]["test"]
            cues = [f"{100 * ablation[system['name']][c]:.1f}"
                    if c in ablation[system["name"]] else "-" for c in CUES]
            table.add_row(system["name"], *(f"{100 * s[m]:.1f}" for m in
                                            ("accuracy", "recall", "avg")), *cues)
        self.console.print(table)
        for check, ok in checks.items():
            self.console.print(f"  {'✓' if ok else '✗'} {check}")
        self.console.print(f"demo finished in {seconds:.0f} s; report: {html.resolve()}")


def run_demo(cfg: DemoConfig | None = None, out: str | Path = "runs", *, fresh: bool = False,
             progress: bool | None = None) -> Path:
    """Run the demo with ``cfg`` (default: the embedded settings); returns the report folder."""
    if progress is None:
        progress = sys.stderr.isatty()
    return Demo(cfg or DemoConfig(), out, fresh=fresh, progress=progress).run()
