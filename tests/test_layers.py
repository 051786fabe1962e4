"""Lower layers never import higher ones (design principle 15), and no two modules import each other.

Every module's imports are read with ``ast``, the ones inside functions included (a lazy import is
still a dependency). A module belongs to the layer of its longest matching prefix in ``LAYERS``; it
may import its own layer and the layers below. When two modules need each other, the shared part
moves down (docs/extending.md, "Layers").
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Bottom to top. ``radrl.lookup`` and ``radrl.machine`` import nothing of radrl; ``data`` is the sample
# schema, boxes, images and dataset adapters; ``models`` loads and runs checkpoints (and serves them);
# ``parsing`` reads completions; ``metrics`` score parsed answers (model-based ones run on a
# ``models`` device); ``rewards`` adapt metrics for TRL; ``eval`` and ``train`` are the pipeline's
# stages; ``demo`` runs them all; ``cli`` holds every verb's argument parser and entry point.
LAYERS = (
    ("base", ("radrl", "radrl.lookup", "radrl.machine")),
    ("data", ("radrl.data",)),
    ("models", ("radrl.models",)),
    ("parsing", ("radrl.parsing",)),
    ("metrics", ("radrl.metrics",)),
    ("rewards", ("radrl.rewards",)),
    ("eval", ("radrl.eval",)),
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
