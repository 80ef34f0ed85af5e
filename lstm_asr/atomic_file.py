"""Durable, atomic file writes: a crash leaves the old file or the new one, never half of one.

The content goes to a temporary file in the target's folder (``.NAME.XXXX.tmp``), is flushed and fsynced, renamed
over the target, and the folder is fsynced so the rename itself survives a power cut. On any failure the
temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Create or replace ``path`` with what ``write`` puts into the binary file object it is given.

    OSErrors (disk full, no permission) propagate unchanged: callers wrap this in
    :func:`lstm_asr.errors.reporting_write_errors` to name the file in a one-line message.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
