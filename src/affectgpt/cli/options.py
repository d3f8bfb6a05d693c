"""Options shared by several verbs, and what they build: an LLM endpoint (with the local
server when asked for) and a model source."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

LLM_HELP = """LLM endpoint options (any OpenAI-compatible chat server: vLLM, llama.cpp server,
`transformers serve`, hosted APIs). Replies are cached on disk, keyed by model, prompt
version and request, so a rerun makes no server calls."""


def add_llm_options(parser: argparse.ArgumentParser) -> None:
    """The ``--llm-*`` endpoint options and ``--local-server``."""
    from affectgpt.llm.endpoint import ChatEndpoint

    d = ChatEndpoint()
    g = parser.add_argument_group("LLM", LLM_HELP)
    g.add_argument("--llm-base-url", default=d.base_url,
                   help="base URL of the OpenAI-compatible API, ending in /v1 (default: %(default)s)")
    g.add_argument("--llm-model", default=d.model,
                   help="model name sent with each request (default: %(default)s, the paper's)")
    g.add_argument("--llm-api-key-env", default=d.api_key_env,
                   help="environment variable holding the API key; may be unset for local servers "
                        "(default: %(default)s)")
    g.add_argument("--allow-insecure-api-key", action="store_true",
                   help="send the API key over plain http to a host that is not loopback (by "
                        "default a key goes only to https endpoints and to this machine)")
    g.add_argument("--llm-concurrency", type=int, default=d.concurrency,
                   help="requests in flight at once (default: %(default)s)")
    g.add_argument("--llm-timeout", type=float, default=d.timeout,
                   help="seconds before one request times out (default: %(default)s)")
    g.add_argument("--llm-max-retries", type=int, default=d.max_retries,
                   help="retries with exponential backoff on timeouts, 429 and 5xx (default: %(default)s)")
    g.add_argument("--llm-max-attempts", type=int, default=d.max_attempts,
                   help="attempts per sample when the reply is invalid; each retry tells the model what "
                        "was wrong; after the last the sample is recorded as failed (default: %(default)s)")
    g.add_argument("--llm-max-tokens", type=int, default=d.max_tokens,
                   help="longest reply in tokens (default: %(default)s)")
    g.add_argument("--llm-cache", default=d.cache,
                   help="sqlite reply cache (default: $AFFECTGPT_CACHE/llm-cache.sqlite, "
                        "$AFFECTGPT_CACHE defaulting to ~/.cache/affectgpt)")
    g.add_argument("--local-server", action="store_true",
                   help="start the packaged SmolLM2-135M-Instruct behind `affectgpt serve-llm` on "
                        "loopback (batching --llm-concurrency requests) and use it (offline; for "
                        "trying the pipeline, not for paper numbers)")


def llm_config(args: argparse.Namespace):
    """The endpoint the ``--llm-*`` options name."""
    from affectgpt.llm.endpoint import ChatEndpoint

    return ChatEndpoint(base_url=args.llm_base_url, model=args.llm_model,
                        api_key_env=args.llm_api_key_env,
                        allow_insecure_api_key=args.allow_insecure_api_key,
                        concurrency=args.llm_concurrency, timeout=args.llm_timeout,
                        max_retries=args.llm_max_retries, max_attempts=args.llm_max_attempts,
                        max_tokens=args.llm_max_tokens, cache=args.llm_cache)


@contextlib.contextmanager
def local_server_scope(args: argparse.Namespace, llm) -> Iterator:
    """With ``--local-server``: the packaged LLM behind ``affectgpt serve-llm`` for the
    duration of the block, ``llm``'s base URL and model pointed at it; else ``llm`` as is."""
    if not getattr(args, "local_server", False):
        yield llm
        return
    from affectgpt.llm.server import local_llm_server

    with local_llm_server(max_batch=llm.concurrency) as server:
        llm.base_url, llm.model = server.base_url, server.model
        yield llm


def add_model_source_options(p, *, preset: bool) -> None:
    """``--model`` (or, with ``preset``, ``--model``/``--untrained-preset``), ``--set`` and
    ``--device``: what :func:`load_model` takes, for every command that loads a model."""
    if preset:
        source = p.add_mutually_exclusive_group()
        source.add_argument("--model", help="trained model folder (OUT/model of affectgpt "
                                            "train, AffectGPT.save_pretrained)")
        source.add_argument("--untrained-preset", "--preset", dest="preset", metavar="NAME",
                            help="a preset with untrained (random) adapters: the pipeline only, "
                                 "its descriptions are noise (default without --model: "
                                 "zero-shot with the packaged clue models)")
    else:
        p.add_argument("--model", required=True,
                       help="trained model folder (OUT/model of affectgpt train)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="dotted model-config override, e.g. --set llm.path=/models/vicuna")
    p.add_argument("--device", default="auto",
                   help="cpu, cuda, cuda:1 or auto (CUDA when available; default: %(default)s)")


def add_generation_options(p, *, preset: bool) -> None:
    """:func:`add_model_source_options` and the decoding options of infer/describe."""
    add_model_source_options(p, preset=preset)
    p.add_argument("--max-new-tokens", type=int,
                   help="longest description in tokens (default: the model's generation "
                        "setting)")
    p.add_argument("--sample", action="store_true",
                   help="sample (top-p, temperature of the model config) instead of greedy "
                        "decoding; reproducible with --seed")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")


def load_model_from_args(args: argparse.Namespace):
    """The model :func:`add_model_source_options` names (a warning without ``--model``)."""
    from affectgpt.inference import load_model

    if not getattr(args, "model", None):
        import warnings

        warnings.warn(f"no --model: the {args.preset!r} preset's adapters are untrained "
                      "(random); the description shows the pipeline, not a trained model",
                      stacklevel=2)
    return load_model(getattr(args, "model", None), getattr(args, "preset", "small"),
                      args.overrides, getattr(args, "device", None))
