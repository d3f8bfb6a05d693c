"""CPU cost of the demo's training step and test generation, with and without the
frozen-prefix key/value cache (:mod:`affectgpt.model.prefix`), per prompt order.

The `small` preset as the demo runs it (packaged SmolLM2-135M-Instruct, chat template,
8 video + 8 audio query tokens), random features of its shapes, the synthetic corpus's
subtitles and the demo's label-first targets. Measured in the same process, one after the
other, against the reference order without the cache (the baseline: what the demo did
before the cache):

- training: forward and backward of a batch of ``--batch-size`` clips (the demo's 4),
  over ``--epochs`` passes on ``--clips`` clips, so that the cache's first pass (where it
  computes every prefix) is counted;
- generation: ``--eval-clips`` clips in batches of ``--eval-batch`` (the demo's 32),
  greedy, ``--new-tokens`` new tokens (the demo's 14).

    python benchmarks/bench_prefix_cache.py [--clips 16] [--epochs 3]

Prints the CPU model and its vector extensions (machines of this kind differ up to ~3x)
and each configuration's seconds and ratio to the baseline.
"""

from __future__ import annotations

import argparse
import time

import torch

from affectgpt.data.synthetic import describe, plan_clip
from affectgpt.machine import machine_info
from affectgpt.model import AffectGPT, apply_overrides, load_preset
from affectgpt.model.prefix import PrefixCache

CONFIGS = (  # name, prompt order, cache
    ("reference order, no cache (baseline)", "reference", False),
    ("reference order, cache", "reference", True),
    ("text-first order, no cache", "text-first", False),
    ("text-first order, cache", "text-first", True),
)


def clips(n: int, model: AffectGPT) -> list[dict]:
    """``n`` demo-like samples: random features, synthetic subtitle, label-first target."""
    v, a = model.config.video, model.config.audio
    out = []
    for i in range(n):
        g = torch.Generator().manual_seed(i)
        plan = plan_clip(i, seed=0, cue=("audio", "video", "text", "all")[i % 4])
        labels = list(plan["labels"])
        joined = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
        conclusion = f"The person seems {joined}."
        clues = describe(plan, "coarse")[0].replace(conclusion, "").strip()
        out.append({"video": torch.randn(v.frames, v.tokens_per_frame, v.feature_dim, generator=g),
                    "audio": torch.randn(a.clips, a.feature_dim, generator=g),
                    "subtitle": plan["subtitle_en"], "target": f"{conclusion} {clues}"})
    return out


def batches(samples: list[dict], size: int, *, targets: bool):
    for start in range(0, len(samples), size):
        part = samples[start:start + size]
        batch = {"video": torch.stack([s["video"] for s in part]),
                 "audio": torch.stack([s["audio"] for s in part]),
                 "subtitle": [s["subtitle"] for s in part]}
        if targets:
            batch["target"] = [s["target"] for s in part]
        yield batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=16, help="training clips (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=3, help="training passes (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=4, help="(default: %(default)s)")
    ap.add_argument("--eval-clips", type=int, default=32, help="(default: %(default)s)")
    ap.add_argument("--eval-batch", type=int, default=32, help="(default: %(default)s)")
    ap.add_argument("--new-tokens", type=int, default=14, help="(default: %(default)s)")
    args = ap.parse_args()
    info = machine_info()
    print(f"CPU: {info['cpu']} ({info['cores']} cores; {info['vector_extensions']}); "
          f"torch {info['torch']}, {torch.get_num_threads()} threads")
    base = apply_overrides(load_preset("small"), ["video.num_query=8"])
    results = {}
    for name, order, cached in CONFIGS:
        PrefixCache.release_shared()  # every configuration starts cold
        model = AffectGPT.from_config(apply_overrides(
            base, [f"prompt.order={order}", f"llm.prefix_cache_mb={1024 if cached else 0}"]))
        samples = clips(max(args.clips, args.eval_clips), model)
        torch.manual_seed(0)
        model.train()
        start = time.perf_counter()
        for _ in range(args.epochs):
            for batch in batches(samples[:args.clips], args.batch_size, targets=True):
                model(batch).loss.backward()
        train_s = time.perf_counter() - start
        model.eval()
        start = time.perf_counter()
        for batch in batches(samples[:args.eval_clips], args.eval_batch, targets=False):
            model.generate_ids(batch, max_new_tokens=args.new_tokens, do_sample=False)
        gen_s = time.perf_counter() - start
        results[name] = (train_s, gen_s)
        steps = args.epochs * -(-args.clips // args.batch_size)
        base_train, base_gen = results[CONFIGS[0][0]]
        print(f"{name:38s} training {train_s:6.1f} s ({train_s / steps:.2f} s/step, "
              f"x{train_s / base_train:.2f})  generation {gen_s:6.1f} s "
              f"({gen_s / args.eval_clips:.3f} s/clip, x{gen_s / base_gen:.2f})", flush=True)


if __name__ == "__main__":
    main()
