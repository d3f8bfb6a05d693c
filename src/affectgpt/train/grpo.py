"""Reinforcement learning with verifiable rewards: GRPO after supervised training.

Each step, for every clip of the batch (on every process: each rank samples its own
clips), the policy samples ``G`` descriptions in one batched ``generate`` call (the clip
repeated ``G`` times, sampling seeded from the training RNG, so a resumed run samples
what an uninterrupted one would). Labels are extracted from each description (offline
lexicon by default), a :class:`~affectgpt.eval.rewards.CompositeReward` scores them
against the clip's gold labels (cached per ``(clip, text)``), and the rewards are
normalised within each group of ``G``::

    A_i = (r_i - mean(r)) / (std(r) + eps)          (std: population; optional)

The loss over the sampled tokens ``o_i,t`` (DeepSeekMath's GRPO)::

    ratio = pi(o_i,t) / pi_old(o_i,t)
    L = -mean_i mean_t [ min(ratio A_i, clip(ratio, 1 - e, 1 + e) A_i) - beta KL_i,t ]
    KL_i,t = pi_ref / pi - log(pi_ref / pi) - 1     (the k3 estimator, >= 0)

``pi_old`` is the policy at sampling time; with ``updates_per_batch = 1`` (the default)
it equals the current policy and the ratio is 1 (its gradient is the policy gradient);
with ``mu > 1`` the same samples drive ``mu`` optimizer updates and the clipping
matters. ``pi_ref`` is the frozen supervised model: the trainable weights (adapters,
LoRA) as they were at the first step, swapped in for a no-grad forward; they are saved as
``reference.safetensors`` in the run folder, so a resume uses the same reference.
Log-probabilities are those of the tempered distribution ``softmax(logits / T)`` the
samples were drawn from (top-p / top-k truncation is not modelled, as in common GRPO
implementations; the default samples without truncation).

The loop is the supervised :class:`~affectgpt.train.trainer.Trainer` (optimizer,
schedule, checkpoints, exact resume, DDP, evaluation, plots): one trainer step samples
``batch_size`` clips x ``grad_accum`` micro-batches per process and makes
``updates_per_batch`` optimizer updates on them (the schedule advances once per step).
``train_log.jsonl`` gains per step: ``reward`` (mean total), ``reward/<component>``
(unweighted means), ``reward_std`` (mean within-group std), ``kl``, ``length`` (mean
sampled tokens), ``words``, ``clip_fraction``, ``zero_advantage`` (share of groups
whose rewards were all equal), ``cache_hits``; plots ``rewards.png``, ``kl.png`` and
``length.png`` go next to the checkpoints. Checkpoints load like supervised ones
(:func:`affectgpt.train.checkpoint.load_trainable`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from affectgpt.eval.rewards import ANSWER_LAYOUTS, CompositeReward, RewardBreakdown, answer_labels
from affectgpt.model.affectgpt import cut_at_stop
from affectgpt.train import checkpoint as ckpt
from affectgpt.train import dist as tdist
from affectgpt.train.config import TrainConfig
from affectgpt.train.trainer import EvalFn, Trainer, loss_of, move_to, trainable_state

log = logging.getLogger("affectgpt.train")

__all__ = ["REFERENCE_FILE", "GRPOConfig", "GRPOObjective", "GRPOTrainer", "LabelExtractor",
           "RewardCache", "completion_lengths", "completion_logprobs", "grpo_loss",
           "grpo_train_config", "group_advantages", "llm_extractor", "make_extractor",
           "repeat_batch", "run_grpo", "swapped_weights"]

REFERENCE_FILE = "reference.safetensors"
AGGREGATIONS = ("sequence", "token")

# texts -> labels per text (None: extraction failed; scored as no labels and counted)
LabelExtractor = Callable[[Sequence[str]], list[list[str] | None]]


@dataclass
class GRPOConfig:
    """What GRPO adds to a :class:`TrainConfig` (which keeps lr, epochs, batch size, seed).

    ``group_size``: descriptions sampled per clip (G); ``temperature``, ``top_p``,
    ``top_k`` (0: off), ``max_new_tokens``: their sampling; ``clip_eps``: the PPO clip
    range; ``kl_coef``: the weight of the KL penalty to the reference (beta);
    ``updates_per_batch``: optimizer updates per sampled batch (mu);
    ``scale_rewards``: divide advantages by the group's std (off: only centre them);
    ``adv_eps``: added to that std; ``loss_aggregation``: ``sequence`` (mean over each
    sample's tokens, then over samples, as in the GRPO paper) or ``token`` (mean over all
    tokens of the batch); ``track_kl``: compute the KL to the reference for the log
    even when ``kl_coef`` is 0 (one more no-grad forward); ``reward_cache_size``:
    ``(clip, text)`` rewards kept.
    """

    group_size: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 128
    clip_eps: float = 0.2
    kl_coef: float = 0.04
    updates_per_batch: int = 1
    scale_rewards: bool = True
    adv_eps: float = 1e-4
    loss_aggregation: str = "sequence"
    track_kl: bool = True
    reward_cache_size: int = 100_000

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 (advantages compare samples of one "
                             f"clip), got {self.group_size}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        for name in ("top_k", "reward_cache_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("max_new_tokens", "updates_per_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not 0 <= self.clip_eps < 1:
            raise ValueError(f"clip_eps must be in [0, 1), got {self.clip_eps}")
        if self.kl_coef < 0 or self.adv_eps < 0:
            raise ValueError("kl_coef and adv_eps must be >= 0")
        if self.loss_aggregation not in AGGREGATIONS:
            raise ValueError(f"loss_aggregation must be one of {AGGREGATIONS}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GRPOConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown GRPOConfig fields: {unknown}")
        return cls(**data)


def grpo_train_config(**overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` with RL defaults: stage ``rl``, constant lr 1e-6 (AdamW,
    no weight decay), gradient clipping at 1, 1 epoch of 2 clips per step; ``overrides``
    change any field."""
    base: dict[str, Any] = dict(stage="rl", out_dir="runs/rl", lr=1e-6, min_lr=1e-6,
                                warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, epochs=1,
                                batch_size=2, keep_last=2)
    base.update(overrides)
    return TrainConfig(**base)


# --------------------------------------------------------------------------- pieces
def make_extractor(kind: str | LabelExtractor = "lexicon", *, layout: str = "labels",
                   ) -> LabelExtractor:
    """``"lexicon"``: the offline :class:`~affectgpt.eval.lexicon.LexiconExtractor`;
    ``"answer"``: the label list the description ends with (or its ``<answer>`` with
    ``layout="think-answer"``; none found: no labels); a callable is returned as is."""
    if callable(kind):
        return kind
    if kind == "lexicon":
        from affectgpt.eval.lexicon import LexiconExtractor

        lexicon = LexiconExtractor()
        return lambda texts: [lexicon.extract(t) for t in texts]
    if kind == "answer":
        if layout not in ANSWER_LAYOUTS:
            raise ValueError(f"unknown answer layout {layout!r}; choose from {ANSWER_LAYOUTS}")
        return lambda texts: [answer_labels(t, layout) or [] for t in texts]
    raise ValueError(f"unknown label extractor {kind!r}: use 'lexicon', 'answer' or a callable")


def llm_extractor(client, *, max_attempts: int = 3, max_tokens: int = 128) -> LabelExtractor:
    """Label extraction by an LLM endpoint (the ``extract-labels`` protocol and its reply
    cache, through ``client``, an :class:`affectgpt.llm.ChatClient`); a description the
    LLM cannot answer validly gets None (scored as no labels, counted as a failure)."""
    from affectgpt.eval.extract import extract_labels_llm

    def extract(texts: Sequence[str]) -> list[list[str] | None]:
        keys = [str(i) for i in range(len(texts))]
        labels, _ = extract_labels_llm(dict(zip(keys, texts)), client,
                                       max_attempts=max_attempts, progress=False,
                                       max_tokens=max_tokens)
        return [labels.get(k) for k in keys]

    return extract


def repeat_batch(batch: Mapping[str, Any], times: int) -> dict[str, Any]:
    """Every sample of a model batch repeated ``times`` times in a row (targets dropped)."""
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if key == "target":
            continue
        if value is None:
            out[key] = None
        elif isinstance(value, torch.Tensor):
            out[key] = value.repeat_interleave(times, dim=0)
        elif isinstance(value, (list, tuple)):
            out[key] = [v for v in value for _ in range(times)]
        else:
            raise TypeError(f"batch[{key!r}] is a {type(value).__name__}, not a tensor or list")
    return out


def completion_lengths(ids: torch.Tensor, tokenizer, *, eos_ids: Sequence[int],
                       stop: str | None) -> list[int]:
    """Tokens each sampled row really holds: up to and including its first EOS id or the
    token that completes ``stop`` (a text stop such as ``###``), else the whole row
    (what follows was padding)."""
    eos = set(int(i) for i in eos_ids)
    check_text = bool(stop) and stop not in tokenizer.all_special_tokens
    lengths = []
    for row in ids.tolist():
        end = next((j + 1 for j, t in enumerate(row) if t in eos), len(row))
        if check_text and stop in tokenizer.decode(row[:end], skip_special_tokens=False):
            lo, hi = 1, end  # the shortest prefix that contains the stop text
            while lo < hi:
                mid = (lo + hi) // 2
                if stop in tokenizer.decode(row[:mid], skip_special_tokens=False):
                    hi = mid
                else:
                    lo = mid + 1
            end = lo
        lengths.append(end)
    return lengths


def completion_logprobs(model, batch: Mapping[str, Any], completion_ids: torch.Tensor,
                        completion_mask: torch.Tensor, temperature: float = 1.0,
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities ``[B, T]`` (0 where the mask is 0) of ``completion_ids`` after the
    prompts of ``batch`` under ``softmax(logits / temperature)``, and the model's zero
    ``touch`` scalar (add it to a loss for DDP). Differentiable w.r.t. the trainable
    weights when grad is enabled; only the completion positions' logits are computed."""
    prompt, embeds, touch = model.prepare(batch, with_targets=False, padding_side="left")
    pad = model.prompt.pad_token_id
    ids = completion_ids.masked_fill(completion_mask == 0, pad)
    completion = model.llm.get_input_embeddings()(ids).to(embeds.dtype)
    attention = torch.cat([prompt.attention_mask, completion_mask.to(prompt.attention_mask)], 1)
    positions = (attention.long().cumsum(-1) - 1).clamp(min=0)
    steps = ids.shape[1]
    out = model.llm(inputs_embeds=torch.cat([embeds, completion], 1), attention_mask=attention,
                    position_ids=positions, use_cache=False, logits_to_keep=steps + 1)
    logits = out.logits[:, :-1].float() / temperature
    picked = logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    logp = picked - torch.logsumexp(logits, dim=-1)
    return logp * completion_mask.to(logp.dtype), touch


def group_advantages(rewards: torch.Tensor, group_size: int, *, scale: bool = True,
                     eps: float = 1e-4) -> torch.Tensor:
    """``(r - group mean) / (group std + eps)`` (population std; without ``scale`` only
    centred; 0 for a group of equal rewards) for rewards laid out group after group."""
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not form groups of {group_size}")
    groups = rewards.reshape(-1, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if scale:
        std = groups.std(dim=1, unbiased=False, keepdim=True)
        # a group of equal rewards has nothing to compare: advantages 0 (not 0/0)
        centred = centred / torch.where(std > 0, std + eps, torch.ones_like(std))
    return centred.reshape(-1)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None,
              advantages: torch.Tensor, mask: torch.Tensor, *, clip_eps: float,
              kl_coef: float, aggregation: str = "sequence",
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped GRPO objective (see the module docstring) as a loss to minimise, and
    detached statistics: ``kl`` (token mean of the k3 estimate, when ``ref_logp`` is
    given) and ``clip_fraction`` (share of tokens whose ratio was clipped)."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}")
    mask = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    adv = advantages.to(logp.dtype).unsqueeze(1)
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    per_token = -surrogate
    stats: dict[str, torch.Tensor] = {}
    tokens = mask.sum().clamp(min=1)
    if ref_logp is not None:
        delta = ref_logp - logp
        kl = torch.exp(delta) - delta - 1
        if kl_coef:
            per_token = per_token + kl_coef * kl
        stats["kl"] = ((kl * mask).sum() / tokens).detach()
    clipped = ((ratio < 1 - clip_eps) & (adv < 0)) | ((ratio > 1 + clip_eps) & (adv > 0))
    stats["clip_fraction"] = ((clipped.to(mask.dtype) * mask).sum() / tokens).detach()
    if aggregation == "sequence":
        loss = ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
    else:
        loss = (per_token * mask).sum() / tokens
    return loss, stats


@contextlib.contextmanager
def swapped_weights(model: nn.Module, state: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """Temporarily copy ``state`` (a subset of the parameters, by name) into ``model``;
    the current values are put back on exit. No gradient flows through the swap."""
    params = dict(model.named_parameters())
    unknown = sorted(set(state) - set(params))
    if unknown:
        raise KeyError(f"weights match no parameter of the model, e.g. {unknown[:5]}")
    with torch.no_grad():
        backup = {k: params[k].detach().clone() for k in state}
        for k, v in state.items():
            params[k].copy_(v)
    try:
        yield
    finally:
        with torch.no_grad():
            for k, v in backup.items():
                params[k].copy_(v)


class RewardCache:
    """Least-recently-used ``(clip, text) -> (labels, RewardBreakdown)`` (0: no cache)."""

    def __init__(self, size: int = 100_000):
        self.size = size
        self._items: OrderedDict[tuple[str, str], tuple[list[str], RewardBreakdown]] = \
            OrderedDict()

    def get(self, key: tuple[str, str]) -> tuple[list[str], RewardBreakdown] | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: tuple[str, str], value: tuple[list[str], RewardBreakdown]) -> None:
        if self.size <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


# --------------------------------------------------------------------------- objective
class GRPOObjective(nn.Module):
    """What the trainer optimises: ``forward(rollout) -> {"loss", "kl", "clip_fraction"}``.

    It holds the policy's submodules under the policy's own names (no prefix), so its
    state dict, trainable weights and checkpoints are exactly the policy's (a GRPO
    checkpoint loads into an :class:`AffectGPT` like a supervised one).
    """

    def __init__(self, policy: nn.Module, config: GRPOConfig):
        super().__init__()
        for name, child in policy.named_children():
            self.add_module(name, child)
        object.__setattr__(self, "policy", policy)  # not a submodule: no "policy." prefix
        self.config = config

    def train(self, mode: bool = True) -> GRPOObjective:
        self.training = mode
        self.policy.train(mode)
        return self

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return trainable_state(self.policy)

    def forward(self, rollout: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        cfg = self.config
        logp, touch = completion_logprobs(self.policy, rollout["batch"], rollout["ids"],
                                          rollout["mask"], cfg.temperature)
        old = rollout.get("old_logp")
        loss, stats = grpo_loss(logp, logp.detach() if old is None else old,
                                rollout.get("ref_logp"), rollout["advantages"],
                                rollout["mask"], clip_eps=cfg.clip_eps, kl_coef=cfg.kl_coef,
                                aggregation=cfg.loss_aggregation)
        return {"loss": loss + touch.to(loss.dtype), **stats}


# --------------------------------------------------------------------------- trainer
class GRPOTrainer(Trainer):
    """The supervised :class:`Trainer` with GRPO steps (see the module docstring).

    ``policy``: an :class:`~affectgpt.model.AffectGPT` holding the supervised weights (or
    given them through ``cfg.init_from``); ``train_dataset`` / ``collate_fn`` yield model
    batches with ``name`` and gold ``labels`` (as
    :func:`affectgpt.data.collate.collate_batch` does); ``reward`` scores the sampled
    descriptions; ``extractor``: see :func:`make_extractor`; ``eval_fn(policy, epoch)``
    as for the :class:`Trainer` (e.g. the validation score).
    """

    def __init__(self, policy: nn.Module, train_dataset: Dataset, reward: CompositeReward, *,
                 cfg: TrainConfig | None = None, grpo: GRPOConfig | None = None,
                 collate_fn: Callable | None = None,
                 extractor: str | LabelExtractor = "lexicon", eval_fn: EvalFn | None = None):
        if collate_fn is None:
            from affectgpt.data.collate import collate_batch

            collate_fn = collate_batch
        grpo = grpo or GRPOConfig()
        cfg = cfg or grpo_train_config()
        cfg = cfg.replace(extra={**cfg.extra, "grpo": grpo.to_dict()})
        objective = GRPOObjective(policy, grpo)
        wrapped_eval = None
        if eval_fn is not None:
            def wrapped_eval(_model: nn.Module, epoch: int):
                return eval_fn(policy, epoch)
        super().__init__(objective, train_dataset, collate_fn, cfg, eval_fn=wrapped_eval)
        self.policy, self.grpo, self.reward = policy, grpo, reward
        self.extractor = make_extractor(extractor)
        self.cache = RewardCache(grpo.reward_cache_size)
        self.reference: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ reference
    def fit(self, resume: str | os.PathLike | None = None) -> dict[str, Any]:
        """:meth:`Trainer.fit`; a resumed run reads its reference weights back."""
        path = self._find_resume(resume)
        self.reference = None  # a fresh run takes the weights of its first step
        if path is not None:
            file = path.parent / REFERENCE_FILE
            if not file.is_file():
                raise FileNotFoundError(f"cannot resume GRPO from {path}: the run folder "
                                        f"lacks the reference weights {file}")
            self.reference = {k: v.to(self.device) for k, v in
                              ckpt.load_trainable(file).items()}
            saved = ckpt.load_state(path).get("config", {}).get("extra", {}).get("grpo")
            if saved is not None and saved != self.grpo.to_dict():
                changed = sorted(k for k in saved if saved[k] != self.grpo.to_dict().get(k))
                log.warning("resuming %s with changed GRPO settings %s: the run will not "
                            "match an uninterrupted one", path, changed)
        return super().fit(resume)

    def _capture_reference(self) -> None:
        from safetensors.torch import save_file

        self.reference = {k: v.detach().clone() for k, v in
                          trainable_state(self.model).items()}
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.out_dir / f".{REFERENCE_FILE}.{os.getpid()}.tmp"
            save_file(ckpt.trainable_to_cpu(self.reference), str(tmp))
            os.replace(tmp, self.out_dir / REFERENCE_FILE)

    # ------------------------------------------------------------------ sampling
    def rollout(self, batch: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Sample, score and prepare one batch: ``(rollout for the objective, stats)``."""
        grpo, policy = self.grpo, self.policy
        if "name" not in batch or "labels" not in batch:
            raise KeyError("GRPO batches need 'name' and gold 'labels' (collate_batch)")
        names = [str(n) for n in batch["name"]]
        golds = [list(g or []) for g in batch["labels"]]
        size = grpo.group_size
        repeated = repeat_batch(batch, size)
        seed = int(torch.randint(0, 2**31 - 1, ()).item())  # from the (resumable) RNG
        stop = policy.prompt.stop
        ids = policy.generate_ids(repeated, max_new_tokens=grpo.max_new_tokens, do_sample=True,
                                  top_p=grpo.top_p, temperature=grpo.temperature,
                                  top_k=grpo.top_k, stop=stop, seed=seed)
        lengths = completion_lengths(ids, policy.tokenizer, eos_ids=policy._eos_ids(stop),
                                     stop=stop)
        ids = ids[:, :max(lengths)]
        mask = (torch.arange(ids.shape[1], device=ids.device)[None, :]
                < torch.tensor(lengths, device=ids.device)[:, None]).long()
        texts = [cut_at_stop(policy.tokenizer.decode(row[:n], skip_special_tokens=True), stop)
                 for row, n in zip(ids.tolist(), lengths)]
        scored, hits, failures = self._score(names, golds, texts, size)
        rewards = torch.tensor([b.total for _, b in scored], dtype=torch.float32)
        advantages = group_advantages(rewards, size, scale=grpo.scale_rewards,
                                      eps=grpo.adv_eps)
        rollout: dict[str, Any] = {"batch": repeated, "ids": ids, "mask": mask,
                                   "advantages": advantages.to(self.device)}
        with torch.no_grad(), self._autocast():
            if grpo.updates_per_batch > 1:
                rollout["old_logp"], _ = completion_logprobs(policy, repeated, ids, mask,
                                                             grpo.temperature)
            if grpo.kl_coef > 0 or grpo.track_kl:
                with swapped_weights(self.model, self.reference):
                    rollout["ref_logp"], _ = completion_logprobs(policy, repeated, ids, mask,
                                                                 grpo.temperature)
        groups = rewards.reshape(-1, size)
        stats: dict[str, Any] = {
            "n": len(texts),
            "reward": float(rewards.mean()),
            "reward_std": float(groups.std(dim=1, unbiased=False).mean()),
            "zero_advantage": float((groups.max(1).values == groups.min(1).values)
                                    .float().mean()),
            "length": float(mask.sum(1).float().mean()),
            "words": sum(len(t.split()) for t in texts) / len(texts),
            "cache_hits": hits, "extraction_failures": failures,
        }
        for name in self.reward.names:
            stats[f"reward/{name}"] = sum(b.components[name] for _, b in scored) / len(scored)
        return rollout, stats

    def _score(self, names: list[str], golds: list[list[str]], texts: list[str], size: int,
               ) -> tuple[list[tuple[list[str], RewardBreakdown]], int, int]:
        keys = [(names[i // size], t) for i, t in enumerate(texts)]
        found = {k: v for k in dict.fromkeys(keys) if (v := self.cache.get(k)) is not None}
        todo = [k for k in dict.fromkeys(keys) if k not in found]
        failures = 0
        if todo:
            labels = self.extractor([t for _, t in todo])
            if len(labels) != len(todo):
                raise ValueError(f"the label extractor returned {len(labels)} results for "
                                 f"{len(todo)} texts")
            gold_of = {names[i // size]: golds[i // size] for i in range(len(texts))}
            for (name, text), found_labels in zip(todo, labels):
                failures += found_labels is None
                chosen = list(found_labels or [])
                value = (chosen, self.reward.score(text, chosen, gold_of[name], sample=name))
                if found_labels is not None:  # a failed extraction may succeed next time
                    self.cache.put((name, text), value)
                found[(name, text)] = value
        hits = len(keys) - len(todo)
        return [found[k] for k in keys], hits, failures

    # ------------------------------------------------------------------ one step
    def _step(self, forward: nn.Module, data) -> tuple[float, float, float, int, float | None]:
        cfg, grpo = self.cfg, self.grpo
        t0 = time.perf_counter()
        if self.reference is None:
            self._capture_reference()
        n_micro = self.micro_batches(self.global_step % self.steps_per_epoch)
        lr = float(self.optimizer.param_groups[0]["lr"])
        rollouts, stats, samples = [], [], 0
        for _ in range(n_micro):
            samples += self.sampler.next_batch_len() * self.dist.world_size
            batch = next(data)
            self.sampler.advance()
            batch = move_to(batch, self.device, non_blocking=self.device.type == "cuda")
            rollout, stat = self.rollout(batch)
            rollouts.append(rollout)
            stats.append(stat)
        losses, kls, clips = [], [], []
        grad_norm = None
        for _ in range(grpo.updates_per_batch):
            for m, rollout in enumerate(rollouts):
                sync = m == n_micro - 1
                ctx = self._ddp.no_sync() if (self._ddp is not None and not sync) \
                    else contextlib.nullcontext()
                with ctx:
                    with self._autocast():
                        out = forward(rollout)
                    result = out[1] if self._ddp is not None else out
                    loss = out[0] if self._ddp is not None else loss_of(out)
                    (loss.float() / n_micro).backward()
                losses.append(loss.detach().float())
                if "kl" in result:
                    kls.append(result["kl"].float())
                clips.append(result["clip_fraction"].float())
            if cfg.max_grad_norm is not None:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.trainable,
                                                                 cfg.max_grad_norm))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        value = float(tdist.mean_across(self.dist, torch.stack(losses).mean()).item())
        if not math.isfinite(value):
            raise FloatingPointError(f"GRPO loss is {value} at step {self.global_step + 1}; "
                                     f"the last checkpoint is {self.last_checkpoint}")
        local = _merge_stats(stats)
        # KL and clipping of the first update: the policy the samples came from
        per_update = len(rollouts)
        if kls:
            local["kl"] = float(torch.stack(kls[:per_update]).mean())
        local["clip_fraction"] = float(torch.stack(clips).mean())
        merged = _merge_stats(tdist.all_gather_object(self.dist, local))
        merged.pop("n", None)
        self.step_metrics = {k: (round(v, 6) if isinstance(v, float) else v)
                             for k, v in merged.items()}
        return value, lr, time.perf_counter() - t0, samples, grad_norm

    # ------------------------------------------------------------------ plots
    def _plot(self) -> None:
        super()._plot()
        try:
            from affectgpt.train import plots
        except ImportError:  # pragma: no cover
            return
        records = self._read_jsonl("train_log.jsonl")
        if not records:
            return
        steps = [r["step"] for r in records]

        def series(keys: Sequence[str]) -> dict[str, list[float]]:
            return {k: [r.get(k, math.nan) for r in records] for k in keys
                    if any(k in r for r in records)}

        components = sorted({k for r in records for k in r if k.startswith("reward/")})
        try:
            plots.plot_series(steps, series(["reward", *components]), self.out_dir /
                              "rewards.png", ylabel="mean reward",
                              title=f"{self.cfg.stage}: reward per component")
            plots.plot_series(steps, series(["kl"]), self.out_dir / "kl.png",
                              ylabel="KL to the reference", title=f"{self.cfg.stage}: KL")
            plots.plot_series(steps, series(["length"]), self.out_dir / "length.png",
                              ylabel="sampled tokens", title=f"{self.cfg.stage}: length")
        except ImportError as e:
            log.warning("no plots (%s); install the 'plots' extra", e)


def _merge_stats(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Sample-weighted means of per-batch (or per-rank) statistics; counts are summed."""
    total = sum(p["n"] for p in parts)
    out: dict[str, Any] = {"n": total}
    for key in parts[0]:
        if key == "n":
            continue
        if key in ("cache_hits", "extraction_failures"):
            out[key] = int(sum(p.get(key, 0) for p in parts))
        else:
            values = [(p[key], p["n"]) for p in parts if key in p]
            out[key] = float(sum(v * n for v, n in values) / max(1, sum(n for _, n in values)))
    return out


# --------------------------------------------------------------------------- entry point
def run_grpo(policy: nn.Module, train_dataset: Dataset, reward: CompositeReward, *,
             train: TrainConfig | None = None, grpo: GRPOConfig | None = None,
             collate_fn: Callable | None = None, extractor: str | LabelExtractor = "lexicon",
             eval_fn: EvalFn | None = None,
             resume: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run GRPO on ``policy`` (see :class:`GRPOTrainer`) and return the trainer's summary
    (also ``<out_dir>/summary.json``). Works in one process or under ``torchrun``.

    ``train``: the trainer settings (default :func:`grpo_train_config`): ``out_dir``,
    ``init_from`` (the supervised checkpoint), ``lr``, ``epochs``, ``batch_size`` (clips
    per step and process), ``seed``, ``eval_every`` ...; ``resume``: ``"auto"`` or a
    checkpoint, as :meth:`Trainer.fit`.
    """
    trainer = GRPOTrainer(policy, train_dataset, reward, cfg=train, grpo=grpo,
                          collate_fn=collate_fn, extractor=extractor, eval_fn=eval_fn)
    try:
        return trainer.fit(resume=resume)
    finally:
        trainer.close()

