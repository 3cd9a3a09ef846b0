"""The errors a user can fix. Every command prints their message and exits 1, no traceback.

`ProjectError` is the one root: `cli.run` catches it, so a new error class only needs to
derive from it (or from one of the classes below) to be reported cleanly.
"""

from __future__ import annotations


class ProjectError(Exception):
    """Something the user can fix; the message names what is wrong and where."""


class InputError(ProjectError, ValueError):
    """An input (file, table, request, revision) cannot be used; the message says why."""


class ParamsError(ProjectError, ValueError):
    """params.yaml cannot be used as it is; the message names the key and the problem."""


class SchemaError(ProjectError, ValueError):
    """The schema module declares something impossible; the message names the column."""


class ModelIntegrityError(ProjectError, RuntimeError):
    """A model file, its card or its lineage does not match the hashes recorded for it."""
