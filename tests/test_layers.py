"""Lower layers never import higher ones (design principle 15), and no two modules import each other.

Every module's imports are read with ``ast``, the ones inside functions included (a lazy import is
still a dependency). A module belongs to the layer of its longest matching prefix in ``LAYERS``; it
may import its own layer and the layers below. When two modules need each other, the shared part
moves down (docs/extending.md, "Layers").

A package's ``__init__.py`` only imports and re-exports (its docstring, imports, ``__all__``): the code lives in
the package's modules, so importing a package runs no code of its own and import order stays the modules' order.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Bottom to top. ``radrl.hub`` (the download command hints print), ``radrl.lookup``, ``radrl.machine`` and
# ``radrl.package`` (version, packaged recipes) import nothing of radrl; ``data`` is the sample
# schema, boxes, images and dataset adapters; ``models`` loads and runs checkpoints (and serves them);
# ``parsing`` reads completions; ``metrics`` score parsed answers (model-based ones run on a
# ``models`` device); ``rewards`` adapt metrics for TRL; ``eval`` and ``train`` are the pipeline's
# stages (``app``, one image at a time with eval's requests, budget and parser, sits on ``eval``); ``demo`` runs
# them all; ``cli`` holds every verb's argument parser and entry point.
LAYERS = (
    ("base", ("radrl", "radrl.hub", "radrl.lookup", "radrl.machine", "radrl.package")),
    ("data", ("radrl.data",)),
    ("models", ("radrl.models",)),
    ("parsing", ("radrl.parsing",)),
    ("metrics", ("radrl.metrics",)),
    ("rewards", ("radrl.rewards",)),
    ("eval", ("radrl.eval",)),
    ("app", ("radrl.app",)),
    ("train", ("radrl.train",)),
    ("demo", ("radrl.demo",)),
    ("cli", ("radrl.cli",)),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted((SRC / "radrl").rglob("*.py"))}


def layer(module: str) -> int:
    """Index in ``LAYERS`` of the longest prefix that ``module`` is or lies under."""
    best, found = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), i
    if found is None:
        raise AssertionError(f"{module} is in no layer; add it to LAYERS in tests/test_layers.py")
    return found


def imports(module: str) -> list[tuple[int, str]]:
    """(line, imported radrl module) for every import in ``module``, at any depth. ``from pkg import name``
    counts as an import of ``pkg.name`` when that is a module, else of ``pkg``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "radrl"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            if base.split(".")[0] != "radrl":
                continue
            for a in node.names:
                out.append((node.lineno, f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base))
    return sorted(set(out))


def graph() -> dict[str, list[tuple[int, str]]]:
    return {m: [(line, t) for line, t in imports(m) if t != m] for m in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        layer(module)


def test_no_upward_import():
    names = [n for n, _ in LAYERS]
    found = []
    for module, edges in graph().items():
        for line, target in edges:
            if layer(target) > layer(module):
                found.append(f"{MODULES[module].relative_to(SRC.parent)}:{line}: {module} imports {target}: layer "
                             f"{names[layer(module)]} must not import layer {names[layer(target)]} "
                             f"(order: {' < '.join(names)}); move the shared part down")
    assert not found, "\n".join(found)


def test_no_import_cycle():
    # Tarjan's strongly connected components over the import graph: any component of two or more modules
    # (or a module importing itself through others) is a cycle, within a layer or across layers.
    edges = {m: sorted({t for _, t in e if t in MODULES}) for m, e in graph().items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(component)

    for module in edges:
        if module not in index:
            visit(module)
    messages = []
    for component in cycles:
        members = set(component)
        lines = [f"{MODULES[m].relative_to(SRC.parent)}:{line}: {m} imports {t}"
                 for m in sorted(members) for line, t in graph()[m] if t in members]
        messages.append(f"import cycle {sorted(members)}; move what they share into one of them or a lower "
                        "module:\n  " + "\n  ".join(lines))
    assert not messages, "\n".join(messages)


def test_the_checker_sees_lazy_upward_imports(tmp_path, monkeypatch):
    # A function-level import of a higher layer is caught (the rule is about dependencies, not import time).
    fake = tmp_path / "radrl" / "data" / "fake.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from radrl.eval.report import markdown_table\n")
    monkeypatch.setitem(MODULES, "radrl.data.fake", fake)
    assert imports("radrl.data.fake") == [(2, "radrl.eval.report")]
    assert layer("radrl.eval.report") > layer("radrl.data.fake")


# What an ``__init__.py`` may hold besides its docstring and imports: ``__all__``, and the package's ``__version__``.
INIT_NAMES = ("__all__", "__version__")


def init_code(path: Path) -> list[str]:
    """(``file:line: what``) for every top-level statement of an ``__init__.py`` that is not its docstring, an import,
    ``__all__`` (a list or tuple of names) or ``__version__`` (a string)."""
    body = ast.parse(path.read_text(), str(path)).body
    found = []
    for i, node in enumerate(body):
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            continue   # the docstring
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id in INIT_NAMES:
            value = node.value
            names = value.elts if isinstance(value, (ast.List, ast.Tuple)) and node.targets[0].id == "__all__" \
                else [value]
            if all(isinstance(n, ast.Constant) and isinstance(n.value, str) for n in names):
                continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            what = f"defines {'class' if isinstance(node, ast.ClassDef) else 'function'} {node.name}"
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            what = f"assigns {', '.join(ast.unparse(t) for t in targets)}"
        else:
            what = f"runs a {type(node).__name__} statement"
        found.append(f"{path.relative_to(SRC.parent) if path.is_relative_to(SRC.parent) else path}:{node.lineno}: "
                     f"{what}")
    return found


def test_init_files_only_reexport():
    found = [f for module, path in MODULES.items() if path.name == "__init__.py" for f in init_code(path)]
    assert not found, ("an __init__.py only imports and re-exports (docstring, imports, __all__); move the code "
                       "into a module of its package (as radrl/metrics/base.py and registry.py hold what "
                       "radrl.metrics re-exports) and import it from there:\n" + "\n".join(found))


def test_the_init_checker_sees_code(tmp_path):
    # Functions, classes and assignments are code; the docstring, imports and __all__ are not.
    init = tmp_path / "__init__.py"
    init.write_text('"""Doc."""\n\nfrom radrl.metrics.base import MetricResult\n\n__all__ = ["MetricResult"]\n')
    assert init_code(init) == []
    init.write_text('"""Doc."""\nimport os\n\nX = 1\n\ndef f():\n    pass\n\nclass C:\n    pass\n\n'
                    'if os.name:\n    pass\n__all__ = sorted(["f"])\n')
    found = [f.rpartition(": ")[2] for f in init_code(init)]
    assert found == ["assigns X", "defines function f", "defines class C", "runs a If statement", "assigns __all__"]
