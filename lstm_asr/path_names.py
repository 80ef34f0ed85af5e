"""Names from recipes and corpora that become output paths, kept inside the folder they are meant for.

An experiment's default folder is ``exp/<recipe name>`` and prepared features go to ``<store>/<split name>``: both
names come from a recipe someone else may have written. A name like ``../../etc`` or ``/home/x`` must not make
lstm-asr write outside that folder. Nested relative names (``timit/run1``) are fine; ``..`` components, absolute
paths, empty names and control characters are refused with a one-line error. Paths the user types on the command
line (``--out``, ``-o``) are taken as given: they are the user's own choice, not data.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from lstm_asr.errors import LstmAsrError


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be used as a relative path inside an output folder, or None when it can."""
    if not isinstance(name, str) or not name.strip():
        return "is empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains control characters"
    # Backslashes are separators on Windows; treat them as such everywhere so a name means the same on every OS.
    parts = PurePosixPath(name.replace("\\", "/"))
    if parts.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if ".." in parts.parts:
        return "contains '..'"
    if all(p == "." for p in parts.parts):
        return "names the folder itself"
    return None


def inside(root: str | Path, name: str, what: str) -> Path:
    """``root / name`` after checking that ``name`` stays inside ``root`` (see :func:`name_problem`).

    ``what`` says where the name came from, for the message (``"recipe name"``, ``"split name"``).
    """
    problem = name_problem(name)
    if problem is not None:
        raise LstmAsrError(f"{what} {name!r} {problem}: it must be a relative path inside {root}")
    return Path(root) / name
