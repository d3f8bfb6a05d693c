"""``affectgpt serve-llm``: an OpenAI-compatible chat server that batches concurrent requests.

For text models in ``transformers`` format when no vLLM is at hand (a laptop CPU, a GPU
without vLLM): concurrent ``/v1/chat/completions`` requests are decoded together, step by
step, by a :class:`~affectgpt.llm.engine.BatchedGenerator` (continuous batching: a request
joins the running batch at the next step and leaves it when done), so ``affectgpt annotate
--set concurrency=4`` gets about 4 replies for the price of one.
Endpoints: ``GET /health``, ``GET /v1/models``, ``POST /v1/chat/completions`` (no
streaming, one choice, text content only), and ``GET /v1/stats`` (request counts by
status, queue, batch-size histogram, tokens, measured ``seconds_per_step``).

Overload and abuse are answered, never queued without bound. Errors use the OpenAI error
body ``{"error": {"message", "type", "code"}}``:

- 400 ``invalid_request`` / ``invalid_json`` / ``unsupported_content`` /
  ``max_tokens_too_large`` (over ``--max-tokens-limit``) / ``context_length_exceeded``;
- 404 ``model_not_found``;
- 413 ``request_too_large``: a body over ``--max-body-bytes``;
- 429 ``queue_full`` with ``Retry-After``: ``--max-batch`` requests decode and
  ``--max-queue`` more wait;
- 499 ``client_disconnected`` (recorded only: the client is gone): a request whose client
  disconnects or times out is cancelled and its decoding stops at the next step;
- 500 ``generation_failed``; 503 ``shutting_down`` (SIGTERM: running requests end at the
  next step and the server exits within about 2 s).

    affectgpt serve-llm                       # the packaged SmolLM2-135M-Instruct on :8000
    affectgpt serve-llm /models/Qwen2.5-7B-Instruct --device cuda --dtype bfloat16 --max-batch 16
"""


# no `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime
import asyncio
import json
import os
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8000
DEFAULT_MAX_QUEUE = 64  # requests waiting for a slot beyond max_batch; more get 429
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_TOKENS_LIMIT = 4096


class RequestError(ValueError):
    """A request this server cannot take (answered with HTTP ``status``)."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request"):
        super().__init__(message)
        self.status, self.code = status, code


def _text_content(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text" or not isinstance(part.get("text"), str):
                raise RequestError(f"messages[{index}]: this server serves a text-only model; "
                                   f"got a {kind or type(part).__name__!r} content part",
                                   code="unsupported_content")
            texts.append(part["text"])
        return "\n".join(texts)
    raise RequestError(f"messages[{index}].content must be a string or a list of text parts")


def parse_chat_request(body: Any, names: set[str], max_tokens_limit: int | None = None
                       ) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Validate an OpenAI chat-completions body; return (messages, decoding parameters).
    ``max_tokens`` above ``max_tokens_limit`` is refused."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    model = body.get("model")
    if model is not None and model not in names:
        raise RequestError(f"model {model!r} is not served here; this server serves "
                           f"{sorted(names)[0]!r}", status=404, code="model_not_found")
    if body.get("stream"):
        raise RequestError("streaming is not supported; send stream=false")
    if int(body.get("n") or 1) != 1:
        raise RequestError("only n=1 is supported")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list")
    parsed = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in {"system", "user",
                                                                         "assistant"}:
            raise RequestError(f"messages[{i}] needs a role of system, user or assistant")
        parsed.append({"role": message["role"], "content": _text_content(message.get("content"), i)})
    params: dict[str, Any] = {}
    try:
        if body.get("temperature") is not None:
            params["temperature"] = float(body["temperature"])
        if body.get("top_p") is not None:
            params["top_p"] = float(body["top_p"])
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None:
            params["max_tokens"] = int(max_tokens)
        if body.get("seed") is not None:
            params["seed"] = int(body["seed"])
    except (TypeError, ValueError) as exc:
        raise RequestError(f"bad decoding parameter: {exc}") from exc
    if params.get("max_tokens", 1) < 1:
        raise RequestError("max_tokens must be at least 1")
    if max_tokens_limit is not None and params.get("max_tokens", 0) > max_tokens_limit:
        raise RequestError(f"max_tokens={params['max_tokens']} exceeds this server's limit of "
                           f"{max_tokens_limit} (serve-llm --max-tokens-limit)",
                           code="max_tokens_too_large")
    return parsed, params


def create_app(generator, model_name: str | None = None, *,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               max_tokens_limit: int = DEFAULT_MAX_TOKENS_LIMIT,
               disconnect_poll_seconds: float = 0.25):
    """The FastAPI app serving ``generator`` (a :class:`~affectgpt.llm.engine.BatchedGenerator`)
    as ``model_name`` (default: the model folder's path, which is also accepted, as is its
    base name). Bodies over ``max_body_bytes`` get 413, ``max_tokens`` over
    ``max_tokens_limit`` 400; a request whose client disconnects is cancelled (checked every
    ``disconnect_poll_seconds``)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from affectgpt.llm.engine import GenerationAborted, PromptTooLongError, QueueFullError

    name = model_name or str(generator.model_dir)
    names = {name, str(generator.model_dir), generator.model_dir.name}
    created = int(time.time())
    counts = {"requests": 0, "failed": 0, "disconnected": 0}
    statuses: Counter = Counter()
    app = FastAPI(title="affectgpt serve-llm")

    def error(status: int, message: str, code: str, headers: dict | None = None) -> JSONResponse:
        counts["failed"] += 1
        statuses[str(status)] += 1
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse({"error": {"message": message, "type": kind, "code": code}},
                            status_code=status, headers=headers)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": created,
                                            "owned_by": "affectgpt"}]}

    @app.get("/v1/stats")
    def stats() -> dict[str, Any]:
        engine = generator.stats()
        sizes = list(generator.batch_sizes)
        return {**engine, **counts, "statuses": dict(statuses),
                "batch_sizes": {str(k): v for k, v in sorted(Counter(sizes).items())},
                "max_tokens_limit": max_tokens_limit, "max_body_bytes": max_body_bytes}

    async def read_body(request: Request) -> bytes | None:
        """The body, or None once it exceeds ``max_body_bytes``."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            return None
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body_bytes:
                return None
        return bytes(body)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        counts["requests"] += 1
        raw = await read_body(request)
        if raw is None:
            return error(413, f"the request body exceeds this server's limit of "
                              f"{max_body_bytes} bytes", "request_too_large")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return error(400, f"the request body is not JSON: {exc}", "invalid_json")
        try:
            messages, params = parse_chat_request(body, names, max_tokens_limit)
            future = await asyncio.to_thread(generator.submit, messages, params)
        except RequestError as exc:
            return error(exc.status, str(exc), exc.code)
        except QueueFullError as exc:
            return error(429, f"the server is busy: {exc}; retry after {exc.retry_after:.0f} s",
                         "queue_full", headers={"Retry-After": str(int(exc.retry_after))})
        except PromptTooLongError as exc:
            return error(400, str(exc), "context_length_exceeded")
        except ValueError as exc:
            return error(400, str(exc), "invalid_request")
        except RuntimeError as exc:  # closed: shutting down
            return error(503, f"the server is shutting down: {exc}", "shutting_down")
        waiting = asyncio.wrap_future(future)
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=disconnect_poll_seconds)
            if not waiting.done() and await request.is_disconnected():
                future.cancel()  # frees the slot: the engine drops the row at its next step
                counts["disconnected"] += 1
                statuses["499"] += 1
                return JSONResponse({"error": {"message": "client disconnected",
                                               "type": "invalid_request_error",
                                               "code": "client_disconnected"}}, status_code=499)
        try:
            reply = waiting.result()
        except GenerationAborted as exc:
            return error(503, f"the server is shutting down: {exc}", "shutting_down")
        except Exception as exc:  # the model failed on this batch
            return error(500, f"generation failed: {type(exc).__name__}: {exc}",
                         "generation_failed")
        statuses["200"] += 1
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
                "created": int(time.time()), "model": name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                             "finish_reason": reply.finish_reason}],
                "usage": reply.usage}

    return app


def exit_when_stdin_closes(grace: float = 10.0) -> threading.Thread:
    """Watch standard input on a daemon thread: at EOF (the parent that holds the pipe's
    other end exited, however it died) send this process SIGTERM for a graceful shutdown,
    and end it for good ``grace`` seconds later if it still runs."""

    def watch() -> None:
        try:
            while sys.stdin.buffer.read(65536):
                pass
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os._exit(1)

    thread = threading.Thread(target=watch, daemon=True, name="parent-watch")
    thread.start()
    return thread


def serve(model_dir: str | Path, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          max_batch: int = 8, device: str = "cpu", dtype: str = "float32",
          gather_seconds: float = 0.05, model_name: str | None = None,
          log_level: str = "info", max_queue: int = DEFAULT_MAX_QUEUE,
          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
          max_tokens_limit: int = DEFAULT_MAX_TOKENS_LIMIT,
          exit_on_stdin_eof: bool = False) -> None:
    """Load the model, then serve it until interrupted (``/health`` answers once loaded).

    SIGTERM or SIGINT fail the queued and running requests with 503 at the next decoding
    step and exit within about 2 s. ``exit_on_stdin_eof`` ends the server when its standard
    input closes (:class:`~affectgpt.llm.server.LocalModelServer` holds the other end, so
    the server dies with its parent).
    """
    import uvicorn

    from affectgpt.llm.engine import BatchedGenerator

    if exit_on_stdin_eof:
        exit_when_stdin_closes()
    generator = BatchedGenerator(model_dir, max_batch=max_batch, device=device, dtype=dtype,
                                 gather_seconds=gather_seconds, max_queue=max_queue)
    generator.warm_up()  # /v1/stats has a measured speed before the first request

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            generator.abort()  # waiting handlers answer 503 now, so connections close
            super().handle_exit(sig, frame)

    app = create_app(generator, model_name, max_body_bytes=max_body_bytes,
                     max_tokens_limit=max_tokens_limit)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            timeout_graceful_shutdown=2)
    try:
        Server(config).run()
    finally:
        generator.close(cancel=True, timeout=5)
