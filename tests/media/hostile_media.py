"""Broken and hostile media, made cheaply in a test's folder.

Each builder writes one file under ``folder`` and returns its path. Files are real: encoded
with PyAV/FFmpeg, or written byte by byte where the point is a header that lies (a FLAC stream
of three hours of silence is 20 kB; an AVI declaring 30000 x 30000 frames holds 64 x 48 ones).
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from media_fixtures import sine_stereo, write_audio, write_video

# ----------------------------------------------------------------------------- FLAC by hand

_FLAC_MAX_BLOCK = 65535


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def _utf8_number(n: int) -> bytes:
    """FLAC's UTF-8-like coding of a frame number (up to 2**31)."""
    if n < 0x80:
        return bytes([n])
    if n < 0x800:
        return bytes([0xC0 | (n >> 6), 0x80 | (n & 0x3F)])
    if n < 0x10000:
        return bytes([0xE0 | (n >> 12), 0x80 | ((n >> 6) & 0x3F), 0x80 | (n & 0x3F)])
    raise ValueError("frame number too large for this writer")


def _silent_flac_frame(number: int, block: int) -> bytes:
    """One fixed-blocksize mono 16-bit frame whose only subframe is the constant 0."""
    header = bytearray(b"\xff\xf8")  # sync code, fixed block size
    header.append(0x70)  # block size: 16-bit (size - 1) follows; sample rate from STREAMINFO
    header.append(0x08)  # mono, 16 bits per sample
    header += _utf8_number(number)
    header += struct.pack(">H", block - 1)
    header.append(_crc8(bytes(header)))
    frame = bytes(header) + b"\x00" + b"\x00\x00"  # CONSTANT subframe, value 0
    return frame + struct.pack(">H", _crc16(frame))


def write_silent_flac(path: Path, seconds: float, rate: int = 8000, *,
                      declare_length: bool = True) -> Path:
    """Silence as FLAC frames of 65535 samples: hours of audio in a few kilobytes.

    ``declare_length=False`` leaves STREAMINFO's total-sample count at 0 ("unknown"), so only
    decoding finds out how long the stream is.
    """
    total = int(seconds * rate)
    frames = []
    done = 0
    number = 0
    while done < total:
        block = min(_FLAC_MAX_BLOCK, total - done)
        block = max(block, 16)  # FLAC's smallest block (the last one may be padded)
        frames.append(_silent_flac_frame(number, block))
        done += block
        number += 1
    sizes = [len(f) for f in frames]
    info = bytearray()
    info += struct.pack(">HH", 16, _FLAC_MAX_BLOCK)
    info += min(sizes).to_bytes(3, "big") + max(sizes).to_bytes(3, "big")
    packed = (rate << 44) | (0 << 41) | (15 << 36) | (done if declare_length else 0)
    info += packed.to_bytes(8, "big")
    info += bytes(16)  # MD5 unknown
    block_header = bytes([0x80]) + len(info).to_bytes(3, "big")  # last metadata block
    path.write_bytes(b"fLaC" + block_header + bytes(info) + b"".join(frames))
    return path


# ----------------------------------------------------------------------------- video headers


def write_raw_avi(path: Path, width: int = 64, height: int = 48, frames: int = 3) -> Path:
    """A small uncompressed (BGR24) AVI made by FFmpeg through PyAV."""
    container = av.open(str(path), mode="w", format="avi")
    stream = container.add_stream("rawvideo", rate=10)
    stream.width, stream.height, stream.pix_fmt = width, height, "bgr24"
    for i in range(frames):
        image = np.full((height, width, 3), 40 * i, np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def write_huge_declared_avi(path: Path, side: int = 30000) -> Path:
    """An AVI whose headers declare ``side`` x ``side`` frames; its data holds 64 x 48 ones.

    A reader that trusted the header would ask the decoder for 2.7 GB per frame.
    """
    write_raw_avi(path)
    data = bytearray(path.read_bytes())
    avih = data.find(b"avih")
    struct.pack_into("<II", data, avih + 8 + 32, side, side)  # dwWidth, dwHeight
    strf = data.find(b"strf")
    struct.pack_into("<ii", data, strf + 8 + 4, side, side)  # biWidth, biHeight
    path.write_bytes(bytes(data))
    return path


def _png(width: int, height: int, idat: bytes, color_type: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def write_png_bomb_mov(path: Path, side: int = 10000) -> Path:
    """A MOV holding one PNG picture of ``side`` x ``side`` black pixels: 0.4 MB on disk,
    100 MB decoded (gray), 300 MB as the RGB frame a reader returns."""
    compressor = zlib.compressobj(1)
    rows = (b"\x00" + bytes(side)) * 500  # filter byte + one row of gray pixels, 500 times
    idat = b"".join(compressor.compress(rows) for _ in range(side // 500)) + compressor.flush()
    container = av.open(str(path), mode="w", format="mov")
    stream = container.add_stream("png", rate=1)
    stream.width, stream.height, stream.pix_fmt = side, side, "gray"
    packet = av.Packet(_png(side, side, idat, color_type=0))
    packet.stream, packet.pts, packet.dts = stream, 0, 0
    packet.time_base, packet.is_keyframe = Fraction(1, 1), True
    container.mux(packet)
    container.close()
    return path


# ----------------------------------------------------------------------------- containers


def write_many_streams(path: Path, streams: int = 50) -> Path:
    """A Matroska file with ``streams`` short PCM audio tracks."""
    container = av.open(str(path), mode="w")
    outs = [container.add_stream("pcm_s16le", rate=8000, layout="mono") for _ in range(streams)]
    samples = np.zeros((1, 800), np.int16)
    for stream in outs:
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 8000, 0, Fraction(1, 8000)
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    container.close()
    return path


def write_png(path: Path) -> Path:
    """A real 8 x 8 PNG image (written with zlib), whatever ``path``'s extension says."""
    raw = b"".join(b"\x00" + bytes([200, 30, 30]) * 8 for _ in range(8))
    path.write_bytes(_png(8, 8, zlib.compress(raw), color_type=2))
    return path


def write_hls_playlist(path: Path, segment: str) -> Path:
    """An HLS media playlist whose one segment is ``segment`` (a path or URL). FFmpeg's HLS
    demuxer reads a local segment anywhere on disk (absolute, or ``../`` out of the folder)."""
    path.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:2.0,\n{segment}\n#EXT-X-ENDLIST\n", encoding="utf-8")
    return path


def write_concat_script(path: Path, *targets: str) -> Path:
    """An ``ffconcat`` script that plays ``targets`` (paths relative to it) one after another."""
    lines = ["ffconcat version 1.0"] + [f"file '{t}'" for t in targets]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_one_frame_video(path: Path) -> Path:
    return write_video(path, 1, 25)


def write_audio_only(path: Path) -> Path:
    return write_audio(path, sine_stereo(1.0, 16000), 16000, "aac")


def write_truncated(path: Path) -> Path:
    full = write_video(path.with_name("full-" + path.name), 60, 25, audio_seconds=2.4)
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path

