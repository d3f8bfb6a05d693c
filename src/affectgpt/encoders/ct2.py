"""A reader for CTranslate2 ``model.bin`` files (numpy only, no ``ctranslate2`` needed).

The format (``ctranslate2/specs/model_spec.py``, binary version 6) is little-endian:

- ``u32`` binary version, string spec name (e.g. ``WhisperSpec``), ``u32`` spec revision;
- ``u32`` variable count, then per variable: string name, ``u8`` rank, ``rank x u32`` shape,
  ``u8`` dtype id (0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16), ``u32`` byte
  count, raw bytes;
- ``u32`` alias count, then pairs of strings (alias, target variable).

A string is a ``u16`` length (including a trailing NUL), the UTF-8 bytes and the NUL.
Packaged models are sometimes split into several files (``model.bin.part1``, ...): the
reader takes a list of paths and reads them as one stream.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

SUPPORTED_BINARY_VERSIONS = (6,)
# dtype id -> (numpy dtype, item size); bfloat16 is read as raw 16-bit words
_DTYPES = {0: ("<f4", 4), 1: ("i1", 1), 2: ("<i2", 2), 3: ("<i4", 4), 4: ("<f2", 2),
           5: ("bfloat16", 2)}


@dataclass
class CT2Model:
    """The variables of a CTranslate2 model (numpy arrays, bfloat16 widened to float32)."""

    spec: str
    revision: int
    binary_version: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)


class _Stream:
    """Sequential reads over the concatenation of several files."""

    def __init__(self, paths: Sequence[str | os.PathLike]):
        self._paths = [os.fspath(p) for p in paths]
        self._index = -1
        self._file = None
        self._next_file()

    def _next_file(self) -> bool:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._index += 1
        if self._index >= len(self._paths):
            return False
        self._file = open(self._paths[self._index], "rb")  # closed by close()
        return True

    def read(self, n: int) -> bytes:
        chunks = []
        while n > 0 and self._file is not None:
            chunk = self._file.read(n)
            if not chunk:
                if not self._next_file():
                    break
                continue
            chunks.append(chunk)
            n -= len(chunk)
        if n > 0:
            raise ValueError("truncated CTranslate2 model file (are all parts present?)")
        return b"".join(chunks)

    def skip(self, n: int) -> None:
        while n > 0:
            if self._file is None:
                raise ValueError("truncated CTranslate2 model file (are all parts present?)")
            here = self._file.tell()
            size = os.fstat(self._file.fileno()).st_size
            step = min(n, size - here)
            self._file.seek(step, os.SEEK_CUR)
            n -= step
            if n > 0:
                self._next_file()

    def at_end(self) -> bool:
        while self._file is not None:
            if self._file.tell() < os.fstat(self._file.fileno()).st_size:
                return False
            self._next_file()
        return True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.read(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        length = self.unpack("H")
        raw = self.read(length)
        if length == 0 or raw[-1] != 0:
            raise ValueError("malformed string in CTranslate2 model file")
        return raw[:-1].decode("utf-8")


def _decode(raw: bytes, dtype_id: int, shape: list[int]) -> np.ndarray:
    dtype = _DTYPES[dtype_id][0]
    if dtype == "bfloat16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    return array.astype(array.dtype.newbyteorder("="))  # a writable native-order copy


def read_ct2_model(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    keep: Callable[[str], bool] | None = None,
) -> CT2Model:
    """Read a CTranslate2 ``model.bin`` (or its parts, in order) into numpy arrays.

    ``keep(name)`` selects the variables to load; the others are skipped without being
    read (e.g. ``keep=lambda n: n.startswith("encoder/")`` for a Whisper encoder). Aliases
    are returned as names only. Raises ``ValueError`` on a malformed or truncated file.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    stream = _Stream(paths)
    try:
        version = stream.unpack("I")
        if version not in SUPPORTED_BINARY_VERSIONS:
            raise ValueError(f"unsupported CTranslate2 binary version {version}")
        spec = stream.string()
        revision = stream.unpack("I")
        model = CT2Model(spec=spec, revision=revision, binary_version=version)
        for _ in range(stream.unpack("I")):
            name = stream.string()
            rank = stream.unpack("B")
            shape = [stream.unpack("I") for _ in range(rank)]
            dtype_id = stream.unpack("B")
            num_bytes = stream.unpack("I")
            if keep is not None and not keep(name):
                stream.skip(num_bytes)
                continue
            if dtype_id not in _DTYPES:
                raise ValueError(f"variable {name!r}: unknown dtype id {dtype_id}")
            if num_bytes != int(np.prod(shape, dtype=np.int64)) * _DTYPES[dtype_id][1]:
                raise ValueError(f"variable {name!r}: {num_bytes} bytes for shape {shape}")
            model.variables[name] = _decode(stream.read(num_bytes), dtype_id, shape)
        for _ in range(stream.unpack("I")):
            alias = stream.string()
            model.aliases[alias] = stream.string()
        if not stream.at_end():
            raise ValueError("trailing bytes after the CTranslate2 model variables")
    finally:
        stream.close()
    return model
