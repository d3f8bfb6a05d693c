"""Per-sample synonym grouping G(.) by an LLM, as in the AffectGPT paper (section 2).

For every sample the LLM receives the sorted union of its gold and predicted labels in
the paper's prompt (with the reference code's one-shot example), at temperature 0, and
returns a list of lists of synonyms. The reply is validated: it must parse as a list of
lists (:func:`~affectgpt.eval.labels.parse_label_groups`) and may only use labels that
were sent (case-insensitive); sent labels it leaves out map to themselves. An invalid
reply is answered with a corrective turn, up to ``max_attempts`` requests. A sample whose
attempts all fail gets NO grouping (each label maps to itself) and a failure record;
nothing else is substituted.

With a :class:`~affectgpt.llm.cache.ResponseCache` on the client every attempt is cached,
so a rerun replays the same conversations and makes no server calls.

Prompt styles: ``paper`` (default) sends the paper's prompt verbatim as one user turn;
``turns`` sends the same instruction as a system turn and the one-shot example as an
earlier user/assistant exchange, which small local models follow (SmolLM2-135M answers
``turns`` with a list of lists and the paper's single turn with prose). Only ``paper`` is
the paper's metric.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from affectgpt.eval.grouping import Groups
from affectgpt.eval.labels import LabelFormatError, parse_label_groups
from affectgpt.llm.client import ChatClient, ask_validated, bracketed_reply, run_bounded

PROMPT_VERSION = "affectgpt-2024-grouping-v1"
PROMPT_STYLES = ("paper", "turns")

GROUPING_PROMPT = (
    "Please assume the role of an expert in the field of emotions. We provide a set of "
    "emotions. Please group the emotions, with each group containing emotions with the same "
    "meaning. Directly output the results. The output format should be a list containing "
    "multiple lists. "
    "Input: ['Agree', 'agreement', 'Relaxed', 'acceptance', 'pleasant', 'relaxed', 'Accept', "
    "'positive', 'Happy'] "
    "Output: [['Agree', 'agreement', 'Accept', 'acceptance'], ['Relaxed', 'relaxed'],"
    "['pleasant', 'positive', 'Happy']] "
    "Input: {labels} Output:"
)

CORRECTION_PROMPT = (
    "Your reply could not be used: {reason}. Please group these emotions again: {labels}. "
    "Output only a list containing multiple lists, such as [['a', 'b'], ['c']], using exactly "
    "the given emotions (each at most once) and no other words."
)


def _norm(label: str) -> str:
    return " ".join(str(label).split()).lower()


def format_labels(labels: Sequence[str]) -> str:
    """Labels as a Python-style list, e.g. ``['happy', 'joyful']``."""
    return "[" + ", ".join(repr(label) for label in labels) + "]"


def sample_labels(gold: Iterable[str], pred: Iterable[str]) -> list[str]:
    """The labels sent for one sample: sorted, de-duplicated union (lower-cased)."""
    if isinstance(gold, str) or isinstance(pred, str):
        raise TypeError("labels must be lists of strings, not a string; parse them first "
                        "(affectgpt.eval.labels.parse_label_list)")
    return sorted({_norm(x) for x in [*gold, *pred] if _norm(x)})


def grouping_messages(labels: Sequence[str], style: str = "paper") -> list[dict[str, str]]:
    """The request for one sample's labels in prompt ``style`` (see the module doc)."""
    if style == "paper":
        return [{"role": "user", "content": GROUPING_PROMPT.format(labels=format_labels(labels))}]
    if style != "turns":
        raise ValueError(f"unknown grouping prompt style {style!r}; choose from {PROMPT_STYLES}")
    instruction, _, rest = GROUPING_PROMPT.partition(" Input: ")
    example, _, rest = rest.partition(" Output: ")
    answer = rest.partition(" Input: ")[0]
    return [{"role": "system", "content": instruction},
            {"role": "user", "content": f"Input: {example}"},
            {"role": "assistant", "content": answer},
            {"role": "user", "content": f"Input: {format_labels(labels)}"}]


def validate_grouping(reply: str, labels: Sequence[str]) -> Groups:
    """Parse a grouping reply; raise ValueError with the reason when it is not a list of
    lists of the sent labels."""
    text = bracketed_reply(reply, "a list of lists")
    try:
        groups = parse_label_groups(text)
    except LabelFormatError as exc:
        raise LabelFormatError(f"the reply is not a list of lists ({exc})") from None
    allowed = set(labels)
    unknown = sorted({x for g in groups for x in g if x not in allowed})
    if unknown:
        raise LabelFormatError(
            f"it uses labels that were not given: {format_labels(unknown)}")
    return groups


def group_labels(
    labels: Sequence[str],
    client: ChatClient,
    *,
    max_attempts: int = 3,
    max_tokens: int = 512,
    seed: int | None = None,
    prompt_style: str = "paper",
):
    """Ask ``client`` to group one sample's ``labels``; return a
    :class:`~affectgpt.llm.client.Validated` result."""
    labels = list(labels)
    listed = format_labels(labels)
    return ask_validated(
        client,
        grouping_messages(labels, prompt_style),
        lambda reply: validate_grouping(reply, labels),
        lambda reason: CORRECTION_PROMPT.format(reason=reason, labels=listed),
        max_attempts=max_attempts,
        temperature=0.0,
        max_tokens=max_tokens,
        seed=seed,
        prompt_version=PROMPT_VERSION if prompt_style == "paper" else f"{PROMPT_VERSION}-{prompt_style}",
    )


def llm_groupings(
    gold: Mapping[str, Sequence[str]],
    pred: Mapping[str, Sequence[str]],
    client: ChatClient,
    names: Sequence[str] | None = None,
    max_attempts: int = 3,
    progress: bool = True,
    *,
    max_tokens: int = 512,
    seed: int | None = None,
    prompt_style: str = "paper",
) -> tuple[dict[str, Groups], list[dict]]:
    """LLM groupings for the samples ``names`` (default: all gold samples), asked in
    ``prompt_style`` (``paper`` or ``turns``, see the module doc).

    Returns ``(groupings, failures)``: ``groupings[name]`` is a list of label groups (its
    first member is the representative; ``[]`` for samples with fewer than two labels,
    which need no call, and for failed samples); ``failures`` holds one record
    ``{name, labels, reason, last_reply, attempts}`` per sample left ungrouped. Samples run
    concurrently (``client.concurrency``); the result keeps the order of ``names``.
    """
    chosen = list(gold) if names is None else list(names)
    if len(set(chosen)) != len(chosen):
        raise ValueError("duplicate sample names")
    missing = [n for n in chosen if n not in gold and n not in pred]
    if missing:
        raise KeyError(f"{len(missing)} samples have neither gold nor predicted labels, "
                       f"e.g. {missing[:3]}")
    if prompt_style not in PROMPT_STYLES:
        raise ValueError(f"unknown grouping prompt style {prompt_style!r}; choose from {PROMPT_STYLES}")
    sent = {n: sample_labels(gold.get(n, ()), pred.get(n, ())) for n in chosen}
    todo = [n for n in chosen if len(sent[n]) > 1]

    def one(name: str):
        return group_labels(sent[name], client, max_attempts=max_attempts,
                            max_tokens=max_tokens, seed=seed, prompt_style=prompt_style)

    results = dict(zip(todo, run_bounded(one, todo, client.concurrency, progress=progress,
                                         desc="LLM grouping", unit="sample"),
                       strict=True))
    groupings: dict[str, Groups] = {}
    failures: list[dict] = []
    for name in chosen:
        result = results.get(name)
        if result is None:
            groupings[name] = []
        elif result.ok:
            groupings[name] = result.value
        else:
            groupings[name] = []
            failures.append({"name": name, "labels": sent[name], "reason": result.reason,
                             "last_reply": result.last_reply, "attempts": result.attempts})
    return groupings, failures
