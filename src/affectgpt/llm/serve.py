"""``affectgpt serve-llm``: an OpenAI-compatible chat server that batches concurrent requests.

For text models in ``transformers`` format when no vLLM is at hand (a laptop CPU, a GPU
without vLLM): concurrent ``/v1/chat/completions`` requests with the same decoding
parameters are generated together by a :class:`~affectgpt.llm.engine.BatchedGenerator`,
so ``affectgpt annotate --set concurrency=4`` gets about 4 replies for the price of one.
Endpoints: ``GET /health``, ``GET /v1/models``, ``POST /v1/chat/completions`` (no
streaming, one choice, text content only), and ``GET /v1/stats`` (requests, batch-size
histogram, tokens). Errors use the OpenAI error body: ``{"error": {"message", "type",
"code"}}``.

    affectgpt serve-llm                       # the packaged SmolLM2-135M-Instruct on :8000
    affectgpt serve-llm /models/Qwen2.5-7B-Instruct --device cuda --dtype bfloat16 --max-batch 16
"""


# no `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime
import argparse
import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8000


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


def parse_chat_request(body: Any, names: set[str]) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Validate an OpenAI chat-completions body; return (messages, decoding parameters)."""
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
    return parsed, params


def create_app(generator, model_name: str | None = None):
    """The FastAPI app serving ``generator`` (a :class:`~affectgpt.llm.engine.BatchedGenerator`)
    as ``model_name`` (default: the model folder's path, which is also accepted, as is its
    base name)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    name = model_name or str(generator.model_dir)
    names = {name, str(generator.model_dir), generator.model_dir.name}
    created = int(time.time())
    counts = {"requests": 0, "failed": 0}
    app = FastAPI(title="affectgpt serve-llm")

    def error(status: int, message: str, code: str) -> JSONResponse:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse({"error": {"message": message, "type": kind, "code": code}},
                            status_code=status)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": created,
                                            "owned_by": "affectgpt"}]}

    @app.get("/v1/stats")
    def stats() -> dict[str, Any]:
        sizes = list(generator.batch_sizes)
        return {**counts, "batches": len(sizes), "max_batch": generator.max_batch,
                "batch_sizes": {str(k): v for k, v in sorted(Counter(sizes).items())},
                "completion_tokens": generator.completion_tokens}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        counts["requests"] += 1
        try:
            messages, params = parse_chat_request(await request.json(), names)
        except RequestError as exc:
            counts["failed"] += 1
            return error(exc.status, str(exc), exc.code)
        except ValueError as exc:  # the body is not JSON
            counts["failed"] += 1
            return error(400, f"the request body is not JSON: {exc}", "invalid_json")
        try:
            reply = await asyncio.wrap_future(generator.submit(messages, params))
        except Exception as exc:  # the model failed on this batch
            counts["failed"] += 1
            return error(500, f"generation failed: {type(exc).__name__}: {exc}", "generation_failed")
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
                "created": int(time.time()), "model": name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                             "finish_reason": reply.finish_reason}],
                "usage": reply.usage}

    return app


def serve(model_dir: str | Path, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          max_batch: int = 8, device: str = "cpu", dtype: str = "float32",
          gather_seconds: float = 0.05, model_name: str | None = None,
          log_level: str = "info") -> None:
    """Load the model, then serve it until interrupted (``/health`` answers once loaded)."""
    import uvicorn

    from affectgpt.llm.engine import BatchedGenerator

    generator = BatchedGenerator(model_dir, max_batch=max_batch, device=device, dtype=dtype,
                                 gather_seconds=gather_seconds)
    try:
        uvicorn.run(create_app(generator, model_name), host=host, port=port, log_level=log_level)
    finally:
        generator.close()


def add_serve_llm_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``affectgpt serve-llm`` on an ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "serve-llm", help="an OpenAI-compatible chat server that batches concurrent requests",
        description="Serve a transformers text model folder at /v1/chat/completions (OpenAI "
                    "format, no streaming, text only) on loopback unless --host says otherwise. "
                    "Concurrent requests with the same decoding parameters are generated as one "
                    "batch, so annotation at concurrency N runs up to N requests for about the "
                    "price of one. GET /v1/stats shows the batch sizes.")
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
          model_name=args.name, log_level=args.log_level)
    return 0
