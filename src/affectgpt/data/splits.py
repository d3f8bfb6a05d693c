"""Seeded, written-down train/test splits, and validation splits carved from training data.

The paper's EMER-Fine split (266 train / 66 test) was never published, so ours is
seeded and saved next to the results. The assignment does not depend on any random
number generator implementation: every name gets the key ``sha256(f"{seed}:{name}")``
and the ``n_test`` names with the smallest keys form the test set. It is therefore the
same on every Python/NumPy version and platform, independent of the input order, and a
name's rank does not change when other names are added or removed.

A validation split (:func:`validation_split`) is carved from the training side the same
way, with its own key ``sha256(f"{seed}:val:{name}")`` so that it is independent of the
test split made with the same seed: checkpoints and hyper-parameters are chosen on it,
never on the test split.

A split is stored as a CSV ``name,split`` (readable by
:func:`affectgpt.eval.labels.read_names` with ``split="test"``) plus a sidecar JSON
``<file>.meta.json`` recording the seed, method, sizes and a hash of the names.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from affectgpt.data.manifest import ManifestError, Sample
from affectgpt.eval.labels import read_table
from affectgpt.io import atomic_path

SPLIT_METHOD = "sha256-rank-v1"
VALIDATION_METHOD = "sha256-rank-val-v1"
VALIDATION = "val"
EMER_FINE_TRAIN_SIZE = 266
EMER_FINE_TEST_SIZE = 66


def _key(seed: int, name: str) -> str:
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def _n_test(test_size: int | float, n: int, what: str = "test") -> int:
    if isinstance(test_size, bool):
        raise TypeError(f"{what}_size must be an int (count) or a float in [0, 1] (fraction)")
    if isinstance(test_size, float):
        if not 0.0 <= test_size <= 1.0:
            raise ValueError(f"{what} fraction must be in [0, 1], got {test_size}")
        return math.floor(test_size * n + 0.5)
    if not 0 <= test_size <= n:
        raise ValueError(f"{what} size {test_size} is not between 0 and the {n} names")
    return int(test_size)


def split_count(size: int | float, n: int, what: str = "test") -> int:
    """How many of ``n`` names a split size gives: an int is a count, a float in [0, 1] a
    fraction (rounded half up)."""
    return _n_test(size, n, what)


def names_digest(names: Iterable[str]) -> str:
    """sha256 of the sorted names (one per line): identifies the set that was split."""
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()


def seeded_split(names: Iterable[str], test_size: int | float, seed: int) -> dict[str, str]:
    """Assign every name to ``"train"`` or ``"test"``, deterministically.

    Args:
        names: unique sample names (order does not matter).
        test_size: number of test samples (int) or fraction of all names (float,
            rounded half up: 0.2 of 332 gives 66).
        seed: any integer; different seeds give independent splits.

    Returns:
        ``{name: "train" | "test"}`` in sorted-name order.
    """
    names = sorted(names)
    if len(set(names)) != len(names):
        dup = next(a for a, b in zip(names, names[1:]) if a == b)
        raise ValueError(f"duplicate name {dup!r}")
    n_test = _n_test(test_size, len(names))
    ranked = sorted(names, key=lambda n: (_key(seed, n), n))
    test = set(ranked[:n_test])
    return {n: "test" if n in test else "train" for n in names}


def validation_split(names: Iterable[str], val_size: int | float, seed: int
                     ) -> dict[str, str]:
    """Carve a validation split from training names: ``{name: "train" | "val"}``.

    ``val_size``: a count (int, at most all names) or a fraction (float in [0, 1], rounded
    half up); ``seed``: any integer. Deterministic and order-free like :func:`seeded_split`,
    but with keys of its own, so it does not follow the test split drawn with the same seed.
    """
    names = sorted(names)
    if len(set(names)) != len(names):
        dup = next(a for a, b in zip(names, names[1:]) if a == b)
        raise ValueError(f"duplicate name {dup!r}")
    n_val = _n_test(val_size, len(names), "val")
    ranked = sorted(names, key=lambda n: (_key(seed, f"val:{n}"), n))
    val = set(ranked[:n_val])
    return {n: VALIDATION if n in val else "train" for n in names}


def emer_fine_split(names: Iterable[str], seed: int = 0) -> dict[str, str]:
    """The default EMER-Fine split: 66 test names (266 train for the 332 samples)."""
    names = list(names)
    return seeded_split(names, min(EMER_FINE_TEST_SIZE, len(names)), seed)


def split_sizes(assignment: Mapping[str, str]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for part in assignment.values():
        sizes[part] = sizes.get(part, 0) + 1
    return dict(sorted(sizes.items()))


def meta_path(path: str | Path) -> Path:
    """The sidecar JSON of a split file: ``split.csv`` -> ``split.csv.meta.json``."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def write_split(
    path: str | Path,
    assignment: Mapping[str, str],
    seed: int | None,
    *,
    method: str = SPLIT_METHOD,
    test_size: int | float | None = None,
    source: str | None = None,
    note: str | None = None,
) -> Path:
    """Write ``name,split`` rows (sorted by name) and the sidecar ``<path>.meta.json``.

    The sidecar records seed, method, requested test size, resulting sizes, the number
    of names and :func:`names_digest`, so the split can be versioned with the results and
    checked later. Both files are written atomically. Returns the CSV path.
    """
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise ValueError(f"split files are CSV, got {path.name!r}")
    with atomic_path(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["name", "split"])
        for name in sorted(assignment):
            writer.writerow([name, assignment[name]])
    meta = {
        "file": path.name,
        "method": method,
        "seed": seed,
        "test_size": test_size,
        "sizes": split_sizes(assignment),
        "n": len(assignment),
        "names_sha256": names_digest(assignment),
        "source": source,
        "note": note,
    }
    with atomic_path(meta_path(path), "w", encoding="utf-8") as fh:
        fh.write(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return path


def read_split(path: str | Path) -> dict[str, str]:
    """Read a ``name,split`` CSV; when the sidecar exists, check its names hash."""
    path = Path(path)
    rows = read_table(path)
    assignment: dict[str, str] = {}
    for lineno, row in enumerate(rows, 2):
        if "name" not in row or "split" not in row:
            raise ManifestError(f"split file needs 'name' and 'split' columns, got {sorted(row)}",
                                path=path)
        name, part = str(row["name"]).strip(), str(row["split"] or "").strip()
        if not name or not part:
            raise ManifestError("empty name or split", line=lineno, sample=name or None,
                                path=path)
        if name in assignment:
            raise ManifestError("duplicate name", line=lineno, sample=name, path=path)
        assignment[name] = part
    sidecar = meta_path(path)
    if sidecar.is_file():
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        expected = meta.get("names_sha256")
        if expected and expected != names_digest(assignment):
            raise ManifestError(f"names do not match the sidecar {sidecar.name} (edited?)",
                                path=path)
    return assignment


def apply_split(
    samples: Iterable[Sample], assignment: Mapping[str, str], *, strict: bool = True
) -> list[Sample]:
    """Copies of ``samples`` with ``split`` set from ``assignment``.

    With ``strict`` (default) every sample must be assigned and every assigned name must
    be a sample; otherwise unassigned samples keep their split and extra names are ignored.
    """
    samples = list(samples)
    if strict:
        names = {s.name for s in samples}
        unassigned = [s.name for s in samples if s.name not in assignment]
        unknown = sorted(set(assignment) - names)
        if unassigned:
            raise ManifestError(f"{len(unassigned)} sample(s) not in the split, "
                                f"e.g. {unassigned[:3]}", sample=unassigned[0])
        if unknown:
            raise ManifestError(f"{len(unknown)} split name(s) are not samples, "
                                f"e.g. {unknown[:3]}", sample=unknown[0])
    return [dataclasses.replace(s, split=assignment.get(s.name, s.split)) for s in samples]
