"""The request contract of a commit beyond what its data summary records, for the bump rule.

The validate stage records the table it checked (`schema` in `paths.data_summary`: columns,
types, categories, nullability) and `review.compare.schema_diff` compares two of those. The
service's request model (`serving/contract.py`) also enforces each input column's `[min, max]`
and pattern, which that record leaves out, so a tightened bound would change what callers may
send without a major version. They are read here from the schema module as that commit has it,
run with today's table machinery (`core/table.py`). A commit of `registry.branch` only: its
code is the code CI and the release ran.

`changes` sorts the differences: breaking (a request valid before may now be refused: a bound
added or tightened, a pattern added or changed) or widening (every request valid before still
is: a bound loosened or dropped, a pattern dropped).
"""

from __future__ import annotations

import hashlib
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mlops_template.core import schema
from mlops_template.core.repo import git_show
from mlops_template.core.table import Table

# The schema module's path in the repository (`src/<package>/core/schema.py`).
SCHEMA_MODULE: Final = Path("src", *schema.__name__.split(".")).with_suffix(".py").as_posix()
TABLE_NAME: Final = "TABLE"  # what the schema module calls its table (as everything imports it)


@dataclass(frozen=True, slots=True)
class Bounds:
    """What the request model enforces on one input column beyond its type and categories."""

    min: float | None
    max: float | None
    pattern: str | None


Contract = dict[str, Bounds]  # input column -> its bounds


def of_table(table: Table) -> Contract:
    return {c.name: Bounds(c.min, c.max, c.pattern) for c in table.input_columns}


def of_source(source: bytes, origin: str) -> tuple[Contract | None, str]:
    """The contract the schema module `source` declares, or None and why it cannot be read."""
    name = f"_mlops_schema_{hashlib.sha256(source).hexdigest()[:16]}"
    module = types.ModuleType(name)
    module.__file__ = origin
    sys.modules[name] = module  # dataclasses and typing look their module up
    try:
        exec(compile(source, origin, "exec"), module.__dict__)
    except Exception as exc:
        return None, f"{origin} does not run with today's code ({type(exc).__name__}: {exc})"
    finally:
        sys.modules.pop(name, None)
    table = module.__dict__.get(TABLE_NAME)
    if not isinstance(table, Table):
        return None, f"{origin} declares no `{TABLE_NAME}` table"
    return of_table(table), ""


def at_commit(root: Path, sha: str) -> tuple[Contract | None, str]:
    source = git_show(root, sha, SCHEMA_MODULE)
    origin = f"{SCHEMA_MODULE} at {sha[:12]}"
    if source is None:
        return None, f"{origin} does not exist"
    return of_source(source, origin)


def _limit(name: str, side: str, old: float | None, new: float | None) -> tuple[str, bool] | None:
    """(the change, whether it breaks) for one bound; `side` is "min" or "max"."""
    if old == new:
        return None
    text = f"column `{name}`: {side} {old!r} -> {new!r}"
    if new is None:
        return text, False
    if old is None:
        return text, True
    tighter = new > old if side == "min" else new < old
    return text, tighter


def changes(old: Contract, new: Contract) -> tuple[list[str], list[str]]:
    """(breaking, widening) differences of the columns both contracts have (pure; columns
    added or removed are `schema_diff`'s)."""
    breaking: list[str] = []
    widening: list[str] = []
    for name in sorted(old.keys() & new.keys()):
        a, b = old[name], new[name]
        found = [_limit(name, "min", a.min, b.min), _limit(name, "max", a.max, b.max)]
        if a.pattern != b.pattern:
            text = f"column `{name}`: pattern {a.pattern!r} -> {b.pattern!r}"
            found.append((text, b.pattern is not None))  # a changed regex may refuse more
        for item in found:
            if item is not None:
                (breaking if item[1] else widening).append(item[0])
    return breaking, widening
