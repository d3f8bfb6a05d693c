"""Keys and values of the frozen LLM over prompt prefixes, computed once and reused.

Everything in a prompt before its first feature token depends on the text alone, and with
a frozen LLM (no LoRA) its keys and values at every layer are the same in every training
step, every epoch, every seed and every model that shares the LLM. :class:`PrefixCache`
keeps them; :func:`pack_after_prefix` (training) and :func:`pad_after_prefix`
(generation) turn a padded batch into the part that still has to run (from the first
feature token on: features, the rest of the prompt, the answer) and a transformers
``DynamicCache`` holding the prefixes::

    row i:       [ prefix_i (cached) | suffix_i (run, with gradients) ]
    training:    [ prefix_1 prefix_2 ... ] [ suffix_1 suffix_2 ... ]  one row, no padding
    generation:  [ pad .. prefix_i ]  [ pad .. suffix_i ]             left-padded rows

Positions continue from each row's own prefix length, and in a packed training row
:func:`segment_attention` (installed as the frozen LLM's attention) lets each row's queries
see only its own prefix and the earlier tokens of its own suffix, so the result equals a
forward over the padded batch up to float rounding (``tests/model/test_model_prefix.py``)
while no padding is computed.

With the reference prompt order the prefix is the same for every clip (the chat template's
system turn and the audio sentence up to ``<Audio>``: 43 of a typical 157 tokens with the
``small`` preset and a one-sentence subtitle and answer); with ``prompt.order=text-first``
it holds the subtitle and the question as well (100 of 157), one cache entry per clip.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from affectgpt.model.prompt import IGNORE_INDEX, PromptBatch

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [heads, length, dim]
#: one row of a packed batch: the positions of its keys (its prefix, then its suffix),
#: its queries, and their mask ``[queries, keys]`` (the prefix, then causal)
Segment = tuple[torch.Tensor, slice, torch.Tensor]
#: the attention implementation :func:`install_segment_attention` gives the frozen LLM
SEGMENT_ATTENTION = "affectgpt_segments"


def weights_digest(module: nn.Module) -> str:
    """A cheap fingerprint of a module's weights: dtype, device, every tensor's shape and
    a strided sample of its values (exact hashing of a 7B LLM would take seconds)."""
    h = hashlib.sha256()
    for name, p in module.state_dict().items():
        flat = p.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // 512)].float().cpu()
        h.update(f"{name}:{tuple(p.shape)}:{p.dtype}:{p.device}".encode())
        h.update(sample.numpy().tobytes())
    return h.hexdigest()[:16]


class PrefixCache:
    """Least-recently-used store of per-prefix keys and values for one frozen LLM.

    Entries are keyed by the prefix's token ids; at most ``max_bytes`` are kept. Use
    :meth:`for_llm` to share one cache between every model built on the same weights in a
    process (the demo's steps and seeds); ``hits`` / ``misses`` count prefixes.
    """

    _shared: tuple[str, PrefixCache] | None = None
    _shared_lock = threading.Lock()

    def __init__(self, max_bytes: int):
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[int, ...], KV] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def for_llm(cls, llm: nn.Module, max_bytes: int) -> PrefixCache:
        """The process-wide cache for ``llm``'s weights (a new one when they changed)."""
        digest = weights_digest(llm)
        with cls._shared_lock:
            shared = cls._shared
            if shared is None or shared[0] != digest or shared[1].max_bytes != max_bytes:
                shared = (digest, cls(max_bytes))
                cls._shared = shared
            return shared[1]

    @classmethod
    def release_shared(cls) -> None:
        """Drop the process-wide cache (its memory; the next :meth:`for_llm` starts cold)."""
        with cls._shared_lock:
            cls._shared = None

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, llm: nn.Module, prefixes: Sequence[Sequence[int]]) -> list[KV]:
        """Keys and values of every prefix (token ids), computing the missing ones in one
        right-padded batch (padding after a prefix does not change its keys and values)."""
        keys = [tuple(int(t) for t in ids) for ids in prefixes]
        found: dict[tuple[int, ...], KV] = {}
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                    found[key] = entry
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        self.hits += len(keys) - len(missing)  # a prefix twice in one batch runs once
        self.misses += len(missing)
        if missing:
            found.update(zip(missing, _compute(llm, missing)))
            with self._lock:
                for key in missing:
                    self._store(key, found[key])
        return [found[k] for k in keys]

    def _store(self, key: tuple[int, ...], entry: KV) -> None:
        size = _nbytes(entry)
        if size > self.max_bytes or key in self._entries:
            return
        while self.bytes + size > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self.bytes -= _nbytes(old)
        self._entries[key] = entry
        self.bytes += size


def _nbytes(entry: KV) -> int:
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in entry)


@torch.no_grad()
def _compute(llm: nn.Module, prefixes: list[tuple[int, ...]]) -> list[KV]:
    device = llm.get_input_embeddings().weight.device
    length = max(len(p) for p in prefixes)
    ids = torch.zeros(len(prefixes), length, dtype=torch.long)
    mask = torch.zeros(len(prefixes), length, dtype=torch.long)
    for row, prefix in enumerate(prefixes):
        ids[row, :len(prefix)] = torch.tensor(prefix)
        mask[row, :len(prefix)] = 1
    out = llm(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=True,
              logits_to_keep=1)
    cache = out.get("cache")
    if cache is None:  # transformers releases before the argument was renamed
        cache = out.past_key_values
    layers = [(layer.keys, layer.values) for layer in cache.layers]
    return [[(k[row, :, :len(p)].clone(), v[row, :, :len(p)].clone()) for k, v in layers]
            for row, p in enumerate(prefixes)]


@dataclass
class SplitBatch:
    """The part of a batch still to run and the cached prefixes it continues from.

    ``inputs_embeds`` ``[B, S, H]`` and ``position_ids`` ``[B, S]`` cover the suffixes;
    ``attention_mask`` covers the prefixes and the suffixes (``[B, P + S]``, or a prepared
    ``[1, 1, S, P + S]`` boolean mask for a packed batch); ``next_labels`` ``[B, S]`` is,
    per position, the label of the token it predicts (``-100`` where none); ``kv`` is the
    per-layer keys and values ``[B, heads, P, dim]``; ``segments`` (packed batches) lets
    :func:`segment_attention` skip the blocks the mask rules out."""

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    next_labels: torch.Tensor | None
    kv: KV
    segments: list[Segment] | None = None

    @property
    def prefix_length(self) -> int:
        return int(self.kv[0][0].shape[2])

    def dynamic_cache(self):
        """A fresh transformers ``DynamicCache`` holding the prefixes (the model appends
        to it, so every forward needs its own)."""
        from transformers import DynamicCache

        return DynamicCache(ddp_cache_data=[(k, v) for k, v in self.kv])


def frozen_prefix_lengths(prompt: PromptBatch) -> list[int]:
    """Per row, how many leading tokens no trainable input reaches: those before the first
    feature placeholder, and never the token whose logits predict the answer's first
    token (or, without labels, the last prompt token)."""
    lengths = []
    placeholders = prompt.video_positions | prompt.audio_positions
    for row in range(prompt.input_ids.shape[0]):
        real = prompt.attention_mask[row].bool()
        index = real.nonzero().squeeze(1)
        n = index.numel()
        limit = n - 1
        if prompt.labels is not None:
            answer = (prompt.labels[row][index] != IGNORE_INDEX).nonzero()
            if answer.numel():
                limit = min(limit, int(answer[0]) - 1)
        first = placeholders[row][index].nonzero()
        if first.numel():
            limit = min(limit, int(first[0]))
        lengths.append(max(0, limit))
    return lengths


def _real_rows(prompt: PromptBatch) -> list[torch.Tensor]:
    return [prompt.attention_mask[r].bool().nonzero().squeeze(1)
            for r in range(prompt.attention_mask.shape[0])]


def pad_after_prefix(prompt: PromptBatch, embeds: torch.Tensor, lengths: Sequence[int],
                     kv_rows: Sequence[KV]) -> SplitBatch:
    """For generation: cached prefixes left-padded to the longest, then the suffixes
    left-padded to the longest (every row ends where generation starts).

    ``embeds`` ``[B, L, H]`` are the whole rows' input embeddings (features spliced in);
    ``lengths`` and ``kv_rows`` are each row's prefix length and its keys and values.
    """
    b = embeds.shape[0]
    rows = _real_rows(prompt)
    prefix = max(lengths)
    suffix = max(idx.numel() - p for idx, p in zip(rows, lengths))
    out_embeds = embeds.new_zeros(b, suffix, embeds.shape[-1])
    mask = torch.zeros(b, prefix + suffix, dtype=prompt.attention_mask.dtype,
                       device=embeds.device)
    positions = torch.zeros(b, suffix, dtype=torch.long, device=embeds.device)
    kv = [(k.new_zeros(b, k.shape[0], prefix, k.shape[2]),
           v.new_zeros(b, v.shape[0], prefix, v.shape[2])) for k, v in kv_rows[0]]
    for r, (idx, p) in enumerate(zip(rows, lengths)):
        rest = idx[p:]
        s = rest.numel()
        out_embeds[r, suffix - s:] = embeds[r, rest]
        mask[r, prefix - p:prefix] = 1
        mask[r, prefix + suffix - s:] = 1
        positions[r, suffix - s:] = torch.arange(p, p + s, device=embeds.device)
        for (k, v), (rk, rv) in zip(kv, kv_rows[r]):
            k[r, :, prefix - p:] = rk
            v[r, :, prefix - p:] = rv
    return SplitBatch(inputs_embeds=out_embeds, attention_mask=mask, position_ids=positions,
                      next_labels=None, kv=kv)


def pack_after_prefix(prompt: PromptBatch, embeds: torch.Tensor, lengths: Sequence[int],
                      kv_rows: Sequence[KV]) -> SplitBatch:
    """For training: every row's cached prefix and suffix packed into one sequence without
    padding, a block mask letting each suffix token see its own prefix and the earlier
    tokens of its own suffix only::

        keys:    [ prefix_1 | prefix_2 | ... | suffix_1 | suffix_2 | ... ]
        queries:                               [ suffix_1 | suffix_2 | ... ]

    The suffixes of a batch differ in length (answers do: about a fifth of a padded
    batch's slots were padding in the demo); packed, none is computed.
    """
    if prompt.labels is None:
        raise ValueError("pack_after_prefix needs labels (it lays out a training batch)")
    rows = _real_rows(prompt)
    device = embeds.device
    prefix = sum(lengths)
    suffix = sum(idx.numel() - p for idx, p in zip(rows, lengths))
    mask = torch.zeros(1, 1, suffix, prefix + suffix, dtype=torch.bool, device=device)
    pieces, positions, next_labels, segments = [], [], [], []
    key_start, query_start = 0, 0
    for r, (idx, p) in enumerate(zip(rows, lengths)):
        rest = idx[p:]
        s = rest.numel()
        pieces.append(embeds[r, rest])
        positions.append(torch.arange(p, p + s, device=device))
        labels = prompt.labels[r, rest]
        next_labels.append(torch.cat([labels[1:], labels.new_full((1,), IGNORE_INDEX)]))
        queries = slice(query_start, query_start + s)
        causal = torch.ones(s, s, dtype=torch.bool, device=device).tril()
        mask[0, 0, queries, key_start:key_start + p] = True
        mask[0, 0, queries, prefix + query_start:prefix + query_start + s] = causal
        keys = torch.cat([torch.arange(key_start, key_start + p, device=device),
                          torch.arange(prefix + query_start, prefix + query_start + s,
                                       device=device)])
        segments.append((keys, queries, torch.cat([causal.new_ones(s, p), causal], dim=1)))
        key_start += p
        query_start += s
    kv = [(torch.cat([row[layer][0] for row in kv_rows], dim=1).unsqueeze(0),
           torch.cat([row[layer][1] for row in kv_rows], dim=1).unsqueeze(0))
          for layer in range(len(kv_rows[0]))]
    return SplitBatch(inputs_embeds=torch.cat(pieces).unsqueeze(0), attention_mask=mask,
                      position_ids=torch.cat(positions).unsqueeze(0),
                      next_labels=torch.cat(next_labels).unsqueeze(0), kv=kv, segments=segments)


def segment_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor,
                      value: torch.Tensor, attention_mask: torch.Tensor | None,
                      dropout: float = 0.0, scaling: float | None = None,
                      segments: Sequence[Segment] | None = None, **kwargs):
    """transformers' sdpa attention, except for a packed batch (``segments`` given): there
    each row's queries attend to their own keys only, one ``scaled_dot_product_attention``
    per row, instead of over the whole packed sequence with most of the mask ruled out
    (a quarter of the work for four rows; the result is the same)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if segments is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      dropout=dropout, scaling=scaling, **kwargs)
    outputs = [nn.functional.scaled_dot_product_attention(
        query[:, :, queries], key[:, :, keys], value[:, :, keys], attn_mask=mask,
        dropout_p=dropout if module.training else 0.0, scale=scaling,
        enable_gqa=query.shape[1] != key.shape[1]) for keys, queries, mask in segments]
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None


def install_segment_attention(llm: nn.Module) -> bool:
    """Give ``llm`` :func:`segment_attention` (registered with transformers once) in place
    of its sdpa attention; False, changing nothing, when it runs another implementation."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    config = llm.config
    if config._attn_implementation == SEGMENT_ATTENTION:
        return True
    if config._attn_implementation != "sdpa":
        return False
    AttentionInterface.register(SEGMENT_ATTENTION, segment_attention)
    AttentionMaskInterface.register(SEGMENT_ATTENTION, sdpa_mask)
    config._attn_implementation = SEGMENT_ATTENTION
    return True
