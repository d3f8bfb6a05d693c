"""Drive ``affectgpt serve-demo`` with many concurrent, partly misbehaving clients.

:func:`run_demo_load` sends a fixed number of requests from a bounded pool of client
threads over raw sockets on loopback and records what each one got (:class:`DemoOutcome`).
The mix (:data:`KINDS`, taken in turn) holds the requests a public demo page meets:

- ``page``: ``GET /`` (expects the form);
- ``describe``: a good clip with a subtitle (a description, or 503/504 when busy);
- ``broken clip``: a truncated video (400 saying the file cannot be used);
- ``oversized``: a declared ``Content-Length`` over the upload limit (413);
- ``oversized chunked``: a chunked body growing past the limit (413 while it streams);
- ``slow``: a third of the body, then nothing (408 after ``--upload-seconds``);
- ``half-sent``: a third of the body, then the client leaves (no answer to read);
- ``foreign host``: a ``Host`` header the server does not answer to (403);
- ``negative length``: ``Content-Length: -1`` (400).

:data:`EXPECTED` holds the statuses each kind may get: the results and documented errors
of README "Security and limits". :attr:`DemoLoadResult.undocumented` lists the requests
that got anything else (a reset, a hang, a status the kind does not allow, a 200 without
its page). :class:`DemoProcess` starts the command itself; ``server_pid`` samples the
server's resident memory during the load. Used by ``tests/report/test_report_web_load.py``
and ``benchmarks/bench_serve_demo_load.py``; the latency percentiles are those of
``serve-llm``'s driver (:func:`affectgpt.llm.loadtest.latency_percentiles`).
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from affectgpt.llm.loadtest import latency_percentiles
from affectgpt.machine import ResidentMemory
from affectgpt.report.web import FORM_SLACK

#: the statuses each kind of request may get (None: the client leaves, nothing to read)
EXPECTED: dict[str, frozenset[int | None]] = {
    "page": frozenset({200}),
    "describe": frozenset({200, 503, 504}),
    "broken clip": frozenset({400, 503}),
    "oversized": frozenset({413, 503}),
    "oversized chunked": frozenset({413, 503}),
    "slow": frozenset({408, 503}),
    "half-sent": frozenset({None}),
    "foreign host": frozenset({403}),
    "negative length": frozenset({400}),
}
KINDS = tuple(EXPECTED)
#: what a 200 page must hold to count as the answer its kind asked for
PAGE_MARKS = {"page": 'type="file"', "describe": 'id="description"'}
NO_ANSWER = -1  # status of a request that got no answer where one was due (reset, timeout)
STARTED_LINE = re.compile(r"serving the AffectGPT demo on (http://\S+)")


# --------------------------------------------------------------------------- HTTP


def request_head(url: str, method: str = "POST", path: str = "/describe", **headers: str) -> bytes:
    """An HTTP/1.1 request head for the server at ``url``; ``Host`` is its address unless
    given; ``Content_Type=...`` becomes ``Content-Type: ...``."""
    fields = {"Host": urlsplit(url).netloc, **{k.replace("_", "-"): v for k, v in headers.items()}}
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class ClientSocket(socket.socket):
    """A client socket that owns the buffered reader :func:`read_answer` reads it with, so
    that several answers on one connection are read in turn, and closing the socket closes
    the connection (a plain socket stays open while a ``makefile`` reader of it lives)."""

    def answers(self):
        """The socket's buffered reader (made on first use)."""
        if getattr(self, "_answers", None) is None:
            self._answers = self.makefile("rb")
        return self._answers

    def close(self) -> None:
        if getattr(self, "_answers", None) is not None:
            self._answers.close()
            self._answers = None
        super().close()


def connect(url: str, timeout: float = 10) -> ClientSocket:
    """A fresh TCP connection to the server at ``url`` with ``timeout`` on every operation."""
    parts = urlsplit(url)
    plain = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
    sock = ClientSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
    sock.settimeout(timeout)
    return sock


def read_answer(sock: socket.socket) -> tuple[int | None, dict[str, str], str]:
    """``(status, headers, body)`` of the next answer on ``sock``; status None when none
    came in time or the connection closed without one. Answers on a :class:`ClientSocket`
    (see :func:`connect`) are read in turn; on another socket only one can be."""
    own = sock.answers() if isinstance(sock, ClientSocket) else None
    stream = own or sock.makefile("rb")
    try:
        status_line = stream.readline()
        if not status_line:
            return None, {}, ""
        headers = {}
        while (line := stream.readline().decode("latin-1").strip()):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = stream.read(int(headers.get("content-length", 0)))
    except (TimeoutError, ConnectionError):
        return None, {}, ""
    finally:
        if own is None:
            stream.close()
    return int(status_line.split()[1]), headers, body.decode("utf-8", "replace")


def multipart_form(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[str, bytes]:
    """``(content type, body)`` of a multipart/form-data form as a browser sends it;
    ``files`` maps a field name to ``(file name, content)``."""
    boundary = "----affectgpt" + secrets.token_hex(8)
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
             + value.encode() + b"\r\n" for name, value in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
              f'filename="{filename}"\r\nContent-Type: video/mp4\r\n\r\n'.encode() + data + b"\r\n"
              for name, (filename, data) in files.items()]
    return f"multipart/form-data; boundary={boundary}", b"".join(parts) + f"--{boundary}--\r\n".encode()


def describe_clip(url: str, clip: bytes, *, filename: str = "clip.mp4",
                  subtitle: str = "I can't believe it.", timeout: float = 30
                  ) -> tuple[int | None, dict[str, str], str]:
    """Upload ``clip`` to ``POST /describe``; ``(status, headers, page)`` of the answer."""
    content_type, body = multipart_form({"subtitle": subtitle}, {"clip": (filename, clip)})
    with connect(url, timeout) as sock:
        sock.sendall(request_head(url, Content_Type=content_type,
                                  Content_Length=str(len(body))) + body)
        return read_answer(sock)


def _send_until_refused(sock: socket.socket, data: bytes | Sequence[bytes]) -> None:
    """Send ``data`` (or its pieces); a server that answered early and closed ends it."""
    try:
        for piece in ([data] if isinstance(data, bytes) else data):
            sock.sendall(piece)
    except ConnectionError:  # answered and closed early: the answer may still be read
        pass


# --------------------------------------------------------------------------- load


@dataclass
class DemoOutcome:
    """What one request got: HTTP ``status`` (None: the client left without reading;
    :data:`NO_ANSWER`: none came), ``latency`` in seconds (connecting to answer read),
    whether a 200 page held what its kind asked for (``page_ok``), and a ``detail``."""

    index: int
    kind: str
    status: int | None = None
    latency: float = 0.0
    page_ok: bool = False
    detail: str = ""

    @property
    def documented(self) -> bool:
        """The answer is one this kind of request may get (a 200 with its page)."""
        if self.status not in EXPECTED[self.kind]:
            return False
        return self.status != 200 or self.page_ok

    @property
    def described(self) -> bool:
        """A clip was described: a ``describe`` answered with a description page."""
        return self.kind == "describe" and self.status == 200 and self.page_ok


@dataclass
class DemoLoadResult:
    """The outcomes of :func:`run_demo_load`, its wall time, whether it ran out of time,
    and the server's resident memory before and at its peak during the load (bytes; None
    without ``server_pid``)."""

    outcomes: list[DemoOutcome]
    wall_seconds: float
    time_limit_hit: bool = False
    rss_start_bytes: int | None = None
    peak_rss_bytes: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def undocumented(self) -> list[DemoOutcome]:
        return [o for o in self.outcomes if not o.documented]

    @property
    def described(self) -> int:
        return sum(o.described for o in self.outcomes)

    @property
    def rss_growth_bytes(self) -> int | None:
        """Peak resident memory during the load over the resident memory before it."""
        if self.peak_rss_bytes is None or self.rss_start_bytes is None:
            return None
        return self.peak_rss_bytes - self.rss_start_bytes

    def counts(self) -> dict[tuple[str, int | None], int]:
        """How many requests of each kind got each status."""
        found: dict[tuple[str, int | None], int] = {}
        for o in self.outcomes:
            found[(o.kind, o.status)] = found.get((o.kind, o.status), 0) + 1
        return found

    def summary(self) -> dict[str, Any]:
        """Counts, throughput (requests/s, described clips/s), latency percentiles of the
        answers overall and per kind, undocumented answers and memory, JSON-ready."""
        wall = self.wall_seconds
        answered = [o for o in self.outcomes if o.status is not None and o.status != NO_ANSWER]
        by_kind: dict[str, Any] = {}
        for kind in dict.fromkeys(o.kind for o in self.outcomes):
            mine = [o for o in self.outcomes if o.kind == kind]
            statuses: dict[str, int] = {}
            for o in mine:
                statuses[str(o.status)] = statuses.get(str(o.status), 0) + 1
            by_kind[kind] = {"requests": len(mine), "statuses": statuses,
                             "undocumented": sum(not o.documented for o in mine),
                             **latency_percentiles(o.latency for o in mine)}
        return {"requests": len(self.outcomes), "answered": len(answered),
                "documented": len(self.outcomes) - len(self.undocumented),
                "undocumented": len(self.undocumented),
                "undocumented_examples": [
                    {"kind": o.kind, "status": o.status, "detail": o.detail}
                    for o in self.undocumented[:10]],
                "described": self.described, "wall_seconds": wall,
                "time_limit_hit": self.time_limit_hit,
                "requests_per_second": len(self.outcomes) / wall if wall else 0.0,
                "described_per_second": self.described / wall if wall else 0.0,
                **latency_percentiles(o.latency for o in answered),
                "by_kind": by_kind, "rss_start_bytes": self.rss_start_bytes,
                "peak_rss_bytes": self.peak_rss_bytes, "rss_growth_bytes": self.rss_growth_bytes,
                "settings": self.settings}


def _send(kind: str, url: str, clip: bytes, broken: bytes, max_upload_bytes: int,
          timeout: float) -> tuple[int | None, str]:
    """Send one request of ``kind``: ``(status, page)`` of the answer (None: not read)."""
    if kind == "describe":
        status, _, page = describe_clip(url, clip, timeout=timeout)
        return status, page
    if kind == "broken clip":
        status, _, page = describe_clip(url, broken, filename="broken.mp4", timeout=timeout)
        return status, page
    with connect(url, timeout) as sock:
        if kind in ("page", "foreign host"):
            host = {"Host": "rebound.example"} if kind == "foreign host" else {}
            sock.sendall(request_head(url, method="GET", path="/", **host))
        elif kind == "negative length":
            sock.sendall(request_head(url, Content_Type="multipart/form-data; boundary=x",
                                      Content_Length="-1") + b"\0" * 4096)
        elif kind == "oversized":  # declared over the limit: refused before the body
            filler = b"\0" * (max_upload_bytes + FORM_SLACK + max_upload_bytes // 2)
            content_type, body = multipart_form({}, {"clip": ("big.mp4", filler)})
            sock.sendall(request_head(url, Content_Type=content_type,
                                      Content_Length=str(len(body))))
            _send_until_refused(sock, body)
        elif kind == "oversized chunked":  # no length: cut off while it streams
            filler = b"\0" * (2 * max_upload_bytes + FORM_SLACK)
            content_type, body = multipart_form({}, {"clip": ("big.mp4", filler)})
            sock.sendall(request_head(url, Content_Type=content_type, Transfer_Encoding="chunked"))
            pieces = [b"%x\r\n%s\r\n" % (len(body[i:i + 65536]), body[i:i + 65536])
                      for i in range(0, len(body), 65536)]
            _send_until_refused(sock, [*pieces, b"0\r\n\r\n"])
        elif kind in ("slow", "half-sent"):
            content_type, body = multipart_form({}, {"clip": ("clip.mp4", clip)})
            sock.sendall(request_head(url, Content_Type=content_type,
                                      Content_Length=str(len(body))) + body[:len(body) // 3])
            if kind == "half-sent":
                return None, ""  # leave without the rest
        else:
            raise ValueError(f"unknown request kind {kind!r}; choose from {KINDS}")
        status, _, page = read_answer(sock)
        return status, page


def run_demo_load(url: str, clip: bytes, broken_clip: bytes, *, clients: int = 24,
                  requests: int = 120, mix: Sequence[str] = KINDS,
                  max_upload_bytes: int = 1 << 20, request_timeout: float = 30.0,
                  time_limit: float = 120.0, server_pid: int | None = None) -> DemoLoadResult:
    """Send ``requests`` requests (kinds taken from ``mix`` in turn) from ``clients``
    threads to the demo at ``url``; ``clip`` is a video the server can describe,
    ``broken_clip`` one it cannot read, ``max_upload_bytes`` the server's
    ``--max-upload-mb`` (the oversized requests exceed it with the form's slack).

    Each socket times out after ``request_timeout`` seconds, or at the end of
    ``time_limit`` for the whole load: requests still waiting to start then are recorded as
    unanswered (:data:`NO_ANSWER`, undocumented) and :attr:`DemoLoadResult.time_limit_hit`
    is set. With ``server_pid``, the server's resident memory is sampled during the load."""
    for kind in mix:
        if kind not in EXPECTED:
            raise ValueError(f"unknown request kind {kind!r}; choose from {KINDS}")
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"run_demo_load speaks plain http to a host: {url!r}")
    if clients < 1 or requests < 0 or not mix:
        raise ValueError("run_demo_load needs clients >= 1, requests >= 0 and a mix")
    started = time.monotonic()
    deadline = started + time_limit

    def one(index: int) -> DemoOutcome:
        outcome = DemoOutcome(index, mix[index % len(mix)])
        left = deadline - time.monotonic()
        if left <= 0:
            outcome.status, outcome.detail = NO_ANSWER, "not sent: the time limit was over"
            return outcome
        sent = time.monotonic()
        try:
            status, page = _send(outcome.kind, url, clip, broken_clip, max_upload_bytes,
                                 min(request_timeout, left))
        except OSError as exc:  # refused, reset, timed out: not a documented answer
            status, page = NO_ANSWER, ""
            outcome.detail = f"{type(exc).__name__}: {exc}"
        outcome.latency = time.monotonic() - sent
        if status is None and outcome.kind != "half-sent":
            status, outcome.detail = NO_ANSWER, outcome.detail or "no answer"
        outcome.status = status
        mark = PAGE_MARKS.get(outcome.kind)
        outcome.page_ok = status == 200 and (mark is None or mark in page)
        if status not in EXPECTED[outcome.kind] and not outcome.detail:
            outcome.detail = re.sub(r"\s+", " ", page)[-200:]
        return outcome

    memory = ResidentMemory(server_pid) if server_pid is not None else nullcontext()
    with memory, ThreadPoolExecutor(clients) as pool:
        outcomes = list(pool.map(one, range(requests)))
    wall = time.monotonic() - started
    return DemoLoadResult(
        outcomes, wall, time_limit_hit=any(o.detail.startswith("not sent") for o in outcomes),
        rss_start_bytes=getattr(memory, "start_bytes", None),
        peak_rss_bytes=getattr(memory, "peak_bytes", None),
        settings={"clients": clients, "requests": requests, "mix": list(mix),
                  "max_upload_bytes": max_upload_bytes, "request_timeout": request_timeout,
                  "time_limit": time_limit})


# --------------------------------------------------------------------------- the command


class DemoProcess:
    """``affectgpt serve-demo ARGS --port 0`` in a subprocess on loopback, for load tests.

    ``start()`` waits for the line that names its URL (:attr:`url`); :attr:`pid` is the
    server's process id. Its temporary directory (uploads) is ``tmp``, its stderr (the
    server log) ``tmp/server.log``. ``stop()`` sends SIGTERM (the command deletes its
    uploads) and returns the exit status. A context manager.
    """

    def __init__(self, args: Sequence[str], tmp: str | Path, *, start_timeout: float = 300.0):
        self.args = [str(a) for a in args]
        self.tmp = Path(tmp)
        self.start_timeout = start_timeout
        self.url = ""
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the demo server is not started")
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.tmp / "server.log"

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self) -> DemoProcess:
        """Start the command; RuntimeError (with the end of its log) if it serves nothing
        within ``start_timeout`` seconds."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        cmd = [sys.executable, "-m", "affectgpt.cli", "serve-demo", *self.args,
               "--host", "127.0.0.1", "--port", "0"]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log,
                                        text=True, env={**os.environ, "TMPDIR": str(self.tmp)})
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.process.stdout],
                         daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        while not self.url and time.monotonic() < deadline and self.process.poll() is None:
            try:
                found = STARTED_LINE.search(lines.get(timeout=1))
            except queue.Empty:
                continue
            self.url = found.group(1) if found else ""
        if not self.url:
            self.stop(timeout=10)
            raise RuntimeError("serve-demo did not start:\n" + self.log_tail())
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` s; the exit status (None: never started)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode

    def __enter__(self) -> DemoProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
