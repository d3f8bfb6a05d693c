"""A corpus of broken and hostile media: each file decodes within the limits or gets its typed
error, in bounded time and memory.

Every file is read in a fresh Python process, so its peak memory is measured from a small,
known baseline (a read inside the test process would hide under whatever earlier tests
allocated) and a hang is cut off by a timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hostile_media import (
    write_audio_only,
    write_concat_script,
    write_hls_playlist,
    write_huge_declared_avi,
    write_many_streams,
    write_one_frame_video,
    write_png,
    write_png_bomb_mov,
    write_silent_flac,
    write_truncated,
)
from media_fixtures import write_video

#: Seconds one read may take (generous: the test machine may be a loaded 2-core box).
TIME_BOUND = 20.0
#: Growth of the reading process's peak memory (MiB) over its state after importing.
#: The largest legitimate read here keeps 30 minutes of 16 kHz float32 audio (110 MiB).
MEMORY_BOUND_MIB = 220

_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from affectgpt.media import probe, read_audio, read_frames

    def peak_mib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    readers = {"probe": probe, "frames": read_frames, "audio": read_audio}
    path = sys.argv[1]
    results = []
    for reader in sys.argv[2].split(","):
        base = peak_mib()
        start = time.perf_counter()
        try:
            out = readers[reader](path)
            detail = list(getattr(out, "shape", ())) or out.__class__.__name__
            outcome = "ok"
        except Exception as exc:
            outcome, detail = type(exc).__name__, str(exc)
        results.append({"reader": reader, "outcome": outcome, "detail": detail,
                        "seconds": time.perf_counter() - start,
                        "memory_mib": peak_mib() - base})
    print(json.dumps(results))
""")


def read_isolated(path: Path, readers: list[str]) -> dict[str, dict]:
    """Run the readers on ``path`` in a fresh process; ``{reader: result}``."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), ",".join(readers)], capture_output=True,
        text=True, timeout=TIME_BOUND * len(readers) + 30, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {r["reader"]: r for r in json.loads(proc.stdout.strip().splitlines()[-1])}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    uploads = root / "uploads"
    uploads.mkdir()
    secret = write_video(elsewhere / "secret.ts", 20, 25)
    write_one_frame_video(uploads / "sibling.mp4")
    mkv = write_video(root / "tmp.mkv", 30, 25)
    wrong = root / "matroska-named.mp4"
    mkv.rename(wrong)
    empty = root / "empty.mp4"
    empty.write_bytes(b"")
    return {
        "zero-length": empty,
        "truncated": write_truncated(root / "truncated.mp4"),
        "wrong-extension": wrong,
        "image-as-video": write_png(root / "image.mp4"),
        "huge-declared-size": write_huge_declared_avi(root / "huge.avi", 16000),
        "pixel-bomb": write_png_bomb_mov(root / "bomb.mov"),
        "audio-only": write_audio_only(root / "speech.m4a"),
        "hls-playlist": write_hls_playlist(uploads / "clip.m3u8", str(secret)),
        "hls-playlist-as-mp4": write_hls_playlist(uploads / "clip.mp4", str(secret)),
        "hls-playlist-dotdot": write_hls_playlist(
            uploads / "up.m3u8", os.path.relpath(secret, uploads)),
        "concat-script": write_concat_script(uploads / "list.txt", "sibling.mp4"),
        "concat-script-as-mp4": write_concat_script(uploads / "list.mp4", "sibling.mp4"),
        "fifty-streams": write_many_streams(root / "streams.mkv", 50),
        "one-frame": write_one_frame_video(root / "one.mp4"),
        "three-hours-declared": write_silent_flac(root / "3h.flac", 3 * 3600),
        "three-hours-undeclared": write_silent_flac(root / "3h-undeclared.flac", 3 * 3600,
                                                    declare_length=False),
    }


#: case -> {reader: expected outcome ("ok" or the error's class name)}.
EXPECTED: dict[str, dict[str, str]] = {
    "zero-length": dict.fromkeys(("probe", "frames", "audio"), "EmptyMediaError"),
    "truncated": dict.fromkeys(("probe", "frames", "audio"), "CorruptMediaError"),
    "wrong-extension": {"probe": "ok", "frames": "ok", "audio": "NoAudioStreamError"},
    "image-as-video": dict.fromkeys(("probe", "frames"), "UnsupportedFormatError"),
    "huge-declared-size": dict.fromkeys(("probe", "frames"), "ResolutionLimitError"),
    "pixel-bomb": dict.fromkeys(("probe", "frames"), "ResolutionLimitError"),
    "audio-only": {"probe": "ok", "frames": "NoVideoStreamError", "audio": "ok"},
    "hls-playlist": dict.fromkeys(("probe", "frames", "audio"), "UnsupportedFormatError"),
    "hls-playlist-as-mp4": dict.fromkeys(("probe", "frames"), "UnsupportedFormatError"),
    "hls-playlist-dotdot": dict.fromkeys(("probe", "frames"), "UnsupportedFormatError"),
    "concat-script": dict.fromkeys(("probe", "frames"), "UnsupportedFormatError"),
    "concat-script-as-mp4": dict.fromkeys(("probe", "frames"), "UnsupportedFormatError"),
    "fifty-streams": dict.fromkeys(("probe", "audio"), "StreamCountLimitError"),
    "one-frame": {"probe": "ok", "frames": "ok", "audio": "NoAudioStreamError"},
    "three-hours-declared": dict.fromkeys(("probe", "audio"), "DurationLimitError"),
    # Nothing declares its length: probing reads the header only, decoding stops at the limit.
    "three-hours-undeclared": {"probe": "ok", "audio": "DurationLimitError"},
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_every_file_decodes_within_limits_or_gets_its_typed_error(corpus, case):
    expected = EXPECTED[case]
    results = read_isolated(corpus[case], list(expected))
    for reader, outcome in expected.items():
        result = results[reader]
        assert result["outcome"] == outcome, (reader, result)
        if outcome != "ok":
            assert str(corpus[case]) in result["detail"]  # the error names the file
        assert result["seconds"] < TIME_BOUND, (reader, result)
        assert result["memory_mib"] < MEMORY_BOUND_MIB, (reader, result)


def test_readable_cases_return_what_they_hold(corpus):
    results = read_isolated(corpus["one-frame"], ["frames"])
    assert results["frames"]["detail"] == [8, 64, 96, 3]  # one frame, repeated 8 times
    results = read_isolated(corpus["wrong-extension"], ["frames"])
    assert results["frames"]["detail"] == [8, 64, 96, 3]
