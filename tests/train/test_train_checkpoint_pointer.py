"""The ``latest``/``best`` pointer of a run folder may only name a checkpoint inside it."""

from __future__ import annotations

import pytest

from affectgpt.paths import UnsafeNameError
from affectgpt.train.checkpoint import FILES, find_latest, read_pointer, resolve_checkpoint


def _complete(folder):
    folder.mkdir(parents=True)
    for name in FILES:
        (folder / name).write_bytes(b"x")
    return folder


def test_pointer_inside_the_run_folder(tmp_path):
    run = tmp_path / "run"
    _complete(run / "checkpoint-000010")
    (run / "latest").write_text("checkpoint-000010\n")
    assert read_pointer(run) == run / "checkpoint-000010"
    (run / "latest").write_text("")
    assert read_pointer(run) is None


@pytest.mark.parametrize("pointer", ["../other/checkpoint-000099", "/tmp", "a/b"])
def test_pointer_leaving_the_run_folder_is_refused(tmp_path, pointer):
    run = tmp_path / "run"
    _complete(run / "checkpoint-000010")
    _complete(tmp_path / "other" / "checkpoint-000099")  # what '../' would load
    (run / "latest").write_text(pointer + "\n")
    for call in (read_pointer, find_latest, resolve_checkpoint):
        with pytest.raises(UnsafeNameError) as info:
            call(run)
        assert info.value.path == str(run / "latest") and info.value.line == 1
