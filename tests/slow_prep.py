"""``lstm-asr prep`` with the TIMIT reader slowed down, so a test can kill it midway at a predictable point.

Run as a script: ``SLOW_PREP_DELAY=0.1 python tests/slow_prep.py <prep arguments>``. Every file waits
``SLOW_PREP_DELAY`` seconds before it is read; the audio and features themselves are the real ones.
"""

from __future__ import annotations

import os
import sys
import time

from data_prep.sources import Waveform
from data_prep.timit import TimitSource

_read = TimitSource.read


def slow_read(path: str) -> Waveform:
    """The TIMIT reader after a pause (runs in prep's spawned workers, which re-import this file)."""
    time.sleep(float(os.environ.get("SLOW_PREP_DELAY", "0")))
    return _read(path)


if __name__ == "__main__":
    from lstm_asr.cli import main

    TimitSource.read = staticmethod(slow_read)
    sys.argv = ["lstm-asr", "prep", *sys.argv[1:]]
    main()
