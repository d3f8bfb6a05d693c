"""`affectgpt evaluate`: read files, choose a grouping, score one or more runs, report."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console

from affectgpt.eval.grouping import Groups, load_stored_groupings
from affectgpt.eval.labels import (
    LabelFormatError,
    ReferenceReading,
    parse_sample_labels,
    read_column,
    read_labels,
    read_names,
)
from affectgpt.eval.report import print_table, runs_table, short_names, write_json
from affectgpt.eval.set_metric import EvaluationInputError, evaluate_set, mean_std, select_names
from affectgpt.llm.endpoint import ChatEndpoint

METRICS = ("set", "wheel", "hitrate", "sentiment")


@dataclass
class EvalConfig:
    """Everything `affectgpt evaluate` needs (its options map one to one)."""

    gold: str
    preds: list[str]
    metric: str = "set"
    grouping: str = "lexical"  # stored:PATH | llm | llm:turns | lexical | none
    label_syntax: str = "auto"  # auto | python | mertools
    gold_column: str = "openset"
    pred_column: str = "openset"
    name_column: str = "name"
    names: str | None = None
    split: str | None = None
    wheel_dir: str | None = None
    lexical_wheel: bool = False
    allow_missing: bool = False
    encoding: str | None = None
    output: str | None = None
    llm: ChatEndpoint = field(default_factory=ChatEndpoint)


def resolve_syntax(cfg: EvalConfig) -> str:
    """``auto`` reads labels like MERTools when scoring with the reference's stored .npy
    groupings (they were built from labels split that way); otherwise it stays ``auto``:
    python syntax, except for values only the reference's rule reads (``[], ['a']``),
    which are read that way and announced (:func:`notify_reference_readings`)."""
    if cfg.label_syntax != "auto":
        return cfg.label_syntax
    if cfg.grouping.startswith("stored:") and not cfg.grouping.lower().endswith(".json"):
        return "mertools"
    return "auto"


def notify_reference_readings(readings: list[ReferenceReading], console: Console, limit: int = 5) -> None:
    """Say which samples of which file were read by the reference's rule (``auto``)."""
    by_file: dict[str, list[ReferenceReading]] = {}
    for reading in readings:
        by_file.setdefault(reading.path, []).append(reading)
    for path, items in by_file.items():
        shown = "; ".join(f"{r.sample} {r.text!r} -> {list(r.labels)}" for r in items[:limit])
        more = f"; and {len(items) - limit} more" if len(items) > limit else ""
        console.print(
            f"notice: {len(items)} value(s) in {path} hold several bracketed lists; read as the "
            f"reference code (MERTools string_to_list) reads them, the first list only: {shown}"
            f"{more}. Pass --label-syntax python to refuse such values.",
            highlight=False, markup=False, soft_wrap=True)


def _wheel_dir(cfg: EvalConfig) -> str:
    directory = cfg.wheel_dir or os.environ.get("AFFECTGPT_WHEEL_DIR")
    if not directory:
        raise EvaluationInputError(
            "this metric needs the emotion-wheel tables: pass --wheel-dir DIR "
            "(wheel1..5.xlsx, synonym.xlsx, format.csv) or set AFFECTGPT_WHEEL_DIR")
    return directory


def _single_labels(path: str, cfg: EvalConfig, syntax: str,
                   readings: list[ReferenceReading]) -> dict[str, list[str]]:
    """Gold of single-label datasets: a bare label (``happy``) or a list."""
    raw = read_column(path, cfg.gold_column, name_column=cfg.name_column, encoding=cfg.encoding)
    out = {}
    for name, value in raw.items():
        text = "" if value is None else str(value).strip()
        if text.startswith("[") or text.startswith("［"):
            out[name] = parse_sample_labels(text, syntax, sample=name, path=path,
                                            reference_readings=readings)
        else:
            out[name] = [text.lower()] if text else []
    return out


def _sentiment_gold(cfg: EvalConfig) -> dict[str, float]:
    raw = read_column(cfg.gold, cfg.gold_column, name_column=cfg.name_column, encoding=cfg.encoding)
    out = {}
    for name, value in raw.items():
        try:
            out[name] = float(value)
        except (TypeError, ValueError):
            raise LabelFormatError(f"sentiment gold must be a number, got {value!r}",
                                   sample=name, path=cfg.gold) from None
    return out


def _groupings_for_run(cfg: EvalConfig, gold, pred, names, console: Console) -> tuple[dict[str, Groups] | None, list[dict]]:
    kind, _, arg = cfg.grouping.partition(":")
    if kind == "none":
        return None, []
    if kind == "stored":
        if not arg:
            raise EvaluationInputError("--grouping stored:PATH needs a path (dir/zip of .npy or .json)")
        return load_stored_groupings(arg), []
    if kind == "lexical":
        from affectgpt.eval.lexical import LexicalGrouper, lexical_groupings

        grouper = LexicalGrouper(wheel_dir=_wheel_dir(cfg) if cfg.lexical_wheel else None)
        return lexical_groupings(gold, pred, names, grouper=grouper), []
    if kind == "llm":  # llm (the paper's prompt) or llm:turns (its chat-turn form)
        from affectgpt.eval.llm_grouping import PROMPT_STYLES, llm_groupings

        if arg and arg not in PROMPT_STYLES:
            raise EvaluationInputError(f"unknown LLM grouping prompt {arg!r} in --grouping "
                                       f"{cfg.grouping}: use llm (the paper's) or llm:turns")

        client = cfg.llm.client()
        groupings, failures = llm_groupings(gold, pred, client, names=names,
                                            max_attempts=cfg.llm.max_attempts,
                                            max_tokens=cfg.llm.max_tokens,
                                            prompt_style=arg or "paper")
        console.print(f"LLM grouping: {client.calls} server calls, {len(failures)} failed samples")
        return groupings, failures
    raise EvaluationInputError(f"unknown grouping {cfg.grouping!r}: use stored:PATH, llm, llm:turns, "
                               "lexical or none")


def run_evaluation(cfg: EvalConfig, console: Console | None = None) -> dict:
    """Score every prediction file in ``cfg.preds``; print a table; return (and optionally
    write) a JSON-able result with per-sample scores."""
    console = console or Console()
    if cfg.metric not in METRICS:
        raise EvaluationInputError(f"unknown metric {cfg.metric!r}; choose from {METRICS}")
    if not cfg.preds:
        raise EvaluationInputError("give at least one --pred file")
    syntax = resolve_syntax(cfg)
    subset = None
    if cfg.names:
        subset = read_names(cfg.names, cfg.split)
    elif cfg.split:  # a split column in the gold file itself
        subset = read_names(cfg.gold, cfg.split)

    readings: list[ReferenceReading] = []
    notices = Console(stderr=True)
    if cfg.metric == "sentiment":
        gold = _sentiment_gold(cfg)
    elif cfg.metric == "hitrate":
        gold = _single_labels(cfg.gold, cfg, syntax, readings)
    else:
        gold = read_labels(cfg.gold, cfg.gold_column, name_column=cfg.name_column,
                           syntax=syntax, encoding=cfg.encoding, reference_readings=readings)
    notify_reference_readings(readings, notices)
    resources = None
    if cfg.metric != "set":
        from affectgpt.eval.wheel import WheelResources

        resources = WheelResources.load(_wheel_dir(cfg))

    syntax_used = "python" if syntax == "auto" else syntax
    config = asdict(cfg) | {"llm": cfg.llm.to_dict(), "label_syntax_used": syntax_used}
    result: dict = {"config": config, "runs": []}
    rows = []
    for pred_path in cfg.preds:
        start = len(readings)
        pred = read_labels(pred_path, cfg.pred_column, name_column=cfg.name_column,
                           syntax=syntax, encoding=cfg.encoding, reference_readings=readings)
        notify_reference_readings(readings[start:], notices)
        names = select_names(gold, pred, subset, allow_missing=cfg.allow_missing)
        run: dict = {"pred": pred_path, "num_samples": len(names)}
        if cfg.metric == "set":
            groupings, failures = _groupings_for_run(cfg, gold, pred, names, console)
            scored = evaluate_set(gold, pred, groupings, names, allow_missing=cfg.allow_missing)
            run |= scored.to_dict() | {"grouping_failures": failures}
            rows.append((pred_path, [scored.avg, scored.accuracy, scored.recall]))
        elif cfg.metric == "wheel":
            from affectgpt.eval.wheel import evaluate_wheel

            scored = evaluate_wheel(gold, pred, resources, names)
            run |= scored.to_dict()
            rows.append((pred_path, [s.fscore for s in scored.scores] + [scored.m_avg, scored.ew_fscore(1)]))
        elif cfg.metric == "hitrate":
            from affectgpt.eval.wheel import hit_rate

            run |= hit_rate(gold, pred, resources, names)
            rows.append((pred_path, [run[f"wheel{k}"] for k in range(1, 6)] + [run["mean"]]))
        else:
            from affectgpt.eval.wheel import sentiment_f1

            run |= sentiment_f1(gold, pred, resources, names)
            rows.append((pred_path, [run["weighted_f1"], run["accuracy"]]))
        result["runs"].append(run)

    columns = {
        "set": ["Avg", "Accuracy_s", "Recall_s"],
        "wheel": ["M1", "M2"] + [f"W{k}L{lvl}" for lvl in (1, 2) for k in range(1, 6)] + ["M-avg", "EW-L1"],
        "hitrate": [f"wheel{k}" for k in range(1, 6)] + ["HIT"],
        "sentiment": ["WAF", "ACC"],
    }[cfg.metric]
    result["summary"] = {
        col: dict(zip(("mean", "std"), mean_std([values[i] for _, values in rows])))
        for i, col in enumerate(columns)
    }
    # values read by the reference's rule under --label-syntax auto (gold and predictions)
    result["label_reads_by_reference_rule"] = [r.to_dict() for r in readings]
    kind, _, arg = cfg.grouping.partition(":")
    grouping = f"{kind}:{Path(arg).name}" if arg else kind
    title = f"metric={cfg.metric}" + (f", grouping={grouping}" if cfg.metric == "set" else "")
    labelled = list(zip(short_names([name for name, _ in rows]), [values for _, values in rows]))
    print_table(runs_table(title + " (x100)", columns, labelled), console)
    if cfg.metric == "set":
        for name, values in labelled:
            console.print(f"{name}: Accuracy_s={values[1]!r} Recall_s={values[2]!r} Avg={values[0]!r}",
                          highlight=False, soft_wrap=True)
    if cfg.output:
        write_json(result, cfg.output)
        console.print(f"wrote {cfg.output}")
    return result
