"""A model-agnostic trainer: AdamW, warm-up + cosine, exact resume, DDP, logs and plots.

The model contract
    ``model(batch)`` returns an object with a ``.loss`` attribute, a mapping with a
    ``"loss"`` key, or the loss tensor itself. ``model.trainable_state_dict()`` returns the
    trainable weights only (when missing, the ``requires_grad`` parameters are used) and
    ``model.load_state_dict(sd, strict=False)`` loads them back. Frozen parts have
    ``requires_grad=False``: they never enter the optimizer or a checkpoint, and (with
    ``freeze_eval``) every fully frozen submodule is kept in eval mode while the rest
    trains, so a frozen encoder's dropout stays off.

Under DDP every trainable parameter must receive a gradient on every step. A branch a
batch does not use (the audio Q-Former for a batch without audio) should still be
touched, e.g. ``loss = loss + 0.0 * sum(p.sum() for p in branch.parameters())``; or set
``find_unused_parameters=True`` (slower: DDP then walks the graph every step).

Outputs in ``cfg.out_dir`` (written by rank 0 only)::

    config.json          the TrainConfig
    train_log.jsonl      one line per step: step, epoch, loss, lr, seconds (+ grad_norm)
    eval_log.jsonl       one line per evaluation: epoch, step, scores
    loss.png scores.png  see affectgpt.train.plots
    checkpoint-<step>/   see affectgpt.train.checkpoint; ``latest`` and ``best`` pointers
    summary.json         written at the end
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from affectgpt.io import append_jsonl, atomic_write, read_jsonl
from affectgpt.train import checkpoint as ckpt
from affectgpt.train import dist as tdist
from affectgpt.train.config import TrainConfig
from affectgpt.train.sampler import ResumableBatchSampler
from affectgpt.train.schedule import build_optimizer, make_scheduler, warmup_steps_for

log = logging.getLogger("affectgpt.train")

EvalFn = Callable[[nn.Module, int], Mapping[str, Any] | None]

_EVAL_FAILED = "__eval_failed__"

# Config fields that change the loss sequence; a resume with other values is warned about.
_EXACTNESS_FIELDS = ("lr", "min_lr", "warmup_start_lr", "warmup_steps", "warmup_ratio",
                     "weight_decay", "epochs", "iters_per_epoch", "batch_size", "grad_accum",
                     "drop_last", "shuffle", "seed", "max_grad_norm", "precision")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def loss_of(output: Any) -> torch.Tensor:
    """The loss of a model output (``.loss``, ``["loss"]`` or the tensor itself)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping) and "loss" in output:
        return output["loss"]
    loss = getattr(output, "loss", None)
    if isinstance(loss, torch.Tensor):
        return loss
    raise TypeError(f"the model returned {type(output).__name__} without a loss tensor "
                    "(expected .loss, ['loss'] or a tensor)")


def move_to(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Tensors in nested dicts / lists / tuples moved to ``device``; everything else as is."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        moved = {k: move_to(v, device, non_blocking) for k, v in batch.items()}
        if type(batch) is dict:
            return moved
        try:
            return type(batch)(moved)
        except Exception:  # a mapping type that cannot be rebuilt from a dict
            return moved
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        return dataclasses.replace(batch, **{
            f.name: move_to(getattr(batch, f.name), device, non_blocking)
            for f in dataclasses.fields(batch) if f.init})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to(v, device, non_blocking) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device, non_blocking) for v in batch)
    return batch


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.trainable_state_dict()``, or the ``requires_grad`` parameters."""
    if hasattr(model, "trainable_state_dict"):
        return dict(model.trainable_state_dict())
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def frozen_submodules(model: nn.Module) -> list[nn.Module]:
    """The outermost submodules whose parameters all have ``requires_grad=False``."""
    found: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            found.append(module)
            return
        for child in module.children():
            visit(child)

    for child in model.children():
        visit(child)
    return found


def _seed_worker(worker_id: int) -> None:
    """DataLoader workers: python and numpy follow torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


class _LossModule(nn.Module):
    """What DDP wraps: returns ``(loss, output)`` so DDP always finds the loss tensor."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: Any):
        output = self.model(batch)
        return loss_of(output), output


class Trainer:
    """Train ``model`` on ``train_dataset`` (batched by ``collate_fn``) as ``cfg`` says.

    ``eval_fn(model, epoch) -> {name: score}`` runs on rank 0 after every ``eval_every``-th
    epoch (1-based) and after the last, with the unwrapped model in eval mode and the
    training RNG streams saved and restored around it (evaluation never changes the
    training run). Call :meth:`fit` with ``resume="auto"`` (the latest checkpoint in
    ``out_dir``, if any) or a checkpoint/run folder to continue an interrupted run exactly:
    weights, optimizer, schedule, data position and every RNG come from the checkpoint
    (``cfg.init_from`` is then ignored). Without a resume, ``fit`` seeds python, numpy and
    torch with ``seed + rank`` and, with ``cfg.init_from``, loads trainable weights only
    (stage 2 from stage 1: fresh optimizer and schedule).

    Seed before building the model (:func:`seed_everything`): freshly initialised trainable
    weights come from the global RNG at construction, before ``fit`` reseeds.

    Exactness: the data order is a function of ``(seed, pass, position)``; worker processes
    get seeds from a generator of their own, so the training RNG streams (dropout) are
    untouched by ``num_workers``. Random augmentation inside ``Dataset.__getitem__`` run by
    workers is only reproduced across a resume if derived from the index (worker RNG
    streams restart with the loader).
    """

    def __init__(self, model: nn.Module, train_dataset: Dataset, collate_fn: Callable | None = None,
                 cfg: TrainConfig | None = None, eval_fn: EvalFn | None = None):
        self.cfg = cfg = cfg or TrainConfig()
        self.dist = tdist.init_distributed(cfg.device, cfg.dist_timeout_s)
        self.device = tdist.resolve_device(cfg.device, self.dist.local_rank)
        self.model = model.to(self.device)
        self.train_dataset, self.collate_fn, self.eval_fn = train_dataset, collate_fn, eval_fn
        self.out_dir = Path(cfg.out_dir)
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        if not self.trainable:
            raise ValueError("the model has no trainable parameters (requires_grad=True)")
        low = sorted({str(p.dtype) for p in self.trainable if p.dtype != torch.float32})
        if low:
            log.warning("trainable parameters in %s: AdamW updates lose precision; keep "
                        "trainable weights fp32 (autocast handles bf16 compute)", low)
        self._frozen_modules = frozen_submodules(model) if cfg.freeze_eval else []
        self.autocast_dtype = None
        if cfg.precision == "bf16":
            if self.device.type == "cuda":
                self.autocast_dtype = torch.bfloat16
            else:
                log.warning("precision bf16: autocast is used on CUDA only; %s runs in fp32",
                            self.device)
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False

        self.sampler = ResumableBatchSampler(
            len(train_dataset), cfg.batch_size, seed=cfg.seed, shuffle=cfg.shuffle,
            drop_last=cfg.drop_last, rank=self.dist.rank, world_size=self.dist.world_size)
        if cfg.iters_per_epoch is not None:
            self.steps_per_epoch = int(cfg.iters_per_epoch)
        else:
            self.steps_per_epoch = math.ceil(self.sampler.batches_per_epoch / cfg.grad_accum)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.warmup_steps = warmup_steps_for(self.total_steps, cfg.warmup_steps, cfg.warmup_ratio)
        self.optimizer = build_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                         betas=cfg.betas, eps=cfg.eps)
        self.scheduler = make_scheduler(self.optimizer, lr=cfg.lr, min_lr=cfg.min_lr,
                                        total_steps=self.total_steps,
                                        warmup_steps=self.warmup_steps,
                                        warmup_start_lr=cfg.warmup_start_lr)
        self.global_step = 0
        self.best: dict[str, Any] | None = None
        self.eval_history: list[dict[str, Any]] = []
        self.resumed_from: str | None = None
        self.init_report: dict[str, Any] | None = None
        self.last_checkpoint: Path | None = None
        self._ddp: nn.Module | None = None
        # extra numbers of the last step for train_log.jsonl (set by a subclass's _step)
        self.step_metrics: dict[str, float] = {}

    # ------------------------------------------------------------------ properties
    @property
    def effective_batch_size(self) -> int:
        return self.cfg.batch_size * self.cfg.grad_accum * self.dist.world_size

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return self.global_step // self.steps_per_epoch

    def micro_batches(self, step_in_epoch: int) -> int:
        """Micro-batches of a step: ``grad_accum``, fewer at the end of a true epoch."""
        if self.cfg.iters_per_epoch is not None:
            return self.cfg.grad_accum
        left = self.sampler.batches_per_epoch - step_in_epoch * self.cfg.grad_accum
        return max(1, min(self.cfg.grad_accum, left))

    # ------------------------------------------------------------------ modes
    def train_mode(self) -> None:
        self.model.train()
        for module in self._frozen_modules:
            module.eval()

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    # ------------------------------------------------------------------ weights
    def load_weights(self, state: Mapping[str, torch.Tensor], *, require_all: bool) -> dict:
        """Load trainable weights; unknown names always fail, missing trainable names fail
        when ``require_all`` (resume) and are reported otherwise (``init_from``)."""
        expected = set(trainable_state(self.model))
        known = set(self.model.state_dict())
        unexpected = sorted(set(state) - known)
        if unexpected:
            raise ValueError(f"{len(unexpected)} weights match nothing in the model, e.g. "
                             f"{unexpected[:5]}")
        missing = sorted(expected - set(state))
        if missing and require_all:
            raise ValueError(f"checkpoint lacks {len(missing)} trainable weights, e.g. "
                             f"{missing[:5]}")
        if missing:
            log.warning("init_from: %d trainable weights not in the checkpoint keep their "
                        "initial values, e.g. %s", len(missing), missing[:5])
        self.model.load_state_dict(dict(state), strict=False)
        return {"loaded": len(state), "missing_trainable": missing}

    # ------------------------------------------------------------------ checkpoints
    def _trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.global_step, "epoch": self.epoch,
            "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
            "sampler": self.sampler.state_dict(), "best": self.best,
            "world_size": self.dist.world_size, "stage": self.cfg.stage,
            "config": self.cfg.to_dict(), "time": time.time(),
        }

    def save_checkpoint(self) -> Path:
        """Collective under DDP: every rank must call it."""
        rng_states = tdist.all_gather_object(self.dist, ckpt.capture_rng())
        target = self.out_dir / ckpt.checkpoint_name(self.global_step)
        if self.dist.is_main:
            ckpt.remove_stale_temp(self.out_dir)
            target = ckpt.save_checkpoint(
                self.out_dir, self.global_step, weights=trainable_state(self.model),
                optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                rng={"world_size": self.dist.world_size, "states": rng_states},
                state=self._trainer_state())
            protect = {target}
            if self.best is not None:
                protect.add(self.out_dir / ckpt.checkpoint_name(self.best["step"]))
            ckpt.prune(self.out_dir, self.cfg.keep_last, protect)
        tdist.barrier(self.dist)
        self.last_checkpoint = target
        return target

    def _resume(self, path: Path) -> dict:
        state = ckpt.load_state(path)
        saved_cfg = state.get("config", {})
        changed = [k for k in _EXACTNESS_FIELDS
                   if k in saved_cfg and saved_cfg[k] != self.cfg.to_dict()[k]]
        if changed:
            log.warning("resuming %s with changed settings %s: the run will not match an "
                        "uninterrupted one", path, changed)
        if state.get("world_size", 1) != self.dist.world_size:
            raise ValueError(f"{path} was written by {state.get('world_size')} processes, "
                             f"now {self.dist.world_size}: the data order cannot be resumed")
        self.load_weights(ckpt.load_trainable(path / ckpt.WEIGHTS), require_all=True)
        self.optimizer.load_state_dict(
            torch.load(path / ckpt.OPTIMIZER, map_location=self.device, weights_only=True))
        self.scheduler.load_state_dict(torch.load(path / ckpt.SCHEDULER, weights_only=True))
        self.sampler.load_state_dict(state["sampler"])
        self.global_step = int(state["step"])
        self.best = state.get("best")
        self.resumed_from = str(path)
        self.last_checkpoint = path
        return torch.load(path / ckpt.RNG, weights_only=True)

    def _find_resume(self, resume: str | os.PathLike | None) -> Path | None:
        if resume is None or resume is False:
            return None
        if str(resume) == "auto":
            found = ckpt.find_latest(self.out_dir) if self.dist.is_main else None
            found = tdist.broadcast_object(self.dist, str(found) if found else None)
            if found is None:
                log.info("resume=auto: no checkpoint in %s, starting afresh", self.out_dir)
            return Path(found) if found else None
        return ckpt.resolve_checkpoint(resume)

    # ------------------------------------------------------------------ logs
    def _truncate_logs(self) -> None:
        """After a resume, drop log lines of steps past the checkpoint."""
        for name in ("train_log.jsonl", "eval_log.jsonl"):
            path = self.out_dir / name
            if not path.is_file():
                continue
            kept = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:  # a line cut by the crash
                    continue
                if int(record.get("step", 0)) <= self.global_step:
                    kept.append(line)
            atomic_write(path, "".join(k + "\n" for k in kept))

    def _read_jsonl(self, name: str) -> list[dict]:
        return read_jsonl(self.out_dir / name)

    def _append(self, name: str, record: dict) -> None:
        append_jsonl(self.out_dir / name, record)

    def _plot(self) -> None:
        try:
            from affectgpt.train import plots
        except ImportError:  # pragma: no cover
            return
        try:
            records = self._read_jsonl("train_log.jsonl")
            if records:
                plots.plot_loss([r["step"] for r in records], [r["loss"] for r in records],
                                self.out_dir / "loss.png", title=f"{self.cfg.stage} loss")
            if self.eval_history:
                epochs = [e["epoch"] for e in self.eval_history]
                names = sorted({k for e in self.eval_history for k, v in e["scores"].items()
                                if isinstance(v, (int, float)) and not isinstance(v, bool)})
                scores = {n: [float(e["scores"].get(n, math.nan)) for e in self.eval_history]
                          for n in names}
                plots.plot_scores(epochs, scores, self.out_dir / "scores.png",
                                  window=self.cfg.smooth_window,
                                  title=f"{self.cfg.stage} evaluation "
                                        f"(checkpoint: {self.cfg.selection_label})")
        except ImportError as e:
            log.warning("no plots (%s); install the 'plots' extra", e)

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, epoch: int) -> dict[str, Any]:
        scores: dict[str, Any] = {}
        failure: BaseException | None = None
        if self.dist.is_main:
            rng = ckpt.capture_rng()
            self.model.eval()
            try:
                scores = dict(self.eval_fn(self.model, epoch) or {})
            except Exception as e:  # tell the other ranks before raising
                failure, scores = e, {_EVAL_FAILED: f"{type(e).__name__}: {e}"}
            finally:
                ckpt.restore_rng(rng)
                self.train_mode()
        scores = tdist.broadcast_object(self.dist, scores)
        if failure is not None:
            raise failure
        if _EVAL_FAILED in scores:
            raise RuntimeError(f"eval_fn failed on rank 0: {scores[_EVAL_FAILED]}")
        record = {"epoch": epoch, "step": self.global_step, "scores": scores}
        self.eval_history.append(record)
        if self.dist.is_main:
            self._append("eval_log.jsonl", record)
        return scores

    def _improves(self, scores: Mapping[str, Any]) -> bool:
        name = self.cfg.best_metric
        if name is None or not isinstance(scores.get(name), (int, float)):
            return False
        value = float(scores[name])
        if not math.isfinite(value):
            return False
        if self.best is not None:
            old = self.best["value"]
            if (value <= old) if self.cfg.best_mode == "max" else (value >= old):
                return False
        self.best = {"metric": name, "value": value, "epoch": self.epoch,
                     "step": self.global_step,
                     "checkpoint": ckpt.checkpoint_name(self.global_step)}
        return True

    # ------------------------------------------------------------------ data
    def _loader_iter(self):
        g = torch.Generator()
        g.manual_seed(self.cfg.seed * 1_000_003 + self.dist.rank * 10_007
                      + self.sampler.data_epoch * 101 + self.sampler.position)
        loader = DataLoader(self.train_dataset, batch_sampler=self.sampler,
                            collate_fn=self.collate_fn, num_workers=self.cfg.num_workers,
                            pin_memory=self.device.type == "cuda", generator=g,
                            worker_init_fn=_seed_worker if self.cfg.num_workers else None)
        return iter(loader)

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: str | os.PathLike | None = None) -> dict[str, Any]:
        """Train to the end (or ``cfg.max_steps``); return the summary (also summary.json)."""
        cfg, is_main = self.cfg, self.dist.is_main
        started = time.perf_counter()
        rng_blob = None
        path = self._find_resume(resume)
        if path is not None:
            rng_blob = self._resume(path)
            log.info("resumed from %s at step %d", path, self.global_step)
        else:
            seed_everything(cfg.seed + self.dist.rank)
            if cfg.init_from:
                self.init_report = self.load_weights(ckpt.load_trainable(cfg.init_from),
                                                     require_all=False)
                self.init_report["path"] = str(cfg.init_from)
                log.info("initialised trainable weights from %s", cfg.init_from)
        if path is None:
            self._check_fresh_out_dir()
        if is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            ckpt.remove_stale_temp(self.out_dir)
            atomic_write(self.out_dir / "config.json", cfg.to_json() + "\n")
            if path is None:
                for name in ("train_log.jsonl", "eval_log.jsonl"):
                    (self.out_dir / name).unlink(missing_ok=True)
            else:
                self._truncate_logs()
            self.eval_history = self._read_jsonl("eval_log.jsonl")
            log.info("%s: %d trainable / %d frozen parameters, %d steps/epoch x %d epochs = "
                     "%d steps (warm-up %d), effective batch %d", cfg.stage,
                     sum(p.numel() for p in self.trainable),
                     sum(p.numel() for p in self.model.parameters() if not p.requires_grad),
                     self.steps_per_epoch, cfg.epochs, self.total_steps, self.warmup_steps,
                     self.effective_batch_size)
        self.eval_history = tdist.broadcast_object(self.dist, self.eval_history)
        tdist.barrier(self.dist)

        forward = self.model
        if self.dist.enabled:
            wrapped = _LossModule(self.model)
            frozen = [f"model.{n}" for n, p in self.model.named_parameters()
                      if not p.requires_grad]
            if frozen and hasattr(nn.parallel.DistributedDataParallel,
                                  "_set_params_and_buffers_to_ignore_for_model"):
                # every rank loads the same frozen weights: no need to broadcast them
                nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
                    wrapped, frozen)
            self._ddp = forward = nn.parallel.DistributedDataParallel(
                wrapped, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters)

        stop_at = self.total_steps if cfg.max_steps is None else min(self.total_steps,
                                                                      cfg.max_steps)
        losses_this_run: list[float] = []
        data = self._loader_iter() if self.global_step < stop_at else None
        bar = None
        if is_main and cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.total_steps, initial=self.global_step, desc=cfg.stage,
                       dynamic_ncols=True, unit="step")
        self.train_mode()
        if rng_blob is not None:  # last, so nothing above can disturb the streams
            states = rng_blob["states"]
            ckpt.restore_rng(states[self.dist.rank])
        try:
            while self.global_step < stop_at:
                self._check_epoch_start()
                loss, lr, seconds, samples, grad_norm = self._step(forward, data)
                losses_this_run.append(loss)
                epoch_number = self.global_step // self.steps_per_epoch + 1
                self.global_step += 1
                if is_main and self.global_step % cfg.log_every == 0:
                    record = {"step": self.global_step, "epoch": epoch_number, "loss": loss,
                              "lr": lr, "seconds": round(seconds, 6)}
                    if grad_norm is not None:
                        record["grad_norm"] = grad_norm
                    record.update(self.step_metrics)
                    self._append("train_log.jsonl", record)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}",
                                    samples_s=f"{samples / max(seconds, 1e-9):.1f}")
                self._after_step(stop_at)
        finally:
            if bar is not None:
                bar.close()
            if data is not None and hasattr(data, "_shutdown_workers"):
                data._shutdown_workers()
        summary = self._summary(time.perf_counter() - started, losses_this_run)
        if is_main:
            if cfg.plots:
                self._plot()
            atomic_write(self.out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        tdist.barrier(self.dist)
        return summary

    def _check_fresh_out_dir(self) -> None:
        """A fresh run must not mix with an old one's checkpoints (pruning goes by step)."""
        old = [str(p) for _, p in ckpt.list_checkpoints(self.out_dir)] if self.dist.is_main \
            else []
        old = tdist.broadcast_object(self.dist, old)
        if not old:
            return
        if not self.cfg.overwrite:
            raise FileExistsError(f"{self.out_dir} holds checkpoints of another run ({len(old)}"
                                  ", e.g. " + Path(old[-1]).name + "): resume with "
                                  "resume='auto', pick another out_dir or set overwrite")
        if self.dist.is_main:
            for p in old:
                shutil.rmtree(p, ignore_errors=True)
            for name in (ckpt.LATEST, ckpt.BEST, "summary.json", "loss.png", "scores.png"):
                (self.out_dir / name).unlink(missing_ok=True)
        tdist.barrier(self.dist)

    def _check_epoch_start(self) -> None:
        if self.cfg.iters_per_epoch is None and self.global_step % self.steps_per_epoch == 0:
            state = self.sampler.state_dict()
            if (state["data_epoch"], state["position"]) != (self.epoch, 0):
                raise RuntimeError(f"data order out of step: epoch {self.epoch} starts at "
                                   f"{state}")

    def _step(self, forward: nn.Module, data) -> tuple[float, float, float, int, float | None]:
        cfg = self.cfg
        t0 = time.perf_counter()
        n_micro = self.micro_batches(self.global_step % self.steps_per_epoch)
        lr = float(self.optimizer.param_groups[0]["lr"])
        micro_losses = []
        samples = 0
        for m in range(n_micro):
            samples += self.sampler.next_batch_len() * self.dist.world_size
            batch = next(data)
            self.sampler.advance()
            batch = move_to(batch, self.device, non_blocking=self.device.type == "cuda")
            sync = m == n_micro - 1
            ctx = self._ddp.no_sync() if (self._ddp is not None and not sync) \
                else contextlib.nullcontext()
            with ctx:
                with self._autocast():
                    out = forward(batch)
                loss = out[0] if self._ddp is not None else loss_of(out)
                (loss.float() / n_micro).backward()
            micro_losses.append(loss.detach().float())
        mean = tdist.mean_across(self.dist, torch.stack(micro_losses).mean())
        value = float(mean.item())
        if not math.isfinite(value):
            self.optimizer.zero_grad(set_to_none=True)
            raise FloatingPointError(f"loss is {value} at step {self.global_step + 1}; the last "
                                     f"checkpoint is {self.last_checkpoint}")
        grad_norm = None
        if cfg.max_grad_norm is not None:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.trainable, cfg.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return value, lr, time.perf_counter() - t0, samples, grad_norm

    def _after_step(self, stop_at: int) -> None:
        cfg = self.cfg
        epoch_end = self.global_step % self.steps_per_epoch == 0
        last = self.global_step == stop_at
        save = bool(cfg.save_every_steps) and self.global_step % cfg.save_every_steps == 0
        if epoch_end:
            epoch = self.epoch
            final = self.global_step == self.total_steps
            if self.eval_fn is not None and (epoch % cfg.eval_every == 0 or final):
                scores = self._evaluate(epoch)
                if self._improves(scores):
                    save = True
            save = save or epoch % cfg.save_every == 0
            if self.dist.is_main and cfg.plots:
                self._plot()
        if save or last:
            target = self.save_checkpoint()
            if self.best is not None and self.best["step"] == self.global_step \
                    and self.dist.is_main:
                atomic_write(self.out_dir / ckpt.BEST, target.name + "\n")

    def _summary(self, seconds: float, losses: list[float]) -> dict[str, Any]:
        cfg = self.cfg
        scores: dict[str, Any] = {}
        if self.eval_history:
            from affectgpt.train.plots import centred_moving_average

            epochs = [e["epoch"] for e in self.eval_history]
            names = sorted({k for e in self.eval_history for k, v in e["scores"].items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
            for name in names:
                raw = [float(e["scores"].get(name, math.nan)) for e in self.eval_history]
                smooth = centred_moving_average(raw, cfg.smooth_window)
                valid = [i for i, v in enumerate(raw) if math.isfinite(v)]
                if not valid:
                    continue
                pick = max if cfg.best_mode == "max" else min
                i = pick(valid, key=lambda j: raw[j])
                k = pick(valid, key=lambda j: smooth[j])
                scores[name] = {"last": raw[-1], "best": raw[i], "best_epoch": epochs[i],
                                "best_smoothed": smooth[k], "best_smoothed_epoch": epochs[k]}
        records = self._read_jsonl("train_log.jsonl") if self.dist.is_main else []
        last_epoch = [r["loss"] for r in records if r["epoch"] == records[-1]["epoch"]] \
            if records else []
        return {
            "stage": cfg.stage, "finished": self.global_step >= self.total_steps,
            "step": self.global_step, "total_steps": self.total_steps,
            "epochs_completed": self.epoch, "epochs": cfg.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "epoch_kind": "fixed iterations" if cfg.iters_per_epoch else "passes over the data",
            "warmup_steps": self.warmup_steps, "effective_batch_size": self.effective_batch_size,
            "world_size": self.dist.world_size, "device": str(self.device),
            "precision": cfg.precision if self.autocast_dtype is not None else "fp32",
            "trainable_parameters": sum(p.numel() for p in self.trainable),
            "frozen_parameters": sum(p.numel() for p in self.model.parameters()
                                     if not p.requires_grad),
            "final_loss": records[-1]["loss"] if records else (losses[-1] if losses else None),
            "mean_loss_last_epoch": sum(last_epoch) / len(last_epoch) if last_epoch else None,
            "seconds_this_run": round(seconds, 3), "steps_this_run": len(losses),
            "resumed_from": self.resumed_from, "init_from": self.init_report,
            "last_checkpoint": str(self.last_checkpoint) if self.last_checkpoint else None,
            "best": self.best, "scores": scores,
        }

    def close(self) -> None:
        """Leave the process group if this trainer created it."""
        tdist.cleanup(self.dist)
