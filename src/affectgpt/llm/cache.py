"""An on-disk cache of LLM replies (SQLite, WAL mode).

The key of a request is the SHA-256 of the canonical JSON (sorted keys, no whitespace,
UTF-8) of ``{"model", "prompt_version", "messages", "params"}`` where ``params`` are the
decoding parameters sent (temperature, max_tokens, seed, any extra fields). Only
successful replies are stored, so a rerun replays them and asks the server only for
what is missing. One file may be shared by several threads and processes: every thread
of every process opens its own connection, writes are short transactions, and SQLite's
write-ahead log lets readers and the writer proceed together.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    prompt_version TEXT,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    usage TEXT NOT NULL,
    finish_reason TEXT,
    created REAL NOT NULL
)
"""


def canonical_json(value: Any) -> str:
    """Deterministic JSON text of ``value`` (sorted keys, compact, non-ASCII kept)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def request_key(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    prompt_version: str | None = None,
) -> str:
    """Cache key (hex SHA-256) of one chat request."""
    payload = {
        "model": model,
        "prompt_version": prompt_version,
        "messages": [dict(m) for m in messages],
        "params": dict(params),
    }
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


class ResponseCache:
    """SQLite-backed ``{request key: reply}`` store.

    ``get`` returns ``{"text": str, "usage": dict, "finish_reason": str | None}`` or None;
    ``put`` stores a reply, keeping the first one stored under a key (a replay never
    changes).
    """

    def __init__(self, path: str | os.PathLike, *, timeout: float = 60.0):
        self.path = Path(path).expanduser().resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[tuple[int, sqlite3.Connection]] = []
        conn = self._connect()  # create the schema and switch to WAL once, up front
        with conn:
            conn.execute(_SCHEMA)

    key = staticmethod(request_key)

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        pid = getattr(self._local, "pid", None)
        if conn is not None and pid == os.getpid():
            return conn
        # A new thread, or a forked child (a connection must not cross a fork).
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        self._local.conn, self._local.pid = conn, os.getpid()
        with self._lock:
            self._all.append((os.getpid(), conn))
        return conn

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._connect().execute(
            "SELECT text, usage, finish_reason FROM replies WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return {"text": row[0], "usage": json.loads(row[1]), "finish_reason": row[2]}

    def put(
        self,
        key: str,
        text: str,
        usage: Mapping[str, Any] | None = None,
        *,
        finish_reason: str | None = None,
        model: str = "",
        prompt_version: str | None = None,
        request: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(text, str):
            raise TypeError(f"reply text must be a string, got {type(text).__name__}")
        conn = self._connect()
        conn.execute(
            "INSERT OR IGNORE INTO replies (key, model, prompt_version, request, text, usage,"
            " finish_reason, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, model, prompt_version, canonical_json(dict(request or {})), text,
             canonical_json(dict(usage or {})), finish_reason, time.time()),
        )

    def __contains__(self, key: str) -> bool:
        return self._connect().execute(
            "SELECT 1 FROM replies WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        return self._connect().execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        """Close every connection this object opened (in any thread of this process)."""
        with self._lock:
            conns, self._all = self._all, []
        for pid, conn in conns:
            if pid != os.getpid():  # a parent's connection, inherited through fork
                continue
            try:
                conn.close()
            except sqlite3.ProgrammingError:
                pass
        self._local = threading.local()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"
