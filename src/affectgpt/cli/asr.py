"""Speech-recognition options shared by ``describe``, ``infer``, ``annotate run`` and
``import-videos``: subtitles that are not given are transcribed by Whisper."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def add_asr_options(p: argparse.ArgumentParser, *, default: bool = True) -> None:
    """``--asr/--no-asr``, ``--asr-model`` and ``--asr-language``."""
    g = p.add_argument_group(
        "speech recognition",
        "Clips without a subtitle get one from their speech: the packaged Whisper-base "
        "(faster-whisper, voice-activity trimming, offline); transcripts are cached and the "
        "subtitle is marked subtitle_source=asr.")
    g.add_argument("--asr", action=argparse.BooleanOptionalAction, default=default,
                   help="transcribe the speech of clips without a subtitle "
                        f"(default: {'on' if default else 'off'})")
    g.add_argument("--asr-model",
                   help="a CTranslate2 Whisper folder or a faster-whisper model name "
                        "(default: the packaged Whisper-base)")
    g.add_argument("--asr-language",
                   help="force the spoken language (en, zh, ...); default: detected per clip")


def transcriber_from_args(args: argparse.Namespace):
    """The :class:`~affectgpt.encoders.asr.Transcriber` the options name."""
    from affectgpt.encoders.asr import Transcriber

    return Transcriber(args.asr_model, language=args.asr_language or None)


def fill_subtitles(samples: Sequence, args: argparse.Namespace, cache_dir: str | os.PathLike,
                   *, quiet: bool = False) -> list:
    """``samples`` with empty subtitles transcribed (``--asr``), transcripts cached under
    ``cache_dir``; the samples unchanged with ``--no-asr``."""
    samples = list(samples)
    if not args.asr or not any(not s.subtitle_en.strip() and not s.subtitle_zh.strip()
                               and s.subtitle_source != "asr" for s in samples):
        return samples
    from affectgpt.data.asr import transcribe_missing_subtitles
    from affectgpt.encoders.asr import TranscriptCache

    def progress(done: int, total: int, sample) -> None:
        if not quiet:
            print(f"\rtranscribing: {done}/{total}", end="" if done < total else "\n",
                  file=sys.stderr, flush=True)

    return transcribe_missing_subtitles(samples, transcriber_from_args(args),
                                        TranscriptCache(Path(cache_dir)), progress=progress)
