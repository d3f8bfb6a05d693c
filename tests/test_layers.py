"""The package's layering (README, "Architecture"): every module imports only from its own
package or from layers below it, function-local and TYPE_CHECKING imports included, so the
import graph has no circle and no upward edge."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: top-level modules and packages of affectgpt, bottom up
LAYERS = [
    ("", "paths", "io", "config", "machine"),
    ("media",),
    ("encoders", "llm"),
    ("model", "eval"),
    ("data",),
    ("features",),
    ("clues",),
    ("inference",),
    ("train",),
    ("annotate", "report"),
    ("demo",),
    ("cli",),
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                found += ([(node.lineno, f"{target}.{a.name}") for a in node.names]
                          if not node.module else [(node.lineno, target)])
            else:
                found.append((node.lineno, node.module or ""))
    return [(line, name) for line, name in found if name.split(".")[0] == "affectgpt"]


def _modules():
    for path in sorted((SRC / "affectgpt").rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
        yield path, ".".join(parts)


def upward_imports() -> list[str]:
    problems = []
    for path, module in _modules():
        own = _top(module)
        if own not in LAYER:
            problems.append(f"{module}: {own!r} has no layer in tests/test_layers.py")
            continue
        for line, target in _imports(path, module):
            other = _top(target)
            if other == own or other not in LAYER:
                if other not in LAYER:
                    problems.append(f"{module}:{line} imports unknown {target}")
                continue
            if LAYER[other] >= LAYER[own]:
                problems.append(f"{module}:{line} imports {target} "
                                f"(layer {LAYER[other]} >= its own {LAYER[own]})")
    return problems


def test_every_import_points_down():
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The check itself fails on a new upward import (a model module importing training)."""
    fake = tmp_path / "affectgpt" / "model"
    fake.mkdir(parents=True)
    (tmp_path / "affectgpt" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("def f():\n    from affectgpt.train import dist\n")
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path)
    assert any("affectgpt.model:2 imports affectgpt.train" in p for p in upward_imports())


@pytest.mark.parametrize("package", sorted(p for names in LAYERS for p in names if p))
def test_every_layer_exists(package):
    assert (SRC / "affectgpt" / package).is_dir() or (SRC / "affectgpt" / f"{package}.py").is_file()
