"""bench/speechbrain_recorded.py: a multi-corpus recipe's splits as a TIMIT-layout folder for SpeechBrain's prep, and
the per-corpus scoring of its hypotheses (generated corpora only)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from fake_timit import make_fake_timit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import speechbrain_recorded as sbr  # noqa: E402

from lstm_asr.data.corpus_mix import load_training_data  # noqa: E402
from lstm_asr.recipe import load_recipe  # noqa: E402


def test_speaker_ids_pairs_and_shares() -> None:
    spk = [("a", "s1"), ("a", "s2"), ("a", "s3"), ("b", "k")]
    ids = sbr.assign_speakers(spk, ("X", "Y", "Z"), alone=("b",))
    assert ids[("b", "k")] == "X" and {ids[s] for s in spk[:3]} == {"Y", "Z"}  # b alone, a's three share two
    assert sbr.assign_speakers(spk[:2], ("X", "Y", "Z")) == {("a", "s1"): "X", ("a", "s2"): "Y"}
    assert len(sbr.SB_DEV_SPEAKERS) == 50 and len(sbr.SB_TEST_SPEAKERS) == 24
    assert not set(sbr.SB_DEV_SPEAKERS) & set(sbr.SB_TEST_SPEAKERS)


def test_phn_lines_and_sil_merge() -> None:
    assert sbr.phn_lines(["h#", "aa", "h#"], 300) == ["0 100 h#", "100 200 aa", "200 300 h#"]
    assert sbr.merge_sil(["sil", "sil", "aa", "sil", "b", "sil", "sil"]) == ["sil", "aa", "sil", "b", "sil"]
    with pytest.raises(SystemExit):
        sbr.check_path("/data/train_copy")


def test_write_and_score_a_two_corpus_recipe(tmp_path: Path) -> None:
    a = make_fake_timit(tmp_path / "A" / "TIMIT", n_train=2, n_dev=1, n_core=1, utts_per_speaker=2)
    b = make_fake_timit(tmp_path / "B" / "TIMIT", n_train=1, n_dev=1, n_core=1, utts_per_speaker=2, seed=1)
    tested = sorted((a / "TEST").rglob("SI*.TXT"))[0].read_text().split(None, 2)[2]
    trained = sorted((b / "TRAIN").rglob("SI*.TXT"))[0]
    begin, end, _ = trained.read_text().split(None, 2)
    trained.write_text(f"{begin} {end} {tested}")  # one training sentence of B is a test sentence of A
    recipe_path = tmp_path / "mix.yaml"
    recipe_path.write_text(yaml.safe_dump({
        "corpora": [{"name": "a", "path": str(a)}, {"name": "b", "path": str(b)}],
        "features": {"store": str(tmp_path / "feats")}, "model": {"hidden": 16, "layers": 1}}))
    data = load_training_data(load_recipe(recipe_path), show_progress=False)
    out = tmp_path / "sb_layout"
    counts = sbr.write_corpus(sbr.recipe_splits(str(recipe_path)), out)

    kept = int(data.keep_mask().sum())
    assert sum(v for k, v in counts.items() if k.startswith("train/")) == kept == len(data.train) - 1
    assert len(list((out / "TRAIN/DR1").rglob("*.WAV"))) == kept
    mapping = sbr.read_mapping(out)
    for role, ids, splits in (("dev", sbr.SB_DEV_SPEAKERS, data.devs), ("test", sbr.SB_TEST_SPEAKERS, data.tests)):
        assert sum(v for k, v in counts.items() if k.startswith(f"{role}/")) == sum(len(s) for s in splits.values())
        assert {r["key"].split("/")[2] for r in mapping if r["split"] == role} <= set(ids)  # SpeechBrain's lists
    row = next(r for r in mapping if r["split"] == "test")
    wave, rate = sf.read(out / f"{row['key']}.WAV")
    assert rate == 16000 and wave.ndim == 1 and np.abs(wave).max() > 0
    phn = (out / f"{row['key']}.PHN").read_text().split("\n")[:-1]
    assert [line.split(" ")[2] for line in phn] == row["ref"].split()  # SpeechBrain reads this column only
    assert all(len(line.split(" ")) == 3 for line in phn)

    # perfect hypotheses (SpeechBrain's 39 folded symbols) score 0 per corpus; an empty one counts deletions
    from data_prep.corpora import score_units_for

    fold = score_units_for("timit", "phones")
    hyps = {r["key"]: sbr.merge_sil(fold(r["ref"].split())) for r in mapping if r["split"] == "test"}
    scored = sbr.score_hyps(mapping, hyps, {"a": "timit", "b": "timit"})
    assert set(scored) == {"a", "b"} and all(s["per_sil_merged"] == 0.0 for s in scored.values())
    del hyps[row["key"]]
    scored = sbr.score_hyps(mapping, hyps, {"a": "timit", "b": "timit"})
    assert scored[row["corpus"]]["missing_hyps"] == 1 and scored[row["corpus"]]["dele"] > 0


def test_rescore_decode_folder(tmp_path: Path) -> None:
    (tmp_path / "ref.txt").write_text("u1 sil sil aa b sil\nu2 k aa\n")
    (tmp_path / "hyp.txt").write_text("u1 sil aa b sil\nu2 k\n")
    assert sbr.rescore_decode(tmp_path) == {"per": 28.57, "per_sil_merged": 16.67}  # 2 of 7 as is; 1 of 6 merged
