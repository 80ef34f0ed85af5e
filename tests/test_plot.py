"""Watching training: ``lstm-asr plot`` (learning curves from metrics.jsonl) and TensorBoard event files."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from lstm_asr.errors import LstmAsrError, RecipeError
from lstm_asr.recipe import recipe_from_dict
from lstm_asr.scoring.plot import Curves, draw_curves, read_curves, read_experiments, smooth
from lstm_asr.training.tensorboard_log import TensorBoardLog, open_tensorboard

C0, C1 = (31, 119, 180), (255, 127, 14)  # matplotlib's first two cycle colours: one per experiment


def epoch_records(exp: Path) -> list[dict]:
    records = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["kind"] == "epoch"]


def colour_pixels(image: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int((np.abs(image[..., :3].astype(int) - rgb).sum(-1) < 12).sum())


def write_metrics(exp: Path, records: list[dict | str]) -> Path:
    exp.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    (exp / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return exp


def test_plot_two_experiments_png(trained_exp: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    # A second experiment: the same run with a worse dev curve and a line cut short by a crash.
    other = tmp_path / "worse"
    other.mkdir()
    for name in ("recipe.yaml", "results.json"):
        shutil.copy(trained_exp / name, other / name)
    records = epoch_records(trained_exp)
    worse = [{**r, "dev_per": r["dev_per"] + 30.0, "train_loss": r["train_loss"] * 2} for r in records]
    write_metrics(other, [*worse, '{"kind": "epoch", "epoch": 31, "train_lo'])

    curves = read_curves(trained_exp)
    assert curves.epochs == [float(r["epoch"]) for r in records] and curves.epochs[:2] == [1.0, 2.0]
    assert curves.train_loss == [r["train_loss"] for r in records]
    assert curves.dev_error == [r["dev_per"] for r in records] and curves.metric == "PER" and curves.skipped == 0
    assert read_curves(other).skipped == 1 and read_curves(other).first_skipped == 31

    out = tmp_path / "curves.png"
    res = run_cli("plot", str(trained_exp), str(other), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert f"{other / 'metrics.jsonl'}: skipped 1 corrupt lines (first: line 31)" in res.stderr
    assert "2 experiments" in res.stdout and "worse 30 epochs" in res.stdout
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape == (420, 1100, 3)
    # Both experiments drawn (one colour each, in both panels), on a figure that is not blank.
    assert colour_pixels(image, C0) > 300 and colour_pixels(image, C1) > 300
    assert colour_pixels(image[:, 550:], C1) > 150 and colour_pixels(image[:, :550], C1) > 150
    assert (image < 250).any(axis=-1).mean() > 0.02


def test_steps_curve_svg_pdf(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    # Epoch 1 logged steps 2 and 4, epoch 2 steps 2 and 4; a resumed run repeated epoch 2 step 2 (latest wins).
    exp = write_metrics(tmp_path / "run", [
        {"kind": "step", "epoch": 1, "step": 2, "loss": 9.0}, {"kind": "step", "epoch": 1, "step": 4, "loss": 7.0},
        {"kind": "epoch", "epoch": 1, "train_loss": 8.0, "dev_per": 90.0},
        {"kind": "step", "epoch": 2, "step": 2, "loss": 6.5}, {"kind": "step", "epoch": 2, "step": 2, "loss": 6.0},
        {"kind": "step", "epoch": 2, "step": 4, "loss": 5.0}, {"kind": "step", "epoch": 2, "loss": 1.0},
        {"kind": "note", "text": "not a curve"},
    ])
    c = read_curves(exp)
    assert c.step_x == [0.5, 1.0, 1.5, 2.0] and c.step_loss == [9.0, 7.0, 6.0, 5.0]
    assert c.epochs == [1.0] and c.dev_error == [90.0] and c.skipped == 1 and c.first_skipped == 7
    np.testing.assert_allclose(smooth([1.0, 2.0, 4.0, 8.0], 3), [1.5, 7 / 3, 14 / 3, 6.0])
    assert draw_curves([c], tmp_path / "c.svg", steps=True, smooth_window=2).read_text().count("<svg") == 1
    assert draw_curves([c], tmp_path / "c.pdf").read_bytes().startswith(b"%PDF")
    # Same folder name twice: the legend tells them apart by the parent folder.
    twin = write_metrics(tmp_path / "b" / "run", [{"kind": "epoch", "epoch": 1, "train_loss": 1.0, "dev_per": 5.0}])
    assert [x.name for x in read_experiments([exp, twin])] == [f"{tmp_path.name}/run", "b/run"]


def test_plot_bad_input(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = write_metrics(tmp_path / "corrupt", ["{not json", '{"kind": "epoch", "epoch": "x"}'])
    good = write_metrics(tmp_path / "good", [{"kind": "epoch", "epoch": 1, "train_loss": 1.0, "dev_per": 5.0}])
    png, bmp = str(tmp_path / "c.png"), str(tmp_path / "c.bmp")
    for args, words in (([str(empty), "-o", png], ("metrics.jsonl", "not found")),
                        ([str(corrupt), "-o", png], ("2 corrupt lines", "no epoch or step records")),
                        ([str(tmp_path / "nope"), "-o", png], ("nope", "no such directory")),
                        ([str(good), "-o", bmp], ("c.bmp", "unknown image format"))):
        res = run_cli("plot", *args)
        assert res.returncode == 1 and res.stderr.count("\n") == 1 and res.stderr.startswith("error: "), res.stderr
        assert all(w in res.stderr for w in words), res.stderr


def test_plot_without_matplotlib_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if not installed
    with pytest.raises(LstmAsrError, match=r"lstm-asr\[plot\]"):
        draw_curves([Curves("x", "PER", [1.0], [1.0], [5.0])], tmp_path / "c.png")


def test_tensorboard_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert recipe_from_dict({"corpus": {"path": "x"}}).training.tensorboard == "auto"
    for value in (True, False, "auto"):
        assert recipe_from_dict({"corpus": {"path": "x"}, "training": {"tensorboard": value}}).training.tensorboard \
            == value
    with pytest.raises(RecipeError, match="training.tensorboard: expected true, false or auto"):
        recipe_from_dict({"corpus": {"path": "x"}, "training": {"tensorboard": "sometimes"}})
    assert open_tensorboard(tmp_path / "tb", False) is None and not (tmp_path / "tb").exists()
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    assert open_tensorboard(tmp_path / "tb", "auto") is None
    with pytest.raises(LstmAsrError, match=r"lstm-asr\[tensorboard\]"):
        open_tensorboard(tmp_path / "tb", True)


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_training_writes_tensorboard_scalars(trained_exp: Path) -> None:
    pytest.importorskip("tensorboard")
    # The fixture trained with the default training.tensorboard: auto, so with tensorboard installed it wrote events.
    found = scalars(trained_exp / "tensorboard")
    records = epoch_records(trained_exp)
    for key, tag in (("train_loss", "epoch/train_loss"), ("dev_per", "epoch/dev_per"), ("lr", "epoch/lr"),
                     ("frames_per_s", "epoch/frames_per_s")):
        assert [s for s, _ in found[tag]] == [r["epoch"] for r in records], tag
        np.testing.assert_allclose([v for _, v in found[tag]], [r[key] for r in records], rtol=1e-5, err_msg=tag)


def test_tensorboard_step_scalars_and_resume(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    history = write_metrics(tmp_path, [{"kind": "step", "epoch": 1, "step": 4, "loss": 3.0}]) / "metrics.jsonl"
    board = TensorBoardLog(tmp_path / "tb", metric="CER", history=history)  # a resumed run: epoch 1 had 4 steps
    board.write({"time": 1.0, "kind": "step", "epoch": 2, "step": 2, "loss": 2.5, "frames_per_s": 100.0})
    board.write({"time": 2.0, "kind": "step", "epoch": 2, "step": 4, "loss": 2.0, "frames_per_s": 120.0})
    board.write({"time": 3.0, "kind": "epoch", "epoch": 2, "train_loss": 2.2, "dev_per": 40.0, "stage": 1})
    board.write({"time": 4.0, "kind": "step", "epoch": 3, "step": 2, "loss": 1.5, "frames_per_s": 110.0})
    board.close()
    found = scalars(tmp_path / "tb")
    assert found["step/loss"] == [(6, 2.5), (8, 2.0), (10, 1.5)]
    assert [s for s, _ in found["step/frames_per_s"]] == [6, 8, 10]
    assert found["epoch/dev_cer"] == [(2, 40.0)] and "epoch/dev_per" not in found and found["epoch/stage"] == [(2, 1)]
