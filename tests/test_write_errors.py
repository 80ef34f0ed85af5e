"""Disk full, permission and read-only errors while writing: one line naming the path, nothing half-written.

CI runs as root, so permissions cannot be taken away with chmod: the failing writes are simulated by raising the
OSError the kernel would give (ENOSPC, EACCES, EROFS) from inside the real writers, or by writing under a path
whose parent is a file (ENOTDIR, a real failure that root cannot bypass).
"""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import write_recipe

import lstm_asr.atomic_file as atomic_file_module
import lstm_asr.data.feature_store as feature_store_module
import lstm_asr.nn.checkpoint as checkpoint_module
import lstm_asr.training.train as train_module
from lstm_asr import cli
from lstm_asr.data.feature_store import SplitWriter
from lstm_asr.errors import LstmAsrError, os_error_problem, write_error
from lstm_asr.nn.checkpoint import load_checkpoint, save_checkpoint
from lstm_asr.scoring.evaluate import SplitScore, write_decode_dir
from lstm_asr.scoring.levenshtein import ErrorCounts
from lstm_asr.training.train import MetricsLog

FAULTS = {
    "disk full": (OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
    "permission": (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
    "read-only": (OSError(errno.EROFS, "Read-only file system"), "read-only file system"),
    "quota": (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk quota exceeded"),
}


def test_one_translation_for_every_writer() -> None:
    for exc, problem in FAULTS.values():
        assert os_error_problem(exc) == problem
    assert os_error_problem(OSError(errno.EIO, "Input/output error")) == "input/output error"
    err = write_error("exp/x/last.pt", "the checkpoint", FAULTS["disk full"][0])
    assert str(err) == "exp/x/last.pt: no space left on device while writing the checkpoint"


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_failed_checkpoint_write_removes_the_temporary_file_and_keeps_the_old_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str) -> None:
    target = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(4)}, target)
    before = target.read_bytes()
    exc, problem = FAULTS[fault]

    def fails_midway(obj: object, f) -> None:  # type: ignore[no-untyped-def]
        f.write(b"half a checkpoint" * 100)
        raise exc

    monkeypatch.setattr(checkpoint_module.torch, "save", fails_midway)
    with pytest.raises(LstmAsrError) as err:
        save_checkpoint({"epoch": 2, "w": torch.zeros(4)}, target)
    assert str(err.value) == f"{target}: {problem} while writing the checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind
    assert target.read_bytes() == before and load_checkpoint(target)["epoch"] == 1


def test_checkpoint_folder_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(LstmAsrError, match=r"file/exp/best\.pt: not a directory while writing the checkpoint"):
        save_checkpoint({"epoch": 1}, tmp_path / "file" / "exp" / "best.pt")


def test_no_space_for_the_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_file_module.tempfile, "mkstemp", no_space)
    with pytest.raises(LstmAsrError, match="best.pt: no space left on device while writing the checkpoint"):
        save_checkpoint({"epoch": 1}, tmp_path / "best.pt")


class _FullFile:
    """A file object whose writes fail as on a full disk."""

    def write(self, _data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        pass


def test_feature_store_disk_full_leaves_no_finished_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feats, labels = np.zeros((5, 3), np.float32), np.arange(2)
    writer = SplitWriter(tmp_path / "train", dim=3)
    writer.add("u1", "s1", feats, labels, "a b")
    writer._feats = _FullFile()
    with pytest.raises(LstmAsrError, match=r"train\.partial: no space left on device while writing prepared features"):
        writer.add("u2", "s1", feats, labels, "a b")

    writer = SplitWriter(tmp_path / "dev", dim=3)
    writer.add("u1", "s1", feats, labels, "a b")

    def full(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(feature_store_module.shutil, "copyfileobj", full)
    with pytest.raises(LstmAsrError, match=r"dev\.partial: no space left on device while writing prepared features"):
        writer.close()
    assert not (tmp_path / "dev").exists() and not (tmp_path / "dev.partial" / "DONE").exists()


def test_feature_store_permission_denied_creating_the_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(self, *_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(feature_store_module.Path, "mkdir", denied)
    with pytest.raises(LstmAsrError, match=r"test\.partial: permission denied while writing prepared features"):
        SplitWriter(tmp_path / "test", dim=3)


def test_metrics_log_and_decode_dir_errors_name_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(LstmAsrError, match=r"file/metrics\.jsonl: not a directory while writing training metrics"):
        MetricsLog(tmp_path / "file" / "metrics.jsonl").write(epoch=1)

    def full_open(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(train_module, "open", full_open, raising=False)  # shadows the builtin in train.py only
    with pytest.raises(LstmAsrError, match="metrics.jsonl: no space left on device while writing training metrics"):
        MetricsLog(tmp_path / "metrics.jsonl").write(epoch=1)

    split = SimpleNamespace(ids=["u1"], speakers=["s1"])
    score = SplitScore(ErrorCounts(2, 0, 0, 0), hyps=[["a", "b"]], refs=[["a", "b"]])
    with pytest.raises(LstmAsrError, match=r"file/decode_test: not a directory while writing decoding results"):
        write_decode_dir(tmp_path / "file" / "decode_test", split, score, {"split": "test"})


def test_decode_dir_files_are_not_named_after_utterance_ids(tmp_path: Path) -> None:
    """Utterance ids come from corpus lists (wav.scp, manifests): ``../../x`` must not become a path."""
    ids = ["../../escaped", "/tmp/abs", "ok"]
    split = SimpleNamespace(ids=ids, speakers=["s1", "s1", "s2"])
    score = SplitScore(ErrorCounts(3, 0, 0, 0), hyps=[["a"]] * 3, refs=[["a"]] * 3)
    out = tmp_path / "exp" / "decode_test"
    write_decode_dir(out, split, score, {"split": "test"})
    assert sorted(p.name for p in out.iterdir()) == ["alignments.txt", "hyp.txt", "ref.txt", "sclite.txt",
                                                       "scores.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"] and not (tmp_path / "escaped").exists()
    assert (out / "hyp.txt").read_text().splitlines()[0] == "../../escaped a"


def test_cli_train_disk_full_is_one_line_and_keeps_the_last_checkpoint(
        tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """The real ``lstm-asr train`` (in-process, so the write can be made to fail): the disk fills up after a few
    checkpoints; the user gets one ``error:`` line naming the checkpoint, exit status 1, and the last checkpoint
    written before is intact and loadable."""
    recipe = write_recipe(tmp_path / "r.yaml", tiny_corpus, tmp_path / "feats", model={"hidden": 8, "layers": 1},
                          training={"max_epochs": 3, "checkpoint_every": 2, "threads": 1})
    exp = tmp_path / "exp"
    real_save, saved = torch.save, []

    def fills_up(obj: dict, f) -> None:  # type: ignore[no-untyped-def]
        kind = "best.pt" if "dev_per" in obj else "last.pt"
        if len(saved) >= 3 and any(k == kind for k, _ in saved):  # full once this file has an earlier version
            f.write(b"\0" * 4096)
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f)
        saved.append((kind, {**obj, "state_dict": {k: v.clone() for k, v in obj["state_dict"].items()}}))

    monkeypatch.setattr(checkpoint_module.torch, "save", fills_up)
    monkeypatch.setattr(sys, "argv", ["lstm-asr", "train", str(recipe), "--out", str(exp)])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    failed = errors[0].split("error: ", 1)[1].split(": ", 1)[0]
    assert errors[0].endswith(": no space left on device while writing the checkpoint")
    assert Path(failed).parent == exp and Path(failed).name in ("last.pt", "best.pt")
    assert not [p for p in exp.iterdir() if p.suffix == ".tmp"]
    # The file that failed still holds the last checkpoint written to it successfully.
    last_ok = [obj for name, obj in saved if name == Path(failed).name][-1]
    on_disk = load_checkpoint(failed)
    assert on_disk.get("epoch") == last_ok.get("epoch") and on_disk.get("loop") == last_ok.get("loop")
    assert all(torch.equal(on_disk["state_dict"][k], last_ok["state_dict"][k]) for k in last_ok["state_dict"])
    assert json.loads((exp / "metrics.jsonl").read_text().splitlines()[0])  # written before the failure


def test_cli_turns_unwrapped_write_errors_into_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    """A writer the library did not wrap still ends in one line (with the path when the OSError has one)."""
    import lstm_asr.scoring.report as report_module

    def full(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "somewhere.md"))

    monkeypatch.setattr(report_module, "report_table", full)
    monkeypatch.setattr(sys, "argv", ["lstm-asr", "report", str(tmp_path)])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'somewhere.md'}: no space left on device\n"
