"""Reading open-vocabulary label lists without ``eval``.

Label lists are stored as Python-list-like strings, e.g. ``"['excited', 'joyful']"``,
``"[anger, frustration]"`` or ``"[]"``. Two tokenisations are supported:

``python``
    Quoted items are read as strings (so ``"don't believe"`` stays one label), unquoted
    items are separated by commas. Full-width punctuation (``，、【】“”‘’``) is accepted.
``mertools``
    The reference code's rule (MERTools ``string_to_list``): keep the text between the
    first ``[`` and the ``]`` after it, and split it at every quote character (and at
    commas, which the reference only does between quoted items). ``"don't believe"``
    becomes ``don`` and ``t believe``; a value holding several lists, such as
    ``[], ["confused"]`` in the authors' released prediction files, is read as its first
    list only (here ``[]``). The reference's stored GPT groupings were made from labels
    split this way, so reproducing its numbers exactly needs this tokenisation.
``auto`` (:func:`parse_sample_labels` / :func:`read_labels` only)
    ``python``, except for a value the python reader refuses because it holds brackets
    inside the list (``[],[]``): that value is read by the ``mertools`` rule, as the
    reference reads it, and recorded as a :class:`ReferenceReading` so that the caller
    can say which samples were read that way.

Every label is lower-cased and stripped; duplicates are removed keeping the first.
"""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from affectgpt.paths import UnsafeNameError, unsafe_name_reason

LABEL_SYNTAXES = ("python", "mertools")

_FULL_WIDTH = str.maketrans(
    {
        "［": "[",
        "］": "]",
        "【": "[",
        "】": "]",
        "，": ",",
        "、": ",",
        "“": '"',
        "”": '"',
        "＂": '"',
        "‘": "'",
        "’": "'",
        "＇": "'",
        "\u3000": " ",
    }
)
_QUOTES = "'\""


class LabelFormatError(ValueError):
    """A label list (or a file of them) that cannot be read unambiguously."""

    def __init__(self, message: str, *, sample: str | None = None, path: str | Path | None = None):
        where = []
        if sample is not None:
            where.append(f"sample {sample!r}")
        if path is not None:
            where.append(f"file {str(path)!r}")
        super().__init__(f"{message}" + (f" ({', '.join(where)})" if where else ""))
        self.sample = sample
        self.path = None if path is None else str(path)


class InnerBracketsError(LabelFormatError):
    """A label list with brackets inside it, e.g. several lists in one value (``[], ['a']``).

    The python reader refuses such a value; the reference code reads its first list only
    (``syntax="mertools"``, ``--label-syntax mertools``)."""


@dataclass(frozen=True)
class ReferenceReading:
    """A value that ``syntax="auto"`` read by the reference's rule (see the module doc)."""

    path: str
    sample: str
    text: str
    labels: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"file": self.path, "sample": self.sample, "text": self.text,
                "labels": list(self.labels)}


class UnsafeSampleNameError(LabelFormatError, UnsafeNameError):
    """A sample name in a table or manifest that would leave its folder when joined into a
    path (``..``, an absolute path, a separator, NUL or another control character).

    ``str(error)`` names the file and line; the attributes are those of
    :class:`~affectgpt.paths.UnsafeNameError` (``name``, ``reason``, ``path``, ``line``).
    """

    def __init__(self, name: str, reason: str, path: str | Path | None = None,
                 line: int | None = None, what: str = "sample name") -> None:
        UnsafeNameError.__init__(self, name, reason, path, line, what)
        self.sample = name


def check_sample_name(name: str, *, path: str | Path | None = None,
                      line: int | None = None) -> str:
    """Return ``name`` when it can name a file or folder of its own (see
    :func:`affectgpt.paths.unsafe_name_reason`); raise :class:`UnsafeSampleNameError` naming
    ``path`` and ``line`` otherwise."""
    reason = unsafe_name_reason(name)
    if reason is not None:
        raise UnsafeSampleNameError(name, reason, path, line)
    return name


def _unique_lower(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        label = " ".join(item.split()).lower()
        if label:
            seen.setdefault(label, None)
    return list(seen)


def _strip_brackets(text: str) -> str | None:
    """Return the inside of ``[...]``; None for an empty value; error if not a list."""
    text = text.translate(_FULL_WIDTH).strip()
    if text == "" or text.lower() in ("nan", "none", "null"):
        return None
    if not (text.startswith("[") and text.endswith("]")):
        raise LabelFormatError(f"expected a bracketed label list like \"['a', 'b']\", got {text!r}")
    return text[1:-1]


def _tokenize_python(inner: str, original: str) -> list[str]:
    items: list[str] = []
    i, n = 0, len(inner)
    while i < n:
        ch = inner[i]
        if ch.isspace() or ch == ",":
            i += 1
            continue
        if ch in "[]":
            raise InnerBracketsError(
                f"brackets inside a label list (several lists in one value?): {original!r}")
        if ch in _QUOTES:
            end = inner.find(ch, i + 1)
            # An apostrophe inside a single-quoted label ('don't') ends the string early:
            # accept the closing quote only when a comma, the end or a bracket (several
            # lists in one value, refused below) follows it.
            while end != -1 and inner[end + 1 :].lstrip()[:1] not in ("", ",", "]", "["):
                end = inner.find(ch, end + 1)
            if end == -1:
                raise LabelFormatError(f"unterminated quote in label list: {original!r}")
            items.append(inner[i + 1 : end])
            i = end + 1
            continue
        end = inner.find(",", i)
        end = n if end == -1 else end
        items.append(inner[i:end])  # a bare item; an inner apostrophe (don't) is kept
        i = end
    return items


def parse_label_list(text: object, syntax: str = "python") -> list[str]:
    """Parse one stored label list into lower-cased, de-duplicated labels.

    ``text`` may also be a list of strings (JSON input) or None/NaN (no labels).
    Raises :class:`LabelFormatError` for values that are not a bracketed list.
    """
    if text is None:
        return []
    if isinstance(text, float) and text != text:  # NaN from spreadsheets
        return []
    if isinstance(text, (list, tuple)):
        if not all(isinstance(x, str) for x in text):
            raise LabelFormatError(f"label list must hold strings, got {text!r}")
        return _unique_lower(x.translate(_FULL_WIDTH) for x in text)
    if not isinstance(text, str):
        raise LabelFormatError(f"label list must be a string or list, got {type(text).__name__}")
    if syntax not in LABEL_SYNTAXES:
        raise ValueError(f"unknown label syntax {syntax!r}; choose from {LABEL_SYNTAXES}")
    inner = _strip_brackets(text)
    if inner is None:
        return []
    if syntax == "mertools":
        # string_to_list: str.split('[')[1].split(']')[0], then split at quotes
        first = text.translate(_FULL_WIDTH).split("[")[1].split("]")[0]
        return _unique_lower(re.split(r"['\",]", first))
    return _unique_lower(_tokenize_python(inner, text))


def parse_label_groups(text: object) -> list[list[str]]:
    """Parse a list of lists of labels, e.g. ``"[['happy', 'joyful'], ['sad']]"``.

    Groups keep their order and their first member (the group's representative);
    labels are lower-cased. Raises :class:`LabelFormatError` when the text is not a list
    of lists of strings.
    """
    if isinstance(text, (list, tuple)):
        if not all(isinstance(g, (list, tuple)) for g in text):
            raise LabelFormatError(f"expected a list of lists, got {text!r}")
        groups = (parse_label_list(list(g)) for g in text)
        return [g for g in groups if g]  # as for text: a group of blank labels is no group
    if not isinstance(text, str):
        raise LabelFormatError(f"expected a list of lists, got {type(text).__name__}")
    inner = _strip_brackets(text)
    if inner is None:
        return []
    groups: list[list[str]] = []
    i, n = 0, len(inner)
    while i < n:
        ch = inner[i]
        if ch.isspace() or ch == ",":
            i += 1
            continue
        if ch != "[":
            raise LabelFormatError(f"expected '[' at position {i + 1} of a list of lists: {text!r}")
        end = _matching_bracket(inner, i, text)
        group = parse_label_list(inner[i : end + 1])
        if group:
            groups.append(group)
        i = end + 1
    return groups


def _matching_bracket(s: str, start: int, original: str) -> int:
    quote = None
    for j in range(start + 1, len(s)):
        ch = s[j]
        if quote:
            if ch == quote and s[j + 1 :].lstrip()[:1] in ("", ",", "]"):
                quote = None
        elif ch in _QUOTES:
            quote = ch
        elif ch == "[":
            raise LabelFormatError(f"lists nested deeper than two levels: {original!r}")
        elif ch == "]":
            return j
    raise LabelFormatError(f"unbalanced brackets in list of lists: {original!r}")


def format_label_list(labels: Iterable[str]) -> str:
    """Write labels as a bracketed list that :func:`parse_label_list` reads back exactly."""
    items = []
    for label in labels:
        if "'" not in label:
            items.append(f"'{label}'")
        elif '"' not in label:
            items.append(f'"{label}"')
        else:
            raise LabelFormatError(f"label {label!r} holds both quote characters")
    return "[" + ", ".join(items) + "]"


# --------------------------------------------------------------------------- files


def read_text(path: str | Path, encoding: str | None = None) -> str:
    """Read a text file as UTF-8 (BOM allowed) unless ``encoding`` is given."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    data = path.read_bytes()
    enc = encoding or "utf-8-sig"
    try:
        return data.decode(enc)
    except UnicodeDecodeError as exc:
        raise LabelFormatError(
            f"cannot decode as {enc} at byte {exc.start}; pass the file's encoding "
            "(e.g. --encoding gb18030)",
            path=path,
        ) from None
    except LookupError:
        raise LabelFormatError(f"unknown encoding {enc!r}", path=path) from None


def read_table(path: str | Path, encoding: str | None = None) -> list[dict[str, object]]:
    """Rows of a CSV, TSV, JSONL or JSON (list of objects, or ``{name: value}``) file."""
    path = Path(path)
    text = read_text(path, encoding)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LabelFormatError(f"line {lineno} is not JSON: {exc.msg}", path=path) from None
            except RecursionError:
                raise LabelFormatError(f"line {lineno}: JSON nested too deeply", path=path) from None
            if not isinstance(row, dict):
                raise LabelFormatError(f"line {lineno} is not a JSON object", path=path)
            rows.append(row)
        return rows
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LabelFormatError(f"not JSON: {exc.msg} (line {exc.lineno})", path=path) from None
        except RecursionError:
            raise LabelFormatError("JSON nested too deeply", path=path) from None
        if isinstance(data, dict):
            return [{"name": k, "openset": v} for k, v in data.items()]
        if isinstance(data, list) and all(isinstance(r, dict) for r in data):
            return data
        raise LabelFormatError("JSON must be a list of objects or a {name: labels} object", path=path)
    delimiter = "\t" if suffix == ".tsv" else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    try:
        if reader.fieldnames is None:
            raise LabelFormatError("empty file (no header row)", path=path)
        for row in reader:
            extra = row.pop(None, None)  # values past the header's columns
            if extra and any(str(v).strip() for v in extra):
                raise LabelFormatError(
                    f"line {reader.line_num}: more values than the header's "
                    f"{len(reader.fieldnames)} columns (unquoted comma?)", path=path)
            rows.append(row)
    except csv.Error as exc:
        raise LabelFormatError(f"line {reader.line_num}: not valid CSV ({exc})", path=path) from None
    return rows


def read_column(
    path: str | Path,
    column: str,
    *,
    name_column: str = "name",
    encoding: str | None = None,
) -> dict[str, object]:
    """Read ``{sample name: raw value of column}`` from a CSV/TSV/JSONL/JSON table.

    A missing column, an empty sample name or a duplicate name is an error naming the file;
    a name that would leave its folder (:func:`check_sample_name`) raises
    :class:`UnsafeSampleNameError` naming the file and row.
    """
    result: dict[str, object] = {}
    for lineno, row in enumerate(read_table(path, encoding), 2):
        for needed in (name_column, column):
            if needed not in row:
                raise LabelFormatError(f"no {needed!r} column (columns: {sorted(row)})", path=path)
        name = "" if row[name_column] is None else str(row[name_column]).strip()
        if not name:
            raise LabelFormatError(f"empty sample name in row {lineno}", path=path)
        check_sample_name(name, path=path, line=lineno)
        if name in result:
            raise LabelFormatError("duplicate sample name", sample=name, path=path)
        result[name] = row[column]
    return result


def parse_sample_labels(
    value: object,
    syntax: str,
    *,
    sample: str,
    path: str | Path,
    reference_readings: list[ReferenceReading] | None = None,
) -> list[str]:
    """:func:`parse_label_list` whose errors name the sample and file.

    ``syntax="auto"`` reads like ``python`` but falls back to the reference's rule
    (``mertools``) for a value with brackets inside the list; each such value is appended
    to ``reference_readings`` (or, when that is None, announced with a ``UserWarning``).
    """
    try:
        if syntax != "auto":
            return parse_label_list(value, syntax)
        try:
            return parse_label_list(value, "python")
        except InnerBracketsError:
            labels = parse_label_list(value, "mertools")
    except InnerBracketsError as exc:
        raise InnerBracketsError(
            f"{exc}; the reference code (MERTools string_to_list) reads only the first list of "
            "such a value: pass --label-syntax mertools (or auto) to read it that way",
            sample=sample, path=path) from None
    except LabelFormatError as exc:
        raise LabelFormatError(str(exc), sample=sample, path=path) from None
    reading = ReferenceReading(str(path), sample, str(value), tuple(labels))
    if reference_readings is None:
        warnings.warn(f"{path}: sample {sample!r} {str(value)!r} read as the reference code reads "
                      f"it (its first list only): {labels}", stacklevel=2)
    else:
        reference_readings.append(reading)
    return labels


def read_labels(
    path: str | Path,
    column: str = "openset",
    *,
    name_column: str = "name",
    syntax: str = "python",
    encoding: str | None = None,
    reference_readings: list[ReferenceReading] | None = None,
) -> dict[str, list[str]]:
    """Read ``{sample name: labels}`` from a CSV/TSV/JSONL/JSON label file.

    ``syntax`` is ``python``, ``mertools`` or ``auto`` (see :func:`parse_sample_labels`
    for ``reference_readings``). Errors (missing column, duplicate name, malformed list)
    name the sample and file.
    """
    raw = read_column(path, column, name_column=name_column, encoding=encoding)
    return {name: parse_sample_labels(value, syntax, sample=name, path=path,
                                      reference_readings=reference_readings)
            for name, value in raw.items()}


def read_names(path: str | Path, split: str | None = None) -> list[str]:
    """Sample names from a plain names file (one per line) or a table with ``name`` and
    ``split`` columns (then only rows whose split equals ``split``; ``whole`` keeps all).
    A name that would leave its folder raises :class:`UnsafeSampleNameError`."""
    path = Path(path)
    if path.suffix.lower() in (".csv", ".tsv", ".jsonl", ".json"):
        rows = read_table(path)
        if split is not None and split != "whole":
            if rows and "split" not in rows[0]:
                raise LabelFormatError("no 'split' column to select from", path=path)
            rows = [(i, r) for i, r in enumerate(rows, 2)
                    if str(r.get("split", "")).strip() == split]
        else:
            rows = list(enumerate(rows, 2))
        for _, row in rows:
            if "name" not in row:
                raise LabelFormatError(f"no 'name' column (columns: {sorted(row)})", path=path)
        names = [check_sample_name(str(r["name"]).strip(), path=path, line=i) for i, r in rows]
    else:
        names = [check_sample_name(line.strip(), path=path, line=i)
                 for i, line in enumerate(read_text(path).splitlines(), 1) if line.strip()]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise LabelFormatError("duplicate sample name in names file", sample=dup, path=path)
    return names
