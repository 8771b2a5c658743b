"""The package's architecture as a test: no import circles, and imports run downward only.

Every module of ``astrocat`` is parsed with ``ast`` (nothing is imported) and each import
of another astrocat module becomes an edge of the module graph, wherever it is written:

* at module level, inside functions (a lazy import still couples the two modules: it only
  moves the cost to first use) and under ``if TYPE_CHECKING:`` (a type in a signature is a
  dependency on the module that defines it, even if Python never executes the import);
* ``from astrocat.x import y`` points at ``astrocat.x.y`` when ``y`` is a submodule, and at
  ``astrocat.x`` otherwise; relative imports are resolved; a name that is no module is
  traced to its closest enclosing module.

Python also runs a module's parent packages' ``__init__`` before the module itself; that
is the import system's doing, not the module author's, and is not an edge here.

The layers below are the architecture (docs/architecture.md describes them): a module may
import modules of its own layer and of the layers beneath, never above, except for the
few edges in ``UPWARD_ALLOWED``, each with its reason.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import astrocat

ROOT = "astrocat"

#: Bottom to top. A layer lists module prefixes: a prefix covers that module and its
#: submodules; the most specific prefix wins (``astrocat.models.train`` is in
#: ``model_tools`` although ``astrocat.models`` is in ``models``). ``astrocat`` itself (the
#: package's lazy facade over ``api``) covers only itself, so a new top-level module must
#: be given a layer here before this test passes.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("astrocat._version", "astrocat.errors", "astrocat.kinds",
                    "astrocat.strict", "astrocat.cache", "astrocat.schemas",
                    "astrocat.terminal")),
    ("kernels", ("astrocat.kernels",)),
    ("sources", ("astrocat.sources",)),
    ("simulate", ("astrocat.simulate",)),  # surveys in the published formats: kernels only
    ("catalog", ("astrocat.catalog",)),
    ("science", ("astrocat.science",)),  # reads catalogs; knows no model, engine or run
    ("models", ("astrocat.models",)),  # what a model is: card, zoo, graph, architectures
    ("engines", ("astrocat.engines",)),
    ("pipeline", ("astrocat.pipeline",)),
    # make, fit, convert and check models: these run engines (check: the pipeline too)
    ("model_tools", ("astrocat.models.train", "astrocat.models.finetune",
                     "astrocat.models.datasets",
                     "astrocat.models.reference", "astrocat.models.export",
                     "astrocat.models.compile", "astrocat.models.quantize",
                     "astrocat.models.check", "astrocat.models.starter")),
    ("jobs", ("astrocat.jobs",)),
    ("interface", ("astrocat", "astrocat.api", "astrocat.cli")),
)

#: (importer, imported) edges allowed to point to a higher layer: keep this short.
UPWARD_ALLOWED: dict[tuple[str, str], str] = {}

#: (importer, imported) edges left out of the cycle check, each with its reason.
CYCLE_ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Edge:
    target: str
    line: int
    how: str  # "module" (runs on import), "lazy" (inside a function), "type" (TYPE_CHECKING)


# --------------------------------------------------------------------------- the graph


@cache
def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name (a package is its ``__init__``)."""
    base = Path(astrocat.__path__[0])
    out = {}
    for path in sorted(base.rglob("*.py")):
        parts = list(path.relative_to(base.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _closest_module(name: str, known: dict[str, Path] | set[str]) -> str | None:
    """``name`` if it is a module, else its closest enclosing module (None: not ours)."""
    while name not in known:
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return name


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, source: str, known: dict[str, Path] | set[str],
               is_package: bool = False) -> list[Edge]:
    """The astrocat modules that module ``name`` (of ``source``) imports, and how."""
    tree = ast.parse(source)
    found: list[Edge] = []

    def add(target: str, node: ast.AST, how: str) -> None:
        if target == ROOT or target.startswith(ROOT + "."):
            module = _closest_module(target, known)
            if module is not None:  # itself included: a self-import is a cycle
                found.append(Edge(module, node.lineno, how))

    def visit(node: ast.AST, how: str) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node, how)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, up level - 1
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                module = ".".join([*package, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                add(sub if sub in known else module, node, how)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, "type")
            for child in node.orelse:
                visit(child, how)
            return
        inner = "lazy" if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
            how == "module") else how
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, "module")
    return found


@cache
def graph() -> dict[str, dict[str, list[Edge]]]:
    """importer -> imported -> the import statements (a module imported twice: two)."""
    known = modules()
    out: dict[str, dict[str, list[Edge]]] = {m: {} for m in known}
    for name, path in known.items():
        for edge in imports_of(name, path.read_text(encoding="utf-8"), known,
                               path.name == "__init__.py"):
            edges = out[name].setdefault(edge.target, [])
            if edge not in edges:  # "from x import a, b" is one import of x
                edges.append(edge)
    return out


def describe(src: str, dst: str) -> str:
    edges = graph()[src][dst]
    where = ", ".join(f"line {e.line}" + ("" if e.how == "module" else f" ({e.how})")
                      for e in edges)
    return f"{src} -> {dst} [{where}]"


# --------------------------------------------------------------------------- cycles


def strongly_connected(adj: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(adj):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = []
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        work.append((start, iter(sorted(adj[start]))))
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(adj.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    out.append(sorted(comp))
    return out


def shortest_cycle(adj: dict[str, set[str]], start: str, members: set[str]) -> list[str]:
    """The shortest path start -> ... -> start inside one component (BFS)."""
    prev: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(adj[v] & members):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return [start, *reversed(path[:-1]), start] if v != start else [start, start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return []


def cycles(skip: dict[tuple[str, str], str] | None = None) -> list[list[str]]:
    """One shortest cycle through each module of every circle (component of more than one
    module, or a module importing itself), without the ``skip`` edges."""
    skip = CYCLE_ALLOWED if skip is None else skip
    adj = {m: {t for t in targets if (m, t) not in skip} for m, targets in graph().items()}
    found: list[list[str]] = []
    for comp in strongly_connected(adj):
        members = set(comp)
        if len(comp) == 1 and comp[0] not in adj[comp[0]]:
            continue
        seen: set[tuple[str, ...]] = set()
        for m in comp:
            cyc = shortest_cycle(adj, m, members)
            i = cyc.index(min(cyc[:-1]))  # one spelling per cycle: from its smallest name
            key = tuple(cyc[i:-1] + cyc[:i])
            if key not in seen:
                seen.add(key)
                found.append([*key, key[0]])
    return found


def spell(cycle: list[str]) -> str:
    return "\n    ".join(describe(a, b) for a, b in zip(cycle, cycle[1:], strict=False))


# --------------------------------------------------------------------------- layers


def layer_of(module: str) -> int | None:
    """The index in ``LAYERS`` of the most specific prefix covering ``module``."""
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            covers = module == p if p == ROOT else (module == p or module.startswith(p + "."))
            if covers and (best is None or len(p) > best[0]):
                best = (len(p), i)
    return None if best is None else best[1]


def upward_imports() -> list[tuple[str, str]]:
    return [(src, dst) for src, targets in graph().items() for dst in targets
            if layer_of(src) is not None and layer_of(dst) is not None
            and layer_of(dst) > layer_of(src)]


def _name(module: str) -> str:
    return LAYERS[layer_of(module)][0]


# --------------------------------------------------------------------------- the tests


def test_the_import_reader_sees_every_kind_of_import():
    known = {"astrocat", "astrocat.a", "astrocat.a.b", "astrocat.a.c", "astrocat.d"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "import astrocat.d\n"
        "from . import c\n"  # a sibling submodule
        "from .c import thing\n"
        "from astrocat.a import b, not_a_module\n"
        "if TYPE_CHECKING:\n"
        "    from astrocat.d import T\n"
        "def f():\n"
        "    from astrocat import d\n"
        "import numpy\n"
    )
    got = {(e.target, e.line, e.how) for e in imports_of("astrocat.a.x", source, known)}
    assert got == {("astrocat.d", 2, "module"), ("astrocat.a.c", 3, "module"),
                   ("astrocat.a.c", 4, "module"), ("astrocat.a.b", 5, "module"),
                   ("astrocat.a", 5, "module"), ("astrocat.d", 7, "type"),
                   ("astrocat.d", 9, "lazy")}
    # in a package's __init__, "." is the package itself
    got = imports_of("astrocat.a", "from .b import y\nfrom .. import d\n", known, True)
    assert [e.target for e in got] == ["astrocat.a.b", "astrocat.d"]


def test_the_cycle_finder_finds_cycles():
    adj = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d", "a"}, "e": set()}
    comps = {tuple(c) for c in strongly_connected(adj)}
    assert comps == {("a", "b", "c"), ("d",), ("e",)}
    assert shortest_cycle(adj, "b", {"a", "b", "c"}) == ["b", "c", "a", "b"]


def test_every_module_has_a_layer():
    missing = [m for m in modules() if layer_of(m) is None]
    assert not missing, f"give these modules a layer in LAYERS: {missing}"
    assert len(graph()) > 50 and sum(map(len, graph().values())) > 200  # it read the code


def test_no_import_cycles():
    found = cycles()
    for cyc in found:
        print("cycle:\n    " + spell(cyc))
    assert not found, "import cycles (A -> B -> ... -> A):\n" + "\n".join(
        "  " + " -> ".join(c) + "\n    " + spell(c) for c in found)


def test_imports_run_downward():
    bad = [(s, d) for s, d in upward_imports() if (s, d) not in UPWARD_ALLOWED]
    for s, d in bad:
        print(f"upward: {_name(s)} -> {_name(d)}: {describe(s, d)}")
    assert not bad, "imports of a higher layer (move the code, or the import):\n" + "\n".join(
        f"  {_name(s)} -> {_name(d)}: {describe(s, d)}" for s, d in bad)


def test_the_allow_lists_are_still_needed():
    """An entry whose edge is gone (or no longer upward, or no longer closes a circle)
    must be deleted, so the lists stay a record of the debt that is really there."""
    upward = set(upward_imports())
    stale = [e for e in UPWARD_ALLOWED if e not in upward]
    for src, dst in CYCLE_ALLOWED:
        adj = {m: {t for t in targets if (m, t) == (src, dst) or (m, t) not in CYCLE_ALLOWED}
               for m, targets in graph().items()}
        if dst not in adj[src] or not any(src in c and dst in c
                                          for c in strongly_connected(adj)):
            stale.append((src, dst))
    assert not stale, f"remove these allow-list entries: {stale}"
    assert all(reason.strip() for reason in [*UPWARD_ALLOWED.values(),
                                            *CYCLE_ALLOWED.values()])
