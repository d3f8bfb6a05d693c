"""The LLM merge: a short description written around the measured clues, ending with labels.

The LLM gets the clue sentences (face, words, voice), the fused clue labels and asks for a
structured reply::

    Description: <two or three sentences>
    Labels: [angry, frustrated]

A reply is validated (:func:`parse_reply`: both parts present, a non-empty label list, no
repetition loop) and an invalid one is answered with a correction turn
(:func:`affectgpt.llm.client.ask_validated`); after ``max_attempts`` the labels are read
from the last reply by the offline lexicon and, failing that, taken from the clues -- the
result records which (``labels_source``). Replies are short (``max_tokens``) and, for the
packaged model, decoded with a repetition penalty and no repeated 4-grams, so a tiny LLM
cannot loop to its token limit; what is left of a loop is cut (:func:`cut_repetition`).

Who decides the labels (``decide``):

- ``"clues"`` (the packaged SmolLM2-135M default): the fused clue labels are final; the
  LLM only writes the description around them (it cannot judge emotion from text: asked to
  pick one of six labels for a dialogue line it says "happy" almost always). Its own
  labels are recorded, and whether they contradict every clue.
- ``"llm"`` (a strong model behind ``--llm-base-url``): the LLM's labels are final -- the
  paper's disambiguation step -- unless they contradict every clue, which the result says.
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from affectgpt.clues.fusion import Fusion, contradicts
from affectgpt.clues.labels import ClueReading

__all__ = ["LocalChatModel", "MergeResult", "compact_messages", "cut_repetition", "merge_clues",
           "merge_messages", "parse_description", "parse_reply", "short_clue",
           "template_description"]

PROMPT_VERSION = "zeroshot-merge-v1"
Decide = Literal["clues", "llm"]

_SYSTEM = ("You describe the emotional state of a person in a video clip from measured "
           "clues. Be brief and concrete. Reply in exactly this format:\n"
           "Description: <two or three sentences>\nLabels: [<label>, <label>]")


def merge_messages(readings: list[ClueReading], fusion: Fusion, *, decide: Decide = "clues",
                   notes: list[str] | None = None) -> list[dict[str, str]]:
    """The chat messages of the merge (system + one user turn with the clues)."""
    lines = [f"- {r.text}" for r in readings]
    lines += [f"- {n}" for n in notes or []]
    suggested = ", ".join(fusion.labels)
    if decide == "clues":
        task = (f"The measurements together indicate: {suggested}. Write a description of "
                f"the person's emotional state that explains this from the clues, then "
                f"the labels line with exactly these labels: [{suggested}].")
    else:
        task = (f"The measurements together suggest: {suggested}. Weigh the clues (the words "
                f"and the face say whether the feeling is positive or negative; the voice "
                f"mostly says how intense it is), write a description of the person's "
                f"emotional state, then the labels line with one to three emotion words.")
    user = "Clues measured in the clip:\n" + "\n".join(lines) + "\n\n" + task
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def short_clue(reading: ClueReading) -> str:
    """One short line per clue, for a tiny LLM (long measurement sentences confuse it)."""
    from affectgpt.clues.labels import describe_affect

    name = {"face": "Face", "text": "Words", "prosody": "Voice"}[reading.modality]
    if not reading.available:
        what = {"face": "no face is visible", "text": "nothing intelligible is said",
                "prosody": "no speech is heard"}[reading.modality]
        return f"{name}: {what}."
    affect = describe_affect(reading.valence, reading.arousal)
    if reading.modality == "prosody":
        return f"{name}: sounds {affect.split(' and ')[-1]}."
    if reading.modality == "text":
        quoted = reading.measured.get("quote") or ""
        said = f' "{quoted}"' if quoted else ""
        return f"{name}:{said} sound {reading.top}, {affect}."
    return f"{name}: looks {reading.top}, {affect}."


def compact_messages(readings: list[ClueReading], fusion: Fusion,
                     notes: list[str] | None = None) -> list[dict[str, str]]:
    """The merge prompt for a tiny local model: one line per clue and the fused labels."""
    lines = [short_clue(r) for r in readings] + list(notes or [])
    lines.append(f"Overall: {' and '.join(fusion.labels)}.")
    user = ("Clues about a person in a video:\n" + "\n".join(lines)
            + "\n\nIn two sentences, describe how the person feels and which clues show it.")
    return [{"role": "user", "content": user}]


def parse_description(text: str) -> str:
    """The description of a reply that was started with ``Description:`` (the labels line
    is not the model's to write), cut at a loop and at the last full sentence.

    Raises:
        ValueError: too short, or nothing left after cutting a loop.
    """
    description = _DESCRIPTION.split(text, maxsplit=1)[-1].strip()
    description = cut_repetition(description)
    sentences = re.split(r"(?<=[.!?])\s+", description)
    description = " ".join(sentences[:2])  # asked for two; more is where tiny models drift
    end = max(description.rfind(c) for c in ".!?")
    if end >= 0:
        description = description[:end + 1]
    if len(description.split()) < 6:
        raise ValueError("the description is missing or too short")
    return description


_LABELS_LINE = re.compile(r"labels?\s*[:：]\s*(.*)$", re.IGNORECASE | re.DOTALL)
_DESCRIPTION = re.compile(r"description\s*[:：]\s*", re.IGNORECASE)


def cut_repetition(text: str, n: int = 6) -> str:
    """``text`` up to the first sentence that repeats an earlier one, or up to the first
    word ``n``-gram that occurred before (a generation loop)."""
    sentences = re.split(r"(?<=[.!?。！？])\s+", text.strip())
    kept, seen = [], set()
    for sentence in sentences:
        key = re.sub(r"\W+", " ", sentence.lower()).strip()
        if key and key in seen:
            break
        seen.add(key)
        kept.append(sentence)
    text = " ".join(kept)
    words = text.split()
    grams: set[tuple[str, ...]] = set()
    for i in range(len(words) - n + 1):
        gram = tuple(w.lower().strip(".,;!?") for w in words[i:i + n])
        if gram in grams:
            return " ".join(words[:i]).rstrip(",;") + ("" if words[i - 1][-1:] in ".!?" else ".")
        grams.add(gram)
    return text


def parse_reply(text: str) -> tuple[str, list[str]]:
    """``(description, labels)`` of a structured reply.

    Raises:
        ValueError: a part is missing, the label list is empty, or the reply loops.
    """
    from affectgpt.eval.labels import parse_label_list

    match = _LABELS_LINE.search(text)
    if not match:
        raise ValueError("the reply has no 'Labels: [...]' line")
    head = text[:match.start()]
    description = _DESCRIPTION.split(head, maxsplit=1)[-1].strip()
    if len(description.split()) < 4 and len(description) < 12:
        raise ValueError("the description is missing or too short")
    if cut_repetition(description) != re.sub(r"\s+", " ", description).strip() \
            and len(cut_repetition(description)) < 0.8 * len(description):
        raise ValueError("the description repeats itself")
    raw = match.group(1).strip().splitlines()[0] if match.group(1).strip() else ""
    try:
        labels = parse_label_list(raw if raw.startswith("[") else f"[{raw}]")
    except ValueError as exc:
        raise ValueError(f"the labels line is not a list: {exc}") from None
    labels = [lab.strip().lower().strip(".") for lab in labels if lab.strip()]
    labels = [lab for lab in labels if 0 < len(lab.split()) <= 3][:5]
    if not labels:
        raise ValueError("the labels list is empty")
    return description, labels


def _correction(reason: str) -> str:
    return (f"Your reply was not usable ({reason}). Answer again in exactly two lines:\n"
            f"Description: <two or three sentences>\nLabels: [<label>, <label>]")


@dataclass
class _Reply:
    text: str
    usage: dict[str, int]
    finish_reason: str | None


class LocalChatModel:
    """A local ``transformers`` chat model (default: the packaged SmolLM2-135M-Instruct,
    exported once by :func:`affectgpt.llm.export_smollm2`), greedy with a repetition
    penalty and no repeated ``no_repeat_ngram``-grams. ``chat`` has the interface
    :func:`~affectgpt.llm.client.ask_validated` needs."""

    #: it can continue a started reply (``prefill``): the merge then constrains the format
    supports_prefill = True

    def __init__(self, model_dir: str | Path | None = None, *, repetition_penalty: float = 1.1,
                 no_repeat_ngram: int = 3):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from affectgpt.llm import export_smollm2

        folder = Path(model_dir) if model_dir else export_smollm2()
        self.model_dir = folder
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder).eval()
        self.repetition_penalty = repetition_penalty
        self.no_repeat_ngram = no_repeat_ngram
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"kind": "local", "model": str(self.model_dir),
                "repetition_penalty": self.repetition_penalty,
                "no_repeat_ngram_size": self.no_repeat_ngram}

    def chat(self, messages: list[dict[str, str]], *, max_tokens: int = 160,
             temperature: float = 0.0, prefill: str = "", stop: tuple[str, ...] = (),
             **_: Any) -> _Reply:
        """Greedy reply to ``messages``; ``prefill`` starts the assistant's turn (and the
        returned text), which is cut at the first of ``stop``."""
        import torch

        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                    tokenize=False) + prefill
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        with self._lock, torch.no_grad():
            out = self.model.generate(
                **ids, max_new_tokens=max_tokens, do_sample=False,
                repetition_penalty=self.repetition_penalty,
                no_repeat_ngram_size=self.no_repeat_ngram,
                pad_token_id=self.tokenizer.eos_token_id)
        new = out[0, ids["input_ids"].shape[1]:]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        finish = "length" if len(new) >= max_tokens else "stop"
        for marker in stop:
            if marker in text:
                text, finish = text[:text.index(marker)], "stop"
        return _Reply((prefill + text).strip(),
                      {"prompt_tokens": int(ids["input_ids"].shape[1]),
                       "completion_tokens": int(len(new))}, finish)


@dataclass
class MergeResult:
    """What :func:`merge_clues` made.

    ``labels_source``: ``"clues"`` (fused clue labels), ``"llm"`` (the LLM's),
    ``"lexicon-fallback"`` (read from an unstructured reply by the offline lexicon) or
    ``"clues-fallback"`` (no usable reply); ``llm_labels``: the labels the LLM wrote;
    ``llm_contradicts_clues``: they contradict every available clue.
    """

    description: str
    labels: list[str]
    labels_source: str
    llm_labels: list[str] = field(default_factory=list)
    llm_contradicts_clues: bool = False
    attempts: int = 0
    reason: str = ""
    reply: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def template_description(readings: list[ClueReading], fusion: Fusion) -> str:
    """A description made from the clue sentences alone (no LLM reply was usable)."""
    said = " ".join(r.text for r in readings)
    return f"{said} Taken together, the clues point to {' and '.join(fusion.labels)}."


def merge_clues(chat: Any, readings: list[ClueReading], fusion: Fusion, *,
                decide: Decide = "clues", max_tokens: int = 96, max_attempts: int = 2,
                notes: list[str] | None = None, **chat_kwargs: Any) -> MergeResult:
    """Merge the clues with ``chat`` (a :class:`LocalChatModel`, a
    :class:`~affectgpt.llm.client.ChatClient`, anything with ``chat(messages, ...)``);
    see the module docstring."""
    from affectgpt.llm.client import LLMError, ask_validated

    if decide == "clues" and getattr(chat, "supports_prefill", False):
        return _merge_prefilled(chat, readings, fusion, max_tokens=max_tokens,
                                max_attempts=max_attempts, notes=notes)
    messages = merge_messages(readings, fusion, decide=decide, notes=notes)
    outcome = ask_validated(chat, messages, parse_reply, _correction, max_attempts=max_attempts,
                            errors=(LLMError, OSError), max_tokens=max_tokens, temperature=0.0,
                            prompt_version=PROMPT_VERSION, **chat_kwargs)
    if outcome.ok:
        description, llm_labels = outcome.value
        against = contradicts(llm_labels, readings)
        if decide == "llm":
            labels, source = llm_labels, "llm"
        else:
            labels, source = list(fusion.labels), "clues"
        return MergeResult(cut_repetition(description), labels, source, llm_labels, against,
                           outcome.attempts, reply=outcome.last_reply or "")
    last = cut_repetition(_LABELS_LINE.sub("", _DESCRIPTION.sub("", outcome.last_reply or "")))
    if decide == "llm" and last:
        from affectgpt.eval.lexicon import LexiconExtractor

        lexicon = LexiconExtractor().extract(last)
        if lexicon:
            return MergeResult(last, lexicon, "lexicon-fallback", [], contradicts(lexicon, readings),
                               outcome.attempts, outcome.reason or "", outcome.last_reply or "")
    description = last if len(last.split()) >= 6 else template_description(readings, fusion)
    return MergeResult(description, list(fusion.labels), "clues-fallback", [], False,
                       outcome.attempts, outcome.reason or "", outcome.last_reply or "")


def _merge_prefilled(chat: Any, readings: list[ClueReading], fusion: Fusion, *,
                     max_tokens: int, max_attempts: int, notes: list[str] | None) -> MergeResult:
    """The tiny local model writes only the description (its reply is started for it and
    cut at the end of the line); the labels line is the fused clue labels."""
    from affectgpt.eval.lexicon import LexiconExtractor
    from affectgpt.llm.client import ask_validated

    outcome = ask_validated(chat, compact_messages(readings, fusion, notes), parse_description,
                            _correction_description, max_attempts=max_attempts,
                            errors=(RuntimeError, OSError), max_tokens=max_tokens,
                            prefill="Description: The person", stop=("\n", "Labels", "Label:"))
    if not outcome.ok:
        return MergeResult(template_description(readings, fusion), list(fusion.labels),
                           "clues-fallback", [], False, outcome.attempts, outcome.reason or "",
                           outcome.last_reply or "")
    description = outcome.value
    said = LexiconExtractor().extract(description)
    return MergeResult(description, list(fusion.labels), "clues", said,
                       contradicts(said, readings), outcome.attempts,
                       reply=outcome.last_reply or "")


def _correction_description(reason: str) -> str:
    return (f"That was not usable ({reason}). In two plain sentences, say how the person "
            f"feels and which clues show it.")
