"""Typed, frozen view of params.yaml: every knob of the pipeline, declared once.

`load_params` reads the file once per process. Unknown keys, wrong types and missing keys
are errors that name the offending key (and, for unknown keys, the allowed ones), so a typo
never turns into a silently used default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlops_template.core import catalog
from mlops_template.core.errors import ParamsError
from mlops_template.core.repo import PARAMS_FILE
from mlops_template.core.schema import TABLE

Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
SAMPLE = "sample"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Project(_Frozen):
    """What this project is called; every name the service, image and reports show."""

    # Names the service (`<name>_service`), the model in BentoML's store (`<name>_model`) and
    # the image (`<name>-service`). `make rename` changes it with the package name.
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
    label_noun: str  # what the label is about, in reports: "fraud" -> "Fraud rate"
    positive_name: str  # a positive label in words ("fraudulent"), e.g. in confusion tables
    negative_name: str  # a negative label in words ("stayed")

    @property
    def service_name(self) -> str:
        return f"{self.name}_service"

    @property
    def model_name(self) -> str:
        return f"{self.name}_model"

    @property
    def image_name(self) -> str:
        return f"{self.name.replace('_', '-')}-service"


class Paths(_Frozen):
    """Where each stage reads and writes. dvc.yaml fills its commands from these."""

    raw: str
    validated: str
    data_summary: str
    validation_errors: str
    train: str
    test: str
    model: str
    model_card: str
    metrics: str
    plots: str
    example: str  # the example request (written by the example stage, git-tracked)
    pr_report: str  # the pull-request report (markdown), `make report`
    pr_report_json: str  # its machine-readable twin


class Data(_Frozen):
    # "sample" for the built-in generator, or a path / URL to a .csv or .parquet file.
    source: str
    # The built-in generator's knobs (see `mlops_template.sample`): needed only when
    # `source` is "sample", and checked by the generator itself (any typo is an error).
    sample: Annotated[dict[str, Any], Field(strict=False)] | None = None

    @property
    def uses_sample(self) -> bool:
        return self.source == SAMPLE

    @model_validator(mode="after")
    def _sample_given_when_used(self) -> Self:
        if self.uses_sample and self.sample is None:
            raise ValueError("data.sample is required when data.source is 'sample'")
        return self


class Split(_Frozen):
    test_size: Fraction
    seed: Seed
    stratify: bool


class HistGradientBoosting(_Frozen):
    learning_rate: Annotated[float, Field(gt=0.0, le=1.0)]
    max_iter: Annotated[int, Field(ge=1)]
    max_leaf_nodes: Annotated[int, Field(ge=2)]
    min_samples_leaf: Annotated[int, Field(ge=1)]
    l2_regularization: Annotated[float, Field(ge=0.0)]


class LogisticRegression(_Frozen):
    C: Annotated[float, Field(gt=0.0)]
    max_iter: Annotated[int, Field(ge=1)]


class Model(_Frozen):
    kind: Literal["hist_gradient_boosting", "logistic_regression"]
    seed: Seed
    # Domain knowledge the gradient-boosting model must respect: +1 means the probability of
    # the positive label may only rise with the column, -1 only fall. Numeric, boolean or
    # ordered categorical columns only.
    monotonic: Annotated[dict[str, Literal[-1, 1]], Field(strict=False)]
    # Threads for fitting. The model file's bytes depend on it (floating-point sums run in
    # another order), so it is a param: same data + params + seed => byte-identical model.
    n_threads: Annotated[int, Field(ge=1, le=256)]
    hist_gradient_boosting: HistGradientBoosting
    logistic_regression: LogisticRegression

    @model_validator(mode="after")
    def _monotonic_columns_exist(self) -> Self:
        allowed = TABLE.ordered_features
        unknown = [c for c in self.monotonic if c not in allowed]
        if unknown:
            raise ValueError(
                f"monotonic columns {unknown} are not numeric, boolean or ordered features "
                f"(allowed: {', '.join(allowed)})"
            )
        return self


class Business(_Frozen):
    """The decision in money: what acting on (contacting) a record costs and what it earns.

    A contact costs `contact_cost`. When the record is positive, the contact succeeds with
    probability `success_rate` and is then worth `success_value`; on a negative record it
    only costs.
    """

    contact_cost: Annotated[float, Field(ge=0.0)]
    success_value: Annotated[float, Field(gt=0.0)]
    success_rate: Annotated[float, Field(gt=0.0, le=1.0)]


class Threshold(_Frozen):
    cv_folds: Annotated[int, Field(ge=2, le=20)]


class Evaluate(_Frozen):
    # YAML gives a list; accept it (strict mode alone would demand a tuple).
    segments: Annotated[tuple[str, ...], Field(strict=False)]
    # A segment is scored (and gated) only with at least this many rows, and at least
    # `min_segment_class_count` rows of each label value: a ROC AUC from 1 positive is noise.
    min_segment_size: Annotated[int, Field(ge=1)]
    min_segment_class_count: Annotated[int, Field(ge=1)]
    calibration_bins: Annotated[int, Field(ge=2, le=100)]
    importance_repeats: Annotated[int, Field(ge=1)]
    importance_max_rows: Annotated[int, Field(ge=100)]
    curve_points: Annotated[int, Field(ge=10, le=10_000)]

    @model_validator(mode="after")
    def _segments_are_columns(self) -> Self:
        unknown = [s for s in self.segments if s not in TABLE.segment_columns]
        if unknown:
            raise ValueError(
                f"segments {unknown} are not categorical or boolean columns of the schema "
                f"(allowed: {', '.join(TABLE.segment_columns)})"
            )
        return self


class Example(_Frozen):
    """The example request (`paths.example`), drawn from the test set."""

    n_records: Annotated[int, Field(ge=1, le=100)]
    seed: Seed


class Report(_Frozen):
    """The pull-request report."""

    importance_top_n: Annotated[int, Field(ge=1, le=100)]  # features in the importance chart


class Tolerance(_Frozen):
    """How much worse than the base a metric may get: `absolute` in the metric's own units or
    `relative` as a share of the base value (0.01 = 1 %). Exactly one of the two."""

    absolute: Annotated[float, Field(ge=0.0)] | None = None
    relative: Annotated[float, Field(ge=0.0, le=1.0)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.absolute is None) == (self.relative is None):
            raise ValueError("give exactly one of 'absolute' or 'relative'")
        return self

    def allowed(self, base: float) -> float:
        """The largest allowed worsening against a base value of `base`."""
        return self.absolute if self.absolute is not None else (self.relative or 0.0) * abs(base)


class Gate(_Frozen):
    """What a model must achieve before it may ship."""

    # Per metric (dotted key in metrics.json): the worst value a model may have. A floor for
    # metrics where higher is better, a ceiling where lower is better (brier, log_loss).
    floors: Annotated[dict[str, float], Field(strict=False)]
    must_beat_contact_all: bool
    must_beat_contact_none: bool
    # Per segment column: the largest allowed ROC AUC gap between its best and worst segment.
    # Columns left out are reported but not guarded (see params.yaml).
    max_segment_roc_auc_gap: Annotated[
        dict[str, Annotated[float, Field(ge=0.0, le=1.0)]], Field(strict=False)
    ]
    # Against a base revision (`make gate BASE=main`, `make report`): how far each metric may
    # get worse than on the base, keyed by its dotted name in metrics.json.
    max_regression: Annotated[dict[str, Tolerance], Field(strict=False)]
    # Largest allowed ROC AUC drop of any one segment against the base.
    max_segment_roc_auc_drop: Annotated[float, Field(ge=0.0, le=1.0)]
    # When the base revision's table has other columns or another label (README, "The
    # gate"): "floors_only" applies the floors and reports the comparison as not
    # like-for-like; "fail" fails the gate until a reviewer changes this on purpose.
    on_schema_change: Literal["floors_only", "fail"]

    @model_validator(mode="after")
    def _keys_are_metrics(self) -> Self:
        for name, keys in (("floors", self.floors), ("max_regression", self.max_regression)):
            unknown = [k for k in keys if k not in catalog.GUARDABLE]
            if unknown:
                raise ValueError(
                    f"{name} keys {unknown} are not metrics with a better direction "
                    f"(allowed: {', '.join(catalog.GUARDABLE)})"
                )
        return self


class Params(_Frozen):
    project: Project
    paths: Paths
    data: Data
    split: Split
    model: Model
    business: Business
    threshold: Threshold
    evaluate: Evaluate
    example: Example
    report: Report
    gate: Gate

    @model_validator(mode="after")
    def _gap_columns_are_segments(self) -> Self:
        unknown = [c for c in self.gate.max_segment_roc_auc_gap if c not in self.evaluate.segments]
        if unknown:
            raise ValueError(
                f"gate.max_segment_roc_auc_gap columns {unknown} are not in evaluate.segments "
                f"({', '.join(self.evaluate.segments)})"
            )
        return self


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel]:
    """The params model that owns the key at `loc` (for listing the allowed keys)."""
    model: type[BaseModel] = Params
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            break
        model = ann
    return model


def _describe(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(_model_at(err["loc"][:-1]).model_fields)
        return f"unknown key '{loc}' (allowed here: {allowed})"
    if err["type"] == "missing":
        return f"missing key '{loc}'"
    return f"'{loc}': {err['msg']} (got {err.get('input')!r})"


def parse_params(raw: Any, *, origin: str = "params") -> Params:
    """Validate a mapping (as read from YAML) into `Params`."""
    if not isinstance(raw, dict):
        raise ParamsError(
            f"{origin}: expected a mapping at the top level, got {type(raw).__name__}"
        )
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "\n  - ".join(_describe(e) for e in exc.errors())
        raise ParamsError(f"{origin} is invalid:\n  - {problems}") from None


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml (or another file of the same shape)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"params file not found: {path}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    return parse_params(raw, origin=str(path))
