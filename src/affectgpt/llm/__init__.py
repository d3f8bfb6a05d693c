"""LLM access for evaluation and annotation: an OpenAI-compatible chat client with an
on-disk reply cache, and a real local model server (SmolLM2-135M via ``transformers serve``)."""

from affectgpt.llm.cache import ResponseCache, request_key
from affectgpt.llm.client import ChatClient, ChatReply, LLMError
from affectgpt.llm.server import LocalModelServer, ServerError, export_smollm2

__all__ = [
    "ChatClient",
    "ChatReply",
    "LLMError",
    "LocalModelServer",
    "ResponseCache",
    "ServerError",
    "export_smollm2",
    "request_key",
]
