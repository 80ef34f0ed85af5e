"""The project's own error types.

Every problem a user can cause (bad input file, bad recipe, missing corpus) is raised as a subclass of
:class:`LstmAsrError`; the CLI prints its message as one line and exits non-zero, never a traceback.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
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
        # A key from a YAML file or a --set argument may hold a newline: quote it so the message stays one line.
        shown = key if key.isprintable() else repr(key)
        where = f"{source}: {shown}" if key else str(source)
        super().__init__(f"{where}: {problem}")


# Write failures the user can fix (free space, permissions, a read-only mount) and how to say them in one line.
_WRITE_PROBLEMS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large for this file system",
}


FIXABLE_ERRNOS = frozenset(_WRITE_PROBLEMS)
"""errno values of OSErrors the user can fix (space, permissions, read-only mounts): the CLI reports any of them,
wrapped by a writer or not, as one line."""


def read_user_text(path: Path, what: str) -> str:
    """The UTF-8 text of a file the user named, or a one-line error: ``<path>: <what> not found`` or
    ``<path>: cannot read <what> (<reason>)``."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LstmAsrError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LstmAsrError(f"{path}: cannot read {what} ({exc})") from None


def os_error_problem(exc: OSError) -> str:
    """A short, lower-case description of an OSError ("no space left on device"), without the path."""
    return _WRITE_PROBLEMS.get(exc.errno) or str(exc.strerror or exc).strip().lower() or type(exc).__name__


def write_error(path: str | Path, what: str, exc: OSError) -> LstmAsrError:
    """The one-line error for a failed write: ``<path>: no space left on device while writing <what>``."""
    return LstmAsrError(f"{path}: {os_error_problem(exc)} while writing {what}")


@contextmanager
def reporting_write_errors(path: str | Path, what: str) -> Iterator[None]:
    """Turn any OSError raised inside the block into :func:`write_error` for ``path`` (the file or folder the
    user knows about, e.g. ``exp/x/last.pt`` rather than its temporary file)."""
    try:
        yield
    except OSError as exc:
        raise write_error(path, what, exc) from None
