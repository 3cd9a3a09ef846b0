"""Typed, frozen view of params.yaml: every knob of the pipeline, declared once.

`load_params` reads the file once per process. Unknown keys, wrong types and missing keys
are errors that name the offending key (and, for unknown keys, the allowed ones), so a typo
never turns into a silently used default.
"""

from __future__ import annotations

import os
import re
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
LOG_DIR_ENV = "MLOPS_LOG_DIR"  # overrides service.log_dir (containers)


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
    live: str  # DVCLive's directory of the evaluate stage (threshold and iteration curves)
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
    # Opt-in (the retraining loop): against a base, a challenger passes only when its
    # improvement of `uncertainty.primary` is distinguishable from noise (paired bootstrap on
    # the shared test set, core/uncertainty.py). The tolerances above apply either way.
    # Off unless set (params.yaml sets it explicitly; a hand-made Gate may leave it out).
    require_significant_improvement: bool = False

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


class Score(_Frozen):
    """Batch scoring of a whole table (`make score`)."""

    # The run fails, and writes nothing, when more than this share of the input's rows break
    # the scoring contract; below it, those rows go to the quarantine file with the reason.
    max_invalid_share: Annotated[float, Field(ge=0.0, le=1.0)]
    # Rows read, checked and scored at a time: peak memory follows this, not the input's size.
    chunk_rows: Annotated[int, Field(ge=1, le=5_000_000)]
    # OpenMP threads per model call in process (Spark: one per task, spark.task.cpus). One is
    # the robust choice on a small or shared host, where threads waiting for each other make
    # scoring slower, not faster; raise it on a dedicated many-core machine.
    threads: Annotated[int, Field(ge=1, le=256)]


class Service(_Frozen):
    """The model service: what it logs (prediction and feedback logs, JSON lines) and what
    `/feedback` accepts. Read once when the service module is imported."""

    # Where the logs go. A relative path is relative to BENTOML_HOME (./bentoml_home for
    # `make serve`, /home/app/bentoml in the image): BentoML makes a bento's own src/ the working
    # directory, which is read-only in the image. The env var MLOPS_LOG_DIR overrides it.
    log_dir: Annotated[str, Field(min_length=1)]
    # One line per scored record (both endpoints, champion and shadow challenger); env
    # MLOPS_LOG_PREDICTIONS=false turns it off (feedback is always logged).
    log_predictions: bool
    # A log file is renamed to <name>.1 (.1 to .2, ...) before it would pass this size, and
    # only the newest `log_backups` renamed files are kept: at most (1 + backups) x size per log.
    log_max_mb: Annotated[float, Field(gt=0.0, le=10_000.0, strict=False)]
    log_backups: Annotated[int, Field(ge=1, le=1_000)]
    # Batches waiting for the writer thread; when it falls this far behind (a slow disk), new
    # batches are dropped with a warning instead of holding memory or requests.
    log_queue_max: Annotated[int, Field(ge=1, le=1_000_000)]
    # The top k feature contributions (`/explain`'s) logged beside each champion prediction;
    # computed by the writer thread, off the request path. 0: none.
    log_reasons: Annotated[int, Field(ge=0, le=20)]
    # The share of one CPU the writer thread may spend on those reasons (TreeSHAP costs
    # several times the model call): beyond it, lines are written without reasons until the
    # budget refills, so the reasons never take the hot path's CPU under load.
    log_reasons_cpu: Annotated[float, Field(gt=0, le=1)]
    # The reason codes a business user may give when flagging a scored record, and the longest
    # free-text comment accepted (characters).
    feedback_reasons: Annotated[tuple[str, ...], Field(min_length=1, strict=False)]
    feedback_max_chars: Annotated[int, Field(ge=1, le=100_000)]

    @model_validator(mode="after")
    def _reasons_are_codes(self) -> Self:
        bad = [r for r in self.feedback_reasons if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", r)]
        if bad or len(set(self.feedback_reasons)) != len(self.feedback_reasons):
            raise ValueError(
                f"feedback_reasons must be distinct snake_case codes (got {bad or 'duplicates'})"
            )
        return self

    def log_path(self) -> Path:
        """The log directory: MLOPS_LOG_DIR, else `log_dir` (relative to BENTOML_HOME)."""
        path = Path(os.environ.get(LOG_DIR_ENV) or self.log_dir).expanduser()
        if path.is_absolute():
            return path
        home = os.environ.get("BENTOML_HOME") or str(Path.home() / "bentoml")
        return Path(home).expanduser() / path


class Registry(_Frozen):
    """The model registry: GTO tags on this git repository (`make register`, `make assign`,
    `make registry`). The model's registry name is written once, in dvc.yaml `artifacts`."""

    # Versions are registered only from commits on this branch (what the release built).
    branch: Annotated[str, Field(min_length=1)]
    # The stages a person may assign (`make assign STAGE=...`). Each is a kustomize overlay in
    # deploy/k8s/overlays and a GitHub environment of deploy.yml, which deploys on its tags.
    stages: Annotated[tuple[str, ...], Field(min_length=1, strict=False)]
    production: str  # the stage that means "in production" (make registry, the audit pack)

    @model_validator(mode="after")
    def _stages_are_names(self) -> Self:
        bad = [s for s in self.stages if not re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", s)]
        if bad or len(set(self.stages)) != len(self.stages):
            raise ValueError(
                f"stages must be distinct lower-case names (got {bad or 'duplicates'})"
            )
        if self.production not in self.stages:
            raise ValueError(f"production stage {self.production!r} is not one of {self.stages}")
        return self


class Audit(_Frozen):
    """The audit pack of a model version (`make audit [VERSION=v1.2.0]`)."""

    # The team's own words: intended use, limits, data provenance, terms of use (Markdown,
    # one `## ` section each). For a past version, that version's copy of the file is used.
    intended_use: Annotated[str, Field(min_length=1)]
    out_dir: Annotated[str, Field(min_length=1)]  # <out_dir>/<version>/audit.{md,html,json}
    # Representative per-decision explanations: the highest and lowest scores and the records
    # closest to either side of the decision threshold.
    explanations: Annotated[int, Field(ge=0, le=20)]
    explanation_top_k: Annotated[int, Field(ge=1, le=20)]  # contributions shown per decision
    # Importance per segment (evaluate.segments): mean |contribution| over this many test rows
    # (drawn with model.seed; segments are counted within them). A segment is shown when its
    # top features differ from those of all the rows.
    segment_importance_rows: Annotated[int, Field(ge=100)]
    segment_importance_top_n: Annotated[int, Field(ge=1, le=20)]


class MonitorDrift(_Frozen):
    """Data and prediction drift (`make monitor`): has a column's distribution moved?

    Each column's values are counted in bins (numbers: quantile bins of the reference plus a
    bin for missing values; categories: each category, unknown ones, missing), and the window
    is compared with the reference by a chi-square test of those counts (false alarms: `alpha`)
    and by PSI (how large the move is: `min_psi`). The thresholds are calibrated by
    `benchmarks/monitoring.py` (README, "Monitoring").
    """

    bins: Annotated[int, Field(ge=2, le=100)]  # quantile bins per numeric column and the score
    # The false-alarm rate of each drift check per window: split over the columns it tests
    # (Bonferroni), so that on an unshifted window any column is flagged at most this often.
    alpha: Annotated[float, Field(gt=0.0, lt=0.5)]
    # A column is flagged only if its PSI is at least this too: a large window finds tiny,
    # harmless moves significant.
    min_psi: Annotated[float, Field(ge=0.0)]
    # The share of records contacted is flagged only if it also moved by at least this much.
    min_contact_rate_change: Annotated[float, Field(ge=0.0, le=1.0)]
    # The table as a whole has drifted when at least this share of its features have.
    dataset_share: Annotated[float, Field(gt=0.0, le=1.0)]


class MonitorPerformance(_Frozen):
    """Realised performance, once outcomes have arrived, with bootstrap confidence intervals."""

    # Below this many labelled records (or `min_class_count` of either label value) realised
    # performance is reported but not judged: the page says what is still missing.
    min_outcomes: Annotated[int, Field(ge=1)]
    min_class_count: Annotated[int, Field(ge=1)]
    confidence: Annotated[float, Field(ge=0.5, lt=1.0)]  # two-sided level of every interval
    bootstrap: Annotated[int, Field(ge=100, le=100_000)]  # resamples (seeded Poisson bootstrap)
    # Above this many labelled records the resamples are drawn from a seeded subsample of this
    # size and their spread rescaled to the full window (m-out-of-n bootstrap).
    bootstrap_max_rows: Annotated[int, Field(ge=1_000)]
    seed: Seed


class MonitorRule(_Frozen):
    """When the model must be retrained: any one of these (README, "Monitoring")."""

    # Realised ROC AUC below the training-time (test set) value by more than this, with the
    # confidence interval of the drop excluding zero.
    max_roc_auc_drop: Tolerance
    # Realised profit per record below the expected one (metrics.json) by more than this, with
    # the confidence interval of the drop excluding zero.
    max_profit_per_record_drop: Tolerance
    # The table drifted in this many consecutive windows (the window history in `state`).
    drift_windows: Annotated[int, Field(ge=1, le=100)]
    history: Annotated[int, Field(ge=1, le=10_000)]  # windows kept in the state file


class MonitorRetrain(_Frozen):
    """`make retrain`: how a labelled production window enters the training data."""

    # Where labelled windows are kept (one Parquet file per window, each tracked with
    # `dvc add`); the ingest stage reads them after `data.source`.
    windows: Annotated[str, Field(min_length=1)]
    # "append": the source and every window; "sliding": only the newest `keep_windows` windows
    # (the source is no longer read once there is one: the model forgets the old relation).
    policy: Literal["append", "sliding"]
    keep_windows: Annotated[int, Field(ge=1, le=1_000)]
    min_rows: Annotated[int, Field(ge=1)]  # a labelled window with fewer valid rows is refused
    branch_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._/-]*$")]  # + the window's id
    # A gate floor that the champion itself misses on the fresh records: "warn" reports it and
    # lets a challenger that beats the champion be promoted; "block" keeps the champion.
    shared_floor_misses: Literal["warn", "block"]


SCENARIOS = ("none", "data_drift", "concept_drift", "quality_break")


class MonitorSimulate(_Frozen):
    """`make simulate`: a production window written as the service would log it."""

    rows: Annotated[int, Field(ge=10, le=5_000_000)]
    seed: Seed
    days: Annotated[int, Field(ge=1, le=366)]  # the window's records spread over this many days
    outcome_delay_days: Annotated[int, Field(ge=0, le=3_650)]  # outcome date after scoring
    feedback_share: Annotated[float, Field(ge=0.0, le=1.0)]  # records flagged via /feedback
    # The built-in sample: the generator's drift knobs (`mlops_template.sample.Drift`) per
    # scenario, checked by the sample itself. Scenarios left out use no knob.
    sample: Annotated[dict[str, dict[str, Any]], Field(strict=False)]
    # A team's own table (data.source is a file): its test rows, perturbed from the schema.
    shift_features: Annotated[int, Field(ge=1, le=100)]  # most important numeric features moved
    shift_sd: Annotated[float, Field(gt=0.0, le=100.0)]  # ... by this many standard deviations
    category_share: Annotated[float, Field(gt=0.0, lt=1.0)]  # rarest category's new share
    relabel_share: Annotated[
        float, Field(gt=0.0, le=1.0)
    ]  # concept drift: a segment's labels flipped

    @model_validator(mode="after")
    def _known_scenarios(self) -> Self:
        unknown = [s for s in self.sample if s not in SCENARIOS]
        if unknown:
            raise ValueError(f"sample scenarios {unknown} are not among {', '.join(SCENARIOS)}")
        return self


class Monitor(_Frozen):
    """Monitoring of the deployed model (`make monitor`, `make simulate`, `make retrain`).

    The prediction and feedback logs are read where the service writes them
    (`service.log_path()`), unless `make monitor LOGS=...` says otherwise.
    """

    outcomes: Annotated[str, Field(min_length=1)]  # the outcome file drop (CSV / Parquet files)
    window: Annotated[str, Field(min_length=1)]  # the logs compacted to Parquet
    reports: Annotated[str, Field(min_length=1)]  # summary.json, summary.md, report.html
    state: Annotated[str, Field(min_length=1)]  # the window history (JSON), for `rule`
    # Only the records of the last `window_days` days (before the newest record); null: all.
    window_days: Annotated[int, Field(ge=1)] | None
    lineage_depth: Annotated[int, Field(ge=0, le=10_000)]  # commits searched for the model
    drift: MonitorDrift
    performance: MonitorPerformance
    rule: MonitorRule
    retrain: MonitorRetrain
    simulate: MonitorSimulate

    @model_validator(mode="after")
    def _history_holds_the_rule(self) -> Self:
        if self.rule.history < self.rule.drift_windows:
            raise ValueError("monitor.rule.history must keep at least drift_windows windows")
        return self


class Explain(_Frozen):
    """Per-decision explanations (`/explain`, `make explain`) and importance per segment."""

    # Contributions shown per record, largest |contribution| first; the rest are summed into
    # one "(other features)" entry. A request to /explain may ask for another number.
    top_k: Annotated[int, Field(ge=1, le=100)]
    # Records per /explain request: an explanation costs about 1 ms a record here, against
    # ~0.02 ms for a prediction, so the cap is lower than /predict's.
    max_records: Annotated[int, Field(ge=1, le=5_000)]
    # Rows explained (a random sample) for the global importance per segment.
    segment_max_rows: Annotated[int, Field(ge=100)]


# The metrics whose difference between two models carries a bootstrap interval
# (core/uncertainty.py): the business metric and the guarded ML ones.
ComparedMetric = Literal["business.expected_profit", "ml.roc_auc", "ml.pr_auc", "ml.brier"]


class Uncertainty(_Frozen):
    """How sure a comparison of two models is: a seeded paired bootstrap of the shared test
    set's rows (core/uncertainty.py), in the experiments table, the PR report and the gate."""

    resamples: Annotated[int, Field(ge=100, le=100_000)]  # bootstrap resamples of the rows
    confidence: Annotated[float, Field(ge=0.5, lt=1.0)]  # two-sided level of each interval
    seed: Seed
    # The metric whose improvement `gate.require_significant_improvement` asks for.
    primary: ComparedMetric


# A value a params.yaml key may be set to from the command line (`dvc exp run -S key=value`).
Override = bool | int | float | str | None
Overrides = Annotated[dict[str, Override], Field(strict=False)]


class Experiments(_Frozen):
    """`make experiments`: params.yaml variants queued and run with DVC's experiment queue.

    Each experiment is a set of overrides of dotted params.yaml keys (`dvc exp run -S`):
    every combination of the `grid` values, then each entry of `extra`; `common` is applied
    to all of them (a smaller sample for a quick grid, say). Names are derived from the
    overrides. Checked against the params models before anything is queued.
    """

    grid: Annotated[dict[str, Annotated[list[Override], Field(min_length=1)]], Field(strict=False)]
    extra: Annotated[list[Overrides], Field(strict=False)]
    common: Overrides
    jobs: Annotated[int, Field(ge=1, le=16)]  # experiments run at a time (queue workers)
    table: Annotated[str, Field(min_length=1)]  # `make experiments-table`: markdown ...
    table_json: Annotated[str, Field(min_length=1)]  # ... and JSON

    @model_validator(mode="after")
    def _keys_are_dotted(self) -> Self:
        keys = [*self.grid, *self.common, *(k for run in self.extra for k in run)]
        bad = [k for k in keys if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+", k)]
        if bad:
            raise ValueError(f"keys {bad} are not dotted params.yaml keys (e.g. model.kind)")
        inside = [k for k in keys if k.split(".")[0] == "experiments"]
        if inside:
            raise ValueError(f"an experiment cannot change the experiments section ({inside})")
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
    score: Score
    registry: Registry
    audit: Audit
    service: Service
    monitor: Monitor
    explain: Explain
    uncertainty: Uncertainty
    experiments: Experiments

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
