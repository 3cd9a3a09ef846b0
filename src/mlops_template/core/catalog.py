"""What each number in `reports/metrics.json` means: label, display format, and which way is better.

The gate, the pull-request report, the `make run` table, the bento and image labels and the
keys in params.yaml `gate` all refer to metrics by their dotted key (`ml.roc_auc`,
`business.expected_profit`), so this is the one place that knows that a lower Brier score is
better and that profit is shown in whole currency units. `metrics.py` computes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["higher", "lower", "neutral"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    key: str  # dotted path into metrics.json
    label: str  # "{Noun}" is replaced by params.yaml project.label_noun ("Fraud rate ...")
    direction: Direction  # "neutral": a change is neither better nor worse (a baseline, a rate)
    fmt: str  # format of a value; deltas use the same precision with a sign

    def value(self, metrics: dict[str, Any]) -> float | None:
        """The metric in `metrics`, or None when that file does not have it."""
        node: Any = metrics
        for part in self.key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return float(node) if isinstance(node, int | float) else None

    def title(self, noun: str) -> str:
        return self.label.replace("{Noun}", noun[:1].upper() + noun[1:])

    def show(self, value: float | None) -> str:
        return "—" if value is None else self.fmt.format(value)

    def show_delta(self, delta: float | None) -> str:
        if delta is None:
            return "—"
        if self.fmt.endswith("%}"):  # a change of a share is in percentage points
            return f"{delta * 100:+.2f} pp"
        return self.fmt.replace("{:", "{:+", 1).format(delta)


_MONEY, _RATIO, _SHARE = "{:,.0f}", "{:.4f}", "{:.2%}"

# Business first, then ML, then the decision threshold: the order of the report's table.
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("business.expected_profit", "Expected profit", "higher", _MONEY),
    MetricSpec("business.profit_vs_contact_all", "Profit vs contacting everyone", "higher", _MONEY),
    MetricSpec("business.profit_vs_contact_none", "Profit vs contacting no one", "higher", _MONEY),
    MetricSpec("business.profit_per_record", "Profit per record", "higher", "{:,.3f}"),
    MetricSpec("business.contact_rate", "Share of records contacted", "neutral", _SHARE),
    MetricSpec("business.break_even_precision", "Break-even precision", "neutral", _RATIO),
    MetricSpec("ml.roc_auc", "ROC AUC", "higher", _RATIO),
    MetricSpec("ml.pr_auc", "PR AUC", "higher", _RATIO),
    MetricSpec("ml.precision", "Precision at threshold", "higher", _RATIO),
    MetricSpec("ml.recall", "Recall at threshold", "higher", _RATIO),
    MetricSpec("ml.f1", "F1 at threshold", "higher", _RATIO),
    MetricSpec("ml.brier", "Brier score (lower is better)", "lower", _RATIO),
    MetricSpec("ml.log_loss", "Log loss (lower is better)", "lower", _RATIO),
    MetricSpec("ml.positive_rate", "{Noun} rate in the test set", "neutral", _SHARE),
    MetricSpec("threshold", "Decision threshold", "neutral", _RATIO),
)
BY_KEY: dict[str, MetricSpec] = {m.key: m for m in METRICS}
# Metrics that may carry a floor or a regression tolerance: those with a better direction.
GUARDABLE: tuple[str, ...] = tuple(m.key for m in METRICS if m.direction != "neutral")
# The key metrics, business first: the `make run` table.
KEY_METRICS: tuple[str, ...] = (
    "business.expected_profit",
    "business.profit_vs_contact_all",
    "business.profit_vs_contact_none",
    "business.contact_rate",
    "ml.precision",
    "business.break_even_precision",
    "ml.recall",
    "ml.roc_auc",
    "ml.pr_auc",
    "ml.brier",
    "threshold",
)
# The few that travel with the model: bento and image labels, the model card.
HEADLINE: tuple[str, ...] = ("ml.roc_auc", "ml.pr_auc", "business.expected_profit", "threshold")


def value(metrics: dict[str, Any], key: str) -> float | None:
    """The metric `key` of a metrics.json payload (None when that file does not have it)."""
    return BY_KEY[key].value(metrics)
