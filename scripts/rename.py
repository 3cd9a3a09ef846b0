"""`make rename NAME=acme_churn`: make the template yours in one step.

Renames the package (`src/<old>` -> `src/<NAME>`), the distribution (`<old-name>` ->
`<NAME with dashes>`) and every reference to either in the files git knows (dvc.yaml,
Makefile, workflows, bentofile, Dockerfile, tests, README, uv.lock, ...), and sets params.yaml
`project.name` (which names the service, the model and the image) to NAME. LICENSE keeps the
template's copyright notice, as the MIT licence asks.

Only the standard library: it runs before any environment exists. Afterwards run
`make run && make test`, then commit (README: "Make it yours").
"""

from __future__ import annotations

import argparse
import keyword
import re
import shutil
import subprocess
import sys
from pathlib import Path

KEEP = {"LICENSE"}  # the template's copyright notice stays


def current_package(root: Path) -> str:
    found = [p.parent.name for p in (root / "src").glob("*/__init__.py")]
    if len(found) != 1:
        raise SystemExit(f"rename: expected one package under src/, found {found}")
    return found[0]


def distribution(root: Path) -> str:
    match = re.search(r'^name = "([^"]+)"', (root / "pyproject.toml").read_text("utf-8"), re.M)
    if not match:
        raise SystemExit("rename: pyproject.toml has no [project] name")
    return match.group(1)


def tracked_files(root: Path) -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    return [root / rel for rel in listed if rel and (root / rel).is_file()]


def rewrite(path: Path, replacements: list[tuple[str, str]]) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return False  # not text
    new = text
    for old, repl in replacements:
        new = new.replace(old, repl)
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def set_project_name(params: Path, name: str) -> None:
    text = params.read_text(encoding="utf-8")
    pattern = r"(?m)^(project:\n(?:[ \t]*#.*\n)*[ \t]+name:[ \t]*)\S+"
    new, count = re.subn(pattern, rf"\g<1>{name}", text)
    if count != 1:
        raise SystemExit("rename: params.yaml has no `project:` section with a `name:` first")
    params.write_text(new, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the new package name, e.g. acme_churn")
    args = parser.parse_args(argv)
    name = args.name
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,39}", name) or keyword.iskeyword(name):
        raise SystemExit(f"rename: {name!r} is not a lower-case Python package name (a-z, 0-9, _)")
    root = Path.cwd()
    old, old_dist = current_package(root), distribution(root)
    if old == name:
        raise SystemExit(f"rename: the package is already called {name}")
    new_dist = name.replace("_", "-")
    replacements = [(old, name), (old_dist, new_dist)]
    changed = [p for p in tracked_files(root) if p.name not in KEEP and rewrite(p, replacements)]
    source, target = root / "src" / old, root / "src" / name
    if subprocess.run(["git", "mv", str(source), str(target)], cwd=root,
                      capture_output=True, check=False).returncode != 0:  # fmt: skip
        shutil.move(source, target)
    set_project_name(root / "params.yaml", name)
    sys.stdout.write(
        f"renamed {old} -> {name} and {old_dist} -> {new_dist} in {len(changed)} files; "
        f"params.yaml project.name = {name}.\nNext: make run && make test, then commit.\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
