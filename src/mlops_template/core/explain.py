"""Per-decision explanations: why the model gave a record its probability, in the data's terms.

For every record: the model's probability and contact decision, a base value, and one
contribution per feature, all in log-odds, such that

    base_value + sum(contributions) = the model's log-odds for the record (`decision_function`)
    probability = sigmoid(log-odds)

(additivity; tests hold it to 1e-6 on the team's rows). The probability and the decision are
the model's own, bit for bit the ones `/predict` answers.

How the contributions are computed depends on `model.kind`:

- `hist_gradient_boosting`: exact **path-dependent TreeSHAP** (Lundberg, Erion and Lee 2018,
  "Consistent individualized feature attribution for tree ensembles", Algorithm 2: the
  path weights grown by EXTEND and taken apart by UNWIND) over scikit-learn's fitted trees.
  The base value is the model's expected log-odds over its training data as the trees saw it
  (every leaf weighted by the share of training rows that reached it). Records are routed
  through the trees exactly as scikit-learn routes them (`_predictor.pyx`): a numeric split
  sends `x <= threshold` left and a missing value where training sent missing values; a
  categorical split sends the categories in its bitset left, the other categories seen in
  training right, and a missing category, or one never seen in training, where missing
  values go. The log-odds so computed are scikit-learn's to the last bit (tested).
- `logistic_regression`: the exact linear terms `coef * (z - z_ref)` of the transformed
  features `z` (scaled numbers, missing indicators, one-hot categories), summed per column,
  relative to a **reference record** the model itself defines: every number (and missing
  indicator) at its training mean, where the scaler centres it, and every category at its
  most frequent training value, which the imputer stores. The base value is the model's
  log-odds for that reference record.

Why not shap: shap 0.51 (the last release for Python 3.11) runs its TreeExplainer on
scikit-learn 1.9's gradient boosting with native categorical features but returns wrong
values (off by up to 6.6 in log-odds in a measured case) while its own additivity check
passes: its parser (shap/explainers/_tree.py) takes each node's `feature_idx` for an input
column, although scikit-learn numbers the categorical columns first, and reads every split
as `x <= num_threshold`, ignoring the categorical bitsets. It would also bring numba and
llvmlite (~190 MB) into the serving image. It stays a test-only reference, on a numeric-only
model, where it is exact.

The cost is that of the algorithm, O(trees x leaves x depth^2) per record, run as numpy
array operations over all records and leaves at once (benchmarks/explain.py measures it).
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import numpy as np
import pandas as pd

from mlops_template.core.errors import InputError, ProjectError
from mlops_template.core.model import LoadedModel

log = logging.getLogger(__name__)

OTHER_FEATURES: Final = "(other features)"  # the entry that sums what the top k leave out
# Work arrays of the tree algorithm hold rows x leaves x (depth + 1) floats; records are
# explained in chunks of at most this many elements (16 MiB per array).
CHUNK_ELEMENTS: Final = 1 << 21
# One fractions are 0 or 1, so a leaf whose path splits on k distinct features has 2**k
# possible results; they are computed once per model and looked up, for the smallest k
# first, while all such tables together hold at most this many floats (64 MiB).
TABLE_BUDGET: Final = 1 << 23
Direction = Literal["raises", "lowers", "none"]


class ExplainError(ProjectError):
    """The model cannot be explained exactly (an estimator this module does not know)."""


# --- what an explanation is ---------------------------------------------------------------


@dataclass(frozen=True)
class Contribution:
    """One feature's share of a record's log-odds, relative to the base value."""

    feature: str  # the column, or OTHER_FEATURES for the sum of the features not shown
    value: Any  # the record's value in the data's own type (the category, not its code)
    contribution: float  # in log-odds
    text: str  # e.g. "contract = month_to_month raises the log-odds by 0.420"

    @property
    def direction(self) -> Direction:
        if self.contribution > 0:
            return "raises"
        return "lowers" if self.contribution < 0 else "none"

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "value": self.value,
            "contribution": self.contribution,
            "direction": self.direction,
            "text": self.text,
        }


@dataclass(frozen=True)
class Explanation:
    """Why the model gave one record its probability."""

    key: Any  # the record's id (or its row number when the table has no id column)
    probability: float  # P(positive label), the model's own
    contact: bool  # probability >= the model's threshold
    base_value: float  # the log-odds before any feature is known (see the module docstring)
    contributions: tuple[Contribution, ...]  # top k by |contribution|, then OTHER_FEATURES
    log_odds: float = math.nan  # = base_value + sum of all contributions

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "probability": self.probability,
            "contact": self.contact,
            "log_odds": self.log_odds,
            "base_value": self.base_value,
            "contributions": [c.to_dict() for c in self.contributions],
        }


@dataclass(frozen=True)
class Attribution:
    """The numbers behind explanations: one row per record, one column per feature."""

    base_value: float
    log_odds: np.ndarray  # (n,)
    probability: np.ndarray  # (n,)
    contributions: np.ndarray  # (n, n_features), log-odds


class Explainer(Protocol):
    method: str
    base_value: float

    def attribute(self, matrix: np.ndarray) -> Attribution:
        """Attributions of the model's input rows (`Table.encode`)."""
        ...


# --- path-dependent TreeSHAP over scikit-learn's histogram gradient boosting ----------------


@dataclass(frozen=True)
class _Bucket:
    """The leaves whose root-to-leaf path splits on exactly `k` distinct features."""

    k: int
    leaves: np.ndarray  # (n,) the leaves, numbered in tree order
    slots: np.ndarray  # (n, k) columns of the slot matrix: one per (leaf, distinct feature)
    zero: np.ndarray  # (n, k) zero fractions: share of training rows the path keeps
    value: np.ndarray  # (n,) leaf values (log-odds, learning rate applied)
    scatter: np.ndarray  # (n * k, n_features) one-hot of each slot's feature
    # (n, 2**k, k): each slot's contribution for every pattern of one fractions (bit e of
    # the pattern = slot e's), when small enough to keep (see TABLE_BUDGET)
    table: np.ndarray | None


def _leaf_shap(one: np.ndarray, zero: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Algorithm 2's leaf step for many leaves and records at once: each slot's contribution.

    `one` (rows, n, k): the one fractions (0 or 1: does the record follow the path's
    splits on the slot's feature); `zero` (n, k): the zero fractions; `value` (n,): the leaf
    values. The path starts at the root's element (z = o = 1, weight 1); EXTEND adds the k
    distinct features; then UNWIND removes each one in turn, and the sum of the weights
    left, times (o - z) times the leaf value, is that feature's contribution from the leaf.
    """
    rows, n, k = one.shape
    # EXTEND, element s (1-based) added to a path of s elements (weights w[0..s-1]):
    #   w[i] <- z_s w[i] (s - i) / (s + 1) + o_s w[i - 1] i / (s + 1),   i = 0..s
    w = np.zeros((rows, n, k + 1))
    w[..., 0] = 1.0
    for s in range(1, k + 1):
        i = np.arange(s + 1)
        head = w[..., : s + 1]
        grown = head * (zero[:, s - 1][None, :, None] * ((s - i) / (s + 1)))
        grown[..., 1:] += one[..., s - 1 : s] * head[..., :-1] * (i[1:] / (s + 1))
        w[..., : s + 1] = grown
    # UNWIND element e from the path of k + 1 elements and sum what is left. Its two
    # branches: o_e = 0 divides each weight out directly; o_e = 1 runs down from the top.
    z = zero[None]
    total_off = (w[..., :k] @ ((k + 1) / (k - np.arange(k))))[..., None] / z
    rest = np.repeat(w[..., k:], k, axis=2)
    total_on = np.zeros_like(rest)
    for j in range(k - 1, -1, -1):
        step = rest * ((k + 1) / (j + 1))
        total_on += step
        rest = w[..., j : j + 1] - step * z * ((k - j) / (k + 1))
    total = np.where(one > 0, total_on, total_off)
    out: np.ndarray = total * (one - z) * value[None, :, None]
    return out


def _pattern_table(zero: np.ndarray, value: np.ndarray) -> np.ndarray:
    """(n, 2**k, k): `_leaf_shap` for every pattern of one fractions of each leaf."""
    n, k = zero.shape
    patterns = ((np.arange(1 << k)[:, None] >> np.arange(k)) & 1).astype(np.float64)
    table = np.empty((n, 1 << k, k))
    step = max(1, CHUNK_ELEMENTS // (n * (k + 1)))
    for start in range(0, 1 << k, step):
        chunk = patterns[start : start + step]
        one = np.broadcast_to(chunk[:, None, :], (len(chunk), n, k))
        table[:, start : start + step] = _leaf_shap(one, zero, value).transpose(1, 0, 2)
    return table


def _tree_columns(hgb: Any) -> np.ndarray:
    """The input column behind each feature index the trees use.

    With categorical features, scikit-learn fits its trees on the output of an internal
    ColumnTransformer: the categorical columns first (ordinal-encoded), then the others.
    """
    n = int(hgb.n_features_in_)
    pre = hgb._preprocessor
    if pre is None:
        return np.arange(n)
    columns = np.full(n, -1)
    for name, _, selected in pre.transformers_:
        if name == "remainder":
            continue
        selected = np.asarray(selected)
        columns[pre.output_indices_[name]] = (
            np.flatnonzero(selected) if selected.dtype == bool else selected
        )
    if sorted(columns.tolist()) != list(range(n)):
        raise ExplainError(f"cannot map the trees' features to the input's: {columns}")
    return columns


def _category_routes(hgb: Any, columns: np.ndarray) -> tuple[Any, int]:
    """Per categorical tree feature, the input code -> encoded value map, and the width
    (largest input code + 1) of the routing tables."""
    pre = hgb._preprocessor
    if pre is None:
        return {}, 0
    encoder = pre.named_transformers_["encoder"]
    out = pre.output_indices_["encoder"]
    maps: dict[int, dict[int, int]] = {}
    width = 0
    for position, seen in enumerate(encoder.categories_):
        tree_feature = out.start + position
        codes = {}
        for encoded, raw in enumerate(np.asarray(seen, dtype=np.float64)):
            if math.isnan(raw):
                continue  # missing: routed by missing_go_to_left
            if raw < 0 or raw != math.floor(raw):
                raise ExplainError(
                    f"column {int(columns[tree_feature])}: category code {raw} is not a "
                    "non-negative integer (Table.encode makes them)"
                )
            codes[int(raw)] = encoded
            width = max(width, int(raw) + 1)
        maps[tree_feature] = codes
    return maps, width


def _in_bitset(bitset: np.ndarray, value: int) -> bool:
    return bool((int(bitset[value // 32]) >> (value % 32)) & 1)


def _route_table(
    left_bitset: np.ndarray,
    known_bitset: np.ndarray,
    codes: dict[int, int],
    width: int,
    missing_left: bool,
) -> np.ndarray:
    """Per input code: does a categorical split send it left? As `_predictor.pyx` decides
    for the encoded value: in the split's bitset -> left; else a category known from
    training -> right; else (never seen in training) where missing values go."""
    table = np.full(width, missing_left, dtype=bool)
    for code, encoded in codes.items():
        if _in_bitset(left_bitset, encoded):
            table[code] = True
        elif _in_bitset(known_bitset, encoded):
            table[code] = False
    return table


@dataclass(frozen=True)
class _Routing:
    """Every internal node of every tree, as arrays: how a record is sent left or right."""

    feature: np.ndarray  # the input column it splits on
    threshold: np.ndarray  # numeric splits: x <= threshold goes left
    missing_left: np.ndarray  # where a missing value (or an unknown category) goes
    cat_nodes: np.ndarray  # the categorical splits among the nodes
    cat_table: np.ndarray  # (len(cat_nodes), width): does input code c go left?

    def go_left(self, matrix: np.ndarray) -> np.ndarray:
        """(rows, internal nodes): does the record go left at the node?"""
        x = matrix[:, self.feature]
        left = np.where(np.isnan(x), self.missing_left, x <= self.threshold)
        if self.cat_nodes.size:
            xc = x[:, self.cat_nodes]
            width = self.cat_table.shape[1]
            valid = (xc >= 0) & (xc < width) & (xc == np.floor(xc))  # a code seen in training
            codes = np.where(valid, xc, 0).astype(np.intp)
            routed = self.cat_table[np.arange(self.cat_nodes.size), codes]
            left[:, self.cat_nodes] = np.where(valid, routed, self.missing_left[self.cat_nodes])
        return left


# A leaf's path, per distinct feature in first-split order: (its zero fraction, the splits
# on it as (internal node, went left) that a record must follow for its one fraction to be 1).
Path = dict[int, tuple[float, list[tuple[int, bool]]]]


@dataclass(frozen=True)
class _Leaf:
    value: float
    share: float  # the share of the tree's training rows that reached it
    path: Path


def _read_trees(hgb: Any) -> tuple[_Routing, list[_Leaf]]:
    """The routing arrays of every internal node and every leaf with its path, tree by tree."""
    columns = _tree_columns(hgb)
    category_codes, width = _category_routes(hgb, columns)
    known, f_idx_map = hgb._bin_mapper.make_known_categories_bitsets()
    feature: list[int] = []
    threshold: list[float] = []
    missing_left: list[bool] = []
    cat_nodes: list[int] = []
    cat_table: list[np.ndarray] = []
    leaves: list[_Leaf] = []
    for (predictor,) in hgb._predictors:
        nodes = predictor.nodes
        internal: dict[int, int] = {}  # node in this tree -> internal node overall
        for i in np.flatnonzero(~nodes["is_leaf"].astype(bool)).tolist():
            node = nodes[i]
            f = int(node["feature_idx"])
            internal[i] = len(feature)
            feature.append(int(columns[f]))
            threshold.append(float(node["num_threshold"]))
            missing_left.append(bool(node["missing_go_to_left"]))
            if node["is_categorical"]:
                cat_nodes.append(internal[i])
                left_bitset = predictor.raw_left_cat_bitsets[int(node["bitset_idx"])]
                cat_table.append(
                    _route_table(
                        left_bitset,
                        known[int(f_idx_map[f])],
                        category_codes[f],
                        width,
                        bool(node["missing_go_to_left"]),
                    )
                )
        root = float(nodes[0]["count"])
        stack: list[tuple[int, Path]] = [(0, {})]
        while stack:  # depth first, left before right
            i, path = stack.pop()
            node = nodes[i]
            if node["is_leaf"]:
                leaves.append(_Leaf(float(node["value"]), float(node["count"]) / root, path))
                continue
            f = int(columns[int(node["feature_idx"])])
            for child, went_left in ((int(node["right"]), False), (int(node["left"]), True)):
                zero, splits = path.get(f, (1.0, []))
                share = float(nodes[child]["count"]) / float(node["count"])
                stack.append(
                    (child, {**path, f: (zero * share, [*splits, (internal[i], went_left)])})
                )
    routing = _Routing(
        feature=np.asarray(feature, dtype=np.intp),
        threshold=np.asarray(threshold, dtype=np.float64),
        missing_left=np.asarray(missing_left, dtype=bool),
        cat_nodes=np.asarray(cat_nodes, dtype=np.intp),
        cat_table=np.asarray(cat_table, dtype=bool).reshape(len(cat_table), width),
    )
    return routing, leaves


class TreeShap:
    """Exact path-dependent TreeSHAP of a fitted binary HistGradientBoostingClassifier, on
    the matrix it was fitted on; see the module docstring.

    Algorithm 2 walks each tree once per record, EXTENDing the path at every node and
    UNWINDing it at every leaf. Here each leaf's path (its distinct features, their zero
    fractions, and the splits that decide the record's one fractions) is read once per
    model, and EXTEND / UNWIND run on all leaves and records at once as array operations.
    One fractions are 0 or 1, so a leaf of k distinct features has 2**k possible results:
    for small k (TABLE_BUDGET) they are computed once per model and looked up.
    """

    method = "path-dependent TreeSHAP"

    def __init__(self, hgb: Any) -> None:
        if getattr(hgb, "n_trees_per_iteration_", None) != 1 or len(hgb.classes_) != 2:
            raise ExplainError("only binary classifiers are explained")
        self.hgb = hgb
        self.n_features = int(hgb.n_features_in_)
        self.n_trees = len(hgb._predictors)
        self.baseline = float(np.asarray(hgb._baseline_prediction).ravel()[0])
        self.routing, leaves = _read_trees(hgb)
        self.leaf_value = np.asarray([leaf.value for leaf in leaves], dtype=np.float64)
        # The expected log-odds: the baseline plus each tree's leaves weighted by the share
        # of training rows that reached them.
        self.base_value = self.baseline + sum(leaf.value * leaf.share for leaf in leaves)
        self._build_slots([leaf.path for leaf in leaves])

    def _build_slots(self, paths: list[Path]) -> None:
        """Number the slots (a leaf's distinct features), bucket the leaves by their count,
        and list the splits that decide each slot's one fraction."""
        splits: list[list[tuple[int, bool]]] = []  # per slot
        by_k: dict[int, list[tuple[int, list[int], list[float], list[int]]]] = {}
        for leaf, path in enumerate(paths):
            if not path:
                continue  # a tree that is a single leaf: no feature moves it
            slots, zeros, features = [], [], []
            for f, (zero, decided_by) in path.items():
                slots.append(len(splits))
                splits.append(decided_by)
                zeros.append(zero)
                features.append(f)
            by_k.setdefault(len(path), []).append((leaf, slots, zeros, features))
        self.slot_first = np.asarray([s[0] for s in splits], dtype=np.intp).reshape(-1, 2)
        # Slots whose feature the path splits on more than once: the record must follow
        # every one of those splits; the r-th extra split of each, for r = 1, 2, ...
        self.slot_more: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for r in range(1, max((len(s) for s in splits), default=1)):
            which = [i for i, s in enumerate(splits) if len(s) > r]
            self.slot_more.append(
                (
                    np.asarray(which, dtype=np.intp),
                    np.asarray([splits[i][r][0] for i in which], dtype=np.intp),
                    np.asarray([splits[i][r][1] for i in which], dtype=bool),
                )
            )
        self.n_slots = len(splits)
        buckets = []
        budget = TABLE_BUDGET
        for k, entries in sorted(by_k.items()):
            slot_feature = np.asarray([e[3] for e in entries], dtype=np.intp).reshape(-1)
            scatter = np.zeros((slot_feature.size, self.n_features))
            scatter[np.arange(slot_feature.size), slot_feature] = 1.0
            zero_fraction = np.asarray([e[2] for e in entries], dtype=np.float64)
            value = self.leaf_value[[e[0] for e in entries]]
            size = len(entries) * (1 << k) * k
            table = _pattern_table(zero_fraction, value) if size <= budget else None
            budget -= size if table is not None else 0
            buckets.append(
                _Bucket(
                    k=k,
                    leaves=np.asarray([e[0] for e in entries], dtype=np.intp),
                    slots=np.asarray([e[1] for e in entries], dtype=np.intp),
                    zero=zero_fraction,
                    value=value,
                    scatter=scatter,
                    table=table,
                )
            )
        self.buckets = tuple(buckets)
        self.max_width = max(
            [self.n_slots, self.leaf_value.size]
            + [b.value.size * (b.k + 1 if b.table is None else b.k) for b in buckets]
        )

    # --- routing ---------------------------------------------------------------------------

    def _follows(self, matrix: np.ndarray) -> np.ndarray:
        """(rows, slots): does the record follow every split of the slot's path on the
        slot's feature? (Algorithm 2's one fraction: 1 or 0)."""
        left = self.routing.go_left(matrix)
        follows: np.ndarray = left[:, self.slot_first[:, 0]] == self.slot_first[:, 1].astype(bool)
        for which, node, went_left in self.slot_more:
            follows[:, which] &= left[:, node] == went_left
        return follows

    def _patterns(self, follows: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Per bucket, each leaf's pattern of one fractions (bit e = slot e); and the raw
        prediction: the baseline plus the leaf each tree sends the record to, added in
        scikit-learn's order (so it is the same floating-point number)."""
        rows = follows.shape[0]
        reached = np.ones((rows, self.leaf_value.size), dtype=bool)  # single-leaf trees
        patterns = []
        for b in self.buckets:
            pattern = follows[:, b.slots].astype(np.intp) @ (1 << np.arange(b.k))
            reached[:, b.leaves] = pattern == (1 << b.k) - 1  # every split followed
            patterns.append(pattern)
        hit = np.flatnonzero(reached)
        if hit.size != rows * self.n_trees:
            raise RuntimeError("a record reached other than one leaf per tree")  # a bug
        leaves = self.leaf_value[(hit % self.leaf_value.size).reshape(rows, self.n_trees)]
        terms = np.hstack([np.full((rows, 1), self.baseline), leaves])
        raw: np.ndarray = np.add.accumulate(terms, axis=1)[:, -1]
        return patterns, raw

    def log_odds(self, matrix: np.ndarray) -> np.ndarray:
        """The model's raw prediction (decision_function) by this module's own routing."""
        return self._patterns(self._follows(np.asarray(matrix, dtype=np.float64)))[1]

    # --- attribution -----------------------------------------------------------------------

    def _shap(self, follows: np.ndarray, patterns: list[np.ndarray]) -> np.ndarray:
        rows = follows.shape[0]
        phi = np.zeros((rows, self.n_features))
        for b, pattern in zip(self.buckets, patterns, strict=True):
            if b.table is not None:
                per_slot = b.table[np.arange(b.value.size), pattern]
            else:
                one = follows[:, b.slots].astype(np.float64)
                per_slot = _leaf_shap(one, b.zero, b.value)
            phi += per_slot.reshape(rows, -1) @ b.scatter
        return phi

    def attribute(self, matrix: np.ndarray) -> Attribution:
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise InputError(f"expected a matrix of {self.n_features} features, got {matrix.shape}")
        step = max(1, CHUNK_ELEMENTS // self.max_width)
        raw_parts, phi_parts = [np.empty(0)], [np.empty((0, self.n_features))]
        for start in range(0, len(matrix), step):
            follows = self._follows(matrix[start : start + step])
            patterns, raw = self._patterns(follows)
            raw_parts.append(raw)
            phi_parts.append(self._shap(follows, patterns))
        raw = np.concatenate(raw_parts)
        proba = np.asarray(self.hgb._loss.predict_proba(raw)[:, 1])
        return Attribution(self.base_value, raw, proba, np.vstack(phi_parts))


# --- logistic regression: exact linear terms ---------------------------------------------------


def _imputed(step: Any) -> np.ndarray:
    """Which input columns a fitted SimpleImputer keeps (it drops all-missing ones)."""
    stats = np.asarray(step.statistics_, dtype=object)
    if step.keep_empty_features:
        return np.ones(stats.size, dtype=bool)
    return np.array([not (isinstance(s, float) and math.isnan(s)) for s in stats], dtype=bool)


def _step_origins(step: Any, inputs: np.ndarray) -> np.ndarray:
    """The input column behind each output of a fitted pipeline step."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if isinstance(step, StandardScaler):
        return inputs
    if isinstance(step, SimpleImputer):
        kept: np.ndarray = inputs[_imputed(step)]
        if step.add_indicator:
            kept = np.concatenate([kept, inputs[step.indicator_.features_]])
        return kept
    if isinstance(step, OneHotEncoder) and step.drop_idx_ is None:
        out = [np.full(len(c), col) for col, c in zip(inputs, step.categories_, strict=True)]
        return np.concatenate(out) if out else np.empty(0, dtype=np.intp)
    raise ExplainError(f"cannot explain a pipeline step {type(step).__name__} exactly")


class LinearTerms:
    """Exact contributions of a fitted logistic-regression pipeline (`build_classifier`):
    coef * (z - z_ref) per transformed feature, summed per input column; see the module
    docstring for the reference record."""

    method = "linear terms relative to a reference record"

    def __init__(self, pipeline: Any, n_features: int) -> None:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import OneHotEncoder

        features, classifier = pipeline.steps[0][1], pipeline.steps[-1][1]
        if not isinstance(features, ColumnTransformer) or not isinstance(
            classifier, LogisticRegression
        ):
            raise ExplainError("expected Pipeline(ColumnTransformer, LogisticRegression)")
        if len(pipeline.steps) != 2 or classifier.coef_.shape[0] != 1:
            raise ExplainError("only a binary Pipeline(ColumnTransformer, LogisticRegression)")
        origin = np.full(classifier.coef_.shape[1], -1)
        reference = np.zeros(classifier.coef_.shape[1])
        for name, transformer, selected in features.transformers_:
            if transformer == "drop" or name == "remainder":
                continue
            inputs = np.asarray(selected)
            if inputs.dtype == bool:
                inputs = np.flatnonzero(inputs)
            steps = transformer.steps if hasattr(transformer, "steps") else [(name, transformer)]
            mode: Any = None  # the most frequent training value of each column, imputed
            for _, step in steps:
                if isinstance(step, SimpleImputer) and step.strategy == "most_frequent":
                    mode = np.asarray(step.statistics_, dtype=object)[_imputed(step)]
                if isinstance(step, OneHotEncoder) and mode is not None:
                    ref = [np.asarray(c) == m for c, m in zip(step.categories_, mode, strict=True)]
                    reference[features.output_indices_[name]] = np.concatenate(ref)
                inputs = _step_origins(step, inputs)
            origin[features.output_indices_[name]] = inputs
        if (origin < 0).any() or origin.max(initial=0) >= n_features:
            raise ExplainError("cannot map the transformed features back to the input's columns")
        self.features = features
        self.classifier = classifier
        self.coef = np.asarray(classifier.coef_[0], dtype=np.float64)
        self.reference = reference
        self.base_value = float(classifier.intercept_[0] + self.coef @ reference)
        self.n_features = n_features
        self.scatter = np.zeros((origin.size, n_features))
        self.scatter[np.arange(origin.size), origin] = 1.0

    def attribute(self, matrix: np.ndarray) -> Attribution:
        z = np.asarray(self.features.transform(matrix), dtype=np.float64)
        phi = ((z - self.reference) * self.coef) @ self.scatter
        raw = np.asarray(self.classifier.decision_function(z), dtype=np.float64)
        proba = np.asarray(self.classifier.predict_proba(z)[:, 1])
        return Attribution(self.base_value, raw, proba, phi)


# --- one explainer per model ---------------------------------------------------------------

_EXPLAINERS: weakref.WeakKeyDictionary[Any, Explainer] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def build_explainer(model: LoadedModel) -> Explainer:
    """The explainer of `model` (built once per model and kept while the model lives)."""
    with _LOCK:
        found = _EXPLAINERS.get(model.estimator)
        if found is not None:
            return found
        if model.card.encoding is None:
            raise ExplainError(
                f"model {model.version} predates the encoded input (its card records no "
                "encoding); retrain it (`dvc repro`) to explain it"
            )
        classifier = getattr(model.estimator, "estimator_", model.estimator)
        width = len(model.table.feature_names)
        from sklearn.ensemble import HistGradientBoostingClassifier

        explainer: Explainer
        if isinstance(classifier, HistGradientBoostingClassifier):
            explainer = TreeShap(classifier)
        else:
            explainer = LinearTerms(classifier, width)
        _EXPLAINERS[model.estimator] = explainer
        log.info("explainer for model %s: %s", model.version, explainer.method)
        return explainer


# --- in the data's own terms -------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A record's value as plain Python (None for missing)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _shown(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def describe(feature: str, value: Any, contribution: float) -> str:
    """'contract = month_to_month raises the log-odds by 0.420'."""
    if contribution == 0:
        return f"{feature} = {_shown(value)} does not change the log-odds"
    verb = "raises" if contribution > 0 else "lowers"
    return f"{feature} = {_shown(value)} {verb} the log-odds by {abs(contribution):.3f}"


def _rest(n: int, total: float) -> Contribution:
    verb = "raise" if total > 0 else "lower"
    text = (
        f"the other {n} features together {verb} the log-odds by {abs(total):.3f}"
        if total
        else f"the other {n} features together do not change the log-odds"
    )
    return Contribution(OTHER_FEATURES, None, total, text)


def _explanations(
    model: LoadedModel,
    attribution: Attribution,
    keys: Sequence[Any],
    values: Sequence[Sequence[Any]],
    top_k: int,
) -> list[Explanation]:
    names = model.table.feature_names
    if top_k < 1:
        raise InputError(f"top_k must be at least 1, not {top_k}")
    contact = model.decide(attribution.probability)
    order = np.argsort(-np.abs(attribution.contributions), axis=1, kind="stable")
    out = []
    for i, key in enumerate(keys):
        phi = attribution.contributions[i]
        shown = order[i, :top_k]
        items = [
            Contribution(
                names[j], values[i][j], float(phi[j]), describe(names[j], values[i][j], phi[j])
            )
            for j in shown
        ]
        left = order[i, top_k:]
        if left.size:
            items.append(_rest(int(left.size), float(phi[left].sum())))
        out.append(
            Explanation(
                key=key,
                probability=float(attribution.probability[i]),
                contact=bool(contact[i]),
                base_value=attribution.base_value,
                contributions=tuple(items),
                log_odds=float(attribution.log_odds[i]),
            )
        )
    return out


def explain_frame(model: LoadedModel, frame: pd.DataFrame, top_k: int) -> list[Explanation]:
    """Explanations of every row of `frame` (a table with at least the model's features)."""
    attribution = build_explainer(model).attribute(model.table.encode(frame))
    names = list(model.table.feature_names)
    values = [[_plain(v) for v in row] for row in frame.loc[:, names].astype(object).to_numpy()]
    return _explanations(model, attribution, model.table.keys(frame), values, top_k)


def explain_rows(
    model: LoadedModel, rows: Sequence[Mapping[str, Any]], top_k: int
) -> list[Explanation]:
    """`explain_frame` of records given as mappings, without building a frame (the
    service's hot path, like `LoadedModel.probability_of_rows`)."""
    attribution = build_explainer(model).attribute(model.table.encode_rows(rows))
    names = model.table.feature_names
    values = [[_plain(row.get(n)) for n in names] for row in rows]
    table = model.table
    keys = [row[table.key] for row in rows] if table.id is not None else list(range(len(rows)))
    return _explanations(model, attribution, keys, values, top_k)


def attribute_frame(model: LoadedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Every feature's contribution for every row of `frame` (log-odds; columns = features,
    index = frame's): the raw material for global summaries."""
    attribution = build_explainer(model).attribute(model.table.encode(frame))
    return pd.DataFrame(
        attribution.contributions, index=frame.index, columns=list(model.table.feature_names)
    )


# --- global importance per segment ---------------------------------------------------------------

ALL: Final = "(all rows)"  # the segment that is the whole frame


@dataclass(frozen=True)
class SegmentImportance:
    """Global importance over one segment's rows: each feature's mean |contribution|."""

    column: str  # the segment column
    segment: Any  # its value (None: missing), or ALL for the whole frame
    n_rows: int  # rows explained
    importance: dict[str, float]  # feature -> mean |contribution| (log-odds), largest first
    mean_contribution: dict[str, float]  # feature -> mean signed contribution, same order
    top: tuple[str, ...]  # its top_n features
    differs: bool  # its top_n features are not the whole frame's top_n (as a set)
    rank_correlation: float  # Spearman of its importances with the whole frame's

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "segment": self.segment,
            "n_rows": self.n_rows,
            "top": list(self.top),
            "differs": self.differs,
            "rank_correlation": self.rank_correlation,
            "importance": self.importance,
            "mean_contribution": self.mean_contribution,
        }


def _importance(
    column: str, segment: Any, phi: pd.DataFrame, whole: pd.Series | None, top_n: int
) -> SegmentImportance:
    magnitude = phi.abs().mean().sort_values(ascending=False, kind="stable")
    reference = magnitude if whole is None else whole
    ranks = pd.concat([magnitude, reference], axis=1).rank()
    rho = float(ranks.iloc[:, 0].corr(ranks.iloc[:, 1]))
    top = tuple(str(c) for c in magnitude.index[:top_n])
    return SegmentImportance(
        column=column,
        segment=segment,
        n_rows=len(phi),
        importance={str(k): float(v) for k, v in magnitude.items()},
        mean_contribution={str(k): float(phi[k].mean()) for k in magnitude.index},
        top=top,
        differs=set(top) != {str(c) for c in reference.index[:top_n]},
        rank_correlation=1.0 if math.isnan(rho) else rho,
    )


def segment_importance(
    model: LoadedModel,
    frame: pd.DataFrame,
    column: str,
    *,
    top_n: int = 5,
    min_rows: int = 1,
    max_rows: int | None = None,
    seed: int = 0,
    contributions: pd.DataFrame | None = None,
) -> list[SegmentImportance]:
    """Global importance of each feature (mean |contribution|, from exact per-record
    contributions) over the whole `frame`, then over each segment of `column` (one per
    value, in sorted order; missing as None) that has at least `min_rows` rows.

    At most `max_rows` rows of `frame` are explained, drawn at random with `seed`; segments
    are counted within them. The first entry is the whole frame (segment ALL); every
    segment says whether its top_n features differ from the whole frame's (`differs`) and
    how its ranking of all features correlates with the whole frame's (`rank_correlation`).
    `contributions` (`attribute_frame(model, frame)`, same index) saves recomputing them
    when several columns are summarised; it costs about 1 ms a row.
    """
    if column not in frame.columns:
        raise InputError(f"segment column {column!r} is not in the frame")
    if max_rows is not None and len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=seed)
    if contributions is None:
        phi = attribute_frame(model, frame)
    elif frame.index.isin(contributions.index).all():
        phi = contributions.loc[frame.index]
    else:
        raise InputError("contributions lack rows of the frame (use attribute_frame(model, frame))")
    whole = _importance(column, ALL, phi, None, top_n)
    reference = pd.Series(whole.importance)
    out = [whole]
    for value, rows in frame.groupby(frame[column].astype(object), dropna=False, sort=True):
        if len(rows) >= min_rows:
            part = phi.loc[rows.index]
            out.append(_importance(column, _plain(value), part, reference, top_n))
    return out
