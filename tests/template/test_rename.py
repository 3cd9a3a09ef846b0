"""`make rename NAME=...` leaves a project that is entirely the team's and still works:
the package, the distribution and every reference renamed, the service, model and image
named after it, and `make run`, `make lint` and the fast test tiers green in the renamed copy."""

from __future__ import annotations

import json
import re

import pytest

from tests.support import ROOT, ProjectCopy, fast_changes, raw_params, require, uv_path

pytestmark = pytest.mark.template

NEW = "acme_churn"
OLD = next(p.parent.name for p in (ROOT / "src").glob("*/__init__.py"))


@pytest.fixture(scope="module")
def renamed(tmp_path_factory: pytest.TempPathFactory) -> ProjectCopy:
    copy = ProjectCopy.create(tmp_path_factory.mktemp("rename") / "repo", fast_changes(2000),
                              tests=True)  # fmt: skip
    copy.commit("the template, as forked")
    proc = copy.run("make", "rename", f"NAME={NEW}")
    assert f"renamed {OLD} -> {NEW}" in proc.stdout
    node_modules = ROOT / "tests" / "js" / "node_modules"
    require(node_modules.is_dir(), "tests/js has no node_modules: run `make js-deps`")
    (copy.path / "tests" / "js" / "node_modules").symlink_to(node_modules)
    return copy


def test_every_reference_is_renamed(renamed: ProjectCopy) -> None:
    assert (renamed.path / "src" / NEW / "__init__.py").is_file()
    assert not (renamed.path / "src" / OLD).exists()
    listed = renamed.run("git", "ls-files", "--cached", "--others", "--exclude-standard")
    left = renamed.run("git", "grep", "-l", "-e", OLD, "-e", OLD.replace("_", "-"), check=False)
    assert [f for f in left.stdout.split() if f != "LICENSE"] == [], "references left behind"
    assert "LICENSE" in listed.stdout
    assert raw_params(renamed.path)["project"]["name"] == NEW
    pyproject = (renamed.path / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(rf'^name = "{NEW.replace("_", "-")}"', pyproject, re.M)
    assert f'root_package = "{NEW}"' in pyproject
    assert f"python -m {NEW}.pipeline.train" in (renamed.path / "dvc.yaml").read_text("utf-8")
    renamed.run(uv_path(), "lock", "--check")  # uv.lock still matches pyproject.toml


def test_a_bad_name_is_refused(renamed: ProjectCopy) -> None:
    proc = renamed.run("make", "rename", "NAME=Not-A-Package", check=False)
    assert proc.returncode != 0
    assert "is not a lower-case Python package name" in proc.stderr
    assert renamed.run("make", "rename", check=False).returncode != 0


def test_make_run_lint_and_the_fast_tiers_pass_in_the_renamed_project(
    renamed: ProjectCopy,
) -> None:
    run = renamed.make("run")
    assert "Expected profit" in run.stdout
    card = json.loads((renamed.path / "models" / "model_card.json").read_text(encoding="utf-8"))
    assert card["version"] == card["sha256"][:12]
    renamed.make("lint")
    tests = renamed.python(
        "-m", "pytest", "-q", "-m", "(unit or data or ci) and not template", "tests", check=False
    )
    assert tests.returncode == 0, tests.stdout[-6000:] + tests.stderr[-2000:]
    assert re.search(r"(\d+) passed", tests.stdout)
    container_name = renamed.run(
        "python", "-m", f"{NEW}.serving.build.container", "image-name"
    ).stdout.strip()
    assert container_name == "acme-churn-service:dev"
