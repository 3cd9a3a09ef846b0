"""The core: what every wing shares and nothing above it.

The table schema, the params, the business rules, the model and its card, the metrics and
their catalog, the gate's rules, file I/O, the root error type and the git / dvc.lock
helpers. Modules here import only each other (import-linter enforces it: `make lint`).
"""
