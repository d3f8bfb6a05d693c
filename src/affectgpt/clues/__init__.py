"""Measured emotion clues of a clip, from packaged models that run offline on a CPU.

Between :mod:`affectgpt.features` and :mod:`affectgpt.inference`: each clue turns one
modality of a clip into a :class:`~affectgpt.clues.labels.ClueReading` -- a probability
over the :data:`~affectgpt.clues.labels.EMOTIONS`, valence and arousal, and a sentence
that says what was measured:

- :mod:`~affectgpt.clues.face`: the fer mini-XCEPTION facial-expression CNN on the main
  speaker's face track (:func:`affectgpt.media.faces.find_main_face`); a clip without a
  face says so instead of guessing.
- :mod:`~affectgpt.clues.text`: the transcript (or subtitle) scored against label
  prototypes by packaged sentence encoders (all-MiniLM-L6-v2 for English,
  multilingual-e5-small for Chinese), no training.
- :mod:`~affectgpt.clues.prosody`: pitch, loudness, pauses and speaking rate (transcript
  words over the voice-activity speech time), which speak to arousal.
- :mod:`~affectgpt.clues.fusion`: weighted score-level fusion of the readings into
  labels (weights chosen on synthetic validation clips, ``benchmarks/bench_describe.py``).
- :mod:`~affectgpt.clues.merge`: the LLM merge that writes a description around the clues
  (structured reply, repetition control, retry with correction, lexicon fallback).
"""

from __future__ import annotations

from affectgpt.clues.labels import AROUSAL, EMOTIONS, VALENCE, ClueReading

__all__ = ["AROUSAL", "EMOTIONS", "VALENCE", "ClueReading"]
