"""AffectGPT on precomputed frozen features: two Q-Former adapters + a frozen LLM.

::

    video features [B, T, N, Dv] --(video QFormerAdapter)--> [B, Qv, H] --+
    audio features [B, A, Da]    --(audio QFormerAdapter)--> [B, Qa, H] --+--> placeholders
    prompt ids (subtitle, question, answer) --(frozen LLM embeddings)--> [B, L, H]
                                  --> frozen LLM (+ optional LoRA) --> loss on the answer

The frozen encoders run outside (a feature cache or live); this module never sees media.
The frozen LLM's keys and values over the prompt text before the first feature token are
computed once and reused (:mod:`affectgpt.model.prefix`, ``llm.prefix_cache_mb``).
Only the adapters (and LoRA adapters when configured) have ``requires_grad``; the LLM
stays in eval mode whatever :meth:`AffectGPT.train` is told, unless it carries LoRA
adapters (then it follows, so LoRA dropout applies). :class:`affectgpt.inference.Describer`
goes from a media file to a description, running the frozen encoders the config names.

A batch is a dict::

    video        [B, T, N, Dv] or [B, T, Dv] float, or None (no video at all)
    video_mask   [B] bool, optional: which samples have video (default: all, when given)
    audio        [B, A, Da] float, or None (no audio at all)
    audio_mask   [B] bool, optional: which samples have audio (default: all, when given)
    video_frame_mask [B, T] / audio_clip_mask [B, A] bool, optional: valid positions
    subtitle     list[str]
    target       list[str] (training only)
    question     list[str], optional (default: the configured question)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from affectgpt.llm.engine import kv_cache_argument
from affectgpt.model.adapters import QFormerAdapter, count_parameters, load_video_llama_branches
from affectgpt.model.config import ConfigError, ModelConfig, apply_overrides
from affectgpt.model.llm import (
    apply_lora,
    llm_fingerprint,
    llm_hidden_size,
    load_llm,
    load_tokenizer,
    resolve_llm_dtype,
)
from affectgpt.model.prefix import (
    PrefixCache,
    SplitBatch,
    frozen_prefix_lengths,
    install_segment_attention,
    pack_after_prefix,
    pad_after_prefix,
)
from affectgpt.model.prompt import IGNORE_INDEX, PromptBatch, PromptBuilder, splice_features

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "adapters.safetensors"
META_FILE = "meta.json"
CHECKPOINT_FORMAT = 1


@dataclass
class AffectGPTOutput:
    """``loss`` (None without targets), ``logits`` ``[B, L, V]`` (None when only the loss
    was asked for), and the ``labels`` / ``attention_mask`` they line up with."""

    loss: torch.Tensor | None
    logits: torch.Tensor | None
    labels: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None


class LLMMismatchError(RuntimeError):
    """A checkpoint's adapters were trained against another frozen LLM or tokenizer."""


class AffectGPT(nn.Module):
    """See the module docstring. Build with :meth:`from_config` or :meth:`from_pretrained`."""

    def __init__(self, config: ModelConfig, llm: nn.Module, tokenizer):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self._vocab_size = len(tokenizer)  # before the placeholders are registered
        self.has_lora = config.lora is not None
        llm.requires_grad_(False)
        if self.has_lora:
            llm = apply_lora(llm, config.lora)
        self.llm = llm
        hidden = llm_hidden_size(llm)
        self.video = QFormerAdapter.from_config(config.video, hidden)
        self.audio = QFormerAdapter.from_config(config.audio, hidden)
        p = config.prompt
        self.prompt = PromptBuilder(
            tokenizer,
            num_video_tokens=config.video.num_query,
            num_audio_tokens=config.audio.num_query,
            style=p.style,
            wording=p.wording,
            order=p.order,
            question=p.question,
            stop=p.stop,
            add_bos=p.add_bos,
            max_length=p.max_length,
        )
        self._prefix_cache: tuple[torch.device, PrefixCache] | None = None
        # the prefix cache needs a frozen LLM, and its packed training batches an attention
        # that keeps the packed rows apart (install_segment_attention)
        self._can_cache_prefix = not self.has_lora and install_segment_attention(llm)
        self.train(False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: ModelConfig, device: torch.device | str | None = None,
                    ) -> AffectGPT:
        """Load the frozen LLM and tokenizer named by ``config``; fresh adapters.

        ``device`` defaults to the CPU; ``llm.dtype="auto"`` picks bfloat16 on CUDA.
        The adapters stay float32 (the features are cast to the LLM's dtype at the splice).
        """
        config.validate()
        if config.llm.path is None:
            raise ConfigError(
                f"llm.path is not set (preset {config.name!r}): point it at a local "
                "transformers folder of the LLM, e.g. the override "
                "llm.path=/models/vicuna-7b-v0 (or use 'smollm2' / 'random')")
        device = torch.device(device) if device is not None else torch.device("cpu")
        dtype = resolve_llm_dtype(config.llm.dtype, device)
        tokenizer = load_tokenizer(config.llm.tokenizer or config.llm.path)
        llm = load_llm(config.llm, tokenizer, dtype)
        model = cls(config, llm, tokenizer)
        return model.to(device)

    @property
    def device(self) -> torch.device:
        return self.video.query_tokens.device

    @property
    def llm_dtype(self) -> torch.dtype:
        return self.llm.get_input_embeddings().weight.dtype

    def train(self, mode: bool = True) -> AffectGPT:
        """Adapters follow ``mode``; the frozen LLM stays in eval mode unless it has LoRA."""
        super().train(mode)
        if not self.has_lora:
            self.llm.train(False)
        return self

    # ------------------------------------------------------------------ batches
    def _branch(self, batch: Mapping[str, Any], name: str, n: int,
                ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """``(features or None, has [B] bool on CPU, position mask or None)``."""
        features = batch.get(name)
        mask = batch.get(f"{name}_mask")
        positions_key = "video_frame_mask" if name == "video" else "audio_clip_mask"
        position_mask = batch.get(positions_key)
        if features is None:
            if mask is not None and bool(torch.as_tensor(mask).any()):
                raise ValueError(f"{name}_mask marks samples with {name} but {name} is None")
            return None, torch.zeros(n, dtype=torch.bool), None
        features = torch.as_tensor(features)
        if features.shape[0] != n:
            raise ValueError(f"{name} has {features.shape[0]} samples for {n} subtitles")
        if mask is None:
            has = torch.ones(n, dtype=torch.bool)
        else:
            has = torch.as_tensor(mask, dtype=torch.bool).reshape(-1).cpu()
            if has.numel() != n:
                raise ValueError(f"{name}_mask has {has.numel()} entries for {n} samples")
        if position_mask is not None:
            position_mask = torch.as_tensor(position_mask, dtype=torch.bool)
        return features, has, position_mask

    def _encode_branch(self, adapter: QFormerAdapter, features: torch.Tensor | None,
                       has: torch.Tensor, position_mask: torch.Tensor | None,
                       ) -> torch.Tensor | None:
        if features is None or not bool(has.any()):
            return None
        index = has.nonzero().squeeze(1)
        subset = features[index.to(features.device)]
        pmask = None if position_mask is None else position_mask[index.to(position_mask.device)]
        return adapter(subset, pmask)

    def _ddp_touch(self, adapter: QFormerAdapter) -> torch.Tensor:
        """``0 * adapter(zeros)``: keeps every adapter parameter in the autograd graph when
        no sample of the batch uses this branch (DistributedDataParallel needs all used)."""
        dummy = torch.zeros(1, 1, adapter.tokens_per_position or 1, adapter.feature_dim,
                            device=self.device)
        return adapter(dummy).sum() * 0.0

    def prepare(self, batch: Mapping[str, Any], *, with_targets: bool,
                padding_side: str | None = None) -> tuple[PromptBatch, torch.Tensor, torch.Tensor]:
        """Tokenise the batch, run the adapters and splice: ``(prompt, inputs_embeds, touch)``.

        ``touch`` is a zero scalar connected to every adapter not used by this batch
        (add it to the loss for DDP).
        """
        subtitles = list(batch["subtitle"])
        n = len(subtitles)
        if n == 0:
            raise ValueError("empty batch")
        targets = batch.get("target") if with_targets else None
        if with_targets and targets is None:
            raise ValueError("training needs batch['target']")
        video, has_video, video_pos = self._branch(batch, "video", n)
        audio, has_audio, audio_pos = self._branch(batch, "audio", n)
        prompt = self.prompt(
            subtitles,
            None if targets is None else list(targets),
            has_video=has_video.tolist(),
            has_audio=has_audio.tolist(),
            questions=batch.get("question"),
            padding_side=padding_side or self.config.prompt.padding_side,
        ).to(self.device)
        embeds = self.llm.get_input_embeddings()(self.prompt.embedding_ids(prompt))
        touch = torch.zeros((), device=self.device)
        for name, adapter, feats, has, pos, slots in (
            ("video", self.video, video, has_video, video_pos, prompt.video_positions),
            ("audio", self.audio, audio, has_audio, audio_pos, prompt.audio_positions),
        ):
            out = self._encode_branch(adapter, feats, has, pos)
            if out is None:
                if torch.is_grad_enabled():
                    touch = touch + self._ddp_touch(adapter)
                out = embeds.new_zeros(0, adapter.num_query, embeds.shape[-1])
            embeds = splice_features(embeds, slots, out, name)
        return prompt, embeds, touch

    # ------------------------------------------------------------------ forward / generate
    def forward(self, batch: Mapping[str, Any], *, return_logits: bool | None = None
                ) -> AffectGPTOutput:
        """Loss on the answer tokens (when ``batch["target"]`` is given) and logits.

        With targets the loss is, by default, all that is computed: the LM head runs only
        on the positions that predict an answer token (about a fifth of a training step
        goes to projecting every position onto the vocabulary otherwise) and ``logits``
        is None. ``return_logits=True`` computes the logits of every position as well
        (the same loss); without targets they are always returned. With the
        :attr:`prefix_cache`, the loss-only forward runs the LLM from the first feature
        token on, the rows packed into one sequence (:mod:`affectgpt.model.prefix`).
        """
        with_targets = batch.get("target") is not None
        if return_logits is None:
            return_logits = not with_targets
        prompt, embeds, touch = self.prepare(batch, with_targets=with_targets)
        llm_inputs = dict(inputs_embeds=embeds, attention_mask=prompt.attention_mask,
                          position_ids=prompt.position_ids, use_cache=False)
        if return_logits or not with_targets:
            out = self.llm(**llm_inputs, labels=prompt.labels)
            loss, logits = out.loss, out.logits
        else:
            # logits at position t predict token t + 1: keep the positions whose next
            # token is labelled; the mean over them is the causal-LM loss transformers
            # computes from the full logits.
            next_labels = torch.full_like(prompt.labels, IGNORE_INDEX)
            next_labels[:, :-1] = prompt.labels[:, 1:]
            split = self._split_at_prefix(prompt, embeds, pack=True)
            if split is not None:  # the text before the features was run once, earlier
                llm_inputs = dict(self._cached_inputs(split), position_ids=split.position_ids,
                                  use_cache=True)
                next_labels = split.next_labels
            keep = next_labels != IGNORE_INDEX
            out = self.llm(**llm_inputs, logits_to_keep=keep)
            loss = nn.functional.cross_entropy(out.logits.float(), next_labels[keep])
            logits = None
        if loss is not None:
            loss = loss + touch.to(loss.dtype)
        return AffectGPTOutput(loss=loss, logits=logits, labels=prompt.labels,
                               attention_mask=prompt.attention_mask)

    @torch.no_grad()
    def generate_ids(
        self,
        batch: Mapping[str, Any],
        *,
        max_new_tokens: int | None = None,
        do_sample: bool | None = None,
        top_p: float | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        stop: str | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        """Generated token ids ``[B, new]`` (right-padded with the pad id); see :meth:`generate`."""
        g = self.config.generation
        do_sample = g.do_sample if do_sample is None else do_sample
        stop = self.prompt.stop if stop is None else stop
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens or g.max_new_tokens,
            "do_sample": do_sample,
            "pad_token_id": self.prompt.pad_token_id,
            "eos_token_id": self._eos_ids(stop),
            "use_cache": True,
        }
        if stop not in self.tokenizer.all_special_tokens:  # e.g. "###": matched on the text
            kwargs.update(stop_strings=[stop], tokenizer=self.tokenizer)
        if g.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = g.repetition_penalty
        if do_sample:
            kwargs.update(top_p=g.top_p if top_p is None else top_p,
                          temperature=g.temperature if temperature is None else temperature,
                          top_k=g.top_k if top_k is None else top_k)
        else:
            kwargs.update(top_p=None, temperature=None, top_k=None)
        was_training = self.training
        self.train(False)  # no dropout in the adapters (nor in LoRA) while generating
        try:
            prompt, embeds, _ = self.prepare(batch, with_targets=False, padding_side="left")
            inputs = dict(inputs_embeds=embeds, attention_mask=prompt.attention_mask)
            split = self._split_at_prefix(prompt, embeds, pack=False)
            if split is not None:  # generate counts positions from the mask itself
                inputs = self._cached_inputs(split)
                # generate takes the whole sequence's embeddings and skips the cached part
                inputs["inputs_embeds"] = torch.cat([split.inputs_embeds.new_zeros(
                    embeds.shape[0], split.prefix_length, embeds.shape[-1]),
                    split.inputs_embeds], dim=1)
            rng_devices = [self.device] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=rng_devices, enabled=seed is not None):
                if seed is not None:
                    torch.manual_seed(seed)
                return self.llm.generate(**inputs, **kwargs)
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ prefix cache
    @property
    def prefix_cache(self) -> PrefixCache | None:
        """The cache of the frozen LLM's keys and values over prompt prefixes
        (:mod:`affectgpt.model.prefix`), shared by every model on the same LLM weights in
        this process; None with LoRA (the LLM is not frozen), ``llm.prefix_cache_mb=0`` or
        an LLM on another attention than sdpa (e.g. flash-attention, which packed batches
        would need to be given differently)."""
        if not self._can_cache_prefix or self.config.llm.prefix_cache_mb <= 0:
            return None
        if self._prefix_cache is None or self._prefix_cache[0] != self.device:
            cache = PrefixCache.for_llm(self.llm, self.config.llm.prefix_cache_mb * 2 ** 20)
            self._prefix_cache = (self.device, cache)
        return self._prefix_cache[1]

    def _split_at_prefix(self, prompt: PromptBatch, embeds: torch.Tensor, *,
                         pack: bool) -> SplitBatch | None:
        """The batch as cached prefixes + the suffixes still to run (packed for training,
        left-padded for generation), or None when there is no cache or a row has no prefix
        to reuse."""
        cache = self.prefix_cache
        if cache is None:
            return None
        lengths = frozen_prefix_lengths(prompt)
        if min(lengths) < 1:
            return None
        rows = [prompt.input_ids[r][prompt.attention_mask[r].bool()][:n].tolist()
                for r, n in enumerate(lengths)]
        kv_rows = cache.lookup(self.llm, rows)
        layout = pack_after_prefix if pack else pad_after_prefix
        return layout(prompt, embeds, lengths, kv_rows)

    def _cached_inputs(self, split: SplitBatch) -> dict[str, Any]:
        """The LLM's inputs for ``split``: its suffixes, mask and a fresh cache of its
        prefixes (and the packed rows' segments)."""
        inputs = {"inputs_embeds": split.inputs_embeds, "attention_mask": split.attention_mask,
                  kv_cache_argument(self.llm): split.dynamic_cache()}
        if split.segments is not None:  # reaches segment_attention through the LLM's kwargs
            inputs["segments"] = split.segments
        return inputs

    def generate(self, batch: Mapping[str, Any], max_new_tokens: int | None = None,
                 do_sample: bool | None = None, top_p: float | None = None,
                 temperature: float | None = None, stop: str | None = None,
                 *, top_k: int | None = None, seed: int | None = None) -> list[str]:
        """One answer per sample, cut at ``stop`` (default: the configured terminator).

        Defaults come from ``config.generation`` (the reference: sampling, top-p 0.9,
        temperature 1, 300 new tokens); ``do_sample=False`` is greedy. ``seed`` makes
        sampling reproducible without touching the global RNG state.
        """
        stop = self.prompt.stop if stop is None else stop
        ids = self.generate_ids(batch, max_new_tokens=max_new_tokens, do_sample=do_sample,
                                top_p=top_p, temperature=temperature, top_k=top_k, stop=stop,
                                seed=seed)
        texts = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return [cut_at_stop(t, stop) for t in texts]

    def _eos_ids(self, stop: str) -> list[int]:
        """The tokenizer's EOS, plus ``stop`` when it is a special token (``<|im_end|>``)."""
        ids = []
        if self.tokenizer.eos_token_id is not None:
            ids.append(int(self.tokenizer.eos_token_id))
        stop_ids = self.tokenizer(stop, add_special_tokens=False)["input_ids"]
        if len(stop_ids) == 1 and stop in self.tokenizer.all_special_tokens:
            ids.append(int(stop_ids[0]))
        return sorted(set(ids))

    # ------------------------------------------------------------------ parameters
    def num_trainable_parameters(self) -> int:
        return count_parameters(self, trainable_only=True)

    def parameter_summary(self) -> dict[str, int]:
        """Parameter counts: ``video``, ``audio``, ``lora``, ``trainable``, ``llm_frozen``."""
        lora = sum(p.numel() for n, p in self.llm.named_parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in self.llm.parameters() if not p.requires_grad)
        return {
            "video": count_parameters(self.video),
            "audio": count_parameters(self.audio),
            "lora": lora,
            "trainable": self.num_trainable_parameters(),
            "llm_frozen": frozen,
        }

    def summary(self) -> str:
        """One line of parameter counts, e.g. for a training log."""
        s = self.parameter_summary()
        lora = f", LoRA {_millions(s['lora'])}" if self.has_lora else ""
        return (f"AffectGPT[{self.config.name}]: trainable {_millions(s['trainable'])} "
                f"(video {_millions(s['video'])}, audio {_millions(s['audio'])}{lora}); "
                f"frozen LLM {_millions(s['llm_frozen'])} ({self.llm_dtype})".replace(
                    "torch.", ""))

    def _trainable_names(self) -> list[str]:
        return [n for n, p in self.named_parameters() if p.requires_grad]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The adapters' (and LoRA's) weights only: what a checkpoint stores."""
        names = set(self._trainable_names())
        return {k: v for k, v in self.state_dict().items() if k in names}

    def load_trainable_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load :meth:`trainable_state_dict` output; any missing or extra key is an error."""
        expected = set(self._trainable_names())
        missing = sorted(expected - set(state))
        unexpected = sorted(set(state) - expected)
        if missing or unexpected:
            raise KeyError(f"trainable weights do not match this model: missing "
                           f"{missing[:8]}{'...' if len(missing) > 8 else ''}, unexpected "
                           f"{unexpected[:8]}{'...' if len(unexpected) > 8 else ''}")
        result = self.load_state_dict(dict(state), strict=False)
        assert not result.unexpected_keys, result.unexpected_keys

    def llm_fingerprint(self) -> dict[str, Any]:
        return llm_fingerprint(self.llm, self._vocab_size, self.config.llm.path)

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.yaml``, ``adapters.safetensors`` (trainable weights only) and
        ``meta.json`` (LLM fingerprint, parameter counts) into ``directory``.

        Written to a temporary sibling folder and swapped in by renames, so a reader
        never sees a half-written checkpoint; an existing checkpoint there is replaced.
        """
        from safetensors.torch import save_file

        from affectgpt import __version__

        target = Path(directory).expanduser().resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            (tmp / CONFIG_FILE).write_text(self.config.to_yaml(), encoding="utf-8")
            state = {k: v.detach().to("cpu").contiguous() for k, v in
                     self.trainable_state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
            meta = {
                "format": CHECKPOINT_FORMAT,
                "affectgpt": __version__,
                "llm": self.llm_fingerprint(),
                "parameters": self.parameter_summary(),
            }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            os.chmod(tmp, 0o755)
            _swap_in(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, *,
                        device: torch.device | str | None = None,
                        overrides: Sequence[str] = (), check_llm: bool = True) -> AffectGPT:
        """Rebuild a :meth:`save_pretrained` checkpoint (the LLM is loaded from its config).

        ``overrides`` adjust the saved config, e.g. ``["llm.path=/models/vicuna"]`` on
        another machine. With ``check_llm`` the loaded LLM must match the one the adapters
        were trained against (:class:`LLMMismatchError` otherwise).
        """
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / CONFIG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
            raise FileNotFoundError(f"no AffectGPT checkpoint ({CONFIG_FILE}, {WEIGHTS_FILE}) "
                                    f"in {directory}")
        config = ModelConfig.from_yaml(directory / CONFIG_FILE)
        config = apply_overrides(config, list(overrides))
        model = cls.from_config(config, device=device)
        model.load_trainable_state_dict(load_file(str(directory / WEIGHTS_FILE)))
        meta_path = directory / META_FILE
        if check_llm and meta_path.is_file():
            saved = json.loads(meta_path.read_text(encoding="utf-8")).get("llm", {})
            now = model.llm_fingerprint()
            diff = {k: (saved.get(k), now.get(k)) for k in
                    ("class", "hidden_size", "vocab_size", "num_parameters", "embed_sha256")
                    if saved.get(k) != now.get(k)}
            if diff:
                lines = "; ".join(f"{k}: checkpoint {a!r}, loaded {b!r}" for k, (a, b) in
                                  diff.items())
                raise LLMMismatchError(
                    f"the LLM loaded for {directory} differs from the one its adapters were "
                    f"trained with ({lines}); pass check_llm=False to load anyway")
        return model

    # ------------------------------------------------------------------ Video-LLaMA weights
    def load_video_llama(self, checkpoint: str | os.PathLike | Mapping[str, torch.Tensor],
                         *, projections: bool = True, allow_partial: bool = False,
                         ) -> dict[str, Any]:
        """Initialise the branches from a Video-LLaMA / AffectGPT checkpoint.

        ``checkpoint`` is a ``.pth`` path or its loaded dict. Shapes must match, else
        ``ValueError``; ``projections=False`` leaves ``video.proj`` / ``audio.proj`` alone
        (for an LLM of another hidden size). A branch covered only partly (e.g. a missing
        Q-Former layer) raises :class:`~affectgpt.model.adapters.PartialCheckpointError`
        unless ``allow_partial=True``. Returns ``{"loaded": [...], "skipped": [...],
        "coverage": {branch: {part: counts}}}`` (see
        :func:`~affectgpt.model.adapters.load_video_llama_branches`).
        """
        return load_video_llama_branches({"video": self.video, "audio": self.audio}, checkpoint,
                                         projections=projections, allow_partial=allow_partial)


def _swap_in(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``, replacing an existing ``target`` folder."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rmdir(old)
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _millions(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"


def cut_at_stop(text: str, stop: str | None) -> str:
    """The text before the first ``stop`` (reference post-processing), stripped."""
    if stop:
        text = text.split(stop, 1)[0]
    return text.strip()


def count_adapter_parameters(config: ModelConfig, llm_hidden: int | None = None,
                             ) -> dict[str, int]:
    """Adapter parameter counts for ``config`` without loading the LLM (meta tensors).

    ``llm_hidden`` defaults to ``config.llm.hidden_size``. LoRA parameters are not
    included (they depend on the LLM's layer shapes).
    """
    hidden = llm_hidden or config.llm.hidden_size
    if not hidden:
        raise ValueError("llm.hidden_size is not set: pass llm_hidden")
    with torch.device("meta"):
        video = QFormerAdapter.from_config(config.video, hidden)
        audio = QFormerAdapter.from_config(config.audio, hidden)
    v, a = count_parameters(video), count_parameters(audio)
    return {"video": v, "audio": a, "total": v + a}
