"""The architecture as the code states it: only app.py and ui/ import streamlit, dependencies point one way
(ui → experiments → engine → documents → chains, memory, callbacks, auth → config; web, the HTTP middleware and
routes app.py adds, → memory (the exports its file routes serve), callbacks (the metrics it serves), auth → config;
ui → web for the file links it draws), and product code never imports localdev."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ["app.py", "ui", "experiments", "engine", "documents", "chains", "memory", "callbacks", "auth", "config", "web",
           "store"]
# Which product packages each layer may import (itself included).
ALLOWED = {
    "ui": {"ui", "web", "experiments", "engine", "documents", "chains", "memory", "callbacks", "auth", "store", "config"},
    "experiments": {"experiments", "engine", "documents", "chains", "memory", "callbacks", "auth", "store", "config"},
    "engine": {"engine", "documents", "chains", "memory", "callbacks", "auth", "store", "config"},
    "documents": {"documents", "chains", "memory", "callbacks", "store", "config"},
    "chains": {"chains", "memory", "callbacks", "auth", "store", "config"},
    "memory": {"memory", "chains", "store", "config"},
    "callbacks": {"callbacks", "chains", "store", "config"},
    "auth": {"auth", "store", "config"},
    "web": {"web", "memory", "callbacks", "auth", "store", "config"},
    "store": {"store", "config"},  # the one declarative base (store/base.py), below every module with tables
    "config": {"config"},
}
PACKAGES = set(ALLOWED) | {"localdev", "tests", "bench"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def product_files():
    for entry in PRODUCT:
        path = ROOT / entry
        yield from ([path] if path.is_file() else sorted(path.rglob("*.py")))


def test_only_app_and_ui_import_streamlit():
    offenders = [str(p.relative_to(ROOT)) for p in product_files()
                 if "streamlit" in imports(p) and p.name != "app.py" and p.relative_to(ROOT).parts[0] != "ui"]
    assert offenders == []


def test_dependencies_point_one_way_and_never_into_localdev():
    wrong = []
    for path in product_files():
        layer = path.relative_to(ROOT).parts[0]
        if layer == "app.py":
            continue
        used = imports(path) & PACKAGES
        wrong += [f"{path.relative_to(ROOT)} imports {name}" for name in sorted(used - ALLOWED[layer])]
    assert wrong == []


def test_nothing_outside_the_engine_calls_its_private_methods():
    """The turn engine's phases (`begin`, `admit`, `answer`, `commit`) are its API: comparisons and redone answers are
    commit policies inside engine/, and the page only runs turns and renders their events."""
    wrong = []
    for path in product_files():
        if path.relative_to(ROOT).parts[0] == "engine":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and (getattr(node.value, "id", None) or getattr(node.value, "attr", None)) in ("engine",
                                                                                                  "turn_engine")):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} uses engine.{node.attr}")
    assert wrong == []
