"""affectgpt serve-demo: multipart parsing, the HTTP answers to good and bad uploads, and a
clip uploaded and described in a headless Chromium, with the real small model served by
the real command."""

from __future__ import annotations

import os
import queue
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from affectgpt.report.web import UploadError, parse_multipart
from affectgpt.report.web_load import connect, read_answer, request_head

MAX_NEW_TOKENS = 24
UPLOAD_LIMIT = 2 * 2**20
WAIT_MS = 240_000  # the first describe loads the frozen encoders (a fresh machine converts Whisper)


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[str, bytes]:
    """A multipart/form-data body as a browser sends it."""
    boundary = "----affectgpt" + secrets.token_hex(8)
    chunks = []
    for name, value in fields.items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                      .encode() + value.encode() + b"\r\n")
    for name, (filename, data) in files.items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                      f'filename="{filename}"\r\nContent-Type: video/mp4\r\n\r\n'.encode()
                      + data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(chunks)


def post(url: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]]
         ) -> tuple[int, str]:
    content_type, body = multipart(fields, files)
    request = urllib.request.Request(url + "describe", data=body, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_parse_multipart_fields_and_binary_file():
    data = bytes(range(256)) * 40 + b"\r\n--not-a-boundary\r\n"
    content_type, body = multipart({"subtitle": "Ça va? <b>oui</b>"}, {"clip": ("a b.mp4", data)})
    fields = parse_multipart(content_type, body)
    assert fields["subtitle"] == (None, "Ça va? <b>oui</b>".encode())
    assert fields["clip"] == ("a b.mp4", data)
    with pytest.raises(UploadError, match="multipart/form-data"):
        parse_multipart("application/x-www-form-urlencoded", b"subtitle=x")
    with pytest.raises(UploadError, match="cut off"):  # the closing boundary never came
        parse_multipart(content_type, body[:len(body) // 2])
    with pytest.raises(UploadError, match="no boundary"):
        parse_multipart(content_type, b"just bytes")
    # a browser's quoting of odd file names, and the first of two parts with one name
    boundary = "b0undary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="clip"; '
            f'filename="Ça \\"va\\".mp4"\r\n\r\nDATA\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="clip"; filename="x"\r\n\r\n'
            f"OTHER\r\n--{boundary}--\r\n").encode()
    fields = parse_multipart(f"multipart/form-data; boundary={boundary}", body)
    assert fields == {"clip": ('Ça "va".mp4', b"DATA")}


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    """``affectgpt serve-demo`` in a subprocess on a free loopback port, serving the real
    small model with untrained adapters; stopped with SIGTERM, which must delete uploads."""
    tmp = tmp_path_factory.mktemp("serve-demo")
    cmd = [sys.executable, "-m", "affectgpt.cli", "serve-demo", "--preset", "small",
           "--device", "cpu", "--port", "0", "--max-new-tokens", str(MAX_NEW_TOKENS),
           "--max-upload-mb", str(UPLOAD_LIMIT / 2**20)]
    with open(tmp / "stderr.log", "wb") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                env={**os.environ, "TMPDIR": str(tmp)})
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    url, output = None, []
    deadline = time.monotonic() + 300
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        try:
            output.append(lines.get(timeout=1))
        except queue.Empty:
            continue
        found = re.search(r"serving the AffectGPT demo on (http://\S+)", output[-1])
        url = found.group(1) if found else None
    if url is None:
        proc.kill()
        pytest.fail("serve-demo did not start:\n" + "".join(output)
                    + (tmp / "stderr.log").read_text(errors="replace")[-3000:])
    assert "untrained" in "".join(output)  # the warning is printed too
    yield url
    proc.terminate()
    assert proc.wait(60) == 0
    assert not list(tmp.glob("affectgpt-demo-*"))  # uploads are deleted with the server


def test_demo_http_answers(demo_url, corrupt_clip):
    with urllib.request.urlopen(demo_url, timeout=30) as response:
        page = response.read().decode()
        assert response.status == 200
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert 'id="warning"' in page and "untrained" in page and 'type="file"' in page
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(demo_url + "nope", timeout=30)
    assert info.value.code == 404

    status, page = post(demo_url, {"subtitle": "hi"}, {})
    assert status == 400 and "choose a video clip" in page
    status, page = post(demo_url, {"subtitle": ""}, {"clip": ("broken.mp4", corrupt_clip.read_bytes())})
    assert status == 400 and "broken.mp4 cannot be used as a clip" in page
    assert 'id="description"' not in page
    # The oversized clip's head alone: the server answers 413 before the body, and a client
    # still sending it could meet a closed socket (EPIPE) instead of reading that answer.
    content_type, body = multipart({}, {"clip": ("big.mp4", b"\0" * (UPLOAD_LIMIT + 300_000))})
    with connect(demo_url, timeout=30) as sock:
        sock.sendall(request_head(demo_url, Content_Type=content_type,
                                  Content_Length=str(len(body))))
        status, _, page = read_answer(sock)
    assert status == 413 and "larger than 2 MiB" in page
    status, page = post(demo_url, {"clip_id": "f" * 24}, {})
    assert status == 400 and "upload it again" in page
    status, page = post(demo_url, {}, {"clip": ("<img src=x onerror=alert(1)>.mp4", b"xyz")})
    assert status == 400 and "<img src=x" not in page and "&lt;img src=x" in page


def test_demo_concurrent_requests_are_served_one_at_a_time(demo_url, clips):
    answers = {}

    def describe(clip):
        answers[clip.name] = post(demo_url, {"subtitle": clip.subtitle_en},
                                  {"clip": (Path(clip.video).name, Path(clip.video).read_bytes())})

    threads = [threading.Thread(target=describe, args=(clip,)) for clip in clips]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert sorted(answers) == sorted(c.name for c in clips)
    for clip in clips:
        status, page = answers[clip.name]
        assert status == 200 and 'id="description"' in page
        assert f"{Path(clip.video).name}</dd>" in page  # each answer is about its own clip


@pytest.mark.browser
def test_demo_describes_an_uploaded_clip_in_chromium(demo_url, clips, corrupt_clip, page,
                                                     tmp_path):
    clip = clips[0]
    page.set_default_timeout(WAIT_MS)  # a click that submits the form waits for the answer
    page.set_default_navigation_timeout(WAIT_MS)
    page.goto(demo_url)
    assert "untrained" in page.inner_text("#warning")
    page.set_input_files("#clip", clip.video)
    page.fill("#subtitle", clip.subtitle_en)
    page.click("#submit")
    page.wait_for_selector("#description", timeout=WAIT_MS)
    page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
    assert (tmp_path / "demo.png").stat().st_size > 10_000

    assert page.inner_text("#description").strip()
    assert page.locator("#labels").count() == 1  # chips, or a line saying none were found
    assert page.input_value("#subtitle") == clip.subtitle_en
    loaded = page.evaluate("""() => { const i = document.querySelector('#frames img');
        return i && i.complete ? [i.naturalWidth, i.naturalHeight] : null; }""")
    assert loaded and loaded[0] > 7 * loaded[1]  # 8 frames side by side
    assert Path(clip.video).name in page.inner_text("#result")

    # edit the subtitle and describe the same clip again without uploading it again
    page.fill("#subtitle", "I can't believe we actually won!")
    page.click("#submit")
    page.wait_for_selector("#description", timeout=WAIT_MS)
    assert page.input_value("#subtitle") == "I can't believe we actually won!"
    assert Path(clip.video).name in page.inner_text("#result")

    # a corrupt upload gives a clear message on the page
    page.set_input_files("#clip", str(corrupt_clip))
    page.click("#submit")
    page.wait_for_selector("#error", timeout=WAIT_MS)
    assert "broken.mp4 cannot be used as a clip" in page.inner_text("#error")
    assert page.locator("#description").count() == 0
