"""`affectgpt demo`: synthetic corpus -> annotation -> two-stage training -> evaluation ->
a described clip -> ``runs/demo-<time>/report.html`` (see :mod:`affectgpt.demo.pipeline`).

``affectgpt demo --metrics-only`` runs :mod:`affectgpt.demo.metrics` instead (seconds, no
model: what synonym grouping does to the set metric).
"""

from affectgpt.demo.config import DemoConfig, DemoConfigError, load_demo_config
from affectgpt.demo.pipeline import Demo, run_demo

__all__ = ["Demo", "DemoConfig", "DemoConfigError", "load_demo_config", "run_demo"]
