"""Collating EmotionDataset items into AffectGPT batches: masks for missing modalities and
shorter sequences; a clip without an audio track is a sample without audio."""

from __future__ import annotations

import pytest
from clip_helpers import strip_audio

torch = pytest.importorskip("torch")

from affectgpt.data.collate import OptionalMedia, collate_batch  # noqa: E402
from affectgpt.data.manifest import Sample  # noqa: E402
from affectgpt.media import CorruptMediaError, NoAudioStreamError, read_audio  # noqa: E402


def _item(name, video=None, audio=None, subtitle="hi", target="calm"):
    return {"name": name, "video": video, "audio": audio, "subtitle": subtitle,
            "target": target, "labels": ["calm"]}


def test_masks_for_missing_audio_and_short_sequences():
    g = torch.Generator().manual_seed(0)
    v = [torch.randn(4, 2, 16, generator=g), torch.randn(3, 2, 16, generator=g),
         torch.randn(4, 2, 16, generator=g)]
    a = [torch.randn(3, 12, generator=g), None, torch.randn(2, 12, generator=g)]
    batch = collate_batch([_item(f"s{i}", v[i], a[i]) for i in range(3)])
    assert batch["video"].shape == (3, 4, 2, 16) and batch["audio"].shape == (3, 3, 12)
    assert batch["video_mask"].tolist() == [True, True, True]
    assert batch["audio_mask"].tolist() == [True, False, True]
    assert batch["video_frame_mask"].tolist() == [[True] * 4, [True] * 3 + [False],
                                                  [True] * 4]
    assert batch["audio_clip_mask"][[0, 2]].tolist() == [[True] * 3, [True, True, False]]
    torch.testing.assert_close(batch["video"][1, :3], v[1])
    assert not batch["video"][1, 3].any() and not batch["audio"][1].any()
    assert batch["name"] == ["s0", "s1", "s2"] and batch["target"] == ["calm"] * 3
    assert batch["labels"] == [["calm"]] * 3 and batch["subtitle"] == ["hi"] * 3


def test_full_length_batches_carry_no_position_masks_and_absent_modalities_are_none():
    items = [_item("a", video=torch.ones(8, 128)), _item("b", video=torch.zeros(8, 128),
                                                          target=None)]
    batch = collate_batch(items)
    assert batch["video"].shape == (2, 8, 128) and batch["video_frame_mask"] is None
    assert batch["audio"] is None and batch["audio_mask"] is None
    assert batch["target"] is None  # generation batches
    with pytest.raises(ValueError, match="share their shape"):
        collate_batch([_item("a", video=torch.ones(8, 128)), _item("b", video=torch.ones(8, 64))])
    with pytest.raises(ValueError, match="empty list"):
        collate_batch([])


def test_the_model_trains_on_a_collated_batch_without_audio_for_one_sample():
    pytest.importorskip("transformers")
    from affectgpt.model import AffectGPT, load_preset

    torch.manual_seed(0)
    cfg = load_preset("tiny")
    model = AffectGPT.from_config(cfg)
    items = [_item(f"s{i}", torch.randn(cfg.video.frames - i, cfg.video.tokens_per_frame,
                                        cfg.video.feature_dim),
                   None if i == 1 else torch.randn(cfg.audio.clips, cfg.audio.feature_dim))
             for i in range(3)]
    batch = collate_batch(items)
    out = model(batch, return_logits=True)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    # a sample without audio gets the prompt without the audio block, as when alone
    alone = model(collate_batch([items[1]]), return_logits=True).logits
    assert alone.shape[1] <= out.logits.shape[1]


def test_optional_media_no_audio_track_is_missing_corrupt_file_is_an_error(tmp_path, synth):
    root, samples = synth.get(1, seed=5, duration=(2.0, 2.2), size=64, fps=5)
    clip = samples[0]
    silent = tmp_path / "silent.mp4"
    strip_audio(clip.video, silent)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    rows = {"with": Sample("with", video=clip.video), "silent": Sample("silent", video=str(silent)),
            "none": Sample("none"), "broken": Sample("broken", video=str(broken)),
            "sep": Sample("sep", video=clip.video, audio=str(silent))}

    def source(name):
        s = rows[name]
        return torch.from_numpy(read_audio(s.audio or s.video)[:160])

    audio = OptionalMedia(source, rows, "audio")
    assert audio("with").shape == (160,)
    assert audio("silent") is None and audio("none") is None
    assert audio.missing == {"silent", "none"}
    with pytest.raises(CorruptMediaError, match="broken.mp4"):
        audio("broken")
    with pytest.raises(NoAudioStreamError):  # an explicit audio file must hold audio
        audio("sep")


