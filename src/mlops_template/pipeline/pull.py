"""`make pull-data`: fetch the team's DVC-tracked source data (the `.dvc` files) from the remote.

Not a dvc.yaml stage: it runs before the pipeline, in CI jobs on a team's own data (the
workflows' `DVC_PULL_DATA` switch, README "Use your own data"). When the data cannot be had,
it fails naming each missing file and the remote it tried, rather than letting ingest stop on
a file-not-found, or a later stage on a half-empty table.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from mlops_template.core import cli
from mlops_template.core.errors import InputError
from mlops_template.core.params import Params

log = logging.getLogger(__name__)
SKIPPED = frozenset({".dvc", ".git", ".venv", "node_modules"})  # folders never searched


def _outs(meta: Path, root: Path) -> tuple[Path, ...]:
    """The data files one `.dvc` file tracks (every entry of its `outs`), with errors naming
    the `.dvc` file."""
    name = meta.relative_to(root)
    try:
        raw = yaml.safe_load(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{name}: cannot be read as a .dvc file: {exc}") from None
    outs = raw.get("outs") if isinstance(raw, dict) else None
    if not isinstance(outs, list) or not outs:
        raise InputError(f"{name}: not a .dvc file of data (expected a list `outs` of paths)")
    paths = []
    for i, out in enumerate(outs):
        path = out.get("path") if isinstance(out, dict) else None
        if not isinstance(path, str) or not path:
            raise InputError(f"{name}: outs[{i}] has no `path` (got {out!r})")
        paths.append(meta.parent / path)
    return tuple(paths)


def tracked_sources(root: Path) -> dict[Path, tuple[Path, ...]]:
    """`.dvc` file -> the data files it tracks (all its `outs`), for every `.dvc` file under
    `root` outside DVC's own `.dvc/` directory, `.git/`, `.venv/` and `node_modules/`."""
    metas = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED)
        metas += [Path(folder, n) for n in names if n.endswith(".dvc")]
    return {meta: _outs(meta, root) for meta in sorted(metas)}


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True, check=False
    )


def remote_description(root: Path) -> str:
    default = _dvc(root, "remote", "default").stdout.strip() or "(no default remote)"
    urls = dict(
        line.split(maxsplit=1)
        for line in _dvc(root, "remote", "list").stdout.splitlines()
        if len(line.split(maxsplit=1)) == 2
    )
    return f"'{default}' ({urls.get(default, 'not configured')})"


def pull(root: Path) -> list[Path]:
    """Pull every tracked source; return them, or raise InputError naming what is missing."""
    sources = tracked_sources(root)
    if not sources:
        log.info("no .dvc files: nothing to pull")
        return []
    done = _dvc(root, "pull", *[str(meta.relative_to(root)) for meta in sources])
    data = [path for outs in sources.values() for path in outs]
    missing = [path for path in data if not path.exists()]
    if done.returncode != 0 or missing:
        detail = (done.stderr or done.stdout).strip().splitlines()
        names = ", ".join(
            f"{path.relative_to(root)} ({meta.relative_to(root)})"
            for meta, outs in sources.items()
            for path in outs
            if path in (missing or data)
        )
        raise InputError(
            f"could not fetch {names} from the DVC remote {remote_description(root)}: "
            f"{detail[-1] if detail else 'the files are not there'}. Check the remote's URL "
            "and credentials (README: 'DVC remote and caching')."
        )
    return data


def _main(args: argparse.Namespace, params: Params) -> None:
    del args, params
    pulled = pull(Path.cwd())
    log.info("pulled %s", ", ".join(str(p) for p in pulled) or "nothing")


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("pull-data", lambda p: None, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
