"""Fixtures of the report tests: a headless Chromium (Debian's, driven by Playwright) and
real synthetic clips."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives a headless Chromium (skipped without one)")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Chromium with a fresh profile; skipped only when no Chromium is installed."""
    path = chromium_path()
    if path is None:
        pytest.skip("chromium not installed (apt-get install chromium, or make system-deps)")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        # A persistent context is the way to give Chromium our own fresh --user-data-dir.
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=path, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1200, "height": 900})
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    yield page
    page.close()


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> list:
    """Two real synthetic mp4 clips (faces, speech, subtitles) as manifest samples."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    from affectgpt.data.synthetic import make_synthetic

    out = tmp_path_factory.mktemp("report-clips")
    return make_synthetic(out, 2, seed=3, cue="all", workers=1, progress=False)


@pytest.fixture(scope="session")
def corrupt_clip(clips, tmp_path_factory) -> Path:
    """The first 3 kB of a real clip: a truncated mp4 that no decoder can use."""
    path = tmp_path_factory.mktemp("corrupt") / "broken.mp4"
    path.write_bytes(Path(clips[0].video).read_bytes()[:3000])
    return path
