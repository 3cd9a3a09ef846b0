"""The README and docs tell the truth about the repository: diagrams render, links resolve,
and every `make` target they mention exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT, mermaid_blocks, render_mermaid

pytestmark = pytest.mark.ci

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _make_targets() -> set[str]:
    listed = subprocess.run(
        ["make", "-pRrq", "-f", "Makefile", ":"], cwd=ROOT, capture_output=True, text=True,
        check=False,
    ).stdout  # fmt: skip
    return set(re.findall(r"^([a-zA-Z][\w-]*):", listed, re.M))


def test_every_mermaid_block_in_the_docs_renders(tmp_path: Path) -> None:
    blocks = [(doc.name, block) for doc in DOCS for block in mermaid_blocks(_text(doc))]
    assert blocks, "the README's pipeline diagram is a mermaid block"
    results = render_mermaid([block for _, block in blocks], tmp_path)
    for (name, block), result in zip(blocks, results, strict=True):
        assert result["ok"], f"{name}: mermaid rejected\n{block}\n{result['error']}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", _text(doc))
    local = [link for link in links if "://" not in link and not link.startswith("mailto:")]
    missing = [link for link in local if not (doc.parent / link).exists()]
    assert not missing, f"{doc.name} links to files that do not exist: {missing}"


def test_every_make_target_the_readme_names_exists() -> None:
    named = set(re.findall(r"`make ([a-z][\w-]*)", _text(ROOT / "README.md")))
    assert {"run", "test"} <= named, "the README's two commands"
    unknown = sorted(named - _make_targets())
    assert not unknown, f"README mentions make targets the Makefile lacks: {unknown}"
