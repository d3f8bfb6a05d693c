"""Shared fixtures. Data in ../shared (read-only) is referenced by path, never copied."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared").resolve()
SHARED_DATA = SHARED / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mer2024_ov(shared_data: Path) -> Path:
    return shared_data / "mer2024-ov"


@pytest.fixture(scope="session")
def wheel_dir(shared_data: Path) -> Path:
    return shared_data / "emotion-wheel"
