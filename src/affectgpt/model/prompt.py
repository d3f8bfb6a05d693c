"""Prompts: text with placeholders -> token ids, labels, attention mask; feature splicing.

The user turn (``wording="reference"``, the reference's wording; the audio sentence is
dropped for a clip without audio, the video sentence for one without video)::

    Close your eyes, open your ears and you imagine only based on the sound that
    <Audio><AudioHere>x8</Audio>. Close your ears, open your eyes and you see that
    <Video><ImageHere>x32</Video>. The subtitle of this video is
    <Subtitle>{subtitle}</Subtitle>. Now answer my question based on what you have seen,
    heard, and provided subtitle. {question}

``wording="short"`` keeps the layout and the tags but drops the prose around them
(``Audio: <Audio>...</Audio>. Video: <Video>...</Video>. Subtitle: <Subtitle>...
</Subtitle>. {question}``): 31 instead of 99 template tokens with SmolLM2's tokenizer,
which makes a CPU training step of the ``small`` preset about 30% cheaper (on the demo's
validation split it learned worse in three epochs: docs/demo-tuning.md).

``order`` (``prompt.order``) arranges the same sentences: ``"reference"`` as above,
``"subtitle-first"`` (subtitle, audio, video, question) or ``"text-first"`` (subtitle,
question, audio, video: everything before the first feature token depends on the text
alone, so :mod:`affectgpt.model.prefix` computes it once per clip).

The user turn is wrapped as ``###Human: {user} ###Assistant: `` (``vicuna-v0``, preceded by BOS) or by
the tokenizer's chat template (``chat-template``). The answer is ``{target}{stop}``
(``###`` or the template's end-of-turn token); only the answer tokens are labelled, every
other label is -100.

``<ImageHere>`` / ``<AudioHere>`` are added to the *tokenizer* as special tokens, so each
is exactly one id. The LLM's embedding matrix is never resized: before the embedding
lookup those ids are replaced by the pad id, and :func:`splice_features` overwrites their
embeddings with the projected features (``masked_scatter``). No embedding row of the LLM
is ever used for, or trained on, a placeholder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

VIDEO_PLACEHOLDER = "<ImageHere>"
AUDIO_PLACEHOLDER = "<AudioHere>"
IGNORE_INDEX = -100

VICUNA_V0 = "###Human: {user} ###Assistant: "


@dataclass(frozen=True)
class PromptWording:
    """The sentences of the user turn; ``{audio}``, ``{video}``, ``{subtitle}`` and
    ``{question}`` are filled in."""

    audio: str
    video: str
    subtitle: str
    question: str


WORDINGS = {
    "reference": PromptWording(
        audio=("Close your eyes, open your ears and you imagine only based on the sound "
               "that <Audio>{audio}</Audio>. "),
        video="Close your ears, open your eyes and you see that <Video>{video}</Video>. ",
        subtitle="The subtitle of this video is <Subtitle>{subtitle}</Subtitle>. ",
        question=("Now answer my question based on what you have seen, heard, and provided "
                  "subtitle. {question}"),
    ),
    "short": PromptWording(
        audio="Audio: <Audio>{audio}</Audio>. ",
        video="Video: <Video>{video}</Video>. ",
        subtitle="Subtitle: <Subtitle>{subtitle}</Subtitle>. ",
        question="{question}",
    ),
}


#: the order of the user turn's sentences (``prompt.order``)
ORDERS = {
    "reference": ("audio", "video", "subtitle", "question"),
    "subtitle-first": ("subtitle", "audio", "video", "question"),
    "text-first": ("subtitle", "question", "audio", "video"),
}


class PlaceholderMismatchError(ValueError):
    """The number of placeholder tokens differs from the number of feature tokens."""


@dataclass
class PromptBatch:
    """A tokenised, padded batch. ``video_positions`` / ``audio_positions`` mark the
    placeholder tokens (``[B, L]`` bool); ``labels`` is None for generation prompts."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor | None
    video_positions: torch.Tensor
    audio_positions: torch.Tensor

    def to(self, device: torch.device | str) -> PromptBatch:
        return PromptBatch(*(None if t is None else t.to(device) for t in (
            self.input_ids, self.attention_mask, self.labels, self.video_positions,
            self.audio_positions)))

    @property
    def position_ids(self) -> torch.Tensor:
        """0, 1, 2, ... over the real tokens of each row, whatever the padding side."""
        return (self.attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _sanitize(text: str) -> str:
    """User text must not create placeholder tokens."""
    return text.replace(VIDEO_PLACEHOLDER, "ImageHere").replace(AUDIO_PLACEHOLDER, "AudioHere")


class PromptBuilder:
    """Builds :class:`PromptBatch` es for one tokenizer and prompt configuration."""

    def __init__(
        self,
        tokenizer,
        *,
        num_video_tokens: int,
        num_audio_tokens: int,
        style: str = "vicuna-v0",
        wording: str = "reference",
        order: str = "reference",
        question: str = "From what clues can we infer the person's emotional state?",
        stop: str | None = None,
        add_bos: bool = True,
        max_length: int = 1024,
    ):
        if style not in ("vicuna-v0", "chat-template"):
            raise ValueError(f"unknown prompt style {style!r}")
        if wording not in WORDINGS:
            raise ValueError(f"unknown prompt wording {wording!r} (one of {sorted(WORDINGS)})")
        if order not in ORDERS:
            raise ValueError(f"unknown prompt order {order!r} (one of {sorted(ORDERS)})")
        if style == "chat-template" and not getattr(tokenizer, "chat_template", None):
            raise ValueError("prompt style 'chat-template' needs a tokenizer with a chat template")
        self.tokenizer = tokenizer
        self.style = style
        self.wording = WORDINGS[wording]
        self.order = ORDERS[order]
        self.num_video_tokens = num_video_tokens
        self.num_audio_tokens = num_audio_tokens
        self.question = question
        self.add_bos = add_bos
        self.max_length = max_length
        if stop is None:
            stop = "###" if style == "vicuna-v0" else tokenizer.eos_token
            if not stop:
                raise ValueError("the tokenizer has no EOS token: set prompt.stop")
        self.stop = stop
        self.video_token_id, self.audio_token_id = register_placeholders(tokenizer)
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_token_id = int(pad)
        self._stop_ids = self._encode(stop)

    # ------------------------------------------------------------------ text
    def user_message(self, subtitle: str | None, *, has_video: bool = True,
                     has_audio: bool = True, question: str | None = None) -> str:
        wording = self.wording
        parts = {
            "audio": (wording.audio.format(audio=AUDIO_PLACEHOLDER * self.num_audio_tokens)
                      if has_audio else ""),
            "video": (wording.video.format(video=VIDEO_PLACEHOLDER * self.num_video_tokens)
                      if has_video else ""),
            "subtitle": wording.subtitle.format(subtitle=_sanitize(subtitle or "")),
            "question": wording.question.format(question=_sanitize(question or self.question)),
        }
        sentences = [parts[name] for name in self.order if parts[name]]
        # the wordings end every sentence but the question with the space before the next
        return "".join(s if s.endswith(" ") else s + " " for s in sentences[:-1]
                       ) + sentences[-1].rstrip(" ")

    def prompt_text(self, subtitle: str | None, *, has_video: bool = True,
                    has_audio: bool = True, question: str | None = None) -> str:
        """The prompt up to where the answer starts (BOS not included)."""
        user = self.user_message(subtitle, has_video=has_video, has_audio=has_audio,
                                 question=question)
        if self.style == "vicuna-v0":
            return VICUNA_V0.format(user=user)
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True)

    # ------------------------------------------------------------------ ids
    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(self, subtitle: str | None, target: str | None = None, *, has_video: bool = True,
               has_audio: bool = True, question: str | None = None) -> tuple[list[int], list[int]]:
        """One sample -> ``(input_ids, labels)`` (unpadded)."""
        prompt = self._encode(self.prompt_text(subtitle, has_video=has_video,
                                               has_audio=has_audio, question=question))
        if self.style == "vicuna-v0" and self.add_bos and self.tokenizer.bos_token_id is not None:
            prompt = [int(self.tokenizer.bos_token_id)] + prompt
        if len(prompt) > self.max_length:
            raise ValueError(f"prompt of {len(prompt)} tokens exceeds prompt.max_length "
                             f"{self.max_length} (subtitle of {len(subtitle or '')} characters)")
        if target is None:
            return prompt, [IGNORE_INDEX] * len(prompt)
        answer = self._encode(_sanitize(target) + self.stop)
        room = self.max_length - len(prompt)
        if len(answer) > room:  # keep the terminator so the model still learns to stop
            core = self._encode(_sanitize(target))
            keep = room - len(self._stop_ids)
            if keep <= 0:
                raise ValueError(f"no room for the answer within prompt.max_length "
                                 f"{self.max_length}")
            answer = core[:keep] + self._stop_ids
        return prompt + answer, [IGNORE_INDEX] * len(prompt) + answer

    def __call__(
        self,
        subtitles: Sequence[str | None],
        targets: Sequence[str] | None = None,
        *,
        has_video: Sequence[bool] | None = None,
        has_audio: Sequence[bool] | None = None,
        questions: Sequence[str | None] | None = None,
        padding_side: str = "right",
    ) -> PromptBatch:
        """Tokenise and pad a batch (``padding_side`` ``"left"`` for generation)."""
        n = len(subtitles)
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        for name, seq in (("targets", targets), ("has_video", has_video),
                          ("has_audio", has_audio), ("questions", questions)):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{name} has {len(seq)} entries for {n} subtitles")
        rows = [
            self.encode(
                subtitles[i],
                None if targets is None else targets[i],
                has_video=True if has_video is None else bool(has_video[i]),
                has_audio=True if has_audio is None else bool(has_audio[i]),
                question=None if questions is None else questions[i],
            )
            for i in range(n)
        ]
        length = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((n, length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((n, length), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((n, length), dtype=torch.long)
        for i, (ids, lab) in enumerate(rows):
            span = slice(0, len(ids)) if padding_side == "right" else slice(length - len(ids),
                                                                            length)
            input_ids[i, span] = torch.tensor(ids, dtype=torch.long)
            labels[i, span] = torch.tensor(lab, dtype=torch.long)
            attention[i, span] = 1
        return PromptBatch(
            input_ids=input_ids,
            attention_mask=attention,
            labels=labels if targets is not None else None,
            video_positions=(input_ids == self.video_token_id) & attention.bool(),
            audio_positions=(input_ids == self.audio_token_id) & attention.bool(),
        )

    def embedding_ids(self, batch: PromptBatch) -> torch.Tensor:
        """Input ids safe for the LLM's embedding lookup: placeholders -> pad id."""
        return batch.input_ids.masked_fill(batch.video_positions | batch.audio_positions,
                                           self.pad_token_id)


def register_placeholders(tokenizer) -> tuple[int, int]:
    """Add ``<ImageHere>`` and ``<AudioHere>`` to the tokenizer (idempotent); their ids."""
    from tokenizers import AddedToken

    vocab = tokenizer.get_vocab()
    new = [AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False)
           for t in (VIDEO_PLACEHOLDER, AUDIO_PLACEHOLDER) if t not in vocab]
    if new:
        tokenizer.add_tokens(new, special_tokens=True)
    ids = tokenizer.convert_tokens_to_ids([VIDEO_PLACEHOLDER, AUDIO_PLACEHOLDER])
    for token, token_id in zip((VIDEO_PLACEHOLDER, AUDIO_PLACEHOLDER), ids):
        check = tokenizer(token, add_special_tokens=False)["input_ids"]
        if list(check) != [token_id]:
            raise RuntimeError(f"the tokenizer does not encode {token} as one token: {check}")
    return int(ids[0]), int(ids[1])


def splice_features(
    inputs_embeds: torch.Tensor,
    positions: torch.Tensor,
    features: torch.Tensor,
    what: str = "feature",
) -> torch.Tensor:
    """Write ``features`` into the placeholder rows of ``inputs_embeds``.

    ``inputs_embeds`` ``[B, L, H]``; ``positions`` ``[B, L]`` bool (the placeholders);
    ``features`` ``[n, Q, H]``: one block of Q feature tokens per sample that has
    placeholders, in batch order. Every such sample must hold exactly Q placeholders;
    anything else raises :class:`PlaceholderMismatchError`. Differentiable w.r.t.
    ``features`` (``masked_scatter``).
    """
    if features.ndim != 3 or features.shape[-1] != inputs_embeds.shape[-1]:
        raise ValueError(f"{what} features must be [n, Q, {inputs_embeds.shape[-1]}], got "
                         f"{tuple(features.shape)}")
    counts = positions.sum(dim=1)
    rows = counts > 0
    n_rows, q = features.shape[0], features.shape[1]
    total = int(counts.sum())
    if total != n_rows * q or int(rows.sum()) != n_rows or bool((counts[rows] != q).any()):
        raise PlaceholderMismatchError(
            f"{what}: {total} placeholder tokens in the prompts "
            f"(per sample: {counts.tolist()}) but {n_rows} x {q} = {n_rows * q} feature "
            "tokens; each sample with this modality needs exactly as many placeholders as "
            "the adapter has query tokens")
    mask = positions.unsqueeze(-1).expand_as(inputs_embeds)
    return inputs_embeds.masked_scatter(mask, features.to(inputs_embeds.dtype))
