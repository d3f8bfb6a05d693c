"""A sharded on-disk cache of frozen-encoder features.

Frozen encoders give the same output for a clip at every training step, so the cache
runs them once per clip (the reference code recomputes them every step).

Layout of a cache folder::

    meta.json                  the encoder's fingerprint (name, weight hash, preprocessing,
                               package version) and the cache format version
    shard-00000.safetensors    one tensor per sample, keyed by the sample name
    shard-00001.safetensors    ...
    failures.jsonl             samples that could not be read or encoded, with the reason

Shards are written to a temporary file and renamed into place, so an interrupted run
never leaves a half-written shard behind; re-running skips every sample already in a
shard and retries the failed ones. A cache whose fingerprint differs from the encoder's
(other weights or preprocessing) is refused with the difference spelled out.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from affectgpt.io import atomic_write, read_jsonl

CACHE_FORMAT = 1
_SHARD = re.compile(r"shard-(\d{5})\.safetensors")


class FeatureCacheMismatch(RuntimeError):
    """The cache was built with another encoder, weights or preprocessing."""


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        if key == "affectgpt_version":
            continue
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: cache has {va!r}, encoder has {vb!r}")
    return out


class FeatureCache:
    """Read access to a cache folder (and shard writing for :func:`build_feature_cache`)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"no feature cache at {self.root} (meta.json missing)")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self._index: dict[str, Path] = {}
        for shard in self.shards():
            with safe_open(str(shard), framework="pt") as f:
                for key in f.keys():
                    self._index[key] = shard

    @property
    def fingerprint(self) -> dict:
        return self.meta["fingerprint"]

    @classmethod
    def open_for(cls, root: str | Path, fingerprint: dict, *, fresh: bool = False) -> FeatureCache:
        """Open (or create) the cache at ``root`` for an encoder with ``fingerprint``;
        refuse one built with a different fingerprint unless ``fresh`` (then start over)."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        meta_path = root / "meta.json"
        if fresh:
            for path in list(root.glob("shard-*.safetensors")) + [meta_path, root / "failures.jsonl"]:
                path.unlink(missing_ok=True)
        for stale in root.glob(".shard-*.tmp"):  # left by a run killed while writing
            stale.unlink()
        if meta_path.is_file():
            cache = cls(root)
            cache.check(fingerprint, hint="use another --out folder, or --fresh to rebuild it")
            return cache
        atomic_write(meta_path, json.dumps(
            {"format": CACHE_FORMAT, "fingerprint": fingerprint,
             "created": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1, sort_keys=True).encode())
        return cls(root)

    def shards(self) -> list[Path]:
        return sorted(p for p in self.root.glob("shard-*.safetensors") if _SHARD.fullmatch(p.name))

    @property
    def names(self) -> list[str]:
        return list(self._index)

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def __len__(self) -> int:
        return len(self._index)

    def get(self, name: str) -> torch.Tensor:
        """The cached features of one sample."""
        shard = self._index.get(name)
        if shard is None:
            raise KeyError(f"sample {name!r} is not in the feature cache at {self.root}")
        with safe_open(str(shard), framework="pt") as f:
            return f.get_tensor(name)

    def load_all(self) -> dict[str, torch.Tensor]:
        """Every cached tensor (for small caches and tests)."""
        out = {}
        for shard in self.shards():
            with safe_open(str(shard), framework="pt") as f:
                for key in f.keys():
                    out[key] = f.get_tensor(key)
        return out

    def check(self, fingerprint: dict, hint: str = "") -> None:
        """Raise :class:`FeatureCacheMismatch` (listing the differences, then ``hint``)
        unless the cache matches ``fingerprint``."""
        differences = _diff(self.fingerprint, fingerprint)
        if differences:
            raise FeatureCacheMismatch(f"the feature cache at {self.root} was built differently:\n  "
                                       + "\n  ".join(differences) + (f"\n{hint}" if hint else ""))

    def write_shard(self, features: dict[str, torch.Tensor]) -> Path:
        """Write one shard atomically and index it."""
        existing = [int(_SHARD.fullmatch(p.name).group(1)) for p in self.shards()]
        path = self.root / f"shard-{(max(existing) + 1 if existing else 0):05d}.safetensors"
        atomic_write(path, save({k: v.detach().contiguous().cpu() for k, v in features.items()},
                                metadata={"format": str(CACHE_FORMAT)}))
        for name in features:
            self._index[name] = path
        return path


@dataclass
class BuildSummary:
    total: int
    skipped: int
    encoded: int
    failed: int
    seconds: float


def build_feature_cache(
    names: Sequence[str],
    load: Callable[[str], torch.Tensor],
    encode: Callable[[torch.Tensor], torch.Tensor],
    fingerprint: dict,
    out: str | Path,
    *,
    workers: int = 2,
    shard_size: int = 64,
    fresh: bool = False,
    progress: bool = True,
    errors: tuple[type[BaseException], ...] = (Exception,),
) -> BuildSummary:
    """Encode every sample not yet cached and write shards of ``shard_size`` samples.

    ``load(name)`` decodes and preprocesses one sample (it runs in ``workers`` data-loader
    processes, so it must be picklable); ``encode(inputs)`` runs the frozen encoder on one
    sample's inputs. A sample whose ``load`` or ``encode`` raises one of ``errors`` is
    recorded in ``failures.jsonl`` and the run goes on.
    """
    from torch.utils.data import DataLoader, Dataset
    from tqdm import tqdm

    cache = FeatureCache.open_for(out, fingerprint, fresh=fresh)
    todo = [n for n in names if n not in cache]
    if len(set(names)) != len(names):
        raise ValueError("duplicate sample names")
    started = time.perf_counter()
    failures_path = Path(out) / "failures.jsonl"
    failures_path.write_text("", encoding="utf-8")

    class _Inputs(Dataset):
        def __len__(self):
            return len(todo)

        def __getitem__(self, i):
            name = todo[i]
            try:
                return name, load(name), None
            except errors as exc:  # recorded per sample, never replaced by another sample
                return name, None, failure_record(name, exc)

    loader = DataLoader(_Inputs(), batch_size=None, shuffle=False, num_workers=workers if todo else 0,
                        persistent_workers=False)
    pending: dict[str, torch.Tensor] = {}
    encoded = failed = 0
    with open(failures_path, "a", encoding="utf-8") as failures:
        for name, inputs, error in tqdm(loader, total=len(todo), desc="features", unit="clip",
                                        disable=not progress):
            if error is None:
                try:
                    pending[name] = encode(inputs)
                except errors as exc:
                    error = failure_record(name, exc)
            if error is not None:
                failed += 1
                failures.write(json.dumps(error, ensure_ascii=False) + "\n")
                failures.flush()
                continue
            encoded += 1
            if len(pending) >= shard_size:
                cache.write_shard(pending)
                pending = {}
        if pending:
            cache.write_shard(pending)
    return BuildSummary(len(names), len(names) - len(todo), encoded, failed, time.perf_counter() - started)


def failure_record(name: str, exc: BaseException) -> dict:
    """A ``failures.jsonl`` row: ``name``, ``reason`` (for people), ``error`` (the exception
    type) and ``missing_stream`` (``"audio"``/``"video"`` when the file simply has no such
    stream, which is a sample without that modality rather than a bad file; else None)."""
    from affectgpt.media import NoAudioStreamError, NoVideoStreamError

    missing = ("audio" if isinstance(exc, NoAudioStreamError)
               else "video" if isinstance(exc, NoVideoStreamError) else None)
    return {"name": name, "reason": f"{type(exc).__name__}: {exc}",
            "error": type(exc).__name__, "missing_stream": missing}


def iter_failures(root: str | Path) -> Iterable[dict]:
    """The rows :func:`failure_record` wrote for the cache at ``root``."""
    return read_jsonl(Path(root) / "failures.jsonl")
