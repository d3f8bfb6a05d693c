"""Training step time and peak GPU memory of the `paper` preset at its real sizes
(supervised, or GRPO with ``--mode rl``).

The frozen LLM is a randomly initialised Llama of Vicuna-7B's shape (32 layers, hidden
4096, 32 heads, MLP 11008, untied 32000-row head padded to the tokenizer) in bfloat16,
built directly on the GPU; the two Q-Former branches have the paper's sizes (~45 M
trainable parameters); inputs are random frozen features of the paper's shapes (8 frames
x 32 BLIP-2 tokens x 768, 8 ImageBind clips x 1024) with realistic synthetic subtitles
and EMER-Fine-length descriptions, tokenised by SmolLM2's BPE tokenizer (sequence lengths
like LLaMA's). Training runs through the real `Trainer` at batch 3 with bf16 autocast,
as the paper trains; the first steps are warm-up and not timed.

    python benchmarks/bench_train_gpu.py [--steps 12] [--warmup 3] [--batch-size 3]
    python benchmarks/bench_train_gpu.py --size smoke --device cpu   # the script itself, on a CPU

``--mode rl`` times GRPO steps instead: per step ``--batch-size`` clips, each sampled
``--group-size`` times (G descriptions of ``--rl-max-new-tokens`` tokens in one batched
``generate``; a random LLM rarely stops early, so every sample runs to the limit: the
worst case), labels extracted by the offline lexicon, rewards (length and label-gaming
penalties; the wheel score too with ``--wheel-dir``), then the policy forward/backward
over the B x G samples and the no-grad reference forward for the KL. ``--preset
qwen2.5-lora`` swaps in a random LLM of Qwen2.5-7B's shape (28 layers, hidden 3584,
GQA 28/4 heads, MLP 18944, 152064-row vocabulary; Llama blocks, so no q/k/v biases)
with the preset's LoRA (r=16 on all projections).

    python benchmarks/bench_train_gpu.py --mode rl --group-size 8 --batch-size 2
    python benchmarks/bench_train_gpu.py --mode rl --preset qwen2.5-lora --group-size 8
    python benchmarks/bench_train_gpu.py --mode rl --size smoke --device cpu --steps 3 \\
        --warmup 1 --group-size 2 --batch-size 1 --rl-max-new-tokens 8

Writes ``benchmarks/results/train-paper-<card>.json`` (``rl-<preset>-<card>.json`` in
rl mode; ``--out`` to change) with the card's name, step times and peak memory.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

from affectgpt.data.synthetic import describe, plan_clip
from affectgpt.model import AffectGPT, apply_overrides, load_config
from affectgpt.train import TrainConfig, Trainer

# Vicuna-7B's shape; "smoke" keeps the paper's branches but a 2-layer LLM (a CPU check).
# For --preset qwen2.5-lora, "paper" means Qwen2.5-7B's shape (QWEN_SIZE).
QWEN_SIZE = ["llm.hidden_size=3584", "llm.num_layers=28", "llm.num_heads=28",
             "llm.num_kv_heads=4", "llm.intermediate_size=18944", "llm.vocab_size=152064"]
LLM_SIZES = {
    "paper": ["llm.hidden_size=4096", "llm.num_layers=32", "llm.num_heads=32",
              "llm.num_kv_heads=32", "llm.intermediate_size=11008", "llm.vocab_size=32000"],
    "smoke": ["llm.hidden_size=256", "llm.num_layers=2", "llm.num_heads=4",
              "llm.num_kv_heads=4", "llm.intermediate_size=512", "llm.vocab_size=32000"],
}


class PaperShapedFeatures(Dataset):
    """Random features of the paper's shapes with synthetic subtitles and descriptions."""

    def __init__(self, n: int, video_shape: tuple[int, ...], audio_shape: tuple[int, ...]):
        self.n, self.video_shape, self.audio_shape = n, video_shape, audio_shape

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        g = torch.Generator().manual_seed(index)
        plan = plan_clip(index, seed=0, cue="all")
        # a fine description is ~60 words here; EMER-Fine's average is ~3x that
        description = " ".join([describe(plan, "fine")[0]] * 3)
        return {"video": torch.randn(self.video_shape, generator=g),
                "audio": torch.randn(self.audio_shape, generator=g),
                "subtitle": plan["subtitle_en"], "target": description,
                "name": f"clip{index}", "labels": list(plan["labels"])}


def collate(items: list[dict]) -> dict:
    return {"video": torch.stack([i["video"] for i in items]),
            "audio": torch.stack([i["audio"] for i in items]),
            "subtitle": [i["subtitle"] for i in items],
            "target": [i["target"] for i in items],
            "name": [i["name"] for i in items], "labels": [i["labels"] for i in items]}


def rl_trainer(model, data, args, out: str, device: torch.device):
    """A GRPO trainer at the benchmark's sizes (rewards without the wheel unless given)."""
    from affectgpt.eval.rewards import RewardSettings
    from affectgpt.train.grpo import GRPOConfig, GRPOTrainer, grpo_train_config

    weights = {"length": 1.0, "gaming": 1.0} | ({"wheel": 1.0} if args.wheel_dir else {})
    reward = RewardSettings(weights=weights, wheel_dir=args.wheel_dir).build()
    cfg = grpo_train_config(stage="bench-rl", out_dir=out, epochs=1, batch_size=args.batch_size,
                            precision=args.precision, device=str(device), save_every=1000,
                            keep_last=1, plots=False, progress=True, shuffle=False)
    grpo = GRPOConfig(group_size=args.group_size, max_new_tokens=args.rl_max_new_tokens,
                      updates_per_batch=args.updates_per_batch)
    return GRPOTrainer(model, data, reward, cfg=cfg, grpo=grpo, collate_fn=collate,
                       extractor="lexicon")


def card_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu-{platform.machine()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("sft", "rl"), default="sft",
                    help="supervised steps, or GRPO steps (default: %(default)s)")
    ap.add_argument("--preset", choices=("paper", "qwen2.5-lora"), default="paper",
                    help="model preset; its LLM is random at the real shape (default: "
                         "%(default)s)")
    ap.add_argument("--size", choices=sorted(LLM_SIZES), default="paper",
                    help="LLM shape: paper (the preset's 7B shape) or smoke (tiny, to check "
                         "the script)")
    ap.add_argument("--group-size", type=int, default=8,
                    help="rl: descriptions sampled per clip, G (default: %(default)s)")
    ap.add_argument("--rl-max-new-tokens", type=int, default=256,
                    help="rl: sampled tokens per description; EMER-Fine descriptions are "
                         "~180 words (default: %(default)s)")
    ap.add_argument("--updates-per-batch", type=int, default=1,
                    help="rl: optimizer updates per sampled batch (default: %(default)s)")
    ap.add_argument("--wheel-dir", help="rl: add the emotion-wheel reward (its tables)")
    ap.add_argument("--steps", type=int, default=12, help="steps in all (default: %(default)s)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed first steps (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="clips per step: the paper's 3 (sft); 2 in rl mode, each sampled "
                         "G times")
    ap.add_argument("--precision", choices=("bf16", "fp32"), default="bf16",
                    help="autocast of the forward pass (default: %(default)s)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=None,
                    help="result JSON (default: benchmarks/results/train-paper-<card>.json)")
    args = ap.parse_args()
    if args.steps <= args.warmup:
        ap.error("--steps must be larger than --warmup")
    if args.batch_size is None:
        args.batch_size = 2 if args.mode == "rl" else 3

    device = torch.device(args.device)
    llm_dtype = "bfloat16" if device.type == "cuda" else "float32"
    size = QWEN_SIZE if args.preset == "qwen2.5-lora" and args.size == "paper" \
        else LLM_SIZES[args.size]
    cfg = apply_overrides(load_config(args.preset), [
        "llm.path=random", "llm.tokenizer=smollm2", f"llm.dtype={llm_dtype}",
        "llm.init_std=0.02", *size])
    torch.manual_seed(0)
    t = time.perf_counter()
    with torch.device(device):  # a 7B model is built on the GPU, not in host memory
        model = AffectGPT.from_config(cfg, device=device)
    build_seconds = time.perf_counter() - t
    print(model.summary())

    video_shape = (cfg.video.frames, cfg.video.tokens_per_frame, cfg.video.feature_dim)
    audio_shape = (cfg.audio.clips, cfg.audio.feature_dim)
    data = PaperShapedFeatures(args.batch_size * args.steps, video_shape, audio_shape)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as out:
        train_cfg = TrainConfig(stage="bench", out_dir=out, epochs=1, batch_size=args.batch_size,
                                precision=args.precision, device=str(device), lr=3e-5,
                                min_lr=1e-5, save_every=1000, keep_last=1, plots=False,
                                progress=True, shuffle=False)
        if args.mode == "rl":
            trainer = rl_trainer(model, data, args, out, device)
        else:
            trainer = Trainer(model, data, collate, train_cfg)
        summary = trainer.fit()
        trainer.close()
        steps = [json.loads(line) for line in (Path(out) / "train_log.jsonl").read_text().splitlines()]
    timed = [s["seconds"] for s in steps[args.warmup:]]
    lengths = [len(model.tokenizer(collate([data[i]])["target"][0])["input_ids"])
               for i in range(args.batch_size)]
    result = {
        "benchmark": "train-paper" if args.mode == "sft" else f"rl-{args.preset}",
        "mode": args.mode, "preset": args.preset, "card": card_name(device),
        "device": str(device),
        "llm_size": args.size, "precision": summary["precision"], "batch_size": args.batch_size,
        "trainable_parameters": model.num_trainable_parameters(),
        "frozen_parameters": model.parameter_summary()["llm_frozen"],
        "target_tokens_first_batch": lengths,
        "build_seconds": round(build_seconds, 2),
        "step_seconds_median": round(statistics.median(timed), 4),
        "step_seconds_mean": round(statistics.fmean(timed), 4),
        "samples_per_second": round(args.batch_size / statistics.median(timed), 3),
        "steps_timed": len(timed),
        "losses": [round(s["loss"], 4) for s in steps],
        "peak_memory_gib": (round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                            if device.type == "cuda" else None),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    if args.mode == "rl":
        result |= {"group_size": args.group_size, "rl_max_new_tokens": args.rl_max_new_tokens,
                   "updates_per_batch": args.updates_per_batch,
                   "sampled_per_step": args.batch_size * args.group_size,
                   "sampled_tokens_mean": round(statistics.fmean(s["length"] for s in steps), 1),
                   "rewards": [round(s["reward"], 4) for s in steps],
                   "kl": [round(s.get("kl", 0.0), 6) for s in steps]}
    slug = re.sub(r"[^a-z0-9]+", "-", result["card"].lower()).strip("-")
    out = args.out or Path(__file__).parent / "results" / f"{result['benchmark']}-{slug}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{result['card']}: {args.mode} {args.preset}, {args.size} LLM, batch "
          f"{args.batch_size}" + (f" x G {args.group_size}" if args.mode == "rl" else "") +
          f", {result['precision']}: "
          f"median step {result['step_seconds_median']:.3f} s "
          f"({result['samples_per_second']:.2f} samples/s), peak memory "
          f"{result['peak_memory_gib']} GiB -> {out}")


if __name__ == "__main__":
    main()
