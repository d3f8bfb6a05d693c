"""Emotion-label extraction from free-text emotion descriptions.

LLM extraction (:func:`extract_labels_llm`) follows the reference protocol (AffectGPT /
MERTools): the LLM is asked for the emotional states of the main character that are
clearly identifiable from the description, comma-separated in list form, and an empty
list when there are none (a short few-shot prompt). Unlike the 2025 reference code
(temperature 0.7), decoding is deterministic (temperature 0) and every reply can be cached,
so scores do not drift between runs. Replies are validated
(:func:`~affectgpt.eval.labels.parse_label_list`); an invalid one is answered with a
corrective turn, and a description whose attempts all fail is recorded as a failure and
left out of the result (nothing is substituted for it).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console

from affectgpt.eval.labels import LabelFormatError, format_label_list, parse_label_list, read_column
from affectgpt.io import atomic_write
from affectgpt.llm.client import ChatClient, ask_validated, bracketed_reply, run_bounded

# ================================================================== LLM extraction

EXTRACT_PROMPT_VERSION = "affectgpt-extract-v1"

EXTRACT_INSTRUCTION = (
    "Please assume the role of an expert in the field of emotions. We provide a description "
    "of the emotional clues of a person in a video. Please identify the emotional states of "
    "the main character. Only list emotional states that are clearly identifiable from the "
    "description. Separate the emotional states with commas and output them in list form. "
    "If no emotional state can be identified, output an empty list []. Directly output the "
    "list."
)

# Few-shot examples, given as earlier chat turns (a small model copies the examples'
# labels when they sit inside one long prompt, but follows them as turns).
EXTRACT_EXAMPLES = (
    ("He smiles broadly and his voice rises with excitement as he tells his friend the good "
     "news.", "['happy', 'excited']"),
    ("She frowns, raises her voice and says she cannot believe he lied to her again.",
     "['angry', 'disappointed']"),
    ("The man reads out a train timetable in an even voice; no facial expression or "
     "emotional wording is described.", "[]"),
)

EXTRACT_CORRECTION_PROMPT = (
    "Your reply could not be used: {reason}. Reply again with only the list of the main "
    "character's emotional states, such as ['happy', 'excited'], or [] if none is clearly "
    "identifiable. Output the list and no other words."
)

MAX_LABEL_WORDS = 4  # an emotional state is a word or a short phrase, not a sentence


def extraction_messages(description: str) -> list[dict[str, str]]:
    """System instruction, the few-shot examples as user/assistant turns, then the query."""
    messages = [{"role": "system", "content": EXTRACT_INSTRUCTION}]
    for example, answer in EXTRACT_EXAMPLES:
        messages += [{"role": "user", "content": f"Description: {example}"},
                     {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": "Description: " + " ".join(description.split())})
    return messages


def validate_extraction(reply: str) -> list[str]:
    """Parse an extraction reply into labels; raise ValueError with the reason when it
    is not a flat list of short labels."""
    text = bracketed_reply(reply, "a list in brackets")
    try:
        labels = parse_label_list(text)
    except LabelFormatError as exc:
        raise LabelFormatError(f"the reply is not a flat list of labels ({exc})") from None
    long = [x for x in labels if len(x.split()) > MAX_LABEL_WORDS]
    if long:
        raise LabelFormatError(
            f"these items are not short emotion words: {long[:3]}")
    return labels


def extract_labels_llm(
    descriptions: Mapping[str, str],
    client: ChatClient,
    max_attempts: int = 3,
    progress: bool = True,
    *,
    max_tokens: int = 128,
    seed: int | None = None,
) -> tuple[dict[str, list[str]], list[dict]]:
    """Extract emotion labels from ``{name: description}`` with an LLM.

    Returns ``(labels, failures)``: ``labels[name]`` is a list of lower-cased labels
    (``[]`` for an empty description, which needs no call). A sample whose attempts all
    failed is NOT in ``labels`` (so it cannot pass for "no emotion"); ``failures`` holds
    ``{name, description, reason, last_reply, attempts}`` for each. Samples run
    concurrently (``client.concurrency``); ``labels`` keeps the input order.
    """
    names = list(descriptions)
    for name in names:
        if not isinstance(descriptions[name], str):
            raise TypeError(f"description of {name!r} is not a string")
    todo = [n for n in names if descriptions[n].strip()]

    def one(name: str):
        return ask_validated(
            client,
            extraction_messages(descriptions[name]),
            validate_extraction,
            lambda reason: EXTRACT_CORRECTION_PROMPT.format(reason=reason),
            max_attempts=max_attempts,
            temperature=0.0,
            max_tokens=max_tokens,
            seed=seed,
            prompt_version=EXTRACT_PROMPT_VERSION,
        )

    results = dict(zip(todo, run_bounded(one, todo, client.concurrency, progress=progress,
                                         desc="LLM label extraction", unit="sample"),
                       strict=True))
    labels: dict[str, list[str]] = {}
    failures: list[dict] = []
    for name in names:
        result = results.get(name)
        if result is None:
            labels[name] = []
        elif result.ok:
            labels[name] = result.value
        else:
            failures.append({"name": name, "description": descriptions[name],
                             "reason": result.reason, "last_reply": result.last_reply,
                             "attempts": result.attempts})
    return labels, failures


# ================================================================== files


def extract_labels_file(
    input_path: str | Path, output_path: str | Path, *, method: str = "lexicon",
    text_column: str = "english", name_column: str = "name", encoding: str | None = None,
    llm=None, console: Console | None = None,
) -> tuple[dict[str, list[str]], list[dict]]:
    """Extract labels for every description of a CSV/TSV/JSONL/JSON file.

    Writes ``output_path`` (CSV ``name,openset``; samples whose extraction failed are
    left out) and, when there are failures, ``<output>.failures.jsonl`` next to it.
    ``llm`` is an :class:`~affectgpt.llm.endpoint.ChatEndpoint` for ``method="llm"``.
    """
    console = console or Console(stderr=True)
    descriptions = {name: "" if text is None else str(text) for name, text in
                    read_column(input_path, text_column, name_column=name_column,
                                encoding=encoding).items()}
    started = time.perf_counter()
    if method == "lexicon":
        from affectgpt.eval.lexicon import LexiconExtractor

        extractor = LexiconExtractor()
        labels, failures = {n: extractor.extract(t) for n, t in descriptions.items()}, []
    elif method == "llm":
        if llm is None:
            raise ValueError("method='llm' needs an LLM configuration")
        client = llm.client()
        labels, failures = extract_labels_llm(descriptions, client, max_attempts=llm.max_attempts,
                                               max_tokens=llm.max_tokens)
        console.print(f"LLM: {client.calls} server calls, {client.cache_hits} cached replies")
    else:
        raise ValueError(f"unknown extraction method {method!r}: use 'lexicon' or 'llm'")

    output_path = Path(output_path)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["name", "openset"])
    for name in descriptions:
        if name in labels:
            writer.writerow([name, format_label_list(labels[name])])
    atomic_write(output_path, buffer.getvalue())
    failures_path = output_path.with_name(output_path.name + ".failures.jsonl")
    if failures:
        atomic_write(failures_path, "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures))
    else:
        failures_path.unlink(missing_ok=True)
    console.print(f"extracted labels for {len(labels)} of {len(descriptions)} descriptions "
                  f"({method}, {time.perf_counter() - started:.1f} s) -> {output_path}"
                  + (f"; {len(failures)} failures -> {failures_path}" if failures else ""))
    return labels, failures
