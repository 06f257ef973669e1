"""The import layout (docs/ARCHITECTURE.md, "Who imports whom"), read from the source with ``ast``:
every import counts, those inside functions too.

- no import circle among our modules;
- ``nn`` imports nothing of ours; ``minifeat`` nothing of ``nn``, ``models`` or ``weights_import``;
  ``weights_import`` only ``nn.serialization`` and ``nn.errors``; nothing but ``cli.py`` imports ``cli``;
- the rooms of ``models`` import only rooms before them in ``ROOMS``;
- a function imports nothing of ours (only the optional or heavy third-party modules of
  ``LAZY``), except in ``cli.py``, which loads each command's code when the command runs.
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("nn", "minifeat", "models", "weights_import")
ROOMS = ("networks", "data", "display", "scoring", "training", "evaluation", "analyses")
LAZY = {"PIL", "imageio", "h5py", "dask", "mpi4py", "cupy"}


def module_name(path):
    name = os.path.relpath(path, ROOT)[:-len(".py")].replace(os.sep, ".")
    return name[:-len(".__init__")] if name.endswith(".__init__") else name


def our_modules():
    """{module name: path} of every module of the packages, and cli."""
    modules = {"cli": os.path.join(ROOT, "cli.py")}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    modules[module_name(os.path.join(folder, name))] = os.path.join(folder, name)
    return modules


def imports_of(name, path, modules):
    """[(imported module name, inside a function)] for every import statement of the module; a name
    imported from a package is the submodule where one exists (``from models.data import cache``)."""
    tree = ast.parse(open(path).read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function.update(id(inner) for inner in ast.walk(node) if inner is not node)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found += [(target, id(node) in in_function) for target in targets]
    return found


def ours(target, modules):
    """The module of ours that ``target`` names (its nearest enclosing one), or None."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


@pytest.fixture(scope="module")
def graph():
    """{module: {(imported module of ours or third-party name, inside a function)}}."""
    modules = our_modules()
    edges = {}
    for name, path in modules.items():
        edges[name] = set()
        for target, lazy in imports_of(name, path, modules):
            mine = ours(target, modules)
            if mine != name:
                edges[name].add((mine or target.split(".")[0], lazy, mine is not None))
    return edges


def cycles(edges):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
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
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle(graph):
    edges = {name: {target for target, _, mine in targets if mine} for name, targets in graph.items()}
    assert cycles(edges) == []


def test_the_circle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def top(name):
    return name.split(".")[0]


def room(name):
    """The room of a module of models (``models.data.cache`` -> "data"); None for models itself."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def test_packages_import_only_what_they_may(graph):
    may = {"nn": {"nn"}, "minifeat": {"minifeat"}, "weights_import": {"weights_import", "nn.serialization", "nn.errors"},
           "models": {"nn", "minifeat", "weights_import", "models"}, "cli": set(PACKAGES) | {"cli"}}
    wrong = [(name, target) for name, targets in graph.items() for target, _, mine in targets
             if mine and top(target) not in may[top(name)] and target not in may[top(name)]]
    assert wrong == []


def test_rooms_import_only_the_rooms_before_them(graph):
    assert {room(name) for name in graph if top(name) == "models"} - {None} == set(ROOMS)
    wrong = []
    for name, targets in graph.items():
        if top(name) != "models":
            continue
        for target, _, mine in targets:
            if mine and top(target) == "models":
                if room(name) is None or room(target) is None \
                        or ROOMS.index(room(target)) > ROOMS.index(room(name)):
                    wrong.append((name, target))
    assert wrong == []


def test_functions_import_only_optional_heavy_modules(graph):
    wrong = [(name, target) for name, targets in graph.items() if name != "cli"
             for target, lazy, mine in targets if lazy and (mine or target not in LAZY)]
    assert wrong == []
