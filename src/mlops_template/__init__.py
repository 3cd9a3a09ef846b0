"""A template that takes a scikit-learn model on a table from a laptop to production.

Wings, each a sub-package; imports run one way, towards `core` (import-linter contracts in
pyproject.toml, checked by `make lint`):

- `core`: schema, params, business rules, model + card, metrics + catalog, gate rules, I/O.
- `sample`: the built-in sample data generator (the sample's own code).
- `pipeline`: one module per `dvc.yaml` stage.
- `review`: the pull-request comparison, report and gate.
- `serving`: the request contract and the BentoML service; `serving.build` packages it.
"""
