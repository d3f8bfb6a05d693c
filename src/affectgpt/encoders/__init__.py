"""Frozen feature encoders (audio and video) behind one small interface.

- :class:`FrozenEncoder`: the shared base (frozen, always eval, optional half precision,
  ``fingerprint()`` for feature caches).
- :class:`WhisperAudioEncoder`: Whisper (packaged Whisper-base, or a local transformers
  checkpoint) -> one ``d_model`` vector per audio clip.
- :mod:`affectgpt.encoders.asr`: speech to text (:class:`~affectgpt.encoders.asr.Transcriber`,
  packaged Whisper-base through faster-whisper) and a transcript cache (imported on its own:
  it needs the ``asr`` extra).
"""

from affectgpt.encoders.base import FrozenEncoder, resolve_dtype, state_dict_sha256
from affectgpt.encoders.whisper import (
    WhisperAudioEncoder,
    convert_packaged_whisper_base,
    load_whisper_base_encoder,
    load_whisper_encoder,
)

__all__ = [
    "FrozenEncoder",
    "WhisperAudioEncoder",
    "convert_packaged_whisper_base",
    "load_whisper_base_encoder",
    "load_whisper_encoder",
    "resolve_dtype",
    "state_dict_sha256",
]
