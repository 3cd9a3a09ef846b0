"""The audit pack's rendering on a hand-made pack (no repository, no model): what comes from
outside the pack (tag messages, commit subjects, authors, category values, record ids, the
team's file, the monitoring summary) never becomes markup, in the Markdown or the HTML page;
and its files are written all together or not at all.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlops_template.core import audit_pack
from mlops_template.core import io as files
from mlops_template.core.explain import Contribution, Explanation
from mlops_template.core.model import ModelCard
from mlops_template.governance import audit, charts, pack
from mlops_template.governance.registry import Event, Period, Version

pytestmark = pytest.mark.unit

SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'
# Each also tried inside backticks, and after a lone backtick that could pair with a later one.
HOSTILE = (SCRIPT, IMG, f"`{IMG}`", f"x` {IMG} `y", f"\\`{IMG}`", f"``{SCRIPT}`")
NOW = datetime(2026, 9, 3, 12, tzinfo=UTC)


def hand_made(text: str) -> pack.Pack:
    """A pack whose every outside-sourced field holds `text`."""
    card = ModelCard(
        sha256="a" * 64, version="a" * 12, kind="hist_gradient_boosting", threshold=0.2,
        expected_profit_cv=1.0, features=("x", "contract"), n_train=100, sklearn_version="1.9",
    )  # fmt: skip
    period = Period("prod", "v1.0.0", "c" * 40, NOW, None, "model#prod#1", text, text, None)
    event = Event(NOW, "assignment", "v1.0.0", "prod", "c" * 40, "model#prod#1", text, text)
    contribution = Contribution("contract", text, 0.4, f"contract = {text} raises the log-odds")
    decision = Explanation(
        key=text,
        probability=0.6,
        contact=True,
        base_value=-1.0,
        contributions=(contribution,),
        log_odds=-0.6,
    )
    return pack.Pack(
        identity=pack.Identity(
            project="some_service",
            label="v1.0.0",
            artifact="model",
            card=card,
            commit="c" * 40,
            commit_date="2026-09-01",
            commit_subject=text,
            dirty=False,
            dvc_lock_sha256="d" * 64,
            registered=Version("v1.0.0", "c" * 40, NOW, "model@v1.0.0", text),
            events=(event,),
            periods=(period,),
            production="prod",
            in_production_now=period,
            image_digest=None,
        ),
        team=dict.fromkeys(pack.TEAM_SECTIONS, f"The team says {text}.\n\n- and {text}"),
        team_source="`docs/intended_use.md`",
        data=pack.Data(
            source="sample",
            lineage=(),
            rows=100,
            label_rate=0.2,
            null_rate={},
            n_train=80,
            n_test=20,
            n_columns=2,
            n_checks=0,
            time_span=None,
            time_note=text,
            features=("x", "contract"),
            pii=(),
            excluded=(pack.Excluded("id", "id", text),),
        ),
        performance=pack.Performance(
            metrics={
                "n_test": 20,
                "segments": {
                    "contract": {
                        text: {
                            "n": 300,
                            "positive_rate": 0.2,
                            "roc_auc": 0.7,
                            "precision": 0.5,
                            "recall": 0.4,
                            "profit_per_record": 1.0,
                        }
                    }
                },
            },
            noun="outcome",
            positive_name="positive",
            negative_name="negative",
            misses=(text,),
            gaps=(pack.Gap("contract", (text, 0.8), ("other", 0.7), 0.1),),
            confusion=None,
            calibration=(pack.CalibrationBin(0.0, 0.1, 10, 0.05, 0.04),),
            calibration_note="",
            threshold=0.2,
            expected_profit_cv=1.0,
            cv_folds=2,
            business={"contact_cost": 1, "success_rate": 0.3, "success_value": 10},
        ),
        explanations=pack.Explanations(
            importance=(("contract", 0.1), (text, 0.05)),
            top_n=1,
            segments=(),
            decisions=(pack.Decision("the highest score", decision),),
            note=text,
        ),
        previous=pack.Previous(None, None, text),
        monitoring={"status": text, "window": {"model_version": text}},
        monitoring_text=f"# Monitoring\n\n{text}\n\n```mermaid\nflowchart LR\n  a --> b\n```\n",
        monitoring_source="reports/monitoring/summary.json",
        environment=pack.Environment(
            "3.11", "python:3.11-slim", "1.9", (("bentoml", text),), 1, None
        ),
        notes=(),
    )


def outputs(text: str) -> tuple[str, str]:
    parts = pack.blocks(hand_made(text))
    return pack.to_markdown(parts), pack.to_html(parts, f"Audit pack {text}")


def raw_tags(html: str) -> set[str]:
    """Every HTML element name in the page."""
    return {name.lower() for name in re.findall(r"<([a-zA-Z][a-zA-Z0-9-]*)", html)}


@pytest.mark.parametrize("text", HOSTILE)
def test_outside_text_never_becomes_markup_in_the_html(text: str) -> None:
    _, html = outputs(text)
    assert "script" not in raw_tags(html), "no <script> element"
    assert "img" not in raw_tags(html), "no <img> element"
    assert "onerror" not in re.sub(r"&lt;.*?&gt;", "", html), "no live event handler"
    assert "&lt;" in html, "the text is shown, escaped"


@pytest.mark.parametrize("text", HOSTILE)
def test_outside_text_never_becomes_markup_in_the_markdown(text: str) -> None:
    """A Markdown viewer that renders raw HTML gets none: rendered with HTML on, the
    Markdown yields no element the pack did not write itself."""
    from markdown_it import MarkdownIt

    md, _ = outputs(text)
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    assert "script" not in raw_tags(rendered)
    assert "img" not in raw_tags(rendered)


def test_charts_and_details_are_put_in_after_rendering() -> None:
    parts = pack.blocks(hand_made("plain"))
    _, html = outputs("plain")
    drawn = [p for p in parts if isinstance(p, charts.Chart)]
    assert drawn, "the hand-made pack has charts"
    assert html.count("<svg") == len(drawn), "every chart is an inline SVG"
    assert "<details><summary>Runtime packages (1)</summary>" in html
    assert re.search(r"<p>block[0-9a-f]{32}x\d+</p>", html) is None, "no placeholder left"


def test_the_pack_names_no_sample_wording() -> None:
    md, _ = outputs("plain")
    assert "kept with probability" not in md
    assert "succeeds with probability 0.3" in md


# --- writing: the three files, all or none ---------------------------------------------------


def test_a_failed_write_leaves_the_previous_pack_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "v1.0.0"
    written = audit.write(hand_made("first"), out)
    assert sorted(p.name for p in written) == sorted(audit_pack.FILES)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = files.write_text

    def fail_on_html(target: str | Path, text: str) -> None:
        if Path(target).name == audit_pack.HTML:
            raise OSError("disk full")
        real(target, text)

    monkeypatch.setattr(files, "write_text", fail_on_html)
    with pytest.raises(OSError, match="disk full"):
        audit.write(hand_made("second"), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before, "not a mix of two packs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1.0.0"], "no temporary left"
    monkeypatch.setattr(files, "write_text", real)
    audit.write(hand_made("second"), out)
    assert "second" in (out / audit_pack.MARKDOWN).read_text(encoding="utf-8")


def test_the_pack_never_replaces_a_directory_of_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(audit.AuditError, match=r"holds notes\.txt"):
        audit.write(hand_made("plain"), tmp_path)
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"
