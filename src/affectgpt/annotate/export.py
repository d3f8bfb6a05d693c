"""Export an annotation run: a manifest for training and the EMER-Coarse-style CSV.

A sample is exported when it has a ``merge`` row, a ``labels`` row (when the labels stage
is enabled) and a ``translate`` row (when enabled, unless ``allow_missing`` names it), and
the filter (when it ran) kept it. The manifest holds the input sample with
``description_en``/``description_zh`` and ``labels`` filled in and the clues and
provenance in ``extra["annotate"]``; the CSV has the columns ``name, english, chinese,
openset`` like the released EMER-Coarse files.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from affectgpt.annotate.config import AnnotateConfig
from affectgpt.annotate.runner import stage_outputs
from affectgpt.data.manifest import Sample, read_manifest, write_manifest
from affectgpt.eval.labels import format_label_list
from affectgpt.io import atomic_write

CSV_COLUMNS = ("name", "english", "chinese", "openset")


@dataclass
class ExportSummary:
    exported: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    manifest: str | None = None
    csv: str | None = None


def _run_record(out: Path) -> dict:
    records = sorted(out.glob("run*.json"))
    if not records:
        raise FileNotFoundError(f"no run*.json in {out}: not an annotation output folder")
    return json.loads(records[0].read_text(encoding="utf-8"))


def export_dataset(
    out: str | Path,
    *,
    manifest_out: str | Path | None = None,
    csv_out: str | Path | None = None,
    source_manifest: str | Path | None = None,
    allow_missing: tuple[str, ...] = (),
    source_name: str = "emer-coarse-annotate",
) -> ExportSummary:
    """Write the run's final dataset (see the module docstring); returns counts."""
    out = Path(out)
    record = _run_record(out)
    cfg = AnnotateConfig.from_dict(record["config"])
    samples = read_manifest(source_manifest or record["manifest"])
    rows = {s: stage_outputs(out, s) for s in
            ("audio-clue", "video-clue", "merge", "translate", "labels", "filter")}
    required = ["merge"] + [s for s in ("labels", "translate")
                            if cfg.stages[s].enabled and s not in allow_missing]
    use_filter = cfg.stages["filter"].enabled and bool(rows["filter"])
    summary = ExportSummary()
    exported: list[Sample] = []
    table: list[tuple[str, str, str, str]] = []
    for sample in samples:
        missing = [s for s in required if sample.name not in rows[s]]
        if missing:
            key = f"missing {missing[0]}"
            summary.skipped[key] = summary.skipped.get(key, 0) + 1
            continue
        if use_filter:
            verdict = rows["filter"].get(sample.name)
            if verdict is None:
                summary.skipped["missing filter"] = summary.skipped.get("missing filter", 0) + 1
                continue
            if not verdict["keep"]:
                summary.skipped["filtered out"] = summary.skipped.get("filtered out", 0) + 1
                continue
        merged = rows["merge"][sample.name]
        translated = rows["translate"].get(sample.name, {})
        english, chinese = merged["description"], translated.get("text", "")
        if merged.get("language") == "zh":
            english, chinese = translated.get("text", ""), merged["description"]
        labels = rows["labels"].get(sample.name, {}).get("labels", [])
        annotate = {
            "audio_clue": rows["audio-clue"].get(sample.name, {}).get("clue"),
            "video_clue": rows["video-clue"].get(sample.name, {}).get("clue"),
            "labels_fallback": rows["labels"].get(sample.name, {}).get("fallback", False),
            "prompt_version": {s: cfg.stages[s].prompt_version for s in
                               ("audio-clue", "video-clue", "merge", "translate", "labels")},
            "models": {s: cfg.stages[s].model for s in
                       ("audio-clue", "video-clue", "merge", "translate", "labels")
                       if cfg.stages[s].enabled},
        }
        exported.append(replace(sample, description_en=english, description_zh=chinese,
                                labels=list(labels), source=source_name,
                                extra={**sample.extra, "annotate": annotate}))
        table.append((sample.name, english, chinese, format_label_list(labels)))
    summary.exported = len(exported)
    if manifest_out:
        write_manifest(exported, manifest_out)
        summary.manifest = str(manifest_out)
    if csv_out:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(table)
        atomic_write(Path(csv_out), buffer.getvalue())
        summary.csv = str(csv_out)
    return summary
