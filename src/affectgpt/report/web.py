"""``affectgpt serve-demo``: a local web page that describes an uploaded clip.

The page is served by FastAPI on uvicorn (the stack of ``serve-llm``): the framework parses
the multipart form (python-multipart; file parts spill to an anonymous temporary file past
1 MiB) and :class:`~affectgpt.report.web_guard.RequestGuard` enforces the limits of
:class:`DemoLimits` before the page code runs: body size counted as it arrives (413),
upload time (408), requests at work (503), ``Host`` and ``Origin`` checks (403). Errors
inside the server give a generic page; the details go to the server log only.

The model is loaded once; calls into it are serialised by a lock, so concurrent requests
queue instead of racing on one model, and a request still waiting when its time is up
(``request_seconds``) gets a 504. Uploads are stored under random names in a private
temporary folder (the few most recent are kept, so the subtitle can be edited and the
same clip described again without uploading it again) and deleted when the server stops.
Unreadable uploads give a page that says what is wrong with the file.

.. code-block:: python

    from affectgpt.inference import Describer
    from affectgpt.report.web import DemoApp, DemoLimits, DemoServer

    app = DemoApp(Describer.from_pretrained("runs/demo/model"), max_new_tokens=96)
    with DemoServer(app, "127.0.0.1", 7860, DemoLimits(max_active=2)) as server:
        print(server.url)
        server.wait()
"""

from __future__ import annotations

import asyncio
import base64
import email.message
import ipaddress
import logging
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, BinaryIO

from affectgpt.report.assets import frame_strip, jpeg_bytes
from affectgpt.report.html import CSS, esc
from affectgpt.report.web_guard import SLOT_KEY, GuardPolicy, RequestGuard

logger = logging.getLogger(__name__)

DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 64.0
FORM_SLACK = 256 * 1024  # room for the subtitle and the multipart headers around the file
MAX_SUBTITLE_CHARS = 4000
COPY_CHUNK = 1 << 20


class UploadError(Exception):
    """A request the demo cannot use; ``status`` is the HTTP status of the answer."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


class ModelBusy(Exception):
    """The model stayed busy with other requests until this one's time was up."""


@dataclass(frozen=True)
class DemoLimits:
    """The limits of the demo's HTTP server (the largest clip is
    :attr:`DemoApp.max_upload_bytes`).

    Args:
        max_active: describe requests being uploaded, waiting for the model or described
            at once; one more gets 503 at once, before its body is read.
        upload_seconds: time for a request's whole body to arrive (408 after).
        request_seconds: time from a request's arrival to its answer, upload, wait for the
            model and describing included (504 after; a description already running
            finishes in the background and keeps its place in ``max_active``).
        allowed_hosts: ``Host`` names answered besides IP addresses and ``localhost``
            (``*``: any). A page reached under another name is refused (DNS rebinding).
        max_connections: open connections at once (uvicorn answers 503 beyond).
    """

    max_active: int = 4
    upload_seconds: float = 120.0
    request_seconds: float = 600.0
    allowed_hosts: tuple[str, ...] = ()
    max_connections: int = 128

    def __post_init__(self):
        if self.max_active < 1 or self.max_connections < 1:
            raise ValueError("max_active and max_connections must be at least 1")
        if self.upload_seconds <= 0 or self.request_seconds <= 0:
            raise ValueError("upload_seconds and request_seconds must be positive")


@dataclass
class Result:
    """What one describe request produced (a rendered page is made from it)."""

    clip_id: str
    filename: str
    subtitle: str
    description: str = ""
    labels: list[str] = field(default_factory=list)
    frames_jpeg: bytes | None = None
    frames_note: str = ""
    facts: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""


class DemoApp:
    """The model and the uploads behind the demo page.

    Args:
        model: anything with ``describe(path, subtitle=None, *, max_new_tokens=None)``
            returning an object with ``description``, ``labels``, ``has_audio``,
            ``has_video`` and ``seconds`` (:meth:`affectgpt.inference.Describer.describe`).
        warning: shown in a banner on every page (e.g. "the adapters are untrained").
        max_new_tokens: passed to ``describe`` (None: the model's default).
        max_upload_bytes: the largest clip accepted.
        frames: frames shown per clip.
        keep_uploads: how many recent uploads stay on disk for re-describing.
        model_name: shown in the page header.
    """

    def __init__(self, model: Any, *, warning: str = "", max_new_tokens: int | None = None,
                 max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 2**20), frames: int = 8,
                 keep_uploads: int = 16, model_name: str = ""):
        if max_upload_bytes < 1:
            raise ValueError("max_upload_bytes must be positive")
        self.model = model
        self.warning = warning
        self.max_new_tokens = max_new_tokens
        self.max_upload_bytes = max_upload_bytes
        self.frames = frames
        self.keep_uploads = max(1, keep_uploads)
        self.model_name = model_name
        self._model_lock = threading.Lock()
        self._uploads_lock = threading.Lock()
        self._uploads: OrderedDict[str, tuple[Path, str]] = OrderedDict()
        self._dir = Path(tempfile.mkdtemp(prefix="affectgpt-demo-"))

    # ------------------------------------------------------------------ uploads
    def store_upload(self, data: bytes | BinaryIO, filename: str) -> str:
        """Keep an uploaded clip (bytes, or a binary file read from where it stands) under a
        random name; returns its id. :class:`UploadError` when it is empty or too large."""
        clip_id = secrets.token_hex(12)
        suffix = Path(filename).suffix.lower()
        suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".bin"
        path = self._dir / f"{clip_id}{suffix}"
        try:
            size = _copy_limited(data, path, self.max_upload_bytes)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if size == 0:
            path.unlink(missing_ok=True)
            raise UploadError("the uploaded file is empty")
        with self._uploads_lock:
            self._uploads[clip_id] = (path, Path(filename).name or "clip")
            while len(self._uploads) > self.keep_uploads:
                _, (old, _) = self._uploads.popitem(last=False)
                old.unlink(missing_ok=True)
        return clip_id

    def upload(self, clip_id: str) -> tuple[Path, str] | None:
        """``(path, original file name)`` of a kept upload, or None."""
        with self._uploads_lock:
            return self._uploads.get(clip_id)

    def close(self) -> None:
        """Delete the stored uploads."""
        shutil.rmtree(self._dir, ignore_errors=True)

    # ------------------------------------------------------------------ describing
    def describe(self, clip_id: str, subtitle: str, *, deadline: float | None = None) -> Result:
        """Sample frames and describe a stored clip; errors about the file end up in
        ``Result.error`` (nothing about the server's own paths is shown).

        ``deadline`` (a :func:`time.monotonic` time): give up with :class:`ModelBusy` when
        the model is still busy with other requests then.
        """
        from affectgpt.media import MediaError, NoVideoStreamError, read_frames

        found = self.upload(clip_id)
        if found is None:
            raise UploadError("that clip is no longer on the server; upload it again")
        path, filename = found
        result = Result(clip_id=clip_id, filename=filename, subtitle=subtitle)
        try:
            result.frames_jpeg = jpeg_bytes(frame_strip(read_frames(path, self.frames), height=120))
        except NoVideoStreamError:
            result.frames_note = "the file has no video stream"
        except MediaError as exc:
            result.error = _media_message(exc, filename)
            return result
        wait = -1 if deadline is None else max(deadline - time.monotonic(), 0.0)
        if not self._model_lock.acquire(timeout=wait):
            raise ModelBusy("the model stayed busy with other requests")
        started = time.perf_counter()
        try:
            out = self.model.describe(path, subtitle or None, max_new_tokens=self.max_new_tokens)
        except MediaError as exc:
            result.error = _media_message(exc, filename)
            return result
        finally:
            self._model_lock.release()
        result.description = str(out.description)
        result.labels = [str(label) for label in out.labels]
        used = [m for m in ("video", "audio") if getattr(out, f"has_{m}", False)]
        result.facts = [("clip", filename),
                        ("streams used", ", ".join(used + (["subtitle"] if subtitle else [])) or "none"),
                        ("time", f"{getattr(out, 'seconds', time.perf_counter() - started):.1f} s")]
        result.facts += clue_facts(getattr(out, "extra", None) or {})
        return result


def _copy_limited(data: bytes | BinaryIO, path: Path, limit: int) -> int:
    """Write ``data`` to ``path``; :class:`UploadError` (413) once it passes ``limit`` bytes."""
    too_large = UploadError(f"the clip is larger than {size_text(limit)}",
                            HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) > limit:
            raise too_large
        path.write_bytes(data)
        return len(data)
    size = 0
    with open(path, "wb") as out:
        while chunk := data.read(COPY_CHUNK):
            size += len(chunk)
            if size > limit:
                raise too_large
            out.write(chunk)
    return size


def clue_facts(extra: dict[str, Any]) -> list[tuple[str, str]]:
    """The transcript and the measured clues of a zero-shot description, as page facts."""
    facts: list[tuple[str, str]] = []
    transcript = extra.get("transcript")
    if extra.get("subtitle_source") == "asr" and transcript:
        language = transcript.get("language") or "?"
        facts.append(("transcript", f"{transcript.get('text') or '(no speech)'} [{language}]"))
    for modality, reading in (extra.get("clues") or {}).items():
        facts.append((f"{modality} clue", str(reading.get("text") or reading.get("reason") or "")))
    if extra.get("labels_source"):
        facts.append(("labels from", str(extra["labels_source"])))
    if extra.get("llm_contradicts_clues"):
        facts.append(("note", "the LLM's labels contradict every measured clue"))
    return facts


def size_text(n: int) -> str:
    """``64 MiB`` or, under a MiB, ``64 KiB``."""
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def _media_message(exc: Exception, filename: str) -> str:
    reason = getattr(exc, "reason", "") or str(exc)
    return f"{filename} cannot be used as a clip: {reason}"


# --------------------------------------------------------------------------- pages

PAGE_CSS = CSS + """
form { display: grid; gap: 12px; }
label { font-weight: 600; font-size: 14px; }
textarea { width: 100%; min-height: 70px; font: inherit; padding: 8px; border-radius: 6px;
           border: 1px solid var(--line); }
input[type=file] { font: inherit; }
button { justify-self: start; font: inherit; font-weight: 600; color: #fff; background: var(--accent);
         border: 0; border-radius: 6px; padding: 8px 18px; cursor: pointer; }
.error { background: #fff1f1; border: 1px solid #f0b4b4; color: #8a1f1f; border-radius: 8px;
         padding: 10px 14px; margin: 0 0 18px; }
.current { font-size: 13px; color: var(--muted); }
"""


def render_page(app: DemoApp, result: Result | None = None, error: str = "") -> str:
    """The demo page: the form, and a result or an error when there is one."""
    error = error or (result.error if result else "")
    warning = (f'<div class="callout" id="warning"><b>Warning:</b> {esc(app.warning)}</div>'
               if app.warning else "")
    error_html = f'<div class="error" id="error" role="alert">{esc(error)}</div>' if error else ""
    subtitle = result.subtitle if result else ""
    current = ""
    if result is not None and not result.error:
        current = (f'<input type="hidden" name="clip_id" value="{esc(result.clip_id)}">'
                   f'<p class="current">Current clip: <b>{esc(result.filename)}</b>; choose another '
                   "file to replace it, or edit the subtitle and describe it again.</p>")
    form = (
        '<section id="upload"><h2>Describe a clip</h2>'
        '<form method="post" action="/describe" enctype="multipart/form-data">'
        '<label for="clip">Video clip</label>'
        '<input type="file" id="clip" name="clip" accept="video/*,audio/*,.mp4,.avi,.mkv,.webm,.mov">'
        f"{current}"
        '<label for="subtitle">Subtitle (what the person says; optional)</label>'
        f'<textarea id="subtitle" name="subtitle" maxlength="{MAX_SUBTITLE_CHARS}">'
        f"{esc(subtitle)}</textarea>"
        '<button type="submit" id="submit">Describe</button>'
        f'<p class="hint">Clips up to {size_text(app.max_upload_bytes)}. Describing takes a '
        "few seconds on a CPU; requests are answered one at a time.</p>"
        "</form></section>")
    body = ""
    if result is not None and not result.error:
        if result.frames_jpeg:
            src = "data:image/jpeg;base64," + base64.b64encode(result.frames_jpeg).decode()
            frames = (f'<figure class="strip" id="frames"><img src="{src}" alt="sampled frames">'
                      f"<figcaption>{app.frames} frames sampled uniformly</figcaption></figure>")
        else:
            frames = f'<p class="note" id="frames">{esc(result.frames_note)}</p>'
        labels = ('<ul class="chips" id="labels">'
                  + "".join(f"<li>{esc(label)}</li>" for label in result.labels) + "</ul>"
                  if result.labels else
                  '<p class="note" id="labels">(no emotion words found in the description)</p>')
        facts = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in result.facts)
        body = (f'<section id="result"><h2>Description</h2>{frames}'
                f'<h3>What the model says</h3><blockquote id="description">'
                f"{esc(result.description)}</blockquote>"
                f"<h3>Emotion labels</h3>{labels}"
                f'<dl class="facts">{facts}</dl></section>')
    model = f' · model: {esc(app.model_name)}' if app.model_name else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>AffectGPT demo</title><style>{PAGE_CSS}</style></head><body><main>"
        '<header><h1>AffectGPT demo</h1><p class="meta">explainable multimodal emotion '
        f"recognition{model}</p></header>{warning}{error_html}{form}{body}"
        "</main></body></html>\n")


# --------------------------------------------------------------------------- forms


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """A ``multipart/form-data`` body held in memory -> ``{field: (filename or None, bytes)}``
    (the first part of each name wins); :class:`UploadError` when it is not such a form or
    is cut off. Parsed by python-multipart, the parser the server's framework streams
    requests through (the server itself never holds a whole body in memory)."""
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    kind = email.message.Message()
    kind["Content-Type"] = content_type
    boundary = kind.get_param("boundary")
    if kind.get_content_type() != "multipart/form-data" or not isinstance(boundary, str) \
            or not 1 <= len(boundary) <= 70:
        raise UploadError("expected a multipart/form-data form")
    fields: dict[str, tuple[str | None, bytes]] = {}
    part: dict[str, Any] = {}
    ended = False

    def on_part_begin() -> None:
        part.clear()
        part.update(headers=[], name=b"", value=b"", data=bytearray())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part["name"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part["value"] += data[start:end]

    def on_header_end() -> None:
        part["headers"].append((part["name"].lower(), part["value"]))
        part["name"] = part["value"] = b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part["data"] += data[start:end]

    def on_part_end() -> None:
        disposition = dict(part["headers"]).get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        name = options.get(b"name")
        filename = options.get(b"filename")
        if name is not None and name.decode("utf-8", "replace") not in fields:
            fields[name.decode("utf-8", "replace")] = (
                None if filename is None else filename.decode("utf-8", "replace"),
                bytes(part["data"]))

    def on_end() -> None:
        nonlocal ended
        ended = True

    parser = MultipartParser(boundary.encode("latin-1", "replace"), {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_part_data": on_part_data, "on_part_end": on_part_end, "on_end": on_end})
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError:
        raise UploadError("the form could not be read (no boundary)") from None
    if not ended:
        raise UploadError("the form could not be read (the upload may have been cut off)")
    return fields


# --------------------------------------------------------------------------- HTTP


def create_app(demo: DemoApp, limits: DemoLimits | None = None):
    """The FastAPI app of the demo page, behind a
    :class:`~affectgpt.report.web_guard.RequestGuard` enforcing ``limits`` (default:
    :class:`DemoLimits`). Routes: ``GET /`` (the form), ``POST /describe`` (upload or
    ``clip_id``, and ``subtitle``), ``GET /healthz``."""
    import contextlib
    import functools

    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse, PlainTextResponse
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    limits = limits or DemoLimits()
    executor = ThreadPoolExecutor(limits.max_active, thread_name_prefix="affectgpt-demo")

    @contextlib.asynccontextmanager
    async def lifespan(_api):
        try:
            yield
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    api = FastAPI(title="affectgpt serve-demo", docs_url=None, redoc_url=None,
                  openapi_url=None, lifespan=lifespan)

    def page(html: str, status: int = HTTPStatus.OK) -> HTMLResponse:
        return HTMLResponse(html, status_code=int(status))

    async def index(request):
        return page(render_page(demo))

    async def healthz(request):
        return PlainTextResponse("ok\n")

    async def describe(request):
        deadline = time.monotonic() + limits.request_seconds
        loop = asyncio.get_running_loop()
        try:
            async with request.form(max_files=1, max_fields=4, max_part_size=FORM_SLACK) as form:
                subtitle = _form_text(form.get("subtitle"))[:MAX_SUBTITLE_CHARS].strip()
                clip = form.get("clip")
                if isinstance(clip, UploadFile) and (clip.filename or clip.size):
                    clip_id = await loop.run_in_executor(
                        executor, demo.store_upload, clip.file, clip.filename or "clip")
                else:
                    clip_id = _form_text(form.get("clip_id"))
                    if not clip_id:
                        raise UploadError("choose a video clip to upload")
        except ClientDisconnect:  # the client left, or the guard answered already
            return PlainTextResponse("", status_code=400)
        except HTTPException as exc:  # the framework could not read the form
            return page(render_page(demo, error=f"the form could not be read: {exc.detail}"),
                        exc.status_code)
        except UploadError as exc:
            return page(render_page(demo, error=str(exc)), exc.status)
        work = loop.run_in_executor(
            executor, functools.partial(demo.describe, clip_id, subtitle, deadline=deadline))
        slot = request.scope.get(SLOT_KEY)
        if slot is not None:
            slot.keep_until(work)
        try:
            result = await asyncio.wait_for(asyncio.shield(work),
                                            max(deadline - time.monotonic(), 0.0))
        except (asyncio.TimeoutError, ModelBusy):
            return page(render_page(demo, error=f"no answer within {limits.request_seconds:g} s "
                                                "(the model is busy or slow); try again later"),
                        HTTPStatus.GATEWAY_TIMEOUT)
        except UploadError as exc:
            return page(render_page(demo, error=str(exc)), exc.status)
        except Exception:  # the details go to the log only: they may hold paths
            logger.exception("describing upload %s failed", clip_id)
            return page(render_page(demo, error=SERVER_ERROR), HTTPStatus.INTERNAL_SERVER_ERROR)
        return page(render_page(demo, result),
                    HTTPStatus.BAD_REQUEST if result.error else HTTPStatus.OK)

    async def http_error(request, exc: HTTPException):
        message = {404: "no such page", 405: "that method is not allowed here"}.get(
            exc.status_code, HTTPStatus(exc.status_code).phrase.lower())
        response = page(render_page(demo, error=message), exc.status_code)
        response.headers.update(exc.headers or {})
        return response

    async def server_error(request, exc: Exception):
        return page(render_page(demo, error=SERVER_ERROR), HTTPStatus.INTERNAL_SERVER_ERROR)

    api.add_route("/", index, methods=["GET"])
    api.add_route("/describe", index, methods=["GET"])
    api.add_route("/describe", describe, methods=["POST"])
    api.add_route("/healthz", healthz, methods=["GET"])
    api.add_exception_handler(HTTPException, http_error)
    api.add_exception_handler(Exception, server_error)
    too_large = f"the clip is larger than {size_text(demo.max_upload_bytes)}"
    api.add_middleware(
        RequestGuard, error_page=lambda status, message: render_page(demo, error=message),
        policy=GuardPolicy(max_body_bytes=demo.max_upload_bytes + FORM_SLACK,
                           body_seconds=limits.upload_seconds, max_active=limits.max_active,
                           allowed_hosts=frozenset(limits.allowed_hosts), too_large=too_large))
    return api


SERVER_ERROR = "describing the clip failed on the server; the server log has the details"


def _form_text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class DemoServer:
    """:func:`create_app` served by uvicorn on a background thread; ``port=0`` picks a free
    port (see :attr:`url`). The listening host, when it is a name, is added to the allowed
    ``Host`` names. Closing it stops the server and deletes the app's uploads.

    Args:
        app: the demo.
        host: address to listen on.
        port: port (0: any free one).
        limits: the server's limits (default: :class:`DemoLimits`).
        start_seconds: how long to wait for the server to answer before giving up.
    """

    def __init__(self, app: DemoApp, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 limits: DemoLimits | None = None, *, start_seconds: float = 30.0):
        import dataclasses

        import uvicorn

        self.app = app
        limits = limits or DemoLimits()
        extra = [] if _is_ip(host) else [host]
        if not is_loopback(host):
            extra.append(socket.gethostname())
        self.limits = dataclasses.replace(limits, allowed_hosts=(*limits.allowed_hosts, *extra))
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind(address)
            self._socket.listen(128)
        except OSError:
            self._socket.close()
            raise
        config = uvicorn.Config(create_app(app, self.limits), http="h11", lifespan="on",
                                log_config=None, limit_concurrency=self.limits.max_connections,
                                timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="affectgpt-demo-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + start_seconds
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("the demo server did not start; see the log")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C raises ``KeyboardInterrupt`` meanwhile)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def close(self) -> None:
        """Stop serving (requests at work get a few seconds) and delete the uploads."""
        self._server.should_exit = True
        self._thread.join(30)
        self._socket.close()
        self.app.close()

    def __enter__(self) -> DemoServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


__all__ = ["DemoApp", "DemoLimits", "DemoServer", "ModelBusy", "Result", "UploadError",
           "clue_facts", "create_app", "is_loopback", "parse_multipart", "render_page"]
