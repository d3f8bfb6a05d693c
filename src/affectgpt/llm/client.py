"""A small OpenAI-compatible chat-completions client on ``httpx`` (no SDK needed).

- Retries connect errors, timeouts, HTTP 429 and 5xx with exponential backoff and jitter,
  honouring ``Retry-After``; any other 4xx fails at once with :class:`LLMError`.
- Optional on-disk :class:`~affectgpt.llm.cache.ResponseCache`: a cached request is
  answered without a server call (``ChatReply.cached`` is True).
- :meth:`ChatClient.chat_many` runs requests on a bounded thread pool, keeps the input
  order and returns an exception object for an item that failed instead of raising.
- :attr:`ChatClient.calls` counts HTTP requests sent (retries included), so a fully
  cached rerun can be checked to make none.
- The API key goes only to an ``https`` endpoint or a loopback one: sending it in clear
  text to another host needs ``allow_insecure_key=True`` (the CLI's
  ``--allow-insecure-api-key``), else :class:`InsecureAPIKeyError`. The key never appears
  in an error message (a server echoing it is redacted) and :func:`redact_url` keeps
  credentials in a URL out of messages and stored configs.
- Against an ``affectgpt serve-llm`` (:class:`ServerSpeedTimeout`; automatic for a server
  that :class:`~affectgpt.llm.server.LocalModelServer` started in this process) the
  per-request timeout follows the server's measured decoding speed and queue, so a slow
  or busy machine makes requests slower, never endlessly retried.
"""

from __future__ import annotations

import email.utils
import ipaddress
import math
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from affectgpt.llm.cache import ResponseCache, request_key

Message = Mapping[str, Any]
Messages = Sequence[Message]

RETRY_STATUS = frozenset({429})  # plus every 5xx


class LLMError(RuntimeError):
    """A chat request that failed for good (after retries, or at once for a client error).

    ``status`` is the last HTTP status (None for a connection error or timeout), ``body``
    an excerpt of the last response body, ``attempts`` the number of requests sent.
    """

    def __init__(self, message: str, *, status: int | None = None, body: str = "",
                 attempts: int = 0, url: str = ""):
        super().__init__(message)
        self.status = status
        self.body = body
        self.attempts = attempts
        self.url = url


class InsecureAPIKeyError(LLMError):
    """An API key would travel in clear text (plain ``http`` to a host that is not loopback);
    raised when the client is made, before anything is sent."""


REDACTED = "[redacted]"


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact_url(url: str) -> str:
    """``url`` without secrets: a user name or password (``https://user:key@host``) and the
    values of query parameters (``?api-key=...``) become ``[redacted]``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        query = urlencode([(k, REDACTED) for k, _ in parse_qsl(query, keep_blank_values=True)],
                          safe="[]")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# base URLs of `affectgpt serve-llm` servers this process started (LocalModelServer): their
# clients time requests by the server's measured speed unless told otherwise
_SPEED_REPORTING_SERVERS: set[str] = set()


def register_speed_reporting_server(base_url: str) -> None:
    """Mark ``base_url`` as an ``affectgpt serve-llm`` whose ``/stats`` clients may read
    (a :class:`ChatClient` for it then uses :class:`ServerSpeedTimeout` by default)."""
    _SPEED_REPORTING_SERVERS.add(base_url.rstrip("/"))


def unregister_speed_reporting_server(base_url: str) -> None:
    _SPEED_REPORTING_SERVERS.discard(base_url.rstrip("/"))


class ServerSpeedTimeout:
    """Per-request timeouts from an ``affectgpt serve-llm`` server's measured speed.

    ``timeout = max(floor, margin + safety * rounds * (max_tokens * seconds_per_step +
    max_batch * prompt_tokens * seconds_per_prompt_token))``, where ``seconds_per_step`` is
    the server's smoothed time of one decoding step, ``seconds_per_prompt_token`` its
    prefill cost (the batch's other rows may be prefilled beside this one) and
    ``rounds = 1 + (queued + active) // max_batch`` counts the batches to wait for (from
    ``GET {base_url}/stats``, read at most every ``refresh`` seconds). Before the server
    has measured anything, or when its stats cannot be read, the timeout is ``floor``.
    """

    def __init__(self, base_url: str, floor: float, *, safety: float = 3.0,
                 margin: float = 10.0, refresh: float = 2.0):
        self.stats_url = base_url.rstrip("/") + "/stats"
        self.floor, self.safety, self.margin, self.refresh = floor, safety, margin, refresh
        self._stats: dict[str, Any] | None = None
        self._read_at = -math.inf
        self._lock = threading.Lock()

    def stats(self) -> dict[str, Any] | None:
        """The server's latest stats (cached for ``refresh`` seconds), None if unreadable."""
        with self._lock:
            if time.monotonic() - self._read_at >= self.refresh:
                self._read_at = time.monotonic()
                try:
                    response = httpx.get(self.stats_url, timeout=5.0, trust_env=False)
                    data = response.json() if response.status_code == 200 else None
                    self._stats = data if isinstance(data, dict) else None
                except (httpx.HTTPError, ValueError):
                    self._stats = None
            return self._stats

    def __call__(self, max_tokens: int, prompt_tokens: int = 0) -> float:
        stats = self.stats() or {}
        step = stats.get("seconds_per_step")
        if not isinstance(step, (int, float)) or step <= 0:
            return self.floor
        prefill = stats.get("seconds_per_prompt_token")
        prefill = prefill if isinstance(prefill, (int, float)) and prefill > 0 else 0.0
        slots = max(1, int(stats.get("max_batch") or 1))
        busy = int(stats.get("queued") or 0) + int(stats.get("active") or 0)
        rounds = 1 + busy // slots
        work = max_tokens * step + slots * prompt_tokens * prefill
        return max(self.floor, self.margin + self.safety * rounds * work)


@dataclass
class Generation:
    """One model reply: text, token usage (prompt/completion/total) and finish reason."""

    text: str
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str | None = None
    cached: bool = False


@dataclass
class ChatReply:
    text: str
    usage: dict = field(default_factory=dict)
    cached: bool = False
    finish_reason: str | None = None


def _excerpt(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class ChatClient:
    """Client of an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    ``base_url`` is the API root, e.g. ``https://api.openai.com/v1`` or a local
    ``http://127.0.0.1:8000/v1``. The API key is read from the environment variable
    named by ``api_key_env`` (when set and present; local servers need none); it is sent
    only over ``https`` or to a loopback host unless ``allow_insecure_key`` (else
    :class:`InsecureAPIKeyError`, raised here).

    ``timeout`` is the per-request timeout in seconds; ``adaptive_timeout`` makes it a
    floor and follows an ``affectgpt serve-llm`` server's measured speed
    (:class:`ServerSpeedTimeout`); None (default) turns that on exactly for the servers a
    :class:`~affectgpt.llm.server.LocalModelServer` of this process runs.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 1.0,
        concurrency: int = 4,
        cache: ResponseCache | None = None,
        *,
        max_wait: float = 60.0,
        allow_insecure_key: bool = False,
        adaptive_timeout: bool | None = None,
    ):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.concurrency = concurrency
        self.cache = cache
        self.shown_url = redact_url(self.url)  # what messages show
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env) if api_key_env else None
        parsed = httpx.URL(self.base_url)
        loopback = is_loopback_host(parsed.host)
        if key and parsed.scheme != "https" and not loopback and not allow_insecure_key:
            raise InsecureAPIKeyError(
                f"refusing to send the API key from ${api_key_env} in clear text to "
                f"{redact_url(self.base_url)} (not https, not loopback): use an https:// base "
                f"URL, name no key variable for a server that needs none (empty "
                f"--llm-api-key-env / api_key_env), or, if this network is trusted, allow it "
                f"explicitly: --allow-insecure-api-key (annotate: --set "
                f"STAGE.allow_insecure_api_key=true; Python: allow_insecure_key=True)")
        self._secrets = [key] if key else []
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if adaptive_timeout is None:
            adaptive_timeout = self.base_url in _SPEED_REPORTING_SERVERS
        self.timeout_for: Callable[[int, int], float] | None = (
            ServerSpeedTimeout(self.base_url, timeout) if adaptive_timeout else None)
        self._http = httpx.Client(
            headers=headers,
            trust_env=not loopback,  # never send a local server's traffic through a proxy
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._lock = threading.Lock()
        self.calls = 0  # HTTP requests sent, retries included
        self.cache_hits = 0
        self.sleep: Callable[[float], None] = time.sleep

    # ------------------------------------------------------------------ requests

    def _params(self, temperature: float, max_tokens: int, seed: int | None,
                extra: Mapping[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
        if seed is not None:
            params["seed"] = seed
        params.update(extra)
        return params

    def chat(
        self,
        messages: Messages,
        *,
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        prompt_version: str | None = None,
        **extra: Any,
    ) -> ChatReply:
        """Send one chat request (or answer it from the cache).

        ``prompt_version`` is not sent; it only enters the cache key, so a changed prompt
        template never replays replies made for the old one. ``extra`` fields are sent as
        they are (e.g. ``top_p``, ``stop``) and enter the cache key.
        """
        messages = [dict(m) for m in messages]
        params = self._params(temperature, max_tokens, seed, extra)
        key = None
        if self.cache is not None:
            key = request_key(self.model, messages, params, prompt_version)
            hit = self.cache.get(key)
            if hit is not None:
                with self._lock:
                    self.cache_hits += 1
                return ChatReply(hit["text"], hit["usage"], True, hit.get("finish_reason"))
        body = {"model": self.model, "messages": messages, "stream": False, **params}
        reply = self._post(body)
        if self.cache is not None and key is not None:
            self.cache.put(key, reply.text, reply.usage, finish_reason=reply.finish_reason,
                           model=self.model, prompt_version=prompt_version,
                           request={"messages": messages, "params": params})
        return reply

    def chat_many(
        self,
        batch: Sequence[Messages],
        *,
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        prompt_version: str | None = None,
        progress: bool = False,
        desc: str = "LLM",
        **extra: Any,
    ) -> list[ChatReply | Exception]:
        """Run :meth:`chat` over many message lists with at most ``concurrency`` in flight.

        The result keeps the input order; an item that failed holds its exception.
        """

        def one(messages: Messages) -> ChatReply | Exception:
            try:
                return self.chat(messages, temperature=temperature, max_tokens=max_tokens,
                                 seed=seed, prompt_version=prompt_version, **extra)
            except Exception as exc:  # one failure must not end the batch
                return exc

        return run_bounded(one, list(batch), self.concurrency, progress=progress, desc=desc,
                           unit="req")

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _request_timeout(self, body: Mapping[str, Any]) -> float:
        if self.timeout_for is None:
            return self.timeout
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens")) or 256
        chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", ()))
        return self.timeout_for(int(max_tokens), chars // 3)  # >= tokens for most text

    def _post(self, body: dict[str, Any]) -> ChatReply:
        attempts = 0
        url = self.shown_url
        while True:
            attempts += 1
            with self._lock:
                self.calls += 1
            wait: float | None = None
            timeout = self._request_timeout(body)
            try:
                response = self._http.post(self.url, json=body, timeout=httpx.Timeout(timeout))
            except httpx.TransportError as exc:  # connect errors, timeouts, broken reads
                detail = self._redact(f"{type(exc).__name__}: {exc}")
                if isinstance(exc, httpx.TimeoutException):
                    detail += f" (timeout {timeout:.1f} s)"
                failure = LLMError(
                    f"request to {url} failed after {attempts} attempt(s): {detail}",
                    attempts=attempts, url=url)
            else:
                status = response.status_code
                if status < 400:
                    return self._parse(response, attempts)
                text = self._redact(_excerpt(response.text))
                failure = LLMError(
                    f"HTTP {status} from {url} after {attempts} attempt(s): {text}",
                    status=status, body=text, attempts=attempts, url=url)
                if status not in RETRY_STATUS and status < 500:
                    raise LLMError(f"HTTP {status} from {url} (not retried): {text}",
                                   status=status, body=text, attempts=attempts, url=url)
                wait = parse_retry_after(response.headers.get("Retry-After"))
            if attempts > self.max_retries:
                raise failure
            if wait is None:
                delay = min(self.max_wait, self.backoff * 2 ** (attempts - 1))
                delay *= random.uniform(0.5, 1.0)  # jitter: spread out concurrent retries
            else:
                delay = min(self.max_wait, wait) + random.uniform(0, 0.1 * max(self.backoff, 0.01))
            self.sleep(delay)

    def _parse(self, response: httpx.Response, attempts: int) -> ChatReply:
        url, excerpt = self.shown_url, self._redact(_excerpt(response.text))
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise LLMError(
                f"unexpected reply from {url} (no choices[0].message.content): {excerpt}",
                status=response.status_code, body=excerpt, attempts=attempts, url=url) from None
        if not isinstance(text, str):
            raise LLMError(f"reply from {url} has no text content: {excerpt}",
                           status=response.status_code, body=excerpt, attempts=attempts, url=url)
        usage = data.get("usage") or {}
        return ChatReply(text, dict(usage) if isinstance(usage, dict) else {}, False,
                         choice.get("finish_reason"))

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ChatClient({redact_url(self.base_url)!r}, model={self.model!r})"


def run_bounded(fn: Callable[[Any], Any], items: Sequence[Any], workers: int, *,
                progress: bool = False, desc: str = "", unit: str = "it") -> list[Any]:
    """``[fn(x) for x in items]`` on at most ``workers`` threads, in input order, with an
    optional tqdm bar. ``fn`` should catch its own errors (an escaping one propagates)."""
    from tqdm.auto import tqdm

    results: list[Any] = [None] * len(items)
    with tqdm(total=len(items), desc=desc, disable=not progress, unit=unit) as bar:
        if workers <= 1 or len(items) <= 1:
            for i, item in enumerate(items):
                results[i] = fn(item)
                bar.update(1)
            return results
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update(1)
    return results


# ---------------------------------------------------------------------- validated requests

_PREFIXES = ("output", "answer", "result", "results", "groups", "grouping", "labels",
             "emotions", "emotional states", "list")


def clean_reply(text: str) -> str:
    """Strip the wrapping an LLM commonly puts around a list: code fences, a leading
    ``Output:``-like prefix, and prose before the first ``[`` / after the last ``]``."""
    text = text.strip()
    if "```" in text:
        parts = text.split("```")
        if len(parts) >= 3:  # the first fenced block
            block = parts[1]
            first, _, rest = block.partition("\n")
            # drop a language tag (```python)
            text = rest if first.strip().isalpha() and rest.strip() else block
        text = text.replace("```", "").strip()
    changed = True
    while changed:
        changed = False
        low = text.lower()
        for prefix in _PREFIXES:
            if low.startswith(prefix) and low[len(prefix):].lstrip()[:1] == ":":
                text = text[len(prefix):].lstrip()[1:].strip()
                changed = True
                break
    start, end = text.find("["), text.rfind("]")
    if start != -1 and end > start:
        text = text[start:end + 1]
    return text.strip()


def bracketed_reply(reply: str, what: str) -> str:
    """:func:`clean_reply`, then insist on a bracketed list; raise ValueError naming
    ``what`` was expected otherwise."""
    text = clean_reply(reply)
    if not text:
        raise ValueError("the reply is empty")
    if not text.startswith("["):
        raise ValueError(f"the reply is not {what}")
    return text


@dataclass
class Validated:
    """Outcome of :func:`ask_validated`: ``value`` when ``ok``, else ``reason``."""

    ok: bool
    value: Any = None
    reason: str | None = None
    last_reply: str | None = None
    attempts: int = 0
    usage: dict[str, int] = field(default_factory=dict)  # summed over the attempts
    finish_reason: str | None = None  # of the accepted reply


def add_usage(total: dict[str, int], usage: Mapping[str, Any]) -> None:
    """Add a reply's token counts (prompt/completion/total) to ``total`` in place."""
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = usage.get(key)
        if isinstance(value, int):
            total[key] = total.get(key, 0) + value


def ask_validated(
    client: ChatClient,
    messages: Messages,
    validate: Callable[[str], Any],
    correction: Callable[[str], str],
    *,
    max_attempts: int = 3,
    errors: tuple[type[Exception], ...] = (LLMError,),
    **chat_kwargs: Any,
) -> Validated:
    """Ask, validate the reply, and on an invalid one ask again with a corrective turn.

    ``client`` is anything with ``chat(messages, **chat_kwargs)`` returning a reply with
    ``text`` and ``usage`` (a :class:`ChatClient`, an annotation back-end).
    ``validate(reply_text)`` returns the parsed value or raises ``ValueError`` (its message
    is the reason). An invalid reply is answered by appending it as the assistant's turn
    and ``correction(reason)`` as a new user turn, up to ``max_attempts`` requests in all.
    Every attempt is a separate request (and cache entry), so a cached rerun replays the
    same conversation. A request that fails for good (one of ``errors``) ends the chain.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    conversation = [dict(m) for m in messages]
    last_reply: str | None = None
    usage: dict[str, int] = {}
    reason = "no attempt made"
    for attempt in range(1, max_attempts + 1):
        try:
            reply = client.chat(conversation, **chat_kwargs)
        except errors as exc:
            return Validated(False, reason=f"LLM request failed: {exc}", last_reply=last_reply,
                             attempts=attempt, usage=usage)
        add_usage(usage, reply.usage or {})
        last_reply = reply.text
        try:
            value = validate(reply.text)
        except ValueError as exc:
            reason = str(exc) or type(exc).__name__
            conversation += [{"role": "assistant", "content": reply.text},
                             {"role": "user", "content": correction(reason)}]
            continue
        return Validated(True, value=value, last_reply=last_reply, attempts=attempt, usage=usage,
                         finish_reason=getattr(reply, "finish_reason", None))
    return Validated(False, reason=f"invalid reply after {max_attempts} attempt(s): {reason}",
                     last_reply=last_reply, attempts=max_attempts, usage=usage)
