"""`make bento`: package the DVC-tracked model and the service as a bento.

1. Load the model once through `model.load_model` (its sha256 must match the model card).
2. Collect its lineage (git commit, dvc.lock hashes, params, metrics) and check that the
   model, card and metrics in the workspace are the ones dvc.lock records.
3. Import model + card + lineage into the BentoML model store as `<project>_model:<version>`,
   where version = the first 12 hex digits of the model's sha256 (replacing an entry of the
   same version, so its lineage is the current one).
4. Assemble the build context (`build/bento/`): only the code serving needs (`core` and
   `serving/{contract,service}.py`), bentofile.yaml (named from params.yaml `project`, with
   lineage labels added), params.yaml, requirements exported from uv.lock, a markdown model
   card, metrics, lineage and the example request.
5. `bentoml build` it as `<project>_service:<version>`: the same model always gives the same
   bento version (a rebuild replaces it), and the bento carries the model.

Exports the bento, model included, to `build/bento.bento` (an xz tar archive: extract it
anywhere and `bentoml serve <dir>` works with an empty model store) and writes the bento's
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

from mlops_template.core import catalog, cli
from mlops_template.core import io as files
from mlops_template.core.errors import InputError
from mlops_template.core.lineage import Lineage, collect
from mlops_template.core.model import load_model
from mlops_template.core.params import Params, Project
from mlops_template.core.repo import PARAMS_FILE
from mlops_template.core.schema import TABLE
from mlops_template.serving.service import CARD_FILE, LINEAGE_FILE, MODEL_FILE, MODEL_TAG_ENV

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[2]  # src/<package>
# The code a bento carries, relative to the package: what serving imports, nothing else
# (tests/serving checks that the service imports nothing outside it).
SERVING_CODE = ("__init__.py", "core/*.py", "serving/__init__.py", "serving/contract.py",
                "serving/service.py")  # fmt: skip
BENTOFILE = "bentofile.yaml"
FILES_DIR = "bento_files"  # inside the bento: metrics, lineage, example request


def render_model_card(lineage: Lineage, project: Project) -> str:
    """A short markdown model card from the model card, metrics and params."""
    m = lineage.model
    data = lineage.params["data"]
    money = lineage.params["business"]
    source = "built-in sample generator" if data["source"] == "sample" else data["source"]
    label = TABLE.label
    headline = [
        (
            catalog.BY_KEY[k].title(project.label_noun),
            catalog.BY_KEY[k].show(catalog.value(lineage.metrics, k)),
        )
        for k in catalog.KEY_METRICS
    ]
    rows = [
        ("Model version", f"`{m.version}`"),
        ("Model sha256", f"`{m.sha256}`"),
        ("Estimator", f"{m.kind} (scikit-learn {m.sklearn_version})"),
        ("Predicts", f"P({label.name} = {label.positive!r}): {label.description}"),
        ("Training rows", f"{m.n_train:,}"),
        ("Training data", source),
        ("Git commit", f"`{lineage.git_commit}`" + (" (dirty)" if lineage.git_dirty else "")),
        ("dvc.lock sha256", f"`{lineage.dvc_lock_sha256}`"),
        *headline,
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return (
        f"# {project.service_name} `{m.version}`\n\n"
        f"Scores records of the `{TABLE.name}` table with the probability that "
        f"{project.label_noun} happens ({label.name} = {label.positive!r}) and decides whether "
        f"a contact pays off (contact cost {money['contact_cost']}, value of a success "
        f"{money['success_value']}, success rate {money['success_rate']}).\n\n"
        "| | |\n|---|---|\n"
        f"{table}\n\n"
        "Inputs outside the schema (unknown categories, out-of-range numbers) are rejected, "
        f"not scored. Files: `{FILES_DIR}/metrics.json`, `{PARAMS_FILE}`, "
        f"`{FILES_DIR}/lineage.json`, `{FILES_DIR}/example_request.json`.\n"
    )


def import_model(model_path: Path, card_path: Path, lineage: Lineage, project: Project) -> str:
    """Put model + card + lineage in the BentoML model store; return the model tag."""
    import bentoml
    from bentoml.exceptions import NotFound

    tag = f"{project.model_name}:{lineage.model.version}"
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
        (target / LINEAGE_FILE).write_text(lineage.to_json(), encoding="utf-8")
    return tag


def stage_context(
    context: Path, root: Path, params_path: Path, requirements: Path, lineage: Lineage,
    project: Project,
) -> None:  # fmt: skip
    """Fill the build context with everything the bento must carry, and nothing more."""
    if context.exists():
        shutil.rmtree(context)
    package = context / PACKAGE_DIR.name
    for pattern in SERVING_CODE:
        for source in sorted(PACKAGE_DIR.glob(pattern)):
            target = package / source.relative_to(PACKAGE_DIR)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    extra = context / FILES_DIR
    extra.mkdir(parents=True)
    shutil.copyfile(root / lineage.params["paths"]["metrics"], extra / "metrics.json")
    shutil.copyfile(root / lineage.params["paths"]["example"], extra / "example_request.json")
    (extra / "lineage.json").write_text(lineage.to_json(), encoding="utf-8")
    # At the context's root: the service reads project names from it when imported.
    shutil.copyfile(params_path, context / PARAMS_FILE)
    (context / "MODEL_CARD.md").write_text(render_model_card(lineage, project), encoding="utf-8")
    shutil.copyfile(requirements, context / "requirements.txt")
    bentofile: dict[str, Any] = yaml.safe_load((root / BENTOFILE).read_text(encoding="utf-8"))
    bentofile["name"] = project.service_name
    bentofile.setdefault("labels", {}).update(bento_labels(lineage))
    (context / BENTOFILE).write_text(yaml.safe_dump(bentofile, sort_keys=False), encoding="utf-8")


def bento_labels(lineage: Lineage) -> dict[str, str]:
    labels = {
        "model_version": lineage.model.version,
        "model_sha256": lineage.model.sha256,
        "git_commit": lineage.git_commit or "none",
        "dvc_lock_sha256": lineage.dvc_lock_sha256,
    }
    for key in catalog.HEADLINE:
        value = catalog.value(lineage.metrics, key)
        labels[key.replace(".", "_")] = "" if value is None else f"{value:.6g}"
    return labels


def build(context: Path, model_tag: str, version: str, project: Project) -> str:
    """Run `bentoml build` on the context; replace a bento of the same version."""
    import bentoml
    from bentoml.exceptions import NotFound

    bento_tag = f"{project.service_name}:{version}"
    try:
        bentoml.bentos.delete(bento_tag)
        log.info("replacing bento %s", bento_tag)
    except NotFound:
        pass
    env = {**os.environ, MODEL_TAG_ENV: model_tag}
    cmd = [sys.executable, "-m", "bentoml", "build", str(context), "--version", version]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise InputError(f"bentoml build failed:\n{done.stdout}\n{done.stderr}")
    bento = bentoml.bentos.get(bento_tag)
    carried = [str(m.tag) for m in bento.info.all_models]
    if model_tag not in carried:
        raise InputError(f"bento {bento_tag} carries {carried}, not {model_tag}")
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
        default="build/bento.bento",
        type=Path,
        help="self-contained bento archive (model included)",
    )


def _main(args: argparse.Namespace, params: Params) -> None:
    root = Path.cwd()
    model_path, card_path = root / params.paths.model, root / params.paths.model_card
    load_model(model_path, card_path)  # hash check + the file really unpickles
    lineage = collect(root, params)
    project = params.project
    model_tag = import_model(model_path, card_path, lineage, project)
    log.info("imported %s into the model store", model_tag)
    stage_context(args.context, root, Path(args.params), args.requirements, lineage, project)
    bento_tag = build(args.context, model_tag, lineage.model.version, project)
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
    files.write_json(args.out, info)
    log.info("built bento %s at %s; exported to %s", bento_tag, path, args.export)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("bento", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
