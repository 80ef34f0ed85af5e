"""Checkpoints: atomic writes, weights_only loading (crafted pickles refused), format check."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lstm_asr.errors import LstmAsrError
from lstm_asr.nn.checkpoint import load_checkpoint, save_checkpoint


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_round_trip_leaves_no_temporary_files(tmp_path: Path) -> None:
    save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 2}, tmp_path / "best.pt")
    save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "epoch": 3}, tmp_path / "best.pt")
    ck = load_checkpoint(tmp_path / "best.pt")
    assert ck["epoch"] == 3 and torch.equal(ck["state_dict"]["w"], torch.zeros(3))
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


def test_crafted_pickle_does_not_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    bad = tmp_path / "evil.pt"
    torch.save({"format": "lstm-asr/1", "x": _Evil(marker)}, bad)
    with pytest.raises(LstmAsrError, match="evil.pt: refused to load"):
        load_checkpoint(bad)
    assert not marker.exists()


def test_foreign_or_corrupt_files_are_one_line_errors(tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.ones(2)}, other)
    with pytest.raises(LstmAsrError, match="not an lstm-asr checkpoint"):
        load_checkpoint(other)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(LstmAsrError, match="junk.pt"):
        load_checkpoint(junk)
    with pytest.raises(LstmAsrError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_failed_write_keeps_the_old_checkpoint(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1}, target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        save_checkpoint({"epoch": 2, "bad": Unpicklable()}, target)
    assert load_checkpoint(target)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
