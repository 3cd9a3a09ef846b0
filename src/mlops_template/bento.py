"""`make bento`: package the DVC-tracked model and the service as a bento.

1. Load the model once through `model.load_model` (its sha256 must match the model card).
2. Collect its lineage (git commit, dvc.lock hashes, params, metrics) and check that the
   model, card and metrics in the workspace are the ones dvc.lock records.
3. Import model + card + lineage into the BentoML model store as `churn_model:<version>`,
   where version = the first 12 hex digits of the model's sha256 (replacing an entry of the
   same version, so its lineage is the current one).
4. Assemble the build context (`build/bento/`): the package, bentofile.yaml (with lineage
   labels added), requirements exported from uv.lock, a markdown model card, metrics, params,
   lineage and the example request.
5. `bentoml build` it as `churn_service:<version>`: the same model always gives the same
   bento version (a rebuild replaces it), and the bento carries the model.

Exports the bento, model included, to `build/churn_service.bento` (an xz tar archive: extract
it anywhere and `bentoml serve <dir>` works with an empty model store) and writes the bento's
tag, paths and lineage labels to `build/bento.json` for the container build.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mlops_template import cli, contract, storage
from mlops_template.lineage import Lineage, LineageError, collect, to_json
from mlops_template.model import ModelIntegrityError, load_model
from mlops_template.params import PARAMS_FILE, SAMPLE, Params
from mlops_template.service import (
    CARD_FILE,
    LINEAGE_FILE,
    MODEL_FILE,
    MODEL_NAME,
    MODEL_TAG_ENV,
    SERVICE_NAME,
)

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
BENTOFILE = "bentofile.yaml"
FILES_DIR = "bento_files"  # inside the bento: model card, metrics, params, lineage, example


def render_model_card(lineage: Lineage) -> str:
    """A short markdown model card from the model card json, metrics and params."""
    m, ml, money = lineage.model, lineage.metrics["ml"], lineage.metrics["business"]
    business = lineage.params["business"]
    data = lineage.params["data"]
    source = "built-in sample generator" if data["source"] == SAMPLE else data["source"]
    rows = [
        ("Model version", f"`{m.version}`"),
        ("Model sha256", f"`{m.sha256}`"),
        ("Estimator", f"{m.kind} (scikit-learn {m.sklearn_version})"),
        ("Training rows", f"{m.n_train:,}"),
        ("Training data", source),
        ("Git commit", f"`{lineage.git_commit}`" + (" (dirty)" if lineage.git_dirty else "")),
        ("dvc.lock sha256", f"`{lineage.dvc_lock_sha256}`"),
        ("Contact threshold", f"{m.threshold:.4f} (maximises expected profit)"),
        ("ROC AUC / PR AUC", f"{ml['roc_auc']:.4f} / {ml['pr_auc']:.4f}"),
        ("Precision / recall at threshold", f"{ml['precision']:.3f} / {ml['recall']:.3f}"),
        ("Expected profit on the test set", f"{money['expected_profit']:,.0f}"),
        ("  vs contacting everyone", f"{money['profit_vs_contact_all']:+,.0f}"),
        ("Share of customers contacted", f"{money['contact_rate']:.1%}"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return (
        f"# Churn model `{m.version}`\n\n"
        "Predicts the probability that a customer churns next quarter and whether a retention "
        "contact pays off (contact cost "
        f"{business['contact_cost']}, value of a kept customer {business['retained_value']}, "
        f"offer success rate {business['offer_success_rate']}).\n\n"
        "| | |\n|---|---|\n"
        f"{table}\n\n"
        "Intended use: ranking customers for a retention campaign. Inputs outside the schema "
        "(unknown categories, out-of-range numbers) are rejected, not scored. Files: "
        f"`{FILES_DIR}/metrics.json`, `{FILES_DIR}/params.yaml`, `{FILES_DIR}/lineage.json`, "
        f"`{FILES_DIR}/example_request.json`.\n"
    )


def import_model(model_path: Path, card_path: Path, lineage: Lineage) -> str:
    """Put model + card + lineage in the BentoML model store; return the model tag."""
    import bentoml
    from bentoml.exceptions import NotFound

    tag = f"{MODEL_NAME}:{lineage.model.version}"
    try:
        bentoml.models.delete(tag)
        log.info("replacing %s in the model store", tag)
    except NotFound:
        pass
    labels = {"model_sha256": lineage.model.sha256, "git_commit": lineage.git_commit or "none"}
    with bentoml.models.create(
        tag, labels=labels, metadata={"threshold": lineage.model.threshold}
    ) as stored:
        target = Path(stored.path)
        shutil.copyfile(model_path, target / MODEL_FILE)
        shutil.copyfile(card_path, target / CARD_FILE)
        (target / LINEAGE_FILE).write_text(to_json(lineage), encoding="utf-8")
    return tag


def stage_context(
    context: Path, root: Path, params_path: Path, requirements: Path, lineage: Lineage
) -> None:
    """Fill the build context with everything the bento must carry."""
    if context.exists():
        shutil.rmtree(context)
    package = context / PACKAGE_DIR.name
    shutil.copytree(PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    files = context / FILES_DIR
    files.mkdir(parents=True)
    shutil.copyfile(root / lineage_metrics_path(lineage), files / "metrics.json")
    shutil.copyfile(params_path, files / PARAMS_FILE)
    shutil.copyfile(root / contract.EXAMPLE_REQUEST, files / "example_request.json")
    (files / "lineage.json").write_text(to_json(lineage), encoding="utf-8")
    (context / "MODEL_CARD.md").write_text(render_model_card(lineage), encoding="utf-8")
    shutil.copyfile(requirements, context / "requirements.txt")
    bentofile: dict[str, Any] = yaml.safe_load((root / BENTOFILE).read_text(encoding="utf-8"))
    bentofile.setdefault("labels", {}).update(bento_labels(lineage))
    (context / BENTOFILE).write_text(yaml.safe_dump(bentofile, sort_keys=False), encoding="utf-8")


def lineage_metrics_path(lineage: Lineage) -> str:
    return str(lineage.params["paths"]["metrics"])


def bento_labels(lineage: Lineage) -> dict[str, str]:
    ml = lineage.metrics["ml"]
    return {
        "model_version": lineage.model.version,
        "model_sha256": lineage.model.sha256,
        "git_commit": lineage.git_commit or "none",
        "dvc_lock_sha256": lineage.dvc_lock_sha256,
        "roc_auc": f"{ml['roc_auc']:.4f}",
        "pr_auc": f"{ml['pr_auc']:.4f}",
        "threshold": f"{lineage.model.threshold:.4f}",
    }


def build(context: Path, model_tag: str, version: str) -> str:
    """Run `bentoml build` on the context; replace a bento of the same version."""
    import bentoml
    from bentoml.exceptions import NotFound

    bento_tag = f"{SERVICE_NAME}:{version}"
    try:
        bentoml.bentos.delete(bento_tag)
        log.info("replacing bento %s", bento_tag)
    except NotFound:
        pass
    env = {**os.environ, MODEL_TAG_ENV: model_tag}
    cmd = [sys.executable, "-m", "bentoml", "build", str(context), "--version", version]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise storage.InputError(f"bentoml build failed:\n{done.stdout}\n{done.stderr}")
    bento = bentoml.bentos.get(bento_tag)
    carried = [str(m.tag) for m in bento.info.all_models]
    if model_tag not in carried:
        raise storage.InputError(f"bento {bento_tag} carries {carried}, not {model_tag}")
    return bento_tag


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--requirements",
        required=True,
        type=Path,
        help="runtime requirements exported from uv.lock",
    )
    p.add_argument("--context", default="build/bento", type=Path, help="build context dir")
    p.add_argument(
        "--out",
        default="build/bento.json",
        type=Path,
        help="where to write the bento's tag and path",
    )
    p.add_argument(
        "--export",
        default="build/churn_service.bento",
        type=Path,
        help="self-contained bento archive (model included)",
    )


def _main(args: argparse.Namespace, params: Params) -> None:
    root = Path.cwd()
    model_path, card_path = root / params.paths.model, root / params.paths.model_card
    load_model(model_path, card_path)  # hash check + the file really unpickles
    lineage = collect(root, params)
    model_tag = import_model(model_path, card_path, lineage)
    log.info("imported %s into the model store", model_tag)
    stage_context(args.context, root, Path(args.params), args.requirements, lineage)
    bento_tag = build(args.context, model_tag, lineage.model.version)
    import bentoml

    path = bentoml.bentos.get(bento_tag).path
    args.export.parent.mkdir(parents=True, exist_ok=True)
    args.export.unlink(missing_ok=True)
    bentoml.export_bento(bento_tag, str(args.export.resolve()))
    info = {
        "tag": bento_tag,
        "path": str(path),
        "archive": str(args.export),
        "model_tag": model_tag,
        **bento_labels(lineage),
    }
    storage.write_json(args.out, info)
    log.info("built bento %s at %s; exported to %s", bento_tag, path, args.export)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(
        "bento", _args, _main, __doc__, argv, extra_errors=(LineageError, ModelIntegrityError)
    )


if __name__ == "__main__":
    raise SystemExit(main())
