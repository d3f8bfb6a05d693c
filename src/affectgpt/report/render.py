"""Render a run's results into ``report.html`` (self-contained: inline CSS, no scripts, no
network) and ``report.md`` (the same content as Markdown).

Images live next to the reports: plots the trainer wrote are linked where they are (or
copied into ``report_files/`` when they lie outside the run folder); the renderer writes
its own (the per-epoch comparison plot and the described clip's frame strip) into
``report_files/``. Every piece of text from the results is escaped.

Modules: :mod:`~affectgpt.report.assets` (images, plots, environment),
:mod:`~affectgpt.report.html` and :mod:`~affectgpt.report.markdown` (the two renderings, from
the shared values of :mod:`~affectgpt.report.content`); this one writes both files.
"""


from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from affectgpt.io import atomic_write
from affectgpt.report.assets import ASSETS, ReportPage, collect_environment, frame_strip, jpeg_bytes
from affectgpt.report.html import CSS, esc, render_html
from affectgpt.report.markdown import md_escape, render_markdown
from affectgpt.report.schema import ReportData, as_report_data

HTML_NAME = "report.html"
MD_NAME = "report.md"


def write_report(run_dir: str | os.PathLike, results: ReportData | Mapping[str, Any]
                 ) -> tuple[Path, Path]:
    """Write ``run_dir/report.html`` and ``run_dir/report.md``.

    Args:
        run_dir: the run folder; relative paths in ``results`` are resolved against it.
        results: the results structure documented in :mod:`affectgpt.report.schema` (a
            JSON-able ``dict``, e.g. a run's ``results.json``, or a :class:`ReportData`).

    Returns:
        ``(html_path, md_path)``.

    Missing plots, a clip that cannot be decoded or a missing matplotlib do not stop the
    report: the place of the image says what is missing instead.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = as_report_data(results)
    page = ReportPage.build(run_dir, data)
    html_path = atomic_write(run_dir / HTML_NAME, render_html(data, page))
    md_path = atomic_write(run_dir / MD_NAME, render_markdown(data, page))
    return html_path, md_path


__all__ = ["ASSETS", "CSS", "HTML_NAME", "MD_NAME", "collect_environment", "esc", "frame_strip",
           "jpeg_bytes", "md_escape", "render_html", "render_markdown", "write_report"]
