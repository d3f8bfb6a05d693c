"""``affectgpt serve-demo`` (the web page of :mod:`affectgpt.report.web`) and ``affectgpt
serve-llm`` (the OpenAI-compatible server of :mod:`affectgpt.llm.serve`)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from affectgpt.cli.options import add_model_source_options
from affectgpt.llm.serve import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_TOKENS_LIMIT,
    DEFAULT_PORT,
    serve,
)
from affectgpt.report.web import (
    DEFAULT_MAX_UPLOAD_MB,
    DemoApp,
    DemoLimits,
    DemoServer,
    is_loopback,
)
from affectgpt.report.web import DEFAULT_PORT as DEMO_PORT


def add_parsers(sub) -> None:
    """Register ``serve-demo`` and ``serve-llm``."""
    add_serve_demo_parser(sub)
    add_serve_llm_parser(sub)


def add_serve_demo_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``affectgpt serve-demo`` on an ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "serve-demo", help="a local web page: upload a clip, get its emotion description",
        description="Load a model once and serve a page on which a clip is uploaded, its "
                    "subtitle typed or edited, and the model's description, the emotion labels "
                    "extracted from it and sampled frames shown. Listens on 127.0.0.1 unless "
                    "--host says otherwise; the model answers one request at a time.")
    add_model_source_options(p, preset=True)
    defaults = DemoLimits()
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=DEMO_PORT,
                   help="port (0: any free one; default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, help="longest description in tokens "
                                                      "(default: the model's)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                   help="largest clip accepted, in MiB (default: %(default)s)")
    p.add_argument("--frames", type=_positive_int, default=8, help="frames shown per clip (default: %(default)s)")
    p.add_argument("--max-active", type=_positive_int, default=defaults.max_active,
                   help="describe requests uploading, waiting or running at once; one more "
                        "gets 503 (default: %(default)s)")
    p.add_argument("--upload-seconds", type=float, default=defaults.upload_seconds,
                   help="time for one upload to arrive (default: %(default)s)")
    p.add_argument("--request-seconds", type=float, default=defaults.request_seconds,
                   help="time from a request to its answer, waiting for the model included "
                        "(default: %(default)s)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a host name the page may be opened under besides IP addresses and "
                        "localhost (repeatable; '*': any)")
    p.set_defaults(func=cmd_serve_demo)
    return p


def load_demo_model(model_dir: str | None, preset: str | None = None, overrides=(),
                    device: str | None = "auto") -> tuple[Any, str, str]:
    """``(describer, name, warning)``: a trained checkpoint (``model_dir``; clips uploaded
    without a subtitle are transcribed), a preset with untrained adapters (``preset``, with
    a warning saying so; no transcription: it only shows the pipeline), or else the
    zero-shot describer (packaged clue models + transcript + the packaged LLM)."""
    from affectgpt.inference import Describer, ZeroShotDescriber, load_model

    if model_dir:
        model = load_model(model_dir, "small", overrides, device).eval()
        return Describer(model, asr=True), str(model_dir), ""
    if preset:
        model = Describer(load_model(None, preset, overrides, device).eval())
        warning = (f"the {preset!r} preset's adapters are untrained (random), so the "
                   "descriptions show the pipeline, not what a trained model says. Start the "
                   "demo with --model DIR for a trained one, or without options for zero-shot.")
        return model, f"{preset} (untrained)", warning
    return (ZeroShotDescriber(), "zero-shot (packaged clue models, Whisper-base, SmolLM2)",
            "")


def cmd_serve_demo(args: argparse.Namespace) -> int:
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn", "python_multipart")
               if importlib.util.find_spec(m) is None]
    if missing:  # before the model is loaded
        print(f"affectgpt serve-demo: error: {', '.join(missing)} not installed: "
              "pip install 'affectgpt[serve]'", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:  # the server log: refusals, failures with details
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model, name, warning = load_demo_model(args.model, args.preset, args.overrides, args.device)
    if warning:
        print(f"warning: {warning}")
    app = DemoApp(model, warning=warning, max_new_tokens=args.max_new_tokens,
                  max_upload_bytes=int(args.max_upload_mb * 2**20), frames=args.frames,
                  model_name=name)
    limits = DemoLimits(max_active=args.max_active, upload_seconds=args.upload_seconds,
                        request_seconds=args.request_seconds,
                        allowed_hosts=tuple(args.allowed_host))
    if not is_loopback(args.host):
        print(f"warning: listening on {args.host}: anyone who can reach this address can use "
              "the demo")
    signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly (uploads deleted) on kill too
    try:
        server = DemoServer(app, args.host, args.port, limits)
    except OSError as exc:
        app.close()
        print(f"affectgpt serve-demo: error: cannot listen on {args.host}:{args.port}: {exc}",
              file=sys.stderr)
        return 2
    with server:
        print(f"serving the AffectGPT demo on {server.url} (Ctrl-C stops)", flush=True)
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value



def add_serve_llm_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``affectgpt serve-llm`` on an ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "serve-llm", help="an OpenAI-compatible chat server that batches concurrent requests",
        description="Serve a transformers text model folder at /v1/chat/completions (OpenAI "
                    "format, no streaming, text only) on loopback unless --host says otherwise. "
                    "Concurrent requests (each with its own decoding parameters) are generated as one "
                    "batch (a request joins the running batch at the next decoding step), so "
                    "annotation at concurrency N runs up to N requests for about the price of "
                    "one. A client that disconnects stops its generation; a full queue answers "
                    "429 with Retry-After. GET /v1/stats shows the batch sizes and the speed.")
    p.add_argument("model_dir", nargs="?",
                   help="transformers model folder with a chat template (default: the packaged "
                        "SmolLM2-135M-Instruct, exported on first use)")
    p.add_argument("--name", help="model id clients send (default: the folder's path; the "
                                  "folder's base name is accepted too)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=8,
                   help="most requests generated together (default: %(default)s)")
    p.add_argument("--gather-ms", type=float, default=50.0,
                   help="how long the first request of a batch waits for others, in ms "
                        "(default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="weight dtype (default: %(default)s; bfloat16 on a GPU)")
    p.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE,
                   help="requests that may wait for a slot beyond --max-batch; more get HTTP 429 "
                        "with Retry-After (default: %(default)s)")
    p.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES,
                   help="largest request body; larger ones get HTTP 413 (default: %(default)s)")
    p.add_argument("--max-tokens-limit", type=int, default=DEFAULT_MAX_TOKENS_LIMIT,
                   help="largest max_tokens a request may ask for; more gets HTTP 400 "
                        "(default: %(default)s)")
    p.add_argument("--exit-on-stdin-eof", action="store_true",
                   help="exit when standard input closes (the parent holding the pipe died); "
                        "set by the servers that --local-server starts")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info"),
                   help="server log level (default: %(default)s)")
    p.set_defaults(func=cmd_serve_llm)
    return p


def cmd_serve_llm(args: argparse.Namespace) -> int:
    model_dir = args.model_dir
    if model_dir is None:
        from affectgpt.llm.server import export_smollm2

        model_dir = export_smollm2()
    serve(model_dir, host=args.host, port=args.port, max_batch=args.max_batch,
          device=args.device, dtype=args.dtype, gather_seconds=args.gather_ms / 1000.0,
          model_name=args.name, log_level=args.log_level, max_queue=args.max_queue,
          max_body_bytes=args.max_body_bytes, max_tokens_limit=args.max_tokens_limit,
          exit_on_stdin_eof=args.exit_on_stdin_eof)
    return 0
