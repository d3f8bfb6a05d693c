"""The demo's annotation step: the coarse pool through the EMER-Coarse pipeline, offline.

Audio clues come from measured prosody and video clues from the packaged facial-expression
CNN (the CPU stand-ins for the paper's audio and video MLLMs), the merge from the packaged
SmolLM2-135M-Instruct (behind `transformers serve` on loopback, or in-process), labels from
the offline lexicon; the filter drops descriptions without labels. What stage 1 learns from
is therefore made by models, with their mistakes, as EMER-Coarse is.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from affectgpt.demo.config import DemoConfig


def annotation_overrides(cfg: DemoConfig) -> list[str]:
    """The pipeline settings of the demo (merge back-end set separately)."""
    return ["audio-clue.backend=packaged", "video-clue.backend=packaged",
            "translate.enabled=false", "labels.backend=lexicon",
            f"merge.max_tokens={cfg.annotate_max_tokens}", "merge.temperature=0",
            "merge.max_attempts=2", f"concurrency={cfg.annotate_concurrency}",
            f"filter.enabled={str(cfg.annotate_filter).lower()}"]


def annotate_coarse_pool(manifest: str | Path, out: str | Path, cfg: DemoConfig, *,
                         progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Annotate ``manifest`` into ``out`` (resumable) and export the kept samples as a
    training manifest; returns ``(manifest path, summary)``."""
    from affectgpt.annotate import apply_overrides, default_config, export_dataset, run_annotation
    from affectgpt.llm.server import export_smollm2, local_llm_server

    out = Path(out)
    smollm2 = export_smollm2()
    overrides = annotation_overrides(cfg)
    if cfg.annotate_backend == "transformers":
        scope = contextlib.nullcontext(None)
        overrides += ["merge.backend=transformers", f"merge.model={smollm2}"]
    else:  # continuous batching: concurrent requests share forward passes
        scope = local_llm_server(engine="transformers")
    with scope as server:
        if server is not None:
            overrides += ["merge.backend=openai", f"merge.base_url={server.base_url}",
                          f"merge.model={server.model}", "merge.api_key_env=",
                          "merge.max_retries=2", "merge.timeout=300"]
        acfg = apply_overrides(default_config(), overrides)
        summary = run_annotation(manifest, out, acfg, progress=progress)
    exported = export_dataset(out, manifest_out=out / "coarse-annotated.jsonl",
                              csv_out=out / "emer-coarse.csv")
    totals = summary.to_dict()["totals"]
    if exported.exported == 0 and cfg.stage1_targets == "annotated":
        raise RuntimeError(f"the annotation kept no sample (see {out}); stage 1 has no data")
    return Path(exported.manifest), {
        "clips": summary.samples, "exported": exported.exported,
        "skipped": exported.skipped, "failed": totals["failed"],
        "tokens": totals["completion_tokens"], "csv": exported.csv,
        "backend": cfg.annotate_backend,
        "agreement": label_agreement(manifest, exported.manifest)}


def label_agreement(truth_manifest: str | Path, annotated_manifest: str | Path,
                    ) -> dict[str, float]:
    """How well the pipeline's labels match the generator's: the 2024 set metric of the
    annotated labels against the true ones (lexical grouping), over the exported samples."""
    from affectgpt.data.manifest import read_manifest
    from affectgpt.eval.scoring import score_predictions

    annotated = {s.name: list(s.labels) for s in read_manifest(annotated_manifest)}
    truth = [s for s in read_manifest(truth_manifest) if s.name in annotated]
    if not truth:
        return {}
    scores = score_predictions(annotated, truth)
    return {m: scores[f"whole/{m}"] for m in ("accuracy", "recall", "avg")}
