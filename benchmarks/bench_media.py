"""Media decoding speed: 8 sampled frames + 16 kHz mono audio per clip, PyAV vs the ffmpeg CLI.

Generates clips with the ffmpeg command line (default: 20 clips of 10 s, 640x360, 25 fps,
H.264 + stereo 48 kHz AAC, moving test pattern), then times two ways of doing the same job on
the same files, each producing numpy arrays:

* ``affectgpt.media``: ``read_frames(path, 8)`` + ``read_audio(path, 16000)`` (PyAV, in process);
* ``ffmpeg``: one ``ffmpeg`` process per clip that extracts the same 8 frames with a
  ``select`` filter (RGB24) and the audio as 16 kHz mono float32, read back into numpy. The
  frame indices are given to ffmpeg for free (computed before timing): the CLI cannot count
  frames and sample them in one run.

Prints clips/s for both and the ratio (goal: affectgpt.media >= 0.8x ffmpeg).

    python benchmarks/bench_media.py [--clips 20] [--seconds 10] [--gop 250] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from affectgpt.media import probe, read_audio, read_frames, sample_frame_indices


def make_clips(folder: Path, count: int, seconds: float, width: int, height: int,
               fps: int, gop: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = folder / f"clip{i:03d}.mp4"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}",
             "-f", "lavfi", "-i", f"sine=frequency={200 + 20 * i}:sample_rate=48000:duration={seconds}",
             "-filter_complex", "[1:a]aformat=channel_layouts=stereo[a]", "-map", "0:v", "-map", "[a]",
             "-c:v", "libx264", "-preset", "veryfast", "-g", str(gop), "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-b:a", "128k", str(path)],
            check=True,
        )
        paths.append(path)
    return paths


def run_ours(paths: list[Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(read_frames(p, 8), read_audio(p, 16000)) for p in paths]


def run_ffmpeg(paths: list[Path], indices: dict[Path, list[int]], size: dict[Path, tuple[int, int]],
               scratch: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for p in paths:
        wanted = indices[p]
        expr = "+".join(f"eq(n\\,{i})" for i in sorted(set(wanted)))
        frames_file, audio_file = scratch / "frames.rgb", scratch / "audio.f32"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(p),
             "-map", "0:v:0", "-vf", f"select={expr}", "-vsync", "0", "-frames:v", str(len(set(wanted))),
             "-f", "rawvideo", "-pix_fmt", "rgb24", str(frames_file),
             "-map", "0:a:0", "-ac", "1", "-ar", "16000", "-f", "f32le", str(audio_file)],
            check=True,
        )
        width, height = size[p]
        frames = np.fromfile(frames_file, np.uint8).reshape(-1, height, width, 3)
        audio = np.fromfile(audio_file, np.float32)
        out.append((frames, audio))
    return out


def timed_alternating(fns, repeat: int) -> list[float]:
    """Median wall time of each function, runs interleaved so load drifts hit both alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for slot, fn in zip(times, fns):
            t = time.perf_counter()
            fn()
            slot.append(time.perf_counter() - t)
    return [statistics.median(slot) for slot in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--gop", type=int, default=250, help="keyframe interval (x264 default 250)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg not found on PATH")

    scratch_root = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="bench-media-", dir=scratch_root) as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        paths = make_clips(folder, args.clips, args.seconds, args.width, args.height, args.fps,
                           args.gop)
        print(f"generated {len(paths)} clips of {args.seconds:g} s {args.width}x{args.height} "
              f"@{args.fps} fps, GOP {args.gop} in {time.perf_counter() - t:.1f} s")

        infos = {p: probe(p) for p in paths}
        indices = {p: sample_frame_indices(infos[p].num_frames, 8) for p in paths}
        size = {p: (infos[p].width, infos[p].height) for p in paths}

        # Same frames and same audio length from both (warm-up run, also checks correctness).
        ours = run_ours(paths)
        theirs = run_ffmpeg(paths, indices, size, folder)
        for p, (f1, a1), (f2, a2) in zip(paths, ours, theirs):
            unique = sorted(set(indices[p]))
            f1u = np.stack([f1[indices[p].index(i)] for i in unique])
            err = np.abs(f1u.astype(int) - f2.astype(int)).mean()
            assert f2.shape == f1u.shape and err < 2.0, (p, f2.shape, f1u.shape, err)
            assert abs(a1.size - a2.size) <= 0.01 * a2.size, (p, a1.size, a2.size)

        ours_s, ffmpeg_s = timed_alternating(
            [lambda: run_ours(paths), lambda: run_ffmpeg(paths, indices, size, folder)],
            args.repeat,
        )
        ours_rate, ffmpeg_rate = len(paths) / ours_s, len(paths) / ffmpeg_s
        print(f"affectgpt.media (PyAV): {ours_rate:7.2f} clips/s  ({1000 * ours_s / len(paths):6.1f} ms/clip)")
        print(f"ffmpeg CLI            : {ffmpeg_rate:7.2f} clips/s  ({1000 * ffmpeg_s / len(paths):6.1f} ms/clip)")
        print(f"ratio (ours / ffmpeg) : {ours_rate / ffmpeg_rate:7.2f}x   (goal >= 0.8x)")


if __name__ == "__main__":
    main()
