"""Drive an OpenAI-compatible chat server with many concurrent, partly misbehaving clients.

:func:`run_load` sends a fixed number of requests from a bounded pool of client threads and
records what each one got. The mix (:data:`KINDS`) holds well-behaved clients and the ones
a server meets in the wild:

- ``normal``: a small chat request (retried on 429 after its ``Retry-After``);
- ``slow``: the same request trickled in three pieces with pauses (a slow uplink);
- ``disconnect``: a long request whose client hangs up after ``disconnect_after`` seconds
  (a client timeout); it expects no answer, the server should stop its generation;
- ``oversized``: a body one byte over the server's limit (expects 413);
- ``too_many_tokens``: ``max_tokens`` over the server's limit (expects 400).

:attr:`LoadResult.undocumented` lists the requests that got anything else (a crash, a
hang past the time limit, a status the kind does not allow). Used by the load test and by
``benchmarks/bench_serve_load.py``; ``server_pid`` samples the server's resident memory.
:func:`latency_percentiles` is shared with ``serve-demo``'s driver
(:mod:`affectgpt.report.web_load`).
"""

from __future__ import annotations

import json
import socket
import statistics
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from affectgpt.machine import ResidentMemory

KINDS = ("normal", "slow", "disconnect", "oversized", "too_many_tokens")
EXPECTED = {"normal": {200, 429}, "slow": {200, 429}, "disconnect": {None},
            "oversized": {413}, "too_many_tokens": {400}}
DEFAULT_MIX = ("normal",) * 11 + ("slow", "disconnect", "oversized", "too_many_tokens")
PROMPTS = ["Name one emotion.", "The person frowns and shouts. How do they feel?",
           "Say hello.", "A long day ends with good news. Describe the mood in a few words.",
           "Is a smile a sign of joy?", "Describe anger in three words."]


def percentile(ordered: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of the sorted values ``ordered``, nearest rank; None if empty."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def latency_percentiles(latencies: Iterable[float]) -> dict[str, float | None]:
    """``latency_p50``, ``latency_p90``, ``latency_p99`` and ``latency_mean`` (seconds; None
    where there are no values): the latency part of the load reports of both servers."""
    ordered = sorted(latencies)
    return {"latency_p50": percentile(ordered, 0.5), "latency_p90": percentile(ordered, 0.9),
            "latency_p99": percentile(ordered, 0.99),
            "latency_mean": statistics.fmean(ordered) if ordered else None}


@dataclass
class Outcome:
    """What one request got: HTTP ``status`` (None: no answer), the OpenAI error ``code``,
    ``latency`` in seconds (first byte sent to reply read), tokens and 429 retries."""

    index: int
    kind: str
    status: int | None = None
    code: str | None = None
    latency: float = 0.0
    completion_tokens: int = 0
    retries: int = 0
    detail: str = ""

    @property
    def documented(self) -> bool:
        """The answer is one this kind of request may get."""
        if self.status not in EXPECTED[self.kind]:
            return False
        if self.status == 200:
            return self.completion_tokens > 0
        return self.status is None or bool(self.code)  # an OpenAI error body


@dataclass
class LoadResult:
    """The outcomes of :func:`run_load`, its wall time and the server's peak resident memory
    during the load (:class:`~affectgpt.machine.ResidentMemory`; None without ``server_pid``)."""

    outcomes: list[Outcome]
    wall_seconds: float
    peak_rss_bytes: int | None = None
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def undocumented(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.documented]

    def summary(self) -> dict[str, Any]:
        """Counts by kind and status, throughput and latency percentiles of the replies."""
        ok = [o for o in self.outcomes if o.status == 200]
        tokens = sum(o.completion_tokens for o in ok)
        by_kind: dict[str, dict[str, int]] = {}
        for o in self.outcomes:
            by_kind.setdefault(o.kind, {}).setdefault(str(o.status), 0)
            by_kind[o.kind][str(o.status)] += 1
        return {"requests": len(self.outcomes), "replies": len(ok),
                "undocumented": len(self.undocumented), "wall_seconds": self.wall_seconds,
                "replies_per_second": len(ok) / self.wall_seconds if self.wall_seconds else 0,
                "completion_tokens_per_second":
                    tokens / self.wall_seconds if self.wall_seconds else 0,
                **latency_percentiles(o.latency for o in ok),
                "retries_429": sum(o.retries for o in self.outcomes),
                "by_kind": by_kind, "peak_rss_bytes": self.peak_rss_bytes}


def _http(host: str, port: int, path: str, body: bytes, *, timeout: float,
          pieces: int = 1, pause: float = 0.0, hang_up_after: float | None = None
          ) -> tuple[int | None, dict[str, str], bytes]:
    """One HTTP/1.1 POST over a fresh socket; (status, headers, body) or (None, {}, b"")
    when this client hangs up first."""
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(head)
        step = -(-len(body) // pieces)
        for i in range(0, len(body), step):
            if i and pause:
                time.sleep(pause)
            try:
                sock.sendall(body[i:i + step])
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered (413) without reading it all
        if hang_up_after is not None:
            time.sleep(hang_up_after)
            return None, {}, b""
        data = bytearray()
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            if not data:
                raise
    header, _, payload = bytes(data).partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":  # undo chunking
        out, rest = bytearray(), payload
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out += rest[:size]
            rest = rest[size + 2:]
        payload = bytes(out)
    return status, headers, payload


def run_load(base_url: str, model: str, *, clients: int = 32, requests: int = 64,
             max_tokens: int = 8, mix: tuple[str, ...] = DEFAULT_MIX,
             max_body_bytes: int = 1 << 20, max_tokens_limit: int = 4096,
             time_limit: float = 120.0, disconnect_after: float = 0.3,
             disconnect_max_tokens: int = 200, max_429_retries: int = 3,
             server_pid: int | None = None) -> LoadResult:
    """Send ``requests`` requests (kinds taken from ``mix`` in turn) from ``clients``
    threads to ``base_url`` (``http://host:port/v1``); every socket times out after
    ``time_limit`` seconds. ``max_body_bytes`` / ``max_tokens_limit`` are the server's limits,
    which the ``oversized`` and ``too_many_tokens`` requests exceed by one."""
    for kind in mix:
        if kind not in KINDS:
            raise ValueError(f"unknown request kind {kind!r}; choose from {KINDS}")
    url = urlsplit(base_url)
    if url.scheme != "http" or url.hostname is None:
        raise ValueError(f"run_load speaks plain http to a host: {base_url!r}")
    host, port, path = url.hostname, url.port or 80, url.path.rstrip("/") + "/chat/completions"

    def body_for(i: int, kind: str) -> bytes:
        tokens = {"too_many_tokens": max_tokens_limit + 1,
                  "disconnect": disconnect_max_tokens}.get(kind, max_tokens)
        body: dict[str, Any] = {"model": model, "max_tokens": tokens, "temperature": 0,
                                "messages": [{"role": "user",
                                              "content": PROMPTS[i % len(PROMPTS)]}]}
        raw = json.dumps(body).encode()
        if kind == "oversized":  # valid JSON padded past the limit with spaces
            raw += b" " * (max_body_bytes + 1 - len(raw))
        return raw

    def one(i: int) -> Outcome:
        kind = mix[i % len(mix)]
        outcome = Outcome(i, kind)
        body = body_for(i, kind)
        started = time.monotonic()
        try:
            while True:
                status, headers, payload = _http(
                    host, port, path, body, timeout=time_limit,
                    pieces=3 if kind == "slow" else 1, pause=0.3 if kind == "slow" else 0.0,
                    hang_up_after=disconnect_after if kind == "disconnect" else None)
                if status == 429 and outcome.retries < max_429_retries:
                    outcome.retries += 1
                    time.sleep(min(5.0, float(headers.get("retry-after") or 1)))
                    continue
                break
        except OSError as exc:  # refused, reset, timed out: not a documented answer
            outcome.status, outcome.detail = -1, f"{type(exc).__name__}: {exc}"
            outcome.latency = time.monotonic() - started
            return outcome
        outcome.latency = time.monotonic() - started
        outcome.status = status
        if status is None:
            return outcome
        try:
            data = json.loads(payload)
        except ValueError:
            outcome.detail = payload[:200].decode("utf-8", "replace")
            return outcome
        if status == 200:
            outcome.completion_tokens = int(data.get("usage", {}).get("completion_tokens", 0))
        else:
            error = data.get("error") if isinstance(data, dict) else None
            outcome.code = error.get("code") if isinstance(error, dict) else None
            outcome.detail = str(error)[:200]
        return outcome

    memory = ResidentMemory(server_pid) if server_pid is not None else nullcontext()
    started = time.monotonic()
    with memory, ThreadPoolExecutor(max(1, clients)) as pool:
        outcomes = list(pool.map(one, range(requests)))
    wall = time.monotonic() - started
    statuses: dict[str, int] = {}
    for o in outcomes:
        statuses[str(o.status)] = statuses.get(str(o.status), 0) + 1
    return LoadResult(outcomes, wall, getattr(memory, "peak_bytes", None), statuses)
