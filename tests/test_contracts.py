"""Contracts you can check (issue 9): ``__all__`` lists what other modules actually import.

Read statically (``ast``) from every module of ``genft_search`` and ``trainables``:

- every name imported from another module of the project, as ``from genft_search.x import name`` or as
  ``x.name`` on a module bound by an import (or by ``import_module("genft_search.x")``), is in ``x``'s
  ``__all__`` (or is a submodule of ``x``);
- a private module (``_x.py``) and a private name (``_name``) are used only inside their own package;
- every ``__all__`` entry is bound in its module, and outside the package façades (``__init__.py``, the
  documented API) every entry is imported by some other module of the repository (code, tests or
  benchmarks): the lists are small and true.

Tests may import private things; the rules are for the project's code.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("genft_search", "trainables")
#: where the users of a non-façade module's ``__all__`` may live
USERS = (*PACKAGES, "tests", "benchmarks")


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool

    @property
    def package(self) -> str:
        """The package a module belongs to (a package belongs to itself)."""
        return self.name if self.is_package else self.name.rpartition(".")[0]

    @property
    def tree(self) -> ast.Module:
        return _parse(self.path)


@dataclass(frozen=True)
class Use:
    """``importer`` uses ``name`` of module ``target`` (at ``path:line``)."""

    importer: str
    path: Path
    line: int
    target: str
    name: str


@cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _module_of(path: Path) -> Module:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return Module(".".join(parts), path, is_package)


@cache
def modules() -> dict[str, Module]:
    found = (_module_of(p) for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py")))
    return {m.name: m for m in found}


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Module-level statements, looking inside ``if`` / ``try`` blocks (``TYPE_CHECKING`` imports)."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from _top_level(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            yield from _top_level(node.body + node.orelse + node.finalbody
                                  + [s for h in node.handlers for s in h.body])


def exports(module: Module) -> list[str] | None:
    for node in module.tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                                for t in node.targets):
            return list(ast.literal_eval(node.value))
    return None


def _bound(module: Module) -> set[str]:
    names: set[str] = set()
    for node in _top_level(module.tree.body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def _absolute(importer: Module, node: ast.ImportFrom) -> str | None:
    if not node.level:
        return node.module
    base = importer.package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a scope, not descending into the scopes nested in it."""
    for child in ast.iter_child_nodes(scope):
        yield child
        if not isinstance(child, _SCOPES):
            yield from _own_nodes(child)


def _importers(tree: ast.Module) -> set[str]:
    """``import_module`` and the module's own functions that call it (``cli._optional``)."""
    names = {"import_module"}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and any(
            isinstance(n, ast.Call) and _callee(n) == "import_module" for n in ast.walk(node)
        ):
            names.add(node.name)
    return names


def _callee(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def uses(path: Path) -> Iterator[Use]:
    """Every use of a project module's attribute in the file at ``path`` (names resolved per scope)."""
    known = modules()
    importer = _module_of(path)
    tree = _parse(path)
    loaders = _importers(tree)

    def bindings(scope: ast.AST, aliases: dict[str, str]) -> Iterator[Use]:
        """Record what ``scope`` binds (project modules in, anything else shadows); yield its imports."""
        if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for arg in ast.walk(scope.args):
                if isinstance(arg, ast.arg):
                    aliases.pop(arg.arg, None)
        for node in _own_nodes(scope):
            if isinstance(node, ast.ImportFrom):
                source = _absolute(importer, node)
                for alias in node.names:
                    local = alias.asname or alias.name
                    aliases.pop(local, None)
                    if source not in known:
                        continue
                    yield Use(importer.name, path, node.lineno, source, alias.name)
                    if f"{source}.{alias.name}" in known:
                        aliases[local] = f"{source}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    for i in range(1, len(parts)):  # `import a.b.c` uses b of a and c of a.b
                        if ".".join(parts[: i + 1]) in known:
                            yield Use(importer.name, path, node.lineno, ".".join(parts[:i]), parts[i])
                    local = alias.asname or parts[0]
                    aliases.pop(local, None)
                    if alias.asname and alias.name in known:
                        aliases[local] = alias.name
                    elif not alias.asname and parts[0] in known:
                        aliases[local] = parts[0]
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                aliases.pop(node.id, None)
        for node in _own_nodes(scope):  # `x = import_module("genft_search.x")` and its wrappers
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                    and _callee(node.value) in loaders and node.value.args
                    and isinstance(arg := node.value.args[0], ast.Constant) and arg.value in known):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        aliases[target.id] = str(arg.value)

    def visit(scope: ast.AST, inherited: dict[str, str]) -> Iterator[Use]:
        aliases = dict(inherited)
        yield from bindings(scope, aliases)

        def resolve(expr: ast.expr) -> str | None:
            """The project module an expression denotes, if any (``store``, ``genft_search.tune``)."""
            if isinstance(expr, ast.Name):
                return aliases.get(expr.id)
            if isinstance(expr, ast.Attribute) and (parent := resolve(expr.value)) is not None:
                return f"{parent}.{expr.attr}" if f"{parent}.{expr.attr}" in known else None
            return None

        for node in _own_nodes(scope):
            if isinstance(node, ast.Attribute) and (target := resolve(node.value)) is not None:
                yield Use(importer.name, path, node.lineno, target, node.attr)
            elif isinstance(node, _SCOPES):
                yield from visit(node, aliases)

    yield from visit(tree, {})


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _scope(target: str, name: str) -> str | None:
    """The package outside which ``name`` of ``target`` must not be used (``None``: public)."""
    known = modules()
    parts = target.split(".")
    for i, part in enumerate(parts):
        if _private(part):
            return ".".join(parts[:i])
    if _private(name):
        return known[target].package
    return None


def violation(use: Use) -> str | None:
    known = modules()
    where = f"{use.path.relative_to(ROOT)}:{use.line}: {use.importer} uses {use.target}.{use.name}"
    submodule = f"{use.target}.{use.name}"
    scope = _scope(submodule, "") if submodule in known else _scope(use.target, use.name)
    if scope is not None and _module_of(use.path).package != scope:
        return f"{where}, private to {scope}"
    if submodule in known or (scope is not None and _private(use.name)):
        return None
    declared = exports(known[use.target])
    if declared is None:
        return f"{where}; {use.target} has no __all__"
    if use.name not in declared:
        return f"{where}, not in its __all__"
    return None


def _code_files() -> list[Path]:
    return [m.path for m in modules().values()]


def test_the_checker_sees_the_imports_it_checks() -> None:
    """The rules below look at real imports (a checker that finds none would pass anything)."""
    found = {(u.importer, u.target, u.name) for p in _code_files() for u in uses(p)}
    assert ("genft_search.tune._run", "genft_search.store", "StudyRecord") in found  # from-import
    assert ("genft_search.tune._searcher", "genft_search.store", "ATTR_METRICS") in found  # store.X
    assert ("genft_search.cli", "genft_search.report", "write_report") in found  # import_module
    run = ROOT / "genft_search/tune/_run.py"
    assert violation(Use("genft_search.tune._run", run, 1, "genft_search.store", "_private")) is not None
    assert violation(Use("genft_search.tune._run", run, 1, "genft_search.store", "unlisted")) is not None
    assert violation(Use("genft_search.cli", ROOT / "genft_search/cli.py", 1, "genft_search.tune._plan",
                         "plan_study")) is not None
    assert violation(Use("genft_search.tune", ROOT / "genft_search/tune/__init__.py", 1,
                         "genft_search.tune._plan", "plan_study")) is None


def test_cross_module_imports_name_what_the_target_exports() -> None:
    problems = sorted({v for p in _code_files() for u in uses(p) if (v := violation(u))})
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(modules()))
def test_all_is_true(name: str) -> None:
    """Every ``__all__`` entry is bound in its module (defined, imported or assigned)."""
    module = modules()[name]
    declared = exports(module) or []
    assert len(declared) == len(set(declared)), f"{name}: duplicates in __all__"
    unbound = sorted(set(declared) - _bound(module))
    assert not unbound, f"{name}: __all__ names {unbound} that the module does not bind"


def test_all_is_small() -> None:
    """Outside the package façades, every ``__all__`` entry is imported somewhere else."""
    used: set[tuple[str, str]] = set()
    for folder in USERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            used.update((u.target, u.name) for u in uses(path))
    unused = sorted(f"{m.name}.{n}" for m in modules().values() if not m.is_package
                    for n in exports(m) or [] if (m.name, n) not in used)
    assert not unused, f"in __all__ but imported by no other module: {unused}"


# The public entry points (issue 9) and their Google-style docstrings.
ENTRY_POINTS = {
    "genft_search.tune": ["run_study", "plan_study", "validate_study", "run_plan"],
    "genft_search.ablation": ["run_ablation"],
    "genft_search.report": ["write_report"],
    "genft_search.method": ["attach_method", "register_method", "generate_delta", "attach_genft"],
    "genft_search.store": ["open_storage"],
    "trainables.registry": ["check_study"],
}


@pytest.mark.parametrize("module, name", [(m, n) for m, names in ENTRY_POINTS.items() for n in names])
def test_entry_points_document_their_arguments_and_results(module: str, name: str) -> None:
    import importlib
    import inspect

    fn = getattr(importlib.import_module(module), name)
    doc = inspect.getdoc(fn) or ""
    assert "\nArgs:\n" in doc and ("\nReturns:\n" in doc or "\nRaises:\n" in doc), f"{module}.{name}"
    args = doc.split("\nArgs:\n", 1)[1].split("\n\n", 1)[0]
    documented = {line.split(":", 1)[0].strip() for line in args.splitlines() if line.startswith("    ")
                  and not line.startswith("        ")}
    params = set(inspect.signature(fn).parameters) - {"self"}
    assert documented == params, f"{module}.{name}: Args {sorted(documented)}, signature {sorted(params)}"


def _docstrings(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc:
                yield getattr(node, "lineno", 1), doc


def test_docstrings_cite_nothing_outside_the_repository() -> None:
    """Docstrings cite the paper (arXiv 2506.11042) or the project's docs, never files beside the checkout."""
    import re

    outside = re.compile(r"\.\./|(^|[\s`(])(shared|/work|/tmp)/[\w./-]*\.(py|md|ya?ml|txt|pdf|json|tex)\b")
    found = [f"{m.path.relative_to(ROOT)}:{line}: {hit.group(0).strip()}" for m in modules().values()
             for line, doc in _docstrings(m.tree) if (hit := outside.search(doc))]
    assert not found, "\n".join(found)
