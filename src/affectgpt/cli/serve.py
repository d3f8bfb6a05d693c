"""``affectgpt serve-demo`` (the web page) and ``affectgpt serve-llm`` (an OpenAI-compatible
server for local text models)."""

from __future__ import annotations

from affectgpt.llm.serve import add_serve_llm_parser
from affectgpt.report.web import add_serve_demo_parser


def add_parsers(sub) -> None:
    """Register ``serve-demo`` and ``serve-llm``."""
    add_serve_demo_parser(sub)
    add_serve_llm_parser(sub)
