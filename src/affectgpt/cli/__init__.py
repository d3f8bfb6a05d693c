"""The ``affectgpt`` command: ``affectgpt <verb> --help`` explains every option.

One module per group of verbs, each with ``add_parsers(subparsers)`` (or
``add_<verb>_parser``) and its ``cmd_*`` functions; options several verbs share live in
:mod:`affectgpt.cli.options`.
"""

from __future__ import annotations

import argparse
import sys

from affectgpt import __version__
from affectgpt.cli import annotate, data, demo, evaluate, features, infer, serve, train

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="affectgpt",
        description="Explainable multimodal emotion recognition (AffectGPT): evaluation, label "
                    "extraction, datasets and synthetic corpora, frozen-encoder feature caches.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"affectgpt {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="<verb>")
    evaluate.add_parsers(sub)  # evaluate, extract-labels
    data.add_parsers(sub)  # make-synthetic, import-emer, import-videos, split
    features.add_parsers(sub)  # features, model-info
    demo.add_demo_parser(sub)
    train.add_train_parser(sub)
    infer.add_infer_parser(sub)
    infer.add_describe_parser(sub)
    annotate.add_annotate_parser(sub)
    serve.add_parsers(sub)  # serve-demo, serve-llm
    return parser


def _domain_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input or a missing tool: printed as one line, exit status 2."""
    from affectgpt.data.speech import SpeechError
    from affectgpt.demo.config import DemoConfigError
    from affectgpt.features.cache import FeatureCacheMismatch
    from affectgpt.features.sources import SampleMediaError
    from affectgpt.inference import InferenceInputError
    from affectgpt.llm.client import LLMError
    from affectgpt.media import MediaError
    from affectgpt.model.config import ConfigError
    from affectgpt.train.config import TrainSettingsError

    errors = (SpeechError, FeatureCacheMismatch, LLMError, ConfigError, DemoConfigError,
              SampleMediaError, InferenceInputError, MediaError, TrainSettingsError)
    try:
        from affectgpt.model.affectgpt import LLMMismatchError
    except ImportError:  # no transformers: no checkpoint can have been loaded either
        return errors
    return (*errors, LLMMismatchError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from affectgpt.eval.labels import LabelFormatError
    from affectgpt.eval.set_metric import EvaluationInputError

    try:
        return args.func(args)
    except (LabelFormatError, EvaluationInputError, FileNotFoundError, *_domain_errors()) as exc:
        print(f"affectgpt {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"affectgpt {args.verb}: interrupted", file=sys.stderr)
        return 130

