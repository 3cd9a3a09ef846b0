"""A whole customer base to score: the sample's records without the label, any number of
them, generated and written in seeded chunks so that memory stays flat.

    python -m mlops_template.sample --rows 3500000 --out data/customers.parquet   (make sample)

Each chunk is `generate` with its own seed (spawned from `data.sample.seed`) and ids that
continue where the previous chunk's ended, so every id is distinct and the same arguments
always give the same file.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from mlops_template.core.schema import TABLE
from mlops_template.sample.generator import Sample, generate

FIRST_ID = 10_000_000  # ids are C + 8 digits (the schema's pattern), as in `generate`
MAX_ROWS = 90_000_000


def customer_base(cfg: Sample, rows: int, chunk_rows: int = 500_000) -> Iterator[pd.DataFrame]:
    """`rows` unlabelled records in chunks of `chunk_rows`, drawn with `cfg`'s seed and knobs."""
    if not 1 <= rows <= MAX_ROWS:
        raise ValueError(f"rows must be between 1 and {MAX_ROWS:,}, not {rows:,}")
    starts = range(0, rows, chunk_rows)
    seeds = np.random.SeedSequence(cfg.seed).spawn(len(starts))
    for start, seed in zip(starts, seeds, strict=True):
        size = min(chunk_rows, rows - start)
        chunk_seed = int(seed.generate_state(1)[0])
        frame = generate(cfg.model_copy(update={"n_rows": size, "seed": chunk_seed}))
        ids = np.random.default_rng(chunk_seed).permutation(size) + FIRST_ID + start
        frame["customer_id"] = pd.Series(ids).astype(str).radd("C").to_numpy()
        yield frame.drop(columns=[TABLE.label.name])
