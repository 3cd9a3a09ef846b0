"""Batch scoring: a whole table of records scored by the trained model.

`score.py` holds THE scoring function, used by both engines: one chunk of records in, their
scores and the quarantined rows (with the reason) out. `batch.py` streams a CSV / Parquet
input through it in process, chunk by chunk (`python -m mlops_template.scoring`); `spark.py`
runs the same function on Spark executors (`--engine spark`). `source.py` reads the input,
`output.py` writes the output directory atomically, `campaign.py` sums up the campaign.
"""
