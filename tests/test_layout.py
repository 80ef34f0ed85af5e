"""The package layout is the pipeline: imports point one way, down the stages, and no module imports itself back.

Stages, bottom to top (ARCHITECTURE.md): ``data_prep`` (corpus readers, generators, sources, units), the foundation
modules at the top of ``lstm_asr`` (``errors``, ``atomic_file``, ``path_names``, ``recipe``), then ``data``,
``nn`` and ``scoring``, ``decoding`` (searches over network outputs: tensors and tokens, never files),
``recognition`` (files, folders, long recordings, streams, the ``Recognizer``), ``export`` (files for other
runtimes), ``training`` and ``serving``, and ``cli`` on top. A module may import its own stage and the stages
:data:`MAY_IMPORT` lists for it, never one above. ``data_prep`` imports nothing from ``lstm_asr`` but its error
types. Lazy imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lstm_asr", "data_prep")
BELOW_DECODING = {"nn", "scoring", "data", "data_prep", "foundation"}
# Which stages a stage may import (besides itself). The order is a partial one: scoring needs no network;
# recognition uses scoring to report the error rate of files that carry their transcription; the searches in
# decoding know nothing of files, recognition, export, training or serving.
MAY_IMPORT = {
    "data_prep": set(),  # and lstm_asr.errors, its one exception (see the test below)
    "foundation": set(),
    "data": {"data_prep", "foundation"},
    "nn": {"data", "data_prep", "foundation"},
    "scoring": {"data", "data_prep", "foundation"},
    "decoding": BELOW_DECODING,
    "recognition": {"decoding"} | BELOW_DECODING,
    "export": {"recognition", "decoding"} | BELOW_DECODING,
    "training": {"recognition", "decoding"} | BELOW_DECODING,
    "serving": {"recognition", "decoding"} | BELOW_DECODING,
    "cli": {"serving", "training", "export", "recognition", "decoding"} | BELOW_DECODING,
}
FOUNDATION = {"lstm_asr.errors", "lstm_asr.atomic_file", "lstm_asr.path_names", "lstm_asr.recipe"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports (at any depth in the file), resolved to module names."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                base = ".".join(up[: len(up) - node.level + 1] + ([base] if base else []))
            # ``from pkg import mod`` imports a module; ``from mod import name`` imports mod.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t.split(".")[0] in PACKAGES:
                found.add(t)
    return found


def layer(name: str) -> str:
    if name.startswith("data_prep"):
        return "data_prep"
    if name in FOUNDATION or name == "lstm_asr":
        return "foundation"
    if name in ("lstm_asr.cli", "lstm_asr.__main__"):
        return "cli"
    return name.split(".")[1]


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def test_every_module_is_in_a_stage():
    assert {layer(m) for m in graph()} <= set(MAY_IMPORT)


def test_imports_point_down_the_stages():
    wrong = [f"{a} ({layer(a)}) imports {b} ({layer(b)})" for a, deps in graph().items() for b in deps
             if layer(b) != layer(a) and layer(b) not in MAY_IMPORT[layer(a)]
             and not (layer(a) == "data_prep" and b == "lstm_asr.errors")]
    assert not wrong, "\n".join(wrong)


def test_data_prep_imports_only_the_error_types_from_lstm_asr():
    wrong = sorted({b for a, deps in graph().items() if a.startswith("data_prep") for b in deps
                    if b.startswith("lstm_asr") and b != "lstm_asr.errors"})
    assert not wrong


def test_errors_module_imports_nothing_of_the_project():
    assert graph()["lstm_asr.errors"] == set()


def test_no_import_cycles():
    g = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(g.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for n in sorted(g):
        if n not in state:
            visit(n, [n])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
