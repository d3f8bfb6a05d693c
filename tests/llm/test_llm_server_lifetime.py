"""The server that LocalModelServer starts dies with the process that started it, however
that process ends (SIGTERM, SIGKILL), through the Linux parent-death signal and, where that
is not set (a server started from a worker thread), through the pipe on its stdin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.server

PARENT = """
import sys, threading, time
from affectgpt.llm import LocalModelServer

servers = []

def start():
    servers.append(LocalModelServer(sys.argv[1], engine="affectgpt", startup_timeout=600).start())
    print(servers[0].process.pid, flush=True)

if sys.argv[2] == "thread":  # no parent-death signal: only the stdin pipe ends the server
    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
else:
    start()
time.sleep(3600)
"""


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for a reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_server_dies_with_its_parent(smollm2_dir):
    cases = {"sigterm": ("main", signal.SIGTERM), "sigkill": ("main", signal.SIGKILL),
             "sigkill-thread": ("thread", signal.SIGKILL)}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    parents = {name: subprocess.Popen([sys.executable, "-c", PARENT, str(smollm2_dir), where],
                                      stdout=subprocess.PIPE, text=True, env=env)
               for name, (where, _) in cases.items()}
    children: dict[str, int] = {}
    try:
        for name, parent in parents.items():  # started together: the loads overlap
            line = parent.stdout.readline()
            assert line.strip().isdigit(), f"{name}: the parent printed {line!r}"
            children[name] = int(line)
            assert _alive(children[name])
        for name, parent in parents.items():
            parent.send_signal(cases[name][1])
            parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in children.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert {name: _alive(pid) for name, pid in children.items()} == \
            dict.fromkeys(cases, False)
    finally:
        for parent in parents.values():
            if parent.poll() is None:
                parent.kill()
                parent.wait()
        for pid in children.values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
