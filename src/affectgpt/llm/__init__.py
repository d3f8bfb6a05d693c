"""LLM access for evaluation and annotation: an OpenAI-compatible chat client with an
on-disk reply cache, and real local model servers (SmolLM2-135M via ``transformers serve``
or ``affectgpt serve-llm``). The batching engine (:mod:`affectgpt.llm.engine`, needs torch)
and the server app (:mod:`affectgpt.llm.serve`) are imported from their modules."""

from affectgpt.llm.cache import ResponseCache, request_key
from affectgpt.llm.client import (
    ChatClient,
    ChatReply,
    InsecureAPIKeyError,
    LLMError,
    ServerSpeedTimeout,
    redact_url,
)
from affectgpt.llm.server import LocalModelServer, ServerError, export_smollm2

__all__ = [
    "ChatClient",
    "ChatReply",
    "InsecureAPIKeyError",
    "LLMError",
    "LocalModelServer",
    "ResponseCache",
    "ServerError",
    "ServerSpeedTimeout",
    "export_smollm2",
    "redact_url",
    "request_key",
]
