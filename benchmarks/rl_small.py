"""Does GRPO after supervised training help? The `small` preset on the synthetic corpus.

For each seed: stage 1 on the coarse pool, stage 2 on the fine pool's train split
(from stage 1), then the RL stage (GRPO, from stage 2) on the same clips. The supervised
model (stage 2) and the RL model are each selected on a validation split carved out of
the fine pool's train split (the checkpoint with the best validation set-metric Avg), then
both are scored once on the test split: the 2024 set-metric Avg (offline lexicon
extraction, lexical synonym grouping) and the emotion-wheel EW score (mean F over the
5 wheels at level 1). Reported: mean ± std over seeds, per-seed numbers, the reward
curves, wall times per phase and the CPU.

    python benchmarks/rl_small.py --wheel-dir ../shared/data/emotion-wheel
    python benchmarks/rl_small.py --seeds 1 --coarse 16 --fine 24 ...   # a quick run

The corpus and its feature caches are built once in ``--work`` (reused by later runs);
the result goes to ``benchmarks/results/rl-small-cpu.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from affectgpt.data.manifest import read_manifest, write_manifest
from affectgpt.data.splits import seeded_split
from affectgpt.data.synthetic import make_synthetic_corpus
from affectgpt.eval.rewards import RewardSettings
from affectgpt.features.sources import FeatureSettings
from affectgpt.machine import cpu_info
from affectgpt.train import TrainConfig
from affectgpt.train.grpo import GRPOConfig, grpo_train_config
from affectgpt.train.pipeline import EvalSettings, train_stage
from affectgpt.train.rl_stage import rl_stage, score_model


def mean_std(values: list[float]) -> dict[str, float | None]:
    return {"mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else (0.0 if values else None),
            "n": len(values)}


def build_corpus(work: Path, args) -> dict[str, Path]:
    """The synthetic corpus with a validation carve-out of the fine train split; manifests
    of the fine pool (train / val / test), its val part and its test part."""
    root = work / "corpus"
    fine_all = root / "fine" / "manifest-val.jsonl"
    if not fine_all.is_file():
        corpus = make_synthetic_corpus(root, coarse=args.coarse, fine=args.fine,
                                       test_fraction=args.test_fraction, seed=0,
                                       fine_style="coarse", size=args.size, fps=args.fps,
                                       duration=(2.0, 2.6), workers=1, progress=False)
        train = [s.name for s in corpus.fine if s.split == "train"]
        val = {n for n, part in seeded_split(train, args.val_fraction, seed=1).items()
               if part == "test"}
        samples = [replace(s, split="val") if s.name in val else s for s in corpus.fine]
        write_manifest(samples, fine_all)
        write_manifest([s for s in samples if s.split == "val"], root / "fine" / "val.jsonl")
        write_manifest([s for s in samples if s.split == "test"], root / "fine" / "test.jsonl")
    return {"coarse": root / "coarse" / "manifest.jsonl", "fine": fine_all,
            "val": root / "fine" / "val.jsonl", "test": root / "fine" / "test.jsonl"}


def run_seed(seed: int, paths: dict[str, Path], work: Path, args) -> dict:
    out = work / f"seed-{seed}"
    if out.exists():
        shutil.rmtree(out)
    # caches next to the manifests (coarse/features, fine/features): computed once
    features = FeatureSettings(progress=False)
    evaluation = EvalSettings(batch_size=args.eval_batch_size,
                              max_new_tokens=args.eval_max_new_tokens)
    timings: dict[str, float] = {}
    common = dict(progress=False, seed=seed, plots=True, keep_last=1)

    stage1 = work / "stage1-shared" if not args.stage1_per_seed else out / "stage1"
    if args.stage1_per_seed or not (stage1 / "model").is_dir():
        t = time.perf_counter()
        train_stage("small", train=TrainConfig(
            stage="stage1", out_dir=str(stage1), epochs=args.stage1_epochs,
            batch_size=args.batch_size, lr=args.lr, min_lr=args.lr / 3, warmup_steps=0,
            overwrite=True, **(common | {"seed": seed if args.stage1_per_seed else 0})),
            manifest=paths["coarse"], features=features, evaluation=evaluation)
        timings["stage1_s"] = time.perf_counter() - t

    # stage 2, evaluated on the val clips only: whole/avg is the validation Avg
    t = time.perf_counter()
    stage2 = train_stage("small", train=TrainConfig(
        stage="stage2", out_dir=str(out / "stage2"), init_from=str(stage1),
        epochs=args.stage2_epochs, batch_size=args.batch_size, lr=args.lr, min_lr=args.lr / 3,
        warmup_steps=0, best_metric="whole/avg", **common),
        manifest=paths["fine"], train_split="train", eval_manifest=paths["val"],
        features=features, evaluation=evaluation)
    timings["stage2_s"] = time.perf_counter() - t

    t = time.perf_counter()
    reward = RewardSettings(weights=dict(args.reward), wheel_dir=args.wheel_dir,
                            length_target=args.length_target)
    rl = rl_stage(train=grpo_train_config(
        out_dir=str(out / "rl"), init_from=str(out / "stage2"), epochs=args.rl_epochs,
        batch_size=args.rl_batch_size, lr=args.rl_lr, min_lr=args.rl_lr,
        best_metric="val/avg", **common),
        manifest=paths["fine"], train_split="train", eval_manifest=paths["val"],
        grpo=GRPOConfig(group_size=args.group_size, max_new_tokens=args.rl_max_new_tokens,
                        temperature=args.temperature, top_p=args.top_p,
                        kl_coef=args.kl_coef),
        reward=reward, features=features, evaluation=evaluation, wheel_dir=args.wheel_dir)
    timings["rl_s"] = time.perf_counter() - t

    # both selected models, scored once on the test clips
    t = time.perf_counter()
    tests = {}
    for name, result in (("supervised", stage2), ("rl", rl)):
        scores = score_model(result.model_dir, paths["test"], out_dir=out / f"test-{name}",
                             features=features, evaluation=evaluation,
                             wheel_dir=args.wheel_dir)
        tests[name] = {"avg": scores["whole/avg"], "accuracy": scores["whole/accuracy"],
                       "recall": scores["whole/recall"], "ew": scores.get("whole/ew")}
    timings["test_s"] = time.perf_counter() - t
    r2, rr = stage2.results, rl.results
    return {
        "seed": seed,
        "supervised": {"val_avg": (r2["scores"]["best"] or {}).get("whole/avg"),
                       "best_epoch": r2["scores"]["best_epoch"], "test": tests["supervised"]},
        "rl": {"val_avg": (rr["scores"]["best"] or {}).get("val/avg"),
               "val_ew": (rr["scores"]["best"] or {}).get("val/ew"),
               "best_epoch": rr["scores"]["best_epoch"], "test": tests["rl"],
               "reward_per_epoch": rr["rl"]["per_epoch"],
               "val_curve": [e.get("scores", {}).get("val/avg") for e in
                             _read(out / "rl" / "eval_log.jsonl")]},
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }


def _read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def write_result(args, paths: dict[str, Path], seeds: list[dict], started: float,
                 corpus_s: float) -> dict:
    """Aggregate the seeds run so far and write the result JSON."""
    wall = time.perf_counter() - started
    fine = read_manifest(paths["fine"])

    def agg(system: str, key: str) -> dict:
        return mean_std([s[system]["test"][key] for s in seeds
                         if s[system]["test"][key] is not None])

    summary = {system: {"test_avg": agg(system, "avg"), "test_ew": agg(system, "ew"),
                        "val_avg": mean_std([s[system]["val_avg"] for s in seeds
                                             if s[system]["val_avg"] is not None])}
               for system in ("supervised", "rl")}
    deltas = [s["rl"]["test"]["avg"] - s["supervised"]["test"]["avg"] for s in seeds]
    ew_deltas = [s["rl"]["test"]["ew"] - s["supervised"]["test"]["ew"] for s in seeds
                 if s["rl"]["test"]["ew"] is not None and s["supervised"]["test"]["ew"] is not None]
    result = {
        "benchmark": "rl-small", "preset": "small",
        "complete": len(seeds) == args.seeds, "seeds_run": len(seeds),
        "seeds_asked": args.seeds,
        "cpu": cpu_info()["cpu"], "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
        "corpus": {"coarse": args.coarse, "fine": args.fine,
                   "splits": {k: sum(s.split == k for s in fine) for k in ("train", "val", "test")},
                   "size": args.size, "fps": args.fps, "fine_style": "coarse"},
        "settings": {k: v for k, v in vars(args).items() if k not in ("work", "out", "reward")}
        | {"work": str(args.work), "reward": dict(args.reward),
           "grpo": asdict(GRPOConfig(group_size=args.group_size,
                                     max_new_tokens=args.rl_max_new_tokens,
                                     temperature=args.temperature, top_p=args.top_p,
                                     kl_coef=args.kl_coef))},
        "selection": "checkpoint with the best validation set-metric Avg (val split carved "
                     "out of the fine train split), for the supervised and the RL model",
        "summary": summary,
        "rl_minus_supervised": {"test_avg": mean_std(deltas), "test_ew": mean_std(ew_deltas)},
        "seeds": seeds,
        "wall_time_s": round(wall, 1), "corpus_s": round(corpus_s, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def parse_reward(text: str) -> list[tuple[str, float]]:
    items = []
    for item in filter(None, text.split(",")):
        name, _, weight = item.partition("=")
        items.append((name.strip(), float(weight)))
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1 (default: 3)")
    ap.add_argument("--work", type=Path, default=Path("runs/rl-small"),
                    help="corpus, caches and runs (default: %(default)s)")
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).parent / "results" / "rl-small-cpu.json")
    ap.add_argument("--time-budget-s", type=float, default=None,
                    help="start no further seed when the last one would end past this many "
                         "seconds (the JSON says how many seeds ran)")
    ap.add_argument("--wheel-dir", default=os.environ.get("AFFECTGPT_WHEEL_DIR"),
                    help="emotion-wheel tables (default: $AFFECTGPT_WHEEL_DIR)")
    g = ap.add_argument_group("corpus")
    g.add_argument("--coarse", type=int, default=24, help="stage-1 clips (default: 24)")
    g.add_argument("--fine", type=int, default=40, help="fine-pool clips (default: 40)")
    g.add_argument("--test-fraction", type=float, default=0.25)
    g.add_argument("--val-fraction", type=float, default=0.25,
                   help="share of the fine train split held out for selection (default: 0.25)")
    g.add_argument("--size", type=int, default=64, help="frame size in pixels (default: 64)")
    g.add_argument("--fps", type=int, default=5)
    s = ap.add_argument_group("supervised")
    s.add_argument("--stage1-epochs", type=int, default=2)
    s.add_argument("--stage1-per-seed", action="store_true",
                   help="train stage 1 for every seed (default: once, seed 0, shared by the "
                        "seeds' stage 2 and RL runs; the comparison is stage 2 vs RL)")
    s.add_argument("--stage2-epochs", type=int, default=3)
    s.add_argument("--batch-size", type=int, default=4)
    s.add_argument("--lr", type=float, default=1e-4)
    s.add_argument("--eval-batch-size", type=int, default=8)
    s.add_argument("--eval-max-new-tokens", type=int, default=32)
    r = ap.add_argument_group("rl")
    r.add_argument("--rl-epochs", type=int, default=2)
    r.add_argument("--rl-batch-size", type=int, default=2, help="clips per step")
    r.add_argument("--rl-lr", type=float, default=2e-5)
    r.add_argument("--group-size", type=int, default=4)
    r.add_argument("--rl-max-new-tokens", type=int, default=32)
    r.add_argument("--temperature", type=float, default=1.0)
    r.add_argument("--top-p", type=float, default=1.0)
    r.add_argument("--kl-coef", type=float, default=0.04)
    r.add_argument("--reward", type=parse_reward, default=parse_reward("wheel=1,length=1,gaming=1"))
    r.add_argument("--length-target", type=int, default=40)
    args = ap.parse_args()
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("affectgpt").setLevel(logging.INFO)
    if not args.wheel_dir:
        ap.error("the wheel reward and the EW score need --wheel-dir (or $AFFECTGPT_WHEEL_DIR)")

    started = time.perf_counter()
    t = time.perf_counter()
    paths = build_corpus(args.work, args)
    corpus_s = time.perf_counter() - t
    seeds: list[dict] = []
    for seed in range(args.seeds):
        elapsed = time.perf_counter() - started
        last = seeds[-1]["seconds"] if seeds else 0.0
        if args.time_budget_s and seeds and elapsed + last > args.time_budget_s:
            print(f"stopping before seed {seed}: {elapsed:.0f} s spent, a seed takes ~{last:.0f} s, "
                  f"budget {args.time_budget_s:.0f} s")
            break
        t = time.perf_counter()
        seeds.append(run_seed(seed, paths, args.work, args))
        seeds[-1]["seconds"] = round(time.perf_counter() - t, 1)
        result = write_result(args, paths, seeds, started, corpus_s)  # after every seed
    summary = result["summary"]
    for system in ("supervised", "rl"):
        a, e = summary[system]["test_avg"], summary[system]["test_ew"]
        print(f"{system:10s} test Avg {a['mean']:.4f} ± {a['std']:.4f}   "
              f"EW {e['mean'] if e['mean'] is not None else float('nan'):.4f} ± "
              f"{e['std'] if e['std'] is not None else float('nan'):.4f}  (n={a['n']})")
    print(f"wall time {result['wall_time_s']:.0f} s on {result['cpu']} -> {args.out}")


if __name__ == "__main__":
    main()
