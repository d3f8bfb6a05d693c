"""Datasets: one manifest schema, importers, seeded splits and a synthetic corpus.

- :mod:`affectgpt.data.manifest`: :class:`Sample`, :func:`read_manifest`,
  :func:`write_manifest` (JSONL or CSV).
- :mod:`affectgpt.data.asr`: :func:`transcribe_missing_subtitles` (empty subtitles from the
  speech, with Whisper; ``subtitle_source="asr"``).
- :mod:`affectgpt.data.importers`: EMER-Fine and plain video folders.
- :mod:`affectgpt.data.splits`: deterministic seeded train/test splits, written down.
- :mod:`affectgpt.data.synthetic`: real MP4 clips of talking faces with espeak-ng speech
  whose emotional cue sits in the face, the voice, the words or all three
  (imported lazily: it needs PyAV and Pillow).
- :mod:`affectgpt.data.collate`: :func:`collate_batch` (EmotionDataset items -> an AffectGPT
  batch with modality and position masks) and :class:`OptionalMedia` (imported lazily:
  they need torch).
"""

from affectgpt.data.asr import transcribe_missing_subtitles
from affectgpt.data.importers import import_emer_fine, import_video_folder
from affectgpt.data.manifest import (
    ManifestError,
    Sample,
    media_report,
    read_manifest,
    write_manifest,
)
from affectgpt.data.splits import (
    EMER_FINE_TEST_SIZE,
    EMER_FINE_TRAIN_SIZE,
    apply_split,
    emer_fine_split,
    read_split,
    seeded_split,
    write_split,
)

__all__ = [
    "EMER_FINE_TEST_SIZE",
    "EMER_FINE_TRAIN_SIZE",
    "ManifestError",
    "OptionalMedia",
    "Sample",
    "apply_split",
    "collate_batch",
    "emer_fine_split",
    "import_emer_fine",
    "import_video_folder",
    "make_synthetic",
    "make_synthetic_corpus",
    "media_report",
    "read_manifest",
    "read_split",
    "seeded_split",
    "transcribe_missing_subtitles",
    "write_manifest",
    "write_split",
]


def __getattr__(name: str):
    if name in ("make_synthetic", "make_synthetic_corpus"):
        from affectgpt.data import synthetic

        return getattr(synthetic, name)
    if name in ("collate_batch", "OptionalMedia"):
        import importlib

        return getattr(importlib.import_module("affectgpt.data.collate"), name)
    raise AttributeError(f"module 'affectgpt.data' has no attribute {name!r}")
