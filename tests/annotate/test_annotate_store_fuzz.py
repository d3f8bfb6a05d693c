"""Property-based fuzzing of the stage store's torn-line recovery: whatever a crash (or a
stray write) leaves at the end of a stage file, opening it recovers every complete row before
the damage and nothing else, or raises the documented StoreError; no other exception, and
no file outside the store's folder is touched."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from affectgpt.annotate.store import JsonlStore, StoreError, read_rows

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False,
                                                                  allow_infinity=False),
              st.text(max_size=10)),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                        children, max_size=3),
    max_leaves=8,
)
rows = st.lists(st.fixed_dictionaries({"name": st.text(max_size=8), "output": json_values}),
                max_size=6, unique_by=lambda r: r["name"])


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _write(path: Path, records: list[dict]) -> list[int]:
    """Append ``records`` through the store; returns the byte offset where each row ends."""
    ends = []
    with JsonlStore(path) as store:
        for record in records:
            assert store.append(record)
            ends.append(path.stat().st_size)
    return ends


@given(rows, st.floats(0, 1))
def test_a_file_cut_anywhere_recovers_the_rows_before_the_cut(tmp_path, records, where):
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        root = Path(folder)
        path = root / "out" / "stage.jsonl"
        ends = _write(path, records)
        data = path.read_bytes()
        cut = int(where * len(data))
        path.write_bytes(data[:cut])
        outside = {k: v for k, v in _tree(root).items() if not k.startswith("out/")}
        whole = [r for r, end in zip(records, ends) if end <= cut]
        with JsonlStore(path) as store:
            assert store.rows == whole
            assert store.dropped_bytes == cut - (max([e for e in ends if e <= cut], default=0))
            assert store.append({"name": "\x00after-the-cut", "output": 1})
        assert read_rows(path)[0] == [*whole, {"name": "\x00after-the-cut", "output": 1}]
        assert {k: v for k, v in _tree(root).items() if not k.startswith("out/")} == outside
        assert sorted(p.name for p in (root / "out").iterdir()) == ["stage.jsonl"]


@given(rows, st.binary(max_size=200), st.floats(0, 1))
@example([{"name": "a", "output": 1}], b'{"name": "b"', 1.0)
@example([{"name": "a", "output": 1}], b"garbage\n{\"name\": \"c\"}\n", 1.0)
@example([{"name": "a", "output": 1}], b"[" * 5000 + b"\n", 1.0)
@example([{"name": "a", "output": 1}], b"\xff\xfe\n", 1.0)
@example([{"name": "a", "output": 1}], b"[1, 2]\n", 1.0)
def test_bytes_written_after_a_cut_are_recovered_or_refused(tmp_path, records, tail, where):
    """Random bytes after the last complete row: the store opens with the original rows
    (plus any further rows the bytes happen to spell) and the torn rest cut off, or refuses
    with StoreError (a corrupt row followed by more rows, a row that is not an object)."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        path = Path(folder) / "stage.jsonl"
        ends = _write(path, records)
        cut = ends[int(where * (len(ends) - 1))] if ends else 0
        data = path.read_bytes()[:cut] + tail
        path.write_bytes(data)
        kept = [r for r, end in zip(records, ends) if end <= cut]
        try:
            store = JsonlStore(path)
        except StoreError as exc:
            assert str(path) in str(exc)
            assert path.read_bytes() == data  # a refused file is left as it was
            return
        with store:
            assert store.rows[: len(kept)] == kept
            assert all(isinstance(r, dict) for r in store.rows)
            good = path.stat().st_size
            assert good == len(data) - store.dropped_bytes
            assert data[:good].endswith(b"\n") or good == 0
            for line in data[:good].splitlines():
                if line.strip():
                    json.loads(line)  # every kept line is whole JSON
        assert [p.name for p in Path(folder).iterdir()] == ["stage.jsonl"]
