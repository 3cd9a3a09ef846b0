"""Where an audit pack is written and what its files are called.

`governance/audit.py` writes the pack (`make audit`) and `serving/build/bento.py` carries the
work tree's pack in the bento; a wing cannot import governance, so both import these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

MARKDOWN: Final = "audit.md"
HTML: Final = "audit.html"
FACTS: Final = "audit.json"  # the same facts for machines: identity, every hash, the numbers
FILES: Final = (MARKDOWN, HTML, FACTS)
CARRIED: Final = (MARKDOWN, HTML)  # what a bento carries (its lineage file holds the facts)
WORK_TREE_DIR: Final = "work-tree"  # the pack of the work tree's model (no VERSION)


def directory(out_dir: str | Path, version: str | None) -> Path:
    """`<audit.out_dir>/<version, or work-tree>`."""
    return Path(out_dir) / (version or WORK_TREE_DIR)
