"""The import structure stays a stack of layers: no cycles, imports point down, one name per module.

Layers, bottom up (docs/ARCHITECTURE.md): trikv.api <- trikv.storage <- trikv.actors.raft <- trikv.actors
<- the client (trikv, trikv.client, ...) and trikv.tools. The client sits beside the actors, not above them:
it speaks the wire shapes of trikv.api only.

Every .py under trikv/ is parsed with ast (following the symlinked actors/, storage/ and tools/), and every
import counts, including those inside functions: a lazy import that dodges a cycle at load time is still a
cycle in the design. Only imports under `if TYPE_CHECKING:` are left out (they never run).
The checker itself is tested on small synthetic trees, so a passing run means something.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import trio

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "trikv"

# Layer of a module: the longest matching prefix wins; the package itself is "root"; anything else under the
# package is the client.
LAYER_PREFIXES = {
    "api": "trikv.api",
    "storage": "trikv.storage",
    "raft": "trikv.actors.raft",
    "actors": "trikv.actors",
    "tools": "trikv.tools",
    "testing": "trikv.testing",
}
# The project layers a layer may import (itself included).
ALLOWED = {
    "api": {"api"},
    "storage": {"api", "storage"},
    "raft": {"api", "storage", "raft"},
    "actors": {"api", "storage", "raft", "actors"},
    "client": {"api", "client", "root"},
    "root": {"api", "client", "root"},
    "tools": {"api", "storage", "raft", "actors", "client", "root", "tools", "testing"},
    # the test-only fault plugin: it sets storage/faults.py's hooks; nothing below tools may import it
    "testing": {"api", "storage", "testing"},
}
# The package root is the client's face (its lazy names load trikv.client). Every import of a submodule
# runs it anyway, so the server side may take these names from it, and nothing else.
ROOT_SHARED = {"actors": {"__version__"}}
# Outside modules a layer must not import: the Raft core has no trio, no I/O, no clock; storage and api
# are synchronous (no trio).
NO_IO = {"trio", "asyncio", "socket", "selectors", "select", "ssl", "threading", "subprocess", "time", "os"}
FORBIDDEN_EXTERNAL = {
    "api": {"trio"},
    "storage": {"trio"},
    "raft": NO_IO,
}
# Top-level names the repo's folders would have if imported outside the namespace.
BARE_NAMES = ("actors", "storage", "tools")


@attrs.frozen
class Import:
    """One import statement's target as seen from `source`."""

    source: str
    target: str
    path: Path
    line: int
    lazy: bool  # inside a function (runs only when called)
    names: tuple[str, ...] = ()  # `from target import names` (names that are not modules themselves)

    def where(self) -> str:
        return f"{self.path}:{self.line}{' (lazy)' if self.lazy else ''}"


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Module name -> file for every .py under root/package, symlinked folders followed."""
    out: dict[str, Path] = {}
    base = root / package
    for dirpath, dirnames, filenames in os.walk(base, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        rel = Path(dirpath).relative_to(base).parts
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            parts = [package, *rel]
            if name != "__init__.py":
                parts.append(name[:-3])
            out[".".join(parts)] = Path(dirpath) / name
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, lazy: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node with whether it sits inside a function; `if TYPE_CHECKING:` bodies are skipped (their
    `else:` still runs)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.orelse:
                yield stmt, lazy
                yield from _walk(stmt, lazy)
            continue
        inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield child, lazy
        yield from _walk(child, inner)


def _resolve(name: str, known: dict[str, Path]) -> str:
    """A project import names its module, or the nearest package above a non-module attribute."""
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(module: str, path: Path, known: dict[str, Path], package: str) -> list[Import]:
    """The modules `module` imports (project modules resolved to files; others by their top-level name)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    shown = Path(*module.split(".")[:-1] if not is_pkg else module.split("."), path.name)
    here = module if is_pkg else module.rsplit(".", 1)[0]
    found: list[Import] = []

    def add(target: str, node: ast.AST, lazy: bool, names: tuple[str, ...] = ()) -> None:
        top = target.split(".")[0]
        if top == package:
            target = _resolve(target, known)
        elif top not in BARE_NAMES:  # an outside module, known by its top-level name
            target = top
        found.append(Import(module, target, shown, getattr(node, "lineno", 0), lazy, names))

    for node, lazy in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node, lazy)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = here.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in known:
                    add(full, node, lazy)
                else:
                    add(base, node, lazy, (alias.name,))
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
        ):
            add(node.args[0].value, node, True)
    return found


def scan(root: Path, package: str = PACKAGE) -> list[Import]:
    known = module_files(root, package)
    out: list[Import] = []
    for module, path in known.items():
        out.extend(imports_of(module, path, known, package))
    return out


def layer_of(module: str, package: str = PACKAGE) -> str | None:
    """The layer of a project module (None: not a module of the project)."""
    if module.split(".")[0] != package:
        return None
    if module == package:
        return "root"
    best = ""
    layer = "client"
    for name, prefix in LAYER_PREFIXES.items():
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
            best, layer = prefix, name
    return layer


def cycles(imports: list[Import], package: str = PACKAGE) -> list[list[Import]]:
    """Each import cycle among project modules, as the imports that close it (one cycle per strongly
    connected component, found by Tarjan's algorithm; a self-import counts)."""
    edges: dict[str, dict[str, Import]] = {}
    for imp in imports:
        if layer_of(imp.target, package) is not None and layer_of(imp.source, package) is not None:
            edges.setdefault(imp.source, {}).setdefault(imp.target, imp)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            components.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    out = []
    for comp in components:
        members = set(comp)
        if len(comp) == 1 and comp[0] not in edges.get(comp[0], {}):
            continue
        out.append([imp for a in comp for b, imp in sorted(edges.get(a, {}).items()) if b in members])
    return out


def layer_violations(imports: list[Import], package: str = PACKAGE) -> list[str]:
    """Every import that points up or sideways, or that a layer must not make at all."""
    bad = []
    for imp in imports:
        src = layer_of(imp.source, package)
        assert src is not None
        dst = layer_of(imp.target, package)
        top = imp.target.split(".")[0]
        if top in BARE_NAMES:
            bad.append(f"{imp.source} imports {imp.target} outside the {package} namespace ({imp.where()})")
        elif dst is None:
            if top in FORBIDDEN_EXTERNAL.get(src, set()):
                bad.append(f"{imp.source} ({src}) imports {top} ({imp.where()})")
        elif dst == "root" and imp.names and set(imp.names) <= ROOT_SHARED.get(src, set()):
            continue
        elif dst not in ALLOWED[src]:
            bad.append(f"{imp.source} ({src}) imports {imp.target} ({dst}) ({imp.where()})")
    return bad


def describe(cycle: list[Import]) -> str:
    return "cycle: " + "; ".join(f"{i.source} -> {i.target} at {i.where()}" for i in cycle)


# --------------------------------------------------------------------------- the project


@functools.cache
def project_imports() -> list[Import]:
    return scan(ROOT)


def test_no_import_cycles() -> None:
    found = cycles(project_imports())
    assert not found, "\n".join(describe(c) for c in found)


def test_imports_point_down_only() -> None:
    imports = project_imports()
    layers = {layer_of(i.source) for i in imports}
    assert {"api", "storage", "raft", "actors", "client", "root", "tools", "testing"} <= layers, (
        layers
    )  # the scan saw them all
    bad = layer_violations(imports)
    assert not bad, "\n".join(bad)


# Imports every module of the package (in a fresh interpreter) and reports what sys.modules then holds.
IMPORT_ALL = """
import importlib, json, os, sys
names = json.loads(sys.argv[1])
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except BaseException as exc:  # noqa: BLE001 - report, do not stop
        failed[name] = f"{type(exc).__name__}: {exc}"
files = {}
for name, mod in list(sys.modules.items()):
    path = getattr(mod, "__file__", None)
    if path:
        files.setdefault(os.path.realpath(path), []).append(name)
print(json.dumps({"failed": failed, "modules": sorted(sys.modules), "files": files}))
"""


def import_problems(root: Path, package: str = PACKAGE) -> list[str]:
    """Import every module of `package` under `root` once, in a fresh interpreter started in `root` (where
    the repo's folders are importable bare, so an accidental `import actors` succeeds and shows), and list
    what went wrong: a failed import, a module outside the namespace, a file loaded under two names."""
    names = sorted(module_files(root, package))
    res = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, json.dumps(names)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if res.returncode != 0:
        return [f"import run failed: {res.stderr[-3000:]}"]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    problems = [f"import {name} failed: {why}" for name, why in got["failed"].items()]
    problems += [
        f"{m} loaded outside the {package} namespace" for m in got["modules"] if m.split(".")[0] in BARE_NAMES
    ]
    real_root = os.path.realpath(root)
    problems += [
        f"{Path(f).relative_to(real_root)} loaded as {' and '.join(sorted(ns))}"
        for f, ns in got["files"].items()
        if len(ns) > 1 and f.startswith(real_root + os.sep)
    ]
    problems += [f"{name} not in sys.modules after importing it" for name in set(names) - set(got["modules"])]
    return problems


def test_every_module_imports_once_under_the_namespace_only() -> None:
    problems = import_problems(ROOT)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- the checker itself


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))


CLEAN = {
    "trikv/__init__.py": "from trikv import client\n",
    "trikv/client.py": "from trikv.api import codec\n",
    "trikv/api/__init__.py": "",
    "trikv/api/codec.py": "import struct\n",
    "trikv/api/errors.py": "from . import codec\n",
    # actors/, storage/, tools/ live beside the package and are symlinked in, as in the repo
    "storage/__init__.py": "",
    "storage/wal.py": "from ..api.errors import codec\n",
    "actors/__init__.py": "",
    "actors/raft/__init__.py": "from trikv.actors.raft.core import step\n",
    "actors/raft/core.py": """\
        import random
        from typing import TYPE_CHECKING
        from trikv.storage import wal
        if TYPE_CHECKING:
            from trikv.actors.node import Node  # never runs: not an edge
            import trio
        def step() -> None: ...
        """,
    "actors/node.py": """\
        import trio
        from trikv import __version__
        from trikv.actors import raft
        from trikv.actors.raft import core
        """,
    "actors/peer.py": "import trio\nfrom trikv.actors.node import Node\n",
    "tools/__init__.py": "",
    "tools/ctl.py": "import trikv\nfrom trikv.actors import node\n",
}


def synthetic(tmp_path: Path, changes: dict[str, str] | None = None) -> list[Import]:
    """Scan CLEAN with `changes` (path -> text) applied."""
    write_tree(tmp_path, {**CLEAN, **(changes or {})})
    for folder in BARE_NAMES:
        link = tmp_path / "trikv" / folder
        if not link.exists():
            link.symlink_to(Path("..") / folder)
    return scan(tmp_path)


def test_checker_passes_a_clean_tree_and_follows_the_symlinks(tmp_path: Path) -> None:
    imports = synthetic(tmp_path)
    sources = {i.source for i in imports}
    assert {"trikv.actors.raft.core", "trikv.storage.wal", "trikv.tools.ctl"} <= sources
    edges = {(i.source, i.target) for i in imports}
    assert ("trikv.storage.wal", "trikv.api.errors") in edges  # relative import resolved
    assert ("trikv.actors.node", "trikv.actors.raft.core") in edges  # `from pkg import submodule`
    assert ("trikv.actors.raft.core", "trikv.actors.node") not in edges  # TYPE_CHECKING left out
    assert cycles(imports) == []
    assert layer_violations(imports) == []


def test_checker_reports_a_lazy_cycle(tmp_path: Path) -> None:
    imports = synthetic(
        tmp_path, {"actors/node.py": "import trio\ndef later():\n    from trikv.actors.peer import send\n"}
    )
    [cycle] = cycles(imports)
    assert {(i.source, i.target) for i in cycle} == {
        ("trikv.actors.node", "trikv.actors.peer"),
        ("trikv.actors.peer", "trikv.actors.node"),
    }
    assert "(lazy)" in describe(cycle)


def test_checker_reports_a_cycle_through_a_package_init(tmp_path: Path) -> None:
    imports = synthetic(tmp_path, {"actors/raft/core.py": "from trikv.actors.raft import step\n"})
    [cycle] = cycles(imports)
    assert {i.source for i in cycle} == {"trikv.actors.raft", "trikv.actors.raft.core"}


def test_checker_reports_upward_and_forbidden_imports(tmp_path: Path) -> None:
    imports = synthetic(
        tmp_path,
        {
            "storage/wal.py": "def f():\n    import trikv.actors.node\n",  # storage -> actors (lazy)
            "trikv/api/codec.py": "from trikv.storage import wal\n",  # api imports the project
            "actors/raft/core.py": "import trio\nimport time\n",  # the Raft core does I/O, reads a clock
            "trikv/client.py": "from trikv.actors import node\n",  # the client reaches into the server
            "actors/peer.py": "from trikv.tools import ctl\n",  # nothing but tools imports tools
            "actors/raft/__init__.py": "from trikv import __version__\n",  # only actors may, of the root
            "storage/__init__.py": "from trikv import connect\n",  # the client, through the root
            "actors/__init__.py": "import actors.node\n",  # outside the namespace
        },
    )
    bad = "\n".join(layer_violations(imports))
    for expected in (
        "trikv.storage.wal (storage) imports trikv.actors.node (actors)",
        "trikv.api.codec (api) imports trikv.storage.wal (storage)",
        "trikv.actors.raft.core (raft) imports trio",
        "trikv.actors.raft.core (raft) imports time",
        "trikv.client (client) imports trikv.actors.node (actors)",
        "trikv.actors.peer (actors) imports trikv.tools.ctl (tools)",
        "trikv.actors imports actors.node outside the trikv namespace",
        "trikv.actors.raft (raft) imports trikv (root)",
        "trikv.storage (storage) imports trikv (root)",
    ):
        assert expected in bad, f"{expected!r} not reported in:\n{bad}"
    assert len(bad.splitlines()) == 9, bad


def test_import_check_reports_a_bare_import(tmp_path: Path) -> None:
    """A module reaching a sibling as top-level `actors.b`: loaded outside the namespace, its file twice."""
    write_tree(
        tmp_path,
        {
            "fakekv/__init__.py": "",
            "actors/__init__.py": "",
            "actors/a.py": "import actors.b\n",
            "actors/b.py": "",
        },
    )
    (tmp_path / "fakekv" / "actors").symlink_to(Path("..") / "actors")
    problems = "\n".join(import_problems(tmp_path, "fakekv"))
    assert "actors.b loaded outside the fakekv namespace" in problems, problems
    assert "actors/b.py loaded as actors.b and fakekv.actors.b" in problems, problems
    assert "failed" not in problems, problems


# --------------------------------------------------------------------------- test hygiene: loopback only


def test_tests_cannot_bind_beyond_loopback() -> None:
    """tests/conftest.py refuses a non-loopback bind for the whole session (stdlib sockets)."""
    for host in ("0.0.0.0", "", "192.0.2.1"):
        with socket.socket() as s, pytest.raises(OSError, match="loopback only"):
            s.bind((host, 0))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        assert s.getsockname()[0] == "127.0.0.1"


async def test_trio_listener_on_every_interface_is_refused() -> None:
    """trio's default listener (host None: every interface) goes through the same check."""
    with pytest.raises(OSError, match="loopback only"):
        await trio.open_tcp_listeners(0)
    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with listener:
        assert listener.socket.getsockname()[0] == "127.0.0.1"
