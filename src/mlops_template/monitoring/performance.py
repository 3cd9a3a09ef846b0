"""Realised performance: the decisions actually taken, against the outcomes that arrived.

For the records whose outcome is known: ROC AUC of the logged probabilities, the share
contacted, the precision and recall of the contacted, and the realised profit per record of
the logged decisions (`core.business`: each contact costs `contact_cost` and a contacted
positive is worth `success_rate` x `success_value`), each with a seeded bootstrap confidence
interval, so that a small window does not cry wolf.

The bootstrap is a Poisson bootstrap: each resample weights every record by a Poisson(1)
draw, which is the classic resampling with replacement in the limit and lets many resamples
be computed at once as matrix products. Two models scored on the same records (champion and
shadow challenger) share the weights, so their difference gets a paired interval. A drop
against the expected value holds the noise of both samples: the window's and that of the test
set the expected value was measured on (resampled independently). Above
`bootstrap_max_rows` records the resamples come from a seeded subsample and their spread is
rescaled by sqrt(m / n) (the m-out-of-n bootstrap), centred on the full window's value.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from mlops_template.core import business
from mlops_template.core.params import Business, MonitorPerformance

STATS = ("roc_auc", "precision", "recall", "contact_rate", "positive_rate", "profit_per_record")
CELLS = 4_000_000  # weights held in memory at once (resamples x records)


@dataclass(frozen=True, slots=True)
class Interval:
    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Decisions:
    """One model's probabilities and decisions on labelled records (y: 1 = positive)."""

    y: np.ndarray
    probability: np.ndarray
    contact: np.ndarray


def _weights(n: int, resamples: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    chunk = max(1, CELLS // max(n, 1))
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        yield rng.poisson(1.0, size=(size, n)).astype(np.float64)
        done += size


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def weighted_stats(w: np.ndarray, d: Decisions, money: Business) -> dict[str, np.ndarray]:
    """Every statistic for each row of weights `w` (resamples x records)."""
    y, c = d.y.astype(np.float64), d.contact.astype(np.float64)
    gain = business.gain(money)
    profit = c * (y * gain - money.contact_cost)
    total = w.sum(axis=1)
    positives, contacted = w @ y, w @ c
    hits = w @ (c * y)
    order = np.argsort(d.probability, kind="stable")
    ranked = d.probability[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ws, ys = w[:, order], y[order]
    pos = np.add.reduceat(ws * ys, starts, axis=1)
    neg = np.add.reduceat(ws * (1.0 - ys), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    auc = _ratio((pos * (below + 0.5 * neg)).sum(axis=1), positives * (total - positives))
    return {
        "roc_auc": auc,
        "precision": _ratio(hits, contacted),
        "recall": _ratio(hits, positives),
        "contact_rate": _ratio(contacted, total),
        "positive_rate": _ratio(positives, total),
        "profit_per_record": _ratio(w @ profit, total),
    }


def _value(x: float) -> float | None:
    return None if math.isnan(x) else round(float(x), 6)


def _interval(point: float, deviations: np.ndarray, level: float) -> Interval:
    """`point` plus the percentile interval of the resamples' deviations from it."""
    deviations = deviations[~np.isnan(deviations)]
    if math.isnan(point) or deviations.size < 10:
        return Interval(_value(point), None, None)
    lo, hi = np.quantile(deviations, [(1 - level) / 2, 1 - (1 - level) / 2])
    return Interval(_value(point), _value(point + lo), _value(point + hi))


@dataclass(frozen=True)
class Resamples:
    """Per side: each statistic on all records, and its resamples' deviations from the
    value on the records they were drawn from (rescaled to the full window)."""

    points: list[dict[str, float]]
    deviations: list[dict[str, np.ndarray]]


def resample(
    sides: Sequence[Decisions], money: Business, cfg: MonitorPerformance, seed: int
) -> Resamples:
    """Seeded Poisson-bootstrap resamples of sides scored on the same records (shared
    weights, so differences between sides are paired)."""
    n = len(sides[0].y)
    points = [
        {k: float(v[0]) for k, v in weighted_stats(np.ones((1, n)), s, money).items()}
        for s in sides
    ]
    rng = np.random.default_rng(seed)
    sample, scale = sides, 1.0
    if n > cfg.bootstrap_max_rows:
        index = np.sort(rng.choice(n, cfg.bootstrap_max_rows, replace=False))
        sample = [Decisions(s.y[index], s.probability[index], s.contact[index]) for s in sides]
        scale = math.sqrt(cfg.bootstrap_max_rows / n)
    m = len(sample[0].y)
    centres = [
        {k: float(v[0]) for k, v in weighted_stats(np.ones((1, m)), s, money).items()}
        for s in sample
    ]
    draws: list[dict[str, list[np.ndarray]]] = [{k: [] for k in STATS} for _ in sides]
    for w in _weights(m, cfg.bootstrap, rng):
        for i, s in enumerate(sample):
            for k, v in weighted_stats(w, s, money).items():
                draws[i][k].append(v)
    deviations = [
        {k: (np.concatenate(draws[i][k]) - centres[i][k]) * scale for k in STATS}
        for i in range(len(sides))
    ]
    return Resamples(points, deviations)


def intervals(r: Resamples, level: float) -> list[dict[str, Interval]]:
    return [
        {k: _interval(r.points[i][k], r.deviations[i][k], level) for k in STATS}
        for i in range(len(r.points))
    ]


def estimate(
    sides: Sequence[Decisions], money: Business, cfg: MonitorPerformance
) -> tuple[list[dict[str, Interval]], dict[str, Interval] | None]:
    """Each side's statistics with intervals, and (for two sides on the same records) the
    paired interval of their difference, second minus first."""
    r = resample(sides, money, cfg, cfg.seed)
    out = intervals(r, cfg.confidence)
    if len(sides) != 2:
        return out, None
    diff = {
        k: _interval(
            r.points[1][k] - r.points[0][k],
            r.deviations[1][k] - r.deviations[0][k],
            cfg.confidence,
        )
        for k in STATS
    }
    return out, diff


def drops(
    window: Resamples, reference: Resamples, expected: dict[str, float | None], level: float
) -> dict[str, Interval]:
    """How far below the expected (training-time) value each statistic is in the window, with
    an interval that holds both samples' noise: the window's and the test set's the expected
    value was measured on (resampled independently of each other)."""
    out = {}
    for k in STATS:
        base, point = expected.get(k), window.points[0][k]
        if base is None or math.isnan(point):
            out[k] = Interval(None, None, None)
            continue
        spread = reference.deviations[0][k] - window.deviations[0][k]
        out[k] = _interval(base - point, spread, level)
    return out


def judged(y: np.ndarray, cfg: MonitorPerformance) -> str | None:
    """Why realised performance cannot be judged yet (None: it can)."""
    positives = int(y.sum())
    if len(y) < cfg.min_outcomes:
        return f"{len(y):,} labelled records; at least {cfg.min_outcomes:,} are needed"
    if min(positives, len(y) - positives) < cfg.min_class_count:
        return (
            f"{positives:,} positive and {len(y) - positives:,} negative outcomes; at least "
            f"{cfg.min_class_count:,} of each are needed"
        )
    return None
