"""The package's shape: layers that import only the layers below them, no import cycle, and a README that names
every module where it lives."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import course_utils

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "course_utils"
#: The layers, lowest first: a module may import its own folder and the folders before it, never one after it.
LAYERS = ("core", "records", "data", "nets", "evaluation", "methods", "course", "ops")


def _module(path: Path) -> tuple[str, bool]:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return (".".join(parts[:-1]), True) if parts[-1] == "__init__" else (".".join(parts), False)


def _exists(name: str) -> bool:
    p = ROOT.joinpath(*name.split("."))
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def import_graph() -> dict[str, set[str]]:
    """``{module: the course_utils modules it imports}`` (imports inside functions included)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PKG.rglob("*.py")):
        name, is_pkg = _module(path)
        targets = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("course_utils")}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                elif node.module.startswith("course_utils"):
                    module = node.module
                else:
                    continue
                for a in node.names:
                    full = f"{module}.{a.name}"
                    targets.add(full if _exists(full) else module)
    return graph


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_layer():
    loose = [p.name for p in PKG.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert not loose, f"modules outside the layers: {loose}"
    assert {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()} == set(LAYERS)


def test_no_layer_imports_a_higher_one():
    upward = []
    for module, targets in import_graph().items():
        own = _layer(module)
        if own is None:  # the face (course_utils/__init__.py, __main__.py) sits above every layer
            continue
        for target in targets:
            layer = _layer(target)
            if target == "course_utils":  # __version__ only
                continue
            if layer is None or layer > own:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports of a higher layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycle():
    graph = import_graph()
    # a package imports its own modules (re-exports): an edge from a package to its members is not a cycle
    edges = {m: {t for t in ts if t in graph and not t.startswith(m + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _modules(folder: Path) -> set[str]:
    """The modules of ``folder`` and, for a package inside it, the package's name and its own modules."""
    names = set()
    for path in folder.iterdir():
        if path.suffix == ".py" and path.stem not in ("__init__", "__main__"):
            names.add(path.stem)
        elif (path / "__init__.py").exists():
            names |= {path.name} | _modules(path)
    return names


def test_readme_lists_every_module_in_its_folder():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| folder | modules | what it holds |") :].split("\n\n")[0].splitlines()[2:]
    listed = {}
    for row in table:
        folder, modules = row.split("|")[1:3]
        listed[folder.strip().strip("`/")] = set(re.findall(r"`([a-z_]+)`", modules))
    assert set(listed) == set(LAYERS), f"README's table: {sorted(listed)}"
    # the methods' own modules are the registry's (a method is added with no README edit); the rest are listed
    from course_utils import methods

    method_modules = {entry.module.__name__.rsplit(".", 1)[1] for entry in methods.REGISTRY.values()}
    for folder, names in listed.items():
        files = _modules(PKG / folder) - (method_modules if folder == "methods" else set())
        assert files == names, f"{folder}/: README lists {sorted(names)}, the folder holds {sorted(files)}"
    for folder in LAYERS:
        assert f"``{folder}``" in course_utils.__doc__, f"course_utils.__doc__ does not describe {folder}/"


def test_the_face_names_real_modules():
    for name, where in course_utils.FACE.items():
        assert _exists(f"course_utils.{where}"), f"face name {name!r} points at {where}, which does not exist"
