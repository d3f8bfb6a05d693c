"""Run reports and the local web demo.

- :func:`write_report`: a run's results (the structure documented in
  :mod:`affectgpt.report.schema`) -> ``report.html`` (self-contained) and ``report.md``.
- :mod:`affectgpt.report.web`: ``affectgpt serve-demo``, a local page that describes an
  uploaded clip with a loaded model (FastAPI on uvicorn; limits in
  :mod:`affectgpt.report.web_guard`).
"""

from __future__ import annotations

from affectgpt.report.render import collect_environment, write_report
from affectgpt.report.schema import (
    Ablation,
    AblationRow,
    DescribedClip,
    EpochCurves,
    Figure,
    ReportData,
    ReportSchemaError,
    Series,
    StepTiming,
    SystemResult,
)

__all__ = [
    "Ablation",
    "AblationRow",
    "DescribedClip",
    "EpochCurves",
    "Figure",
    "ReportData",
    "ReportSchemaError",
    "Series",
    "StepTiming",
    "SystemResult",
    "collect_environment",
    "write_report",
]
