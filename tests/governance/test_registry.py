"""The model registry: GTO tags in a throwaway repository (conftest.py builds its history).

The replay of the tags (`registry.timeline`) is tested on hand-made events first; then the
real `make register` / `make assign` / `make registry` in the throwaway repository: the bump
rule, what was in production on a given date (before, during and after a rollback), that
GTO's and DVC's own answers agree, and the refusals.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_template.core.params import Params
from mlops_template.core.schema import TABLE
from mlops_template.governance import contract, registry
from mlops_template.governance.registry import Event, Snapshot, bump_kind, timeline
from tests.governance.conftest import Registry, dvc_prod_rev, gto_prod
from tests.support import ROOT, raw_params

# --- the replay, on hand-made events -------------------------------------------------------


def _event(day: int, kind: str, version: str | None, stage: str | None = "prod") -> Event:
    stamp = datetime(2026, 9, day, 12, tzinfo=UTC)
    tag = f"model#{stage}#{day}" if kind == "assignment" else f"model@{version}-{day}"
    return Event(stamp, kind, version, stage, f"{day:040x}", tag, "someone", "")


@pytest.mark.unit
def test_the_latest_assignment_holds_the_stage_and_a_rollback_is_an_assignment() -> None:
    history = [
        _event(1, "assignment", "v1.0.0"),
        _event(2, "assignment", "v1.1.0"),
        _event(3, "assignment", "v1.0.0"),  # rollback
    ]
    periods = timeline(history, "prod")
    assert [(p.version, p.start.day, p.end.day if p.end else None) for p in periods] == [
        ("v1.0.0", 1, 2),
        ("v1.1.0", 2, 3),
        ("v1.0.0", 3, None),
    ]
    assert periods[1].ended_by == "model#prod#3"


@pytest.mark.unit
def test_unassigning_hands_the_stage_back_and_deprecation_clears_it() -> None:
    history = [
        _event(1, "assignment", "v1.0.0"),
        _event(2, "assignment", "v1.1.0"),
        _event(3, "unassignment", "v1.1.0"),
        _event(4, "assignment", "v1.2.0", stage="staging"),  # another stage: no change
        _event(5, "deregistration", "v1.0.0", stage=None),
    ]
    periods = timeline(history, "prod")
    assert [(p.version, p.start.day, p.end.day if p.end else None) for p in periods] == [
        ("v1.0.0", 1, 2),
        ("v1.1.0", 2, 3),
        ("v1.0.0", 3, 5),  # GTO's rule: the earlier assignment still stands
    ]
    gone = timeline([*history[:2], _event(6, "deprecation", None, stage=None)], "prod")
    assert gone[-1].end is not None, "a deprecated artifact holds no stage"


SCHEMA = {"columns": [{"name": "x", "kind": "numeric", "dtype": "float64"}], "label": "y"}
BOUNDS = {"x": contract.Bounds(0.0, 10.0, None), "id": contract.Bounds(None, None, r"^C\d+$")}


def _snap(md5: str = "md5-1", schema: Any = SCHEMA, bounds: Any = BOUNDS, **kw: Any) -> Snapshot:
    return Snapshot("b" * 40, schema, md5, {}, None, bounds, **kw)


@pytest.mark.unit
def test_bump_rule() -> None:
    wider = {"columns": [*SCHEMA["columns"], {"name": "z", "kind": "numeric", "dtype": "int64"}],
             "label": "y"}  # fmt: skip
    old = Snapshot("a" * 40, SCHEMA, "md5-1", {}, None, BOUNDS)
    assert bump_kind(None, old)[0] == "first"
    assert bump_kind(old, _snap())[0] == "patch"
    assert bump_kind(old, _snap("md5-2"))[0] == "minor"
    kind, reason = bump_kind(old, _snap("md5-2", wider))
    assert kind == "major"
    assert "column `z` added" in reason
    assert registry.bumped("v1.2.3", "minor") == "v1.3.0"
    assert registry.bumped("v1.2.3", "major") == "v2.0.0"
    assert registry.bumped("v1.2.3", "patch") == "v1.2.4"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("x", "pattern", "kind", "says"),
    [
        (contract.Bounds(1.0, 10.0, None), r"^C\d+$", "major", "column `x`: min 0.0 -> 1.0"),
        (contract.Bounds(0.0, 9.0, None), r"^C\d+$", "major", "max 10.0 -> 9.0"),
        (contract.Bounds(0.0, 10.0, "^a$"), r"^C\d+$", "major", "column `x`: pattern None"),
        (contract.Bounds(0.0, 10.0, None), r"^C\d{8}$", "major", "column `id`: pattern"),
        (contract.Bounds(-1.0, None, None), r"^C\d+$", "minor", "loosened: column `x`: min"),
        (contract.Bounds(0.0, 10.0, None), None, "minor", "loosened: column `id`: pattern"),
    ],
)
def test_bounds_and_patterns_are_part_of_the_contract(
    x: contract.Bounds, pattern: str | None, kind: str, says: str
) -> None:
    """The recorded schema is the same: only the request model's bounds or patterns differ."""
    old = Snapshot("a" * 40, SCHEMA, "md5-1", {}, None, BOUNDS)
    new = _snap(bounds={"x": x, "id": contract.Bounds(None, None, pattern)})
    got, reason = bump_kind(old, new)
    assert got == kind, reason
    assert says in reason, reason


@pytest.mark.unit
def test_a_contract_that_cannot_be_compared_counts_as_changed() -> None:
    old = Snapshot("a" * 40, None, "md5-1", {}, None, BOUNDS)
    kind, reason = bump_kind(old, _snap())
    assert kind == "major", "no recorded schema is not 'no change'"
    assert "recorded no input schema" in reason, reason
    assert "aaaaaaaaaaaa" in reason, reason
    unknown = Snapshot("a" * 40, SCHEMA, "md5-1", {}, None, None, "schema.py at aaaa fails")
    kind, reason = bump_kind(unknown, _snap())
    assert (kind, "schema.py at aaaa fails" in reason) == ("major", True), reason


@pytest.mark.unit
def test_the_schema_module_is_read_as_the_commit_has_it() -> None:
    source = (ROOT / contract.SCHEMA_MODULE).read_bytes()
    read, note = contract.of_source(source, "today's schema")
    assert note == ""
    assert read == contract.of_table(TABLE), "the same bounds as the imported schema"
    numeric = [c.name for c in TABLE.input_columns if c.dtype in ("float64", "int64")]
    if not numeric:
        pytest.skip("the schema has no numeric input column to bound")
    # The same module with one numeric input's max lowered (or added): requests may now fail.
    tightened = (
        source
        + (
            "\nimport dataclasses as _dc\n"
            f"_c = TABLE.by_name[{numeric[0]!r}]\n"
            "_max = _c.min if _c.min is not None else (_c.max - 1 if _c.max is not None else 0.0)\n"
            "TABLE = _dc.replace(TABLE, columns=tuple(\n"
            "    _dc.replace(c, max=_max) if c is _c else c for c in TABLE.columns))\n"
        ).encode()
    )
    changed, note = contract.of_source(tightened, "tightened")
    assert changed is not None, note
    breaking, _ = contract.changes(read or {}, changed)
    assert [b for b in breaking if f"column `{numeric[0]}`: max" in b], breaking
    broken, note = contract.of_source(b"from mlops_template.core.table import Gone\n", "old")
    assert broken is None
    assert "old does not run with today's code" in note, note
    assert contract.of_source(b"X = 1\n", "odd")[1] == "odd declares no `TABLE` table"


@pytest.mark.unit
def test_a_gate_block_that_does_not_validate_refuses_the_registration(
    params: Params, tmp_path: Path
) -> None:
    """Not silently replaced by today's gate: the snapshot says why, and registering stops."""
    import subprocess

    raw = raw_params()
    raw["gate"]["floors"] = "not a mapping"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a bad gate"], check=True)
    sha = registry.resolve_commit(tmp_path, "HEAD")
    snap = registry.snapshot(tmp_path, sha, params)
    assert snap.gate is None
    assert snap.gate_error
    assert "`gate` block of its params.yaml is not valid" in snap.gate_error
    assert snap.contract is None
    assert "does not exist" in snap.contract_note, snap.contract_note
    with pytest.raises(registry.RegistryError, match="cannot be checked against the gate"):
        registry.check_registrable(snap, params)


@pytest.mark.unit
def test_dates() -> None:
    assert registry.parse_when("2026-11-01") == datetime(2026, 11, 1, 23, 59, 59, 999999, UTC)
    assert registry.parse_when("2026-11-01T08:00:00+02:00") == datetime(2026, 11, 1, 6, tzinfo=UTC)
    with pytest.raises(registry.RegistryError, match="not a date"):
        registry.parse_when("yesterday")


# --- the real registry -------------------------------------------------------------------------

GOVERNANCE = pytest.mark.governance  # the tests below use the throwaway repository


def _read(repo: Registry) -> registry.Registry:
    return registry.read(repo.path, repo.copy.params)


@GOVERNANCE
def test_versions_follow_the_bump_rule(registry_repo: Registry) -> None:
    reg = _read(registry_repo)
    commits = registry_repo.commits
    assert [(v.version, v.commit) for v in reg.versions] == [
        ("v1.1.1", commits["C"]),  # the same model file: patch
        ("v1.1.0", commits["B"]),  # a new model file, same input contract: minor
        ("v1.0.0", commits["A"]),  # the first
    ]
    assert reg.artifact == "model", "the name comes from dvc.yaml's artifacts"
    registered = {e.version: e for e in reg.history if e.event == "registration"}
    assert "a new model file" in registered["v1.1.0"].message
    assert registered["v1.0.0"].timestamp == datetime(2026, 9, 2, 12, tzinfo=UTC)


@GOVERNANCE
@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("2026-09-02", None),  # registered, not yet in production
        ("2026-09-10", "v1.0.0"),
        ("2026-10-01", "v1.1.0"),
        ("2026-11-01", "v1.0.0"),  # after the rollback
        ("2026-11-30", "v1.1.1"),
    ],
)
def test_what_was_in_production_on_a_date(
    registry_repo: Registry, day: str, expected: str | None
) -> None:
    reg = _read(registry_repo)
    holder = reg.holder("prod", registry.parse_when(day))
    assert (holder.version if holder else None) == expected


@GOVERNANCE
def test_make_registry_answers_at_a_date_and_now(registry_repo: Registry) -> None:
    out = registry_repo.copy.make("registry", "AT=2026-11-01").stdout
    assert "In production (prod) now: v1.1.1" in out, out
    assert "In production (prod) at 2026-11-01 23:59:59 UTC: v1.0.0" in out, out
    assert "In staging now: v1.1.0" in out, out
    v100 = next(line for line in out.splitlines() if line.startswith("v1.0.0 "))
    assert "prod 2026-09-03 12:00 -> 2026-09-20 12:00" in v100, v100
    assert "prod 2026-10-10 12:00 -> 2026-11-05 12:00" in v100, v100
    assert "rollback: incident 42, v1.1.0 under review" in out, "the reason is in the history"
    payload = json.loads(registry_repo.copy.make("registry", "AT=2026-11-01", "FORMAT=json").stdout)
    assert payload["now"]["prod"]["version"] == "v1.1.1"
    assert payload["at"]["production"]["version"] == "v1.0.0"
    assert payload["at"]["production"]["commit"] == registry_repo.commits["A"]
    periods = [p for v in payload["versions"] for p in v["periods"] if p["stage"] == "prod"]
    assert len(periods) == 4


@GOVERNANCE
def test_gto_and_dvc_agree_after_the_rollback_and_now(registry_repo: Registry) -> None:
    assert registry_repo.after_rollback["gto"] == "v1.0.0"
    assert registry_repo.after_rollback["dvc"] == registry_repo.commits["A"]
    reg = _read(registry_repo)
    now = reg.holder("prod")
    assert now is not None
    assert gto_prod(registry_repo.path) == now.version == "v1.1.1"
    assert dvc_prod_rev(registry_repo.path) == now.commit == registry_repo.commits["C"]


@GOVERNANCE
def test_previous_production_version(registry_repo: Registry) -> None:
    reg = _read(registry_repo)
    before = {}
    for v in ("v1.0.0", "v1.1.0", "v1.1.1"):
        period = reg.previous_holder("prod", v)
        before[v] = period.version if period else None
    assert before == {"v1.0.0": None, "v1.1.0": "v1.0.0", "v1.1.1": "v1.0.0"}


@GOVERNANCE
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["STAGE=prod", "VERSION=v1.1.1"], "v1.1.1 already holds prod"),
        (["STAGE=qa", "VERSION=v1.1.1"], "STAGE='qa' is not one of registry.stages"),
        (["STAGE=prod", "VERSION=v9.9.9"], "VERSION='v9.9.9' is not a registered version"),
        (["STAGE=prod"], "assign: give STAGE=<stage> VERSION=<registered version>"),
    ],
)
def test_assign_refuses(registry_repo: Registry, args: list[str], message: str) -> None:
    tags = registry_repo.copy.run("git", "tag").stdout
    done = registry_repo.make("assign", *args, day="2026-11-10", check=False)
    assert done.returncode != 0
    assert message in done.stdout + done.stderr, done.stdout + done.stderr
    assert registry_repo.copy.run("git", "tag").stdout == tags, "no tag was made"


@GOVERNANCE
def test_register_refuses_a_registered_commit_a_branch_and_a_failed_gate(
    registry_repo: Registry,
) -> None:
    copy = registry_repo.copy
    done = registry_repo.make("register", day="2026-11-10", check=False)
    assert "is already registered as v1.1.1" in done.stderr, done.stderr
    copy.run("git", "switch", "-q", "-c", "feature")
    (copy.path / "docs" / "notes.md").write_text("On a branch.\n", encoding="utf-8")
    registry_repo.commit("feature", "on a branch", "2026-11-10")
    done = registry_repo.make("register", day="2026-11-10", check=False)
    assert "is not on main (registry.branch)" in done.stderr, done.stderr
    copy.run("git", "switch", "-q", "main")
    copy.run("git", "branch", "-q", "-D", "feature")
    copy.set_params({"gate.floors": {"ml.roc_auc": 0.999}})
    registry_repo.commit("strict", "a floor no model meets", "2026-11-11")
    try:
        done = registry_repo.make("register", day="2026-11-11", check=False)
        assert "does not meet its gate" in done.stderr, done.stderr
        assert "ml.roc_auc" in done.stderr
    finally:
        copy.run("git", "reset", "-q", "--hard", registry_repo.commits["C"])
    assert [v.version for v in _read(registry_repo).versions] == ["v1.1.1", "v1.1.0", "v1.0.0"]
