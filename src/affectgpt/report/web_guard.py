"""An ASGI middleware that puts the limits of a small local web app in one place.

:class:`RequestGuard` sits in front of the app (``serve-demo``) and, before the app sees a
request:

- answers 403 when the ``Host`` header names neither an IP address, ``localhost`` nor one
  of the allowed names (a page on loopback reached through a rebound DNS name), and when a
  request that changes something (not GET/HEAD/OPTIONS) comes from another site (its
  ``Origin`` is not this server, or ``Sec-Fetch-Site`` says ``cross-site``);
- answers 503 (with ``Retry-After``) when ``max_active`` requests with a body are already
  being received or worked on;
- counts the bytes of the body as they arrive and answers 413 as soon as they pass
  ``max_body_bytes``, whatever ``Content-Length`` said (or if the body is chunked), and 408
  when the body has not arrived within ``body_seconds``; the app then reads an
  ``http.disconnect`` and its own answer is dropped;
- adds the security headers to every answer (the app's and its own).

The HTTP parser in front (uvicorn's h11) already refuses a malformed or negative
``Content-Length`` with 400 and bounds the size of the request head.

A slot taken for a request is given back when the app returns, unless the app handed it
to work still running after the answer (:meth:`Slot.keep_until`): a request answered
with a timeout still counts until its thread is done.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SLOT_KEY = "affectgpt.slot"  # where the app finds its Slot in the ASGI scope
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", b"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                                 b"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"same-origin"),  # "no-referrer" would make browsers send Origin: null
)


class Slot:
    """One request's share of the server's ``max_active``; released once."""

    def __init__(self, slots: Slots):
        self._slots = slots
        self._released = False
        self.kept = False

    def release(self) -> None:
        with self._slots.lock:
            if not self._released:
                self._released = True
                self._slots.active -= 1

    def keep_until(self, future: Future | asyncio.Future) -> None:
        """Hold the slot until ``future`` (work answered or not) is done; its exception, if
        nobody awaits it any more, is logged rather than lost."""
        self.kept = True

        def done(f) -> None:
            if not f.cancelled() and f.exception() is not None:
                logger.debug("work finished after its request: %r", f.exception())
            self.release()

        future.add_done_callback(done)


@dataclass
class Slots:
    """A count of requests at work, bounded by ``limit``."""

    limit: int
    active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self) -> Slot | None:
        """A slot, or None when ``limit`` are taken."""
        with self.lock:
            if self.active >= self.limit:
                return None
            self.active += 1
        return Slot(self)


def host_name(host_header: str) -> str:
    """The host part of a ``Host`` header (port and IPv6 brackets removed), lower case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host_header: str | None, allowed: Iterable[str]) -> bool:
    """Whether a request naming ``host_header`` may be answered: an IP address (no DNS name
    to rebind), ``localhost``, or a name in ``allowed`` (``*`` allows any)."""
    if not host_header:
        return False
    names = {name.lower() for name in allowed}
    host = host_name(host_header)
    if "*" in names or host == "localhost" or host in names:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def same_site(method: str, host_header: str, origin: str | None, fetch_site: str | None) -> bool:
    """Whether a request comes from the page this server serves (or from no page at all:
    a command-line client sends neither ``Origin`` nor ``Sec-Fetch-Site``)."""
    if method in SAFE_METHODS:
        return True
    if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
        return False
    if origin is None:
        return True
    parts = urlsplit(origin.strip())
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.strip().lower()


@dataclass(frozen=True)
class GuardPolicy:
    """What :class:`RequestGuard` enforces.

    Args:
        max_body_bytes: the largest request body.
        body_seconds: time allowed for a whole body to arrive.
        max_active: requests with a body received or worked on at once.
        allowed_hosts: ``Host`` names answered besides IP addresses and ``localhost``
            (``*``: any).
        too_large: the message of a 413 answer.
    """

    max_body_bytes: int
    body_seconds: float
    max_active: int
    allowed_hosts: frozenset[str] = frozenset()
    too_large: str = "the request is too large"

    def __post_init__(self):
        if self.max_body_bytes < 1 or self.body_seconds <= 0 or self.max_active < 1:
            raise ValueError("max_body_bytes, body_seconds and max_active must be positive")


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class RequestGuard:
    """ASGI middleware enforcing a :class:`GuardPolicy` (see the module's documentation).

    Args:
        app: the ASGI app behind the guard.
        policy: the limits.
        error_page: ``(status, message) -> HTML`` for the guard's own answers; the message
            never holds anything from the request.
    """

    def __init__(self, app: ASGIApp, policy: GuardPolicy,
                 error_page: Callable[[int, str], str]):
        self.app = app
        self.policy = policy
        self.error_page = error_page
        self.slots = Slots(policy.max_active)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        answered = False

        async def send_secured(message: Message) -> None:
            if answered:  # the guard answered already: drop the app's late answer
                return
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    h for h in SECURITY_HEADERS if h[0] not in present]
            await send(message)

        async def refuse(status: int, message: str, extra: tuple = ()) -> None:
            nonlocal answered
            logger.info("%s %s refused with %d: %s", scope["method"], scope["path"], status, message)
            body = self.error_page(status, message).encode("utf-8")
            await send_secured({"type": "http.response.start", "status": status, "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode()), *extra]})
            await send_secured({"type": "http.response.body", "body": body})
            answered = True

        method = scope["method"]
        host = headers.get("host")
        if not host_allowed(host, self.policy.allowed_hosts):
            await refuse(403, "this server does not answer to that host name; open it by its "
                              "IP address or localhost, or start it with --allowed-host NAME")
            return
        if not same_site(method, host, headers.get("origin"), headers.get("sec-fetch-site")):
            await refuse(403, "requests from other sites are refused")
            return
        if method in SAFE_METHODS:
            await self.app(scope, receive, send_secured)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.policy.max_body_bytes:
            await refuse(413, self.policy.too_large)
            return
        slot = self.slots.take()
        if slot is None:
            await refuse(503, f"the server is busy ({self.policy.max_active} requests at work); "
                              "try again in a moment", ((b"retry-after", b"5"),))
            return
        try:
            scope[SLOT_KEY] = slot
            received = 0
            more_body = True
            deadline = time.monotonic() + self.policy.body_seconds

            async def receive_bounded() -> Message:
                nonlocal received, more_body
                if answered:
                    return {"type": "http.disconnect"}
                if not more_body:
                    return await receive()
                try:
                    try:
                        message = await asyncio.wait_for(receive(),
                                                         max(deadline - time.monotonic(), 0.001))
                    except asyncio.TimeoutError:
                        raise _Refused(408, "the upload took longer than "
                                            f"{self.policy.body_seconds:g} s") from None
                    if message["type"] == "http.request":
                        received += len(message.get("body", b""))
                        more_body = message.get("more_body", False)
                        if received > self.policy.max_body_bytes:
                            raise _Refused(413, self.policy.too_large)
                    return message
                except _Refused as refused:
                    await refuse(refused.status, refused.message)
                    return {"type": "http.disconnect"}

            await self.app(scope, receive_bounded, send_secured)
        finally:
            if not slot.kept:
                slot.release()


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (the first of repeated ones)."""
    out: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        out.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


__all__ = ["GuardPolicy", "RequestGuard", "SECURITY_HEADERS", "SLOT_KEY", "Slot", "Slots",
           "host_allowed", "host_name", "same_site"]
