"""Typed configuration: dataclasses, YAML/JSON files and dotted ``KEY=VALUE`` overrides.

The one mechanism behind the model, trainer, annotation and demo configurations:

- :func:`parse_override` splits ``"video.layers=4"`` and parses the value as YAML
  (``16``, ``0.05``, ``true``, ``null``, ``[q_proj, v_proj]``, ``{r: 8}``);
- :func:`coerce` converts a value to a field's type hint (optionals, unions, nested
  dataclasses, lists, tuples, dicts, bool/int/float/str) or raises :class:`ConfigError`
  naming the key;
- :func:`build` / :func:`merge` make or overlay a (nested) dataclass from a mapping,
  refusing unknown keys with the closest valid one; :func:`apply_overrides` sets dotted
  keys on a copy;
- :func:`read_mapping` reads a YAML or JSON file of settings.

Each configuration keeps its own error type (a subclass of :class:`ConfigError`, raised
through :func:`errors_as`) and its own checks of value ranges.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import json
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Union

import yaml

__all__ = ["ConfigError", "apply_overrides", "build", "coerce", "errors_as", "field_types",
           "merge", "parse_override", "read_mapping", "set_dotted", "unknown_key_message"]


class ConfigError(ValueError):
    """An invalid configuration, preset name, settings file or override."""


@contextlib.contextmanager
def errors_as(error: type[ConfigError], prefix: str = "") -> Iterator[None]:
    """Re-raise a :class:`ConfigError` of the block as ``error`` (message prefixed)."""
    try:
        yield
    except ConfigError as exc:
        if type(exc) is error and not prefix:
            raise
        raise error(f"{prefix}{exc}") from None


# --------------------------------------------------------------------------- parsing
def parse_override(item: str) -> tuple[str, str]:
    """``"a.b=value"`` -> ``("a.b", "value")``. The value stays text: :func:`coerce` reads
    it as YAML for a field that is not a string, so ``model=yes`` stays ``"yes"``."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {item!r} has an empty key")
    return key, raw.strip()


def _from_text(value: str) -> Any:
    if not value:
        return ""
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def read_mapping(path: str | Path, what: str = "config") -> dict[str, Any]:
    """The mapping in a YAML (or ``.json``) file; an empty file is ``{}``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}"
                          f" ({exc})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a {what} must be a mapping of settings")
    return data


# --------------------------------------------------------------------------- types
def field_types(cls: type) -> dict[str, Any]:
    """``{field name: resolved type hint}`` of a dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _union_args(hint: Any) -> tuple | None:
    origin = typing.get_origin(hint)
    if origin is Union or origin is types.UnionType:
        return typing.get_args(hint)
    return None


def _dataclass_in(hint: Any) -> type | None:
    args = _union_args(hint)
    for t in args if args else (hint,):
        if isinstance(t, type) and dataclasses.is_dataclass(t):
            return t
    return None


def coerce(value: Any, hint: Any, key: str, *, split_text: bool = True) -> Any:
    """``value`` converted to ``hint`` (``key`` names it in errors). Text given for a field
    that is not a string is read as YAML (``16``, ``true``, ``[a, b]``, ``{r: 8}``,
    ``null``); ``split_text``: text for a list or tuple may also be ``a,b``."""
    args = _union_args(hint)
    if args is not None:
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")):
            if type(None) in args:
                return None
            raise ConfigError(f"{key} cannot be null")
        errors = []
        for t in args:
            if t is type(None):
                continue
            try:
                return coerce(value, t, key, split_text=split_text)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if isinstance(value, str) and hint is not str and hint is not Any:
        value = _from_text(value)
    if value is None:
        raise ConfigError(f"{key} cannot be null")
    if hint is Any:
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping (section {hint.__name__}), got {value!r}")
        return build(hint, value, key)
    origin = typing.get_origin(hint) or hint
    if origin in (list, tuple):
        item_types = typing.get_args(hint) or (Any,)
        if isinstance(value, str) and split_text:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        if origin is list:
            return [coerce(v, item_types[0], f"{key}[{i}]") for i, v in enumerate(value)]
        if len(item_types) == 2 and item_types[1] is Ellipsis:
            item_types = (item_types[0],) * len(value)
        if len(item_types) != len(value):
            raise ConfigError(f"{key} must have {len(item_types)} items, got {value!r}")
        return tuple(coerce(v, t, f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, item_types)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false",
                                                        "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = hint(value.strip())
        whole = hint is float or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                isinstance(value, int) or whole):
            raise ConfigError(f"{key} must be {'an integer' if hint is int else 'a number'}, "
                              f"got {value!r}")
        return hint(value)
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key} must be a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported field type {hint!r}")  # pragma: no cover


# --------------------------------------------------------------------------- dataclasses
def unknown_key_message(full_key: str, head: str, valid: Sequence[str], section: str) -> str:
    """``unknown config key ...`` with the closest valid key and the list of valid ones."""
    where = f"under {section!r}" if section else "at the top level"
    msg = f"unknown config key {full_key!r}: no {head!r} {where}"
    close = difflib.get_close_matches(head, list(valid), n=1)
    if close:
        msg += f" (did you mean {close[0]!r}?)"
    return msg + f"; valid keys: {', '.join(valid)}"


def build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """A ``cls`` instance from a (nested) mapping; unknown keys and wrong types are errors."""
    hints = field_types(cls)
    kwargs = {}
    for k, v in data.items():
        full = f"{prefix}.{k}" if prefix else str(k)
        if k not in hints:
            raise ConfigError(unknown_key_message(full, str(k), list(hints), prefix))
        kwargs[k] = coerce(v, hints[k], full)
    return cls(**kwargs)


def merge(obj: Any, data: dict[str, Any], prefix: str = "") -> Any:
    """Overlay a nested mapping on a dataclass instance (in place; returned)."""
    hints = field_types(type(obj))
    for k, v in data.items():
        full = f"{prefix}.{k}" if prefix else str(k)
        if k not in hints:
            raise ConfigError(unknown_key_message(full, str(k), list(hints), prefix))
        current = getattr(obj, k)
        if isinstance(v, dict) and dataclasses.is_dataclass(current):
            merge(current, v, full)
        else:
            setattr(obj, k, coerce(v, hints[k], full))
    return obj


def set_dotted(obj: Any, key: str, value: Any) -> None:
    """Set the dotted ``key`` of a (nested) dataclass, converting ``value`` to the field's
    type; a section that is None (an optional one) is created with its defaults."""
    parts = key.split(".")
    for depth, head in enumerate(parts):
        hints = field_types(type(obj))
        if head not in hints:
            raise ConfigError(unknown_key_message(key, head, list(hints), ".".join(parts[:depth])))
        if depth == len(parts) - 1:
            setattr(obj, head, coerce(value, hints[head], key))
            return
        child = getattr(obj, head)
        if child is None:
            cls = _dataclass_in(hints[head])
            if cls is None:
                raise ConfigError(f"{key}: {head!r} is not a section")
            child = cls()
            setattr(obj, head, child)
        if not dataclasses.is_dataclass(child):
            raise ConfigError(f"{key}: {head!r} is a value, not a section")
        obj = child


def apply_overrides(obj: Any, overrides: Sequence[str]) -> Any:
    """A copy of the dataclass ``obj`` with ``["a.b=value", ...]`` applied."""
    obj = copy.deepcopy(obj)
    for item in overrides:
        key, value = parse_override(item)
        set_dotted(obj, key, value)
    return obj
