"""The experiment grid before DVC sees it: combinations, names, `-S` arguments, and every
variant checked against the params models (review/experiments.py, pure parts)."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from mlops_template.core.errors import ParamsError
from mlops_template.review import experiments
from tests.support import params_with, raw_params

pytestmark = pytest.mark.unit

LR = "model.hist_gradient_boosting.learning_rate"
LEAVES = "model.hist_gradient_boosting.max_leaf_nodes"


def test_every_combination_then_each_extra_with_common_on_all() -> None:
    params = params_with(
        {
            "experiments.grid": {LR: [0.05, 0.1], LEAVES: [15, 31, 63]},
            "experiments.extra": [{"model.kind": "logistic_regression"}],
            "experiments.common": {"data.sample.n_rows": 5000},
        }
    )
    runs = experiments.expand(params)
    assert len(runs) == 2 * 3 + 1
    assert runs[0] == experiments.Run(
        "learning_rate=0.05,max_leaf_nodes=15",
        {LR: 0.05, LEAVES: 15, "data.sample.n_rows": 5000},
    )
    assert runs[-1].name == "kind=logistic_regression"
    assert all(r.overrides["data.sample.n_rows"] == 5000 for r in runs)
    assert len({r.name for r in runs}) == len(runs)


def test_the_shipped_grid_has_at_least_four_experiments(params: object) -> None:
    runs = experiments.expand(params)  # type: ignore[arg-type]
    assert len(runs) >= 4, "the README promises a ranking of at least 4 experiments"
    experiments.check_runs(raw_params(), runs)


def test_names_use_whole_keys_when_last_parts_clash_and_are_valid_git_refs() -> None:
    name = experiments.run_name({"model.seed": 1, "split.seed": 2})
    assert name == "model.seed=1,split.seed=2"
    odd = experiments.run_name({"model.kind": "a b/c..d", "x.y": None, "x.z": True})
    for candidate in (name, odd):
        proc = subprocess.run(
            ["git", "check-ref-format", f"refs/exps/ab/cd/{candidate}"], check=False
        )
        assert proc.returncode == 0, f"{candidate!r} is not a valid git ref name"
    assert "y=null" in odd
    assert "z=true" in odd


def test_set_arguments_quote_strings_for_hydra() -> None:
    assert experiments.set_arg("model.kind", "logistic_regression") == (
        "model.kind='logistic_regression'"
    )
    assert experiments.set_arg(LR, 0.05) == f"{LR}=0.05"
    assert experiments.set_arg("x.flag", False) == "x.flag=false"
    assert experiments.set_arg("x.none", None) == "x.none=null"
    assert experiments.set_arg("x.s", "it's") == "x.s='it\\'s'"


def test_a_variant_with_a_bad_value_is_refused_naming_the_experiment_and_key() -> None:
    runs = [experiments.Run("bad-rate", {LR: 5.0})]
    with pytest.raises(ParamsError, match=re.escape("experiment 'bad-rate'")) as err:
        experiments.check_runs(raw_params(), runs)
    assert "learning_rate" in str(err.value)


def test_a_key_params_yaml_lacks_is_refused() -> None:
    runs = [experiments.Run("typo", {"model.hist_gradient_boosting.learnign_rate": 0.1})]
    with pytest.raises(ParamsError, match=r"learnign_rate' is not a key of params\.yaml"):
        experiments.check_runs(raw_params(), runs)


def test_two_experiments_with_one_name_are_refused() -> None:
    params = params_with(
        {"experiments.grid": {"model.kind": ["logistic_regression"]},
         "experiments.extra": [{"model.kind": "logistic_regression"}]}
    )  # fmt: skip
    with pytest.raises(ParamsError, match="both 'kind=logistic_regression'"):
        experiments.expand(params)


def test_experiments_cannot_change_their_own_section() -> None:
    with pytest.raises(ParamsError, match="cannot change the experiments section"):
        params_with({"experiments.common": {"experiments.jobs": 2}})


def test_changed_params_show_short_keys_and_skip_equal_values() -> None:
    base = raw_params()
    exp = experiments.apply(base, {LR: 0.2, "model.kind": "logistic_regression"}, "x")
    assert experiments.changed_params(base, exp) == [
        "learning_rate=0.2",
        "kind=logistic_regression",
    ]
    assert experiments.changed_params(base, base) == []


def _exp(name: str, test_md5: str) -> experiments.Experiment:
    return experiments.Experiment(
        name, "c" * 40, "b" * 40, 0, {}, {"test": "test.parquet"}, {}, {"test.parquet": test_md5}
    )


def test_the_baseline_is_the_commits_model_unless_the_experiments_changed_the_test_set() -> None:
    own, same, other = _exp("own", "aaa"), _exp("same", "aaa"), _exp("other", "bbb")
    models: dict[str, Any] = {"own": object(), "same": object(), "other": object()}
    assert experiments.pick_baseline(own, [same, other], models) is own
    assert experiments.pick_baseline(own, [other], models) is other, "a grid over the data"
    assert experiments.pick_baseline(None, [same], models) is same
    del models["own"]
    assert experiments.pick_baseline(own, [same], models) is same, "the commit's model is absent"
    assert experiments.pick_baseline(own, [same], {}) is None
