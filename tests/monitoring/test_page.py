"""The page for the business, in a real headless Chromium: it renders offline without a
console error, draws its charts, and every number it shows is the summary's.

    MONITORING_SCREENSHOT=docs/monitoring_page.png uv run pytest tests/monitoring/test_page.py

regenerates the README's screenshot (by default it goes to the test's temporary directory).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from mlops_template.monitoring import page
from tests.monitoring.conftest import Run
from tests.support import ROOT, chromium_path, require, require_tool

pytestmark = pytest.mark.monitoring


def open_in_chromium(html: Path, screenshot: Path) -> dict:  # type: ignore[type-arg]
    node = require_tool("node")
    chromium = chromium_path()
    require(
        (ROOT / "tests" / "js" / "node_modules" / "playwright-core").is_dir(),
        "tests/js has no node_modules: run `make js-deps`",
    )
    proc = subprocess.run(
        [node, str(Path(__file__).with_name("page.mjs")), str(html), str(screenshot)],
        capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "CHROMIUM_PATH": chromium},
    )  # fmt: skip
    assert proc.returncode == 0, f"page.mjs failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_the_page_renders_offline_and_shows_the_summarys_numbers(run: Run, tmp_path: Path) -> None:
    run.simulate("concept_drift")
    _, summary = run.monitor()
    html = run.copy.path / run.params.monitor.reports / "report.html"
    text = html.read_text("utf-8")
    screenshot = Path(os.environ.get("MONITORING_SCREENSHOT") or tmp_path / "page.png")
    seen = open_in_chromium(html, screenshot)
    assert seen["errors"] == [], seen["errors"]
    assert seen["requests"] == [], "the page asked the network for something"
    assert seen["charts"] >= 3
    keys = {n["key"] for n in seen["numbers"]}
    for needed in (
        "performance.realised.profit_per_record.value",
        "performance.expected.profit_per_record",
        "prediction.contact_rate",
        "performance.realised.precision.value",
        "feedback.flags",
        "window.records",
    ):
        assert needed in keys, f"the first screen lacks {needed}"
    for shown in seen["numbers"]:
        value = page.value_at(summary, shown["key"])
        assert shown["value"] == value, shown
        expected_text = "—" if value is None else page.FORMATS[shown["format"]](value)
        assert shown["text"] == expected_text, shown
    assert screenshot.stat().st_size > 10_000
    assert "retrain" in text.split("<main>", 1)[1][:3000], "the decision is on the first screen"
