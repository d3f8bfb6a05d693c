"""An OpenAI-compatible chat endpoint: where to send requests, how patiently, and where
replies are cached (what the ``--llm-*`` options of evaluate, extract-labels and train
describe)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from affectgpt.llm.cache import ResponseCache
from affectgpt.llm.client import ChatClient, redact_url
from affectgpt.paths import cache_root

__all__ = ["ChatEndpoint"]


@dataclass
class ChatEndpoint:
    """An OpenAI-compatible chat endpoint. The key itself is never stored: ``api_key_env``
    names the environment variable holding it, and it is sent only over https or to a
    loopback host unless ``allow_insecure_api_key``."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "gpt-3.5-turbo-16k-0613"
    api_key_env: str = "OPENAI_API_KEY"
    allow_insecure_api_key: bool = False
    concurrency: int = 4
    timeout: float = 120.0
    max_retries: int = 4
    max_attempts: int = 3
    max_tokens: int = 512
    cache: str | None = None  # default: <cache root>/llm-cache.sqlite ($AFFECTGPT_CACHE)

    def client(self) -> ChatClient:
        """A :class:`ChatClient` for this endpoint with its on-disk reply cache."""
        cache_path = Path(self.cache).expanduser() if self.cache else cache_root() / "llm-cache.sqlite"
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        return ChatClient(self.base_url, self.model, api_key_env=self.api_key_env or None,
                          timeout=self.timeout, max_retries=self.max_retries,
                          concurrency=self.concurrency, cache=ResponseCache(cache_path),
                          allow_insecure_key=self.allow_insecure_api_key)

    def to_dict(self) -> dict:
        """The fields, with credentials in ``base_url`` redacted (for stored records)."""
        return asdict(self) | {"base_url": redact_url(self.base_url)}
