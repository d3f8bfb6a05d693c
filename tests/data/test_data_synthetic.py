"""The synthetic corpus: real MP4 files whose emotional cue lives in the chosen modality."""

import json
import shutil
import subprocess

import av
import numpy as np
import pytest

from affectgpt.data import faces
from affectgpt.data.manifest import read_manifest
from affectgpt.data.splits import read_split
from affectgpt.data.synthetic import (
    CUES,
    DEFAULT_EMOTIONS,
    describe,
    make_synthetic,
    make_synthetic_corpus,
    plan_clip,
    probe_clip,
)

SMALL = {"size": 96, "fps": 8, "duration": (2.5, 5.0)}


def _frames(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _audio(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])


def _f0(x: np.ndarray, rate: int = 22050) -> float:
    """Median pitch (Hz) of the voiced 40 ms frames, by autocorrelation."""
    size, hop, found = int(0.04 * rate), int(0.01 * rate), []
    lo, hi = int(rate / 400), int(rate / 60)
    for start in range(0, len(x) - size, hop):
        w = x[start:start + size]
        if np.sqrt(np.mean(w ** 2)) < 0.02:
            continue
        w = w - w.mean()
        ac = np.correlate(w, w, "full")[size - 1:]
        k = lo + int(np.argmax(ac[lo:hi]))
        if ac[k] > 0.5 * ac[0]:
            found.append(rate / k)
    return float(np.median(found))


def _pair(synth, cue, n=2):
    """The same clips (same seed) once with every clip happy and once sad."""
    return ([s for s in synth.get(n, cue=cue, emotions=["happy"], seed=1)[1]],
            [s for s in synth.get(n, cue=cue, emotions=["sad"], seed=1)[1]])


def test_clips_decode_with_the_requested_format(synth):
    out, samples = synth.get(2, cue="all", seed=5, **SMALL)
    for s in samples:
        info = probe_clip(s.video)
        timing = s.extra["synthetic"]["timing"]
        assert (info["width"], info["height"], info["fps"]) == (96, 96, 8.0)
        assert info["frames"] == timing["n_frames"] and 2.5 <= info["duration"] <= 5.0
        assert info["video_codec"] in ("h264", "mpeg4") and info["audio_codec"] == "aac"
        assert abs(info["audio_seconds"] - info["duration"]) < 0.1
        assert info["audio_rms"] > 0.02  # speech, not silence
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json",
         samples[0].video], capture_output=True, check=True, text=True).stdout)
    kinds = {st["codec_type"]: st for st in probe["streams"]}
    assert kinds["video"]["r_frame_rate"] == "8/1" and kinds["video"]["width"] == 96
    assert kinds["audio"]["codec_name"] == "aac" and kinds["audio"]["channels"] == 1
    assert abs(float(probe["format"]["duration"]) - samples[0].extra["synthetic"]["timing"]
               ["duration"]) < 0.1
    # ffmpeg decodes both streams end to end without complaint.
    decode = subprocess.run(["ffmpeg", "-v", "error", "-i", samples[1].video, "-f", "null", "-"],
                            capture_output=True, text=True)
    assert decode.returncode == 0 and decode.stderr == ""
    assert read_manifest(out / "manifest.jsonl") == samples


def test_default_clip_is_224px_10fps(synth):
    _, (sample,) = synth.get(1, cue="all", emotions=["angry"], seed=0)
    info = probe_clip(sample.video)
    assert (info["width"], info["height"], info["fps"]) == (224, 224, 10.0)
    assert 3.0 <= info["duration"] <= 6.0


def test_video_cue_changes_only_the_face(synth):
    happy, sad = _pair(synth, "video")
    for h, s in zip(happy, sad):
        fh, fs = _frames(h.video), _frames(s.video)
        assert fh.shape == fs.shape
        late = slice(len(fh) // 2, None)  # after the expression has ramped up
        assert np.abs(fh[late].astype(int) - fs[late].astype(int)).mean() > 1.5
        assert np.array_equal(_audio(h.video), _audio(s.video))  # same neutral voice
        assert h.subtitle_en == s.subtitle_en
        assert h.extra["synthetic"]["face"]["expression"]["targets"]["smile"] > 0
        assert s.extra["synthetic"]["face"]["expression"]["targets"]["smile"] < 0


def test_audio_cue_changes_only_the_voice(synth):
    happy, sad = _pair(synth, "audio")
    for h, s in zip(happy, sad):
        # Same face: the recorded face parameters are equal and carry no expression ...
        assert h.extra["synthetic"]["face"] == s.extra["synthetic"]["face"]
        assert h.extra["synthetic"]["face"]["expression"]["targets"] == {}
        # ... and the decoded pictures agree up to codec noise (clip lengths differ).
        fh, fs = _frames(h.video), _frames(s.video)
        n = min(len(fh), len(fs))
        assert np.abs(fh[:n].astype(int) - fs[:n].astype(int)).mean() < 0.5
        assert h.subtitle_en == s.subtitle_en
        # Prosody: recorded espeak parameters and the measured speech differ.
        vh, vs = h.extra["synthetic"]["voice"], s.extra["synthetic"]["voice"]
        assert vh["speaker"] == vs["speaker"]
        assert vh["pitch"] > vs["pitch"] and vh["speed"] > vs["speed"]
        assert vh["amplitude"] > vs["amplitude"]
        ah, as_ = _audio(h.video), _audio(s.video)
        assert _f0(ah) > 1.3 * _f0(as_)
        assert np.sqrt(np.mean(ah ** 2)) > 1.5 * np.sqrt(np.mean(as_ ** 2))
        assert (h.extra["synthetic"]["timing"]["speech_duration"]
                < s.extra["synthetic"]["timing"]["speech_duration"])


def test_text_cue_changes_only_the_words(synth):
    happy, sad = _pair(synth, "text")
    for h, s in zip(happy, sad):
        assert h.subtitle_en != s.subtitle_en and h.subtitle_zh != s.subtitle_zh
        xh, xs = h.extra["synthetic"], s.extra["synthetic"]
        assert xh["face"]["expression"]["targets"] == xs["face"]["expression"]["targets"] == {}
        for key in ("pitch", "speed", "amplitude", "range", "gap", "emotion"):
            assert xh["voice"][key] == xs["voice"][key]
        assert xh["voice"]["emotion"] == "neutral" and "!" not in xh["voice"]["spoken_text"]


def test_descriptions_mention_only_existing_clues():
    for cue in CUES + ("mixed",):
        for index in range(14):
            plan = plan_clip(index, seed=2, cue=cue)
            en, zh = describe(plan)
            mods = plan["modalities_with_cue"]
            assert ("In the video" in en) == ("video" in mods)
            assert ("In the audio" in en) == ("audio" in mods)
            assert ("In the text" in en) == ("text" in mods)
            assert ("在视频中" in zh) == ("video" in mods)
            assert plan["labels"][0] == plan["emotion"]
            assert all(label in en for label in plan["labels"])
            if cue != "mixed":
                assert plan["cue"] == cue
    coarse, _ = describe(plan_clip(0, seed=2, cue="all"), style="coarse")
    assert len(coarse) < len(describe(plan_clip(0, seed=2, cue="all"))[0])


def test_emotions_and_cues_are_balanced():
    plans = [plan_clip(i, seed=4, cue="mixed") for i in range(28)]
    emotions = [p["emotion"] for p in plans]
    assert all(emotions.count(e) == 4 for e in DEFAULT_EMOTIONS)
    cues = [p["cue"] for p in plans]
    assert all(cues.count(c) == 7 for c in CUES)


def test_plans_are_seeded():
    assert plan_clip(3, seed=9, cue="mixed") == plan_clip(3, seed=9, cue="mixed")
    assert plan_clip(3, seed=9)["face"] != plan_clip(3, seed=10)["face"]
    assert plan_clip(3, seed=9, prefix="a_")["face"] != plan_clip(3, seed=9, prefix="b_")["face"]
    # The look of a clip does not depend on its emotion.
    assert (plan_clip(3, seed=9, emotions=["happy"])["face"]["appearance"]
            == plan_clip(3, seed=9, emotions=["sad"])["face"]["appearance"])


def test_faces_render_deterministically():
    rng = np.random.default_rng(0)
    appearance, motion = faces.sample_appearance(rng), faces.sample_motion(rng, 4.0)
    expression = {"targets": faces.EXPRESSIONS["surprised"], "peak": 1.0, "onset": 0.5,
                  "ramp": 0.5}
    kwargs = {"size": 64, "fps": 5, "n_frames": 10, "talk": (0.2, 1.5)}
    a = [np.asarray(f) for f in faces.render_clip_frames(appearance, motion, expression, **kwargs)]
    b = [np.asarray(f) for f in faces.render_clip_frames(appearance, motion, expression, **kwargs)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and a[0].shape == (64, 64, 3)
    assert not np.array_equal(a[0], a[-1])  # the expression ramps up


def test_same_seed_same_files_and_manifest(synth, tmp_path):
    out, samples = synth.get(2, cue="all", seed=5, **SMALL)
    again = make_synthetic(tmp_path / "again", 2, cue="all", seed=5, workers=1, progress=False,
                           **SMALL)
    for a, b in zip(samples, again):
        assert a.extra == b.extra and a.description_en == b.description_en
        assert a.labels == b.labels and a.subtitle_en == b.subtitle_en
        assert open(a.video, "rb").read() == open(b.video, "rb").read()
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    rows2 = [json.loads(line) for line in
             (tmp_path / "again" / "manifest.jsonl").read_text().splitlines()]
    assert rows == rows2  # relative video paths: the manifests are byte-for-byte alike


def test_resume_skips_finished_clips_and_redoes_broken_ones(synth, tmp_path):
    _, samples = synth.get(2, cue="all", seed=5, **SMALL)
    out = tmp_path / "resume"
    shutil.copytree(samples[0].video.rsplit("/videos/", 1)[0], out)
    first = out / "videos" / "synth_00000.mp4"
    second = out / "videos" / "synth_00001.mp4"
    mtime = first.stat().st_mtime_ns
    second.write_bytes(second.read_bytes()[:1000])  # a broken file
    redo = make_synthetic(out, 2, cue="all", seed=5, workers=1, progress=False, **SMALL)
    record = json.loads((out / "synthetic.json").read_text())
    assert record["last_run"]["skipped"] == 1 and record["last_run"]["written"] == 1
    assert first.stat().st_mtime_ns == mtime
    assert probe_clip(second)["frames"] == redo[1].extra["synthetic"]["timing"]["n_frames"]
    assert not list((out / "videos").glob(".*"))  # no temporary files left


def test_parallel_generation_matches_serial(synth, tmp_path):
    _, serial = synth.get(3, cue="mixed", seed=6, **SMALL)
    parallel = make_synthetic(tmp_path / "par", 3, cue="mixed", seed=6, workers=2,
                              progress=False, **SMALL)
    assert [s.extra for s in parallel] == [s.extra for s in serial]


def test_corpus_with_coarse_and_fine_pools(tmp_path, espeak):
    corpus = make_synthetic_corpus(tmp_path / "corpus", coarse=3, fine=5, test_fraction=0.4,
                                   seed=0, workers=1, progress=False, **SMALL)
    coarse = read_manifest(corpus.coarse_manifest)
    fine = read_manifest(corpus.fine_manifest)
    assert [s.split for s in coarse] == ["train"] * 3
    assert sorted(s.split for s in fine) == ["test", "test", "train", "train", "train"]
    assert read_split(corpus.split_file) == {s.name: s.split for s in fine}
    assert {s.name for s in coarse}.isdisjoint(s.name for s in fine)
    assert all("we can infer" in s.description_en for s in fine)  # full EMER-style reasoning
    assert not any("we can infer" in s.description_en for s in coarse)  # short descriptions


@pytest.mark.parametrize("kwargs, message", [
    ({"cue": "smell"}, "cue must be"),
    ({"emotions": ["bored"]}, "emotions must be"),
    ({"size": 65}, "size must be"),
    ({"duration": (4.0, 3.0)}, "duration must"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic(tmp_path, 1, **kwargs)
