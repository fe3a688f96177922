"""The floor plan holds: data flows one way, corpus/model -> build/store -> search -> feeds ->
cli, with the bot above all, and no module imports one that (directly or not) imports it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The lower a layer, the fewer it may import: a module imports its own package's modules
# and those of lower layers only. `retrieval` itself is the public face, above the rest.
LAYERS = {
    "retrieval.errors": 0, "retrieval.text": 0, "retrieval.logs": 0, "retrieval.progress": 0,
    "retrieval.version": 0,
    "retrieval.corpus": 1, "retrieval.model": 1,
    "retrieval.store": 2,
    "retrieval.build": 3,
    "retrieval.search": 4,
    "retrieval.feeds": 5,
    "retrieval.cli": 6,
    "retrieval": 7,
    "bot": 8,
}
BACKENDS = ("retrieval.store.folder", "retrieval.store.postgres")


def modules() -> dict[str, Path]:
    found = {}
    for package in ("retrieval", "bot"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The product modules `name` imports, at any depth of its code (lazy imports too);
    imports only for type checkers (`if TYPE_CHECKING:`) make no dependency and don't count."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                   for inner in block.body for n in ast.walk(inner)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            # `from package import module` imports the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        out |= {t for t in targets if t in known and t != name}
    return out


def layer(name: str) -> tuple[int, str]:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if name == prefix or name.startswith(prefix + "."):
            return LAYERS[prefix], prefix
    raise AssertionError(f"{name} is in no layer: add it to LAYERS (and docs/architecture.md)")


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_every_import_goes_down_a_layer_or_stays_in_its_package():
    wrong = []
    for name, deps in graph().items():
        rank, home = layer(name)
        for dep in deps:
            dep_rank, dep_home = layer(dep)
            if dep_home != home and dep_rank >= rank:
                wrong.append(f"{name} imports {dep}")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def test_the_two_backends_never_import_each_other():
    wrong = [f"{name} imports {dep}" for name, deps in graph().items() for dep in deps
             for mine, other in (BACKENDS, BACKENDS[::-1])
             if name.startswith(mine) and dep.startswith(other)]
    assert not wrong, "\n".join(wrong)


def test_no_module_outside_the_store_names_a_backend():
    wrong = [f"{name} imports {dep}" for name, deps in graph().items() for dep in deps
             if not name.startswith("retrieval.store") and dep.startswith(BACKENDS)]
    assert not wrong, "\n".join(wrong)


def test_there_is_no_import_circle():
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def _python_files(*folders: str) -> list[Path]:
    return [p for f in folders for p in sorted((ROOT / f).rglob("*.py"))]


def _defined_names(paths: list[Path]) -> set[str]:
    return {node.name for path in paths for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def test_tests_and_benches_use_only_the_products_public_names():
    """No test or bench imports or calls a private (`_name`) function of the product, and
    none monkeypatches a product module's globals: what they need is a parameter."""
    product = _defined_names(_python_files("retrieval", "bot"))
    own = _defined_names(_python_files("tests", "bench"))
    private = {n for n in product if n.startswith("_") and not n.startswith("__")} - own
    wrong = []
    for path in _python_files("tests", "bench"):
        tree = ast.parse(path.read_text())
        modules = set()  # names bound to product modules here
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
                    "retrieval", "bot"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        wrong.append(f"{path.name}: imports {node.module}.{alias.name}")
                    if (ROOT / (node.module or "").replace(".", "/") / f"{alias.name}.py"
                            ).exists():
                        modules.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                modules |= {a.asname for a in node.names
                            if a.asname and a.name.split(".")[0] in ("retrieval", "bot")}
        for node in ast.walk(tree):
            mine = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in ("self", "cls")
            if isinstance(node, ast.Attribute) and node.attr in private and not mine:
                wrong.append(f"{path.name}:{node.lineno}: uses the private {node.attr}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "setattr" and node.args
                    and isinstance(node.args[0], ast.Name) and node.args[0].id in modules):
                wrong.append(f"{path.name}:{node.lineno}: monkeypatches {node.args[0].id}")
    assert not wrong, "\n".join(wrong)


def test_every_product_import_resolves_even_inside_functions():
    """A lazy `from retrieval.x import y` inside a function (a bench's step, a test's
    helper, the product's own) names a module and a name that exist: a move that misses one
    fails here, not in the middle of a 40-minute `make bench`."""
    import importlib

    wrong = []
    for path in _python_files("retrieval", "bot", "tests", "bench"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level:
                continue
            if (node.module or "").split(".")[0] not in ("retrieval", "bot"):
                continue
            try:
                module = importlib.import_module(node.module)
            except ImportError as exc:
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: {exc}")
                continue
            for alias in node.names:
                if not hasattr(module, alias.name) and not (
                        ROOT / node.module.replace(".", "/") / f"{alias.name}.py").exists():
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: "
                                 f"{node.module} has no {alias.name}")
    assert not wrong, "\n".join(wrong)
