"""dvc.yaml is right by the code: each stage runs its own pipeline module and depends on
exactly the package modules that module imports (so a changed schema bound re-runs ingest),
and on no module it does not import (so a changed report label re-trains nothing).

The imports are read from the source (every `import` anywhere in a module, also inside
functions, followed transitively), not by importing it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT

pytestmark = pytest.mark.ci

SRC = ROOT / "src"
PACKAGE = next(p.parent.name for p in SRC.glob("*/__init__.py"))
# Modules that cannot change what a stage writes: argument parsing and logging.
OUTPUT_NEUTRAL = {f"src/{PACKAGE}/core/cli.py"}


def _file(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(module: str) -> set[str]:
    path = _file(module)
    assert path is not None, module
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.split(".")[0] == PACKAGE
        ):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if _file(f"{node.module}.{a.name}")}  # fmt: skip
    return found


def _docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def import_closure(module: str) -> set[str]:
    """Source files of every package module `python -m <module>` may import."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or _file(name) is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run too
        todo += sorted(_imports(name))
    files = {_file(m) for m in seen}
    return {
        str(f.relative_to(ROOT))
        for f in files
        if f is not None and not (f.name == "__init__.py" and _docstring_only(f))
    } - OUTPUT_NEUTRAL


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("stage", list(STAGES))
def test_stage_runs_its_own_pipeline_module(stage: str) -> None:
    cmd = STAGES[stage]["cmd"]
    assert re.match(rf"python -m {PACKAGE}\.pipeline\.{stage}\b", cmd), cmd
    assert (SRC / PACKAGE / "pipeline" / f"{stage}.py").is_file()


@pytest.mark.parametrize("stage", list(STAGES))
def test_stage_code_deps_are_its_import_closure(stage: str) -> None:
    declared = {d for d in STAGES[stage]["deps"] if str(d).startswith("src/")}
    needed = import_closure(f"{PACKAGE}.pipeline.{stage}")
    missing, extra = sorted(needed - declared), sorted(declared - needed)
    assert not missing, f"dvc.yaml stage {stage} imports but does not depend on: {missing}"
    assert not extra, f"dvc.yaml stage {stage} depends on modules it never imports: {extra}"


def test_ingest_depends_on_the_schema_and_the_sample() -> None:
    deps = set(STAGES["ingest"]["deps"])
    assert f"src/{PACKAGE}/core/schema.py" in deps  # a changed bound regenerates the sample
    assert any(str(d).startswith(f"src/{PACKAGE}/sample/") for d in deps)
