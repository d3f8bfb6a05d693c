"""What machine the demo ran on: CPU model, its vector extensions, cores, library versions
(printed and stored with the results: timings mean little without them)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

#: the vector / matrix extensions that decide CPU speed of torch kernels, in order
VECTOR_EXTENSIONS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni",
                     "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16",
                     "amx_int8", "asimd", "sve")


def cpu_info(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, Any]:
    """``{"cpu": model, "vector_extensions": "avx2 fma ...", "cores": n}`` (from
    ``/proc/cpuinfo`` where there is one, else :mod:`platform`)."""
    model, flags = "", set()
    path = Path(cpuinfo)
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "hardware", "cpu model") and not model:
                model = value.strip()
            elif key in ("flags", "features") and not flags:
                flags = set(value.split())
    present = [f for f in VECTOR_EXTENSIONS if f in flags]
    return {"cpu": model or platform.processor() or platform.machine(),
            "vector_extensions": " ".join(present) or "none found",
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count()}


def machine_info() -> dict[str, Any]:
    """:func:`cpu_info` plus torch's CPU kernel level, threads and versions."""
    info = cpu_info()
    info["python"] = platform.python_version()
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover - the demo needs torch anyway
        pass
    return info
