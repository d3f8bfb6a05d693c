"""Run the pipeline over a manifest: stage by stage, resumable, sharded, bounded.

For each selected stage (in pipeline order) the runner works out which samples of this
shard still need it: not done yet (a row in any file of the stage, any shard), every
upstream stage that is enabled has a row, and -- unless retrying -- no recorded failure.
It runs them with at most ``concurrency`` in flight, appends each result the moment it is
ready (one fsync'd line; see :mod:`affectgpt.annotate.store`), records each failure with
its reason, and shows a progress bar with rate and ETA. A killed run loses only the
requests in flight; the next run picks up the rest.

Usage::

    summary = run_annotation("semi.jsonl", "annot/", load_config("cfg.yaml"), shard=(0, 4))
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from affectgpt import __version__
from affectgpt.annotate.config import STAGES, UPSTREAM, AnnotateConfig, AnnotateConfigError
from affectgpt.annotate.stages import SampleFailure, Stage, build_stage
from affectgpt.annotate.store import JsonlStore, iter_stage_rows, shard_suffix, stage_path
from affectgpt.data.manifest import Sample, read_manifest
from affectgpt.io import atomic_write


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"k/n"`` (0 <= k < n) -> ``(k, n)``; None stays None."""
    if text is None:
        return None
    k, sep, n = str(text).partition("/")
    try:
        k_i, n_i = int(k), int(n)
    except ValueError:
        raise AnnotateConfigError(f"--shard must be K/N (e.g. 0/4), got {text!r}") from None
    if not sep or n_i < 1 or not 0 <= k_i < n_i:
        raise AnnotateConfigError(f"--shard K/N needs 0 <= K < N, got {text!r}")
    return k_i, n_i


def shard_of(name: str, n: int) -> int:
    """The shard (0..n-1) of a sample: a stable hash of its name (same on every machine,
    Python version and manifest order)."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n


def select_shard(samples: list[Sample], shard: tuple[int, int] | None) -> list[Sample]:
    if shard is None:
        return samples
    k, n = shard
    return [s for s in samples if shard_of(s.name, n) == k]


@dataclass
class StageSummary:
    """What one stage did in this run."""

    stage: str
    total: int = 0          # samples of this shard
    done_before: int = 0    # rows already present
    done: int = 0           # rows written now
    failed: int = 0         # failures recorded now
    failed_before: int = 0  # earlier failures left alone (use retry-failed)
    blocked: int = 0        # an upstream stage has no row yet
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return (self.done + self.failed) / self.seconds if self.seconds > 0 else 0.0


@dataclass
class RunSummary:
    """The end-of-run summary (printed, and written as ``summary<shard>.json``)."""

    out: str
    shard: str | None
    samples: int
    stages: list[StageSummary] = field(default_factory=list)
    seconds: float = 0.0
    started: str = ""

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for s, row in zip(self.stages, data["stages"]):
            row["rate_per_s"] = round(s.rate, 4)
        data["totals"] = {
            "done": sum(s.done for s in self.stages), "failed": self.failed,
            "prompt_tokens": sum(s.prompt_tokens for s in self.stages),
            "completion_tokens": sum(s.completion_tokens for s in self.stages),
            "seconds": round(self.seconds, 3)}
        return data

    def table(self) -> str:
        head = (f"{'stage':<11} {'total':>6} {'before':>6} {'done':>6} {'failed':>6} "
                f"{'old-fail':>8} {'blocked':>7} {'tokens in/out':>15} {'seconds':>8} {'rate/s':>7}")
        lines = [head]
        for s in self.stages:
            lines.append(f"{s.stage:<11} {s.total:>6} {s.done_before:>6} {s.done:>6} "
                         f"{s.failed:>6} {s.failed_before:>8} {s.blocked:>7} "
                         f"{f'{s.prompt_tokens}/{s.completion_tokens}':>15} {s.seconds:>8.1f} "
                         f"{s.rate:>7.2f}")
        t = self.to_dict()["totals"]
        lines.append(f"total: {t['done']} rows written, {t['failed']} failures, "
                     f"{t['prompt_tokens']}+{t['completion_tokens']} tokens, "
                     f"{self.seconds:.1f} s wall")
        return "\n".join(lines)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def stage_outputs(out: Path, stage: str) -> dict[str, dict[str, Any]]:
    """``{name: output}`` of every row of a stage (all shards' files)."""
    return {row["name"]: row["output"] for row in iter_stage_rows(out, stage)
            if "name" in row and isinstance(row.get("output"), dict)}


def open_failures(out: Path, stage: str, done: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """``{name: last failure row}`` of a stage's samples that have no row yet."""
    done = set(stage_outputs(out, stage)) if done is None else done
    failures: dict[str, dict[str, Any]] = {}
    for row in iter_stage_rows(out, stage, "failures"):
        if row.get("name") not in done:
            failures[row["name"]] = row
    return failures


def _write_run_record(out: Path, manifest: Path, cfg: AnnotateConfig, shard, stages) -> None:
    """``run.json``: what the latest run was asked to do; ``runs.jsonl``: one line per run."""
    record = {"manifest": str(manifest.resolve()), "shard": None if shard is None else
              f"{shard[0]}/{shard[1]}", "stages_run": stages, "affectgpt": __version__,
              "time": _now(), "config": cfg.to_dict()}
    atomic_write(out / f"run{shard_suffix(shard)}.json",
                 json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    # run.json is the latest run; runs.jsonl keeps every run (phases with other models)
    with JsonlStore(out / f"runs{shard_suffix(shard)}.jsonl", key="time", unique=False) as history:
        history.append(record)


def run_annotation(
    manifest: str | Path,
    out: str | Path,
    cfg: AnnotateConfig,
    *,
    stages: list[str] | None = None,
    shard: tuple[int, int] | None = None,
    limit: int | None = None,
    retry_failed: bool = False,
    only_failed: bool = False,
    progress: bool = True,
    stream: TextIO | None = None,
) -> RunSummary:
    """Run the enabled stages (or the enabled ones among ``stages``) over ``manifest``.

    Args:
        manifest: JSONL/CSV manifest of the collection.
        out: output folder (stage files, failures, ``run*.json``, ``summary*.json``).
        cfg: the configuration; every stage back-end is built and checked before any
            sample runs (a model that cannot take a stage's modality stops the run here).
        stages: run only these stages this time (e.g. one per GPU phase); stages left out
            but enabled must already have rows for their downstream stages to run.
        shard: ``(k, n)``: only the samples whose name hashes to shard k of n.
        limit: only the first ``limit`` samples of the shard (for trying a config).
        retry_failed: also run samples whose earlier attempt failed.
        only_failed: run only those (``affectgpt annotate retry-failed``).
        progress: tqdm bars (rate, ETA) on stderr.
        stream: where the summary table goes (default stderr).
    """
    from tqdm.auto import tqdm

    stream = stream or sys.stderr
    started_wall = time.perf_counter()
    out = Path(out)
    manifest = Path(manifest)
    if stages:
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise AnnotateConfigError(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)}")
        off = [s for s in stages if not cfg.stages[s].enabled]
        if off:
            raise AnnotateConfigError(f"stage(s) {off} are disabled in the configuration")
    selected = [s for s in cfg.enabled() if not stages or s in stages]
    samples = select_shard(read_manifest(manifest), shard)
    if limit is not None:
        samples = samples[:limit]
    out.mkdir(parents=True, exist_ok=True)

    cache = None
    if cfg.cache:
        from affectgpt.llm.cache import ResponseCache

        cache = ResponseCache(cfg.cache)
    built: dict[str, Stage] = {}
    try:
        for name in selected:  # every back-end up front: fail before any sample runs
            built[name] = build_stage(name, cfg, cache)
        _write_run_record(out, manifest, cfg, shard, selected)
        summary = RunSummary(str(out), None if shard is None else f"{shard[0]}/{shard[1]}",
                             len(samples), started=_now())
        for name in selected:
            summary.stages.append(_run_stage(
                built[name], samples, out, cfg, shard, retry_failed=retry_failed,
                only_failed=only_failed, progress=progress, tqdm=tqdm))
    finally:
        for stage in built.values():
            stage.close()
        if cache is not None:
            cache.close()
    summary.seconds = time.perf_counter() - started_wall
    atomic_write(out / f"summary{shard_suffix(shard)}.json",
                 json.dumps(summary.to_dict(), indent=2) + "\n")
    print(summary.table(), file=stream)
    return summary


def _run_stage(stage: Stage, samples: list[Sample], out: Path, cfg: AnnotateConfig, shard,
               *, retry_failed: bool, only_failed: bool, progress: bool, tqdm) -> StageSummary:
    name = stage.name
    summary = StageSummary(name, total=len(samples))
    upstream_names = [u for u in UPSTREAM[name] if cfg.stages[u].enabled]
    upstream = {u: stage_outputs(out, u) for u in upstream_names}
    store = JsonlStore(stage_path(out, name, shard))
    failures = JsonlStore(stage_path(out, name, shard, "failures"), unique=False)
    started = time.perf_counter()
    try:
        done = set(stage_outputs(out, name)) | store.keys
        failed_before = open_failures(out, name, done)
        todo: list[Sample] = []
        for sample in samples:
            if sample.name in done:
                summary.done_before += 1
            elif any(sample.name not in upstream[u] for u in upstream_names):
                summary.blocked += 1
            elif sample.name in failed_before and not (retry_failed or only_failed):
                summary.failed_before += 1
            elif only_failed and sample.name not in failed_before:
                continue
            else:
                todo.append(sample)
        info = stage.describe()
        lock = threading.Lock()

        def one(sample: Sample) -> None:
            t0 = time.perf_counter()
            ups = {u: upstream[u][sample.name] for u in upstream_names}
            try:
                result = stage.run(sample, ups)
            except SampleFailure as exc:
                failures.append({"stage": name, "name": sample.name, "reason": exc.reason,
                                 "last_reply": exc.last_reply, "attempts": exc.attempts,
                                 "usage": exc.usage, **info, "time": _now()})
                with lock:
                    summary.failed += 1
                    summary.prompt_tokens += int(exc.usage.get("prompt_tokens", 0))
                    summary.completion_tokens += int(exc.usage.get("completion_tokens", 0))
                return
            except Exception as exc:  # an unforeseen error on one sample must not end the run
                failures.append({"stage": name, "name": sample.name,
                                 "reason": f"unexpected {type(exc).__name__}: {exc}",
                                 "last_reply": None, "attempts": 0, **info, "time": _now()})
                with lock:
                    summary.failed += 1
                return
            row = {"stage": name, "name": sample.name, "output": result.output,
                   "provenance": {**info, "messages": result.messages,
                                  "attempts": result.attempts, "usage": result.usage,
                                  "finish_reason": result.finish_reason, **result.notes,
                                  "seconds": round(time.perf_counter() - t0, 3),
                                  "time": _now(), "affectgpt": __version__}}
            if store.append(row):
                with lock:
                    summary.done += 1
                    summary.prompt_tokens += int(result.usage.get("prompt_tokens", 0))
                    summary.completion_tokens += int(result.usage.get("completion_tokens", 0))

        with tqdm(total=len(todo), desc=f"{name:<10}", unit="sample", disable=not progress,
                  file=sys.stderr, dynamic_ncols=True) as bar:
            workers = max(1, min(stage.concurrency, len(todo)))
            if workers == 1:
                for sample in todo:
                    one(sample)
                    bar.update(1)
                    bar.set_postfix(failed=summary.failed, refresh=False)
            else:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    # keep at most `workers` submitted so an interrupt leaves little in flight
                    queue = iter(todo)
                    running = {pool.submit(one, s) for s in _take(queue, workers)}
                    while running:
                        finished, running = wait(running, return_when=FIRST_COMPLETED)
                        for future in finished:
                            future.result()
                            bar.update(1)
                        bar.set_postfix(failed=summary.failed, refresh=False)
                        running |= {pool.submit(one, s) for s in _take(queue, len(finished))}
    finally:
        store.close()
        failures.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _take(iterator, n: int) -> list:
    items = []
    for _ in range(n):
        try:
            items.append(next(iterator))
        except StopIteration:
            break
    return items


def run_status(out: str | Path) -> dict[str, dict[str, int]]:
    """Rows and open failures per stage in an output folder (all shards)."""
    out = Path(out)
    status = {}
    for name in STAGES:
        done = set(stage_outputs(out, name))
        status[name] = {"rows": len(done), "open_failures": len(open_failures(out, name, done))}
    return status
