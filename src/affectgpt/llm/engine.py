"""Batched chat generation with a local ``transformers`` causal LM.

:class:`BatchedGenerator` owns a model folder (tokenizer + chat template + weights) and
one worker thread. Callers on any thread :meth:`~BatchedGenerator.submit` a conversation
with its decoding parameters and get a future; requests that arrive together and share
their decoding parameters are generated as one left-padded batch of up to ``max_batch``.
Decoding is memory-bound for a small batch, so a batch of 4 costs about as much as one
request: this is what the in-process annotation back-end and ``affectgpt serve-llm`` (an
OpenAI-compatible server, :mod:`affectgpt.llm.serve`) share.

Greedy at temperature 0, so a reply does not depend on the batch it ran in (up to float
rounding of the padded positions); with sampling, ``seed`` seeds each batch, so a seeded
reply is reproducible for the same batch only.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from affectgpt.llm.client import Generation

THIN_BATCH_ROWS = 16  # up to this many rows, a CPU linear layer streams its weight once


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


def decoding_key(params: dict[str, Any]) -> tuple:
    """``(temperature, top_p, max_tokens, seed)`` with defaults filled in: requests batch
    together only when these are equal."""
    return (float(params.get("temperature") or 0.0), params.get("top_p"),
            int(params.get("max_tokens") or 256), params.get("seed"))


class BatchedGenerator:
    """A local causal LM serving chat requests from many threads in batches.

    ``model_dir`` is a ``transformers`` folder with a chat template. ``device`` is
    ``"cpu"``, ``"cuda"``, ``"cuda:N"``; ``dtype`` a torch dtype name (``float32`` default;
    ``bfloat16`` on a GPU). ``gather_seconds`` is how long the first request of a batch waits
    for company. :attr:`batch_sizes` lists the size of every batch generated.
    """

    def __init__(self, model_dir: str | Path, *, max_batch: int = 8, device: str = "cpu",
                 dtype: str = "float32", gather_seconds: float = 0.05):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(model_dir).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no model folder (config.json) at {path}")
        self.model_dir = path.resolve()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise ValueError(f"{path}: the tokenizer has no chat template")
        self.model = AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, dtype)).to(device).eval()
        use_thin_batch_linears(self.model)
        self.device = torch.device(device)
        self.max_batch = max(1, int(max_batch))
        self.gather_seconds = gather_seconds
        self.batch_sizes: list[int] = []
        self.completion_tokens = 0
        self._queue: queue.Queue = queue.Queue()
        self._held: deque = deque()  # pulled while gathering a batch with other parameters
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ public API
    def submit(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Future:
        """Queue one conversation; the future resolves to a :class:`Generation` (or raises
        the error its batch raised)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("generator is closed")
            if self._worker is None:
                self._worker = threading.Thread(target=self._serve, daemon=True,
                                                name="batched-generator")
                self._worker.start()
            done: Future = Future()
            self._queue.put((messages, dict(params), done))  # before close()'s end marker
        return done

    def chat(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Generation:
        """Blocking :meth:`submit`."""
        return self.submit(messages, params).result()

    def close(self) -> None:
        """Finish the queued requests, then stop the worker."""
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
        if worker is not None:
            self._queue.put(None)
            worker.join()

    # ------------------------------------------------------------------ worker
    def _serve(self) -> None:
        while True:
            item = self._held.popleft() if self._held else self._queue.get()
            if item is None:  # close(): everything queued before it is done
                return
            batch, key = [item], decoding_key(item[1])
            deadline = time.monotonic() + self.gather_seconds
            skipped: list = []  # other parameters (or the close marker): next rounds
            while len(batch) < self.max_batch:
                if self._held:
                    candidate = self._held.popleft()
                else:
                    try:
                        candidate = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        break
                if candidate is not None and decoding_key(candidate[1]) == key:
                    batch.append(candidate)
                else:
                    skipped.append(candidate)
                    if candidate is None:
                        break
            self._held.extendleft(reversed(skipped))  # keep arrival order
            self.batch_sizes.append(len(batch))
            try:
                replies = self.generate([m for m, _, _ in batch], item[1])
            except BaseException as exc:  # every waiting request gets the error
                for _, _, done in batch:
                    done.set_exception(exc)
            else:
                for (_, _, done), reply in zip(batch, replies):
                    done.set_result(reply)

    def generate(self, conversations: list[list[dict[str, Any]]],
                 params: dict[str, Any]) -> list[Generation]:
        """Generate replies to ``conversations`` as one batch (runs on the calling thread)."""
        texts = [self.tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
                 for m in conversations]
        inputs = self.tokenizer(texts, return_tensors="pt", padding=True,
                                add_special_tokens=False).to(self.device)
        temperature, top_p, max_new, seed = decoding_key(params)
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": temperature > 0,
                                  "pad_token_id": self.tokenizer.pad_token_id}
        if temperature > 0:
            kwargs["temperature"] = temperature
            if top_p is not None:
                kwargs["top_p"] = float(top_p)
        with torch.no_grad():
            if seed is not None:
                torch.manual_seed(int(seed))
            out = self.model.generate(**inputs, **kwargs)
        prompt_len = inputs["input_ids"].shape[1]
        stops = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        replies = []
        for row, mask in zip(out[:, prompt_len:].tolist(), inputs["attention_mask"]):
            n = next((i for i, t in enumerate(row) if t in stops), len(row))
            prompt_tokens = int(mask.sum())
            self.completion_tokens += n
            replies.append(Generation(
                self.tokenizer.decode(row[:n], skip_special_tokens=True),
                {"prompt_tokens": prompt_tokens, "completion_tokens": n,
                 "total_tokens": prompt_tokens + n},
                "length" if n >= max_new else "stop"))
        return replies
