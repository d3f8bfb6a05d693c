"""serve-demo's limits, tested over raw sockets against the real server on loopback: body
size whatever the headers say, upload and request time limits, the bound on requests at
work, Host and Origin checks, and generic error pages."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("python_multipart")

from affectgpt.report.web import DemoApp, DemoLimits, DemoServer  # noqa: E402
from affectgpt.report.web_load import connect, read_answer  # noqa: E402
from affectgpt.report.web_load import multipart_form as form  # noqa: E402
from affectgpt.report.web_load import request_head as head  # noqa: E402

LIMIT = 64 * 1024  # the largest clip these servers take
SLACK = 256 * 1024  # what the form may add around it (web.FORM_SLACK)


@pytest.fixture(scope="module")
def tiny_model():
    """The tiny preset: real weights, but its encoders are the 'synthetic' ones of the
    feature tests, so describing a real clip fails inside the model (ConfigError)."""
    from affectgpt.inference import Describer
    from affectgpt.model import AffectGPT, load_config

    return Describer(AffectGPT.from_config(load_config("tiny")).eval())


@pytest.fixture
def serve(tiny_model):
    """``serve(max_upload_bytes, **limits) -> (url, DemoApp)``: a demo server on a free
    loopback port."""
    servers = []

    def start(max_upload_bytes: int = LIMIT, **limits) -> tuple[str, DemoApp]:
        app = DemoApp(tiny_model, max_upload_bytes=max_upload_bytes, max_new_tokens=4,
                      model_name="tiny")
        server = DemoServer(app, "127.0.0.1", 0, DemoLimits(**limits))
        servers.append(server)
        return server.url, app

    yield start
    for server in servers:
        server.close()


def exchange(url: str, request: bytes, timeout: float = 10) -> tuple[int | None, dict[str, str], str]:
    with connect(url, timeout) as sock:
        sock.sendall(request)
        return read_answer(sock)


def test_negative_content_length_is_refused_without_waiting_for_the_body(serve):
    url, _ = serve()
    content_type, _ = form({"subtitle": "x"}, {})
    with connect(url, timeout=5) as sock:
        sock.sendall(head(url, Content_Type=content_type, Content_Length="-1"))
        sock.sendall(b"\0" * 65536)  # and the client keeps the connection open
        status, _, _ = read_answer(sock)
    assert status == 400


def test_content_length_over_the_limit_is_refused_before_the_body(serve):
    url, _ = serve()
    content_type, _ = form({"subtitle": "x"}, {})
    with connect(url, timeout=5) as sock:
        sock.sendall(head(url, Content_Type=content_type, Content_Length=str(2 * (LIMIT + SLACK))))
        sock.sendall(b"\0" * 10)  # the rest never comes
        status, headers, page = read_answer(sock)
    assert status == 413 and "larger than 64 KiB" in page
    assert "default-src 'none'" in headers["content-security-policy"]


def test_a_body_shorter_than_its_content_length_times_out(serve):
    url, _ = serve(upload_seconds=1.0)
    content_type, body = form({"subtitle": "x"}, {"clip": ("a.mp4", b"\1" * 5000)})
    started = time.monotonic()
    with connect(url, timeout=8) as sock:
        sock.sendall(head(url, Content_Type=content_type, Content_Length=str(len(body) + 1000)))
        sock.sendall(body)  # 1000 bytes short, and the client waits
        status, _, page = read_answer(sock)
    assert status == 408 and "longer than 1 s" in page
    assert time.monotonic() - started < 6


def test_a_body_longer_than_its_content_length_is_not_read_as_a_second_request(serve):
    url, _ = serve()
    content_type, body = form({"subtitle": "x"}, {"clip": ("a.mp4", b"\1" * 5000)})
    smuggled = head(url, method="GET", path="/healthz")
    with connect(url, timeout=5) as sock:
        sock.sendall(head(url, Content_Type=content_type, Content_Length="100") + body + smuggled)
        first, _, page = read_answer(sock)
        second, _, rest = read_answer(sock)
    assert first == 400 and 'id="error"' in page  # 100 bytes hold no usable form
    assert second != 200 and "ok" not in rest  # the tail is garbage, not a request


def test_chunked_bodies_are_read_and_limited_while_they_stream(serve, corrupt_clip):
    url, _ = serve()
    content_type, body = form({"subtitle": ""}, {"clip": ("broken.mp4", corrupt_clip.read_bytes())})
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 1000]), body[i:i + 1000])
                       for i in range(0, len(body), 1000)) + b"0\r\n\r\n"
    status, _, page = exchange(url, head(url, Content_Type=content_type,
                                         Transfer_Encoding="chunked") + chunked)
    assert status == 400 and "broken.mp4 cannot be used as a clip" in page  # read and parsed

    sent = 0
    chunk = b"\0" * 16384
    opening = body[:body.index(b"\r\n\r\n", body.index(b"filename=")) + 4]  # a file part begins
    with connect(url, timeout=5) as sock:
        sock.sendall(head(url, Content_Type=content_type, Transfer_Encoding="chunked")
                     + b"%x\r\n%s\r\n" % (len(opening), opening))
        sock.settimeout(0.05)
        status = None
        while status is None and sent < 10 * (LIMIT + SLACK):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    sock.settimeout(5)
                    status, _, page = read_answer(sock)
            except (TimeoutError, BlockingIOError):
                continue
    assert status == 413 and "larger than 64 KiB" in page
    assert sent < LIMIT + SLACK + 2 * 2**20  # answered while the body streamed (socket buffers aside)


def test_pages_opened_under_a_foreign_host_name_are_refused(serve):
    url, _ = serve(allowed_hosts=("demo.lan",))
    port = urlsplit(url).port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "demo.lan", f"DEMO.lan:{port}"):
        status, _, page = exchange(url, head(url, method="GET", path="/", Host=host))
        assert status == 200 and 'type="file"' in page, host
    for host in (f"rebound.example:{port}", "127.0.0.1.rebound.example", f"demo.lan.example:{port}"):
        status, headers, page = exchange(url, head(url, method="GET", path="/", Host=host))
        assert status == 403 and "does not answer to that host name" in page, host
        assert "rebound" not in page and "default-src 'none'" in headers["content-security-policy"]
    with connect(url, timeout=5) as sock:  # HTTP/1.0 without a Host header
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert read_answer(sock)[0] == 403


def test_posts_from_other_sites_are_refused(serve):
    url, _ = serve()
    content_type, body = form({"subtitle": "hi"}, {})
    own = url.rstrip("/")
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Origin": own.replace("127.0.0.1", "localhost")},
                    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
        request = head(url, Content_Type=content_type, Content_Length=str(len(body)),
                       **{k.replace("-", "_"): v for k, v in headers.items()})
        status, _, page = exchange(url, request + body)
        assert status == 403 and "requests from other sites are refused" in page, headers
    for headers in ({}, {"Origin": own}, {"Origin": own, "Sec-Fetch-Site": "same-origin"}):
        request = head(url, Content_Type=content_type, Content_Length=str(len(body)),
                       **{k.replace("-", "_"): v for k, v in headers.items()})
        status, _, page = exchange(url, request + body)
        assert status == 400 and "choose a video clip" in page, headers  # past the check


def test_more_uploads_at_once_than_the_bound_get_503(serve):
    url, _ = serve(max_active=2, upload_seconds=30)
    content_type, body = form({"subtitle": "hi"}, {})
    upload_type, upload = form({"subtitle": "hi"}, {"clip": ("a.mp4", b"\1" * 40000)})
    stalled = []
    try:
        for _ in range(2):  # two uploads that stop half-way hold both places
            sock = connect(url, timeout=10)
            sock.sendall(head(url, Content_Type=upload_type, Content_Length=str(len(upload)))
                         + upload[:len(upload) // 2])
            stalled.append(sock)
        time.sleep(0.3)
        request = head(url, Content_Type=content_type, Content_Length=str(len(body))) + body
        status, headers, page = exchange(url, request)
        assert status == 503 and headers.get("retry-after") == "5" and "busy" in page
        assert exchange(url, head(url, method="GET", path="/"))[0] == 200  # pages still load
    finally:
        for sock in stalled:
            sock.close()
    deadline = time.monotonic() + 10
    while (status := exchange(url, request)[0]) == 503 and time.monotonic() < deadline:
        time.sleep(0.1)  # the places come back once the server sees the clients gone
    assert status == 400


def test_a_failure_inside_the_model_gives_a_generic_page(serve, clips, caplog):
    url, app = serve(8 * 2**20)
    content_type, body = form({"subtitle": "hello"},
                              {"clip": ("clip.mp4", Path(clips[0].video).read_bytes())})
    with caplog.at_level(logging.ERROR, logger="affectgpt.report.web"):
        status, _, page = exchange(url, head(url, Content_Type=content_type,
                                             Content_Length=str(len(body))) + body, timeout=120)
    assert status == 500 and "failed on the server" in page and "server log" in page
    for secret in ("ConfigError", "synthetic", "Traceback", str(app._dir), "affectgpt-demo-"):
        assert secret not in page
    assert "ConfigError" in caplog.text  # the details are in the server log


def test_a_request_gets_504_when_the_model_stays_busy(serve, clips):
    url, app = serve(8 * 2**20, request_seconds=1.0)
    content_type, body = form({"subtitle": ""}, {"clip": ("clip.mp4", Path(clips[0].video).read_bytes())})
    request = head(url, Content_Type=content_type, Content_Length=str(len(body))) + body
    busy = threading.Event()
    done = threading.Event()

    def hold_model():  # another request describing for a long time
        with app._model_lock:
            busy.set()
            done.wait(30)

    holder = threading.Thread(target=hold_model)
    holder.start()
    try:
        busy.wait(5)
        started = time.monotonic()
        status, _, page = exchange(url, request, timeout=15)
        assert status == 504 and "no answer within 1 s" in page
        assert time.monotonic() - started < 5
    finally:
        done.set()
        holder.join()
