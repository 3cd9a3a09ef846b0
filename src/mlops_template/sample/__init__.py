"""The built-in sample: a seeded generator of telecom customers with a churn label.

This sub-package is the sample's own (like `core/schema.py`'s column list): a team with its
own data sets `data.source` to its file and may delete it. Nothing else imports it except
the ingest stage when `data.source` is "sample".
"""

from mlops_template.sample.generator import Drift, Sample, generate, parse_sample

__all__ = ["Drift", "Sample", "generate", "parse_sample"]
