"""The import direction the design promises, read from the source (not from a running process).

* ``verification.certification`` (the proof) imports nothing of ``verification.synthesis``
  (the search that proposes sets), so a certificate never rests on the code that made the set.
* ``reachsafe`` (the core) imports ``verification`` and ``training`` only inside functions of
  the command-line modules (lazily), never at module level, and elsewhere only in one place:
  ``reachsafe/auditing.py`` (``reachsafe.audit()``, the audit's Python entry, imports
  ``verification.audit`` inside the function; issue 16).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(absolute module name, at module level) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    top_level = {id(node) for node in tree.body}
    out: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top_level) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            out += [(n, id(node) in top_level) for n in names]
    return out


def test_certification_never_imports_synthesis() -> None:
    files = sorted((ROOT / "verification" / "certification").glob("*.py"))
    assert len(files) >= 4
    offenders = [(f.name, mod) for f in files for mod, _ in _imports(f) if mod.startswith("verification.synthesis")]
    assert offenders == []


def test_the_relative_import_resolver_sees_synthesis_imports() -> None:
    # the driver does import the certifier and the synthesis modules: the reader must see both kinds
    mods = [m for m, _ in _imports(ROOT / "verification" / "synthesis" / "driver.py")]
    assert any(m.startswith("verification.certification") for m in mods)
    assert any(m.startswith("verification.synthesis.") for m in mods)


def test_core_imports_verification_and_training_only_lazily_in_commands() -> None:
    for f in sorted((ROOT / "reachsafe").rglob("*.py")):
        for mod, top in _imports(f):
            if mod.split(".")[0] in ("verification", "training"):
                lazy_entry = f.name == "auditing.py" and mod.startswith("verification.audit")
                assert "commands" in f.relative_to(ROOT).parts or f.name == "cli.py" or lazy_entry, (f, mod)
                assert not top, (f, mod)


def _cycles(package: str) -> list[list[str]]:
    """Import cycles among the modules of ``package`` (lazy imports included), each as a module list."""
    files = {".".join(f.relative_to(ROOT).with_suffix("").parts): f for f in (ROOT / package).glob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for m, f in files.items():
        for dep, _ in _imports(f):  # "pkg.mod" or "pkg.mod.name"
            for cand in (dep, dep.rsplit(".", 1)[0]):
                if cand in files and cand != m:
                    graph[m].add(cand)
    cycles, seen = [], set()

    def visit(m: str, path: list[str]) -> None:
        for d in sorted(graph[m]):
            if d in path:
                cyc = path[path.index(d):]
                key = frozenset(cyc)
                if key not in seen:
                    seen.add(key)
                    cycles.append(cyc + [d])
            elif len(path) < len(graph):
                visit(d, path + [d])

    for m in graph:
        visit(m, [m])
    return cycles


def test_training_modules_import_each_other_without_cycles() -> None:
    # runner <-> evaluate was one: the evaluation protocol never needs the run directory
    assert _cycles("training") == []
    assert "training.runner" not in {m for m, _ in _imports(ROOT / "training" / "evaluate.py")}


def test_rollouts_have_one_reader() -> None:
    """The rollouts contract lives in reachsafe.rollouts; nobody else defines Rollouts or reads .npz rollouts."""
    for f in sorted(list((ROOT / "training").rglob("*.py")) + list((ROOT / "verification").rglob("*.py"))
                    + list((ROOT / "reachsafe").rglob("*.py")) + list((ROOT / "examples").glob("*.py"))):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        names = {n.name for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
        if f.name != "rollouts.py":
            assert not names & {"Rollouts", "load_rollouts", "save_rollouts"}, f


def test_set_representations_import_each_other_in_one_direction() -> None:
    # box <-> hpolytope was one (Box.to_hpolytope); conversions now live in reachsafe.sets.convert
    assert _cycles("reachsafe/sets") == []
    assert _cycles("reachsafe/safeguards") == []
