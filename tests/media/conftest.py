"""Session fixtures for the media tests (the media themselves are made by media_fixtures)."""

from __future__ import annotations

import numpy as np
import pytest
from media_fixtures import MediaFactory


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> MediaFactory:
    return MediaFactory(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="session")
def speech_wave(media) -> np.ndarray:
    """The espeak-ng utterance as float32 mono at 16 kHz."""
    from affectgpt.media import read_audio

    return read_audio(media.speech(), 16000)
