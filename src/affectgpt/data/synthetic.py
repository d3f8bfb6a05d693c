"""A synthetic EMER-style corpus: real MP4 clips of talking cartoon faces with speech.

Every clip shows a drawn face (:mod:`affectgpt.data.faces`) saying one sentence in an
espeak-ng voice (:mod:`affectgpt.data.speech`), and comes with English/Chinese subtitles,
an EMER-style gold description (clues from video, audio and text, then a conclusion)
and a gold label list. The emotional cue can be put into one modality only:

============  ===================  ===================  ===================
``cue``       face                 voice prosody        words
============  ===================  ===================  ===================
``video``     emotional            neutral              neutral
``audio``     neutral              emotional            neutral
``text``      neutral              neutral              emotional
``all``       emotional            emotional            emotional
``mixed``     one of the four above per clip (balanced)
============  ===================  ===================  ===================

The description mentions only the clues that exist. Everything about a clip is drawn
from seeded generators keyed by ``(seed, prefix, index, purpose)``: the look of a clip,
its head motion, speaker and neutral sentence do not depend on its emotion, so two
corpora made with the same seed and different emotions differ only where the cue is.
``Sample.extra`` records the cue, the emotion and every generation parameter.

Generation is resumable (a finished clip whose parameters match is skipped; files are
written to a temporary name and renamed) and can run in several processes.

Example::

    samples = make_synthetic("synth", 100, cue="audio", seed=0)
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import re
import sys
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from affectgpt.data import faces, phrases, speech
from affectgpt.data.manifest import Sample, write_manifest
from affectgpt.data.splits import apply_split, seeded_split, write_split
from affectgpt.io import atomic_path

logger = logging.getLogger(__name__)

GENERATOR = "affectgpt-synthetic-v1"
DEFAULT_EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "surprised", "worried",
                                     "disgusted")
CUES: tuple[str, ...] = ("video", "audio", "text", "all")
CUE_CHOICES: tuple[str, ...] = CUES + ("mixed",)
STYLES = ("fine", "coarse")

# Purposes of the random streams (part of the seed material; never renumber).
_EMOTION, _APPEARANCE, _MOTION, _SPEAKER, _TEXT, _EXPRESSION, _TIMING, _CUE, _NOISE, \
    _LABELS = range(10)


def _rng(seed: int, prefix: str, purpose: int, index: int) -> np.random.Generator:
    entropy = [int(seed) & 0xFFFFFFFF, zlib.crc32(prefix.encode()), purpose, index]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def _balanced(seed: int, prefix: str, purpose: int, index: int, choices: Sequence[str]) -> str:
    """Choice for clip ``index``: each block of len(choices) clips holds every choice once."""
    k = len(choices)
    order = _rng(seed, prefix, purpose, index // k).permutation(k)
    return choices[int(order[index % k])]


# --------------------------------------------------------------------------- planning


def plan_clip(index: int, *, seed: int = 0, cue: str = "all",
              emotions: Sequence[str] = DEFAULT_EMOTIONS, duration: tuple[float, float] = (3.0, 6.0),
              prefix: str = "synth_") -> dict:
    """The random choices for clip ``index`` (JSON-serialisable; no speech synthesised yet).

    Every purpose (emotion, cue, look, motion, speaker, sentence, expression timing,
    labels, noise) has its own random stream, so e.g. the look of a clip is the same
    whatever its emotion.
    """
    unknown = [e for e in emotions if e not in faces.EXPRESSIONS]
    if unknown or not emotions:
        raise ValueError(f"unknown emotions {unknown}; choose from {tuple(faces.EXPRESSIONS)}")
    if cue not in CUE_CHOICES:
        raise ValueError(f"cue must be one of {CUE_CHOICES}, got {cue!r}")
    emotion = _balanced(seed, prefix, _EMOTION, index, list(emotions))
    clip_cue = _balanced(seed, prefix, _CUE, index, list(CUES)) if cue == "mixed" else cue
    face_cue = clip_cue in ("video", "all")
    voice_cue = clip_cue in ("audio", "all")
    text_cue = clip_cue in ("text", "all")

    rng = _rng(seed, prefix, _TEXT, index)
    neutral_i = int(rng.integers(len(phrases.NEUTRAL_SENTENCES)))
    emotional_i = int(rng.integers(1 << 30))
    if text_cue and emotion != "neutral":
        table = phrases.EMOTIONAL_SENTENCES[emotion]
        subtitle_en, subtitle_zh = table[emotional_i % len(table)]
    else:
        subtitle_en, subtitle_zh = phrases.NEUTRAL_SENTENCES[neutral_i]

    lo, hi = duration
    rng = _rng(seed, prefix, _TIMING, index)
    target = float(rng.uniform(lo, hi))
    speech_onset = float(rng.uniform(0.15, 0.5))

    rng = _rng(seed, prefix, _EXPRESSION, index)
    peak, onset, ramp = (float(rng.uniform(0.75, 1.0)), float(rng.uniform(0.3, 1.5)),
                         float(rng.uniform(0.4, 1.2)))
    tears = bool(rng.random() < 0.6)
    targets = dict(faces.EXPRESSIONS[emotion]) if face_cue else {}
    if not tears:
        targets.pop("tears", None)
    expression = {"targets": targets, "peak": round(peak, 4), "onset": round(onset, 3),
                  "ramp": round(ramp, 3)}

    speaker = speech.sample_speaker(_rng(seed, prefix, _SPEAKER, index))
    voice = speech.prosody_params(speaker, emotion if voice_cue else None)

    rng = _rng(seed, prefix, _LABELS, index)
    pool = phrases.SYNONYMS[emotion]
    extra_labels = rng.choice(len(pool) - 1, size=int(rng.integers(1, 3)), replace=False)
    labels = [pool[0]] + [pool[1 + int(i)] for i in extra_labels]

    rng = _rng(seed, prefix, _NOISE, index)
    noise = {"level": round(float(rng.uniform(0.001, 0.004)), 5),
             "seed": int(rng.integers(1 << 31))}

    return {
        "generator": GENERATOR, "seed": seed, "prefix": prefix, "index": index,
        "cue": clip_cue, "emotion": emotion, "labels": labels,
        "modalities_with_cue": [m for m, on in (("video", face_cue), ("audio", voice_cue),
                                                ("text", text_cue)) if on],
        "subtitle_en": subtitle_en, "subtitle_zh": subtitle_zh,
        "face": {"appearance": faces.sample_appearance(_rng(seed, prefix, _APPEARANCE, index)),
                 "motion": faces.sample_motion(_rng(seed, prefix, _MOTION, index), hi),
                 "expression": expression, "tears": tears and face_cue and emotion == "sad"},
        "voice": {**voice, "speaker": speaker},
        "timing": {"target_duration": round(target, 3), "speech_onset": round(speech_onset, 3)},
        "noise": noise,
    }


def _speak(plan: dict, duration: tuple[float, float], fps: int) -> tuple[np.ndarray, int]:
    """Synthesise the clip's speech and fix its final timing (stored in ``plan``)."""
    voice = plan["voice"]
    text = plan["subtitle_en"]
    if voice["emotion"] == "neutral":
        text = re.sub(r"[!?]", ".", text)  # no exclamatory intonation in a neutral voice
    else:
        text = speech.spoken_text(text, voice["final"])
    voice["spoken_text"] = text
    audio, rate = speech.synthesize(text, voice)
    onset = plan["timing"]["speech_onset"]
    lo, hi = duration
    room = hi - onset - 0.2
    if len(audio) / rate > room:  # too long for the longest clip: speak faster, once
        factor = len(audio) / rate / room
        voice["speed"] = int(min(450, math.ceil(voice["speed"] * factor * 1.05)))
        audio, rate = speech.synthesize(text, voice)
    speech_len = len(audio) / rate
    clip = max(plan["timing"]["target_duration"], onset + speech_len + 0.3)
    n_frames = max(1, min(int(round(clip * fps)), int(math.floor(hi * fps + 1e-6))))
    n_frames = max(n_frames, int(math.ceil(lo * fps - 1e-6)))
    plan["timing"].update({"duration": round(n_frames / fps, 4), "n_frames": n_frames,
                           "speech_duration": round(speech_len, 4)})
    return audio, rate


def _audio_track(plan: dict, speech_audio: np.ndarray, rate: int) -> np.ndarray:
    n = int(round(plan["timing"]["duration"] * rate))
    noise = np.random.Generator(np.random.PCG64(plan["noise"]["seed"]))
    track = (noise.standard_normal(n) * plan["noise"]["level"]).astype(np.float32)
    start = int(round(plan["timing"]["speech_onset"] * rate))
    part = speech_audio[: max(0, n - start)]
    if len(part) < len(speech_audio):  # cut: fade out the last 50 ms
        fade = min(len(part), int(0.05 * rate))
        if fade:
            part = part.copy()
            part[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    track[start:start + len(part)] += part
    return np.clip(track, -1.0, 1.0)


def _talk_window(plan: dict) -> tuple[float, float]:
    """When the drawn mouth moves: from the speech onset for the sentence's length at the
    speaker's own (neutral) rate, so the picture carries no prosody."""
    words = len(plan["subtitle_en"].split())
    start = plan["timing"]["speech_onset"]
    return start, start + words * 60.0 / plan["voice"]["speaker"]["speed"]


# --------------------------------------------------------------------------- descriptions


def _join(items: Sequence[str], conj: str = "and", clauses: bool = False) -> str:
    """``a, b and c`` (words) or ``a, b, and c`` (clauses, which may hold "and" themselves)."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    sep = ", " if clauses else " "
    return ", ".join(items[:-1]) + f"{sep}{conj} " + items[-1]


def describe(plan: dict, style: str = "fine") -> tuple[str, str]:
    """The EMER-style gold description (English, Chinese) of a planned clip.

    Only modalities that carry the cue are described (for a neutral clip: the cue
    modality's calm appearance); the conclusion names the gold labels.
    """
    emotion, mods = plan["emotion"], plan["modalities_with_cue"]
    labels = plan["labels"]
    rng = np.random.Generator(np.random.PCG64(plan["noise"]["seed"] + 17))
    syn = phrases.SYNONYMS[emotion]
    zh = phrases.SYNONYMS_ZH[emotion]
    word = labels[1] if len(labels) > 1 else labels[0]
    en_parts: list[str] = []
    zh_parts: list[str] = []
    fine = style == "fine"
    if "video" in mods:
        clues = list(phrases.FACE_CLUES[emotion])
        if plan["face"]["tears"]:
            clues.append(phrases.TEARS_CLUE)
        if not fine:
            clues = clues[:2]
        onset = plan["face"]["expression"]["onset"]
        if emotion == "neutral":
            en = f"In the video, the person speaks with a still face: {_join([c[0] for c in clues], clauses=True)}."
            zh_text = f"在视频中，人物说话时面部没有明显变化：{'，'.join(c[1] for c in clues)}。"
        elif fine:
            en = (f"In the video, the person's face is relaxed at first; about {onset:.1f} seconds "
                  f"in, {_join([c[0] for c in clues], clauses=True)}. These facial clues suggest that the "
                  f"person is {word}.")
            zh_text = (f"在视频中，人物一开始表情放松，大约{onset:.1f}秒后，"
                       f"{'，'.join(c[1] for c in clues)}。这些面部线索表明人物感到{zh[0]}。")
        else:
            en = f"In the video, {_join([c[0] for c in clues], clauses=True)}."
            zh_text = f"在视频中，{'，'.join(c[1] for c in clues)}。"
        en_parts.append(en)
        zh_parts.append(zh_text)
    if "audio" in mods:
        clues = list(phrases.VOICE_CLUES[emotion])[: 2 if fine else 1]
        en = f"In the audio, {_join([c[0] for c in clues], clauses=True)}."
        zh_text = f"在音频中，{'，'.join(c[1] for c in clues)}"
        if fine:
            en += f" The tone of voice sounds {syn[int(rng.integers(len(syn)))]}."
            zh_text += f"，听起来很{zh[int(rng.integers(len(zh)))]}"
        en_parts.append(en)
        zh_parts.append(zh_text + "。")
    if "text" in mods:
        clue_en, clue_zh = phrases.TEXT_CLUES[emotion]
        en = f'In the text, the subtitle says: "{plan["subtitle_en"]}" Here {clue_en}'
        zh_text = f"在文本中，字幕内容为：“{plan['subtitle_zh']}”{clue_zh}"
        if fine and emotion != "neutral":
            en += f", which shows that the person is {word}"
            zh_text += f"，说明人物感到{zh[0]}"
        en_parts.append(en + ".")
        zh_parts.append(zh_text + "。")
    names_en = [phrases.MODALITY_NAMES[m][0] for m in mods]
    names_zh = [phrases.MODALITY_NAMES[m][1] for m in mods]
    if fine:
        if len(mods) > 1:
            lead_en = f"The {_join(names_en)} all point the same way"
        else:
            lead_en = f"Only the {names_en[0]} carries an emotional clue"
            if emotion == "neutral":
                lead_en = f"The {names_en[0]} shows no sign of emotional arousal"
        en_parts.append(f"{lead_en}. Based on these clues, we can infer that the person feels "
                        f"{_join(labels)}. Overall, the person's emotional state is {labels[0]}.")
        zh_parts.append(f"综合{'、'.join(names_zh)}线索，可以推断人物感到"
                        f"{'、'.join(zh[: max(1, len(labels) - 1)])}。")
    else:
        en_parts.append(f"The person seems {_join(labels)}.")
        zh_parts.append(f"人物显得{'、'.join(zh[:2])}。")
    return " ".join(en_parts), "".join(zh_parts)


# --------------------------------------------------------------------------- encoding


def _video_codec() -> str:
    import av

    for name in ("libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # codec not built into this PyAV
            continue
    raise RuntimeError("PyAV has neither libx264 nor mpeg4 encoders")


def _x264_options() -> dict[str, str]:
    """libx264 settings. Its AVX-512 kernels read memory they never wrote, so the same
    frames encoded twice in one process differed; on CPUs with AVX-512 the encoder is held
    to its AVX2 kernels, which give the files an AVX2-only machine writes."""
    options = {"preset": "veryfast", "crf": "20"}
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return options
    if " avx512f" in flags:
        options["x264-params"] = "asm=AVX2"
    return options


def write_mp4(path: Path, frames, audio: np.ndarray, sample_rate: int, *, size: int, fps: int,
              comment: str = "") -> None:
    """Encode RGB ``frames`` (PIL images) and mono float ``audio`` into an MP4 at ``path``
    (H.264 or MPEG-4 video, AAC audio), atomically."""
    import av

    codec = _video_codec()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with av.open(str(tmp), "w", format="mp4") as container:
            if comment:
                container.metadata["comment"] = comment
            vs = container.add_stream(codec, rate=fps)
            vs.width = vs.height = size
            vs.pix_fmt = "yuv420p"
            vs.codec_context.thread_count = 1
            vs.options = _x264_options() if codec == "libx264" else {"qscale": "3"}
            aus = container.add_stream("aac", rate=sample_rate)
            aus.layout = "mono"
            for i, image in enumerate(frames):
                frame = av.VideoFrame.from_image(image)
                frame.pts, frame.time_base = i, Fraction(1, fps)
                for packet in vs.encode(frame):
                    container.mux(packet)
            for packet in vs.encode():
                container.mux(packet)
            aframe = av.AudioFrame.from_ndarray(audio[None, :].astype(np.float32), format="fltp",
                                                layout="mono")
            aframe.sample_rate, aframe.pts = sample_rate, 0
            for packet in aus.encode(aframe):
                container.mux(packet)
            for packet in aus.encode():
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _file_comment(path: Path) -> str | None:
    import av

    try:
        with av.open(str(path)) as container:
            return container.metadata.get("comment")
    except Exception:  # unreadable or partial file: regenerate
        return None


def probe_clip(path: str | Path) -> dict:
    """Decode a clip with PyAV: size, fps, frame count, duration, audio rate and RMS."""
    import av

    with av.open(str(path)) as container:
        v = container.streams.video[0]
        info = {"width": v.codec_context.width, "height": v.codec_context.height,
                "fps": float(v.average_rate) if v.average_rate else None,
                "video_codec": v.codec_context.name, "frames": 0}
        for _ in container.decode(video=0):
            info["frames"] += 1
        info["duration"] = info["frames"] / info["fps"] if info["fps"] else None
    with av.open(str(path)) as container:
        if not container.streams.audio:
            info.update(audio_rate=None, audio_seconds=0.0, audio_rms=0.0)
            return info
        a = container.streams.audio[0]
        chunks = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        info.update(audio_codec=a.codec_context.name, audio_rate=a.codec_context.sample_rate,
                    audio_seconds=len(samples) / a.codec_context.sample_rate,
                    audio_rms=float(np.sqrt(np.mean(np.square(samples)))) if len(samples) else 0.0)
    return info


# --------------------------------------------------------------------------- generation


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
    audio, rate = _speak(plan, job["duration"], job["fps"])
    plan["audio"] = {"sample_rate": rate}
    digest = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()[:16]
    plan["digest"] = digest
    comment = f"{GENERATOR} {digest}"
    path = Path(job["path"])
    if path.is_file() and _file_comment(path) == comment:
        return plan, "skipped"
    frames = faces.render_clip_frames(
        plan["face"]["appearance"], plan["face"]["motion"], plan["face"]["expression"],
        size=job["size"], fps=job["fps"], n_frames=plan["timing"]["n_frames"],
        talk=_talk_window(plan))
    write_mp4(path, frames, _audio_track(plan, audio, rate), rate, size=job["size"],
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
