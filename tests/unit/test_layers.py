"""The layout of SPEC 1 and STYLE.md, checked from the source: who may import whom.

`web` and `worker` are entrypoints that never import each other; `shared` knows nothing
of Flask or Celery; inside `shared`, each package imports only downward.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Inside shared/: a module's layer, and the layers it may import from (its own included).
HELPERS = {
    "errors",
    "timefmt",
    "keys",
    "tokens",
    "settings",
    "params",
    "fields",
    "app_rules",
    "findings",
    "__init__",
}
ALLOWED = {
    "helpers": {"helpers"},
    "store": {"helpers", "store"},
    "jobs": {"helpers", "store", "jobs"},
    # What an import records for its undo, and the rollback; both importers call it.
    "undo": {"helpers", "store", "jobs", "undo"},
    "archive": {"helpers", "store", "jobs", "undo", "archive"},
    "tables": {"helpers", "store", "jobs", "undo", "tables"},
    "top": {"helpers", "store", "jobs", "undo", "archive", "tables", "top"},
}


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "shared" or len(parts) == 1:
        return "helpers"
    if parts[1] in ALLOWED and parts[1] not in ("helpers", "top"):
        return parts[1]
    return "helpers" if parts[1] in HELPERS else "top"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _modules(package: str) -> list[tuple[str, Path]]:
    base = ROOT / package
    return [
        (".".join(p.relative_to(ROOT).with_suffix("").parts), p) for p in sorted(base.rglob("*.py"))
    ]


@pytest.mark.parametrize(("entry", "forbidden"), [("web", "worker"), ("worker", "web")])
def test_entrypoints_never_import_each_other(entry: str, forbidden: str) -> None:
    offenders = [
        (name, imported)
        for name, path in _modules(entry)
        for imported in _imports(path)
        if imported.split(".")[0] == forbidden
    ]
    assert offenders == []


def test_shared_knows_nothing_of_the_entrypoints_or_their_frameworks() -> None:
    outside = {"web", "worker", "cli", "flask", "celery", "kombu", "werkzeug", "gunicorn"}
    offenders = [
        (name, imported)
        for name, path in _modules("shared")
        for imported in _imports(path)
        if imported.split(".")[0] in outside
    ]
    assert offenders == []


def test_packages_inside_shared_import_only_downward() -> None:
    offenders = []
    for name, path in _modules("shared"):
        mine = _layer(name)
        for imported in _imports(path):
            if imported.split(".")[0] == "shared" and _layer(imported) not in ALLOWED[mine]:
                offenders.append((name, imported))
    assert offenders == []


def test_the_pure_helpers_import_only_the_standard_library_and_each_other() -> None:
    third_party = {"sqlalchemy", "psycopg", "redis", "orjson", "isal", "ijson"}
    offenders = [
        (name, imported)
        for name, path in _modules("shared")
        if _layer(name) == "helpers" and name != "shared.__init__"
        for imported in _imports(path)
        if imported.split(".")[0] in third_party
    ]
    assert offenders == []
