"""Annotation throughput at concurrency 1 and 4 against one OpenAI-compatible server.

Runs the ``merge`` stage (the disambiguation LLM call; clues come from a recorded file)
over N samples twice -- at concurrency 1 and at concurrency 4 -- each into a fresh output
folder with no reply cache, and prints samples/s and the ratio. By default it starts the
packaged SmolLM2-135M-Instruct behind ``affectgpt serve-llm`` on loopback (CPU), which
generates concurrent requests as one batch; ``--server transformers`` starts
``transformers serve`` instead (``--continuous-batching`` adds that flag);
``--base-url/--model`` measure any running server (e.g. vLLM on a GPU); ``--backend
transformers`` measures the in-process back-end (the same batching engine, no HTTP).
The default 128 reply tokens are short of a real merge reply (up to 512), so decoding,
which batching speeds up, weighs less here than in a real run.

    python benchmarks/bench_annotate.py --samples 8 --max-tokens 128 --repeats 3
    python benchmarks/bench_annotate.py --server transformers --continuous-batching
    python benchmarks/bench_annotate.py --backend transformers      # in-process, batched
    python benchmarks/bench_annotate.py --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-7B-Instruct
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

from affectgpt.annotate import apply_overrides, default_config, run_annotation
from affectgpt.data.manifest import Sample, write_manifest

SUBTITLES = [
    "I can't believe you did that again!", "We finally won the match, this is amazing.",
    "The bus leaves at nine tomorrow morning.", "Please, just leave me alone for a while.",
    "Oh no, I think I lost my keys somewhere.", "Thank you so much, that means a lot to me.",
    "Why does nobody ever listen to what I say?", "I'm not sure this is a good idea.",
]
AUDIO = ["The voice is loud and sharp, fast and rising.", "The voice is bright, with laughter.",
         "The voice is even and calm.", "The voice is quiet and slow, with long pauses.",
         "The voice is tense and hurried.", "The voice is warm and soft, slightly trembling.",
         "The voice is raised and strained.", "The voice hesitates, with rising pitch."]
VIDEO = ["The person frowns and presses the lips together.", "The person smiles broadly.",
         "The face is relaxed; no clear expression.", "The person looks down, mouth turned down.",
         "The eyebrows are raised and the eyes wide.", "The person smiles with moist eyes.",
         "The person shakes the head and crosses the arms.", "The person bites the lip, gaze away."]


def make_inputs(folder: Path, n: int) -> tuple[Path, dict[str, Path]]:
    names = [f"bench_{i:04d}" for i in range(n)]
    manifest = folder / "manifest.jsonl"
    write_manifest([Sample(name=name, subtitle_en=SUBTITLES[i % len(SUBTITLES)])
                    for i, name in enumerate(names)], manifest)
    files = {}
    for stage, texts in (("audio-clue", AUDIO), ("video-clue", VIDEO)):
        files[stage] = folder / f"{stage}.csv"
        with open(files[stage], "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["name", "clue"])
            # a different clue pairing per sample so no two requests are the same
            writer.writerows((name, texts[(i * 3 + (stage == "video-clue")) % len(texts)])
                             for i, name in enumerate(names))
    return manifest, files


def measure(manifest: Path, files: dict[str, Path], out: Path, merge: list[str],
            concurrency: int, max_tokens: int, limit: int | None = None) -> dict:
    cfg = apply_overrides(default_config(), [
        *(f"{s}.backend=recorded" for s in files), *(f"{s}.recorded={p}" for s, p in files.items()),
        "translate.enabled=false", "labels.enabled=false", "filter.enabled=false", *merge,
        f"merge.max_tokens={max_tokens}", "merge.max_attempts=1", f"concurrency={concurrency}"])
    started = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        summary = run_annotation(manifest, out, cfg, limit=limit, progress=False, stream=quiet)
    seconds = time.perf_counter() - started
    merge = summary.stages[-1]
    return {"concurrency": concurrency, "samples": merge.done + merge.failed, "done": merge.done,
            "seconds": round(seconds, 2), "samples_per_s": round((merge.done + merge.failed) / seconds, 3),
            "completion_tokens": merge.completion_tokens,
            "tokens_per_s": round(merge.completion_tokens / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128,
                        help="reply tokens per request (default: %(default)s)")
    parser.add_argument("--base-url", help="a running OpenAI-compatible server (default: start "
                                           "the packaged SmolLM2 on loopback)")
    parser.add_argument("--model", help="model name for --base-url")
    parser.add_argument("--backend", choices=("openai", "transformers"), default="openai",
                        help="openai: a server (started or --base-url); transformers: the "
                             "packaged SmolLM2 in-process, concurrent requests batched")
    parser.add_argument("--server", choices=("affectgpt", "transformers"), default="affectgpt",
                        help="which server to start: `affectgpt serve-llm` (batches concurrent "
                             "requests) or `transformers serve` (default: %(default)s)")
    parser.add_argument("--continuous-batching", action="store_true",
                        help="with --server transformers: add --continuous-batching")
    parser.add_argument("--device", default="cpu", help="device of the started server")
    parser.add_argument("--repeats", type=int, default=1,
                        help="alternating repetitions of the pair; the median is reported")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.continuous_batching and args.server != "transformers":
        parser.error("--continuous-batching goes with --server transformers")

    server = None
    if args.backend == "transformers":
        from affectgpt.llm.server import export_smollm2

        merge = ["merge.backend=transformers", f"merge.model={export_smollm2()}"]
        where = f"in-process transformers back-end (batched), SmolLM2-135M-Instruct, {os.cpu_count()} CPUs"
    elif args.base_url:
        merge = [f"merge.base_url={args.base_url}", f"merge.model={args.model or ''}",
                 "merge.api_key_env="]
        where = f"server {args.base_url} ({args.model})"
    else:
        from affectgpt.llm.server import LocalModelServer, export_smollm2

        if args.server == "affectgpt":
            extra = ["--max-batch", "4"]
        else:
            extra = ["--continuous-batching"] if args.continuous_batching else []
        server = LocalModelServer(export_smollm2(), device=args.device, extra_args=extra,
                                  engine=args.server).start()
        merge = [f"merge.base_url={server.base_url}", f"merge.model={server.model}",
                 "merge.api_key_env="]
        where = (f"{server.engine} server, SmolLM2-135M-Instruct, {args.device}"
                 + (", --continuous-batching" if args.continuous_batching else "")
                 + f", {os.cpu_count()} CPUs")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            manifest, files = make_inputs(tmp, args.samples)
            # one untimed request first: the server's first call pays for warm-up
            measure(manifest, files, tmp / "warm", merge, 1, 2, limit=2)
            # alternate the two settings so a change of machine load hits both alike
            runs: dict[int, list[dict]] = {1: [], 4: []}
            for rep in range(args.repeats):
                for c in (1, 4):
                    runs[c].append(measure(manifest, files, tmp / f"c{c}-{rep}", merge, c,
                                           args.max_tokens))
            results = [sorted(runs[c], key=lambda r: r["samples_per_s"])[len(runs[c]) // 2]
                       for c in (1, 4)]
    finally:
        if server is not None:
            server.stop()
    ratio = results[1]["samples_per_s"] / results[0]["samples_per_s"]
    print(f"merge stage, {args.samples} samples, max_tokens {args.max_tokens}, median of "
          f"{args.repeats}; {where}")
    for r in results:
        print(f"  concurrency {r['concurrency']}: {r['samples_per_s']:.3f} samples/s "
              f"({r['seconds']:.1f} s, {r['done']} done, {r['tokens_per_s']} completion tokens/s)")
    print(f"  speed-up at concurrency 4: {ratio:.2f}x (goal: 3x)")
    if args.json:
        Path(args.json).write_text(json.dumps({"where": where, "results": results, "runs": runs,
                                               "ratio": round(ratio, 3)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
