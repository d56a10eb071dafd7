"""The layers' import rules, read from the source: imports point down only, and no two modules import each
other (directly or round a loop).

    distillgrasp/        the commands: build a simulated or a real cell and run it
    sim/  hardware/      implementations of the cell, camera, robot and gripper interfaces
    grasping/            point clouds, grasp detection, pick execution, trials, reports
    pipeline/            frames, completers, networks, data, training
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "grasping", "sim", "hardware", "distillgrasp")
ALLOWED = {  # what each layer may import from the project
    "pipeline": {"pipeline"},
    "grasping": {"pipeline", "grasping"},
    "sim": {"pipeline", "grasping", "sim"},
    "hardware": {"pipeline", "grasping", "hardware"},
    "distillgrasp": set(PACKAGES),
}
HARDWARE_LIBRARIES = ("pyrealsense2", "rtde_control", "rtde_receive")


def _is_main_guard(node: ast.AST) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth, except inside its ``if __name__ == "__main__":`` block."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_main_guard(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def test_imports_point_down_only():
    wrong = []
    for name, path in _modules().items():
        layer = name.split(".")[0]
        for imported in _imports(path):
            top = imported.split(".")[0]
            if top in PACKAGES and top not in ALLOWED[layer]:
                wrong.append(f"{path.relative_to(ROOT)} imports {imported}")
            if top in HARDWARE_LIBRARIES and layer != "hardware":
                wrong.append(f"{path.relative_to(ROOT)} imports {imported} (hardware libraries stay in hardware/)")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    modules = _modules()
    graph = {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}
    for name in graph:  # a package's __init__ is imported with any of its modules, which is not a cycle
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    state: dict[str, int] = {}
    cycles = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [node, nxt]) if nxt in stack else f"{node} -> {nxt}")
            elif nxt not in state:
                walk(nxt, stack + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [])
    assert not cycles, "\n".join(cycles)


def test_the_rules_catch_a_wrong_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("import numpy\n\ndef f():\n    from sim.world import SimWorld\n\n"
                   "if __name__ == '__main__':\n    from distillgrasp.trials import main\n")
    assert _imports(bad) == {"numpy", "sim.world", "sim.world.SimWorld"}
