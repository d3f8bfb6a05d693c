"""Typed configuration of the annotation pipeline (dataclasses <-> YAML, dotted overrides).

A run is described by an :class:`AnnotateConfig`: one :class:`StageConfig` per stage of
:data:`STAGES`, in pipeline order. A stage names its back-end (``openai``: any
OpenAI-compatible server; ``transformers``: a local model folder for text stages;
``packaged``: the CPU clue models shipped with affectgpt; ``recorded``: clues read from a
file; ``lexicon``: offline label extraction), its model, prompt version and decoding
parameters, and what its model accepts (``accepts: [text, audio, video, image]``), which
is checked against what the stage sends before any sample runs.

Example::

    cfg = default_config()
    cfg = apply_overrides(cfg, ["merge.max_tokens=256", "audio-clue.enabled=false"])
    print(cfg.to_yaml())
"""

from __future__ import annotations

import copy
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from affectgpt.config import (
    ConfigError,
    coerce,
    errors_as,
    field_types,
    parse_override,
    read_mapping,
)

STAGES: tuple[str, ...] = ("audio-clue", "video-clue", "merge", "translate", "labels", "filter")
BACKENDS: tuple[str, ...] = ("openai", "transformers", "packaged", "recorded", "lexicon", "rules")
MODALITIES: tuple[str, ...] = ("text", "audio", "video", "image")
# Back-ends each stage can use.
STAGE_BACKENDS: dict[str, tuple[str, ...]] = {
    "audio-clue": ("openai", "packaged", "recorded"),
    "video-clue": ("openai", "packaged", "recorded"),
    "merge": ("openai", "transformers", "recorded"),
    "translate": ("openai", "transformers", "recorded"),
    "labels": ("openai", "transformers", "lexicon", "recorded"),
    "filter": ("rules",),
}
# Stages whose rows a stage reads (a sample runs only when all of them have a row or
# are disabled).
UPSTREAM: dict[str, tuple[str, ...]] = {
    "audio-clue": (),
    "video-clue": (),
    "merge": ("audio-clue", "video-clue"),
    "translate": ("merge",),
    "labels": ("merge",),
    "filter": ("audio-clue", "video-clue", "merge", "labels"),
}


class AnnotateConfigError(ConfigError):
    """An invalid annotation configuration: the message names the stage and the field."""


@dataclass
class StageConfig:
    """One stage: back-end, model, prompt and decoding.

    Attributes:
        enabled: run this stage (a disabled clue stage leaves its clue out of the merge).
        backend: one of :data:`BACKENDS` that the stage supports (:data:`STAGE_BACKENDS`).
        base_url: API root of an ``openai`` back-end, ending in ``/v1``.
        model: model name sent to the server; for ``transformers`` a local folder; for
            ``packaged`` a description of the model used (informational).
        api_key_env: environment variable holding the API key (unset is fine locally).
        allow_insecure_api_key: send the key over plain http to a host that is not
            loopback (refused otherwise; https and loopback always get it).
        accepts: modalities the model takes; checked at start-up against what the stage
            sends (audio for ``audio-clue``, video or images for ``video-clue``).
        prompt_version: versioned prompt set (see :mod:`affectgpt.annotate.prompts`).
        temperature / top_p / max_tokens / seed: decoding parameters sent with each request.
        max_attempts: requests per sample when the reply fails validation (each retry
            tells the model what was wrong).
        timeout / max_retries / backoff: per-request timeout and HTTP retries (429, 5xx,
            timeouts) with exponential backoff.
        concurrency: requests in flight at once (0: the run's ``--concurrency``).
        video_mode: ``video_url`` (the mp4 as a base64 data URL; vLLM) or ``frames``
            (``n_frames`` sampled frames as ``image_url`` JPEG parts).
        n_frames: frames sampled per clip (``frames`` mode and the packaged video model).
        max_audio_seconds / max_video_mb: caps on what is sent per sample.
        language: language of the merged description (``en`` or ``zh``); ``translate``
            translates it into the other one.
        recorded: file of recorded outputs for the ``recorded`` back-end (a stage JSONL
            written by an earlier run, or CSV/JSONL with ``name`` and ``column``).
        column: the column of ``recorded`` to read.
        fallback: ``labels`` only: ``lexicon`` to fall back on the offline extractor when
            the LLM's replies stay invalid (marked ``fallback`` in the row), or ``none``.
        require_labels / drop_contradictions / min_words: ``filter`` rules.
        extra: further request fields sent as they are (e.g. ``{"stop": ["###"]}``).
    """

    enabled: bool = True
    backend: str = "openai"
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = ""
    api_key_env: str | None = "OPENAI_API_KEY"
    allow_insecure_api_key: bool = False
    accepts: list[str] = field(default_factory=lambda: ["text"])
    prompt_version: str = "emer-coarse-v1"
    temperature: float = 0.0
    top_p: float | None = None
    max_tokens: int = 512
    seed: int | None = None
    max_attempts: int = 3
    timeout: float = 120.0
    max_retries: int = 4
    backoff: float = 1.0
    concurrency: int = 0
    video_mode: str = "video_url"
    n_frames: int = 8
    max_audio_seconds: float = 30.0
    max_video_mb: float = 20.0
    language: str = "en"
    recorded: str | None = None
    column: str = "clue"
    fallback: str = "none"
    require_labels: bool = True
    drop_contradictions: bool = True
    min_words: int = 3
    extra: dict[str, Any] = field(default_factory=dict)

    def sends(self, stage: str) -> set[str]:
        """Modalities this stage sends to its model (for the start-up capability check)."""
        if stage == "audio-clue":
            return {"text", "audio"}
        if stage == "video-clue":
            return {"text", "video" if self.video_mode == "video_url" else "image"}
        return {"text"}

    def decoding(self) -> dict[str, Any]:
        """The decoding parameters as sent (and recorded in every row)."""
        params: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.top_p is not None:
            params["top_p"] = self.top_p
        if self.seed is not None:
            params["seed"] = self.seed
        params.update(self.extra)
        return params


def _default_stages() -> dict[str, StageConfig]:
    return {
        # The paper's best pair is SALMONN (audio) + Chat-UniVi (video); neither is served by
        # vLLM, so the defaults name models an OpenAI-compatible server can serve.
        "audio-clue": StageConfig(model="Qwen/Qwen2-Audio-7B-Instruct", accepts=["text", "audio"],
                                  max_tokens=256),
        "video-clue": StageConfig(model="Qwen/Qwen2.5-VL-7B-Instruct",
                                  accepts=["text", "video", "image"], max_tokens=256),
        "merge": StageConfig(model="Qwen/Qwen2.5-7B-Instruct", max_tokens=512),
        "translate": StageConfig(model="Qwen/Qwen2.5-7B-Instruct", max_tokens=768),
        "labels": StageConfig(model="Qwen/Qwen2.5-7B-Instruct", max_tokens=128),
        "filter": StageConfig(backend="rules", model=""),
    }


@dataclass
class AnnotateConfig:
    """A whole annotation run: the stages (in :data:`STAGES` order) and run options.

    Attributes:
        stages: ``{stage name: StageConfig}``.
        concurrency: samples in flight per stage unless a stage sets its own.
        cache: sqlite reply cache for ``openai`` stages (None: off; the stage files are
            already the record of what was answered).
    """

    stages: dict[str, StageConfig] = field(default_factory=_default_stages)
    concurrency: int = 4
    cache: str | None = None

    def enabled(self) -> list[str]:
        return [s for s in STAGES if self.stages[s].enabled]

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain data; credentials in a ``base_url`` are redacted
        (this is what ``run.json`` stores)."""
        from affectgpt.llm.client import redact_url

        stages = {name: asdict(self.stages[name]) for name in STAGES}
        for stage in stages.values():
            stage["base_url"] = redact_url(stage["base_url"])
        return {"concurrency": self.concurrency, "cache": self.cache, "stages": stages}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnnotateConfig:
        if not isinstance(data, dict):
            raise AnnotateConfigError("an annotation config must be a mapping")
        unknown = sorted(set(data) - {"stages", "concurrency", "cache"})
        if unknown:
            raise AnnotateConfigError(f"unknown config key(s) {unknown}; allowed: stages, "
                                      "concurrency, cache")
        cfg = cls()
        for key in ("concurrency", "cache"):
            if key in data:
                setattr(cfg, key, data[key])
        stages = data.get("stages") or {}
        if not isinstance(stages, dict):
            raise AnnotateConfigError("'stages' must be a mapping of stage name to settings")
        for name, values in stages.items():
            if name not in STAGES:
                raise AnnotateConfigError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
            for key, value in (values or {}).items():
                _set_field(cfg.stages[name], name, key, value)
        validate_config(cfg)
        return cfg


def _set_field(stage_cfg: StageConfig, stage: str, key: str, value: Any) -> None:
    hints = field_types(StageConfig)
    if key not in hints:
        raise AnnotateConfigError(f"unknown setting {stage}.{key}; settings: {', '.join(hints)}")
    if isinstance(value, str) and not value.strip() and type(None) in typing.get_args(hints[key]):
        value = None  # "--set merge.api_key_env=" unsets an optional setting
    with errors_as(AnnotateConfigError):
        setattr(stage_cfg, key, coerce(value, hints[key], f"{stage}.{key}"))


def validate_config(cfg: AnnotateConfig) -> None:
    """Raise :class:`AnnotateConfigError` for settings no stage can run with."""
    if not isinstance(cfg.concurrency, int) or cfg.concurrency < 1:
        raise AnnotateConfigError(f"concurrency must be a positive integer, got {cfg.concurrency!r}")
    for name in STAGES:
        s = cfg.stages[name]
        if s.backend not in STAGE_BACKENDS[name]:
            raise AnnotateConfigError(
                f"stage {name!r}: backend {s.backend!r} not available; use one of "
                f"{', '.join(STAGE_BACKENDS[name])}")
        bad = [m for m in s.accepts if m not in MODALITIES]
        if bad:
            raise AnnotateConfigError(f"stage {name!r}: unknown modalities {bad} in accepts; "
                                      f"use {', '.join(MODALITIES)}")
        if s.video_mode not in ("video_url", "frames"):
            raise AnnotateConfigError(f"stage {name!r}: video_mode must be video_url or frames")
        if s.language not in ("en", "zh"):
            raise AnnotateConfigError(f"stage {name!r}: language must be en or zh")
        if s.fallback not in ("none", "lexicon"):
            raise AnnotateConfigError(f"stage {name!r}: fallback must be none or lexicon")
        for key in ("max_tokens", "max_attempts", "n_frames"):
            if getattr(s, key) < 1:
                raise AnnotateConfigError(f"stage {name!r}: {key} must be at least 1")
        if s.concurrency < 0 or s.max_retries < 0:
            raise AnnotateConfigError(f"stage {name!r}: concurrency and max_retries must be >= 0")
        if s.enabled and s.backend == "recorded" and not s.recorded:
            raise AnnotateConfigError(f"stage {name!r}: backend 'recorded' needs "
                                      f"{name}.recorded=FILE")
        if s.enabled and s.backend in ("openai", "transformers") and not s.model:
            raise AnnotateConfigError(f"stage {name!r}: backend {s.backend!r} needs a model")


def default_config() -> AnnotateConfig:
    """The default configuration (OpenAI-compatible servers for every model stage)."""
    return AnnotateConfig()


def load_config(path: str | Path | None = None) -> AnnotateConfig:
    """The default configuration, or one read from a YAML file (unset keys keep defaults)."""
    if path is None:
        return default_config()
    path = Path(path)
    with errors_as(AnnotateConfigError):
        data = read_mapping(path, "annotation config")
    try:
        return AnnotateConfig.from_dict(data)
    except AnnotateConfigError as exc:
        raise AnnotateConfigError(f"{path}: {exc}") from None


def apply_overrides(cfg: AnnotateConfig, overrides: list[str]) -> AnnotateConfig:
    """A copy of ``cfg`` with dotted overrides: ``merge.max_tokens=64``, ``concurrency=8``,
    ``*.base_url=http://host:8000/v1`` (every stage), values parsed as YAML."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        with errors_as(AnnotateConfigError):
            key, value = parse_override(item)
        if key in ("concurrency", "cache"):
            with errors_as(AnnotateConfigError):
                setattr(cfg, key, coerce(value if value != "" else None,
                                         field_types(AnnotateConfig)[key], key))
            continue
        stage, dot, attr = key.partition(".")
        if not dot:
            raise AnnotateConfigError(f"override {item!r}: use STAGE.SETTING=VALUE")
        targets = list(STAGES) if stage == "*" else [stage]
        for name in targets:
            if name not in STAGES:
                raise AnnotateConfigError(f"unknown stage {name!r} in override {item!r}; "
                                          f"stages: {', '.join(STAGES)}")
            if stage == "*" and attr in ("base_url", "model", "api_key_env") and \
                    cfg.stages[name].backend not in ("openai", "transformers"):
                continue
            _set_field(cfg.stages[name], name, attr, value)
    validate_config(cfg)
    return cfg
