"""Has a column moved? Binned counts of the window against the reference (pure functions).

Every column is counted in bins the reference defines: a number in the reference's quantile
bins (`monitor.drift.bins`) plus one bin for missing values; a category in its own bin, plus
one for categories the schema does not list and one for missing values; a boolean as a
category. Then, for the two count vectors:

- a chi-square test of homogeneity (the 2 x k table): its p-value is what keeps false alarms
  at `alpha` whatever the window's size, split over the columns tested (Bonferroni);
- PSI, the population stability index (symmetric KL divergence of the shares, +0.5 per
  count): how far the column moved, which must also reach `min_psi`, because a window of a
  million rows finds harmless moves significant;
- Jensen-Shannon distance of the shares and, for numbers, the two-sample Kolmogorov-Smirnov
  test: reported, not decided on.

Scipy does the statistics (a monitoring library would add a dependency for a few lines:
README, "Monitoring"). The schema says which columns and how: `Table.features`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlops_template.core.params import MonitorDrift
from mlops_template.core.table import Column, Kind, Table

MISSING, OTHER = "missing", "not in the schema"
SMOOTHING = 0.5  # added to every count before shares are compared (no log of zero)


@dataclass(frozen=True)
class Binning:
    """How one column's values are counted: numeric edges (bin i holds values up to edge i,
    the last bin the rest) or the listed categories; then `OTHER` (categories only) and
    `MISSING`."""

    kind: Literal["numeric", "categorical"]
    edges: np.ndarray = field(default_factory=lambda: np.empty(0))
    categories: tuple[Any, ...] = ()

    @property
    def labels(self) -> list[str]:
        if self.kind == "categorical":
            return [str(c) for c in self.categories] + [OTHER, MISSING]
        e = [f"{v:.6g}" for v in self.edges]
        if not e:
            return ["all values", MISSING]
        inner = [f"({a}, {b}]" for a, b in itertools.pairwise(e)]
        return [f"<= {e[0]}", *inner, f"> {e[-1]}", MISSING]

    def count(self, values: pd.Series) -> np.ndarray:
        """Counts per bin (`labels`) of `values`."""
        if self.kind == "numeric":
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
            present = ~np.isnan(numbers)
            index = np.searchsorted(self.edges, numbers[present], side="left")
            counts = np.bincount(index, minlength=len(self.edges) + 1)
            return np.append(counts, int((~present).sum())).astype(np.int64)
        codes = pd.Categorical(values, categories=list(self.categories)).codes
        missing = values.isna().to_numpy()
        listed = np.bincount(codes[codes >= 0], minlength=len(self.categories))
        other = int(((codes < 0) & ~missing).sum())
        return np.append(listed, [other, int(missing.sum())]).astype(np.int64)


def numeric_binning(reference: pd.Series, bins: int) -> Binning:
    """Quantile bins of the reference's values (ties merge bins: a count column gets fewer)."""
    values = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=np.float64)
    if values.size == 0:
        return Binning("numeric")
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1], method="inverted_cdf"))
    return Binning("numeric", edges=edges)


def binning(col: Column, reference: pd.Series, bins: int) -> Binning:
    if col.kind is Kind.NUMERIC:
        return numeric_binning(reference, bins)
    if col.kind is Kind.BOOLEAN:
        return Binning("categorical", categories=(False, True))
    return Binning("categorical", categories=col.categories)


@dataclass(frozen=True, slots=True)
class Shift:
    psi: float
    p_value: float
    js: float  # Jensen-Shannon distance (base 2: 0 = same shares, 1 = disjoint)


def shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))


def compare_counts(reference: np.ndarray, window: np.ndarray) -> Shift:
    """PSI, the chi-square test's p-value and the JS distance of two count vectors (bins
    empty on both sides are left out)."""
    keep = (reference + window) > 0
    r, w = reference[keep].astype(np.float64), window[keep].astype(np.float64)
    if len(r) < 2 or r.sum() == 0 or w.sum() == 0:
        return Shift(0.0, 1.0, 0.0)
    k = len(r)
    pr = (r + SMOOTHING) / (r.sum() + SMOOTHING * k)
    pw = (w + SMOOTHING) / (w.sum() + SMOOTHING * k)
    psi = float(np.sum((pw - pr) * np.log(pw / pr)))
    total = r + w
    expected_r, expected_w = total * r.sum() / total.sum(), total * w.sum() / total.sum()
    statistic = float(
        np.sum((r - expected_r) ** 2 / expected_r) + np.sum((w - expected_w) ** 2 / expected_w)
    )
    p_value = float(stats.chi2.sf(statistic, k - 1))
    js = float(jensenshannon(r / r.sum(), w / w.sum(), base=2))
    return Shift(psi, p_value, 0.0 if math.isnan(js) else js)


# --- one column ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str
    drifted: bool
    psi: float
    p_value: float
    js: float
    ks_statistic: float | None  # numbers only
    ks_p_value: float | None
    reason: str  # what moved, in words
    bins: list[dict[str, Any]]  # label, reference share, window share


def _fmt(value: float) -> str:
    return f"{value:,.4g}"


def numeric_reason(reference: pd.Series, window: pd.Series) -> str:
    ref = pd.to_numeric(reference, errors="coerce")
    win = pd.to_numeric(window, errors="coerce")
    parts = []
    ref_null, win_null = float(ref.isna().mean()), float(win.isna().mean()) if len(win) else 0.0
    if abs(win_null - ref_null) >= 0.05:
        parts.append(f"missing in {win_null:.0%} of records (was {ref_null:.0%})")
    ref_med, win_med = ref.median(), win.median()
    if pd.notna(ref_med) and pd.notna(win_med) and win_med != ref_med:
        way = "higher" if win_med > ref_med else "lower"
        parts.append(
            f"values are {way} than when the model was trained: typical value (median) "
            f"{_fmt(win_med)}, was {_fmt(ref_med)}"
        )
    elif pd.notna(ref_med) and pd.notna(win_med):
        spread = (win.quantile(0.75) - win.quantile(0.25), ref.quantile(0.75) - ref.quantile(0.25))
        if spread[0] != spread[1]:
            way = "more spread out" if spread[0] > spread[1] else "more concentrated"
            parts.append(f"values are {way} than when the model was trained (same median)")
    return "; ".join(parts) or "the shape of the distribution changed"


def categorical_reason(labels: Sequence[str], ref_share: np.ndarray, win_share: np.ndarray) -> str:
    i = int(np.argmax(np.abs(win_share - ref_share)))
    what = {OTHER: "values the schema does not list", MISSING: "missing values"}.get(
        labels[i], f"'{labels[i]}'"
    )
    return f"{what}: {win_share[i]:.0%} of records, was {ref_share[i]:.0%}"


def column_drift(
    col: Column, reference: pd.Series, window: pd.Series, cfg: MonitorDrift, alpha: float
) -> ColumnDrift:
    """One feature: the window's values against the reference's, flagged when the test is
    significant at `alpha` (already split over the columns) and PSI reaches `min_psi`."""
    bins = binning(col, reference, cfg.bins)
    ref_counts, win_counts = bins.count(reference), bins.count(window)
    shift = compare_counts(ref_counts, win_counts)
    ref_share, win_share = shares(ref_counts), shares(win_counts)
    ks_stat = ks_p = None
    if bins.kind == "numeric":
        a = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=np.float64)
        b = pd.to_numeric(window, errors="coerce").dropna().to_numpy(dtype=np.float64)
        if a.size > 1 and b.size > 1:
            ks = stats.ks_2samp(a, b, method="asymp")
            ks_stat, ks_p = float(ks.statistic), float(ks.pvalue)
        reason = numeric_reason(reference, window)
    else:
        reason = categorical_reason(bins.labels, ref_share, win_share)
    return ColumnDrift(
        column=col.name,
        kind=str(col.kind),
        drifted=shift.p_value < alpha and shift.psi >= cfg.min_psi,
        psi=shift.psi,
        p_value=shift.p_value,
        js=shift.js,
        ks_statistic=ks_stat,
        ks_p_value=ks_p,
        reason=reason,
        bins=[
            {"bin": b, "reference": float(r), "window": float(w)}
            for b, r, w in zip(bins.labels, ref_share, win_share, strict=True)
            if r or w
        ],
    )


# --- the table and the predictions --------------------------------------------------------


@dataclass(frozen=True)
class TableDrift:
    columns: list[ColumnDrift]  # drifted first, then by PSI, largest first
    drifted: list[str]
    share: float
    dataset_drift: bool
    alpha_per_column: float


def table_drift(
    reference: pd.DataFrame, window: pd.DataFrame, table: Table, cfg: MonitorDrift
) -> TableDrift:
    """Every feature of the schema; the table has drifted when at least `dataset_share` of
    them have."""
    features = table.features
    alpha = cfg.alpha / len(features)
    columns = [
        column_drift(col, reference[col.name], window[col.name], cfg, alpha) for col in features
    ]
    columns.sort(key=lambda c: (not c.drifted, -c.psi))
    drifted = [c.column for c in columns if c.drifted]
    share = len(drifted) / len(features)
    return TableDrift(
        columns=columns,
        drifted=drifted,
        share=share,
        dataset_drift=bool(drifted) and share >= cfg.dataset_share - 1e-12,
        alpha_per_column=alpha,
    )


@dataclass(frozen=True)
class PredictionDrift:
    drifted: bool
    score_drifted: bool
    score_psi: float
    score_p_value: float
    contact_drifted: bool
    contact_rate: float
    reference_contact_rate: float
    contact_p_value: float
    score_bins: list[dict[str, Any]]


def two_proportions_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of the pooled z-test that two shares are equal."""
    if not n1 or not n2:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    return float(2 * stats.norm.sf(abs(x1 / n1 - x2 / n2) / se))


def prediction_drift(
    reference_scores: np.ndarray,
    reference_contact: np.ndarray,
    scores: np.ndarray,
    contact: np.ndarray,
    cfg: MonitorDrift,
) -> PredictionDrift:
    """The score distribution (quantile bins of the reference's scores) and the share of
    records contacted; `alpha` is split between the two."""
    alpha = cfg.alpha / 2
    bins = numeric_binning(pd.Series(reference_scores), cfg.bins)
    ref_counts = bins.count(pd.Series(reference_scores))
    win_counts = bins.count(pd.Series(scores))
    shift = compare_counts(ref_counts, win_counts)
    x1, n1 = int(contact.sum()), len(contact)
    x2, n2 = int(reference_contact.sum()), len(reference_contact)
    p_contact = two_proportions_p(x1, n1, x2, n2)
    rate, ref_rate = (x1 / n1 if n1 else 0.0), (x2 / n2 if n2 else 0.0)
    contact_drifted = p_contact < alpha and abs(rate - ref_rate) >= cfg.min_contact_rate_change
    score_drifted = shift.p_value < alpha and shift.psi >= cfg.min_psi
    return PredictionDrift(
        drifted=score_drifted or contact_drifted,
        score_drifted=score_drifted,
        score_psi=shift.psi,
        score_p_value=shift.p_value,
        contact_drifted=contact_drifted,
        contact_rate=rate,
        reference_contact_rate=ref_rate,
        contact_p_value=p_contact,
        score_bins=[
            {"bin": b, "reference": float(r), "window": float(w)}
            for b, r, w in zip(bins.labels, shares(ref_counts), shares(win_counts), strict=True)
            if r or w
        ],
    )
