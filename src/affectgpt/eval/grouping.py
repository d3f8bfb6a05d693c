"""Per-sample synonym groupings G(.) for the 2024 set metric.

A grouping is a list of label groups (lists); each label maps to the FIRST member of its
group, and a label absent from the grouping maps to itself (MERTools ``main-ov.py``).

Sources:
- stored groupings (the reference's per-sample ``.npy`` files in a directory or zip, or
  a JSON ``{name: [[...], ...]}``): :func:`load_stored_groupings`;
- an LLM through an OpenAI-compatible endpoint: :mod:`affectgpt.eval.llm_grouping`;
- an offline lexical grouping: :mod:`affectgpt.eval.lexical`.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from affectgpt.eval.labels import LabelFormatError, parse_label_groups, read_text

Groups = list[list[str]]


def synonym_map(groups: Iterable[Iterable[str]]) -> dict[str, str]:
    """``{label: representative}``; a label in several groups takes the last group's
    representative, as in the reference implementation."""
    mapping: dict[str, str] = {}
    for group in groups:
        group = list(group)
        if group:
            for label in group:
                mapping[label] = group[0]
    return mapping


def apply_map(labels: Iterable[str], mapping: dict[str, str]) -> set[str]:
    """Map each label to its group representative (itself when ungrouped)."""
    return {mapping.get(label, label) for label in labels}


def _npy_text(data: bytes, where: str) -> str:
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise LabelFormatError(f"not a readable .npy grouping file: {exc}", path=where) from None
    value = arr.tolist()
    if not isinstance(value, str):
        raise LabelFormatError("grouping .npy must hold a 0-d string array", path=where)
    return value


def load_stored_groupings(path: str | Path) -> dict[str, Groups]:
    """Load stored per-sample groupings.

    ``path`` is a directory of ``<name>.npy`` files, a zip of them (any folder depth),
    or a JSON file ``{name: [[label, ...], ...]}`` (groups may also be list strings).
    """
    path = Path(path)
    raw: dict[str, object] = {}
    if path.is_dir():
        for f in sorted(path.rglob("*.npy")):
            raw[f.stem] = _npy_text(f.read_bytes(), str(f))
    elif path.suffix.lower() == ".zip":
        with zipfile.ZipFile(path) as zf:
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                if info.filename.endswith(".npy") and not info.is_dir():
                    name = Path(info.filename).stem
                    if name in raw:
                        raise LabelFormatError("two groupings for one sample", sample=name, path=path)
                    raw[name] = _npy_text(zf.read(info), f"{path}:{info.filename}")
    elif path.suffix.lower() == ".json":
        try:
            data = json.loads(read_text(path))
        except json.JSONDecodeError as exc:
            raise LabelFormatError(f"not JSON: {exc.msg}", path=path) from None
        if not isinstance(data, dict):
            raise LabelFormatError("grouping JSON must be an object {name: groups}", path=path)
        raw = data
    elif not path.exists():
        raise FileNotFoundError(f"no such grouping file or directory: {path}")
    else:
        raise LabelFormatError("groupings must be a directory or zip of .npy files, or .json", path=path)
    if not raw:
        raise LabelFormatError("no groupings found", path=path)
    groupings: dict[str, Groups] = {}
    for name, value in raw.items():
        try:
            groupings[name] = parse_label_groups(value)
        except LabelFormatError as exc:
            raise LabelFormatError(str(exc), sample=name, path=path) from None
    return groupings


def save_groupings_json(groupings: dict[str, Groups], path: str | Path) -> None:
    """Write groupings as JSON (readable back with :func:`load_stored_groupings`)."""
    Path(path).write_text(json.dumps(groupings, ensure_ascii=False, indent=1), encoding="utf-8")
