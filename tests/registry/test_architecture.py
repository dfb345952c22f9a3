"""The domain package stays free of transports: checked on the source, with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REGISTRY = Path(__file__).resolve().parents[2] / "registry"
TRANSPORTS = {"fastapi", "starlette", "click", "uvicorn"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def registry_sources() -> list[Path]:
    return sorted(REGISTRY.rglob("*.py"))


def test_the_registry_package_has_sources_to_check():
    assert {p.name for p in registry_sources()} >= {"library.py", "gitstore.py", "lint.py"}


@pytest.mark.parametrize("path", registry_sources(), ids=lambda p: p.name)
def test_registry_never_imports_fastapi_starlette_or_click(path):
    top_levels = {name.split(".")[0] for name in imported_modules(path)}
    assert not top_levels & TRANSPORTS, f"{path.name} imports {sorted(top_levels & TRANSPORTS)}"


def test_pygit2_is_imported_by_one_registry_module_only():
    users = [p.name for p in registry_sources() if "pygit2" in
             {n.split(".")[0] for n in imported_modules(p)}]
    assert users == ["gitstore.py"]


def test_the_import_scan_sees_every_import_form(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import click\nimport fastapi.routing as r\nfrom starlette import requests\n"
        "from . import sibling\ndef f():\n    import uvicorn\n"
    )
    assert imported_modules(sample) == {"click", "fastapi.routing", "starlette", "uvicorn"}
