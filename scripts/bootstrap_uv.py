"""Install the uv that uv.lock pins into a folder of its own, each file checked by its hash.

`make` runs this on a machine without uv (a fresh laptop, CI): it reads the `uv` package
from uv.lock (the project's `pipeline` group locks it, with the sha256 of every wheel) and
has pip install exactly that version with `--require-hashes`, so the bootstrap downloads from
PyPI what the lock says and nothing else. Only the standard library and pip.

    python3 scripts/bootstrap_uv.py .tools/uv      # -> .tools/uv/bin/uv
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path


def locked_uv(lock: Path) -> tuple[str, list[str]]:
    """uv's version and the sha256 of each of its wheels, from uv.lock."""
    data = tomllib.loads(lock.read_text(encoding="utf-8"))
    for package in data.get("package", []):
        if package.get("name") == "uv":
            hashes = [w["hash"] for w in package.get("wheels", []) if "hash" in w]
            if not hashes:
                break
            return str(package["version"]), hashes
    raise SystemExit(f"bootstrap_uv: {lock} locks no uv wheels (is uv in a dependency group?)")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise SystemExit("usage: bootstrap_uv.py TARGET_DIR")
    target = Path(argv[1])
    version, hashes = locked_uv(Path("uv.lock"))
    line = f"uv=={version} " + " ".join(f"--hash={h}" for h in hashes)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write(line + "\n")
        requirements = fh.name
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--require-hashes", "--only-binary=:all:", "--no-deps", "--target", str(target),
             "-r", requirements],
            check=True,
        )  # fmt: skip
    finally:
        Path(requirements).unlink(missing_ok=True)
    sys.stdout.write(f"bootstrap_uv: uv {version} (hash-checked from uv.lock) in {target}/bin\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
