"""Property-based fuzzing of the label-list parser and the label/names table readers: any
input gives labels or a LabelFormatError (never another exception)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from affectgpt.eval.labels import (
    LabelFormatError,
    UnsafeSampleNameError,
    format_label_list,
    parse_label_groups,
    parse_label_list,
    read_labels,
    read_names,
)
from affectgpt.paths import unsafe_name_reason

#: Characters that drive the tokenizer: brackets, both quote kinds, commas, full-width forms.
_SYNTAX = list("[]'\",、，【】［］“”‘’＂＇ \u3000\t\n\\") + ["don't", "a", "B", "é", "喜"]
label_text = st.one_of(
    st.text(),
    st.lists(st.sampled_from(_SYNTAX), max_size=40).map("".join),
    st.lists(st.sampled_from(_SYNTAX), max_size=40).map(lambda s: "[" + "".join(s) + "]"),
)
label_value = st.one_of(
    label_text, st.none(), st.floats(), st.integers(), st.lists(st.text(max_size=8)),
    st.lists(st.one_of(st.text(max_size=4), st.integers()), max_size=4),
)


def _labels_or_error(fn, *args):
    try:
        result = fn(*args)
    except LabelFormatError:
        return None
    assert isinstance(result, list)
    return result


@given(label_value, st.sampled_from(["python", "mertools"]))
@example("['don't', \"it's\"]", "python")
@example("[a, 'b, c]", "python")
@example("【开心，‘兴奋’】", "python")
@example(float("nan"), "python")
def test_label_list_parser_returns_labels_or_a_label_format_error(value, syntax):
    labels = _labels_or_error(parse_label_list, value, syntax)
    if labels is not None:
        assert all(isinstance(x, str) and x and x == x.strip().lower() for x in labels)
        assert len(set(labels)) == len(labels)


@given(st.one_of(label_value, st.lists(st.lists(st.text(max_size=6), max_size=3), max_size=3)))
@example("[['a', 'b'], ['c']]")
@example("[['a'], [['b']]]")
@example("[[a, 'b]]")
def test_label_groups_parser_returns_groups_or_a_label_format_error(value):
    groups = _labels_or_error(parse_label_groups, value)
    if groups is not None:
        assert all(isinstance(g, list) and g for g in groups)


_PLAIN = st.text(st.characters(blacklist_characters="'\"[]【】［］“”‘’＂＇,，、",
                               blacklist_categories=("Cs",)), min_size=1, max_size=12)


@given(st.lists(st.one_of(_PLAIN, _PLAIN.map(lambda s: s + "'s")), max_size=6))
def test_formatted_lists_read_back(labels):
    text = format_label_list(labels)
    expected = parse_label_list(labels)  # the list form: lower-cased, de-duplicated
    assert parse_label_list(text) == expected


names = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["..", ".", "../x", "a/b", "/etc/passwd", "a\\b", "a\x00b", "C:x",
                     "ok_name", "sample_00000001", "tab\there", " spaced "]),
)


@given(st.lists(st.tuples(names, label_text), max_size=6),
       st.sampled_from([".csv", ".tsv", ".jsonl", ".json", ".txt"]), st.booleans())
def test_label_and_name_files_never_leak_unsafe_names(tmp_path, rows, suffix, raw):
    """Tables of random names and labels (or random bytes) give labels whose names are all
    safe, or a LabelFormatError; nothing is written anywhere."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        path = Path(folder) / f"labels{suffix}"
        if raw:
            path.write_bytes("\n".join(f"{n},{t}" for n, t in rows).encode("utf-8", "replace"))
        else:
            import csv
            import json

            if suffix in (".csv", ".tsv", ".txt"):
                with open(path, "w", encoding="utf-8", newline="") as fh:
                    writer = csv.writer(fh, delimiter="\t" if suffix == ".tsv" else ",")
                    writer.writerow(["name", "openset"])
                    writer.writerows(rows)
            elif suffix == ".jsonl":
                path.write_text("".join(json.dumps({"name": n, "openset": t}) + "\n"
                                        for n, t in rows), encoding="utf-8")
            else:
                path.write_text(json.dumps({n: t for n, t in rows}), encoding="utf-8")
        before = sorted(p.name for p in Path(folder).iterdir())
        for reader in (lambda: read_labels(path), lambda: read_names(path)):
            try:
                result = reader()
            except UnsafeSampleNameError as exc:
                assert str(path) in str(exc) and exc.line is not None
                assert unsafe_name_reason(exc.name) is not None
                continue
            except LabelFormatError:
                continue
            assert all(unsafe_name_reason(name) is None for name in result)
        assert sorted(p.name for p in Path(folder).iterdir()) == before


def test_unsafe_names_in_label_files_name_the_file_and_line(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("name,openset\nok,['a']\n../../etc/passwd,['b']\n", encoding="utf-8")
    try:
        read_labels(path)
    except UnsafeSampleNameError as exc:
        assert exc.line == 3 and exc.path == str(path) and exc.name == "../../etc/passwd"
        assert f"{path}, line 3" in str(exc) and "would leave its folder" in str(exc)
    else:  # pragma: no cover - the point of the test
        raise AssertionError("an unsafe sample name was accepted")
    names = tmp_path / "names.txt"
    names.write_text("a\nb\n\n/abs/name\n", encoding="utf-8")
    try:
        read_names(names)
    except UnsafeSampleNameError as exc:
        assert exc.line == 4 and "absolute path" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("an absolute sample name was accepted")
