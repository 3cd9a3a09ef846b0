"""`make gate`: does the model meet the floors in params.yaml (and, with BASE, the tolerances)?

It exits 1 and names every missed rule, so a CI log says exactly why. `make gate BASE=main`
also compares with a base revision: no guarded metric and no segment may get worse than on
the base by more than the tolerances in params.yaml `gate` (the same comparison, and the same
messages, as the verdict of the pull-request report); with the opt-in
`gate.require_significant_improvement`, also that `uncertainty.primary` improved beyond
test-set noise (paired bootstrap). The rules live in `core/gate.py`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from mlops_template.core import cli, gate
from mlops_template.core import io as files
from mlops_template.core.params import Params
from mlops_template.review.cli import add_base_arguments

log = logging.getLogger(__name__)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", help="metrics file (default: paths.metrics from params)")
    add_base_arguments(
        p, default=None, help="also compare with this git revision (e.g. main), like the report"
    )


def _main(args: argparse.Namespace, params: Params) -> int:
    if args.base:
        # The same comparison (like-for-like when the test set changed) as `make report`.
        from mlops_template.review import compare  # imports DVC and git helpers: only when asked

        result = compare.build(
            Path.cwd(),
            args.base,
            args.base_name or args.base,
            params,
            reproduce_if_needed=not args.no_reproduce,
        )
        misses = result.misses
        if result.not_comparable:
            log.warning("not like-for-like: %s", result.not_comparable)
            rules = f"every floor is met ({result.base.name}'s table differs: floors only)"
        else:
            rules = f"every floor and every tolerance against {result.base.name} is met"
        if params.gate.require_significant_improvement:
            rules += f", and {params.uncertainty.primary} improved beyond test-set noise"
    else:
        metrics = files.read_json(args.metrics or params.paths.metrics)
        misses = gate.check_floors(metrics, params.gate)
        rules = "every floor in params.yaml 'gate' is met"
    if misses:
        log.error("gate FAILED:\n  - %s", "\n  - ".join(misses))
        return 1
    log.info("gate passed: %s", rules)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("gate", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
