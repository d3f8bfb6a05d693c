"""Generating a corpus: clips in parallel processes, resumable, with the manifest and the
two-pool (coarse + fine) layout of EMER."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from affectgpt.data import faces, speech
from affectgpt.data.manifest import Sample, write_manifest
from affectgpt.data.splits import apply_split, seeded_split, write_split
from affectgpt.data.synthetic.audio import audio_track, speak
from affectgpt.data.synthetic.mp4 import file_comment, write_mp4
from affectgpt.data.synthetic.plan import (
    CUE_CHOICES,
    DEFAULT_EMOTIONS,
    GENERATOR,
    STYLES,
    plan_clip,
)
from affectgpt.data.synthetic.text import describe
from affectgpt.data.synthetic.video import render_frames
from affectgpt.io import atomic_path

logger = logging.getLogger(__name__)


def _pool_context():
    """forkserver (or spawn) start method; fork when ``__main__`` cannot be re-imported
    by a fresh interpreter (code piped on stdin, interactive sessions)."""
    methods = multiprocessing.get_all_start_methods()
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if "fork" in methods and (main_file is None or not Path(main_file).is_file()):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _generate(job: dict) -> tuple[dict, str]:
    """Plan, synthesise and (unless a matching file exists) encode one clip."""
    plan = plan_clip(job["index"], seed=job["seed"], cue=job["cue"], emotions=job["emotions"],
                     duration=job["duration"], prefix=job["prefix"])
    plan.update(size=job["size"], fps=job["fps"])
    audio, rate = speak(plan, job["duration"], job["fps"])
    plan["audio"] = {"sample_rate": rate}
    digest = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()[:16]
    plan["digest"] = digest
    comment = f"{GENERATOR} {digest}"
    path = Path(job["path"])
    if path.is_file() and file_comment(path) == comment:
        return plan, "skipped"
    frames = render_frames(plan, job["size"], job["fps"])
    write_mp4(path, frames, audio_track(plan, audio, rate), rate, size=job["size"],
              fps=job["fps"], comment=comment)
    return plan, "written"


def _sample(plan: dict, path: Path, style: str, split: str | None) -> Sample:
    desc_en, desc_zh = describe(plan, style)
    extra = {k: plan[k] for k in ("generator", "seed", "index", "cue", "emotion",
                                  "modalities_with_cue", "face", "voice", "timing", "noise",
                                  "audio", "size", "fps", "digest")}
    return Sample(name=f"{plan['prefix']}{plan['index']:05d}", video=str(path.resolve()),
                  subtitle_en=plan["subtitle_en"], subtitle_zh=plan["subtitle_zh"],
                  description_en=desc_en, description_zh=desc_zh, labels=list(plan["labels"]),
                  split=split, source="synthetic", extra={"synthetic": extra})


def _check_args(n, cue, emotions, duration, size, fps, style) -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if cue not in CUE_CHOICES:
        raise ValueError(f"cue must be one of {CUE_CHOICES}, got {cue!r}")
    unknown = [e for e in emotions if e not in faces.EXPRESSIONS]
    if unknown or not emotions or len(set(emotions)) != len(emotions):
        raise ValueError(f"emotions must be distinct names from {tuple(faces.EXPRESSIONS)}, "
                         f"got {list(emotions)}")
    lo, hi = duration
    if not 1.5 <= lo <= hi <= 60:
        raise ValueError(f"duration must satisfy 1.5 <= low <= high <= 60, got {duration}")
    if size < 64 or size % 2:
        raise ValueError(f"size must be an even number >= 64, got {size}")
    if not 1 <= fps <= 60:
        raise ValueError(f"fps must be in 1..60, got {fps}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")


def make_synthetic(
    out_dir: str | Path,
    n: int,
    *,
    cue: str = "all",
    emotions: Sequence[str] = DEFAULT_EMOTIONS,
    seed: int = 0,
    duration: tuple[float, float] = (3.0, 6.0),
    size: int = 224,
    fps: int = 10,
    split: str | None = None,
    prefix: str = "synth_",
    style: str = "fine",
    workers: int | None = None,
    progress: bool = True,
    manifest: str | None = "manifest.jsonl",
) -> list[Sample]:
    """Generate ``n`` synthetic clips into ``out_dir`` and write their manifest.

    Args:
        out_dir: output folder; clips go to ``out_dir/videos/<name>.mp4``.
        n: number of clips (named ``<prefix><index:05d>``).
        cue: modality that carries the emotion: ``video``, ``audio``, ``text``, ``all``
            or ``mixed`` (the four in turn, balanced).
        emotions: emotions to draw from (balanced: every block of ``len(emotions)``
            consecutive clips holds each once); see :data:`DEFAULT_EMOTIONS`.
        seed: seed of everything; with ``prefix`` and the index it fixes a clip completely.
        duration: (shortest, longest) clip length in seconds; a clip is long enough for
            its sentence.
        size: frame width and height in pixels (even).
        fps: frames per second.
        split: value of ``Sample.split`` for every clip (None: unset).
        prefix: sample-name prefix; part of the seed material.
        style: ``fine`` (full EMER-style descriptions) or ``coarse`` (short ones).
        workers: processes (default: the CPU count for 8+ clips, else 1).
        progress: show a progress bar.
        manifest: manifest file name inside ``out_dir`` (None: do not write one).

    Returns:
        The samples in index order (video paths absolute).
    """
    _check_args(n, cue, emotions, duration, size, fps, style)
    if not speech.espeak_available():
        raise speech.SpeechError("espeak-ng not found; install it (apt-get install espeak-ng)")
    out_dir = Path(out_dir)
    video_dir = out_dir / "videos"
    video_dir.mkdir(parents=True, exist_ok=True)
    duration = (float(duration[0]), float(duration[1]))
    jobs = [{"index": i, "seed": seed, "cue": cue, "emotions": list(emotions),
             "duration": duration, "size": size, "fps": fps, "prefix": prefix,
             "path": str(video_dir / f"{prefix}{i:05d}.mp4")} for i in range(n)]
    if workers is None:
        workers = (os.cpu_count() or 1) if n >= 8 else 1
    workers = max(1, min(workers, n or 1))

    from tqdm.auto import tqdm

    plans: dict[int, dict] = {}
    counts = {"written": 0, "skipped": 0}
    start = time.perf_counter()
    with tqdm(total=n, desc=f"synthetic clips ({cue})", unit="clip", disable=not progress) as bar:
        if workers == 1:
            for job in jobs:
                plan, status = _generate(job)
                plans[job["index"]], counts[status] = plan, counts[status] + 1
                bar.update()
        else:
            with ProcessPoolExecutor(workers, mp_context=_pool_context()) as pool:
                futures = {pool.submit(_generate, job): job["index"] for job in jobs}
                for future in as_completed(futures):
                    plan, status = future.result()
                    plans[futures[future]], counts[status] = plan, counts[status] + 1
                    bar.update()
    seconds = time.perf_counter() - start
    samples = [_sample(plans[i], Path(jobs[i]["path"]), style, split) for i in range(n)]
    if manifest:
        write_manifest(samples, out_dir / manifest)
    record = {"generator": GENERATOR, "n": n, "cue": cue, "emotions": list(emotions),
              "seed": seed, "duration": list(duration), "size": size, "fps": fps,
              "prefix": prefix, "style": style, "split": split, "manifest": manifest,
              "last_run": {**counts, "seconds": round(seconds, 2), "workers": workers}}
    with atomic_path(out_dir / "synthetic.json", "w", encoding="utf-8") as fh:
        fh.write(json.dumps(record, indent=2) + "\n")
    logger.info("synthetic: %d clips written, %d skipped in %.1f s (%.1f clips/s, %d workers)",
                counts["written"], counts["skipped"], seconds, n / max(seconds, 1e-9), workers)
    return samples


@dataclass
class SyntheticCorpus:
    """Paths and samples written by :func:`make_synthetic_corpus`."""

    coarse_manifest: Path
    fine_manifest: Path
    split_file: Path
    coarse: list[Sample]
    fine: list[Sample]


def make_synthetic_corpus(
    out_dir: str | Path,
    coarse: int = 200,
    fine: int = 60,
    test_fraction: float = 0.2,
    seed: int = 0,
    fine_style: str = "fine",
    **kwargs,
) -> SyntheticCorpus:
    """A two-stage corpus like EMER-Coarse + EMER-Fine, made of synthetic clips.

    Writes ``out_dir/coarse/manifest.jsonl`` (``coarse`` clips, short descriptions, all
    ``train``) and ``out_dir/fine/manifest.jsonl`` (``fine`` clips, full descriptions)
    with a seeded train/test split recorded in ``out_dir/fine/split.csv`` (+ sidecar).
    Both pools mix the four cue types. ``fine_style="coarse"`` gives the fine pool short
    gold descriptions too (cheaper training on a CPU). Other keyword arguments go to
    :func:`make_synthetic` (``size``, ``fps``, ``duration``, ``workers``, ...).
    """
    out_dir = Path(out_dir)
    kwargs.setdefault("cue", "mixed")
    coarse_samples = make_synthetic(out_dir / "coarse", coarse, seed=seed, prefix="coarse_",
                                    style="coarse", split="train", **kwargs)
    fine_samples = make_synthetic(out_dir / "fine", fine, seed=seed, prefix="fine_",
                                  style=fine_style, **kwargs)
    assignment = seeded_split([s.name for s in fine_samples], float(test_fraction), seed)
    fine_samples = apply_split(fine_samples, assignment)
    fine_manifest = write_manifest(fine_samples, out_dir / "fine" / "manifest.jsonl")
    split_file = write_split(out_dir / "fine" / "split.csv", assignment, seed,
                             test_size=float(test_fraction), source="synthetic fine pool")
    return SyntheticCorpus(out_dir / "coarse" / "manifest.jsonl", fine_manifest, split_file,
                           coarse_samples, fine_samples)
