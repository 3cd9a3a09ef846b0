"""Check every key of params.yaml before a run (`make repro`, `make run`, the pre-commit hook).

`dvc repro` runs only the stages whose inputs changed, and each stage validates the params it
loads; so a typo in a section no changed stage reads (an unknown top-level key, a misspelled
knob of the sample) would pass unnoticed. This checks the whole file, and the sample's knobs
whenever they are there, and exits 1 naming the key.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from mlops_template.core import cli
from mlops_template.core.params import Params

log = logging.getLogger(__name__)


def check(params: Params) -> None:
    """Raise `ParamsError` naming the key when any part of params.yaml is wrong."""
    if params.data.sample is not None:
        from mlops_template import sample

        sample.parse_sample(params.data.sample)


def _main(args: argparse.Namespace, params: Params) -> None:
    check(params)  # load_params (in cli.run) has already checked everything else
    log.info("%s: every key is known and valid", args.params)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("params check", lambda p: None, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
