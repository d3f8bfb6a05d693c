"""``affectgpt serve-demo``: a local web page that describes an uploaded clip.

Standard library only (``http.server``; multipart bodies parsed with :mod:`email`). The
model is loaded once; calls into it are serialised by a lock, so concurrent requests
queue instead of racing on one model. Uploads are size-limited, stored under random
names in a private temporary folder (the few most recent are kept, so the subtitle can
be edited and the same clip described again without uploading it again) and deleted when
the server stops. Unreadable uploads give a page that says what is wrong with the file.

.. code-block:: python

    from affectgpt.inference import Describer
    from affectgpt.report.web import DemoApp, DemoServer

    app = DemoApp(Describer.from_pretrained("runs/demo/model"), max_new_tokens=96)
    with DemoServer(app, "127.0.0.1", 7860) as server:
        server.serve_forever()
"""

from __future__ import annotations

import argparse
import base64
import email.message
import email.parser
import email.policy
import ipaddress
import logging
import re
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from affectgpt.report.render import CSS, esc, frame_strip, jpeg_bytes

logger = logging.getLogger(__name__)

DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 64.0
FORM_SLACK = 256 * 1024  # room for the subtitle and the multipart headers around the file
MAX_SUBTITLE_CHARS = 4000


class UploadError(Exception):
    """A request the demo cannot use; ``status`` is the HTTP status of the answer."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


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
    def store_upload(self, data: bytes, filename: str) -> str:
        """Keep an uploaded clip under a random name; returns its id."""
        if not data:
            raise UploadError("the uploaded file is empty")
        if len(data) > self.max_upload_bytes:
            raise UploadError(f"the clip is larger than {self.max_upload_bytes / 2**20:.0f} MiB",
                              HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        clip_id = secrets.token_hex(12)
        suffix = Path(filename).suffix.lower()
        suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".bin"
        path = self._dir / f"{clip_id}{suffix}"
        path.write_bytes(data)
        with self._uploads_lock:
            self._uploads[clip_id] = (path, Path(filename).name or "clip")
            while len(self._uploads) > self.keep_uploads:
                _, (old, _) = self._uploads.popitem(last=False)
                old.unlink(missing_ok=True)
        return clip_id

    def upload(self, clip_id: str) -> tuple[Path, str] | None:
        with self._uploads_lock:
            return self._uploads.get(clip_id)

    def close(self) -> None:
        """Delete the stored uploads."""
        shutil.rmtree(self._dir, ignore_errors=True)

    # ------------------------------------------------------------------ describing
    def describe(self, clip_id: str, subtitle: str) -> Result:
        """Sample frames and describe a stored clip; errors about the file end up in
        ``Result.error`` (nothing about the server's own paths is shown)."""
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
        started = time.perf_counter()
        try:
            with self._model_lock:
                out = self.model.describe(path, subtitle or None,
                                          max_new_tokens=self.max_new_tokens)
        except MediaError as exc:
            result.error = _media_message(exc, filename)
            return result
        result.description = str(out.description)
        result.labels = [str(label) for label in out.labels]
        used = [m for m in ("video", "audio") if getattr(out, f"has_{m}", False)]
        result.facts = [("clip", filename),
                        ("streams used", ", ".join(used + (["subtitle"] if subtitle else [])) or "none"),
                        ("time", f"{getattr(out, 'seconds', time.perf_counter() - started):.1f} s")]
        return result


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
        f'<p class="hint">Clips up to {app.max_upload_bytes / 2**20:.0f} MiB. Describing takes a '
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


# --------------------------------------------------------------------------- HTTP


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``multipart/form-data`` body -> ``{field: (filename or None, bytes)}`` (the first part
    of each name wins). :class:`UploadError` when the body is not such a form.

    The body is split at its boundary with ``bytes.find`` (one copy per part, linear time);
    only the short part headers go through :mod:`email` for their quoting rules.
    """
    kind = email.message.Message()
    kind["Content-Type"] = content_type
    boundary = kind.get_param("boundary")
    if kind.get_content_type() != "multipart/form-data" or not isinstance(boundary, str) \
            or not 1 <= len(boundary) <= 70:
        raise UploadError("expected a multipart/form-data form")
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    separator = b"\r\n" + delimiter
    pos = body.find(delimiter)
    if pos < 0:
        raise UploadError("the form could not be read (no boundary)")
    pos += len(delimiter)
    fields: dict[str, tuple[str | None, bytes]] = {}
    headers_parser = email.parser.HeaderParser(policy=email.policy.HTTP)
    while not body.startswith(b"--", pos):  # "--" after a delimiter closes the form
        start = body.find(b"\r\n", pos) + 2  # past transport padding and the line break
        end = body.find(separator, start)
        split = body.find(b"\r\n\r\n", start, end) if end >= 0 else -1
        if start < 2 or split < 0:
            raise UploadError("the form could not be read (the upload may have been cut off)")
        headers = headers_parser.parsestr(body[start:split + 2].decode("utf-8", "replace"))
        name = headers.get_param("name", header="content-disposition")
        if isinstance(name, str) and name not in fields:
            fields[name] = (headers.get_filename(), body[split + 4:end])
        pos = end + len(separator)
    return fields


class _Handler(BaseHTTPRequestHandler):
    server: DemoServer
    protocol_version = "HTTP/1.1"
    server_version = "affectgpt-demo"

    def log_message(self, fmt: str, *args) -> None:
        logger.info("%s %s", self.address_string(), fmt % args)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/describe"):
            self._send_page(render_page(self.server.app))
        elif path == "/healthz":
            self._send(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
        else:
            self._send_page(render_page(self.server.app, error="no such page"), HTTPStatus.NOT_FOUND)

    def do_POST(self) -> None:
        app = self.server.app
        if self.path.split("?", 1)[0] != "/describe":
            self._drain(int(self.headers.get("Content-Length") or 0))
            self._send_page(render_page(app, error="no such page"), HTTPStatus.NOT_FOUND)
            return
        try:
            fields = self._read_form()
            subtitle = _field_text(fields, "subtitle")[:MAX_SUBTITLE_CHARS].strip()
            filename, data = fields.get("clip", (None, b""))
            if filename or data:
                clip_id = app.store_upload(data, filename or "clip")
            else:
                clip_id = _field_text(fields, "clip_id")
                if not clip_id:
                    raise UploadError("choose a video clip to upload")
            result = app.describe(clip_id, subtitle)
        except UploadError as exc:
            self._send_page(render_page(app, error=str(exc)), exc.status)
            return
        except Exception as exc:  # a model failure must answer the page, not drop it
            logger.exception("describe failed")
            self._send_page(render_page(app, error=f"the model failed: {type(exc).__name__}: {exc}"),
                            HTTPStatus.INTERNAL_SERVER_ERROR)
            return
        status = HTTPStatus.BAD_REQUEST if result.error else HTTPStatus.OK
        self._send_page(render_page(app, result), status)

    def _read_form(self) -> dict[str, tuple[str | None, bytes]]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise UploadError("chunked uploads are not supported", HTTPStatus.LENGTH_REQUIRED)
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            raise UploadError("the request has no valid Content-Length",
                              HTTPStatus.LENGTH_REQUIRED) from None
        limit = self.server.app.max_upload_bytes
        if length > limit + FORM_SLACK:
            self._drain(length)
            raise UploadError(f"the clip is larger than {limit / 2**20:.0f} MiB",
                              HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            raise UploadError("the upload was cut off")
        return parse_multipart(self.headers.get("Content-Type", ""), body)

    def _drain(self, length: int) -> None:
        """Read and drop a body we refuse, so the browser gets to read our answer; a body
        far over the limit is not read and the connection is closed instead."""
        if length > 8 * (self.server.app.max_upload_bytes + FORM_SLACK):
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    def _send_page(self, page: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, page.encode("utf-8"), "text/html; charset=utf-8")

    def _send(self, status: HTTPStatus, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'none'; img-src data:; "
                         "style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


def _field_text(fields: dict[str, tuple[str | None, bytes]], name: str) -> str:
    return fields.get(name, (None, b""))[1].decode("utf-8", "replace")


class DemoServer(ThreadingHTTPServer):
    """The HTTP server of a :class:`DemoApp`; ``port=0`` picks a free port (see ``url``).
    Closing it deletes the app's uploads."""

    daemon_threads = True

    def __init__(self, app: DemoApp, host: str = "127.0.0.1", port: int = DEFAULT_PORT):
        self.app = app
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def server_close(self) -> None:
        super().server_close()
        self.app.close()


# --------------------------------------------------------------------------- CLI


def add_serve_demo_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``affectgpt serve-demo`` on an ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "serve-demo", help="a local web page: upload a clip, get its emotion description",
        description="Load a model once and serve a page on which a clip is uploaded, its "
                    "subtitle typed or edited, and the model's description, the emotion labels "
                    "extracted from it and sampled frames shown. Listens on 127.0.0.1 unless "
                    "--host says otherwise; requests are answered one at a time.")
    from affectgpt.cli.options import add_model_source_options

    add_model_source_options(p, preset=True)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help="port (0: any free one; default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, help="longest description in tokens "
                                                      "(default: the model's)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                   help="largest clip accepted, in MiB (default: %(default)s)")
    p.add_argument("--frames", type=_positive_int, default=8, help="frames shown per clip (default: %(default)s)")
    p.set_defaults(func=cmd_serve_demo)
    return p


def load_demo_model(model_dir: str | None, preset: str = "small", overrides=(),
                    device: str | None = "auto") -> tuple[Any, str, str]:
    """``(model, name, warning)``: a trained checkpoint, or ``preset`` with untrained
    adapters (and a warning saying so)."""
    from affectgpt.inference import Describer, load_model

    model = Describer(load_model(model_dir, preset, overrides, device).eval())
    if model_dir:
        return model, str(model_dir), ""
    warning = (f"no trained model given: the {preset!r} preset's adapters are untrained "
               "(random), so the descriptions show the pipeline, not what a trained model says. "
               "Start the demo with --model DIR for a trained one.")
    return model, f"{preset} (untrained)", warning


def cmd_serve_demo(args: argparse.Namespace) -> int:
    model, name, warning = load_demo_model(args.model, args.preset, args.overrides, args.device)
    if warning:
        print(f"warning: {warning}")
    app = DemoApp(model, warning=warning, max_new_tokens=args.max_new_tokens,
                  max_upload_bytes=int(args.max_upload_mb * 2**20), frames=args.frames,
                  model_name=name)
    server = DemoServer(app, args.host, args.port)
    if not _is_loopback(args.host):
        print(f"warning: listening on {args.host}: anyone who can reach this address can use "
              "the demo")
    print(f"serving the AffectGPT demo on {server.url} (Ctrl-C stops)", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly (uploads deleted) on kill too
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


__all__ = ["DemoApp", "DemoServer", "Result", "UploadError", "add_serve_demo_parser",
           "load_demo_model", "parse_multipart", "render_page"]
