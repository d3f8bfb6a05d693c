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
    python benchmarks/bench_describe.py --val 2 --test 2 --merge-clips 8 \
        --model runs/demo-<time>/model --out benchmarks/results/describe-cpu.json
    python benchmarks/bench_describe.py --llm-base-url http://127.0.0.1:8000/v1 --llm-model M
    python benchmarks/bench_describe.py --emotions happy,sad --merge-clips 2 --out /tmp/d.json
                                                               # a smoke run (~1 min)

``--out FILE`` writes the results (schema :data:`RESULTS_SCHEMA`): the machine, the
settings, per system the Avg per cue over the test clips (fractions; ``summary``), the
same on the merged clips (``merged_summary``), the mean seconds per step per clip, the
10 s clip's timing, the selected weights and every test clip's predictions;
``scripts/readme_describe_table.py`` renders the README's describe block from it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from affectgpt.machine import cpu_info

#: bump when the results file changes shape
RESULTS_SCHEMA = 1
CUES = ("video", "audio", "text", "all")
#: systems scored on every test clip, and those scored on the merged clips only
CLUE_SYSTEMS = ("subtitle lexicon", "face only", "text only", "prosody only", "fused (default)",
                "fused (selected)")
MERGE_SYSTEMS = ("merge (LLM description)", "zero-shot describe (final labels)")
TRAINED = "trained model"
STEPS = ("decode", "asr", "faces", "clues")


def make_clips(root: Path, per_cue: int, cues: tuple[str, ...], seed: int, prefix: str,
               emotions: tuple[str, ...] | None = None):
    from affectgpt.data.synthetic import DEFAULT_EMOTIONS, make_synthetic

    emotions = emotions or DEFAULT_EMOTIONS
    samples = []
    for cue in cues:
        samples += make_synthetic(root / cue, per_cue * len(emotions), cue=cue,
                                  emotions=emotions, seed=seed, duration=(3.0, 5.0), size=224,
                                  fps=10, prefix=f"{prefix}{cue}_", workers=1, progress=False)
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
        tempfile.mkdtemp(prefix="transcripts-", dir=work)))
    first = describer.describe(path)
    describer._transcript_cache = TranscriptCache(tempfile.mkdtemp(prefix="transcripts-", dir=work))
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


def cue_scores(rows, system: str, cues=CUES) -> dict:
    """Avg (a fraction) of ``system`` per cue and over all the ``rows`` that scored it:
    ``{"cues": {cue: {"avg", "clips"}}, "avg", "clips"}``."""
    per_cue, values = {}, []
    for cue in cues:
        scores = [r["scores"][system] for r in rows if r["cue"] == cue and system in r["scores"]]
        if scores:
            per_cue[cue] = {"avg": round(statistics.mean(scores), 6), "clips": len(scores)}
        values += scores
    return {"cues": per_cue, "avg": round(statistics.mean(values), 6) if values else None,
            "clips": len(values)}


def summarise(rows, systems, cues=CUES) -> dict[str, dict]:
    """:func:`cue_scores` of each of ``systems`` that scored at least one of ``rows``."""
    return {s: cue_scores(rows, s, cues) for s in systems
            if any(s in r["scores"] for r in rows)}


def mean_steps(timings, steps) -> dict[str, float]:
    """Mean seconds per clip of each of ``steps`` over ``timings`` (one dict per clip)."""
    return {s: round(statistics.mean(t.get(s, 0.0) for t in timings), 3) for s in steps} \
        if timings else {}


def machine() -> dict:
    """The CPU (model, vector extensions, usable cores), logical cores and load average."""
    return {**cpu_info(), "logical_cores": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()]
            if hasattr(os, "getloadavg") else None}


def write_results(path: str | Path, results: dict) -> Path:
    """``results`` as JSON at ``path`` (atomically; its folder is made)."""
    from affectgpt.io import write_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_json(path, results, indent=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--val", type=int, default=1, help="validation clips per emotion and cue")
    parser.add_argument("--test", type=int, default=1, help="test clips per emotion and cue")
    parser.add_argument("--merge-clips", type=int, default=4,
                        help="test clips also merged by the LLM (timing, LLM-alone labels)")
    parser.add_argument("--llm-base-url", help="an OpenAI-compatible server for the merge")
    parser.add_argument("--llm-model", default="default")
    parser.add_argument("--model", help="also score a trained AffectGPT model folder")
    parser.add_argument("--work", help="folder for the clips (default: a temporary one)")
    parser.add_argument("--emotions",
                        help="comma-separated emotions of the synthetic clips (default: all "
                             "seven; two make a quick smoke run)")
    parser.add_argument("--out", "--json", dest="out",
                        help="write the results here (e.g. benchmarks/results/describe-cpu.json)")
    parser.add_argument("--ten-second-only", action="store_true",
                        help="only time the description of one 10 s clip")
    args = parser.parse_args(argv)
    emotions = tuple(e.strip() for e in args.emotions.split(",") if e.strip()) \
        if args.emotions else None

    from affectgpt.clues.fusion import DEFAULT_WEIGHTS, fuse, select_weights
    from affectgpt.clues.labels import EMOTIONS
    from affectgpt.eval.lexicon import LexiconExtractor
    from affectgpt.inference import ZeroShotDescriber

    wall = time.perf_counter()
    results = {"benchmark": "describe", "schema": RESULTS_SCHEMA, "complete": False,
               "date": time.strftime("%Y-%m-%d"), "machine": machine(),
               "settings": {"val_per_emotion_and_cue": args.val,
                            "test_per_emotion_and_cue": args.test,
                            "merge_clips": args.merge_clips, "emotions": list(emotions or []),
                            "llm": ({"base_url": args.llm_base_url, "model": args.llm_model}
                                    if args.llm_base_url
                                    else "packaged SmolLM2-135M-Instruct, local"),
                            "model": args.model, "grouping": "lexical",
                            "metric": "2024 set metric Avg"}}
    print(f"CPU: {results['machine']['cpu']} ({os.cpu_count()} logical cores)")
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
    results["ten_second_clip"] = ten
    if args.ten_second_only:
        if args.out:
            write_results(args.out, results)
        return 0
    started = time.perf_counter()
    val = make_clips(work / "val", args.val, ("video", "audio", "text"), 101, "val_", emotions)
    test = make_clips(work / "test", args.test, CUES, 202, "test_", emotions)
    print(f"clips: {len(val)} validation, {len(test)} test ({time.perf_counter() - started:.0f} s"
          f" to make) in {work}")

    from affectgpt.encoders.asr import TranscriptCache

    # a fresh transcript cache: the ASR time is measured, not read back
    describer = ZeroShotDescriber(llm, transcript_cache=TranscriptCache(
        tempfile.mkdtemp(prefix="transcripts-", dir=work)))
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
    # a fresh transcript cache: the merged clips' time per clip includes their ASR
    describer._transcript_cache = TranscriptCache(tempfile.mkdtemp(prefix="transcripts-", dir=work))
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
            row["preds"][TRAINED] = list(out.labels)
            row["trained_seconds"] = out.seconds

    union = {row["name"]: [lab for labels in row["preds"].values() for lab in labels]
             for row in rows}
    scorer = Scorer({row["name"]: row["gold"] for row in rows}, union)
    for row in rows:
        row["scores"] = {k: scorer(row["name"], v) for k, v in row["preds"].items()}

    cues = CUES
    systems = [*CLUE_SYSTEMS, *MERGE_SYSTEMS] + ([TRAINED] if args.model else [])
    print(f"\nTest clips ({len(rows)}; set-metric Avg x100, lexical grouping; the merge rows "
          f"on {len(chosen)} clips):")
    print(table(rows, systems, cues))
    steps = STEPS
    print("\nSeconds per clip (mean over the test clips, clues only):",
          ", ".join(f"{s} {statistics.mean(r['timings'].get(s, 0) for r in rows):.2f}"
                    for s in steps))
    if merged_timings:
        print("Seconds per clip with the merge (mean over the merged clips):",
              ", ".join(f"{s} {statistics.mean(t.get(s, 0) for t in merged_timings):.2f}"
                        for s in (*steps, "merge", "total")))
    asr_ok = sum(1 for r in rows if r["transcript"].strip())
    print(f"transcripts: {asr_ok}/{len(rows)} clips had speech transcribed")
    merged_names = {row["name"] for _, row in chosen}
    results.update(
        complete=True,
        clips={"validation": len(val), "test": len(rows), "merged": len(chosen),
               "test_per_cue": {c: sum(r["cue"] == c for r in rows) for c in cues}},
        systems=systems,
        summary=summarise(rows, [*CLUE_SYSTEMS, *([TRAINED] if args.model else [])], cues),
        merged_summary=summarise([r for r in rows if r["name"] in merged_names], systems, cues),
        seconds_per_clip={
            "clues": mean_steps([r["timings"] for r in rows], steps),
            "merged": mean_steps(merged_timings, (*steps, "merge", "total")),
            "trained_model": round(statistics.mean(r["trained_seconds"] for r in rows), 3)
            if args.model else None},
        transcribed=asr_ok,
        selected=selected.to_dict(), unconstrained=free.to_dict(),
        default_weights=DEFAULT_WEIGHTS.to_dict(),
        rows=rows, merged_timings=merged_timings,
        grid_top=sorted(grid, key=lambda g: -g["score"])[:10],
        val_readings=[{"name": r["sample"].name, "gold": list(r["sample"].labels),
                       "clues": r["result"].extra["clues"]} for r in val_rows],
        wall_seconds=round(time.perf_counter() - wall, 1))
    if args.out:
        print(f"results -> {write_results(args.out, results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
