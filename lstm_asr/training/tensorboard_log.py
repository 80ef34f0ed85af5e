"""TensorBoard event files beside ``metrics.jsonl`` (``EXP/tensorboard/``), when the ``tensorboard`` extra is installed.

The trainer's :class:`~lstm_asr.training.train.MetricsLog` forwards each record it writes here; this module turns
records into
scalars through ``torch.utils.tensorboard.SummaryWriter`` (the engine torch ships; only its ``tensorboard`` package
dependency is optional). ``training.tensorboard`` in the recipe: ``auto`` (default) writes when the package imports,
``true`` requires it, ``false`` never writes.

Tags: ``step/loss`` and ``step/frames_per_s`` at every logged step, against the global batch count; ``epoch/...``
(train_loss, dev_<metric>, best_dev_<metric>, lr, frames_per_s, epoch_seconds, ...) against the epoch. The trainer
logs ``step`` within the epoch and not the epoch's batch count, so the global step is the sum of the last logged step
of each earlier epoch plus this step: exact with ``log_every`` dividing the batch count, otherwise short by under
``log_every`` per epoch. A resumed run reads the records already in ``metrics.jsonl`` to continue the count.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lstm_asr.errors import LstmAsrError

NOT_SCALARS = {"kind", "epoch", "step", "time"}


class TensorBoardLog:
    """Writes metrics records as TensorBoard scalars under ``folder``."""

    def __init__(self, folder: Path, metric: str = "PER", history: Path | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.metric = metric.lower()
        self.last_step: dict[int, int] = {}  # epoch -> last step logged in it
        if history is not None and history.exists():
            for line in history.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    record = json.loads(line)
                    if record.get("kind") == "step":
                        self._note_step(int(record["epoch"]), int(record["step"]))
                except (ValueError, TypeError, KeyError, AttributeError):
                    continue  # a corrupt line (plot counts them); it only shifts the step count
        self.writer = SummaryWriter(log_dir=str(folder))

    def _note_step(self, epoch: int, step: int) -> None:
        self.last_step[epoch] = max(self.last_step.get(epoch, 0), step)

    def global_step(self, epoch: int, step: int) -> int:
        """Batches trained before ``step`` of ``epoch`` (see the module docstring)."""
        return sum(last for e, last in self.last_step.items() if e < epoch) + step

    def write(self, record: dict[str, Any]) -> None:
        """Add the record's numeric fields as scalars; flushed at once (a crash loses nothing, like metrics.jsonl)."""
        kind, epoch = record.get("kind"), int(record.get("epoch", 0))
        walltime = record.get("time")
        if kind == "step":
            step = int(record.get("step", 0))
            self._note_step(epoch, step)
            x, prefix = self.global_step(epoch, step), "step"
        elif kind == "epoch":
            x, prefix = epoch, "epoch"
        else:
            return
        for key, value in record.items():
            if key in NOT_SCALARS or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            name = key.replace("per", self.metric) if key in ("dev_per", "best_dev_per") else key
            self.writer.add_scalar(f"{prefix}/{name}", value, x, walltime=walltime)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_tensorboard(folder: Path, setting: bool | str, metric: str = "PER",
                     history: Path | None = None) -> TensorBoardLog | None:
    """A :class:`TensorBoardLog` writing under ``folder``, or None: ``setting`` false, or ``auto`` without the
    ``tensorboard`` package. ``true`` without it is a one-line error."""
    if setting is False:
        return None
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
    except ImportError:
        if setting is True:
            raise LstmAsrError("training.tensorboard: true needs the tensorboard package: "
                               "pip install 'lstm-asr[tensorboard]' (or set training.tensorboard: auto)") from None
        return None
    return TensorBoardLog(folder, metric, history)
