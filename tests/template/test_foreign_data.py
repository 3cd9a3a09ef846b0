"""The template on another team's table, changed the way README "Use your own data" says.

A copy of the project keeps the built-in churn sample on `main` (reproduced and committed).
A branch then swaps in a different binary classification table that ships offline
(scikit-learn's Wisconsin breast-cancer biopsies: 30 measurements, integer-coded size bands,
a text label `malignant` / `benign`, no id column) and edits ONLY:

- the data file and its `.dvc` file (`dvc add`),
- the schema module (`core/schema.py`, written below as a team would write it),
- `params.yaml`.

Then everything a team runs must work: the pipeline, the gate, the report against the
unmodified `main` (another table: reported as not like-for-like, never a traceback),
`make bento` + a real `bentoml serve` answering the example request, and the schema-driven
test tiers of the copy itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from tests.support import (
    DELETE,
    ProjectCopy,
    fast_changes,
    start_server,
    stop_server,
    unpack_bento,
    wait_server_ready,
)

pytestmark = pytest.mark.template

PACKAGE = "mlops_template"
SOURCE = "data/external/biopsies.csv"


def biopsies() -> pd.DataFrame:
    """The foreign table, as a team would export it."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns=["target"])
    frame["size_band"] = pd.qcut(frame["mean radius"], 3, labels=[1, 2, 3]).astype("int64")
    names = np.asarray(data.target_names)  # target 0 = malignant, 1 = benign
    frame["diagnosis"] = names[data.target.to_numpy()]
    return frame


def schema_module(frame: pd.DataFrame) -> str:
    """core/schema.py for the foreign table: what the team writes (bounds from their data)."""
    measures = [c for c in frame.columns if c not in ("size_band", "diagnosis")]
    lines = [
        '"""The data contract: breast tumour biopsies, malignant or benign."""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Final",
        "",
        f"from {PACKAGE}.core.table import Column, Kind, Label, Table",
        "",
        "COLUMNS: Final = (",
    ]
    for name in measures:
        bound = float(np.ceil(frame[name].max() * 2))
        lines.append(f"    Column({name!r}, Kind.NUMERIC, {name!r}, min=0.0, max={bound}),")
    lines += [
        "    Column(",
        '        "size_band", Kind.CATEGORICAL, "Size band of the mean radius (1 small .. 3).",',
        '        dtype="int64", categories=(1, 2, 3),',
        "    ),",
        ")",
        'LABEL: Final = Label("diagnosis", positive="malignant", negative="benign",',
        '                     description="The biopsy\'s diagnosis.")',
        'TABLE: Final = Table(name="biopsies", columns=COLUMNS, label=LABEL)',
        "",
    ]
    return "\n".join(lines)


FOREIGN_PARAMS: dict[str, Any] = {
    "project.name": "tumour",
    "project.label_noun": "malignancy",
    "project.positive_name": "malignant",
    "project.negative_name": "benign",
    "data.source": SOURCE,
    "data.sample": DELETE,
    "model.monotonic": {"worst radius": 1},
    "evaluate.segments": ["size_band"],
    "evaluate.min_segment_size": 20,
    "evaluate.min_segment_class_count": 5,
    "gate.max_segment_roc_auc_gap": {},
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> ProjectCopy:
    base = tmp_path_factory.mktemp("foreign")
    copy = ProjectCopy.create(
        base / "repo", fast_changes(2500), tests=True, BENTOML_HOME=str(base / "bentoml_home")
    )
    copy.commit("the template, as forked")
    copy.reproduce("main: the churn sample reproduced")
    copy.run("git", "checkout", "-q", "-b", "our-data")
    # The team's three edits: the data (+ .dvc), the schema module, params.yaml.
    frame = biopsies()
    (copy.path / SOURCE).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(copy.path / SOURCE, index=False)
    copy.dvc("add", "--quiet", SOURCE)
    (copy.path / "src" / PACKAGE / "core" / "schema.py").write_text(
        schema_module(frame), encoding="utf-8"
    )
    copy.set_params(FOREIGN_PARAMS)
    changed = copy.run("git", "status", "--porcelain").stdout.split("\n")
    edited = sorted({line[3:].strip() for line in changed if line.strip()})
    assert edited == sorted(
        ["data/external/.gitignore", f"{SOURCE}.dvc", "params.yaml",
         f"src/{PACKAGE}/core/schema.py"]
    ), f"the swap touched more than the data, the schema and params: {edited}"  # fmt: skip
    return copy


@pytest.fixture(scope="module")
def reproduced(repo: ProjectCopy) -> ProjectCopy:
    repo.make("repro")
    repo.commit("our data")
    return repo


def test_the_pipeline_runs_on_the_foreign_table(reproduced: ProjectCopy) -> None:
    summary = json.loads((reproduced.path / "reports" / "data_summary.json").read_text("utf-8"))
    assert summary["rows"] == len(biopsies())
    assert summary["schema"]["label"] == {
        "name": "diagnosis", "positive": "malignant", "negative": "benign",
    }  # fmt: skip
    metrics = json.loads((reproduced.path / "reports" / "metrics.json").read_text("utf-8"))
    assert metrics["ml"]["roc_auc"] > 0.9
    card = reproduced.card
    assert card.label == "diagnosis"
    assert card.positive == "malignant"
    assert "size_band" in card.features
    example = json.loads((reproduced.path / "examples" / "request.json").read_text("utf-8"))
    assert set(example["records"][0]) <= {*card.features}, "the example follows the new table"
    reproduced.make("gate")


def test_report_against_the_unmodified_base_explains_the_other_table(
    reproduced: ProjectCopy,
) -> None:
    proc = reproduced.make("report", "BASE=main")
    assert "Traceback" not in proc.stderr
    payload = json.loads((reproduced.path / "reports" / "pr_report.json").read_text("utf-8"))
    markdown = (reproduced.path / "reports" / "pr_report.md").read_text(encoding="utf-8")
    assert payload["not_comparable"].startswith("the two revisions learn from different tables")
    changes = payload["schema_changes"]
    assert "column `size_band` added (categorical, int64)" in changes
    assert "column `customer_id` removed" in changes
    assert any(change.startswith("label ") for change in changes)
    head = markdown.split("### Metrics")[0]
    assert "Not like-for-like" in head
    assert "Malignancy rate" in markdown, "the label noun comes from params"
    assert "**malignant**" in markdown
    table = markdown.split("### Metrics")[1].split("### Params changed")[0]
    assert "churn" not in table.lower(), "no label noun of the sample in the metrics table"
    gate = reproduced.make("gate", "BASE=main")
    assert "not like-for-like" in gate.stderr


def test_bento_serves_the_foreign_model(reproduced: ProjectCopy, tmp_path: Path) -> None:
    reproduced.make("bento")
    info = json.loads((reproduced.path / "build" / "bento.json").read_text(encoding="utf-8"))
    assert info["tag"].startswith("tumour_service:")
    assert info["model_tag"].startswith("tumour_model:")
    server = start_server(
        unpack_bento(reproduced.path / info["archive"], tmp_path / "bento"),
        tmp_path,
        BENTOML_CONTAINERIZED="true",
    )
    try:
        wait_server_ready(server)
        import httpx

        example = (reproduced.path / "examples" / "request.json").read_bytes()
        response = httpx.post(
            f"{server.url}/predict",
            content=example,
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        answers = response.json()
        records = json.loads(example)["records"]
        assert [a["row"] for a in answers] == list(range(len(records))), "no id: keyed by row"
        assert all(0.0 <= a["probability"] <= 1.0 for a in answers)
        assert {a["model_version"] for a in answers} == {reproduced.card.version}
        coded = {**records[0], "size_band": "2"}  # an integer-coded category is an integer
        bad = httpx.post(f"{server.url}/predict_one", json=coded, timeout=30)
        assert bad.status_code == 400
        assert ["size_band"] in [d["loc"] for d in bad.json()["detail"]]
    finally:
        stop_server(server)


def test_the_schema_driven_tiers_pass_in_the_copy(reproduced: ProjectCopy) -> None:
    proc = reproduced.python(
        "-m", "pytest", "-q", "-m", "(unit or data or model) and not sample", "tests", check=False
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    passed = re.search(r"(\d+) passed", proc.stdout)
    assert passed, proc.stdout[-2000:]
    assert int(passed.group(1)) >= 100, proc.stdout[-2000:]
