"""`python -m mlops_template.scoring`: see `batch.py`."""

from mlops_template.scoring.batch import main

if __name__ == "__main__":
    raise SystemExit(main())
