"""Continuously batched chat generation with a local ``transformers`` causal LM.

:class:`BatchedGenerator` owns a model folder (tokenizer + chat template + weights) and
one worker thread running a step-level decoding loop. Callers on any thread
:meth:`~BatchedGenerator.submit` a conversation with its decoding parameters and get a
:class:`GenerationFuture`. Up to ``max_batch`` requests decode together, each with its
own ``max_tokens``, temperature, ``top_p`` and seed:

- a request that arrives while others are decoding joins the batch at the next step
  (its prompt is prefilled and its key/value cache merged in), so a short request never
  waits for a long batch to end;
- a finished row leaves the batch at once; a cancelled one (:meth:`GenerationFuture.cancel`,
  e.g. its HTTP client went away) leaves it at the next step, so nobody decodes tokens
  nobody waits for;
- at most ``max_queue`` requests wait for a slot; beyond that :meth:`submit` raises
  :class:`QueueFullError` with an estimate of when to come back.

Decoding is memory-bound for a small batch, so a batch of 4 costs about as much as one
request: this is what the in-process annotation back-end and ``affectgpt serve-llm`` (an
OpenAI-compatible server, :mod:`affectgpt.llm.serve`) share.

Greedy at temperature 0, so a reply does not depend on the batch it ran in (up to float
rounding of the padded positions). With sampling, each request draws from its own
generator seeded by its ``seed``, so a seeded reply is reproducible whatever its company.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from affectgpt.llm.client import Generation

THIN_BATCH_ROWS = 16  # up to this many rows, a CPU linear layer streams its weight once
DEFAULT_MAX_TOKENS = 256
_EWMA = 0.2  # weight of the newest measurement in the speed estimates


class ThinBatchLinear(nn.Linear):
    """``nn.Linear`` that computes ``W @ x^T`` when ``x`` has only a few rows.

    On a CPU, MKL's GEMM for ``x @ W^T`` with 2-16 rows (decoding a small batch) repacks
    the weight on every call and costs up to twice a single row; ``W @ x^T`` streams the
    weight once, so a decoding step for 4 sequences costs about what one does (SmolLM2-135M
    on 2 AVX2 cores: 97 -> 57 ms per step at batch 4, 55 ms at batch 1). Prompt prefill
    (many rows) keeps the usual kernel. Results equal ``F.linear`` up to float rounding.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        if rows.shape[0] > THIN_BATCH_ROWS:
            return F.linear(x, self.weight, self.bias)
        # contiguous: a transposed q/k/v would push attention off its fused CPU kernel
        y = (self.weight @ rows.T).T.contiguous()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], y.shape[-1])


def use_thin_batch_linears(model: nn.Module) -> int:
    """Make every plain ``nn.Linear`` of a CPU model a :class:`ThinBatchLinear`; return how
    many. Weights are shared, not copied; other devices are left alone (GPU GEMMs do not
    have the problem)."""
    count = 0
    for module in model.modules():
        if type(module) is nn.Linear and module.weight.device.type == "cpu":
            module.__class__ = ThinBatchLinear
            count += 1
    return count


class QueueFullError(RuntimeError):
    """:meth:`BatchedGenerator.submit` refused a request: ``max_queue`` requests already
    wait. ``retry_after`` estimates, in seconds, when a slot frees."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class PromptTooLongError(ValueError):
    """The prompt plus ``max_tokens`` does not fit the model's context window."""


class GenerationAborted(RuntimeError):
    """The generator was shut down (:meth:`BatchedGenerator.close` with ``cancel=True``)
    before this request finished."""


class GenerationFuture(Future):
    """The future :meth:`BatchedGenerator.submit` returns.

    :meth:`cancel` works whether the request still waits or already decodes: it resolves
    the future as cancelled at once, and the worker drops the request at its next step.
    """

    def cancel(self) -> bool:
        # a plain Future refuses to cancel once running; this one never enters RUNNING,
        # so cancel() succeeds until the result is set
        return super().cancel()


def kv_cache_argument(model: nn.Module) -> str:
    """The name of ``model.forward``'s key/value cache argument: ``cache`` in recent
    transformers 5 releases, ``past_key_values`` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

@dataclass(eq=False)
class _Request:
    prompt_ids: list[int]
    max_new: int
    temperature: float
    top_p: float | None
    rng: torch.Generator | None
    future: GenerationFuture
    tokens: list[int] = field(default_factory=list)
    finish_reason: str | None = None


def _decoding(params: dict[str, Any]) -> tuple[float, float | None, int, int | None]:
    """``(temperature, top_p, max_tokens, seed)`` from request parameters, defaults filled."""
    top_p = params.get("top_p")
    seed = params.get("seed")
    return (float(params.get("temperature") or 0.0), None if top_p is None else float(top_p),
            int(params.get("max_tokens") or DEFAULT_MAX_TOKENS),
            None if seed is None else int(seed))


class BatchedGenerator:
    """A local causal LM serving chat requests from many threads, continuously batched.

    ``model_dir`` is a ``transformers`` folder with a chat template. ``device`` is
    ``"cpu"``, ``"cuda"``, ``"cuda:N"``; ``dtype`` a torch dtype name (``float32`` default;
    ``bfloat16`` on a GPU). ``max_batch`` rows decode together; ``max_queue`` more may wait
    (None: no limit). ``gather_seconds`` is how long the first request reaching an idle
    generator waits for company (later ones join a running batch at once).
    :attr:`batch_sizes` lists how many requests each prefill admitted together;
    :meth:`stats` gives the counters and the measured speed.
    """

    def __init__(self, model_dir: str | Path, *, max_batch: int = 8, device: str = "cpu",
                 dtype: str = "float32", gather_seconds: float = 0.05,
                 max_queue: int | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(model_dir).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no model folder (config.json) at {path}")
        self.model_dir = path.resolve()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise ValueError(f"{path}: the tokenizer has no chat template")
        self.model = AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, dtype)).to(device).eval()
        use_thin_batch_linears(self.model)
        self.device = torch.device(device)
        self.max_batch = max(1, int(max_batch))
        self.max_queue = None if max_queue is None else max(0, int(max_queue))
        self.gather_seconds = gather_seconds
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 0)
                                  or 1 << 30)
        self.pad_id = int(self.tokenizer.pad_token_id)
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.stop_ids = {int(t) for t in [*eos, self.tokenizer.eos_token_id, self.pad_id]
                         if t is not None}
        # counters (read by stats(); written by the worker under the lock)
        self.batch_sizes: list[int] = []
        self.completion_tokens = 0  # in delivered replies
        self.generated_tokens = 0  # decoded, delivered or not
        self.counts = {"submitted": 0, "completed": 0, "cancelled": 0, "errored": 0,
                       "refused": 0}
        self.seconds_per_step: float | None = None  # EWMA of one decoding step
        self.seconds_per_prompt_token: float | None = None  # EWMA of prefill cost
        self.decode_steps = 0
        self._tokenizer_lock = threading.Lock()  # fast tokenizers are not thread-safe
        self._cond = threading.Condition(threading.RLock())  # RLock: abort() from a signal
        self._pending: deque[_Request] = deque()
        self._active: list[_Request] = []
        self._admitting = 0  # rows taken from the queue, being prefilled
        self._worker: threading.Thread | None = None
        self._closed = False
        self._aborting = False
        self._cache_key = kv_cache_argument(self.model)

    # ------------------------------------------------------------------ public API
    def submit(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> GenerationFuture:
        """Queue one conversation; the future resolves to a :class:`Generation`.

        Raises :class:`QueueFullError` when ``max_queue`` requests already wait,
        :class:`PromptTooLongError` when the prompt and ``max_tokens`` exceed the context
        window, ``ValueError`` for bad parameters and ``RuntimeError`` once closed.
        """
        temperature, top_p, max_new, seed = _decoding(params)
        if max_new < 1:
            raise ValueError("max_tokens must be at least 1")
        if temperature < 0 or (top_p is not None and not 0 < top_p <= 1):
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
        with self._tokenizer_lock:
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                      tokenize=False)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) + max_new > self.context_length:
            raise PromptTooLongError(
                f"the prompt has {len(ids)} tokens; with max_tokens={max_new} that exceeds "
                f"the model's context of {self.context_length} tokens")
        rng = None
        if temperature > 0:
            rng = torch.Generator(device=self.device)
            rng.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(8), "little"))
        request = _Request(ids, max_new, temperature, top_p, rng, GenerationFuture())
        with self._cond:
            if self._closed:
                raise RuntimeError("generator is closed")
            if self.max_queue is not None and len(self._pending) >= self.max_queue:
                self.counts["refused"] += 1
                raise QueueFullError(
                    f"{len(self._pending)} requests already wait for one of "
                    f"{self.max_batch} slots", self._retry_after())
            self.counts["submitted"] += 1
            self._pending.append(request)
            if self._worker is None:
                self._worker = threading.Thread(target=self._serve, daemon=True,
                                                name="batched-generator")
                self._worker.start()
            self._cond.notify_all()
        return request.future

    def chat(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Generation:
        """Blocking :meth:`submit`."""
        return self.submit(messages, params).result()

    def generate(self, conversations: list[list[dict[str, Any]]],
                 params: dict[str, Any]) -> list[Generation]:
        """Replies to ``conversations`` (submitted together, so they share batches)."""
        futures = [self.submit(m, params) for m in conversations]
        return [f.result() for f in futures]

    def warm_up(self, steps: int = 4) -> None:
        """Run one short generation outside the counters, before serving: the first request
        then finds the kernels warm, and :meth:`stats` has a measured speed from the start.
        Call before the first :meth:`submit`."""
        from transformers import DynamicCache

        with self._tokenizer_lock:
            text = self.tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}],
                                                      add_generation_prompt=True, tokenize=False)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        tokens = torch.tensor([ids], device=self.device)
        mask = torch.ones_like(tokens)
        cache = DynamicCache(config=self.model.config)
        started = time.perf_counter()
        last = self._forward(tokens, mask, mask.cumsum(-1) - 1, cache).argmax(-1)
        self.seconds_per_prompt_token = (time.perf_counter() - started) / len(ids)
        for _ in range(steps):
            mask = torch.cat([mask, mask.new_ones((1, 1))], dim=1)
            started = time.perf_counter()
            last = self._forward(last[:, None], mask, mask.sum(-1, keepdim=True) - 1,
                                 cache).argmax(-1)
            elapsed = time.perf_counter() - started
            self.seconds_per_step = elapsed if self.seconds_per_step is None \
                else min(self.seconds_per_step, elapsed)  # the first step is the coldest

    def stats(self) -> dict[str, Any]:
        """Counters and measured speed: ``queued``, ``active``, request counts (submitted,
        completed, cancelled, errored, refused: queue full), tokens,
        ``seconds_per_step`` (one decoding step of the whole batch, smoothed) and
        ``seconds_per_prompt_token`` (prefill), None before the first measurement."""
        with self._cond:
            return {**self.counts, "queued": len(self._pending),
                    "active": len(self._active) + self._admitting,
                    "max_batch": self.max_batch, "max_queue": self.max_queue,
                    "batches": len(self.batch_sizes), "decode_steps": self.decode_steps,
                    "completion_tokens": self.completion_tokens,
                    "generated_tokens": self.generated_tokens,
                    "seconds_per_step": self.seconds_per_step,
                    "seconds_per_prompt_token": self.seconds_per_prompt_token}

    def close(self, *, cancel: bool = False, timeout: float | None = None) -> None:
        """Stop taking requests and stop the worker: after finishing the queued and running
        requests, or (``cancel=True``) at the next decoding step, failing them with
        :class:`GenerationAborted`. ``timeout`` bounds the wait for the worker."""
        with self._cond:
            self._closed = True
            if cancel:
                self._aborting = True
            worker = self._worker
            self._cond.notify_all()
        if worker is not None:
            worker.join(timeout)

    def abort(self) -> None:
        """Fail every queued and running request with :class:`GenerationAborted` at the next
        step and take no more (safe to call from a signal handler; does not wait)."""
        with self._cond:
            self._closed = self._aborting = True
            self._cond.notify_all()

    # ------------------------------------------------------------------ worker
    def _retry_after(self) -> float:
        """Seconds until a running request should free its slot (at least 1)."""
        step = self.seconds_per_step or 0.1
        remaining = [r.max_new - len(r.tokens) for r in self._active]
        queued_rounds = len(self._pending) // self.max_batch
        estimate = step * (min(remaining, default=0) + queued_rounds * DEFAULT_MAX_TOKENS)
        return float(min(60, max(1, math.ceil(estimate))))

    def _resolve(self, request: _Request, *, error: BaseException | None = None) -> None:
        try:
            if error is not None:
                request.future.set_exception(error)
            else:
                n = len(request.tokens)
                with self._tokenizer_lock:
                    text = self.tokenizer.decode(request.tokens, skip_special_tokens=True)
                prompt = len(request.prompt_ids)
                request.future.set_result(Generation(
                    text, {"prompt_tokens": prompt, "completion_tokens": n,
                           "total_tokens": prompt + n}, request.finish_reason))
                with self._cond:
                    self.completion_tokens += n
                    self.counts["completed"] += 1
                return
        except InvalidStateError:  # cancelled meanwhile
            pass
        with self._cond:
            self.counts["errored" if error is not None and not request.future.cancelled()
                        else "cancelled"] += 1

    def _serve(self) -> None:
        cache, mask, last = None, None, None  # state of the running batch (self._active)
        while True:
            with self._cond:
                if self._aborting:
                    doomed = [*self._active, *self._pending]
                    self._pending.clear()
                    self._active = []
                    break
                # drop the cancelled rows before paying for another step
                keep = [i for i, r in enumerate(self._active) if not r.future.cancelled()]
                if len(keep) < len(self._active):
                    self.counts["cancelled"] += len(self._active) - len(keep)
                    self._active = [self._active[i] for i in keep]
                    if keep:
                        cache, mask, last = self._select(cache, mask, last, keep)
                    else:
                        cache = mask = last = None
                if not self._active:
                    if not self._pending:
                        if self._closed:
                            self._worker = None
                            return
                        self._cond.wait()
                        continue
                    if self.gather_seconds > 0 and len(self._pending) < self.max_batch:
                        deadline = time.monotonic() + self.gather_seconds
                        while len(self._pending) < self.max_batch and not self._aborting:
                            left = deadline - time.monotonic()
                            if left <= 0:
                                break
                            self._cond.wait(left)
                        if self._aborting:
                            continue
                joining = []
                if not self._active or self._can_merge(cache):
                    while self._pending and len(self._active) + len(joining) < self.max_batch:
                        request = self._pending.popleft()
                        if request.future.cancelled():
                            self.counts["cancelled"] += 1
                        else:
                            joining.append(request)
                self._admitting = len(joining)
            try:
                if joining:
                    cache, mask, last = self._admit(joining, cache, mask, last)
                if self._active:
                    cache, mask, last = self._step(cache, mask, last)
            except Exception as exc:  # the model failed: every row of the batch gets it
                with self._cond:
                    failed = [*self._active, *(r for r in joining if r not in self._active)]
                    self._active = []
                    self._admitting = 0
                cache = mask = last = None
                for request in failed:
                    self._resolve(request, error=exc)
        for request in doomed:
            self._resolve(request, error=GenerationAborted("the generator was shut down"))
        with self._cond:
            self._worker = None

    def _forward(self, input_ids, attention_mask, position_ids, cache):
        with torch.no_grad():
            out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                             position_ids=position_ids, use_cache=True, logits_to_keep=1,
                             **{self._cache_key: cache})
        return out.logits[:, -1, :].float()

    def _admit(self, joining: list[_Request], cache, mask, last):
        """Prefill the joining requests (left-padded), take their first token and merge
        their cache into the running batch's."""
        from transformers import DynamicCache

        width = max(len(r.prompt_ids) for r in joining)
        ids = torch.full((len(joining), width), self.pad_id, dtype=torch.long)
        new_mask = torch.zeros((len(joining), width), dtype=torch.long)
        for row, request in enumerate(joining):
            n = len(request.prompt_ids)
            ids[row, width - n:] = torch.tensor(request.prompt_ids)
            new_mask[row, width - n:] = 1
        ids, new_mask = ids.to(self.device), new_mask.to(self.device)
        positions = (new_mask.cumsum(-1) - 1).clamp(min=0)
        new_cache = DynamicCache(config=self.model.config)
        started = time.perf_counter()
        logits = self._forward(ids, new_mask, positions, new_cache)
        elapsed = time.perf_counter() - started
        with self._cond:
            self.batch_sizes.append(len(joining))
            per_token = elapsed / max(1, int(new_mask.sum()))
            self.seconds_per_prompt_token = per_token if self.seconds_per_prompt_token is None \
                else (1 - _EWMA) * self.seconds_per_prompt_token + _EWMA * per_token
        first = self._sample(logits, joining)
        if cache is None:
            cache, mask, last = new_cache, new_mask, first
        else:
            cache, mask = self._merge(cache, mask, new_cache, new_mask)
            last = torch.cat([last, first])
        with self._cond:
            start = len(self._active)
            self._active.extend(joining)
            self._admitting = 0
        return self._accept(cache, mask, last, start)

    def _step(self, cache, mask, last):
        """One decoding step for every running row."""
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        positions = mask.sum(-1, keepdim=True) - 1
        started = time.perf_counter()
        logits = self._forward(last[:, None], mask, positions, cache)
        elapsed = time.perf_counter() - started
        with self._cond:
            self.decode_steps += 1
            self.seconds_per_step = elapsed if self.seconds_per_step is None \
                else (1 - _EWMA) * self.seconds_per_step + _EWMA * elapsed
        last = self._sample(logits, self._active)
        return self._accept(cache, mask, last)

    def _sample(self, logits: torch.Tensor, requests: list[_Request]) -> torch.Tensor:
        tokens = logits.argmax(-1)
        for row, request in enumerate(requests):
            if request.temperature <= 0:
                continue
            scores = logits[row] / request.temperature
            if request.top_p is not None and request.top_p < 1:
                ordered, order = scores.sort(descending=True)
                cumulative = ordered.softmax(-1).cumsum(-1)
                drop = cumulative - ordered.softmax(-1) >= request.top_p  # keep the first
                scores[order[drop]] = float("-inf")
            probs = scores.softmax(-1)
            tokens[row] = torch.multinomial(probs, 1, generator=request.rng)[0]
        return tokens

    def _accept(self, cache, mask, last, start: int = 0):
        """Append the new token of each row from ``start`` on (the rows before it took
        theirs already); resolve and drop the rows that finished."""
        keep, done = list(range(start)), []
        for row, (request, token) in enumerate(zip(self._active, last.tolist())):
            if row < start:
                continue
            if token in self.stop_ids:
                request.finish_reason = "stop"
            else:
                request.tokens.append(token)
                if len(request.tokens) >= request.max_new:
                    request.finish_reason = "length"
            (done if request.finish_reason else keep).append(row)
        with self._cond:
            self.generated_tokens += len(self._active) - start
            finished = [self._active[i] for i in done]
            self._active = [self._active[i] for i in keep]
        for request in finished:
            self._resolve(request)
        if not keep:
            return None, None, None
        if done:
            cache, mask, last = self._select(cache, mask, last, keep)
        return cache, mask, last

    @staticmethod
    def _can_merge(cache) -> bool:
        """Only plain dynamic caches (no sliding window) can take rows mid-flight."""
        return cache is None or all(type(layer).__name__ == "DynamicLayer"
                                    for layer in getattr(cache, "layers", [None]))

    @staticmethod
    def _select(cache, mask, last, keep: list[int]):
        """Keep rows ``keep`` and drop the leading columns no remaining row attends to."""
        index = torch.tensor(keep, device=mask.device)
        cache.batch_select_indices(index)
        mask, last = mask[index], last[index]
        first = int(mask.any(0).nonzero()[0])
        if first:
            for layer in cache.layers:
                layer.keys = layer.keys[:, :, first:]
                layer.values = layer.values[:, :, first:]
            mask = mask[:, first:]
        return cache, mask, last

    @staticmethod
    def _merge(cache, mask, new_cache, new_mask):
        """Stack two left-padded batches (left-padding the shorter one)."""
        width = max(mask.shape[1], new_mask.shape[1])

        def pad(x, n, dim):  # n zero columns on the left of dimension `dim` (-2 or -1)
            if n == 0:
                return x
            return F.pad(x, (0, 0, n, 0)) if dim == -2 else F.pad(x, (n, 0))

        a, b = width - mask.shape[1], width - new_mask.shape[1]
        for old, new in zip(cache.layers, new_cache.layers):
            old.keys = torch.cat([pad(old.keys, a, -2), pad(new.keys, b, -2)])
            old.values = torch.cat([pad(old.values, a, -2), pad(new.values, b, -2)])
        return cache, torch.cat([pad(mask, a, -1), pad(new_mask, b, -1)])
