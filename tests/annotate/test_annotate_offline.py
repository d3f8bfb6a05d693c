"""Annotation pipeline without a model server: the store, configuration, capability checks,
shards, recorded/lexicon/packaged back-ends, export and the CLI."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
from annotate_helpers import SUBTITLES, recorded_overrides, samples_of

from affectgpt.annotate import (
    AnnotateConfigError,
    JsonlStore,
    StoreError,
    apply_overrides,
    default_config,
    export_dataset,
    load_config,
    parse_shard,
    run_annotation,
    run_status,
    shard_of,
)
from affectgpt.annotate.config import AnnotateConfig
from affectgpt.annotate.store import read_rows, stage_files
from affectgpt.cli import main
from affectgpt.data.manifest import read_manifest

# ---------------------------------------------------------------------- store


def test_torn_last_line_is_cut_and_appends_continue(tmp_path):
    path = tmp_path / "merge.jsonl"
    with JsonlStore(path) as store:
        assert store.append({"stage": "merge", "name": "a", "output": {"x": 1}})
        assert store.append({"stage": "merge", "name": "b", "output": {"x": 2}})
        assert not store.append({"stage": "merge", "name": "a", "output": {"x": 3}})
    whole = path.read_bytes()
    with open(path, "ab") as fh:  # what kill -9 in the middle of a write leaves
        fh.write(b'{"stage": "merge", "name": "c", "outp')
    with JsonlStore(path) as store:
        assert store.dropped_bytes == len(b'{"stage": "merge", "name": "c", "outp')
        assert path.read_bytes() == whole
        assert store.keys == {"a", "b"}
        assert store.append({"stage": "merge", "name": "c", "output": {"x": 4}})
    rows, _ = read_rows(path)
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    assert [r["output"]["x"] for r in rows] == [1, 2, 4]


def test_a_complete_but_invalid_last_line_is_cut_and_a_bad_middle_line_is_an_error(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"name": "a"}\n{"name": "b", \n', encoding="utf-8")
    with JsonlStore(path) as store:
        assert store.keys == {"a"}
    assert path.read_text(encoding="utf-8") == '{"name": "a"}\n'
    path.write_text('{"name": "a"}\nnot json\n{"name": "b"}\n', encoding="utf-8")
    with pytest.raises(StoreError, match="corrupt row"):
        JsonlStore(path)


def test_a_second_writer_of_one_file_is_refused(tmp_path):
    path = tmp_path / "merge.jsonl"
    with JsonlStore(path):
        code = ("import sys\nfrom affectgpt.annotate.store import JsonlStore, StoreError\n"
                "try:\n    JsonlStore(sys.argv[1])\nexcept StoreError as e:\n"
                "    print(e); sys.exit(3)\n")
        proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 3, proc.stderr
        assert "another run" in proc.stdout


# ---------------------------------------------------------------------- configuration


def test_config_yaml_round_trip_and_overrides(tmp_path):
    cfg = apply_overrides(default_config(), [
        "merge.max_tokens=64", "audio-clue.backend=packaged", "video-clue.enabled=false",
        "*.temperature=0.2", "concurrency=8", "labels.extra={stop: ['###']}",
        "video-clue.accepts=text,image"])
    assert cfg.stages["merge"].max_tokens == 64 and cfg.concurrency == 8
    assert cfg.stages["video-clue"].accepts == ["text", "image"]
    assert all(cfg.stages[s].temperature == 0.2 for s in cfg.stages)
    assert cfg.stages["labels"].decoding()["stop"] == ["###"]
    path = tmp_path / "cfg.yaml"
    path.write_text(cfg.to_yaml(), encoding="utf-8")
    assert load_config(path).to_dict() == cfg.to_dict()


@pytest.mark.parametrize("override, message", [
    ("merge.max_token=3", "unknown setting merge.max_token"),
    ("mergee.model=x", "unknown stage 'mergee'"),
    ("merge.max_tokens=many", "must be an integer"),
    ("filter.backend=openai", "backend 'openai' not available"),
    ("audio-clue.backend=recorded", "needs audio-clue.recorded=FILE"),
    ("video-clue.accepts=text,smell", "unknown modalities"),
])
def test_bad_settings_name_the_stage_and_setting(override, message):
    with pytest.raises(AnnotateConfigError, match=message):
        apply_overrides(default_config(), [override])


def test_a_model_that_cannot_take_a_modality_stops_the_run_at_start_up(tmp_path, text_manifest):
    cfg = apply_overrides(default_config(), [
        "audio-clue.enabled=false", "video-clue.model=text-only-llm", "video-clue.accepts=text",
        "merge.backend=recorded", "merge.recorded=nowhere.csv"])
    with pytest.raises(AnnotateConfigError) as info:
        run_annotation(text_manifest, tmp_path / "out", cfg, progress=False)
    message = str(info.value)
    assert "video-clue" in message and "text-only-llm" in message and "sends video" in message
    assert not (tmp_path / "out" / "video-clue.jsonl").exists()  # nothing ran
    frames = apply_overrides(cfg, ["video-clue.video_mode=frames"])
    with pytest.raises(AnnotateConfigError, match="sends image"):
        run_annotation(text_manifest, tmp_path / "out", frames, progress=False)


# ---------------------------------------------------------------------- shards


def test_shards_partition_a_collection_stably():
    names = [f"sample_{i:05d}" for i in range(500)]
    parts = [[n for n in names if shard_of(n, 4) == k] for k in range(4)]
    assert sorted(sum(parts, [])) == names
    assert all(len(p) > 80 for p in parts)  # roughly balanced
    code = ("from affectgpt.annotate import shard_of\n"
            f"print([shard_of(n, 4) for n in {names[:50]!r}])")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": "123"}, timeout=60, check=True)
    assert json.loads(other.stdout) == [shard_of(n, 4) for n in names[:50]]
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "-1/2", "1", "a/b"):
        with pytest.raises(AnnotateConfigError):
            parse_shard(bad)


def _offline_cfg(tmp_path, recorded_clues) -> AnnotateConfig:
    merged = tmp_path / "recorded-merge.csv"
    with open(merged, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["name", "description"])
        for i, subtitle in enumerate(SUBTITLES):
            mood = ["angry", "happy and excited", "calm", "sad and tired", "worried", "grateful"][i]
            writer.writerow([f"clip_{i:03d}", f"He says '{subtitle}' and seems {mood}."])
    return apply_overrides(default_config(), [
        *recorded_overrides(recorded_clues), "merge.backend=recorded", f"merge.recorded={merged}",
        "merge.column=description", "translate.enabled=false", "labels.backend=lexicon"])


def test_sharded_runs_cover_the_collection_once_and_export_together(tmp_path, text_manifest,
                                                                     recorded_clues):
    cfg = _offline_cfg(tmp_path, recorded_clues)
    out = tmp_path / "out"
    for k in range(3):
        run_annotation(text_manifest, out, cfg, shard=(k, 3), progress=False)
    names = samples_of(text_manifest)
    for stage in ("audio-clue", "video-clue", "merge", "labels", "filter"):
        files = stage_files(out, stage)
        assert [f.name for f in files] == [f"{stage}.{k}-of-3.jsonl" for k in range(3)]
        rows = [r["name"] for f in files for r in read_rows(f)[0]]
        assert sorted(rows) == sorted(names)  # every sample once, in its own shard's file
    # a rerun with another shard count finds everything done
    summary = run_annotation(text_manifest, out, cfg, progress=False)
    assert all(s.done == 0 and s.done_before == len(names) for s in summary.stages)
    assert run_status(out)["merge"] == {"rows": len(names), "open_failures": 0}

    result = export_dataset(out, manifest_out=tmp_path / "coarse.jsonl", csv_out=tmp_path / "c.csv")
    filters = {r["name"]: r["output"] for f in stage_files(out, "filter") for r in read_rows(f)[0]}
    kept = [n for n in names if filters[n]["keep"]]
    assert result.exported == len(kept) and kept
    exported = read_manifest(tmp_path / "coarse.jsonl")
    assert [s.name for s in exported] == kept
    labels = {r["name"]: r["output"]["labels"] for f in stage_files(out, "labels")
              for r in read_rows(f)[0]}
    for sample in exported:
        assert sample.description_en.startswith("He says")
        assert sample.labels == labels[sample.name] and sample.labels
        assert sample.extra["annotate"]["audio_clue"] and sample.source == "emer-coarse-annotate"
    with open(tmp_path / "c.csv", encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == ["name", "english", "chinese", "openset"]
    assert [r["name"] for r in table] == kept


def test_filter_drops_contradicting_clues_and_empty_labels(tmp_path, text_manifest, recorded_clues):
    out = tmp_path / "out"
    run_annotation(text_manifest, out, _offline_cfg(tmp_path, recorded_clues), progress=False)
    rows = {r["name"]: r["output"] for r in read_rows(out / "filter.jsonl")[0]}
    labels = {r["name"]: r["output"]["labels"] for r in read_rows(out / "labels.jsonl")[0]}
    for name, verdict in rows.items():
        assert verdict["keep"] == (not verdict["reasons"])
        assert ("no labels" in verdict["reasons"]) == (not labels[name])
        contradiction = verdict["audio_valence"] * verdict["video_valence"] < 0
        assert contradiction == any("contradict" in r for r in verdict["reasons"])


# ---------------------------------------------------------------------- packaged clue models


def test_packaged_clue_models_describe_real_clips(tmp_path, clips):
    cfg = apply_overrides(default_config(), [
        "audio-clue.backend=packaged", "video-clue.backend=packaged", "merge.enabled=false",
        "translate.enabled=false", "labels.enabled=false", "filter.enabled=false"])
    out = tmp_path / "out"
    summary = run_annotation(clips, out, cfg, progress=False)
    assert [(s.stage, s.done, s.failed) for s in summary.stages] == [
        ("audio-clue", 3, 0), ("video-clue", 3, 0)]
    for row in read_rows(out / "audio-clue.jsonl")[0]:
        measured = row["output"]["measured"]
        assert measured["speech_seconds"] > 0.5 and measured["pitch_hz"] > 60
        assert row["output"]["clue"].startswith("Acoustic measurement:")
        assert f"{measured['pitch_hz']:.0f} Hz" in row["output"]["clue"]
    from affectgpt.clues.labels import FER_TO_EMOTION

    for row in read_rows(out / "video-clue.jsonl")[0]:
        measured = row["output"]["measured"]
        if not measured["has_face"]:  # said, not guessed
            assert row["output"]["clue"].startswith("No face is visible")
            continue
        probs = measured["mean_probs"]
        assert abs(sum(probs.values()) - 1) < 1e-3
        assert FER_TO_EMOTION[max(probs, key=probs.get)] in row["output"]["clue"]
        assert row["provenance"]["backend"]["weights"]["sha256"]


# ---------------------------------------------------------------------- CLI


def test_cli_help_explains_every_subcommand(capsys):
    for argv in (["annotate", "--help"], ["annotate", "run", "--help"],
                 ["annotate", "retry-failed", "--help"], ["annotate", "export", "--help"],
                 ["annotate", "status", "--help"], ["annotate", "config", "--help"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--shard", "--stages", "--retry-failed", "--set", "--csv", "--allow-missing"):
        assert option in text


def test_cli_runs_offline_and_reports_config_errors(tmp_path, text_manifest, recorded_clues, capsys):
    cfg = _offline_cfg(tmp_path, recorded_clues)
    config = tmp_path / "cfg.yaml"
    config.write_text(cfg.to_yaml(), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["annotate", "run", "--manifest", str(text_manifest), "--out", str(out),
                 "--config", str(config), "--no-progress"]) == 0
    assert "total:" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["done"] == 5 * len(SUBTITLES)
    assert main(["annotate", "status", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["labels"]["rows"] == len(SUBTITLES)
    assert main(["annotate", "export", "--out", str(out), "--csv", str(tmp_path / "e.csv")]) == 0
    assert main(["annotate", "run", "--manifest", str(text_manifest), "--out", str(out),
                 "--config", str(config), "--set", "merge.temperature=hot"]) == 2
    assert "merge.temperature must be a number" in capsys.readouterr().err
    assert main(["annotate", "config", "--set", "merge.max_tokens=77"]) == 0
    assert "max_tokens: 77" in capsys.readouterr().out


@pytest.mark.parametrize("target, source, reply, error", [
    ("zh", "The man is angry and shouts at his friend.", "这个男人很生气，对他的朋友大喊。", None),
    ("zh", "Tom is happy.", "Tom 很高兴。", None),  # a name may stay in Latin letters
    ("zh", "The man is angry and shouts at his friend.",
     "The man is angry (生气) and shouts at his friend.", "mostly Latin letters"),
    ("zh", "The man is angry.", "The man is angry.", "too few Chinese"),
    ("en", "这个男人很生气。", "The man is very angry.", None),
    ("en", "这个男人很生气。", "这个男人很生气。", "not an English translation"),
    ("en", "The man is angry.", "The man is angry.", "repeats the text"),
])
def test_translation_validator(target, source, reply, error):
    from affectgpt.annotate.stages import validate_translation

    check = validate_translation(target, source)
    if error is None:
        assert check(reply) == reply
    else:
        with pytest.raises(ValueError, match=error):
            check(reply)


def test_every_run_is_recorded_in_runs_jsonl(tmp_path, text_manifest, recorded_clues):
    cfg = _offline_cfg(tmp_path, recorded_clues)
    out = tmp_path / "out"
    run_annotation(text_manifest, out, cfg, stages=["audio-clue", "video-clue"], progress=False)
    later = apply_overrides(cfg, ["filter.min_words=2"])
    run_annotation(text_manifest, out, later, progress=False)
    history = read_rows(out / "runs.jsonl")[0]
    assert [r["stages_run"] for r in history] == [
        ["audio-clue", "video-clue"], ["audio-clue", "video-clue", "merge", "labels", "filter"]]
    assert [r["config"]["stages"]["filter"]["min_words"] for r in history] == [
        cfg.stages["filter"].min_words, 2]
    assert json.loads((out / "run.json").read_text()) == history[-1]
