"""What machine the demo ran on: CPU model, its vector extensions, cores, library versions
(printed and stored with the results: timings mean little without them), and a sampler of
a process's resident memory for the load tests and benchmarks."""

from __future__ import annotations

import os
import platform
import re
import threading
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


class ResidentMemory:
    """The resident memory of process ``pid`` while a ``with`` block runs (Linux ``/proc``).

    On entry it reads the current RSS (:attr:`start_bytes`) and resets the kernel's peak
    (``VmHWM``, through ``/proc/PID/clear_refs``, allowed for one's own processes); a thread
    samples ``VmRSS`` every ``interval`` seconds. On exit :attr:`peak_bytes` is the largest
    sample or, where the reset worked, the kernel's peak, which also sees the moments
    between samples. Both stay None where ``/proc`` has no such process.
    """

    def __init__(self, pid: int, interval: float = 0.02):
        self.pid = pid
        self.interval = interval
        self.start_bytes: int | None = None
        self.peak_bytes: int | None = None
        self._status = Path(f"/proc/{pid}/status")
        self._peak_reset = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read(self, field: str = "VmRSS") -> int | None:
        """``field`` of ``/proc/PID/status`` in bytes (None: no such process or field)."""
        try:
            text = self._status.read_text()
        except OSError:
            return None
        found = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
        return int(found.group(1)) * 1024 if found else None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            value = self.read()
            if value is None:
                return
            self.peak_bytes = max(self.peak_bytes or 0, value)

    def __enter__(self) -> ResidentMemory:
        self.start_bytes = self.peak_bytes = self.read()
        if self.start_bytes is None:
            return self
        try:  # VmHWM := VmRSS, so that VmHWM is the peak of this block
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self._peak_reset = True
        except OSError:
            self._peak_reset = False
        self._thread = threading.Thread(target=self._sample, daemon=True,
                                        name=f"rss-sampler-{self.pid}")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._peak_reset and (hwm := self.read("VmHWM")) is not None:
            self.peak_bytes = max(self.peak_bytes or 0, hwm)
