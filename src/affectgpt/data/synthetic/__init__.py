"""A synthetic EMER-style corpus: real MP4 clips of talking cartoon faces with speech.

Every clip shows a drawn face (:mod:`affectgpt.data.faces`) saying one sentence in an
espeak-ng voice (:mod:`affectgpt.data.speech`), and comes with English/Chinese subtitles,
an EMER-style gold description (clues from video, audio and text, then a conclusion)
and a gold label list. The emotional cue can be put into one modality only:

============  ===================  ===================  ===================
``cue``       face                 voice prosody        words
============  ===================  ===================  ===================
``video``     emotional            neutral              neutral
``audio``     neutral              emotional            neutral
``text``      neutral              neutral              emotional
``all``       emotional            emotional            emotional
``mixed``     one of the four above per clip (balanced)
============  ===================  ===================  ===================

The description mentions only the clues that exist. Everything about a clip is drawn
from seeded generators keyed by ``(seed, prefix, index, purpose)``: the look of a clip,
its head motion, speaker and neutral sentence do not depend on its emotion, so two
corpora made with the same seed and different emotions differ only where the cue is.
``Sample.extra`` records the cue, the emotion and every generation parameter.

Generation is resumable (a finished clip whose parameters match is skipped; files are
written to a temporary name and renamed) and can run in several processes.

Modules: :mod:`~affectgpt.data.synthetic.plan` (the seeded choices),
:mod:`~affectgpt.data.synthetic.text` (gold descriptions),
:mod:`~affectgpt.data.synthetic.audio` (speech track), :mod:`~affectgpt.data.synthetic.video`
(face frames), :mod:`~affectgpt.data.synthetic.mp4` (encoding, probing) and
:mod:`~affectgpt.data.synthetic.corpus` (generation in processes, manifests).

Example::

    samples = make_synthetic("synth", 100, cue="audio", seed=0)
"""

from __future__ import annotations

from affectgpt.data.synthetic.corpus import SyntheticCorpus, make_synthetic, make_synthetic_corpus
from affectgpt.data.synthetic.mp4 import probe_clip, write_mp4
from affectgpt.data.synthetic.plan import (
    CUE_CHOICES,
    CUES,
    DEFAULT_EMOTIONS,
    GENERATOR,
    STYLES,
    plan_clip,
)
from affectgpt.data.synthetic.text import describe

__all__ = [
    "CUES",
    "CUE_CHOICES",
    "DEFAULT_EMOTIONS",
    "GENERATOR",
    "STYLES",
    "SyntheticCorpus",
    "describe",
    "make_synthetic",
    "make_synthetic_corpus",
    "plan_clip",
    "probe_clip",
    "write_mp4",
]
