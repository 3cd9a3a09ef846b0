"""The campaign summary's maths on hand-made chunks: counts, expected cost and profit from
probabilities against contacting everyone and no one, independent of chunking and order."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_template.core.model import LoadedModel
from mlops_template.core.params import Business, Score
from mlops_template.scoring.campaign import Campaign, summary_table
from mlops_template.scoring.score import COLUMNS, CONTACT, PROBABILITY, REASON, ScoredChunk
from tests.scoring.conftest import Trained

pytestmark = pytest.mark.unit

# A contact costs 10 and reaches a positive worth 0.3 x 200 = 60.
MONEY = Business(contact_cost=10.0, success_value=200.0, success_rate=0.3)
CFG = Score(max_invalid_share=0.5, chunk_rows=10, threads=1)


def _chunk(
    p: list[float],
    contact: list[bool],
    bad: list[list[str]] | None = None,
    keys: list[Any] | None = None,
) -> ScoredChunk:
    bad = bad or []
    keys = list(range(len(p))) if keys is None else keys
    scores = pd.DataFrame({"key": keys, PROBABILITY: p, CONTACT: contact})
    quarantine = pd.DataFrame(
        {"key": [f"q{i}" for i in range(len(bad))], REASON: ["why"] * len(bad), COLUMNS: list(bad)}
    )
    return ScoredChunk(scores, quarantine)


def _summary(chunks: list[ScoredChunk], model: LoadedModel) -> dict[str, Any]:
    campaign = Campaign()
    for chunk in chunks:
        campaign.add(chunk)
    return campaign.summary(MONEY, model, CFG)


def test_expected_money_comes_from_the_probabilities(trained: Trained) -> None:
    chunks = [_chunk([0.5, 0.25, 0.1], [True, True, False], [["a"], ["a", "b"]])]
    s = _summary(chunks, trained.model)
    assert s["records"] == {
        "read": 5,
        "scored": 3,
        "quarantined": 2,
        "to_contact": 2,
        "duplicate_keys": 0,
    }
    assert s["quarantine"]["by_column"] == {"a": 2, "b": 1}
    m = s["money"]
    assert m["expected_positives_contacted"] == pytest.approx(0.75)
    assert m["expected_cost"] == 20.0
    assert m["expected_profit"] == pytest.approx(60 * 0.75 - 20)
    assert m["expected_profit_contact_all"] == pytest.approx(60 * 0.85 - 30)
    assert m["expected_profit_vs_contact_all"] == pytest.approx(25 - 21)
    assert m["expected_profit_vs_contact_none"] == pytest.approx(25)
    assert m["expected_profit_contact_none"] == 0.0


def test_the_summary_does_not_depend_on_chunks_or_order(trained: Trained) -> None:
    rng = np.random.default_rng(0)
    p = rng.random(10_001)
    contact = p >= 0.3
    whole = _summary([_chunk(list(p), list(contact))], trained.model)
    order = rng.permutation(len(p))
    pieces = [
        _chunk(list(p[idx]), list(contact[idx]), keys=list(idx))
        for idx in np.array_split(order, [7, 500, 9000])
    ]
    assert _summary(pieces, trained.model) == whole
    assert whole["records"]["duplicate_keys"] == 0


def test_repeated_keys_are_counted_once_each_whatever_the_chunks(trained: Trained) -> None:
    """Keys repeat within a chunk and across chunks; every repeat is scored and counted."""
    rng = np.random.default_rng(1)
    keys = [f"id-{k}" for k in rng.integers(0, 3000, 10_000)]
    expected = len(keys) - len(set(keys))
    p = list(rng.random(len(keys)))
    whole = _summary([_chunk(p, [True] * len(p), keys=keys)], trained.model)
    assert whole["records"]["duplicate_keys"] == expected
    assert whole["records"]["scored"] == len(keys), "repeated keys are still scored"
    for cuts in ([1], [97, 98, 5000], list(range(100, 10_000, 100))):
        bounds = [0, *cuts, len(keys)]
        chunks = [
            _chunk(p[a:b], [True] * (b - a), keys=keys[a:b]) for a, b in itertools.pairwise(bounds)
        ]
        assert _summary(chunks, trained.model) == whole, cuts
    campaign = Campaign()
    campaign.add(_chunk([0.1, 0.2, 0.3, 0.4], [False] * 4, keys=["a", "b", "a", "c"]))
    campaign.add(_chunk([0.5, 0.6], [False] * 2, keys=["c", "d"]))
    assert (campaign.duplicate_keys, campaign.repeated) == (2, ["a", "c"])
    text = summary_table(campaign.summary(MONEY, trained.model, CFG), "positive")
    assert "scored again (a repeated key)" in text


def test_without_key_checks_nothing_is_counted(trained: Trained) -> None:
    campaign = Campaign(check_keys=False)
    campaign.add(_chunk([0.1, 0.2], [False, False], keys=[7, 7]))
    assert campaign.duplicate_keys == 0
    assert "scored again" not in summary_table(
        campaign.summary(MONEY, trained.model, CFG), "positive"
    )


def test_the_printed_table_names_every_figure(trained: Trained) -> None:
    s = _summary([_chunk([0.5, 0.25], [True, False], [["a"]])], trained.model)
    text = summary_table(s, "positive")
    for words in ("Records read", "Quarantined", "To contact", "Expected cost", "everyone"):
        assert words in text
    assert "33.33%" in text  # 1 of 3 read records quarantined
    assert "no labels" in text
