"""write_report: schema checks, escaping, assets, the Markdown mirror, and the page as
Chromium shows it."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from affectgpt.report import ReportData, ReportSchemaError, write_report
from affectgpt.train.plots import plot_loss, plot_scores

EVIL = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


def _trainer_plots(run_dir: Path, stage: str, epochs: int = 12) -> list[dict]:
    """The two PNGs the trainer writes, drawn by the trainer's own plotting functions."""
    steps = list(range(1, 30 * epochs + 1))
    losses = [2.5 * math.exp(-s / 90) + 0.4 + 0.08 * math.sin(s / 3) for s in steps]
    plot_loss(steps, losses, run_dir / stage / "loss.png")
    ep = list(range(1, epochs + 1))
    plot_scores(ep, {"avg": [0.2 + 0.3 * (1 - math.exp(-e / 4)) + 0.02 * (-1) ** e for e in ep],
                     "accuracy": [0.25 + 0.3 * (1 - math.exp(-e / 4)) for e in ep]},
                run_dir / stage / "scores.png")
    return [{"path": f"{stage}/loss.png", "title": f"{stage} loss"},
            {"path": f"{stage}/scores.png", "title": f"{stage} test scores",
             "caption": "raw points and centred moving average"}]


def realistic_results(run_dir: Path, clip) -> dict:
    """What the demo orchestrator fills: four systems, an ablation, trainer plots,
    per-epoch scores, a described clip, timings, settings."""
    figures = _trainer_plots(run_dir, "stage1") + _trainer_plots(run_dir, "stage2")
    epochs = list(range(1, 13))

    def curve(start, gain):
        return [start + gain * (1 - math.exp(-e / 4)) + 0.015 * (-1) ** e for e in epochs]

    def scores(acc, rec):
        return {"accuracy": acc, "recall": rec, "avg": (acc + rec) / 2}

    return {
        "title": "AffectGPT demo — synthetic corpus",
        "summary": "Two-stage training of the small preset on synthetic clips.",
        "systems": [
            {"name": "untrained", "scores": {"test": scores(0.08, 0.05)}},
            {"name": "text only", "scores": {"test": scores(0.31, 0.27), "train": scores(0.33, 0.3)},
             "note": "subtitle only, no video or audio features"},
            {"name": "stage 2 only", "scores": {"test": scores(0.46, 0.41), "train": scores(0.6, 0.55)},
             "std": {"test": {"avg": 0.012}}, "runs": 2},
            {"name": "stage 1 + stage 2",
             "scores": {"test": scores(0.58, 0.52), "train": scores(0.7, 0.66),
                        "whole": scores(0.66, 0.61)},
             "std": {"test": {"accuracy": 0.01, "recall": 0.008, "avg": 0.009}}, "runs": 2,
             "wheel": {"M-avg": 0.412, "EW-L1": 0.533}},
        ],
        "ablation": {"split": "test", "cues": ["audio", "video", "text", "all"], "rows": [
            {"system": "untrained", "scores": {c: 0.05 for c in ("audio", "video", "text", "all")}},
            {"system": "stage 1 + stage 2", "scores": {
                "audio": scores(0.41, 0.38), "video": scores(0.52, 0.47),
                "text": scores(0.6, 0.55), "all": scores(0.71, 0.66)}},
        ]},
        "figures": figures,
        "epoch_curves": {"metric": "avg", "split": "test", "window": 3, "series": {
            "stage 2 only": {"epochs": epochs, "values": curve(0.1, 0.35)},
            "stage 1 + stage 2": {"epochs": epochs, "values": curve(0.2, 0.38)},
        }},
        "clip": {"video": str(clip.video), "name": clip.name, "system": "stage 1 + stage 2",
                 "cue": "all", "description": clip.description_en, "labels": ["happy", "calm"],
                 "gold_labels": list(clip.labels), "subtitle": clip.subtitle_en,
                 "has_audio": True, "has_video": True, "seconds": 2.4},
        "timings": [
            {"name": "synthetic corpus", "seconds": 41.2, "detail": "160 clips"},
            {"name": "annotation (EMER-Coarse)", "seconds": 12.9, "reused": True},
            {"name": "stage 1 training", "seconds": 612.5},
            {"name": "stage 2 training", "seconds": 233.0},
            {"name": "evaluation", "seconds": 58.1},
        ],
        "config": {"preset": "small", "seed": 0, "epochs": [8, 12]},
        "environment": {"device": "cpu"},
        "notes": ["small model, synthetic data: the numbers check the pipeline"],
    }


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.imgs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.text.append(data)


def test_report_html_and_markdown_content(tmp_path, clips):
    results = realistic_results(tmp_path, clips[0])
    results["systems"][0]["note"] = EVIL
    results["clip"]["description"] = EVIL + "\nsecond line"
    html_path, md_path = write_report(tmp_path, results)
    assert (html_path, md_path) == (tmp_path / "report.html", tmp_path / "report.md")

    page = html_path.read_text(encoding="utf-8")
    parsed = _Collector()
    parsed.feed(page)
    assert "script" not in parsed.tags  # no scripts at all, and the injected one escaped
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page  # nothing from the network
    # images: 2 trainer plots x 2 stages, the comparison plot, the frame strip; all local
    assert len(parsed.imgs) == 6
    for src in parsed.imgs:
        assert not src.startswith(("/", "data:")) and (tmp_path / src).is_file(), src
    assert (tmp_path / "report_files" / "epoch_scores.png").stat().st_size > 1000
    assert (tmp_path / "report_files" / "clip_frames.jpg").stat().st_size > 1000
    text = " ".join(parsed.text)
    for expected in ("Accuracy_s", "Recall_s", "55.00±0.90", "stage 1 + stage 2", "M-avg",
                     "41.20", "cue: audio", "71.00", "15 min", "reused", "fresh",
                     clips[0].subtitle_en, "second line"):
        assert expected in text, expected

    md = md_path.read_text(encoding="utf-8")
    assert "<script>" not in md and "\\<script\\>" in md
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted(images) == sorted(parsed.imgs)
    for expected in ("| system | test Accuracy\\_s |", "**55.00±0.90**", "stage 1 \\+ stage 2",
                     "audio Avg", "| **total** |", "> second line"):
        assert expected in md, expected


def test_report_results_roundtrip_through_json(tmp_path, clips):
    results = realistic_results(tmp_path, clips[0])
    data = ReportData.from_dict(json.loads(json.dumps(results)))
    again = ReportData.from_dict(json.loads(json.dumps(data.to_dict())))
    assert again == data
    assert data.systems[3].scores["whole"]["avg"] == pytest.approx(0.635)
    assert data.ablation.rows[0].scores["audio"] == {"avg": 0.05}  # a bare number is an Avg


def test_report_accepts_describe_output_keys(tmp_path, clips):
    # the keys of Description.to_dict(): "path" instead of "video", and "extra"
    clip = {"description": "She sounds happy.", "labels": ["happy"], "subtitle": "Great news!",
            "has_audio": True, "has_video": True, "seconds": 1.5, "path": str(clips[1].video),
            "extra": {"checkpoint": "stage2/model"}}
    html_path, md_path = write_report(tmp_path, {"clip": clip})
    assert (tmp_path / "report_files" / "clip_frames.jpg").is_file()
    assert "stage2/model" in html_path.read_text() and "checkpoint" in md_path.read_text()


@pytest.mark.parametrize("bad, message", [
    ({"sytems": []}, "unknown key"),
    ({"systems": [{"scores": {}}]}, "missing required key 'name'"),
    ({"systems": [{"name": "x", "scores": {"test": {"f1": 0.3}}}]}, "unknown metric 'f1'"),
    ({"systems": [{"name": "x", "scores": {"test": {"avg": "high"}}}]}, "expected a number"),
    ({"epoch_curves": {"series": {"a": {"epochs": [1, 2], "values": [0.1]}}}}, "2 epochs but 1"),
    ({"clip": {"video": "a.mp4", "labels": "happy", "description": "d"}}, "list of strings"),
    ({"timings": {"name": "x"}}, "expected a list"),
])
def test_report_schema_errors_name_the_problem(tmp_path, bad, message):
    with pytest.raises(ReportSchemaError, match=re.escape(message)):
        write_report(tmp_path, bad)
    assert not (tmp_path / "report.html").exists()


def test_report_missing_and_outside_files(tmp_path, corrupt_clip):
    outside = tmp_path / "elsewhere"
    plot_loss([1, 2, 3], [3.0, 2.0, 1.5], outside / "loss.png")
    run_dir = tmp_path / "run"
    results = {
        "figures": [str(outside / "loss.png"), {"path": "stage1/absent.png", "title": "absent"}],
        "clip": {"video": str(corrupt_clip), "description": "d", "labels": []},
    }
    html_path, md_path = write_report(run_dir, results)
    copied = run_dir / "report_files" / "figures" / "loss.png"
    assert copied.read_bytes() == (outside / "loss.png").read_bytes()
    page = html_path.read_text()
    assert 'src="report_files/figures/loss.png"' in page
    assert "missing file: stage1/absent.png" in page
    assert "frames not available" in page and "broken.mp4" in page
    assert not (run_dir / "report_files" / "clip_frames.jpg").exists()
    assert "missing file: stage1/absent.png" in md_path.read_text()


@pytest.mark.browser
def test_report_renders_in_chromium(tmp_path, clips, page):
    results = realistic_results(tmp_path, clips[0])
    html_path, _ = write_report(tmp_path, results)
    page.goto(html_path.as_uri())
    page.wait_for_load_state("load")
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000

    table = page.inner_text("table.results")
    for expected in ("untrained", "text only", "stage 2 only", "stage 1 + stage 2", "Accuracy_s",
                     "Recall_s", "Avg", "55.00±0.90", "29.00", "31.50"):
        assert expected in table, expected
    assert "71.00" in page.inner_text("table.ablation")
    assert page.inner_text("blockquote.description") == clips[0].description_en
    images = page.evaluate("""() => Array.from(document.images).map(
        i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}))""")
    assert len(images) == 6
    assert all(image["ok"] for image in images), images
    # the frame strip holds 8 frames side by side
    strip = page.evaluate("""() => { const i = document.querySelector('figure.strip img');
        return [i.naturalWidth, i.naturalHeight]; }""")
    assert strip[0] > 7 * strip[1]
