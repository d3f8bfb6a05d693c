"""The zero-shot describer on synthetic clips whose emotion cue lives in one modality.

Makes two synthetic corpora with different seeds -- a *validation* set (cues video, audio,
text) on which the fusion weights are chosen, and a *test* set (cues video, audio, text,
all) on which everything is reported -- and describes every clip from its media only (the
subtitle is not given: the speech is transcribed). Reports, per cue, the 2024 set metric's
Avg (lexical grouping, x100) of:

- ``subtitle lexicon``: the offline lexicon's labels of the gold subtitle (the baseline);
- ``face only``, ``text only``, ``prosody only``: each clue's top label alone;
- ``fused (default)``: the weights in :data:`affectgpt.clues.fusion.DEFAULT_WEIGHTS`;
- ``fused (selected)``: the weights this run selected on the validation clips;
- ``merge (LLM description)``: the labels the offline lexicon reads in the merge LLM's
  description (what the LLM alone would have said) and ``zero-shot describe``: the
  describer's final labels with the selected weights (both on ``--merge-clips`` test
  clips, balanced over the cues: compare them with the other rows on the same clips in
  the JSON, not with the full-set means);
- optionally ``trained model`` (``--model DIR``): a trained AffectGPT on the same clips.

and the time per clip of each step (decode, ASR, faces, clues, merge) with the CPU model.

    python benchmarks/bench_describe.py                        # ~5 min on 2 CPU cores
    python benchmarks/bench_describe.py --val 2 --test 2 --merge-clips 8
    python benchmarks/bench_describe.py --llm-base-url http://127.0.0.1:8000/v1 --llm-model M
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from affectgpt.machine import cpu_info


def make_clips(root: Path, per_cue: int, cues: tuple[str, ...], seed: int, prefix: str):
    from affectgpt.data.synthetic import DEFAULT_EMOTIONS, make_synthetic

    samples = []
    for cue in cues:
        samples += make_synthetic(root / cue, per_cue * len(DEFAULT_EMOTIONS), cue=cue,
                                  seed=seed, duration=(3.0, 5.0), size=224, fps=10,
                                  prefix=f"{prefix}{cue}_", workers=1, progress=False)
    return samples


TEN_SECONDS = ("I waited for you for two hours at the station, and you never called. "
               "Do you know how that feels? I am so tired of your excuses. "
               "Every single time you promise, and every single time you forget.")


def ten_second_clip(path: Path) -> Path:
    """A ~10 s clip: a real photograph (scikit-image's astronaut) with a slow zoom and
    espeak-ng speech throughout."""
    from PIL import Image
    from skimage import data

    from affectgpt.data.speech import prosody_params, synthesize
    from affectgpt.data.synthetic.mp4 import write_mp4

    speaker = {"voice": "en-us+m3", "pitch": 50, "speed": 160, "amplitude": 100, "gap": 0}
    audio, rate = synthesize(TEN_SECONDS, prosody_params(speaker, "angry"))
    seconds, fps, size = max(10.0, len(audio) / rate + 0.2), 10, 320
    base = Image.fromarray(data.astronaut()).resize((size, size), Image.BICUBIC)
    frames = [base.resize((size, size), Image.BICUBIC,
                          box=(i * 0.4, i * 0.4, size - i * 0.4, size - i * 0.4))
              for i in range(int(seconds * fps))]
    audio = audio[: int(seconds * rate)]
    write_mp4(path, frames, audio, rate, size=size, fps=fps)
    return path


def time_ten_second_clip(work: Path, llm) -> dict:
    """Describe the 10 s clip twice with fresh models and caches: the first call loads every
    model (first use), the second is the steady state."""
    from affectgpt.encoders.asr import TranscriptCache
    from affectgpt.inference import ZeroShotDescriber
    from affectgpt.media import probe

    path = ten_second_clip(work / "ten_seconds.mp4")
    describer = ZeroShotDescriber(llm, transcript_cache=TranscriptCache(
        tempfile.mkdtemp(prefix="bench-describe-ten-")))
    first = describer.describe(path)
    describer._transcript_cache = TranscriptCache(tempfile.mkdtemp(prefix="bench-describe-ten-"))
    again = describer.describe(path)
    return {"duration": probe(path).duration, "first_call": first.seconds,
            "steady": again.seconds, "steps": again.extra["timings"],
            "labels": again.labels, "description": again.description,
            "transcript": again.subtitle}


def read_clips(describer, samples):
    """Clue readings of every clip (no LLM) and the time of each step."""
    from affectgpt.clues.fusion import FusionWeights

    rows = []
    describer_llm, describer.llm_spec = describer.llm_spec, False
    weights = describer.weights
    describer.weights = FusionWeights()
    try:
        for sample in samples:
            result = describer.describe(sample.video)
            rows.append({"sample": sample, "result": result})
    finally:
        describer.llm_spec, describer.weights = describer_llm, weights
    return rows


def readings_of(result):
    from affectgpt.clues.labels import ClueReading

    return [ClueReading(**{k: v for k, v in c.items()}) for c in result.extra["clues"].values()]


class Scorer:
    """Per-clip set-metric Avg with the lexical grouping, computed once over the gold labels
    and every label any system predicts."""

    def __init__(self, gold: dict[str, list[str]], predictions: dict[str, list[str]]):
        from affectgpt.eval.grouping import synonym_map
        from affectgpt.eval.lexical import lexical_groupings

        self.maps = {n: synonym_map(g) for n, g in lexical_groupings(gold, predictions).items()}
        self.gold = gold

    def __call__(self, name: str, labels) -> float:
        from affectgpt.eval.set_metric import score_sample

        acc, rec, _, _ = score_sample(self.gold[name], list(labels), self.maps[name])
        return (acc + rec) / 2


def table(rows, systems, cues) -> str:
    lines = ["| system | " + " | ".join(f"cue {c}" for c in cues) + " | mean |",
             "|---|" + "---:|" * (len(cues) + 1)]
    for system in systems:
        cells, values = [], []
        for cue in cues:
            scores = [r["scores"][system] for r in rows
                      if r["cue"] == cue and system in r["scores"]]
            cells.append(f"{100 * statistics.mean(scores):.1f}" if scores else "-")
            values += scores
        mean = f"{100 * statistics.mean(values):.1f}" if values else "-"
        lines.append(f"| {system} | " + " | ".join(cells) + f" | {mean} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--val", type=int, default=1, help="validation clips per emotion and cue")
    parser.add_argument("--test", type=int, default=1, help="test clips per emotion and cue")
    parser.add_argument("--merge-clips", type=int, default=4,
                        help="test clips also merged by the LLM (timing, LLM-alone labels)")
    parser.add_argument("--llm-base-url", help="an OpenAI-compatible server for the merge")
    parser.add_argument("--llm-model", default="default")
    parser.add_argument("--model", help="also score a trained AffectGPT model folder")
    parser.add_argument("--work", help="folder for the clips (default: a temporary one)")
    parser.add_argument("--json", help="write every number here")
    parser.add_argument("--ten-second-only", action="store_true",
                        help="only time the description of one 10 s clip")
    args = parser.parse_args()

    from affectgpt.clues.fusion import DEFAULT_WEIGHTS, fuse, select_weights
    from affectgpt.clues.labels import EMOTIONS
    from affectgpt.eval.lexicon import LexiconExtractor
    from affectgpt.inference import ZeroShotDescriber

    print(f"CPU: {cpu_info()['cpu']} ({__import__('os').cpu_count()} logical cores)")
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-describe-"))
    work.mkdir(parents=True, exist_ok=True)
    llm = None
    if args.llm_base_url:
        from affectgpt.llm.endpoint import ChatEndpoint

        llm = ChatEndpoint(base_url=args.llm_base_url, model=args.llm_model, api_key_env=None)
    ten = time_ten_second_clip(work, llm)
    print(f"a {ten['duration']:.1f} s clip (photo + speech): {ten['steady']:.1f} s "
          f"(first call, loading the models: {ten['first_call']:.1f} s); steps: "
          + ", ".join(f"{k} {v:.2f}" for k, v in ten["steps"].items())
          + f"; labels {ten['labels']}")
    print(f"  transcript: {ten['transcript']}\n  description: {ten['description']}")
    if args.ten_second_only:
        return 0
    started = time.perf_counter()
    val = make_clips(work / "val", args.val, ("video", "audio", "text"), 101, "val_")
    test = make_clips(work / "test", args.test, ("video", "audio", "text", "all"), 202, "test_")
    print(f"clips: {len(val)} validation, {len(test)} test ({time.perf_counter() - started:.0f} s"
          f" to make) in {work}")

    from affectgpt.encoders.asr import TranscriptCache

    # a fresh transcript cache: the ASR time is measured, not read back
    describer = ZeroShotDescriber(llm, transcript_cache=TranscriptCache(
        tempfile.mkdtemp(prefix="bench-describe-transcripts-")))
    val_rows = read_clips(describer, val)
    test_rows = read_clips(describer, test)
    lexicon = LexiconExtractor()
    val_scorer = Scorer({r["sample"].name: list(r["sample"].labels) for r in val_rows},
                        {r["sample"].name: list(EMOTIONS) for r in val_rows})
    clips = [{"readings": readings_of(r["result"]), "labels": r["sample"].name}
             for r in val_rows]
    free, free_grid = select_weights(clips, lambda pred, name: val_scorer(name, pred))
    print(f"unconstrained choice on validation: {free.to_dict()} "
          f"(val Avg {100 * max(g['score'] for g in free_grid):.1f})")
    # The synthetic faces are drawn; the face CNN was trained on photographs of faces, and
    # drawn faces would teach the fusion to ignore it on real footage: its weight is kept
    # at 0.5 or more, the rest is chosen on the validation clips.
    grid_spec = {"face": (0.5, 1.0), "text": (0.25, 0.5, 1.0, 2.0),
                 "prosody": (0.0, 0.25, 0.5, 1.0), "neutral_scale": (0.3, 0.5, 0.7, 1.0),
                 "second_ratio": (0.7, 0.85, 1.01)}
    selected, grid = select_weights(clips, lambda pred, name: val_scorer(name, pred), grid_spec)
    default_val = statistics.mean(val_scorer(c["labels"], fuse(c["readings"], DEFAULT_WEIGHTS).labels)
                                  for c in clips)
    print(f"selected on validation (face >= 0.5): {selected.to_dict()} (val Avg "
          f"{100 * max(g['score'] for g in grid):.1f}; default weights {100 * default_val:.1f})")

    rows = []
    for r in test_rows:
        sample, result = r["sample"], r["result"]
        readings = {x.modality: x for x in readings_of(result)}

        def top(m, readings=readings):
            return [readings[m].top] if readings[m].available else []

        preds = {"subtitle lexicon": lexicon.extract(sample.subtitle_en),
                 "face only": top("face"), "text only": top("text"),
                 "prosody only": top("prosody"),
                 "fused (default)": fuse(readings.values(), DEFAULT_WEIGHTS).labels,
                 "fused (selected)": fuse(readings.values(), selected).labels}
        rows.append({"name": sample.name, "cue": sample.extra.get("synthetic", {}).get("cue"), "preds": preds,
                     "gold": list(sample.labels), "timings": result.extra["timings"],
                     "transcript": result.subtitle, "subtitle": sample.subtitle_en})

    # the LLM merge on a few test clips (balanced over cues): timing, LLM-alone labels
    merged_timings = []
    by_cue: dict[str, list] = {}
    for r, row in zip(test_rows, rows):
        by_cue.setdefault(row["cue"], []).append((r, row))
    chosen = []
    while len(chosen) < min(args.merge_clips, len(rows)):
        for cue in list(by_cue):
            if by_cue[cue] and len(chosen) < args.merge_clips:
                chosen.append(by_cue[cue].pop(0))
    describer.weights = selected  # the merged clips use the weights chosen on validation
    for r, row in chosen:
        result = describer.describe(r["sample"].video)
        said = result.extra["merge"]["llm_labels"] or lexicon.extract(result.description)
        row["preds"]["merge (LLM description)"] = said
        row["preds"]["zero-shot describe (final labels)"] = list(result.labels)
        row["description"] = result.description
        merged_timings.append({**result.extra["timings"], "total": result.seconds})

    if args.model:
        from affectgpt.inference import Describer

        trained = Describer.from_pretrained(args.model)
        for r, row in zip(test_rows, rows):
            out = trained.describe(r["sample"].video, r["result"].subtitle)
            row["preds"]["trained model"] = list(out.labels)

    union = {row["name"]: [lab for labels in row["preds"].values() for lab in labels]
             for row in rows}
    scorer = Scorer({row["name"]: row["gold"] for row in rows}, union)
    for row in rows:
        row["scores"] = {k: scorer(row["name"], v) for k, v in row["preds"].items()}

    cues = ("video", "audio", "text", "all")
    systems = ["subtitle lexicon", "face only", "text only", "prosody only", "fused (default)",
               "fused (selected)", "merge (LLM description)", "zero-shot describe (final labels)"]
    if args.model:
        systems.append("trained model")
    print(f"\nTest clips ({len(rows)}; set-metric Avg x100, lexical grouping; the merge rows "
          f"on {len(chosen)} clips):")
    print(table(rows, systems, cues))
    steps = ("decode", "asr", "faces", "clues")
    print("\nSeconds per clip (mean over the test clips, clues only):",
          ", ".join(f"{s} {statistics.mean(r['timings'].get(s, 0) for r in rows):.2f}"
                    for s in steps))
    if merged_timings:
        print("Seconds per clip with the merge (mean over the merged clips):",
              ", ".join(f"{s} {statistics.mean(t.get(s, 0) for t in merged_timings):.2f}"
                        for s in (*steps, "merge", "total")))
    asr_ok = sum(1 for r in rows if r["transcript"].strip())
    print(f"transcripts: {asr_ok}/{len(rows)} clips had speech transcribed")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"cpu": cpu_info()["cpu"], "ten_second_clip": ten, "selected": selected.to_dict(), "unconstrained": free.to_dict(),
             "val_readings": [{"name": r["sample"].name, "gold": list(r["sample"].labels),
                               "clues": r["result"].extra["clues"]} for r in val_rows],
             "rows": rows,
             "merged_timings": merged_timings,
             "grid_top": sorted(grid, key=lambda g: -g["score"])[:10]}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
