"""The domain package stays free of transports, and the transports reach the domain through
its facade: checked on the source, with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "registry"
TRANSPORTS = {"fastapi", "starlette", "click", "uvicorn"}

# What server/ and cli/ may import from the registry at run time: the facade, and modules of
# values (with pure functions of them) that build nothing. Services (releases, metrics,
# tokens, the serving cache), the git library and the database come from the facade.
FACADE = "promptctl.registry.core"
VALUE_MODULES = {
    "promptctl.registry.errors": "the domain errors, each with its HTTP status",
    "promptctl.registry.releases.values": "release states, log entries, environments",
    "promptctl.registry.releases.actions": "release actions and the backend protocol",
    "promptctl.registry.releases.routing": "the routing function, weights as percentages",
    "promptctl.registry.releases.assignment": "the variant a release gives a key",
    "promptctl.registry.releases.documents": "the JSON documents clients receive",
    "promptctl.registry.releases.bundle": "the bundle format",
    "promptctl.registry.prompts.promptversion": "a version and its content",
    "promptctl.registry.prompts.variables": "declared inputs; a variable typed from text",
    "promptctl.registry.metrics.summary": "metrics summaries and their time windows",
    "promptctl.registry.metrics.events": "metric events, batches and their answers",
    "promptctl.registry.analysis.report": "a canary analysis (a value) and its JSON form",
    "promptctl.registry.review.markdown": "a review report (a value) as Markdown",
    "promptctl.registry.webhooks.values": "webhook subscriptions, deliveries, event types",
    "promptctl.registry.prompts.layout": "where prompts live: root, pattern, branch",
}
# Modules that keep values beside a service: only these names (the service is the facade's).
VALUE_NAMES = {
    "promptctl.registry.auth": {"SCOPES", "TokenInfo", "hash_token"},
    "promptctl.registry.releases.serving": {"change_of"},
    "promptctl.registry.metrics.series": {"MetricSeries", "SeriesPoint", "Traffic"},
    "promptctl.registry.releases.audit": {"AuditQuery"},
}


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


def transport_sources() -> list[Path]:
    return sorted([*(ROOT / "server").rglob("*.py"), *(ROOT / "cli").rglob("*.py")])


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_registry_imports(path: Path) -> set[tuple[str, str]]:
    """(module, name) of every registry import that runs, `import x.y` as (x.y, "*").

    Imports under `if TYPE_CHECKING:` are left out: an annotation may name any registry
    type, it loads and builds nothing.
    """
    found: set[tuple[str, str]] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            for child in node.orelse:  # type: ignore[attr-defined]
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update((alias.name, "*") for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if (REGISTRY / Path(*submodule.split(".")[2:])).with_suffix(".py").exists():
                    found.add((submodule, "*"))  # from promptctl.registry import core
                else:
                    found.add((node.module, alias.name))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return {(m, n) for m, n in found if m.startswith("promptctl.registry")}


def allowed(module: str, name: str) -> bool:
    if module == FACADE or module in VALUE_MODULES:
        return True
    return name in VALUE_NAMES.get(module, set())


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


def test_there_are_transport_sources_to_check():
    names = {p.relative_to(ROOT).as_posix() for p in transport_sources()}
    assert {"server/app.py", "server/routes_releases.py", "cli/main.py", "cli/releases.py"} <= names


@pytest.mark.parametrize(
    "path", transport_sources(), ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_transports_import_only_the_facade_and_value_modules_of_the_registry(path):
    refused = sorted(f"{m}:{n}" for m, n in runtime_registry_imports(path) if not allowed(m, n))
    assert refused == [], f"{path.name} imports {refused}: reach them through {FACADE}"


@pytest.mark.parametrize(
    "path", transport_sources(), ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_transports_share_nothing_with_the_client_but_through_the_registry(path):
    # The bundle format, say, lives in registry/releases/bundle.py for both to import.
    client = sorted(m for m in imported_modules(path) if m.startswith("promptctl.client"))
    assert client == [], f"{path.name} imports {client}"


def test_every_allowed_module_exists():
    for module in [FACADE, *VALUE_MODULES, *VALUE_NAMES]:
        relative = Path(*module.split(".")[2:]).with_suffix(".py")
        assert (REGISTRY / relative).is_file(), module


def test_the_transport_scan_sees_runtime_imports_and_skips_type_only_ones(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "import promptctl.registry.store.database\n"
        "from promptctl.registry import core\n"
        "from promptctl.registry.auth import SCOPES, TokenService\n"
        "if TYPE_CHECKING:\n    from promptctl.registry.releases.serving import ServingCache\n"
        "else:\n    from promptctl.registry.prompts.library import WORKTREE\n"
        "def f():\n    from promptctl.registry.metrics.service import MetricsService\n"
    )
    found = runtime_registry_imports(sample)
    assert found == {
        ("promptctl.registry.store.database", "*"),
        ("promptctl.registry.core", "*"),
        ("promptctl.registry.auth", "SCOPES"),
        ("promptctl.registry.auth", "TokenService"),
        ("promptctl.registry.prompts.library", "WORKTREE"),
        ("promptctl.registry.metrics.service", "MetricsService"),
    }
    assert [f"{m}:{n}" for m, n in sorted(found) if not allowed(m, n)] == [
        "promptctl.registry.auth:TokenService",
        "promptctl.registry.metrics.service:MetricsService",
        "promptctl.registry.prompts.library:WORKTREE",
        "promptctl.registry.store.database:*",
    ]
