"""GRPO on the tiny random model: the algorithm's pieces by hand, the evidence that it
raises a rewarded label's frequency (and that a large KL weight holds the policy at the
reference), logs, plots, checkpoints and exact resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import Dataset

from affectgpt.data.collate import collate_batch
from affectgpt.eval.rewards import CompositeReward, KeywordReward, LengthPenalty
from affectgpt.model import AffectGPT, apply_overrides, load_preset
from affectgpt.train import checkpoint as ckpt
from affectgpt.train.grpo import (
    REFERENCE_FILE,
    GRPOConfig,
    GRPOTrainer,
    RewardCache,
    completion_lengths,
    completion_logprobs,
    group_advantages,
    grpo_loss,
    grpo_train_config,
    make_extractor,
    repeat_batch,
    run_grpo,
    swapped_weights,
)
from affectgpt.train.trainer import seed_everything


# --------------------------------------------------------------------------- helpers
def tiny_config(*overrides: str):
    cfg = load_preset("tiny")
    return apply_overrides(cfg, list(overrides)) if overrides else cfg


def make_policy(*overrides: str, seed: int = 0) -> AffectGPT:
    seed_everything(seed)
    return AffectGPT.from_config(tiny_config(*overrides))


class Clips(Dataset):
    """Clips with random features shaped for the tiny preset, gold label 'happy'."""

    def __init__(self, n: int, seed: int, prefix: str = "clip"):
        cfg = tiny_config()
        g = torch.Generator().manual_seed(seed)
        v, a = cfg.video, cfg.audio
        self.items = [{
            "name": f"{prefix}{i}",
            "video": torch.randn(v.frames, v.tokens_per_frame, v.feature_dim, generator=g),
            "audio": torch.randn(a.clips, a.feature_dim, generator=g),
            "subtitle": "", "target": None, "labels": ["happy"],
        } for i in range(n)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- pieces by hand
def test_group_advantages_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0])
    std = math.sqrt(0.25 * 0.75)  # population std of (1, 0, 0, 0)
    adv = group_advantages(rewards, 4, eps=0.0)
    expected = [0.75 / std, -0.25 / std, -0.25 / std, -0.25 / std, 0, 0, 0, 0]
    assert adv.tolist() == pytest.approx(expected)
    assert group_advantages(rewards, 4, scale=False).tolist() == pytest.approx(
        [0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(rewards, 3)


def test_grpo_loss_by_hand():
    logp = torch.log(torch.tensor([[0.5, 0.25]])).requires_grad_()
    mask = torch.ones(1, 2)
    # ratio 1, A = 2: loss = -2; the gradient is the policy gradient -A / T per token
    loss, stats = grpo_loss(logp, logp.detach(), None, torch.tensor([2.0]), mask,
                            clip_eps=0.2, kl_coef=0.0)
    assert loss.item() == pytest.approx(-2.0)
    loss.backward()
    assert logp.grad[0].tolist() == pytest.approx([-1.0, -1.0])
    assert "kl" not in stats and stats["clip_fraction"].item() == 0.0
    # k3 KL: ref/pi = 0.5 on token 1 -> 0.5 - log 0.5 - 1 = 0.19315; token 2: 0
    ref = torch.log(torch.tensor([[0.25, 0.25]]))
    k3 = 0.5 - math.log(0.5) - 1
    loss, stats = grpo_loss(logp.detach(), logp.detach(), ref, torch.tensor([2.0]), mask,
                            clip_eps=0.2, kl_coef=1.0)
    assert stats["kl"].item() == pytest.approx(k3 / 2)
    assert loss.item() == pytest.approx(-2.0 + k3 / 2)
    # ratio 2 with A > 0 is clipped to 1.2; with A < 0 the unclipped -2 is the minimum
    old = logp.detach() - math.log(2.0)
    loss, stats = grpo_loss(logp.detach(), old, None, torch.tensor([1.0]), mask,
                            clip_eps=0.2, kl_coef=0.0)
    assert loss.item() == pytest.approx(-1.2) and stats["clip_fraction"].item() == 1.0
    loss, stats = grpo_loss(logp.detach(), old, None, torch.tensor([-1.0]), mask,
                            clip_eps=0.2, kl_coef=0.0)
    assert loss.item() == pytest.approx(2.0) and stats["clip_fraction"].item() == 0.0
    # aggregation: mean per sequence, then over sequences; or over all tokens
    two = torch.zeros(2, 2)
    adv = torch.tensor([1.0, 3.0])
    ragged = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    seq, _ = grpo_loss(two, two, None, adv, ragged, clip_eps=0.2, kl_coef=0.0)
    tok, _ = grpo_loss(two, two, None, adv, ragged, clip_eps=0.2, kl_coef=0.0,
                       aggregation="token")
    assert seq.item() == pytest.approx(-(1.0 + 3.0) / 2)
    assert tok.item() == pytest.approx(-(1.0 + 3.0 + 3.0) / 3)


def test_completion_lengths_end_at_eos_or_stop_text():
    policy = make_policy()
    tok = policy.tokenizer

    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    eos = tok.eos_token_id
    rows = [ids("ab###cd"), ids("xy") + [eos] + ids("zzzz"), ids("plain!!")]
    width = max(map(len, rows))
    batch = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
    assert completion_lengths(batch, tok, eos_ids=[eos], stop="###") == [5, 3, width]


def test_completion_logprobs_match_teacher_forced_forward():
    policy = make_policy()
    batch = collate_batch([Clips(2, seed=5)[i] for i in range(2)])
    texts = ["calm and happy", "tense"]
    encoded = [policy.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(map(len, encoded))
    ids = torch.tensor([e + [0] * (width - len(e)) for e in encoded])
    mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in encoded])
    logp, touch = completion_logprobs(policy, batch, ids, mask)
    # the same tokens as supervised targets (right-padded prompts, full logits)
    out = policy(dict(batch, target=texts), return_logits=True)
    for i, e in enumerate(encoded):
        positions = (out.labels[i] != -100).nonzero().squeeze(1)[: len(e)]
        expected = out.logits[i, positions - 1].log_softmax(-1)[torch.arange(len(e)),
                                                                torch.tensor(e)]
        assert torch.allclose(logp[i, : len(e)], expected, atol=1e-5)
        assert bool((logp[i, len(e):] == 0).all())
    (logp.sum() + touch).backward()
    assert policy.video.query_tokens.grad is not None
    assert float(policy.audio.proj.weight.grad.abs().sum()) > 0


def test_small_pieces():
    policy = make_policy()
    batch = collate_batch([Clips(2, seed=1)[i] for i in range(2)])
    batch["target"] = ["a", "b"]
    rep = repeat_batch(batch, 3)
    assert rep["name"] == ["clip0"] * 3 + ["clip1"] * 3 and "target" not in rep
    assert torch.equal(rep["video"][3], batch["video"][1]) and rep["video"].shape[0] == 6
    # swapped weights come back, whatever happens inside
    state = {k: torch.zeros_like(v) for k, v in policy.trainable_state_dict().items()}
    before = {k: v.clone() for k, v in policy.trainable_state_dict().items()}
    with pytest.raises(RuntimeError):
        with swapped_weights(policy, state):
            assert float(policy.video.query_tokens.detach().abs().sum()) == 0.0
            raise RuntimeError("inside")
    assert all(torch.equal(before[k], v) for k, v in policy.trainable_state_dict().items())
    cache = RewardCache(2)
    for key in ("a", "b", "c"):
        cache.put(("clip", key), ([], None))
    assert len(cache) == 2 and cache.get(("clip", "a")) is None
    assert make_extractor("answer")(["fine. ['happy', 'calm']", "no list"]) == [
        ["happy", "calm"], []]
    with pytest.raises(ValueError, match="extractor"):
        make_extractor("regex")
    with pytest.raises(ValueError, match="group_size"):
        GRPOConfig(group_size=1)
    with pytest.raises(ValueError, match="loss_aggregation"):
        GRPOConfig(loss_aggregation="batch")


# --------------------------------------------------------------------------- the evidence
def _keyword_frequency(policy: AffectGPT, clips: Dataset, keyword: str, *, samples: int,
                       max_new_tokens: int) -> tuple[float, Counter]:
    batch = repeat_batch(collate_batch([clips[i] for i in range(len(clips))]), samples)
    texts = policy.generate(batch, max_new_tokens=max_new_tokens, do_sample=True, top_p=1.0,
                            temperature=1.0, top_k=0, seed=1234)
    letters = Counter(ch for t in texts for ch in set(t) if ch.isascii() and ch.isalpha())
    return sum(keyword in t for t in texts) / len(texts), letters


def test_grpo_raises_rewarded_label_frequency_and_kl_keeps_policy_near_reference(tmp_path):
    """The tiny model writes bytes, so the rewarded "label" is one letter: reward 1 when
    the description contains it. It is the letter the untrained policy writes most often
    on the training clips (a few per cent of the samples), so groups see some rewards."""
    overrides = ("lora.r=8", "lora.dropout=0.0")
    train, held_out = Clips(16, seed=1, prefix="train"), Clips(16, seed=99, prefix="held")
    tokens = 4
    policy = make_policy(*overrides)
    _, letters = _keyword_frequency(policy, train, "", samples=8, max_new_tokens=tokens)
    keyword = letters.most_common(1)[0][0]
    before, _ = _keyword_frequency(policy, held_out, keyword, samples=16,
                                   max_new_tokens=tokens)
    assert before < 0.2

    def train_with(kl_coef: float, out: Path) -> tuple[float, list[dict]]:
        model = make_policy(*overrides)
        reward = CompositeReward([(KeywordReward(keyword, whole_word=False), 1.0)])
        cfg = grpo_train_config(out_dir=str(out), lr=3e-3, min_lr=3e-3, batch_size=4,
                                epochs=1, max_grad_norm=None, progress=False, plots=False,
                                seed=0)
        grpo = GRPOConfig(group_size=8, max_new_tokens=tokens, kl_coef=kl_coef)
        run_grpo(model, train, reward, train=cfg, grpo=grpo, extractor="answer")
        after, _ = _keyword_frequency(model, held_out, keyword, samples=16,
                                      max_new_tokens=tokens)
        return after, read_jsonl(out / "train_log.jsonl")

    free, free_log = train_with(0.0, tmp_path / "free")
    held, held_log = train_with(5.0, tmp_path / "held")
    assert len(free_log) == 4  # 16 clips, 4 per step
    assert free >= before + 0.5, (before, free)
    assert free_log[-1]["reward"] > free_log[0]["reward"] + 0.4
    # a large KL weight keeps the policy at the reference: small KL, little change
    assert abs(held - before) < 0.15, (before, held)
    assert held_log[-1]["kl"] < 0.25 * free_log[-1]["kl"]


# --------------------------------------------------------------------------- the run
def test_grpo_run_logs_plots_checkpoints_and_resumes_exactly(tmp_path):
    clips = Clips(6, seed=3)
    reward = CompositeReward([(KeywordReward("a", whole_word=False), 1.0),
                              (LengthPenalty(1, rate=0.5, unit="chars"), 1.0)])
    grpo = GRPOConfig(group_size=3, max_new_tokens=3, kl_coef=0.1, updates_per_batch=2)
    evaluated: list[tuple[str, int]] = []

    def evaluate(model, epoch: int) -> dict:
        evaluated.append((type(model).__name__, epoch))
        return {"score": float(epoch)}

    def run(out: Path, max_steps: int | None = None, resume=None) -> GRPOTrainer:
        policy = make_policy()
        cfg = grpo_train_config(out_dir=str(out), lr=5e-2, min_lr=1e-2, batch_size=2,
                                epochs=2, save_every_steps=2, keep_last=None,
                                progress=False, seed=7, max_steps=max_steps)
        trainer = GRPOTrainer(policy, clips, reward, cfg=cfg, grpo=grpo, extractor="answer",
                              eval_fn=evaluate)
        trainer.fit(resume=resume)
        trainer.close()
        return trainer

    whole = run(tmp_path / "a")
    log = read_jsonl(tmp_path / "a" / "train_log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 7))  # 3 steps per epoch
    for key in ("loss", "reward", "reward/keyword", "reward/length", "reward_std", "kl",
                "length", "words", "clip_fraction", "zero_advantage", "cache_hits"):
        assert all(key in r for r in log), key
    assert all(r["length"] <= 3 for r in log)
    assert log[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # the policy starts as the reference
    assert any(r["kl"] > 0 for r in log[1:])
    assert any(r["clip_fraction"] > 0 for r in log)  # the second update of a batch clips
    assert all(r["reward"] == pytest.approx(r["reward/keyword"] + r["reward/length"])
               for r in log)
    assert evaluated == [("AffectGPT", 1), ("AffectGPT", 2)]
    for name in ("rewards.png", "kl.png", "length.png", "loss.png", "scores.png",
                 REFERENCE_FILE, "summary.json"):
        assert (tmp_path / "a" / name).is_file(), name
    # the reference holds the initial weights; checkpoints load into a plain AffectGPT
    initial = make_policy().trainable_state_dict()
    reference = ckpt.load_trainable(tmp_path / "a" / REFERENCE_FILE)
    assert all(torch.equal(initial[k], reference[k]) for k in initial)
    fresh = make_policy()
    fresh.load_trainable_state_dict(ckpt.load_trainable(tmp_path / "a"))
    final = whole.policy.trainable_state_dict()
    assert all(torch.equal(final[k], v) for k, v in fresh.trainable_state_dict().items())
    assert not all(torch.equal(initial[k], final[k]) for k in initial)

    # interrupted after step 3 (a checkpoint at step 2), then resumed: the same run
    evaluated.clear()
    run(tmp_path / "b", max_steps=3)
    (tmp_path / "b" / "checkpoint-3").rename(tmp_path / "b" / "gone")  # lost in the crash
    ckpt.remove_stale_temp(tmp_path / "b")
    (tmp_path / "b" / ckpt.LATEST).write_text("checkpoint-2\n")
    resumed = run(tmp_path / "b", resume="auto")
    assert resumed.resumed_from.endswith("checkpoint-2")
    keys = ("step", "loss", "reward", "kl", "length", "clip_fraction")
    assert [[r[k] for k in keys] for r in read_jsonl(tmp_path / "b" / "train_log.jsonl")] == \
        [[r[k] for k in keys] for r in log]
    again = resumed.policy.trainable_state_dict()
    assert all(torch.equal(final[k], again[k]) for k in final)


def test_resume_needs_the_reference(tmp_path):
    clips = Clips(2, seed=3)
    reward = CompositeReward([(KeywordReward("a", whole_word=False), 1.0)])
    grpo = GRPOConfig(group_size=2, max_new_tokens=2)
    cfg = grpo_train_config(out_dir=str(tmp_path), batch_size=2, progress=False, plots=False)
    run_grpo(make_policy(), clips, reward, train=cfg, grpo=grpo, extractor="answer")
    (tmp_path / REFERENCE_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="reference"):
        run_grpo(make_policy(), clips, reward, train=cfg, grpo=grpo, extractor="answer",
                 resume=tmp_path / "checkpoint-1")


def test_grpo_under_torchrun_two_ranks(tmp_path):
    """Each rank samples its own clips; the weights stay identical across ranks."""
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    script = Path(__file__).with_name("grpo_ddp_script.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo",
               TORCHELASTIC_ERROR_FILE=str(tmp_path / "error.json"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--standalone", str(script), str(tmp_path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both ranks: no orphans
        stdout, stderr = proc.communicate()
        pytest.fail(f"torchrun timed out:\n{stdout[-3000:]}\n{stderr[-6000:]}")
    assert proc.returncode == 0, f"torchrun failed:\n{stdout[-3000:]}\n{stderr[-6000:]}"
    rank0 = load_file(str(tmp_path / "rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "rank1.safetensors"))
    initial = make_policy(seed=0).trainable_state_dict()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert not all(torch.equal(rank0[k], initial[k]) for k in initial)
    names = [set(json.loads((tmp_path / f"rank{r}.json").read_text())) for r in (0, 1)]
    assert not names[0] & names[1] and names[0] | names[1] == {f"clip{i}" for i in range(8)}
    log = read_jsonl(tmp_path / "train_log.jsonl")
    assert [r["step"] for r in log] == [1, 2]  # 4 clips per rank, 2 per step
    assert all("reward/length" in r and "kl" in r for r in log)
    assert any(r["reward_std"] > 0 for r in log)
