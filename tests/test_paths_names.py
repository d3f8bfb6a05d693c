"""Names read from files must be one safe path component (affectgpt.paths)."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from affectgpt.paths import UnsafeNameError, check_name, join_inside, unsafe_name_reason


@pytest.mark.parametrize("name, reason", [
    ("", "empty"),
    (".", "relative folder"),
    ("..", "relative folder"),
    ("../x", "'..'"),
    ("a/../../b", "'..'"),
    ("..\\x", "'..'"),
    ("a/b", "separator"),
    ("a\\b", "separator"),
    ("/etc/passwd", "absolute"),
    ("\\\\server\\share", "absolute"),
    ("a\x00b", "NUL"),
    ("line\nbreak", "control character"),
    ("tab\t", "control character"),
    ("del\x7f", "control character"),
    ("c1\x9b", "control character"),
    ("C:evil", "drive letter"),
])
def test_unsafe_names(name, reason):
    assert reason in unsafe_name_reason(name)
    with pytest.raises(UnsafeNameError) as info:
        check_name(name, what="sample name", path="m.csv", line=7)
    error = info.value
    assert (error.name, error.path, error.line) == (name, "m.csv", 7)
    assert str(error).startswith(f"m.csv, line 7: sample name {name!r}")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.line == 7


@pytest.mark.parametrize("name", ["sample_00000001", "a b", "名字", "x.y.z", "..a", "a..",
                                  "-dash", "Ses01F_impro01_F000", "ü"])
def test_safe_names(name, tmp_path):
    assert unsafe_name_reason(name) is None
    assert join_inside(tmp_path, name) == tmp_path / name


@given(st.text(max_size=20))
def test_a_checked_name_never_leaves_its_folder(tmp_path, name):
    try:
        target = join_inside(tmp_path / "base", name)
    except UnsafeNameError:
        return
    assert target.parent == tmp_path / "base"
    assert (tmp_path / "base" / name).resolve().parent == (tmp_path / "base").resolve()


def test_message_without_location():
    assert str(UnsafeNameError("..", "is bad")) == "name '..' is bad"
    assert str(UnsafeNameError("..", "is bad", line=3)) == "line 3: name '..' is bad"
