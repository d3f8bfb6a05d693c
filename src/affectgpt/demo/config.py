"""Settings of `affectgpt demo`: one dataclass, embedded defaults, YAML and dotted overrides."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from affectgpt.config import (
    ConfigError,
    coerce,
    errors_as,
    field_types,
    parse_override,
    read_mapping,
)
from affectgpt.data.faces import EXPRESSIONS
from affectgpt.data.synthetic.plan import DEFAULT_EMOTIONS

# The tiny random LLM on the real CPU encoders: the reduced demo that `make test` runs.
TINY_ON_REAL_ENCODERS = [
    "video.encoder=face-cnn", "video.feature_dim=128", "video.tokens_per_frame=1",
    "video.frames=8", "audio.encoder=whisper-base-clip", "audio.feature_dim=512",
    "audio.clips=4", "audio.max_positions=4"]


#: the settings that decide the corpus and its features (shared by runs that differ only in
#: training settings), and in addition those that decide the annotation
DATA_SETTINGS = ("seed", "coarse", "fine", "test_fraction", "clip_seconds", "clip_size",
                 "fine_style", "emotions", "preset", "overrides")
ANNOTATION_SETTINGS = DATA_SETTINGS + ("annotate_backend", "annotate_max_tokens",
                                       "annotate_filter")
#: the settings of the optional reinforcement-learning step: they name the RL steps' own
#: folder and are left out of the work folder's fingerprint, so turning RL on (or changing
#: it) reuses every finished supervised step
RL_SETTINGS = ("rl", "rl_epochs", "rl_lr", "rl_batch_size", "rl_group_size",
               "rl_max_new_tokens", "rl_temperature", "rl_kl_coef", "rl_reward",
               "rl_length_target", "rl_wheel_dir")
#: settings that change no step's result (machine use, or only which steps run)
UNHASHED_SETTINGS = ("workers", "device", "seeds", "modalities", "modality_seeds")
#: what the stages train the LLM to write (:attr:`DemoConfig.targets`)
TARGETS = ("descriptions", "label-first", "labels")


class DemoConfigError(ConfigError):
    """An unknown demo setting or a value of the wrong type."""


@dataclass
class DemoConfig:
    """Everything the demo does, with defaults sized for a 2-core CPU (7 minutes on a
    quiet AVX-512 Xeon, measured: benchmarks/results/demo-cpu.json; docs/demo-tuning.md).

    Corpus
        ``coarse`` synthetic clips for stage 1 (annotated by the pipeline when
        ``annotate``), ``fine`` clips with gold descriptions, ``test_fraction`` of them
        held out (seeded); ``fine_style="coarse"`` keeps the gold descriptions short so a
        CPU trains on them in minutes (``"fine"``: the long EMER-Fine-like ones).
    Annotation
        Audio clues from measured prosody and video clues from the packaged facial-
        expression CNN, merged with the subtitle by SmolLM2-135M-Instruct (served on
        loopback with ``annotate_backend="server"``, or in-process with
        ``"transformers"``), labels by the offline lexicon, then (``annotate_filter``)
        descriptions without labels or with contradicting clues dropped; the labels are
        scored against the generator's truth. ``stage1_targets`` picks what stage 1 learns
        from: ``"generated"`` (the generator's coarse descriptions, standing in for a good
        annotator: the packaged CPU clue models are far weaker than the paper's MLLMs) or
        ``"annotated"`` (the pipeline's own output). ``annotate=False`` skips the pipeline.
        ``targets``: what both stages train the LLM to write: ``"descriptions"`` (the
        descriptions above, the conclusion last), ``"label-first"`` (the same with the
        conclusion "The person seems sad and sorrowful." first, so that scoring needs to
        generate only ``eval_max_new_tokens`` ~ 16 tokens instead of the ~70 of a full
        coarse description: the CPU demo's choice) or ``"labels"`` (the primary label
        alone, ``"sad."``: what a tiny random LLM can learn in seconds; the reduced demo's).
    Training and protocol
        ``preset`` + ``overrides`` (model; the defaults' ``prompt.order=text-first``, the
        subtitle and question before the audio and video sentences, lets the frozen LLM's
        keys and values over most of the prompt be computed once per clip: chosen on
        validation, docs/demo-tuning.md round 4), stage 1 for ``stage1_epochs`` on the coarse
        pool, stage 2 for ``stage2_epochs`` on the fine train split (``stage2_lr``,
        ``stage2_min_lr``, ``stage2_warmup_steps``: stage 2's own schedule, ``None``
        meaning stage 1's; the defaults were chosen on validation, docs/demo-tuning.md).
        Each stage carves ``val_fraction`` of its training clips into a seeded
        validation split that chooses the checkpoint (``select_on="val"``; ``"test"``: the
        authors' protocol, best epoch on test, labelled so everywhere) and stage 2 starts
        from stage 1's validation-selected export. Every trained system runs once per
        training seed in ``seeds``; the test split is scored at the selected checkpoint
        only, and the tables show mean ± std (population) over the seeds.
        ``modalities`` (off by default: six more stage-2 runs): the modality ablation (the
        stage-2 recipe with video or audio withheld; Table 1 / Figure 5 in miniature), run
        on the first ``modality_seeds`` seeds (its rows are compared on those seeds only).
        Adding seeds or the ablation to a finished run reuses its steps.
    Reinforcement learning (optional, off: it does not fit the CPU time budget)
        ``rl``: after each seed's stage 1 + 2, GRPO (:func:`affectgpt.train.rl_stage.rl_stage`)
        from its validation-selected export on the same fine train split, the checkpoint
        chosen on the same validation split (never on test), then scored on the test split
        like every system, as "stage 1 + 2 + RL". ``rl_epochs``, ``rl_lr`` (constant),
        ``rl_batch_size`` clips per step, ``rl_group_size`` descriptions sampled per clip
        (G) at ``rl_temperature``, ``rl_max_new_tokens`` each (``None``: the scorer's
        ``eval_max_new_tokens``, so the reward judges what the test scores), ``rl_kl_coef``
        (the KL weight to the supervised model); ``rl_reward``: reward weights over
        ``wheel``, ``set``, ``format``, ``length``, ``gaming`` (``None``: wheel + length +
        gaming with ``rl_wheel_dir``, else set + length + gaming), ``rl_length_target``
        words before the length penalty; ``rl_wheel_dir``: the emotion-wheel tables, for
        the wheel reward and the EW score on test of stage 1 + 2 and of RL. These settings
        name the RL steps' own folder only: every other step is reused.
    """

    seed: int = 0
    coarse: int = 48
    fine: int = 100
    test_fraction: float = 0.5
    clip_seconds: list[float] = field(default_factory=lambda: [2.5, 4.0])
    clip_size: int = 224
    fine_style: str = "coarse"
    emotions: list[str] = field(default_factory=lambda: list(DEFAULT_EMOTIONS))
    workers: int = 2

    annotate: bool = True
    annotate_backend: str = "transformers"
    annotate_max_tokens: int = 40
    annotate_concurrency: int = 16
    annotate_filter: bool = True
    stage1_targets: str = "generated"
    targets: str = "label-first"

    preset: str = "small"
    overrides: list[str] = field(default_factory=lambda: ["video.num_query=8",
                                                          "prompt.order=text-first"])
    stage1_epochs: int = 1
    stage2_epochs: int = 3
    batch_size: int = 4
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup_steps: int = 10
    stage2_lr: float | None = 5e-3
    stage2_min_lr: float | None = 5e-4
    stage2_warmup_steps: int | None = None
    device: str = "auto"

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    val_fraction: float = 0.2
    select_on: str = "val"
    modalities: bool = False
    modality_seeds: int = 3

    eval_max_new_tokens: int = 14
    eval_batch_size: int = 32
    describe_max_new_tokens: int = 60

    rl: bool = False
    rl_epochs: int = 2
    rl_lr: float = 1e-4
    rl_batch_size: int = 2
    rl_group_size: int = 4
    rl_max_new_tokens: int | None = None
    rl_temperature: float = 1.0
    rl_kl_coef: float = 0.04
    rl_reward: dict[str, float] | None = None
    rl_length_target: int = 40
    rl_wheel_dir: str | None = None

    def __post_init__(self) -> None:
        if self.coarse < 2 or self.fine < 4:
            raise DemoConfigError("coarse must be >= 2 and fine >= 4")
        if not 0.0 < self.test_fraction < 1.0:
            raise DemoConfigError("test_fraction must be in (0, 1)")
        if not self.emotions or len(set(self.emotions)) != len(self.emotions) or any(
                e not in EXPRESSIONS for e in self.emotions):
            raise DemoConfigError(f"emotions must be distinct names from "
                                  f"{', '.join(EXPRESSIONS)}")
        if self.fine_style not in ("fine", "coarse"):
            raise DemoConfigError("fine_style must be 'fine' or 'coarse'")
        if self.stage1_targets not in ("generated", "annotated"):
            raise DemoConfigError("stage1_targets must be 'generated' or 'annotated'")
        if self.stage1_targets == "annotated" and not self.annotate:
            raise DemoConfigError("stage1_targets=annotated needs annotate=true")
        if self.targets not in TARGETS:
            raise DemoConfigError(f"targets must be one of {', '.join(TARGETS)}")
        if self.annotate_backend not in ("server", "transformers"):
            raise DemoConfigError("annotate_backend must be 'server' or 'transformers'")
        for name in ("stage1_epochs", "stage2_epochs", "batch_size", "eval_max_new_tokens",
                     "eval_batch_size", "describe_max_new_tokens", "workers",
                     "annotate_max_tokens", "annotate_concurrency", "modality_seeds"):
            if int(getattr(self, name)) < 1:
                raise DemoConfigError(f"{name} must be >= 1")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise DemoConfigError("seeds must be a non-empty list of distinct integers")
        if not 0.0 < self.val_fraction < 1.0:
            raise DemoConfigError("val_fraction must be in (0, 1)")
        if self.select_on not in ("val", "test"):
            raise DemoConfigError("select_on must be 'val' or 'test' (best epoch on test, "
                                  "the paper protocol)")
        if len(self.clip_seconds) != 2 or not 0 < self.clip_seconds[0] <= self.clip_seconds[1]:
            raise DemoConfigError("clip_seconds must be [min, max] with 0 < min <= max")
        self._check_rl()

    def _check_rl(self) -> None:
        for name in ("rl_epochs", "rl_batch_size", "rl_length_target"):
            if int(getattr(self, name)) < 1:
                raise DemoConfigError(f"{name} must be >= 1")
        if self.rl_group_size < 2:
            raise DemoConfigError("rl_group_size must be >= 2 (GRPO compares the samples of "
                                  "one clip)")
        if self.rl_max_new_tokens is not None and self.rl_max_new_tokens < 1:
            raise DemoConfigError("rl_max_new_tokens must be >= 1 (or null: "
                                  "eval_max_new_tokens)")
        if not self.rl_lr > 0 or not self.rl_temperature > 0 or self.rl_kl_coef < 0:
            raise DemoConfigError("rl_lr and rl_temperature must be > 0, rl_kl_coef >= 0")
        if self.rl_reward is not None:
            from affectgpt.eval.rewards import RewardSettings

            unknown = sorted(set(self.rl_reward) - set(RewardSettings.COMPONENTS))
            if unknown or not self.rl_reward:
                raise DemoConfigError(f"rl_reward: weights over "
                                      f"{', '.join(RewardSettings.COMPONENTS)}, got "
                                      f"{self.rl_reward!r}")
            if any(isinstance(w, bool) or not isinstance(w, (int, float))
                   or not math.isfinite(w) for w in self.rl_reward.values()):
                raise DemoConfigError(f"rl_reward: the weights must be numbers, got "
                                      f"{self.rl_reward!r}")
            if self.rl_reward.get("wheel") and not self.rl_wheel_dir:
                raise DemoConfigError("rl_reward with a wheel weight needs rl_wheel_dir (the "
                                      "emotion-wheel tables)")
        if self.rl_wheel_dir is not None and not Path(self.rl_wheel_dir).is_dir():
            raise DemoConfigError(f"rl_wheel_dir {self.rl_wheel_dir!r} is not a folder (the "
                                  "emotion-wheel tables: wheel1..5.xlsx, synonym.xlsx, "
                                  "format.csv)")
        if self.rl and self.select_on != "val":
            raise DemoConfigError("rl=true chooses the RL checkpoint on validation only: it "
                                  "needs select_on=val")

    @property
    def rl_reward_weights(self) -> dict[str, float]:
        """The RL reward's weights (:attr:`rl_reward`, or its default)."""
        if self.rl_reward is not None:
            return {k: float(v) for k, v in self.rl_reward.items()}
        first = "wheel" if self.rl_wheel_dir else "set"
        return {first: 1.0, "length": 1.0, "gaming": 1.0}

    @classmethod
    def reduced(cls) -> DemoConfig:
        """The demo in about a minute of CPU time (what `make test` runs): 40 tiny clips of
        two emotions, the tiny random LLM (byte tokenizer) with LoRA on the real encoders,
        trained to answer with the primary label alone (``targets="labels"``: a random
        64-wide LLM learns to spell label words in a few dozen steps, not descriptions),
        two seeds (the modality ablation on the first), annotation in-process (scored, not
        trained on).

        Sized so that training visibly works: every seed's two-stage model answers with
        label words and scores well above the untrained one (which writes random bytes);
        with ``lr=0`` it does not. The settings were chosen on training loss, validation
        scores and CPU time (docs/demo-tuning.md)."""
        return cls(coarse=8, fine=32, test_fraction=0.375, clip_seconds=[2.0, 2.4],
                   clip_size=96, emotions=["happy", "sad"], workers=1,
                   annotate_backend="transformers", annotate_max_tokens=16,
                   annotate_concurrency=1, annotate_filter=False, stage1_targets="generated",
                   targets="labels", preset="tiny",
                   overrides=[*TINY_ON_REAL_ENCODERS, "lora.r=8"],
                   stage1_epochs=4, stage2_epochs=6, batch_size=2, lr=1e-2, min_lr=1e-3,
                   warmup_steps=0, stage2_lr=None, stage2_min_lr=None, val_fraction=0.3,
                   eval_max_new_tokens=8, eval_batch_size=4, describe_max_new_tokens=8,
                   seeds=[0, 1], modalities=True, modality_seeds=1)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self, keys: tuple[str, ...] | None = None) -> str:
        """Names a work folder: a hash of the settings (``keys``, default all but the RL
        ones, :data:`RL_SETTINGS`, which name the RL steps' own folder) that change what the
        steps compute. The seeds and the modality ablation's switches only choose which
        steps run (each has its own name): a run with more seeds, the ablation or the RL
        step added reuses the finished steps."""
        data = {k: v for k, v in self.to_dict().items()
                if k not in UNHASHED_SETTINGS
                and (k in keys if keys is not None else k not in RL_SETTINGS)}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DemoConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DemoConfigError(f"unknown demo setting(s) {unknown}; settings: "
                                  f"{', '.join(sorted(known))}")
        return cls(**data)

    def override(self, items: list[str]) -> DemoConfig:
        """A copy with ``KEY=VALUE`` overrides (values read as YAML: ``fine=200``,
        ``overrides=[video.num_query=16]``, ``annotate=false``)."""
        data = self.to_dict()
        hints = field_types(DemoConfig)
        for item in items:
            key, sep, _ = item.partition("=")
            key = key.strip()
            if not sep or key not in data:
                raise DemoConfigError(f"override {item!r}: expected KEY=VALUE with KEY one of "
                                      f"{', '.join(sorted(data))}")
            with errors_as(DemoConfigError):
                data[key] = coerce(parse_override(item)[1], hints[key], key, split_text=False)
        return DemoConfig.from_dict(data)


def load_demo_config(path: str | Path | None = None, overrides: list[str] | None = None, *,
                     reduced: bool = False) -> DemoConfig:
    """The embedded defaults (or :meth:`DemoConfig.reduced`), a YAML file over them, then
    dotted overrides."""
    cfg = DemoConfig.reduced() if reduced else DemoConfig()
    if path is not None:
        with errors_as(DemoConfigError):
            data = read_mapping(path, "demo config")
        cfg = DemoConfig.from_dict({**cfg.to_dict(), **data})
    return cfg.override(list(overrides or []))
