"""The project's own error types.

Every problem a user can cause (bad input file, bad recipe, missing corpus) is raised as a subclass of
:class:`LstmAsrError`; the CLI prints its message as one line and exits non-zero, never a traceback.
"""

from __future__ import annotations

from pathlib import Path


class LstmAsrError(Exception):
    """Base class of every error lstm-asr reports to the user as a one-line message."""


class CorpusError(LstmAsrError):
    """A corpus file is missing, corrupt or inconsistent. The message names the file."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class RecipeError(LstmAsrError):
    """A recipe has an unknown key, a wrong type or a bad value. The message names the key path."""

    def __init__(self, source: str | Path, key: str, problem: str) -> None:
        self.source = str(source)
        self.key = key
        self.problem = problem
        where = f"{source}: {key}" if key else str(source)
        super().__init__(f"{where}: {problem}")
