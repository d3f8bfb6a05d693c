"""ResponseCache: stable keys, persistence, first writer wins, threads and processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

from affectgpt.llm.cache import ResponseCache, request_key

MSGS = [{"role": "user", "content": "Gruppiere: ['fröhlich', 'glücklich']"}]


def test_key_is_canonical():
    a = request_key("m", MSGS, {"temperature": 0.0, "max_tokens": 5}, "v1")
    b = request_key("m", [{"content": MSGS[0]["content"], "role": "user"}],
                    {"max_tokens": 5, "temperature": 0.0}, "v1")
    assert a == b and len(a) == 64
    assert a != request_key("m", MSGS, {"temperature": 0.0, "max_tokens": 5}, "v2")
    assert a != request_key("m2", MSGS, {"temperature": 0.0, "max_tokens": 5}, "v1")
    assert a != request_key("m", MSGS, {"temperature": 0.0, "max_tokens": 6}, "v1")
    assert a != request_key("m", MSGS, {"temperature": 0.0, "max_tokens": 5, "seed": 1}, "v1")


def test_roundtrip_persistence_and_first_writer_wins(tmp_path):
    path = tmp_path / "sub" / "cache.sqlite"
    with ResponseCache(path) as cache:
        assert cache.get("k") is None and "k" not in cache
        cache.put("k", "first", {"total_tokens": 3}, finish_reason="stop", model="m",
                  prompt_version="v1", request={"messages": MSGS})
        cache.put("k", "second")
        assert cache.get("k") == {"text": "first", "usage": {"total_tokens": 3},
                                  "finish_reason": "stop"}
    with ResponseCache(path) as again:
        assert len(again) == 1 and again.get("k")["text"] == "first"
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode.lower() == "wal"


def test_threads_share_one_file(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")

    def work(i: int) -> str:
        cache.put(f"k{i % 20}", f"v{i % 20}")
        return cache.get(f"k{i % 20}")["text"]

    with ThreadPoolExecutor(8) as pool:
        out = list(pool.map(work, range(200)))
    assert out == [f"v{i % 20}" for i in range(200)]
    assert len(cache) == 20
    cache.close()


def test_processes_share_one_file(tmp_path):
    path = tmp_path / "c.sqlite"
    ResponseCache(path).close()
    script = textwrap.dedent(f"""
        import sys
        from affectgpt.llm.cache import ResponseCache
        c = ResponseCache({str(path)!r})
        tag = sys.argv[1]
        for i in range(100):
            c.put(f"shared{{i}}", f"from-{{tag}}")
            c.put(f"{{tag}}{{i}}", "own")
            assert c.get(f"shared{{i}}") is not None
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, tag]) for tag in ("a", "b")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    cache = ResponseCache(path)
    assert len(cache) == 300
    assert all(cache.get(f"shared{i}")["text"] in ("from-a", "from-b") for i in range(100))
    cache.close()
