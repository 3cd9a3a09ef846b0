"""`make bento`: package the DVC-tracked model and the service as a bento.

1. Load the model once through `model.load_model` (its sha256 must match the model card).
2. Collect its lineage (git commit, dvc.lock hashes, params, metrics) and check that the
   model, card and metrics in the workspace are the ones dvc.lock records.
3. Import model + card + lineage into the BentoML model store as `<project>_model:<version>`,
   where version = the first 12 hex digits of the model's sha256 (replacing an entry of the
   same version, so its lineage is the current one).
4. Assemble the build context (`build/bento/`): only the code serving needs (`core/*.py` and
   `serving/*.py`, see `SERVING_CODE`; not `serving/build`), bentofile.yaml (named from
   params.yaml `project`, with lineage labels added), params.yaml, requirements exported from
   uv.lock, a markdown model card, metrics, lineage, the example request and, when `make audit`
   made one for this model, the audit pack.
5. `bentoml build` it as `<project>_service:<version>`: the same model always gives the same
   bento version (a rebuild replaces it), and the bento carries the model.

With `--challenger` (`make bento CHALLENGER=...`: a model file whose card sits next to it
under the card's file name, a directory holding both, or a tag in the BentoML model store),
the bento also carries a **shadow challenger**: checked like the champion (`load_model`: its
sha256 against its card, its features against the schema), imported as
`<project>_challenger:<version>` with its card's sha256 in the entry's metadata, and named in
`bento_files/serving_models.json` next to the champion. The bento is then
`<project>_service:<champion>-shadow-<challenger>`, labelled with the challenger's version.

Exports the bento, model included, to `build/bento.bento` (an xz tar archive: extract it
anywhere and `bentoml serve <dir>` works with an empty model store) and writes the bento's
tag, paths and lineage labels to `build/bento.json` for the container build.

Nothing good is lost to a failed run: a store entry or bento of the same version is moved
aside while its replacement is made and put back if that fails (`_replacing`); the archive
is exported under a temporary name and renamed onto `build/bento.bento`, and `build/bento.json`
is written last, so both keep describing the previous bento until the new one exists.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from mlops_template.core import audit_pack, catalog, cli
from mlops_template.core import io as files
from mlops_template.core.errors import InputError
from mlops_template.core.lineage import Lineage, collect
from mlops_template.core.model import CARD_FILE, MODEL_FILE, ModelCard, load_model
from mlops_template.core.params import Params, Project
from mlops_template.core.repo import PARAMS_FILE
from mlops_template.core.schema import TABLE
from mlops_template.serving.service import (
    CARD_SHA256_KEY,
    CHALLENGER_MODEL_NAME,
    CHALLENGER_TAG_ENV,
    LINEAGE_FILE,
    LINEAGE_SHA256_KEY,
    MODEL_TAG_ENV,
    SERVING_MODELS_FILE,
)

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[2]  # src/<package>
# The code a bento carries, relative to the package: what serving imports, nothing else
# (tests/serving checks that the service imports nothing outside it).
SERVING_CODE = ("__init__.py", "core/*.py", "serving/*.py")
BENTOFILE = "bentofile.yaml"
FILES_DIR = SERVING_MODELS_FILE.parent.as_posix()  # in the bento: metrics, lineage, example, tags
METRICS_FILE = "metrics.json"  # in FILES_DIR: paths.metrics of the build
EXAMPLE_FILE = "example_request.json"  # in FILES_DIR: paths.example, the one example request
SHADOW = "-shadow-"  # between the champion's and the challenger's versions in a bento's version


def render_model_card(
    lineage: Lineage, project: Project, challenger: ModelCard | None = None
) -> str:
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
    if challenger is not None:
        rows.append(
            (
                "Shadow challenger",
                f"`{challenger.version}` ({challenger.kind}, threshold "
                f"{challenger.threshold:.4f}): scored and logged, never answered",
            )
        )
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
        f"not scored. Files: `{FILES_DIR}/{METRICS_FILE}`, `{PARAMS_FILE}`, "
        f"`{FILES_DIR}/{LINEAGE_FILE}`, `{FILES_DIR}/{EXAMPLE_FILE}`.\n"
    )


def sha256_text(text: str) -> str:
    return files.sha256_bytes(text.encode("utf-8"))


def _stored_path(kind: str, tag: str) -> Path | None:
    """Where the model store (`kind` "model") or the bento store ("bento") keeps `tag`."""
    import bentoml
    from bentoml.exceptions import NotFound

    store = bentoml.models if kind == "model" else bentoml.bentos
    try:
        return Path(store.get(tag).path)
    except NotFound:
        return None


@contextlib.contextmanager
def _replacing(kind: str, tag: str) -> Iterator[None]:
    """Make a new `tag` in the block while the store's current one is moved aside: it is put
    back when the block fails (the new one, if any, removed first) and deleted once it
    succeeds. A failed build so never loses the entry or bento that was there."""
    current = _stored_path(kind, tag)
    if current is None:
        yield
        return
    home = current.parents[2]  # BENTOML_HOME: the same file system as the store
    aside = Path(tempfile.mkdtemp(prefix=f".replacing-{kind}-", dir=home)) / current.name
    current.rename(aside)
    try:
        yield
    except BaseException:
        shutil.rmtree(current, ignore_errors=True)  # a half-made new one
        aside.rename(current)
        raise
    finally:
        shutil.rmtree(aside.parent, ignore_errors=True)  # empty when it was put back
    log.info("replaced %s %s", kind, tag)


def import_model(model_path: Path, card_path: Path, lineage: Lineage, project: Project) -> str:
    """Put model + card + lineage in the BentoML model store; return the model tag."""
    import bentoml

    tag = f"{project.model_name}:{lineage.model.version}"
    labels = {"model_sha256": lineage.model.sha256, "git_commit": lineage.git_commit or "none"}
    text = lineage.to_json()
    # The service checks the lineage file against this hash (and the card against the lineage).
    metadata = {"threshold": lineage.model.threshold, LINEAGE_SHA256_KEY: sha256_text(text)}
    with (
        _replacing("model", tag),
        bentoml.models.create(tag, labels=labels, metadata=metadata) as stored,
    ):
        target = Path(stored.path)
        shutil.copyfile(model_path, target / MODEL_FILE)
        shutil.copyfile(card_path, target / CARD_FILE)
        (target / LINEAGE_FILE).write_text(text, encoding="utf-8")
    return tag


def stage_context(
    context: Path, root: Path, params_path: Path, requirements: Path, lineage: Lineage,
    project: Project, tags: dict[str, str | None], audit_out_dir: str,
    challenger: ModelCard | None = None,
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
    shutil.copyfile(root / lineage.params["paths"]["metrics"], extra / METRICS_FILE)
    shutil.copyfile(root / lineage.params["paths"]["example"], extra / EXAMPLE_FILE)
    (extra / LINEAGE_FILE).write_text(lineage.to_json(), encoding="utf-8")
    attach_audit_pack(root / audit_pack.directory(audit_out_dir, None), lineage, extra)
    files.write_json(context / SERVING_MODELS_FILE, tags)  # which models the service loads
    # At the context's root: the service reads project names from it when imported.
    shutil.copyfile(params_path, context / PARAMS_FILE)
    card_md = render_model_card(lineage, project, challenger)
    (context / "MODEL_CARD.md").write_text(card_md, encoding="utf-8")
    shutil.copyfile(requirements, context / "requirements.txt")
    bentofile: dict[str, Any] = yaml.safe_load((root / BENTOFILE).read_text(encoding="utf-8"))
    bentofile["name"] = project.service_name
    bentofile.setdefault("labels", {}).update(bento_labels(lineage, challenger))
    (context / BENTOFILE).write_text(yaml.safe_dump(bentofile, sort_keys=False), encoding="utf-8")


def attach_audit_pack(pack: Path, lineage: Lineage, extra: Path) -> bool:
    """Copy the work tree's audit pack (`pack`: `make audit`'s directory) into the bento when
    it describes this very model and commit (`make audit` before `make bento`, as the release
    does); else say so and go on."""
    try:
        facts = files.read_json(pack / audit_pack.FACTS)
    except InputError:
        log.warning("no audit pack in %s: run `make audit` before `make bento` to carry one", pack)
        return False
    model = facts.get("model") or {}
    if model.get("sha256") != lineage.model.sha256 or facts.get("commit") != lineage.git_commit:
        log.warning("the audit pack in %s is of another model or commit: not carried", pack)
        return False
    for name in audit_pack.CARRIED:
        shutil.copyfile(pack / name, extra / name)
    return True


def bento_labels(lineage: Lineage, challenger: ModelCard | None = None) -> dict[str, str]:
    labels = {
        "model_version": lineage.model.version,
        "model_sha256": lineage.model.sha256,
        "git_commit": lineage.git_commit or "none",
        "dvc_lock_sha256": lineage.dvc_lock_sha256,
    }
    if challenger is not None:
        labels["challenger_version"] = challenger.version
        labels["challenger_sha256"] = challenger.sha256
    for key in catalog.HEADLINE:
        value = catalog.value(lineage.metrics, key)
        labels[key.replace(".", "_")] = "" if value is None else f"{value:.6g}"
    return labels


def challenger_files(spec: str, params: Params) -> tuple[Path, Path, str]:
    """The challenger's model file and card, and where they came from, for CHALLENGER=`spec`:
    a model file (its card next to it, named like `paths.model_card`), a directory holding
    both (named like `paths.model` and `paths.model_card`), or a BentoML model store tag."""
    model_name, card_name = Path(params.paths.model).name, Path(params.paths.model_card).name
    path = Path(spec).expanduser()
    if path.is_dir():
        found = (path / model_name, path / card_name, str(path.resolve()))
    elif path.is_file():
        found = (path, path.with_name(card_name), str(path.resolve()))
    else:
        import bentoml
        from bentoml.exceptions import BentoMLException

        try:
            stored = bentoml.models.get(spec)
        except (BentoMLException, ValueError):
            raise InputError(
                f"CHALLENGER={spec}: neither a model file, a directory with {model_name} and "
                f"{card_name}, nor a model in the BentoML store ({os.environ.get('BENTOML_HOME')})"
            ) from None
        entry = Path(stored.path)
        found = (entry / MODEL_FILE, entry / CARD_FILE, f"bentoml:{stored.tag}")
    for needed, what in ((found[0], "its model file"), (found[1], "its model card")):
        if not needed.is_file():
            raise InputError(
                f"CHALLENGER={spec}: {what} {needed} does not exist (a model file needs its card "
                f"next to it, named {card_name}; a directory holds {model_name} and {card_name})"
            )
    return found


def import_challenger(
    model_path: Path, card_path: Path, source: str, champion: ModelCard
) -> tuple[str, ModelCard]:
    """Check the challenger like the champion (`load_model`) and put model + card in the
    store as `<project>_challenger:<version>`, its card's sha256 in the metadata. The files
    are copied aside first: the source may be the very store entry being replaced."""
    import bentoml

    with tempfile.TemporaryDirectory(prefix="challenger-") as tmp:
        model_copy, card_copy = Path(tmp) / MODEL_FILE, Path(tmp) / CARD_FILE
        shutil.copyfile(model_path, model_copy)
        shutil.copyfile(card_path, card_copy)
        card = load_model(model_copy, card_copy).card  # sha256 against its card, schema fit
        if card.sha256 == champion.sha256:
            raise InputError(f"CHALLENGER {source} is the champion itself ({card.version})")
        tag = f"{CHALLENGER_MODEL_NAME}:{card.version}"
        metadata = {
            CARD_SHA256_KEY: files.sha256_file(card_copy),
            "threshold": card.threshold,
            "source": source,
        }
        labels = {"model_sha256": card.sha256, "role": "challenger"}
        with (
            _replacing("model", tag),
            bentoml.models.create(tag, labels=labels, metadata=metadata) as stored,
        ):
            target = Path(stored.path)
            shutil.copyfile(model_copy, target / MODEL_FILE)
            shutil.copyfile(card_copy, target / CARD_FILE)
    return tag, card


def build(
    context: Path, model_tag: str, version: str, project: Project, challenger_tag: str | None = None
) -> str:
    """Run `bentoml build` on the context; replace a bento of the same version only once the
    new one is built and carries the right models (`_replacing`)."""
    import bentoml

    bento_tag = f"{project.service_name}:{version}"
    env = {**os.environ, MODEL_TAG_ENV: model_tag, CHALLENGER_TAG_ENV: challenger_tag or ""}
    cmd = [sys.executable, "-m", "bentoml", "build", str(context), "--version", version]
    with _replacing("bento", bento_tag):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise InputError(f"bentoml build failed:\n{done.stdout}\n{done.stderr}")
        bento = bentoml.bentos.get(bento_tag)
        carried = sorted(str(m.tag) for m in bento.info.all_models)
        wanted = sorted(t for t in (model_tag, challenger_tag) if t)
        if carried != wanted:
            raise InputError(f"bento {bento_tag} carries {carried}, not {wanted}")
    return bento_tag


def export(bento_tag: str, target: Path) -> None:
    """`bentoml export` to `target`, through a temporary name: the previous archive stays
    whole until the new one is complete."""
    import bentoml

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as tmp:
        staged = (Path(tmp) / target.name).resolve()  # BentoML names the file as asked
        written = Path(bentoml.export_bento(bento_tag, str(staged)))
        if written != staged:
            raise InputError(f"bentoml export wrote {written}, not {staged}")
        files.write_bytes(target, lambda out: staged.replace(out))


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
        "--challenger",
        default="",
        help="shadow challenger: a model file (card next to it), a directory, or a store tag",
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
    challenger_tag, challenger, version = None, None, lineage.model.version
    if args.challenger:
        shadow_model, shadow_card, source = challenger_files(args.challenger, params)
        challenger_tag, challenger = import_challenger(
            shadow_model, shadow_card, source, lineage.model
        )
        version = f"{version}{SHADOW}{challenger.version}"
        log.info("imported shadow challenger %s (from %s)", challenger_tag, source)
    tags = {"champion": model_tag, "challenger": challenger_tag}
    stage_context(
        args.context, root, Path(args.params), args.requirements, lineage, project, tags,
        params.audit.out_dir, challenger,
    )  # fmt: skip
    bento_tag = build(args.context, model_tag, version, project, challenger_tag)
    path = _stored_path("bento", bento_tag)
    export(bento_tag, args.export)
    info = {
        "tag": bento_tag,
        "path": str(path),
        "archive": str(args.export),
        "model_tag": model_tag,
        "challenger_tag": challenger_tag,
        **bento_labels(lineage, challenger),
    }
    files.write_json(args.out, info)
    log.info("built bento %s at %s; exported to %s", bento_tag, path, args.export)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("bento", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
