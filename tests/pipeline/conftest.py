"""The scoring tests' small trained model, shared with `make explain`'s tests."""

from tests.scoring.conftest import score_params, trained  # noqa: F401  (fixtures)
