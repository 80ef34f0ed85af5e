"""``lstm-asr prep`` with the TIMIT featuriser slowed down, so a test can kill it midway at a predictable point.

Run as a script: ``SLOW_PREP_DELAY=0.1 python tests/slow_prep.py <prep arguments>``. Every file waits
``SLOW_PREP_DELAY`` seconds before it is featurised; the features themselves are the real ones.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from lstm_asr.corpus import TimitSource, featurize_audio


def slow_featurize(path: str, cfg_dict: dict) -> np.ndarray:
    """The TIMIT featuriser after a pause (runs in prep's spawned workers, which re-import this file)."""
    time.sleep(float(os.environ.get("SLOW_PREP_DELAY", "0")))
    return featurize_audio(path, cfg_dict)


if __name__ == "__main__":
    from lstm_asr.cli import main

    TimitSource.featurize = staticmethod(slow_featurize)
    sys.argv = ["lstm-asr", "prep", *sys.argv[1:]]
    main()
