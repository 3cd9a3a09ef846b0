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
import sys
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


def evaluate(template: str, github: dict[str, Any]) -> str:
    """A `${{ a || b }}` template with the `github` context: the first non-empty path wins.
    Only `||` of context paths: anything else is a test error, not a silent guess."""

    def one(m: re.Match[str]) -> str:
        for alternative in m.group(1).split("||"):
            path = alternative.strip()
            assert re.fullmatch(r"github(\.[\w-]+)+", path), f"cannot evaluate {m.group(0)}"
            value: Any = {"github": github}
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value:
                return str(value)
        return ""

    return re.sub(r"\$\{\{(.*?)\}\}", one, template)


REPOSITORY = "acme/churn"


def _github(workflow: str, ref: str, head_ref: str = "", head_repo: str | None = None) -> Any:
    """The `github` context of a run: a push / call / dispatch, or a pull request from
    `head_repo`'s branch `head_ref` (then `ref` is the merge ref)."""
    context: dict[str, Any] = {"workflow": workflow, "repository": REPOSITORY, "ref": ref,
                               "ref_name": ref.split("/", 2)[-1], "head_ref": head_ref,
                               "event": {}}  # fmt: skip
    if head_repo is not None:
        context["event"] = {"pull_request": {"head": {"repo": {"full_name": head_repo}}}}
    return context


def test_a_fork_pull_request_from_main_never_shares_a_group_with_main() -> None:
    """A fork's pull request from a branch named like one of ours (`main`) must not join, and
    cancel, the CI run release.yml calls on main (or any run of ours on that branch); runs of
    one branch of ours (push and pull request) still share their group."""
    ci = load_yaml((GITHUB / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    group = str(ci["concurrency"]["group"])
    release_call = evaluate(group, _github("Release", "refs/heads/main"))  # the called workflow
    dispatch = evaluate(group, _github(ci["name"], "refs/heads/main"))
    fork_main = evaluate(group, _github(ci["name"], "refs/pull/7/merge", "main", "someone/churn"))
    assert fork_main not in {release_call, dispatch}, (fork_main, release_call, dispatch)
    push = evaluate(group, _github(ci["name"], "refs/heads/feature"))
    same_repo_pr = evaluate(group, _github(ci["name"], "refs/pull/8/merge", "feature", REPOSITORY))
    fork_pr = evaluate(group, _github(ci["name"], "refs/pull/9/merge", "feature", "someone/churn"))
    assert push == same_repo_pr, "a push and the pull request of one branch of ours share a group"
    assert fork_pr != push, "a fork's branch is not ours"
    for path in WORKFLOWS:
        text = str(load_yaml(path.read_text(encoding="utf-8")).get("concurrency", {}))
        if "github.head_ref" in text:
            assert "github.event.pull_request.head.repo.full_name" in text, (
                f"{_rel(path)}: a group keyed on the head branch must name the head repository"
            )


@pytest.mark.parametrize("path", [*WORKFLOWS, *ACTIONS], ids=_id)
def test_checkout_does_not_persist_credentials(path: Path) -> None:
    doc = load_yaml(path.read_text(encoding="utf-8"))
    for where, step in iter_steps(doc):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            persist = (step.get("with") or {}).get("persist-credentials")
            assert persist is False, f"{_rel(path)} {where}: set persist-credentials: false"


def test_ci_installs_uv_like_a_laptop_from_the_lock_with_its_hashes() -> None:
    """No uv download by an action (setup-uv cannot check the hash of a uv it does not know):
    the Makefile bootstraps the version uv.lock pins, each wheel checked against the lock."""
    for path in [*WORKFLOWS, *ACTIONS]:
        for where, step in iter_steps(load_yaml(path.read_text(encoding="utf-8"))):
            assert not str(step.get("uses", "")).startswith("astral-sh/setup-uv@"), where
    bootstrap = recipe(MAKEFILE_TEXT, "$(UV_LOCAL)")
    assert bootstrap[-1] == "$(PYTHON) scripts/bootstrap_uv.py .tools/uv", bootstrap
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import bootstrap_uv
    finally:
        sys.path.pop(0)
    version, hashes = bootstrap_uv.locked_uv(ROOT / "uv.lock")
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert len(hashes) >= 3, "wheels for Linux, macOS and Windows"
    assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes)
    script = (ROOT / "scripts" / "bootstrap_uv.py").read_text(encoding="utf-8")
    assert '"--require-hashes"' in script


def test_ci_runs_lint_online_audit_and_tests_and_release_needs_it() -> None:
    ci = load_yaml((GITHUB / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    assert {"pull_request", "push", "workflow_call"} <= set(ci["on"])
    assert ci["on"]["push"]["branches-ignore"] == ["main"], "main's pushes run CI in release.yml"
    used = make_targets_used(ci)
    assert {"lint", "workflows-lint", "workflows-audit", "test"} <= used, used
    assert not used & {"run", "repro", "gate"}, "the pipeline runs in pr.yml / release.yml"
    audit = next(s for _, s in iter_steps(ci) if s.get("run") == "make workflows-audit")
    assert audit["env"]["GH_TOKEN"] == "${{ github.token }}", "online audits need the token"
    assert "--offline" not in " ".join(recipe(MAKEFILE_TEXT, "workflows-audit"))
    assert "--offline" in " ".join(recipe(MAKEFILE_TEXT, "workflows-lint"))
    assert "refs/heads/main" in str(ci["concurrency"]["cancel-in-progress"]), "never on main"
    release = load_yaml((GITHUB / "workflows" / "release.yml").read_text(encoding="utf-8"))
    assert release["jobs"]["ci"]["uses"] == "$/.github/workflows/ci.yml"
    assert release["jobs"]["build"]["needs"] == "ci", "nothing ships from a red main"
    assert release["concurrency"]["cancel-in-progress"] is False
    caches = [s for _, s in iter_steps(release) if "actions/cache" in str(s.get("uses", ""))]
    assert any(
        s["with"]["path"] == ".dvc/cache" and "hashFiles('dvc.lock')" in s["with"]["key"]
        for s in caches
    ), "no DVC cache keyed on dvc.lock"


def test_release_moves_human_tags_only_after_sbom_provenance_and_signature() -> None:
    release = load_yaml((GITHUB / "workflows" / "release.yml").read_text(encoding="utf-8"))
    steps = release["jobs"]["publish"]["steps"]
    order = [str(s.get("run") or s.get("uses", "")).split("@")[0] for s in steps]
    push = order.index("make push-image")
    for later in ("anchore/sbom-action", "actions/attest-sbom", "actions/attest-build-provenance",
                  "make sign"):  # fmt: skip
        assert push < order.index(later) < order.index("make promote-tags"), (later, order)
    pushed = next(s for s in steps if s.get("run") == "make push-image")
    assert pushed["env"]["PUSH_TAG"] == "${{ needs.build.outputs.push-tag }}"
    assert "latest" not in " ".join(recipe(MAKEFILE_TEXT, "push-image"))
    attest = [s for s in steps if "attest" in str(s.get("uses", ""))]
    assert all("visibility == 'public'" in s["if"] for s in attest), "degrade on private repos"
    notice = next(s for s in steps if s.get("run") == "make attestations-unavailable")
    assert "visibility != 'public'" in notice["if"]


def test_release_keeps_the_audit_pack_of_the_model_before_building_the_image(
    params: Params,
) -> None:
    """`make audit` runs on the gated model before `make container-context` builds the bento
    that carries it, and the pack is uploaded with the run."""
    from mlops_template.core import audit_pack

    release = load_yaml((GITHUB / "workflows" / "release.yml").read_text(encoding="utf-8"))
    (job,) = [j for j in release["jobs"].values()
              if any(s.get("run") == "make audit" for s in j.get("steps", []))]  # fmt: skip
    steps = job["steps"]
    order = [str(s.get("run") or s.get("uses", "")).split("@")[0] for s in steps]
    uploads = [i for i, s in enumerate(steps) if "actions/upload-artifact@" in str(s.get("uses"))]
    pack = audit_pack.directory(params.audit.out_dir, None)
    kept = [i for i in uploads if Path(steps[i]["with"]["path"]) == pack]
    assert kept, f"no upload of {pack}/ in {order}"
    assert steps[kept[0]]["with"]["path"].endswith("/"), "the directory, every file in it"
    assert steps[kept[0]]["with"]["if-no-files-found"] == "error"
    audit, context = order.index("make audit"), order.index("make container-context")
    assert order.index("make gate") < audit < kept[0] < context, order


def test_dependabot_refreshes_actions_lock_and_the_base_image() -> None:
    config = yaml.safe_load(DEPENDABOT.read_text(encoding="utf-8"))
    ecosystems = {u["package-ecosystem"]: u for u in config["updates"]}
    assert {"github-actions", "uv", "docker"} <= set(ecosystems)
    base = ROOT / ecosystems["docker"]["directory"].lstrip("/") / "Dockerfile"
    froms = [line for line in base.read_text(encoding="utf-8").splitlines()
             if line.startswith("FROM ")]  # fmt: skip
    assert len(froms) == 1
    assert re.fullmatch(r"FROM python:3\.11-slim@sha256:[0-9a-f]{64}", froms[0])


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


def test_pre_commit_checks_params_yaml_with_the_same_module_as_make_repro(tmp_path: Path) -> None:
    """The params-check hook runs `pipeline.check` (as `make run` and `make repro` do) when
    params.yaml changes, and that command fails on a misspelled key."""
    from mlops_template.core.repo import PARAMS_FILE

    config = yaml.safe_load(PRE_COMMIT.read_text(encoding="utf-8"))
    hooks = {h["id"]: h for r in config["repos"] for h in r["hooks"]}
    assert "params-check" in hooks, f"no params-check hook in {_rel(PRE_COMMIT)}"
    hook = hooks["params-check"]
    argv = shlex.split(hook["entry"])
    assert argv == ["uv", "run", "--locked", "python", "-m", "mlops_template.pipeline.check"], argv
    module = argv[4:]  # -m mlops_template.pipeline.check
    command = " ".join(argv[3:])
    for target in ("run", "repro"):
        assert f"$(RUN) {command}" in recipe(MAKEFILE_TEXT, target), f"make {target}"
    assert re.search(hook["files"], PARAMS_FILE), f"{hook['files']} misses {PARAMS_FILE}"
    assert not re.search(hook["files"], f"src/{PARAMS_FILE}"), "the project's params.yaml only"
    assert hook.get("pass_filenames") is False, "the module takes no file names"
    assert "pre-commit" in hook.get("stages", config["default_stages"])
    good = subprocess.run([sys.executable, *module], cwd=ROOT, capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    raw = yaml.safe_load((ROOT / PARAMS_FILE).read_text(encoding="utf-8"))
    raw["not_a_section"] = {"knob": 1}
    (tmp_path / PARAMS_FILE).write_text(yaml.safe_dump(raw), encoding="utf-8")
    bad = subprocess.run([sys.executable, *module], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 1, bad.stderr
    assert "not_a_section" in bad.stderr, bad.stderr


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
    # id-token only for the optional OIDC login of the team-data switch (forks get none).
    assert report["permissions"] == {"contents": "read", "id-token": "write"}
    assert comment["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert comment["env"]["ITERATIVE_DO_NOT_TRACK"] == "1", "no CML analytics"
    assert comment["needs"] == "report"
    assert "github.event.pull_request.head.repo.full_name == github.repository" in comment["if"]
    for job in (report, comment):
        for step in job["steps"]:
            assert "github.event" not in str(step.get("run", "")), step
    runs = [s["run"] for s in report["steps"] if "run" in s]
    assert runs == ["make pull-data", "make repro", "make report", "make gate", "make check-lock"]
    pull = next(s for s in report["steps"] if s.get("run") == "make pull-data")
    assert pull["if"] == "${{ vars.DVC_PULL_DATA == 'true' }}", "the team-data switch"
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


# --- deploying follows a stage assignment (deploy.yml) ---------------------------------------

DEPLOY_YML = GITHUB / "workflows" / "deploy.yml"


def _deploy() -> dict[str, Any]:
    return load_yaml(DEPLOY_YML.read_text(encoding="utf-8"))


def test_deploy_runs_only_on_the_gto_stage_tags_of_the_registry(params: Params) -> None:
    """The trigger is the push of `<artifact>#<stage>#<n>` (GTO's assignment tag) for each stage
    of params.yaml registry.stages: never a branch, a registration or an unassignment."""
    import fnmatch

    import gto.api
    from gto.constants import Action

    from mlops_template.governance.registry import artifact_name

    on = _deploy()["on"]
    assert list(on) == ["push"], "no workflow_dispatch, no branch: only a stage assignment deploys"
    assert list(on["push"]) == ["tags"]
    patterns = on["push"]["tags"]
    assert sorted(patterns) == sorted(f"*#{stage}#*" for stage in params.registry.stages)
    artifact = artifact_name(ROOT)

    def deploys(tag: str) -> bool:  # GitHub's `*` also matches `#`, never `/`
        return "/" not in tag and any(fnmatch.fnmatchcase(tag, p) for p in patterns)

    for stage in params.registry.stages:
        tag = f"{artifact}#{stage}#12"
        assert gto.api.parse_tag(tag)["action"] is Action.ASSIGN
        assert deploys(tag), tag
    for tag, action in [
        (f"{artifact}@v1.2.0", Action.REGISTER),
        (f"{artifact}#prod!#13", Action.UNASSIGN),
        (f"{artifact}@v1.2.0!", Action.DEREGISTER),
        (f"{artifact}@deprecated#14", Action.DEPRECATE),
    ]:
        assert gto.api.parse_tag(tag)["action"] is action
        assert not deploys(tag), tag
    assert not deploys(f"{artifact}#qa#15"), "a stage outside registry.stages"


def test_the_deploy_job_keys_on_the_tag_and_its_stage_environment() -> None:
    doc = _deploy()
    resolve, deploy = doc["jobs"]["resolve"], doc["jobs"]["deploy"]
    read_only = {"contents": "read", "packages": "read"}
    assert resolve["permissions"] == read_only
    assert deploy["permissions"] == read_only, "deploying needs no write access to GitHub"
    assert "environment" not in resolve, "nobody approves a tag that does not resolve"
    assert deploy["needs"] == "resolve"
    assert deploy["environment"]["name"] == "${{ needs.resolve.outputs.environment }}"
    assert deploy["concurrency"]["group"].endswith("${{ needs.resolve.outputs.stage }}")
    assert deploy["concurrency"]["cancel-in-progress"] is False
    for job in (resolve, deploy):
        checkout = next(s for s in job["steps"] if "actions/checkout@" in str(s.get("uses")))
        assert checkout["with"]["fetch-depth"] == 0, "the registry is every tag"
        target = next(s for s in job["steps"] if s.get("run") == "make deploy-resolve")
        assert target["id"] == "target"
        assert target["env"]["TAG"] == "${{ github.ref_name }}", "the pushed stage tag"
    assert resolve["outputs"]["environment"] == "${{ steps.target.outputs.environment }}"


def test_the_image_is_deployed_by_digest_after_its_signature_is_verified() -> None:
    steps = _deploy()["jobs"]["deploy"]["steps"]
    order = [str(s.get("run") or s.get("uses", "")).split("@")[0] for s in steps]
    deployed = order.index("make deploy")
    assert order.index("make deploy-resolve") < deployed, "resolved right before the apply"
    assert order.index("sigstore/cosign-installer") < deployed
    applied = next(s for s in steps if s.get("run") == "make deploy")
    assert applied["env"]["IMAGE_REF"] == "${{ steps.target.outputs.image-ref }}"
    assert applied["env"]["OVERLAY"] == "${{ steps.target.outputs.overlay }}"
    for key in ("MODEL_VERSION", "MODEL_SHA256", "REVISION"):  # the lineage of the manifests
        assert applied["env"][key].startswith("${{ steps.target.outputs."), key
    body = recipe(MAKEFILE_TEXT, "deploy")
    assert any("*@sha256:*" in line for line in body), "make deploy takes a digest reference only"
    verify = next(i for i, line in enumerate(body) if line.startswith("cosign verify"))
    apply = next(i for i, line in enumerate(body) if "kubectl apply" in line)
    assert verify < apply, "the signature is verified before anything is applied"
    assert '--certificate-identity "$(SIGNER_IDENTITY)"' in " ".join(body[verify : verify + 3])
    assert "GITHUB_WORKFLOW_REF" not in " ".join(body), "the signer, not the running workflow"
    release = load_yaml((GITHUB / "workflows" / "release.yml").read_text(encoding="utf-8"))
    assert make_variable(MAKEFILE_TEXT, "RELEASE_WORKFLOW") == (
        f".github/workflows/release.yml@refs/heads/{release['on']['push']['branches'][0]}"
    ), "the identity names release.yml on the branch it signs from"
    assert re.search(
        r"^SIGNER_IDENTITY \?= .*\$\{GITHUB_REPOSITORY\}/\$\(RELEASE_WORKFLOW\)$", MAKEFILE_TEXT,
        re.M,
    )  # fmt: skip
    assert not any("environment" in job for job in release["jobs"].values()), "it deploys nothing"
    assert "deploy" not in make_targets_used(release)


# --- the monitoring workflow -----------------------------------------------------------------


def _monitor() -> dict[str, Any]:
    return load_yaml((GITHUB / "workflows" / "monitor.yml").read_text(encoding="utf-8"))


def test_monitoring_runs_on_a_schedule_and_by_hand_with_least_privilege_per_job() -> None:
    doc = _monitor()
    assert set(doc["on"]) == {"schedule", "workflow_dispatch"}, "scheduled, and by hand"
    assert doc["on"]["schedule"][0]["cron"]
    assert doc["concurrency"]["cancel-in-progress"] is False, "the window history is shared"
    jobs = doc["jobs"]
    assert jobs["monitor"]["permissions"] == {"contents": "read", "id-token": "write"}
    assert jobs["issue"]["permissions"] == {"issues": "write"}
    assert jobs["retrain"]["permissions"] == {"contents": "read", "id-token": "write"}
    runs = [s["run"] for s in jobs["monitor"]["steps"] if "run" in s]
    assert runs[-3:] == ["make repro", "make monitor-fetch", "make monitor"], runs
    fetch = next(s for s in jobs["monitor"]["steps"] if s.get("run") == "make monitor-fetch")
    assert fetch["env"]["MONITOR_LOGS_URL"] == "${{ vars.MONITOR_LOGS_URL }}"
    assert jobs["monitor"]["outputs"]["retrain"] == "${{ steps.monitor.outputs.retrain }}"
    uploads = [s for s in jobs["monitor"]["steps"] if "upload-artifact" in str(s.get("uses"))]
    assert any(s["with"]["path"] == "reports/monitoring/" for s in uploads), "the page"
    history = [s for s in jobs["monitor"]["steps"] if "actions/cache/" in str(s.get("uses"))]
    assert {s["with"]["path"] for s in history} >= {"reports/monitoring/history.json"}


def test_one_issue_is_updated_with_gh_and_the_job_token() -> None:
    issue = _monitor()["jobs"]["issue"]
    step = next(s for s in issue["steps"] if "run" in s)
    assert step["run"] == "make monitor-issue"
    assert step["env"]["GH_TOKEN"] == "${{ github.token }}"
    assert "publish issue" in " ".join(recipe(MAKEFILE_TEXT, "monitor-issue"))


def test_retraining_opens_one_pull_request_with_a_token_that_triggers_workflows() -> None:
    retrain = _monitor()["jobs"]["retrain"]
    assert retrain["if"] == "${{ needs.monitor.outputs.retrain == 'true' }}"
    steps = retrain["steps"]
    order = [str(s.get("run") or s.get("uses", "")).split("@")[0] for s in steps]
    assert (
        order.index("make retrain")
        < order.index("make push")
        < order.index("make retrain-token")
        < order.index("peter-evans/create-pull-request")
    ), order
    made = next(s for s in steps if s.get("run") == "make retrain")
    assert made["env"]["NO_BRANCH"] == "1", "the pull-request step makes the branch"
    app = next(s for s in steps if "create-github-app-token" in str(s.get("uses")))
    assert "vars.MONITORING_APP_CLIENT_ID != ''" in app["if"]
    token = next(s for s in steps if s.get("run") == "make retrain-token")
    assert token["env"]["RETRAIN_PAT"] == "${{ secrets.RETRAIN_PAT }}"
    assert "::error" in " ".join(recipe(MAKEFILE_TEXT, "retrain-token")), "a clear failure"
    pr = next(s for s in steps if "create-pull-request" in str(s.get("uses")))
    assert pr["with"]["token"] == "${{ steps.app.outputs.token || secrets.RETRAIN_PAT }}"
    assert pr["with"]["branch"] == "model-monitoring/retrain", "one fixed branch: one PR"
    assert pr["with"]["body-path"] == "reports/monitoring/retrain.md"
    assert "promoted == 'true'" in pr["if"], "only a challenger that beat the champion"
    assert "github.token" not in str(pr["with"]), "GITHUB_TOKEN's PRs trigger no workflow"
