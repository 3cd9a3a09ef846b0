"""A production window without production: `make simulate SCENARIO=... [ROWS=...]`.

    python -m mlops_template.monitoring.simulate --scenario concept_drift --rows 10000

Writes what the service would have logged (`PredictionEvent` lines scored by the current,
hash-checked model, in `core.events`' format, rotated into three files, plus a few
`FeedbackEvent` flags) into the service's log directory, and the outcomes that would arrive
later into the outcome file drop (`monitor.outcomes`). Scenarios:

- `none`: fresh records from the same distribution as the training data;
- `data_drift`: the inputs move (the model's relation to the label does not);
- `concept_drift`: the inputs do not move, the relation between inputs and label does;
- `quality_break`: the feed breaks: a nullable column arrives all null and a bounded numeric
  column partly out of range.

The records come from the built-in sample's generator with its own drift knobs (params.yaml
`monitor.simulate.sample`) when `data.source` is "sample"; from a team's own table they are its
test rows, perturbed from the schema alone (the most important numeric features shifted by
`shift_sd` standard deviations and the most important categorical's rarest category given
`category_share`; one segment's labels flipped for concept drift). Each simulated record gets a
fresh id (after every id of the training data and of the windows already added), so that
`make retrain` appends new records instead of replacing old ones.

It refuses to overwrite logs it did not write (a marker file says which ones it did).
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from mlops_template.core import cli, events
from mlops_template.core import io as files
from mlops_template.core.errors import InputError, ParamsError
from mlops_template.core.model import LoadedModel, load_model
from mlops_template.core.params import SCENARIOS, Params
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Column, Kind, Table

log = logging.getLogger(__name__)
MARKER = ".simulated"  # in a log directory: its logs were written by this simulator
SINGLE_SHARE = 0.6  # share of requests that score one record (/predict_one)
MAX_BATCH = 50


# --- the records ----------------------------------------------------------------------------


def sample_rows(params: Params, scenario: str, rows: int, seed: int) -> pd.DataFrame:
    """Labelled records from the built-in generator with the scenario's drift knobs."""
    from mlops_template import sample  # the sample's own code: only for the sample's scenarios

    cfg = sample.parse_sample(params.data.sample)
    knobs = params.monitor.simulate.sample.get(scenario, {})
    try:
        drift = sample.Drift.model_validate({**cfg.drift.model_dump(), **knobs})
    except ValidationError as exc:
        problems = "; ".join(
            f"'{'.'.join(str(p) for p in e['loc'])}': {e['msg']}" for e in exc.errors()
        )
        raise ParamsError(f"monitor.simulate.sample.{scenario}: {problems}") from None
    return sample.generate(cfg.model_copy(update={"n_rows": rows, "seed": seed, "drift": drift}))


def importance_order(params: Params, table: Table, root: Path) -> list[str]:
    """Features by the evaluate stage's permutation importance (declaration order when that
    file is absent)."""
    path = root / params.paths.plots / "importance.json"
    ranked: list[str] = []
    if path.is_file():
        ranked = [str(r["feature"]) for r in files.read_json(path) if "feature" in r]
    rest = [n for n in table.feature_names if n not in ranked]
    return [n for n in ranked if n in table.by_name] + rest


def _bounded(col: Column, values: pd.Series) -> pd.Series:
    low = -np.inf if col.min is None else col.min
    high = np.inf if col.max is None else col.max
    out = values.clip(low, high)
    return out.round() if col.dtype == "int64" else out


def shift_inputs(
    frame: pd.DataFrame, table: Table, order: list[str], params: Params, rng: np.random.Generator
) -> pd.DataFrame:
    """Data drift from the schema: the most important numeric features move by `shift_sd`
    standard deviations (kept within their bounds); the most important categorical feature's
    rarest category takes `category_share` of the records."""
    cfg = params.monitor.simulate
    out = frame.copy()
    numeric = [n for n in order if table.by_name[n].kind is Kind.NUMERIC][: cfg.shift_features]
    for name in numeric:
        col = table.by_name[name]
        values = pd.to_numeric(out[name], errors="coerce")
        shifted = _bounded(col, values + cfg.shift_sd * float(values.std() or 1.0))
        out[name] = shifted.astype(values.dtype) if values.notna().all() else shifted
    categorical = [n for n in order if table.by_name[n].kind is Kind.CATEGORICAL]
    if categorical:
        name = categorical[0]
        counts = out[name].value_counts()
        listed = list(table.by_name[name].categories)
        rarest = min(listed, key=lambda c: int(counts.get(c, 0)))
        take = rng.random(len(out)) < cfg.category_share
        out[name] = out[name].astype(object).where(~take, rarest)
    return out


def relabel_segment(
    frame: pd.DataFrame, table: Table, params: Params, rng: np.random.Generator
) -> pd.DataFrame:
    """Concept drift from the schema: in the most common value of the first segment column,
    `relabel_share` of the labels are flipped; the inputs stay as they were."""
    segments = list(params.evaluate.segments) or list(table.segment_columns)
    if not segments:
        raise InputError("concept drift needs a categorical or boolean column to pick a segment")
    column = segments[0]
    value = frame[column].mode().iloc[0]
    label = table.label
    flip = (frame[column] == value).to_numpy() & (
        rng.random(len(frame)) < params.monitor.simulate.relabel_share
    )
    y = frame[label.name]
    flipped = y.where(y != label.positive, label.negative).where(
        y == label.positive, label.positive
    )
    out = frame.copy()
    out[label.name] = y.where(~flip, flipped)
    log.info("concept drift: %s labels flipped where %s = %s", f"{flip.sum():,}", column, value)
    return out


def own_rows(
    params: Params, scenario: str, rows: int, rng: np.random.Generator, root: Path, table: Table
) -> pd.DataFrame:
    """A team's own test rows (drawn with replacement), perturbed for the scenario."""
    test = files.read_table(root / params.paths.test)
    frame = test.iloc[rng.integers(0, len(test), size=rows)].reset_index(drop=True)
    if scenario == "data_drift":
        return shift_inputs(frame, table, importance_order(params, table, root), params, rng)
    if scenario == "concept_drift":
        return relabel_segment(frame, table, params, rng)
    return frame


def break_quality(
    frame: pd.DataFrame, table: Table, order: list[str]
) -> tuple[pd.DataFrame, list[str]]:
    """A broken feed: the most important nullable feature arrives all null, and 5 % of the
    most important bounded numeric feature's values are above its maximum."""
    out, broken = frame.copy(), []
    nullable = [n for n in order if table.by_name[n].nullable]
    if nullable:
        out[nullable[0]] = np.nan if table.by_name[nullable[0]].dtype == "float64" else None
        broken.append(nullable[0])
    bounded = [
        n for n in order
        if table.by_name[n].kind is Kind.NUMERIC and table.by_name[n].max is not None
        and n not in broken
    ]  # fmt: skip
    if bounded:
        col = table.by_name[bounded[0]]
        assert col.max is not None
        rows = out.index[:: max(1, round(1 / 0.05))]
        high = int(col.max) * 2 + 1 if col.dtype == "int64" else col.max * 2 + 1
        out[col.name] = out[col.name].astype(object)
        out.loc[rows, col.name] = high
        out[col.name] = pd.to_numeric(out[col.name])
        broken.append(col.name)
    return out, broken


def fresh_keys(taken: pd.Series, n: int, col: Column, seed: int) -> list[Any]:
    """`n` ids none of `taken` has, in the id's own shape (a number after a fixed prefix)."""
    if col.dtype == "int64":
        numbers = pd.to_numeric(taken, errors="coerce").dropna()
        start = int(numbers.max()) + 1 if len(numbers) else 1
        return list(range(start, start + n))
    parts = taken.astype(str).str.extract(r"^(.*?)(\d+)$")
    if len(parts) and parts[1].notna().all() and parts[0].nunique() == 1:
        prefix, width = str(parts[0].iloc[0]), int(parts[1].str.len().max())
        start = int(parts[1].astype(np.int64).max()) + 1
        keys = [f"{prefix}{i:0{width}d}" for i in range(start, start + n)]
    else:
        keys = [f"sim{seed}-{i:08d}" for i in range(n)]
    if col.pattern and not all(re.fullmatch(col.pattern, k) for k in (keys[0], keys[-1])):
        raise InputError(
            f"cannot make fresh ids for column '{col.name}' that match its pattern "
            f"{col.pattern!r} (tried {keys[0]!r})"
        )
    return keys


def taken_keys(params: Params, table: Table, root: Path) -> pd.Series:
    """Every id of the training data and of the production windows already added."""
    assert table.id is not None
    sources = [root / params.paths.train, root / params.paths.test]
    windows = root / params.monitor.retrain.windows
    if windows.is_dir():
        sources += sorted(windows.glob("*.parquet"))
    parts = [files.read_table(p)[table.id.name] for p in sources if p.is_file()]
    return pd.concat(parts, ignore_index=True) if parts else pd.Series([], dtype=object)


# --- the log lines ----------------------------------------------------------------------------


def _timestamps(n: int, end: datetime, days: int, rng: np.random.Generator) -> pd.Series:
    seconds = np.sort(rng.uniform(0, days * 86_400, size=n))
    start = pd.Timestamp(end) - pd.Timedelta(days=days)
    return pd.Series(start + pd.to_timedelta(seconds, unit="s")).dt.floor("ms")


def _requests(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per record: the index of its request, and whether that request scored one record."""
    sizes: list[int] = []
    total = 0
    while total < n:
        sizes.append(1 if rng.random() < SINGLE_SHARE else int(rng.integers(2, MAX_BATCH + 1)))
        total += sizes[-1]
    request = np.repeat(np.arange(len(sizes)), sizes)[:n]
    single = np.repeat(np.array(sizes) == 1, sizes)[:n]
    return request, single


def _jsonable(frame: pd.DataFrame) -> list[dict[str, Any]]:
    plain = frame.astype(object).where(frame.notna(), None)
    return plain.to_dict("records")  # type: ignore[return-value]


def prediction_lines(
    frame: pd.DataFrame,
    model: LoadedModel,
    role: events.Role,
    ts: pd.Series,
    request_ids: list[str],
    single: np.ndarray,
    table: Table,
) -> list[str]:
    """One `PredictionEvent` line per record, scored by `model` as the service would."""
    proba = model.probability(frame)
    contact = model.decide(proba)
    rows = _jsonable(frame.loc[:, [c.name for c in table.input_columns]])
    keys = table.keys(frame)
    return [
        events.PredictionEvent(
            request_id=rid,
            ts=t.to_pydatetime(),
            endpoint="predict_one" if one else "predict",
            model_version=model.version,
            role=role,
            key=key,
            features=row,
            probability=float(p),
            contact=bool(c),
        ).model_dump_json()
        for rid, t, one, key, row, p, c in zip(
            request_ids, ts, single, keys, rows, proba, contact, strict=True
        )
    ]


def feedback_lines(
    frame: pd.DataFrame, model: LoadedModel, ts: pd.Series, params: Params, table: Table,
    rng: np.random.Generator,
) -> list[str]:  # fmt: skip
    """A business user's flags on a few records whose decision the outcome proved wrong."""
    end = ts.max()
    n = round(params.monitor.simulate.feedback_share * len(frame))
    if n == 0:
        return []
    contact = model.decide(model.probability(frame))
    y = table.target(frame).astype(bool)
    wrong = np.flatnonzero(contact != y)
    if not len(wrong):
        return []
    picked = np.sort(rng.choice(wrong, size=min(n, len(wrong)), replace=False))
    codes = params.service.feedback_reasons
    project = params.project
    keys = table.keys(frame)
    lines = []
    for i in picked.tolist():
        high = bool(contact[i])
        reason = next(
            (r for r in (("score_too_high",) if high else ("score_too_low",)) if r in codes),
            codes[0],
        )
        outcome = project.negative_name if high else project.positive_name
        lines.append(
            events.FeedbackEvent(
                ts=min(
                    ts.iloc[i] + pd.Timedelta(hours=int(rng.integers(1, 72))), end
                ).to_pydatetime(),
                key=keys[i],
                reason=reason,
                comment=f"(simulated) {'contacted' if high else 'not contacted'}, but {outcome}",
                model_version=model.version,
            ).model_dump_json()
        )
    return lines


def _clear(directory: Path, names: Sequence[str]) -> None:
    """Delete the simulator's earlier logs; refuse when the directory holds others."""
    found = [p for name in names for p in events.log_files(directory, name)]
    if found and not (directory / MARKER).is_file():
        raise InputError(
            f"{directory} holds logs this simulator did not write ({found[0].name}, ...): "
            "move them away or give another directory (LOGS=...)"
        )
    for path in found:
        path.unlink()


def write_logs(directory: Path, predictions: list[str], feedback: list[str]) -> None:
    """The lines as the service leaves them: rotated into three files, oldest in `.2`."""
    directory.mkdir(parents=True, exist_ok=True)
    _clear(directory, (events.PREDICTIONS_FILE, events.FEEDBACK_FILE))
    (directory / MARKER).write_text("written by mlops_template.monitoring.simulate\n", "utf-8")
    thirds = np.array_split(np.arange(len(predictions)), 3)
    for suffix, part in zip((".2", ".1", ""), thirds, strict=True):
        text = "".join(predictions[i] + "\n" for i in part)
        files.write_text(directory / f"{events.PREDICTIONS_FILE}{suffix}", text)
    files.write_text(directory / events.FEEDBACK_FILE, "".join(f + "\n" for f in feedback))


def write_outcomes(
    directory: Path, frame: pd.DataFrame, ts: pd.Series, days: int, scenario: str, table: Table
) -> Path:
    assert table.id is not None
    for old in directory.glob("simulated-*.parquet") if directory.is_dir() else []:
        old.unlink()
    outcomes = pd.DataFrame(
        {
            table.id.name: frame[table.id.name].to_numpy(),
            events.OUTCOME_DATE: (ts + pd.Timedelta(days=days)).dt.strftime("%Y-%m-%d").to_numpy(),
            table.label.name: frame[table.label.name].to_numpy(),
        }
    )
    path = directory / f"simulated-{scenario}.parquet"
    files.write_parquet(path, outcomes)
    return path


# --- the command ------------------------------------------------------------------------------


def simulate(
    params: Params, scenario: str, rows: int, seed: int, end: datetime, root: Path,
    table: Table = TABLE,
) -> tuple[pd.DataFrame, pd.Series, list[str]]:  # fmt: skip
    """The window's labelled records (fresh ids), their times and the columns broken."""
    rng = np.random.default_rng(seed)
    if params.data.uses_sample:
        frame = sample_rows(params, scenario, rows, seed)
    else:
        frame = own_rows(params, scenario, rows, rng, root, table)
    broken: list[str] = []
    if scenario == "quality_break":
        frame, broken = break_quality(frame, table, importance_order(params, table, root))
    if table.id is not None:
        frame[table.id.name] = fresh_keys(
            taken_keys(params, table, root), len(frame), table.id, seed
        )
    ts = _timestamps(len(frame), end, params.monitor.simulate.days, rng)
    return frame.reset_index(drop=True), ts, broken


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", required=True, choices=SCENARIOS)
    p.add_argument("--rows", type=int, help="records (default: monitor.simulate.rows)")
    p.add_argument("--seed", type=int, help="default: monitor.simulate.seed")
    p.add_argument("--end", help="time of the newest record, ISO 8601 (default: now, UTC)")
    p.add_argument("--logs", help="log directory (default: the service's, service.log_dir)")
    p.add_argument("--outcomes", help="outcome file drop (default: monitor.outcomes)")
    p.add_argument("--no-outcomes", action="store_true", help="write no outcome file (yet)")
    p.add_argument("--challenger-model", help="a second model file, logged as the challenger")
    p.add_argument("--challenger-card", help="its model card")


def _main(args: argparse.Namespace, params: Params) -> None:
    cfg, root = params.monitor.simulate, Path.cwd()
    rows = args.rows if args.rows is not None else cfg.rows
    if not 10 <= rows <= 5_000_000:
        raise InputError("--rows must be between 10 and 5,000,000")
    seed = args.seed if args.seed is not None else cfg.seed
    end = datetime.fromisoformat(args.end) if args.end else events.utc_now().replace(microsecond=0)
    model = load_model(params.paths.model, params.paths.model_card)
    frame, ts, broken = simulate(params, args.scenario, rows, seed, end, root)
    rng = np.random.default_rng(seed + 1)
    request, single = _requests(len(frame), rng)
    ids = [rng.bytes(16).hex() for _ in range(int(request.max()) + 1)]
    request_ids = [ids[i] for i in request]
    times = ts.groupby(request).transform("min")  # a request's records share its time
    lines = prediction_lines(frame, model, "champion", times, request_ids, single, TABLE)
    if args.challenger_model:  # the shadow's line follows the champion's, as the service logs
        card = args.challenger_card or str(Path(args.challenger_model).with_name("model_card.json"))
        challenger = load_model(args.challenger_model, card)
        shadow = prediction_lines(
            frame, challenger, "challenger", times, request_ids, single, TABLE
        )
        lines = [line for pair in zip(lines, shadow, strict=True) for line in pair]
    logs = Path(args.logs) if args.logs else params.service.log_path()
    write_logs(logs, lines, feedback_lines(frame, model, times, params, TABLE, rng))
    log.info(
        "simulated %s: %s records over %s days ending %s, scored by model %s, into %s%s",
        args.scenario, f"{len(frame):,}", cfg.days, end.isoformat(), model.version, logs,
        f" (broken: {', '.join(broken)})" if broken else "",
    )  # fmt: skip
    if not args.no_outcomes and TABLE.id is not None:
        out = write_outcomes(
            Path(args.outcomes or params.monitor.outcomes), frame, times, cfg.outcome_delay_days,
            args.scenario, TABLE,
        )  # fmt: skip
        log.info("wrote their outcomes to %s", out)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("simulate", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
