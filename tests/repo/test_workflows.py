"""CI configuration: every workflow, composite action and dependabot.yml, whoever adds them.

Each file must pass `zizmor --offline` with no finding and its JSON schema, and follow the
repository's rules: `permissions: {}` at the top and explicit grants per job, third-party
actions pinned to a full commit SHA with a `# vX.Y.Z` comment, a timeout on every job, and
every `run:` step a single `make <target>` call, so CI runs exactly what a developer runs.
The files are parsed as YAML (with line numbers from the YAML nodes for the pin comments).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_template.core.params import Params
from tests.support import ROOT, require_tool

pytestmark = pytest.mark.ci

GITHUB = ROOT / ".github"
WORKFLOWS = sorted([*GITHUB.glob("workflows/*.yml"), *GITHUB.glob("workflows/*.yaml")])
ACTIONS = sorted([*GITHUB.glob("actions/*/action.yml"), *GITHUB.glob("actions/*/action.yaml")])
DEPENDABOT = GITHUB / "dependabot.yml"
PRE_COMMIT = ROOT / ".pre-commit-config.yaml"
MAKEFILE = ROOT / "Makefile"

SCHEMAS = {"workflow": "vendor.github-workflows", "action": "vendor.github-actions"}
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+\.\d+\.\d+\b")
# Local actions and reusable workflows: `./path` (needs a checkout) or `$/path` (the running
# commit of this repository). Both come from this repository, so there is nothing to pin.
LOCAL_PREFIXES = ("./", "$/")

# Commands other than `make <target>` that a `run:` step may call. Empty on purpose: wrap a
# new command in a Makefile target instead, so CI and a developer run the same thing. An entry
# must name a tool that the test suite itself exercises, with the reason next to it.
ALLOWED_RUN_COMMANDS: dict[str, str] = {}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _id(value: object) -> str | None:
    return _rel(value) if isinstance(value, Path) else None


# --- parsing helpers -------------------------------------------------------------------


def load_yaml(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    assert isinstance(data, dict), "expected a mapping at the top level"
    # YAML 1.1 (PyYAML) reads the workflow key `on` as the boolean True.
    if True in data:
        data["on"] = data.pop(True)
    return data


@dataclass(frozen=True)
class Use:
    ref: str
    line: int  # 1-based
    where: str


def iter_uses(text: str) -> Iterator[Use]:
    """Every `uses:` of a step or of a job (reusable workflow), with its line in the file."""
    root = yaml.compose(text)

    def walk(node: yaml.Node, path: tuple[str, ...]) -> Iterator[Use]:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = str(key.value)
                if name in ("with", "env", "inputs", "outputs"):
                    continue
                if name == "uses" and isinstance(value, yaml.ScalarNode):
                    yield Use(str(value.value), value.start_mark.line + 1, ".".join(path))
                else:
                    yield from walk(value, (*path, name))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                yield from walk(item, (*path, str(i)))

    if root is not None:
        yield from walk(root, ())


def pin_problems(text: str) -> list[str]:
    """`uses:` references that are neither local nor pinned to a SHA with a version comment."""
    lines = text.splitlines()
    problems = []
    for use in iter_uses(text):
        if use.ref.startswith(LOCAL_PREFIXES):
            continue
        if use.ref.startswith("docker://"):
            if "@sha256:" not in use.ref:
                problems.append(f"line {use.line}: {use.ref} is not pinned to an image digest")
            continue
        if not SHA_PIN.match(use.ref):
            problems.append(f"line {use.line}: {use.ref} is not pinned to a full commit SHA")
        elif not VERSION_COMMENT.search(lines[use.line - 1].split(use.ref, 1)[-1]):
            problems.append(f"line {use.line}: {use.ref} has no '# vX.Y.Z' comment")
    return problems


def iter_steps(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, step) for every step of every job (workflow) or of a composite action."""
    for job_id, job in (doc.get("jobs") or {}).items():
        for i, step in enumerate(job.get("steps") or []):
            yield f"jobs.{job_id}.steps[{i}]", step
    runs = doc.get("runs") or {}
    for i, step in enumerate(runs.get("steps") or []):
        yield f"runs.steps[{i}]", step


def makefile_targets(text: str) -> set[str]:
    """Explicit targets of a Makefile (rules like `name: deps`, not `VAR := value`)."""
    rule = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]*(?:\s+[A-Za-z0-9][A-Za-z0-9_-]*)*)\s*:(?!=)")
    targets: set[str] = set()
    for line in text.splitlines():
        m = rule.match(line)
        if m:
            targets.update(m.group(1).split())
    return targets


def documented_targets(text: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^([A-Za-z0-9_-]+):[^\n]*?## ", text, re.M)}


def run_problems(doc: dict[str, Any], targets: set[str]) -> list[str]:
    """`run:` steps that are anything but `make <existing target>...` (or an allowed tool)."""
    problems = []
    for where, step in iter_steps(doc):
        if "run" not in step:
            continue
        script = str(step["run"]).strip()
        if "\n" in script or re.search(r"[;&|<>`$()]", script):
            problems.append(f"{where}: must be one plain command, got {script!r}")
            continue
        argv = shlex.split(script)
        if argv[0] in ALLOWED_RUN_COMMANDS:
            continue
        if argv[0] != "make" or len(argv) < 2:
            problems.append(f"{where}: must call `make <target>`, got {script!r}")
            continue
        unknown = [t for t in argv[1:] if t not in targets]
        if unknown:
            problems.append(f"{where}: {unknown} are not Makefile targets (in {script!r})")
    return problems


def make_targets_used(doc: dict[str, Any]) -> set[str]:
    used: set[str] = set()
    for _, step in iter_steps(doc):
        argv = shlex.split(str(step.get("run", "")))
        if argv[:1] == ["make"]:
            used.update(argv[1:])
    return used


def recipe(text: str, target: str) -> list[str]:
    """The recipe lines of `target` in a Makefile."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^{re.escape(target)}\s*:", line))
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        body.append(line.strip())
    return body


def make_variable(text: str, name: str) -> str:
    m = re.search(rf"^{name}\s*:?=\s*(.+)$", text, re.M)
    assert m, f"Makefile defines no {name}"
    return m.group(1).strip()


MAKEFILE_TEXT = MAKEFILE.read_text(encoding="utf-8")
TARGETS = makefile_targets(MAKEFILE_TEXT)


# --- the rules catch what they should (so a pass below means something) -----------------

BAD_WORKFLOW = """\
on: push
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - uses: actions/cache@0400d5f644dc74513175e3cd8d07132dd4860809
      - uses: ./.github/actions/setup
      - run: pip install -e .
      - run: make no-such-target
      - run: make lint && make test
"""


def test_rules_reject_a_bad_workflow() -> None:
    problems = pin_problems(BAD_WORKFLOW)
    assert any("actions/checkout@v4 is not pinned" in p for p in problems), problems
    assert any("has no '# vX.Y.Z' comment" in p for p in problems), problems
    assert not any("./.github/actions/setup" in p for p in problems), "local action flagged"
    runs = run_problems(load_yaml(BAD_WORKFLOW), TARGETS)
    assert len(runs) == 3, runs
    assert "no-such-target" in " ".join(runs)


def test_zizmor_and_schema_reject_a_bad_workflow(tmp_path: Path) -> None:
    zizmor = require_tool("zizmor")
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW, encoding="utf-8")
    result = subprocess.run([zizmor, "--offline", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0, "zizmor found nothing in an unpinned, over-permitted workflow"
    check = require_tool("check-jsonschema")
    schema_bad = tmp_path / "schema_bad.yml"
    schema_bad.write_text("on: push\njobs:\n  build:\n    steps: []\n", encoding="utf-8")
    result = subprocess.run(
        [check, "--builtin-schema", SCHEMAS["workflow"], str(schema_bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0, "a job without runs-on passed the workflow schema"


# --- every workflow, composite action and dependabot.yml ----------------------------------


def test_the_ci_workflow_and_dependabot_exist() -> None:
    assert GITHUB / "workflows" / "ci.yml" in WORKFLOWS
    assert DEPENDABOT.is_file()


@pytest.mark.parametrize("path", [*WORKFLOWS, *ACTIONS, DEPENDABOT], ids=_id)
def test_zizmor_finds_nothing(path: Path) -> None:
    zizmor = require_tool("zizmor")
    result = subprocess.run(
        [zizmor, "--offline", "--no-progress", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, f"zizmor findings in {_rel(path)}:\n{result.stdout}"


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        *[(p, SCHEMAS["workflow"]) for p in WORKFLOWS],
        *[(p, SCHEMAS["action"]) for p in ACTIONS],
        (DEPENDABOT, "vendor.dependabot"),
    ],
    ids=_id,
)
def test_json_schema(path: Path, schema: str) -> None:
    check = require_tool("check-jsonschema")
    result = subprocess.run(
        [check, "--builtin-schema", schema, str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, f"{_rel(path)} fails {schema}:\n{result.stdout}"


@pytest.mark.parametrize("path", [*WORKFLOWS, *ACTIONS], ids=_id)
def test_actions_are_pinned_to_a_sha_with_a_version_comment(path: Path) -> None:
    problems = pin_problems(path.read_text(encoding="utf-8"))
    assert not problems, f"{_rel(path)}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", [*WORKFLOWS, *ACTIONS], ids=_id)
def test_run_steps_only_call_make_targets(path: Path) -> None:
    problems = run_problems(load_yaml(path.read_text(encoding="utf-8")), TARGETS)
    assert not problems, f"{_rel(path)}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", WORKFLOWS, ids=_id)
def test_permissions_are_empty_at_the_top_and_granted_per_job(path: Path) -> None:
    doc = load_yaml(path.read_text(encoding="utf-8"))
    assert doc.get("permissions") == {}, f"{_rel(path)}: top-level `permissions` must be {{}}"
    missing = [job for job, body in doc["jobs"].items() if "permissions" not in body]
    assert not missing, f"{_rel(path)}: jobs without their own `permissions`: {missing}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=_id)
def test_every_job_has_a_timeout(path: Path) -> None:
    doc = load_yaml(path.read_text(encoding="utf-8"))
    # A job that calls a reusable workflow (`uses:`) cannot set one; the called jobs do.
    missing = [
        job
        for job, body in doc["jobs"].items()
        if "uses" not in body and not isinstance(body.get("timeout-minutes"), int)
    ]
    assert not missing, f"{_rel(path)}: jobs without an integer `timeout-minutes`: {missing}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=_id)
def test_concurrency_cancels_superseded_pull_request_runs(path: Path) -> None:
    doc = load_yaml(path.read_text(encoding="utf-8"))
    concurrency = doc.get("concurrency")
    assert isinstance(concurrency, dict), f"{_rel(path)}: no workflow-level `concurrency`"
    assert concurrency.get("group"), f"{_rel(path)}: `concurrency` has no group"
    triggers = doc["on"] if isinstance(doc["on"], (dict, list)) else [doc["on"]]
    if "pull_request" in triggers:
        assert concurrency.get("cancel-in-progress") not in (None, False), (
            f"{_rel(path)}: runs on pull requests but does not cancel superseded runs"
        )


@pytest.mark.parametrize("path", [*WORKFLOWS, *ACTIONS], ids=_id)
def test_checkout_does_not_persist_credentials(path: Path) -> None:
    doc = load_yaml(path.read_text(encoding="utf-8"))
    for where, step in iter_steps(doc):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            persist = (step.get("with") or {}).get("persist-credentials")
            assert persist is False, f"{_rel(path)} {where}: set persist-credentials: false"


@pytest.mark.parametrize("path", [*WORKFLOWS, *ACTIONS], ids=_id)
def test_uv_in_ci_is_the_version_the_makefile_installs(path: Path) -> None:
    uv_version = make_variable(MAKEFILE_TEXT, "UV_VERSION")
    for where, step in iter_steps(load_yaml(path.read_text(encoding="utf-8"))):
        if str(step.get("uses", "")).startswith("astral-sh/setup-uv@"):
            got = str((step.get("with") or {}).get("version"))
            assert got == uv_version, f"{_rel(path)} {where}: uv {got}, Makefile {uv_version}"


def test_ci_workflow_runs_lint_tests_pipeline_and_gate_with_caches() -> None:
    text = (GITHUB / "workflows" / "ci.yml").read_text(encoding="utf-8")
    doc = load_yaml(text)
    triggers = doc["on"]
    assert "push" in triggers, triggers
    assert "pull_request" in triggers, triggers
    used = make_targets_used(doc)
    assert {"lint", "workflows-lint", "test", "gate"} <= used, used
    assert used & {"run", "repro"}, f"ci.yml never runs the pipeline: {used}"
    # uv's cache (set up in the shared action) and DVC's cache keyed on dvc.lock.
    all_steps = [s for _, s in iter_steps(doc)]
    for action in ACTIONS:
        all_steps += [s for _, s in iter_steps(load_yaml(action.read_text(encoding="utf-8")))]
    uv_steps = [s for s in all_steps if str(s.get("uses", "")).startswith("astral-sh/setup-uv@")]
    assert uv_steps, "no astral-sh/setup-uv step"
    assert all(s["with"].get("enable-cache") is True for s in uv_steps), "uv cache is off"
    caches = [s for s in all_steps if str(s.get("uses", "")).startswith("actions/cache@")]
    assert any(
        s["with"]["path"] == ".dvc/cache" and "hashFiles('dvc.lock')" in s["with"]["key"]
        for s in caches
    ), "no actions/cache step for .dvc/cache keyed on dvc.lock"


# --- Makefile, .ci/run and pre-commit agree with CI ---------------------------------------


def test_make_help_lists_every_documented_target_and_every_target_ci_uses() -> None:
    make = require_tool("make")
    result = subprocess.run(
        [make, "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    listed = {
        line.split()[0]
        for line in re.sub(r"\x1b\[[0-9;]*m", "", result.stdout).splitlines()
        if line.strip()
    }
    documented = documented_targets(MAKEFILE_TEXT)
    assert documented, "no `## ` descriptions found in the Makefile"
    assert documented <= listed, f"`make help` omits {sorted(documented - listed)}"
    used = set().union(
        *(make_targets_used(load_yaml(p.read_text(encoding="utf-8"))) for p in WORKFLOWS)
    )
    assert used <= documented, f"targets used by workflows lack a `## ` help line: {used}"


def test_ci_entry_point_runs_make_test() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [
        shlex.split(line)
        for line in script.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert ["make", "test"] in commands, ".ci/run must run `make test`"
    stops_on_error = any(
        c[0] == "set" and any(o.startswith("-") and "e" in o for o in c[1:]) for c in commands
    )
    assert stops_on_error, ".ci/run must stop at the first failing command (set -e)"


def test_pre_commit_is_local_and_runs_the_same_lint_commands_as_make_lint() -> None:
    config = yaml.safe_load(PRE_COMMIT.read_text(encoding="utf-8"))
    remote = [r["repo"] for r in config["repos"] if r["repo"] != "local"]
    assert not remote, f"hooks that pre-commit would download: {remote}"
    hooks = [h for r in config["repos"] for h in r["hooks"]]
    entries = {h["entry"] for h in hooks}
    run = make_variable(MAKEFILE_TEXT, "RUN").replace("$(UV)", "uv")
    lint = [line.replace("$(RUN)", run) for line in recipe(MAKEFILE_TEXT, "lint")]
    assert lint, "`make lint` has no commands"
    missing = [cmd for cmd in lint if cmd not in entries]
    assert not missing, f"`make lint` runs {missing}, which no pre-commit hook runs"
    for hook in hooks:
        argv = shlex.split(hook["entry"])
        if argv[:1] == ["make"]:
            assert set(argv[1:]) <= TARGETS, f"hook {hook['id']}: unknown target in {argv}"
        else:
            assert argv[:3] == ["uv", "run", "--locked"], (
                f"hook {hook['id']} must run a tool from uv.lock: {hook['entry']}"
            )
            # The suite runs under `uv run`, so the locked environment's tools are on PATH.
            assert shutil.which(argv[3]), f"hook {hook['id']}: '{argv[3]}' is not installed"


def test_pre_commit_config_is_valid() -> None:
    pre_commit = require_tool("pre-commit")
    result = subprocess.run(
        [pre_commit, "validate-config", str(PRE_COMMIT)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the pull-request workflow ---------------------------------------------------------------

PR_YML = ROOT / ".github" / "workflows" / "pr.yml"


def _workflow() -> dict[str, Any]:
    doc = yaml.safe_load(PR_YML.read_text(encoding="utf-8"))
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc  # type: ignore[no-any-return]


def test_pr_workflow_is_fork_safe_and_split_by_permission() -> None:
    code = "\n".join(
        line
        for line in PR_YML.read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("#")
    )
    doc = _workflow()
    assert list(doc["on"]) == ["pull_request"]
    assert "pull_request_target" not in code
    assert "workflow_run" not in code
    report, comment = doc["jobs"]["report"], doc["jobs"]["comment"]
    assert report["permissions"] == {"contents": "read"}
    assert comment["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert comment["needs"] == "report"
    assert "github.event.pull_request.head.repo.full_name == github.repository" in comment["if"]
    for job in (report, comment):
        for step in job["steps"]:
            assert "github.event" not in str(step.get("run", "")), step
    runs = [s["run"] for s in report["steps"] if "run" in s]
    assert runs == ["make repro", "make report", "make gate", "make check-lock"]
    assert report["env"]["BASE"] == "HEAD^1"
    checkout = report["steps"][0]
    assert checkout["with"]["fetch-depth"] == 2  # the merge commit and its base parent
    cache = next(s for s in report["steps"] if str(s.get("uses", "")).startswith("actions/cache@"))
    assert cache["with"]["path"] == ".dvc/cache"
    assert "hashFiles('dvc.lock')" in cache["with"]["key"]
    cml = next(s for s in comment["steps"] if "setup-cml@" in str(s.get("uses", "")))
    assert re.fullmatch(r"iterative/setup-cml@[0-9a-f]{40}", cml["uses"])
    assert [s["run"] for s in comment["steps"] if "run" in s] == ["make pr-comment"]


def test_pr_comment_target_posts_one_sticky_comment_without_uploads(params: Params) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(rf"^PR_REPORT := {re.escape(params.paths.pr_report)}$", makefile, re.M)
    body = makefile.split("\npr-comment:", 1)[1].split("\n\n", 1)[0]
    assert "cml comment update $(PR_REPORT)" in body
    assert "--target=pr" in body
    assert "--watermark-title=" in body
    assert "--publish=false" in body


def test_ci_run_hides_a_preinstalled_uv_but_keeps_the_rest_of_path(tmp_path: Path) -> None:
    tools = tmp_path / "usr-local-bin"
    tools.mkdir()
    for name in ("uv", "uvx", "python-like"):
        (tools / name).write_text("#!/bin/sh\necho found\n", encoding="utf-8")
        (tools / name).chmod(0o755)
    script = (
        f'PATH="{tools}:/usr/bin:/bin"; . .ci/hide-uv.sh; hide_uv; '
        'command -v uv || echo "no uv"; command -v uvx || echo "no uvx"; python-like'
    )
    proc = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["no uv", "no uvx", "found"], proc.stdout
    text = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert text.index(". .ci/hide-uv.sh") < text.rindex("\nmake test"), "hidden before the tests"
