"""Helpers shared by tests in several folders (importable: tests/ is on sys.path through
tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path


def strip_audio(src, dst) -> Path:
    """Copy the video stream of ``src`` into ``dst`` without its audio (a remux)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        ostream = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is None:
                continue
            packet.stream = ostream
            out.mux(packet)
    return Path(dst)
