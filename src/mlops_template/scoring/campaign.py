"""The campaign summary: how many records were scored, set apart and picked, and what the
picked contacts are expected to cost and earn.

The records to score have no labels yet, so the money is an expectation from the model's
probabilities (`core.business.expected_profit`): contacting a record with probability p is
expected to earn p x success_rate x success_value and costs contact_cost. Contacting everyone
is the same sum over every scored record; contacting no one earns 0.

A key that repeats (the same id on several valid records) is not a reason to refuse a record
(unique ids are a rule about many rows, the validate stage's): each is scored, and counted in
the money, every time. The summary counts them (`records.duplicate_keys`: scored records whose
key an earlier one had) and the run warns, so that a doubled export does not go unnoticed. The
keys seen are kept as 64-bit hashes: 8 bytes a scored record.

The sums are kept exactly, in integer units of 2**-40, so the summary is the same whatever
order and chunks the records arrive in (in process or on Spark).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from mlops_template.core import business
from mlops_template.core.model import LoadedModel
from mlops_template.core.params import Business, Score
from mlops_template.scoring.score import COLUMNS, CONTACT, PROBABILITY, ScoredChunk

_UNIT: Final = 2.0**40  # a probability is summed as round(p x 2**40): exact below 1e-12
TOP_REASONS: Final = 5
EXAMPLES: Final = 3  # quarantined records (or repeated keys) quoted in a message


def _fixed(probability: np.ndarray) -> int:
    return int(np.rint(probability * _UNIT).astype(np.int64).sum())


def _money(x: float) -> float:
    return round(x, 2)


class SeenKeys:
    """The keys of the records scored so far, as 64-bit hashes in sorted, disjoint runs whose
    sizes at least halve from one to the next (merged like a binary counter): a chunk is
    checked against O(log n) runs, and each hash is merged O(log n) times."""

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []

    def add(self, keys: pd.Series) -> np.ndarray:
        """Remember `keys`; True where a key was seen before (in an earlier chunk, or earlier
        in this one)."""
        hashes = pd.util.hash_pandas_object(keys, index=False).to_numpy(dtype=np.uint64)
        order = np.argsort(hashes, kind="stable")  # the first of equal keys stays first
        ordered = hashes[order]
        repeated = np.zeros(len(hashes), dtype=bool)
        repeated[order[1:]] = ordered[1:] == ordered[:-1]
        for run in self.runs:
            at = np.minimum(np.searchsorted(run, hashes), len(run) - 1)
            repeated |= run[at] == hashes
        run = np.unique(hashes[~repeated])
        while self.runs and len(self.runs[-1]) <= len(run):
            run = np.sort(np.concatenate([self.runs.pop(), run]))
        if len(run):
            self.runs.append(run)
        return repeated


@dataclass
class Campaign:
    """Running totals over the scored chunks. With `check_keys` (a table with an id column;
    row numbers cannot repeat), repeated keys are counted too."""

    check_keys: bool = True
    scored: int = 0
    quarantined: int = 0
    contacts: int = 0
    duplicate_keys: int = 0  # scored records whose key an earlier scored record had
    probability_all: int = 0  # sum of p over scored records, in units of 2**-40
    probability_contacted: int = 0
    by_column: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # the first few quarantined, in words
    repeated: list[str] = field(default_factory=list)  # the first few repeated keys
    seen: SeenKeys = field(default_factory=SeenKeys, repr=False, compare=False)

    @property
    def read(self) -> int:
        return self.scored + self.quarantined

    @property
    def invalid_share(self) -> float:
        return self.quarantined / self.read if self.read else 0.0

    def add(self, chunk: ScoredChunk) -> None:
        p = chunk.scores[PROBABILITY].to_numpy(dtype=np.float64)
        contact = chunk.scores[CONTACT].to_numpy(dtype=bool)
        self.scored += len(p)
        self.contacts += int(contact.sum())
        self.probability_all += _fixed(p)
        self.probability_contacted += _fixed(p[contact])
        if self.check_keys and len(p):
            keys = chunk.scores.iloc[:, 0]  # the key comes first (`ScoredChunk`)
            repeated = self.seen.add(keys)
            self.duplicate_keys += int(repeated.sum())
            for key in keys[repeated].iloc[: EXAMPLES - len(self.repeated)]:
                self.repeated.append(str(key))
        self.quarantined += len(chunk.quarantine)
        for columns in chunk.quarantine[COLUMNS]:
            self.by_column.update(list(columns))
        for key, reason in chunk.quarantine.iloc[: EXAMPLES - len(self.examples), :2].itertuples(
            index=False, name=None
        ):
            self.examples.append(f"{key}: {reason}")

    def summary(
        self, money: Business, model: LoadedModel, cfg: Score, **context: Any
    ) -> dict[str, Any]:
        """The summary written to `summary.json`; `context` (input, engine, ...) goes first."""
        contacted = self.probability_contacted / _UNIT
        everyone = self.probability_all / _UNIT
        profit = business.expected_profit(contacted, self.contacts, money)
        profit_all = business.expected_profit(everyone, self.scored, money)
        return {
            **context,
            "model": {
                "version": model.version,
                "sha256": model.sha256,
                "threshold": model.threshold,
            },
            "records": {
                "read": self.read,
                "scored": self.scored,
                "quarantined": self.quarantined,
                "to_contact": self.contacts,
                "duplicate_keys": self.duplicate_keys,
            },
            "quarantine": {
                "share": round(self.invalid_share, 6),
                "max_share": cfg.max_invalid_share,
                "by_column": dict(self.by_column.most_common()),
            },
            "money": {
                "basis": (
                    "expected values from the model's probabilities (no labels yet): a contact "
                    "of a record with probability p earns p x success_rate x success_value "
                    "and costs contact_cost; contacting everyone sums that over every scored "
                    "record, contacting no one earns 0"
                ),
                "contact_cost": money.contact_cost,
                "success_rate": money.success_rate,
                "success_value": money.success_value,
                "expected_positives_contacted": round(contacted, 2),
                "expected_cost": _money(money.contact_cost * self.contacts),
                "expected_profit": _money(profit),
                "expected_profit_contact_all": _money(profit_all),
                "expected_profit_contact_none": 0.0,
                "expected_profit_vs_contact_all": _money(profit - profit_all),
                "expected_profit_vs_contact_none": _money(profit),
            },
        }


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.2%}" if whole else "-"


def summary_table(summary: dict[str, Any], positive_name: str) -> str:
    """The few lines a person reads after a run (`positive_name`: params project)."""
    r, m, q = summary["records"], summary["money"], summary["quarantine"]
    rows = [
        ("Records read", f"{r['read']:,}", ""),
        ("Scored", f"{r['scored']:,}", ""),
        (
            "Quarantined (break the contract)",
            f"{r['quarantined']:,}",
            _share(r["quarantined"], r["read"]),
        ),
        ("To contact", f"{r['to_contact']:,}", _share(r["to_contact"], r["scored"])),
        (f"Expected {positive_name} among them", f"{m['expected_positives_contacted']:,.0f}", ""),
        ("Expected cost of the contacts", f"{m['expected_cost']:,.0f}", ""),
        ("Expected profit", f"{m['expected_profit']:,.0f}", ""),
        (
            "Expected profit vs contacting everyone",
            f"{m['expected_profit_vs_contact_all']:,.0f}",
            "",
        ),
        (
            "Expected profit vs contacting no one",
            f"{m['expected_profit_vs_contact_none']:,.0f}",
            "",
        ),
    ]
    if r.get("duplicate_keys"):
        again = ("Of them scored again (a repeated key)", f"{r['duplicate_keys']:,}", "")
        rows.insert(2, again)
    width = max(len(label) for label, _, _ in rows)
    lines = [f"{label:<{width}}  {value:>12}  {share:>7}".rstrip() for label, value, share in rows]
    top = list(q["by_column"].items())[:TOP_REASONS]
    if top:
        lines.append("Quarantined by column: " + ", ".join(f"{c} {n:,}" for c, n in top))
    lines.append(
        "Money: expected values from the model's probabilities (no labels yet); "
        f"model {summary['model']['version']}, threshold {summary['model']['threshold']:.4f}."
    )
    return "\n".join(lines) + "\n"
