"""Per-decision explanations (core/explain.py): exact, additive, routed like scikit-learn.

- additivity (base value + contributions = decision_function, 1e-6) on the team's rows, for
  the trained gradient-boosting model and for the logistic-regression kind, with the
  probability bit for bit the model's own;
- routing parity: the explainer's own traversal gives scikit-learn's raw output on rows with
  missing values, categories never seen in training, and codes outside any category;
- agreement with shap's TreeExplainer (the reference) on a numeric-only model, and shap's
  wrong answers on native categorical splits (the reason it is not used);
- exact Shapley values by brute force on a tiny categorical model: every feature subset,
  the path-dependent conditional expectation by a plain traversal written from
  scikit-learn's `_predictor.pyx`;
- explanations in the data's terms: top k by |contribution|, the rest summed, values as the
  record has them; importance per segment.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from mlops_template.core import explain
from mlops_template.core.errors import InputError
from mlops_template.core.explain import (
    ALL,
    OTHER_FEATURES,
    ExplainError,
    TreeShap,
    attribute_frame,
    build_explainer,
    explain_frame,
    explain_rows,
    segment_importance,
)
from mlops_template.core.model import (
    LoadedModel,
    build_classifier,
    load_model,
    package_model,
    write_model,
)
from mlops_template.core.params import Params
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Kind
from mlops_template.pipeline.split import split_table
from mlops_template.pipeline.train import train_model
from tests.support import params_with, require, team_table

N_ROWS = 6000  # of the team's rows (the built-in sample, or at most this many of a file)
ADDITIVITY = 1e-6
PARITY = 1e-9


@dataclass(frozen=True)
class Trained:
    model: LoadedModel
    train: pd.DataFrame
    test: pd.DataFrame


def _changes(params: Params, **more: Any) -> dict[str, Any]:
    changes: dict[str, Any] = {"threshold.cv_folds": 2, **more}
    if params.data.uses_sample:
        changes["data.sample.n_rows"] = N_ROWS
    return changes


def _train(params: Params, directory: Path) -> Trained:
    """Train like the pipeline, write the model file and load it back like the service."""
    frame = team_table(params, n_rows=N_ROWS)
    train, test = split_table(frame, params.split)
    estimator = train_model(train, params)
    path, card = directory / "model.joblib", directory / "model_card.json"
    write_model(*package_model(estimator, params.model, len(train)), path, card)
    return Trained(load_model(path, card), train, test)


@pytest.fixture(scope="module")
def trees(params: Params, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return _train(params_with(_changes(params)), tmp_path_factory.mktemp("trees"))


@pytest.fixture(scope="module")
def linear(params: Params, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    changes = _changes(params, **{"model.kind": "logistic_regression"})
    return _train(params_with(changes), tmp_path_factory.mktemp("linear"))


def _raw(model: LoadedModel, frame: pd.DataFrame) -> np.ndarray:
    """The model's own log-odds."""
    return np.asarray(model.estimator.estimator_.decision_function(model.table.encode(frame)))


# --- additivity and the model's own numbers -------------------------------------------------


@pytest.mark.model
@pytest.mark.parametrize("kind", ["trees", "linear"])
def test_contributions_add_up_to_the_models_log_odds(
    kind: str, request: pytest.FixtureRequest
) -> None:
    trained: Trained = request.getfixturevalue(kind)
    model, rows = trained.model, trained.test
    attribution = build_explainer(model).attribute(model.table.encode(rows))
    raw = _raw(model, rows)
    total = attribution.base_value + attribution.contributions.sum(axis=1)
    worst = float(np.max(np.abs(total - raw)))
    assert worst <= ADDITIVITY, f"{kind}: base + contributions misses the log-odds by {worst}"
    assert np.max(np.abs(attribution.log_odds - raw)) <= PARITY
    # The probability is the model's own, bit for bit what /predict answers.
    np.testing.assert_array_equal(attribution.probability, model.probability(rows))
    assert np.all(np.isfinite(attribution.contributions))
    assert np.ptp(attribution.contributions, axis=0).max() > 0, "contributions vary by record"


@pytest.mark.model
def test_tree_base_value_is_the_training_mean_of_the_log_odds(trees: Trained) -> None:
    """Path-dependent TreeSHAP's base value is each tree's leaves weighted by their training
    rows: on the training rows, the mean of the model's log-odds."""
    model = trees.model
    explainer = build_explainer(model)
    assert isinstance(explainer, TreeShap)
    mean = float(np.mean(_raw(model, trees.train)))
    assert math.isclose(explainer.base_value, mean, abs_tol=1e-9), (explainer.base_value, mean)


@pytest.mark.model
def test_linear_base_value_is_the_reference_record(linear: Trained) -> None:
    """Numbers at their training mean, each category at its most frequent training value."""
    model, train = linear.model, linear.train
    reference: dict[str, Any] = {}
    for col in model.table.features:
        values = train[col.name]
        if col.kind is Kind.CATEGORICAL and not col.ordered:
            reference[col.name] = values.mode().iloc[0]
        elif col.kind is Kind.NUMERIC and not values.isna().any():  # no missing indicator
            reference[col.name] = float(values.mean())
    frame = train.head(1).copy()
    for name, value in reference.items():
        frame[name] = value
    phi = attribute_frame(model, frame).iloc[0]
    for name in reference:  # a record at the reference gets nothing from these columns
        assert phi[name] == pytest.approx(0.0, abs=1e-12), name


# --- routing exactly like scikit-learn -------------------------------------------------------


def _unordered() -> list[str]:
    return [c.name for c in TABLE.features if c.kind is Kind.CATEGORICAL and not c.ordered]


@pytest.fixture(scope="module")
def unseen(trees: Trained, params: Params) -> tuple[HistGradientBoostingClassifier, pd.DataFrame]:
    """Gradient boosting trained without the first category of each unordered categorical
    column (so the schema lists categories the model never saw, codes below ones it saw),
    and test rows that have them."""
    names = _unordered()
    if not names:
        pytest.skip("the table has no unordered categorical features")
    train = trees.train
    for name in names:
        train = train[train[name] != TABLE.by_name[name].categories[0]]
    hgb = build_classifier(params_with(_changes(params)).model, TABLE)
    hgb.fit(TABLE.encode(train), TABLE.target(train))
    return hgb, trees.test


def _odd_matrix(matrix: np.ndarray) -> np.ndarray:
    """Rows with every kind of value a split can meet: missing everywhere, one feature at a
    time missing, and category codes that name no category (out of range, negative,
    fractional)."""
    rows = [matrix[:50], np.full((1, matrix.shape[1]), np.nan)]
    for j in range(matrix.shape[1]):
        row = matrix[50:51].copy()
        row[0, j] = np.nan
        rows.append(row)
    for j in np.flatnonzero(TABLE.categorical_mask):
        for code in (len(TABLE.features[j].categories), 250.0, 1e9, -1.0, 0.5):
            row = matrix[60:61].copy()
            row[0, j] = code
            rows.append(row)
    return np.vstack(rows)


@pytest.mark.model
def test_traversal_matches_decision_function_on_missing_and_unknown_categories(
    unseen: tuple[HistGradientBoostingClassifier, pd.DataFrame],
) -> None:
    hgb, test = unseen
    matrix = _odd_matrix(TABLE.encode(test))
    explainer = TreeShap(hgb)
    raw = hgb.decision_function(matrix)
    gap = float(np.max(np.abs(explainer.log_odds(matrix) - raw)))
    assert gap <= PARITY, f"own traversal differs from decision_function by {gap}"
    attribution = explainer.attribute(matrix)
    total = attribution.base_value + attribution.contributions.sum(axis=1)
    assert np.max(np.abs(total - raw)) <= ADDITIVITY
    names = _unordered()
    unseen_rows = np.zeros(len(test), dtype=bool)
    for name in names:
        unseen_rows |= (test[name] == TABLE.by_name[name].categories[0]).to_numpy()
    assert unseen_rows.any(), "the test rows include categories the model never saw"


@pytest.mark.model
def test_without_memo_tables_the_values_are_the_same(
    trees: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leaves with few distinct features are looked up in tables computed once; with no
    tables at all, EXTEND/UNWIND run per record and must give the same numbers."""
    hgb = trees.model.estimator.estimator_
    matrix = TABLE.encode(trees.test.head(200))
    with_tables = TreeShap(hgb)
    assert any(b.table is not None for b in with_tables.buckets)
    monkeypatch.setattr(explain, "TABLE_BUDGET", 0)
    direct = TreeShap(hgb)
    assert all(b.table is None for b in direct.buckets)
    np.testing.assert_allclose(
        direct.attribute(matrix).contributions,
        with_tables.attribute(matrix).contributions,
        rtol=0,
        atol=1e-12,
    )


# --- the reference: shap -----------------------------------------------------------------------


def _shap() -> Any:
    require(
        importlib.util.find_spec("shap") is not None,
        "shap (dev group) is not installed; it does not install on Intel Macs",
    )
    import shap

    return shap


@pytest.mark.model
def test_agrees_with_shap_tree_explainer_on_a_numeric_model(trees: Trained) -> None:
    """Every column as a number (no categorical splits), where shap 0.51 is exact."""
    shap = _shap()
    train = TABLE.encode(trees.train)
    hgb = HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=31, random_state=0)
    hgb.fit(train, TABLE.target(trees.train))
    matrix = TABLE.encode(trees.test.head(300))
    ours = TreeShap(hgb).attribute(matrix)
    reference = shap.TreeExplainer(hgb)
    values = np.asarray(reference.shap_values(matrix))
    np.testing.assert_allclose(ours.contributions, values, rtol=0, atol=1e-6)
    expected = float(np.ravel(reference.expected_value)[0])
    assert math.isclose(ours.base_value, expected, abs_tol=1e-6)


@pytest.mark.model
def test_shap_misreads_native_categorical_splits(trees: Trained) -> None:
    """Why shap is not the explainer here (README "Explanations"). If this starts failing,
    a newer shap explains scikit-learn's categorical splits: reconsider using it."""
    if not any(TABLE.categorical_mask):
        pytest.skip("the table has no unordered categorical features")
    shap = _shap()
    hgb = trees.model.estimator.estimator_
    matrix = TABLE.encode(trees.test.head(300))
    reference = shap.TreeExplainer(hgb)
    values = np.asarray(reference.shap_values(matrix))
    total = float(np.ravel(reference.expected_value)[0]) + values.sum(axis=1)
    gap = float(np.max(np.abs(total - hgb.decision_function(matrix))))
    assert gap > 1e-3, f"shap's values now add up (gap {gap:.2e})"


# --- exact Shapley values by brute force, tiny categorical model --------------------------------


def _tiny_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Five features, the categorical ones (1 and 3) in the middle: numeric x0 with missing
    values, categories c1 (0..3, some missing), numeric x2, categories c3 (0, 2, 3, 4: code 1
    is never in training), numeric x4."""
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=n)
    x0[rng.random(n) < 0.15] = np.nan
    c1 = rng.integers(0, 4, n).astype(float)
    c1[rng.random(n) < 0.1] = np.nan
    x2 = rng.integers(0, 20, n).astype(float)
    c3 = rng.choice([0.0, 2.0, 3.0, 4.0], n)
    x4 = rng.normal(size=n)
    logit = np.nan_to_num(x0) + 1.5 * (c1 == 2) - (c1 == 0) + 0.1 * x2 - 1.2 * (c3 == 2) + x4
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return np.column_stack([x0, c1, x2, c3, x4]), y


TINY_MASK = [False, True, False, True, False]


def _bit(bitset: np.ndarray, value: int) -> bool:
    return bool((int(bitset[value // 32]) >> (value % 32)) & 1)


@dataclass(frozen=True)
class _Tree:
    hgb: Any
    predictor: Any
    known: np.ndarray  # known categories' bitsets, per categorical feature
    f_idx_map: np.ndarray  # tree feature -> row of `known`


def _child(tree: _Tree, node: Any, x: np.ndarray) -> int:
    """The child a preprocessed row goes to: `_predict_one_from_raw_data` line by line."""
    predictor, known, f_idx_map = tree.predictor, tree.known, tree.f_idx_map
    value = x[int(node["feature_idx"])]
    missing = int(node["left"]) if node["missing_go_to_left"] else int(node["right"])
    if math.isnan(value):
        return missing
    if node["is_categorical"]:
        if value < 0:
            return missing
        code = int(value)
        if _bit(predictor.raw_left_cat_bitsets[int(node["bitset_idx"])], code):
            return int(node["left"])
        if _bit(known[int(f_idx_map[int(node["feature_idx"])])], code):
            return int(node["right"])
        return missing
    return int(node["left"]) if value <= node["num_threshold"] else int(node["right"])


def _expectation(tree: _Tree, x: np.ndarray, known: set[int], i: int = 0) -> float:
    """E[tree(X) | X_S = x_S], path-dependent: follow x where the split's feature is in S,
    else average both children by their training rows."""
    nodes = tree.predictor.nodes
    node = nodes[i]
    if node["is_leaf"]:
        return float(node["value"])
    if int(node["feature_idx"]) in known:
        return _expectation(tree, x, known, _child(tree, node, x))
    left, right = int(node["left"]), int(node["right"])
    weighted = [float(nodes[c]["count"]) * _expectation(tree, x, known, c) for c in (left, right)]
    return sum(weighted) / float(node["count"])


def _brute_force(hgb: Any, row: np.ndarray) -> tuple[float, np.ndarray]:
    """(v(empty set), exact Shapley values) over every subset of the five features."""
    m = row.size
    # scikit-learn fits the trees on its preprocessor's output: categorical columns first.
    tree_feature = {
        j: t
        for t, j in enumerate(
            np.r_[np.flatnonzero(TINY_MASK), np.flatnonzero(~np.asarray(TINY_MASK))]
        )
    }
    assert hgb._preprocessor.output_indices_["encoder"] == slice(0, sum(TINY_MASK))
    x = hgb._preprocessor.transform(row[None, :])[0]
    baseline = float(np.ravel(hgb._baseline_prediction)[0])
    known_bitsets, f_idx_map = hgb._bin_mapper.make_known_categories_bitsets()
    trees = [_Tree(hgb, p, known_bitsets, f_idx_map) for (p,) in hgb._predictors]

    def v(subset: tuple[int, ...]) -> float:
        known = {tree_feature[j] for j in subset}
        return baseline + sum(_expectation(tree, x, known) for tree in trees)

    values = {s: v(s) for r in range(m + 1) for s in itertools.combinations(range(m), r)}
    phi = np.zeros(m)
    for i in range(m):
        for subset, without in values.items():
            if i in subset:
                continue
            weight = math.factorial(len(subset)) * math.factorial(m - len(subset) - 1)
            with_i = tuple(sorted((*subset, i)))
            phi[i] += weight / math.factorial(m) * (values[with_i] - without)
    return values[()], phi


def _tiny_rows() -> Iterator[np.ndarray]:
    matrix, _ = _tiny_data(12, seed=5)
    yield from matrix
    odd = matrix[0].copy()
    for j, code in ((1, np.nan), (3, 1.0), (3, 9.0), (1, 1.5), (1, -1.0)):
        row = odd.copy()
        row[j] = code  # missing, never in training, out of range, fractional, negative
        yield row
    yield np.full(5, np.nan)


@pytest.mark.unit
def test_exact_shapley_values_by_brute_force_on_a_tiny_categorical_model() -> None:
    matrix, y = _tiny_data(3000, seed=0)
    hgb = HistGradientBoostingClassifier(
        max_iter=8, max_leaf_nodes=6, categorical_features=TINY_MASK, random_state=0
    ).fit(matrix, y)
    assert any(
        p.nodes["is_categorical"][~p.nodes["is_leaf"].astype(bool)].any()
        for (p,) in hgb._predictors
    ), "the tiny model splits on categories"
    rows = np.vstack(list(_tiny_rows()))
    explainer = TreeShap(hgb)
    np.testing.assert_array_equal(explainer.log_odds(rows), hgb.decision_function(rows))
    attribution = explainer.attribute(rows)
    for i, row in enumerate(rows):
        empty, phi = _brute_force(hgb, row)
        assert math.isclose(attribution.base_value, empty, abs_tol=1e-12)
        np.testing.assert_allclose(attribution.contributions[i], phi, rtol=0, atol=1e-12)


# --- in the data's own terms ---------------------------------------------------------------------


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as the service gets them: plain values, None for missing."""
    records: list[dict[str, Any]] = (
        frame.astype(object).where(frame.notna(), None).to_dict("records")
    )
    return records


@pytest.mark.model
def test_explanations_speak_in_the_records_own_terms(trees: Trained, params: Params) -> None:
    model, rows = trees.model, trees.test.head(40)
    top_k = params.explain.top_k
    explained = explain_frame(model, rows, top_k)
    phi = attribute_frame(model, rows)
    assert [e.key for e in explained] == model.table.keys(rows)
    for e, (_, row), (_, contributions) in zip(
        explained, rows.iterrows(), phi.iterrows(), strict=True
    ):
        shown = e.contributions[:top_k]
        assert [c.feature for c in shown] == list(contributions.abs().sort_values(
            ascending=False, kind="stable").index[:top_k])  # fmt: skip
        for c in shown:
            expected = row[c.feature]
            assert c.value == (None if pd.isna(expected) else expected), c
            assert not isinstance(c.value, np.generic), "plain Python values"
            assert c.text.startswith(f"{c.feature} = ")
            assert c.direction in c.text or c.contribution == 0
            assert c.contribution == contributions[c.feature]
        rest = e.contributions[top_k:]
        left = len(model.table.features) - top_k
        assert [c.feature for c in rest] == ([OTHER_FEATURES] if left > 0 else [])
        if left > 0:
            assert f"other {left} features" in rest[0].text
        total = e.base_value + sum(c.contribution for c in e.contributions)
        assert math.isclose(total, e.log_odds, abs_tol=ADDITIVITY)
        assert e.probability == pytest.approx(1 / (1 + math.exp(-e.log_odds)), abs=1e-12)
        assert e.contact == (e.probability >= model.threshold)
    categorical = [c.name for c in TABLE.features if c.kind is Kind.CATEGORICAL]
    values = {c.value for e in explained for c in e.contributions if c.feature in categorical}
    allowed = {v for name in categorical for v in TABLE.by_name[name].categories} | {None}
    assert values <= allowed, "categories are named, never given as their codes"


@pytest.mark.model
def test_rows_and_frames_give_the_same_explanations(trees: Trained) -> None:
    rows = trees.test.head(30)
    from_frame = explain_frame(trees.model, rows, 4)
    from_rows = explain_rows(trees.model, _records(rows), 4)
    if TABLE.id is None:  # keyed by position: the frame's rows are numbered the same way
        assert [e.key for e in from_rows] == list(range(len(rows)))
    assert from_rows == from_frame


@pytest.mark.model
def test_top_k_covering_every_feature_leaves_nothing_to_sum(trees: Trained) -> None:
    n = len(TABLE.features)
    (e,) = explain_frame(trees.model, trees.test.head(1), n + 3)
    assert len(e.contributions) == n
    assert OTHER_FEATURES not in [c.feature for c in e.contributions]
    with pytest.raises(InputError, match="top_k"):
        explain_frame(trees.model, trees.test.head(1), 0)


@pytest.mark.model
def test_a_model_from_before_the_encoding_is_refused(trees: Trained) -> None:
    old = LoadedModel(trees.model.estimator, trees.model.card.model_copy(update={"encoding": None}))
    explain._EXPLAINERS.pop(old.estimator, None)
    try:
        with pytest.raises(ExplainError, match="predates"):
            build_explainer(old)
    finally:
        explain._EXPLAINERS.pop(old.estimator, None)


@pytest.mark.model
def test_importance_per_segment(trees: Trained, params: Params) -> None:
    model, rows = trees.model, trees.test
    if not params.evaluate.segments:
        pytest.skip("params.yaml names no evaluate.segments")
    column = params.evaluate.segments[0]
    n = len(rows) // 2  # a sample of the rows
    found = segment_importance(model, rows, column, top_n=3, min_rows=1, max_rows=n, seed=1)
    whole, segments = found[0], found[1:]
    assert whole.segment == ALL
    assert whole.n_rows == n
    assert sum(s.n_rows for s in segments) == whole.n_rows, "segments partition the sample"
    assert {s.segment for s in segments} <= set(rows[column].unique()) | {None}
    sample = rows.sample(n=n, random_state=1)
    phi = attribute_frame(model, sample)
    for s in found:
        values = list(s.importance.values())
        assert values == sorted(values, reverse=True)
        assert set(s.importance) == set(TABLE.feature_names)
        part = phi if s.segment == ALL else phi[(sample[column] == s.segment).to_numpy()]
        for name, value in s.importance.items():
            assert value == pytest.approx(part[name].abs().mean(), rel=1e-12)
        assert s.top == tuple(list(s.importance)[:3])
        assert s.differs == (set(s.top) != set(whole.top))
        assert -1.0 <= s.rank_correlation <= 1.0
    reused = segment_importance(
        model, rows, column, top_n=3, min_rows=1, max_rows=n, seed=1,
        contributions=attribute_frame(model, rows),
    )  # fmt: skip
    for again, first in zip(reused, found, strict=True):
        assert again.importance == pytest.approx(first.importance, rel=1e-12)
    bigger = segment_importance(model, rows, column, min_rows=10**9)
    assert len(bigger) == 1, "segments below min_rows are left out"
    with pytest.raises(InputError, match="not in the frame"):
        segment_importance(model, rows, "__no_such_column__")
