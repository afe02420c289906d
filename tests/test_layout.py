"""The package's shape: no import cycles, entry points imported by nobody, and a README "Layout"
section whose folder tree matches the folders on disk.

The import graph is read with `ast` (nothing is imported): absolute and relative imports,
`from pkg import module`, and imports inside functions all count.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from resnet_exp.config import CONF_DIR
from tests.helpers.cli import REPO_ROOT

PACKAGE = REPO_ROOT / "resnet_exp"
ENTRY_POINTS = {"resnet_exp.run", "resnet_exp.eval", "resnet_exp.report.__main__", "resnet_exp.bench.__main__",
                "resnet_exp.models.__main__"}
MAX_ROOT_MODULES = 9
MAX_MODULE_LINES = 300


# ---------------------------------------------------------------------------- import graph
def module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file, for every .py file of the package folder `root`."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of `from <level dots><target> import ...` written in `module`."""
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (anywhere in its code)."""
    modules = module_names(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module)
                # `from pkg import mod` imports the submodule pkg.mod when there is one.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                # `import a.b.c` runs a, a.b and a.b.c: the deepest module of ours is the edge.
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root / "pkg"


def test_graph_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    pkg = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from . import b\n",                      # relative, submodule by name
        "pkg/b.py": "def f():\n    from pkg.sub import c\n",  # absolute, inside a function
        "pkg/sub/__init__.py": "from .c import X\n",          # relative from a package's __init__
        "pkg/sub/c.py": "import pkg.a\nimport os\nX = 1\n",   # plain import; stdlib ignored
        "pkg/sub/d.py": "from ..a import thing\nfrom .. import b as bee\n",
    })
    graph = import_graph(pkg)
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.sub.c"}, "pkg.sub": {"pkg.sub.c"},
                     "pkg.sub.c": {"pkg.a"}, "pkg.sub.d": {"pkg.a", "pkg.b"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]


def test_graph_without_cycle(tmp_path: Path) -> None:
    pkg = _write(tmp_path, {"pkg/__init__.py": "from pkg import a\n", "pkg/a.py": "from .b import x\n",
                            "pkg/b.py": "x = 1\n"})
    assert find_cycle(import_graph(pkg)) is None


def test_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph(PACKAGE))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_package_root_holds_at_most_nine_modules() -> None:
    root = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(root) <= MAX_ROOT_MODULES, f"{len(root)} modules at the package root: {root}"


def test_no_module_is_over_300_lines() -> None:
    files = [*PACKAGE.rglob("*.py"), *(REPO_ROOT / "benchmarks").rglob("*.py")]
    long = sorted(f"{p.relative_to(REPO_ROOT)} ({n} lines)" for p in files
                  if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES)
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_entry_points_are_imported_by_no_other_module() -> None:
    graph = import_graph(PACKAGE)
    assert ENTRY_POINTS <= graph.keys(), ENTRY_POINTS - graph.keys()
    offenders = sorted(f"{name} imports {target}" for name, targets in graph.items()
                       for target in targets & ENTRY_POINTS)
    assert not offenders, offenders


# ---------------------------------------------------------------------------- README layout
def layout_tree(readme: str) -> set[str]:
    """Folder paths ("conf/arch", "resnet_exp/app", ...) named by the first fenced block under the
    "## Layout" heading: a line whose first word ends in "/" is a folder, nested by indentation."""
    section = re.search(r"^## Layout\s*$(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert section, 'README.md has no "## Layout" section'
    block = re.search(r"^```[^\n]*\n(.*?)^```", section.group(1), re.M | re.S)
    assert block, 'the "## Layout" section has no fenced tree'
    folders, stack = set(), []  # stack of (indent, path)
    for line in block.group(1).splitlines():
        words = line.split()
        if not words:
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        for word in words:  # "run.py  eval.py" lines name files, not folders
            if not word.endswith("/"):
                break
            path = "/".join([stack[-1][1], word.strip("/")] if stack else [word.strip("/")])
            folders.add(path)
        if words[0].endswith("/"):
            stack.append((indent, "/".join([stack[-1][1], words[0].strip("/")] if stack else [words[0].strip("/")])))
    return folders


def code_folders() -> set[str]:
    """Every package folder of resnet_exp/ and every config group folder of conf/."""
    packages = {str(p.parent.relative_to(REPO_ROOT)) for p in PACKAGE.rglob("__init__.py")}
    groups = {str(p.relative_to(REPO_ROOT)) for p in CONF_DIR.rglob("*") if p.is_dir() and any(p.glob("*.yaml"))}
    return packages | groups | {"conf", "benchmarks"}


def test_layout_tree_parser() -> None:
    readme = ("intro\n## Layout\n\n```\nconf/                 one group per swappable part\n  arch/  data/\n"
              "resnet_exp/\n  run.py  eval.py      entry points\n  app/                running under Hydra\n"
              "    deep/\n  models/\n```\n## Next\n```\nother/\n```\n")
    assert layout_tree(readme) == {"conf", "conf/arch", "conf/data", "resnet_exp", "resnet_exp/app",
                                   "resnet_exp/app/deep", "resnet_exp/models"}
    with pytest.raises(AssertionError, match="Layout"):
        layout_tree("## Usage\n```\nconf/\n```\n")


def test_readme_layout_matches_the_folders() -> None:
    named = layout_tree((REPO_ROOT / "README.md").read_text())
    missing_on_disk = sorted(f for f in named if not (REPO_ROOT / f).is_dir())
    not_in_readme = sorted(code_folders() - named)
    assert not missing_on_disk, f"README Layout names folders that do not exist: {missing_on_disk}"
    assert not not_in_readme, f"folders missing from the README Layout tree: {not_in_readme}"
