"""``lstm-asr study``: the grid, resuming, the table (Welch's t-test) and the one-line errors before any training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import run_cli, write_recipe

from lstm_asr.errors import LstmAsrError
from lstm_asr.scoring.report import report_table
from lstm_asr.scoring.significance import incomplete_beta, t_two_sided_p, welch_t_test
from lstm_asr.scoring.study_report import STUDY_FORMAT, read_study, study_rows, study_table
from lstm_asr.training.study import plan_study, run_study


@pytest.mark.parametrize("t", [0.05, 0.7, 1.0, 2.5, 12.0])
def test_t_tail_matches_the_closed_forms(t: float) -> None:
    """Student's t has closed-form tails for 1 (Cauchy) and 2 degrees of freedom, and tends to the normal."""
    assert math.isclose(t_two_sided_p(t, 1), 1 - 2 / math.pi * math.atan(t), rel_tol=1e-12, abs_tol=1e-15)
    assert math.isclose(t_two_sided_p(t, 2), 1 - t / math.sqrt(2 + t * t), rel_tol=1e-12, abs_tol=1e-15)
    assert math.isclose(t_two_sided_p(t, 1e8), math.erfc(t / math.sqrt(2)), rel_tol=1e-6, abs_tol=1e-15)
    assert math.isclose(incomplete_beta(2.0, 3.0, 0.3), 0.3483, rel_tol=1e-12)  # 1 - sum_{k<2} C(4,k) .3^k .7^(4-k)


def test_welch_t_test_is_the_textbook_statistic() -> None:
    a, b = [33.1, 34.0, 32.5], [35.2, 36.9, 35.0, 36.1]
    ma, mb = sum(a) / 3, sum(b) / 4
    va, vb = sum((x - ma) ** 2 for x in a) / 2 / 3, sum((x - mb) ** 2 for x in b) / 3 / 4  # sample variances / n
    result = welch_t_test(a, b)
    assert math.isclose(result.t, (ma - mb) / math.sqrt(va + vb), rel_tol=1e-12)
    assert math.isclose(result.df, (va + vb) ** 2 / (va**2 / 2 + vb**2 / 3), rel_tol=1e-12)
    assert math.isclose(result.p, t_two_sided_p(result.t, result.df), rel_tol=1e-15)
    assert welch_t_test([1.0], b) is None and welch_t_test([1.0, 1.0], [2.0, 2.0]) is None


def fake_study(folder: Path, results: dict[str, list[float | None]]) -> None:
    """A study folder by hand: each setting's runs' test error (None: that run failed)."""
    settings = []
    for index, (label, errors) in enumerate(results.items()):
        settings.append({"label": label, "overrides": [label], "folder": f"runs/{index:02d}"})
        for k, err in enumerate(errors):
            run = folder / f"runs/{index:02d}/seed{k}"
            run.mkdir(parents=True)
            if err is None:
                (run / "failed.txt").write_text("exit status 1\nerror: stopped after 20 non-finite steps\n")
                continue
            (run / "results.json").write_text(json.dumps({"metric": "CER", "parameters": 1000 * (index + 1),
                                                          "epochs": 4, "dev": {"per": err + 1}, "test": {"per": err}}))
            epochs = [{"kind": "epoch", "epoch": e, "epoch_seconds": 10 * e} for e in (1, 2, 3)]
            (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in epochs))
    (folder / "study.json").write_text(json.dumps({"format": STUDY_FORMAT, "seeds": 3, "settings": settings,
                                                   "command": "lstm-asr study r.yaml --vary model.cell=a,b,c"}))


def test_study_table_has_mean_spread_and_welch_against_the_first_setting(tmp_path: Path) -> None:
    fake_study(tmp_path, {"model.cell=a": [10.0, 11.0, 12.0], "model.cell=b": [14.0, 15.5, 15.0],
                          "model.cell=c": [10.0, None, 13.0]})
    summary = read_study(tmp_path)
    rows = study_rows(summary)
    assert [r["finished"] for r in rows] == [3, 3, 2] and rows[2]["failed"] == 1
    assert rows[1]["test_mean"] == pytest.approx(14.8333333) and rows[1]["test_delta"] == pytest.approx(3.8333333)
    assert rows[1]["p"] == welch_t_test([14.0, 15.5, 15.0], [10.0, 11.0, 12.0]).p and rows[0]["p"] is None
    assert rows[0]["epoch_seconds"] == 20 and rows[1]["parameters"] == 2000
    table = study_table(summary)
    assert "| model.cell=a | 3/3 | 0.001M | 4.0 | 20.0 | 12.00 ± 1.00 | 11.00 ± 1.00 | - | - |" in table
    assert f"| +3.83 | {rows[1]['p']:.3f}* |" in table  # p < 0.05 is marked
    assert "| model.cell=c | 2/3 (1 failed) |" in table and "Welch's t-test" in table and "test CER" in table
    assert table in report_table([tmp_path])  # lstm-asr report understands study folders


def test_bad_study_options_are_one_line_errors_before_training(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "corpus", tmp_path / "feats")
    cases = {
        ("model.cel=lstm,gru",): r"--vary: model.cel: not a recipe key \(did you mean 'model.cell'\?\)",
        ("model.hidden=8,abc",): r"study setting model.hidden=abc: .*r.yaml: model.hidden: expected an integer",
        ("model.cell=lstm,lstm2",): r"study setting model.cell=lstm2: .*model.cell: 'lstm2' is not one of",
        ("training.seed=1,2",): r"--vary: training.seed: cannot be varied: --seeds sets it",
        ("features.num_mel_bins=20,40",): r"--vary: features.num_mel_bins: cannot be varied",
        ("model.cell=lstm,lstm",): r"--vary: model.cell: a value is listed twice",
        ("model.cell=lstm", "model.cell=gru"): r"--vary: model.cell: varied twice",
        ("model.cell",): r"--vary: model.cell: expected key=value1,value2",
        ("model.conv_kernel=3,45", "model.cell=convlstm"): r"model.conv_kernel: 45 is larger than the 41 frequency",
    }
    for varies, message in cases.items():
        with pytest.raises(LstmAsrError, match=message):
            plan_study(recipe, list(varies), 2)
    with pytest.raises(LstmAsrError, match=r"study setting model.cell=lmu: .*a projection needs cell lstm, not 'lmu'"):
        plan_study(recipe, ["model.cell=lstm,lmu"], 2, ["model.projection=4"])
    done = run_cli("study", str(recipe), "--vary", "model.cel=lstm", "--out", str(tmp_path / "s"))
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and done.stderr.startswith("error: --vary")
    assert not (tmp_path / "s").exists()


def test_study_trains_the_grid_and_continues_where_it_stopped(tmp_path: Path, tiny_corpus: Path) -> None:
    recipe = write_recipe(tmp_path / "r.yaml", tiny_corpus, tmp_path / "feats", model={"hidden": 8, "layers": 1},
                          training={"max_epochs": 1, "threads": 1},
                          corpus={"dev_split": "train", "test_split": "train"})
    out = tmp_path / "study"
    args = ["study", str(recipe), "--vary", "model.cell=lstm,nfg", "--jobs", "2", "--out", str(out)]
    done = run_cli(*args, "--seeds", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    first = sorted(out.glob("runs/*/seed*"))
    assert [r.relative_to(out).as_posix() for r in first] == ["runs/00_model.cell=lstm/seed0",
                                                              "runs/01_model.cell=nfg/seed0"]
    table = (out / "table.md").read_text()
    assert "| model.cell=lstm | 1/1 |" in table and "| model.cell=nfg | 1/1 |" in table
    assert table.split("\n\n", 1)[1] in done.stdout

    # Killed part-way (one run lost its results; its last.pt had finished training), then run again with a second
    # seed: the finished run is not redone, the interrupted one resumes, the new seed's runs train.
    kept = (first[1] / "results.json").stat().st_mtime_ns
    (first[0] / "results.json").unlink()
    again = run_cli(*args, "--seeds", "2")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "1 finished, 3 to train" in again.stdout
    runs = sorted(out.glob("runs/*/seed*"))
    assert [r.relative_to(out).as_posix() for r in runs] == ["runs/00_model.cell=lstm/seed0",
                                                             "runs/00_model.cell=lstm/seed1",
                                                             "runs/01_model.cell=nfg/seed0",
                                                             "runs/01_model.cell=nfg/seed1"]
    recipes = [(r / "recipe.yaml").read_text() for r in runs]
    assert ["cell: nfg" in x for x in recipes] == [False, False, True, True]
    assert ["seed: 1" in x for x in recipes] == [False, True, False, True]  # training.seed = recipe's (0) + k
    assert (first[1] / "results.json").stat().st_mtime_ns == kept  # a finished run is not redone
    assert all((r / "results.json").exists() for r in runs)
    assert "resuming from" in (first[0] / "train.log").read_text()
    table = (out / "table.md").read_text()
    assert "| model.cell=lstm | 2/2 |" in table and "| model.cell=nfg | 2/2 |" in table

    other = plan_study(recipe, ["model.cell=lstm,gru"], 2, out=out)  # another grid in the same folder: refused
    with pytest.raises(LstmAsrError, match=r"study.json: this folder holds another study \(it differs in --vary\)"):
        run_study(other)
    report = run_cli("report", str(out), "-o", str(tmp_path / "report.md"))
    assert report.returncode == 0 and "| model.cell=nfg | 2/2 |" in report.stdout
