"""The `/explain` endpoint's request and answer; `core/explain.py` computes the explanations.

Request: `{"records": [...], "top_k": 5}`, the records exactly as `/predict` takes them (the
same contract, so bad input gets the same 400), 1 to `explain.max_records` of them, and
`top_k` optional (default `explain.top_k`, at most the number of features).

Answer, per record and in the request's order: its key, the probability and the contact
decision (the same as `/predict`'s, bit for bit), the model's log-odds, the base value, and
the top_k contributions (largest |contribution| first, then one entry summing the others),
each with the feature, the record's value, the contribution in log-odds, its direction and
a sentence. base_value + the sum of the contributions = log_odds; probability =
sigmoid(log_odds).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    create_model,
)

from mlops_template.core.explain import OTHER_FEATURES, Explanation
from mlops_template.core.params import Explain
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Table
from mlops_template.serving import contract

# OpenAPI 3.0 has no null type: a nullable value of any of the record's types.
_VALUE_SCHEMA: Final = {
    "anyOf": [{"type": t} for t in ("boolean", "integer", "number", "string")],
    "nullable": True,
    "description": "The record's value, in its own type (a category by name); null: missing.",
}
Value = Annotated[
    StrictBool | StrictInt | StrictFloat | StrictStr | None, WithJsonSchema(_VALUE_SCHEMA)
]


class FeatureContribution(BaseModel):
    """One feature's contribution to the record's log-odds, relative to the base value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feature: str = Field(
        description=f"The column; {OTHER_FEATURES!r} sums the features not listed."
    )
    value: Value = None
    contribution: float = Field(description="In log-odds; positive raises the probability.")
    direction: Literal["raises", "lowers", "none"]
    text: str = Field(description="e.g. 'contract = month_to_month raises the log-odds by 0.42'")


def build_request_model(cfg: Explain, table: Table = TABLE) -> type[BaseModel]:
    """`{"records": [...], "top_k": k}`: records in the scoring contract, bounded by params."""
    records: Any = Annotated[
        list[contract.Record],  # type: ignore[valid-type]
        Field(
            min_length=1,
            max_length=cfg.max_records,
            description=f"1 to {cfg.max_records:,} records, as /predict takes them.",
        ),
    ]
    n = len(table.features)
    top_k: Any = Annotated[
        StrictInt,
        Field(
            ge=1,
            le=n,
            description=f"Contributions listed per record (1 to {n}); the rest are summed.",
        ),
    ]
    model: type[BaseModel] = create_model(
        "ExplainRequest",
        __config__=ConfigDict(extra="forbid"),
        records=(records, ...),
        top_k=(top_k, min(cfg.top_k, n)),
    )
    return model


def build_answer_model(table: Table = TABLE, name: str = "RecordExplanation") -> type[BaseModel]:
    """Why the model gave one record its probability, keyed like the record."""
    key_field = contract.Prediction.model_fields[table.key]
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        name,
        __config__=ConfigDict(extra="forbid", frozen=True),
        __doc__="The model's answer for one record, and why.",
        **{
            table.key: (key_field.annotation, Field(description=key_field.description)),
            "probability": (
                float,
                Field(ge=0.0, le=1.0, description="As /predict answers it: sigmoid(log_odds)."),
            ),
            "contact": (bool, Field(description="As /predict answers it.")),
            "model_version": (str, Field(description="Version (sha256 prefix) of the model.")),
            "log_odds": (float, Field(description="The model's log-odds for the record.")),
            "base_value": (
                float,
                Field(description="The log-odds before any feature is known (README)."),
            ),
            "contributions": (
                list[FeatureContribution],
                Field(description="Largest |contribution| first; they sum to log_odds - base."),
            ),
        },
    )
    return model


RecordExplanation: Final[type[BaseModel]] = build_answer_model()


def answers(
    explained: list[Explanation], model_version: str, table: Table = TABLE
) -> list[BaseModel]:
    """The answer models of explanations."""
    return [
        RecordExplanation(
            **{table.key: e.key},
            probability=e.probability,
            contact=e.contact,
            model_version=model_version,
            log_odds=e.log_odds,
            base_value=e.base_value,
            contributions=[FeatureContribution(**c.to_dict()) for c in e.contributions],
        )
        for e in explained
    ]
