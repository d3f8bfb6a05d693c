"""The EMER-Coarse annotation pipeline (AffectGPT paper, section 3) as a tool.

Unlabeled videos -> audio clues (audio MLLM) and video clues (video MLLM) -> one merged,
disambiguated description (text LLM, with the subtitle) -> English/Chinese translation ->
open-vocabulary labels -> optional filter; append-only, resumable, sharded, exported as a
training manifest and an EMER-Coarse-style CSV. ``affectgpt annotate --help`` for the CLI.

Python::

    from affectgpt.annotate import apply_overrides, export_dataset, load_config, run_annotation

    cfg = apply_overrides(load_config(), ["*.base_url=http://127.0.0.1:8000/v1"])
    run_annotation("semi.jsonl", "annot/", cfg, shard=(0, 4))
    export_dataset("annot/", manifest_out="coarse.jsonl", csv_out="emer-coarse.csv")
"""

from affectgpt.annotate.config import (
    STAGES,
    AnnotateConfig,
    AnnotateConfigError,
    StageConfig,
    apply_overrides,
    default_config,
    load_config,
)
from affectgpt.annotate.export import ExportSummary, export_dataset
from affectgpt.annotate.runner import (
    RunSummary,
    StageSummary,
    parse_shard,
    run_annotation,
    run_status,
    shard_of,
)
from affectgpt.annotate.store import JsonlStore, StoreError

__all__ = [
    "STAGES",
    "AnnotateConfig",
    "AnnotateConfigError",
    "ExportSummary",
    "JsonlStore",
    "RunSummary",
    "StageConfig",
    "StageSummary",
    "StoreError",
    "apply_overrides",
    "default_config",
    "export_dataset",
    "load_config",
    "parse_shard",
    "run_annotation",
    "run_status",
    "shard_of",
]
