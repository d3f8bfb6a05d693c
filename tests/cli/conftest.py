"""Fixtures for the CLI tests: the session's packaged Whisper-base export (shared)."""

from speech_clips import asr_cache_root  # noqa: F401
