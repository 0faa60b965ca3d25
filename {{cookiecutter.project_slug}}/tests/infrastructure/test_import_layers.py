# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The package's imports form layers, with no circle: read from the source with `ast`.

Every `import` and `from ... import` in every module of the package counts, absolute or
relative, at the top of a module or inside a function (a lazy import is still a dependency, and
still a circle when it closes one). Each module belongs to one layer (`layer_of`); a layer
imports its own modules and the layers `ALLOWED` lists for it, nothing else. The registry loads
the jobs module by name (`registry.load_jobs()`), never by an import, so the client the jobs use
never imports them back.
"""

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import {{ cookiecutter.package_name }} as package

PACKAGE = package.__name__
SOURCE = Path(package.__file__).parent

# Top to bottom: what each layer may import besides its own modules.
ALLOWED: dict[str, set[str]] = {
    # infrastructure/testing.py: the pytest plugin for the user's tests (a worker, the lifespan).
    "testing": {
        *("tasks", "worker", "local", "user", "queue", "ops", "client", "store"),
        *("base", "foundation"),
    },
    # The web API (api/, if the project has one) and `python -m <package>`.
    "app": {"user", "queue", "ops", "client", "store", "base", "foundation"},
    # infrastructure/tasks.py: WorkerSettings, built from the registry, with the user's
    # worker_lifespan (the one import of the user's code in infrastructure/).
    "tasks": {"user", "worker", "client", "store", "base", "foundation"},
    # infrastructure/worker/: the worker loop, retries, hooks, the functions it runs.
    "worker": {"ops", "store", "base", "foundation"},
    # infrastructure/local/: the development Redis server, beside the rest (nothing imports it).
    "local": {"store", "base", "foundation"},
    # infrastructure/ops/: the command line (which requeues through the client), metrics, activity.
    "ops": {"client", "store", "base", "foundation"},
    # The user's own modules: jobs.py, worker_lifespan.py, and any module the template does not own.
    "user": {"queue", "ops", "client", "store", "base", "foundation"},
    # queue.py: the one import place for job authors and clients.
    "queue": {"client", "store", "foundation"},
    # infrastructure/client/: the pool, enqueueing, @job and its typed handles.
    "client": {"store", "base", "foundation"},
    # infrastructure/store/: what is written in Redis and how it is read.
    "store": {"base", "foundation"},
    # Settings, logging, redaction, error tracking and tracing: what every layer uses.
    "base": {"foundation"},
    # infrastructure/'s own modules: job types and events, the registry, the settings' model.
    "foundation": set(),
}

BASE = {"config", "logs", "redaction", "error_tracking", "tracing"}
USER_MODULES = {"jobs", "worker_lifespan"}
INFRASTRUCTURE_LAYERS = ["testing", "tasks", "worker", "local", "ops", "client", "store"]


def layer_of(module: str) -> str:
    """The layer of `module`, named relative to the package (`infrastructure.store.records`)."""
    parts = module.split(".")
    if parts[0] == "infrastructure" and len(parts) > 1 and parts[1] in INFRASTRUCTURE_LAYERS:
        return parts[1]
    if parts[0] in {"infrastructure", ""}:
        return "foundation"  # infrastructure/'s own modules, the package's __init__
    if parts[0] in BASE:
        return "base"
    if parts[0] == "queue":
        return "queue"
    if parts[0] in {"api", "__main__"}:
        return "app"
    return "user"


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool

    def __str__(self) -> str:
        where = " (inside a function)" if self.in_function else ""
        return f"{self.importer} -> {self.imported} (line {self.line}){where}"


def module_files() -> dict[str, Path]:
    """Every module of the package by its name relative to the package ("" for its __init__)."""
    modules = {}
    for path in sorted(SOURCE.rglob("*.py")):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


@cache
def package_imports() -> tuple[Import, ...]:
    """Every import of one of the package's modules by another."""
    modules = module_files()
    found = []
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, in_function in _walk(tree, in_function=False):
            for target in _targets(node, module, is_package):
                if target in modules and target != module:
                    found.append(Import(module, target, node.lineno, in_function))
    return tuple(found)


def _walk(node: ast.AST, *, in_function: bool) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            found.append((child, in_function))
        inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        found.extend(_walk(child, in_function=inside))
    return found


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The package's modules `node` imports, named relative to the package."""
    if isinstance(node, ast.Import):
        return [_relative(alias.name) for alias in node.names if _ours(alias.name)]
    if node.level:
        here = module.split(".") if module else []
        base = here if is_package else here[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join([*base, *([node.module] if node.module else [])])
    elif node.module is not None and _ours(node.module):
        source = _relative(node.module)
    else:
        return []
    modules = module_files()
    # `from . import registry` imports the module registry; `from .x import name`, module x.
    return [
        named if named in modules else source
        for named in (f"{source}.{alias.name}".lstrip(".") for alias in node.names)
    ]


def _ours(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def _relative(name: str) -> str:
    return name.removeprefix(PACKAGE).removeprefix(".")


def layers_text() -> str:
    lines = [
        f"  {layer}: may import {', '.join(sorted(lower)) or 'nothing'}"
        for layer, lower in ALLOWED.items()
    ]
    return "the layers, top to bottom:\n" + "\n".join(lines)


def test_every_module_is_read() -> None:
    modules = module_files()
    assert {"infrastructure.tasks", "infrastructure.registry", "queue", "jobs"} <= set(modules)
    importers = {found.importer for found in package_imports()}
    assert {"infrastructure.tasks", "infrastructure.client.handles", "jobs"} <= importers
    # Relative imports, two levels up, and those inside functions are all seen.
    assert any(
        str(found).startswith("infrastructure.client.enqueue -> config ")
        for found in package_imports()
    )
    assert any(found.in_function for found in package_imports())


def test_no_import_circle() -> None:
    graph: dict[str, set[str]] = {}
    for found in package_imports():
        graph.setdefault(found.importer, set()).add(found.imported)
    circles = _circles(graph)
    assert circles == [], (
        "import circles:\n"
        + "\n".join(" -> ".join([*circle, circle[0]]) for circle in circles)
        + "\n"
        + layers_text()
    )


def test_each_layer_imports_only_the_layers_below_it() -> None:
    assert set(ALLOWED) >= {layer_of(module) for module in module_files()}
    upward = []
    for found in package_imports():
        importer, imported = layer_of(found.importer), layer_of(found.imported)
        if importer == imported or imported in ALLOWED[importer]:
            continue
        upward.append(f"{found}: {importer} may not import {imported}")
    assert upward == [], "\n".join(upward) + "\n" + layers_text()


def test_the_client_side_never_reaches_the_worker_side() -> None:
    # Not even through another module: a web app that enqueues loads no worker code.
    graph: dict[str, set[str]] = {}
    for found in package_imports():
        graph.setdefault(found.importer, set()).add(found.imported)
    client_side = [
        module
        for module in module_files()
        if layer_of(module) in {"client", "store", "queue", "app"} or module == "jobs"
    ]
    reached = []
    for start in client_side:
        for module in _reachable(graph, start):
            if layer_of(module) in {"worker", "tasks"}:
                reached.append(f"{start} reaches {module}")
    assert reached == [], "\n".join(reached) + "\n" + layers_text()


def test_infrastructure_imports_the_users_code_only_for_worker_lifespan() -> None:
    # The jobs are loaded by name (registry.load_jobs()), the API's routers by the app.
    into_user_code = {
        (found.importer, found.imported)
        for found in package_imports()
        if layer_of(found.importer) in {*INFRASTRUCTURE_LAYERS, "foundation"}
        and layer_of(found.imported) in {"user", "app"}
    }
    # The worker's settings and the tests' plugin open the user's worker_lifespan.
    assert into_user_code == {
        ("infrastructure.tasks", "worker_lifespan"),
        ("infrastructure.testing", "worker_lifespan"),
    }


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        for imported in graph.get(stack.pop(), set()) - seen:
            seen.add(imported)
            stack.append(imported)
    return seen


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each module that is on one (depth first; a module's first circle)."""
    circles: list[list[str]] = []
    on_one: set[str] = set()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        for imported in sorted(graph.get(module, set())):
            if imported in path:
                circle = path[path.index(imported) :]
                if not on_one & set(circle):
                    circles.append(circle)
                on_one.update(circle)
            elif imported not in done:
                visit(imported, [*path, imported])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    return circles
