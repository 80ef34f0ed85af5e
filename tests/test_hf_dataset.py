"""``corpus.type: hf``: datasets written by the real ``datasets`` package (save_to_disk, a DatasetDict or one
Dataset) and parquet files, read without ``datasets``; audio bytes decoded by our own reader."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.corpora import open_source
from data_prep.units import WORD_SEP
from lstm_asr.data.features import FeatureConfig
from lstm_asr.data.prep import prep_split
from lstm_asr.data.tokens import TokenSet
from lstm_asr.errors import CorpusError
from lstm_asr.recipe import CorpusSection

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # nothing here may touch the Hub
RATE = 16000


def source(path: Path, **opts):
    return open_source("hf", path, CorpusSection(type="hf", path=str(path), **opts))


def encoded(samples: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, RATE, format=fmt, subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """(folder, {split: [(id, samples, text, speaker)]}) and the saved forms: ``dict`` (DatasetDict), ``pq``
    (parquet), ``single`` (one Dataset)."""
    datasets = pytest.importorskip("datasets", reason="datasets not installed (pip install 'lstm-asr[hf]')")
    root = tmp_path_factory.mktemp("hf")
    rng = np.random.default_rng(1)
    rows = {}
    for split, n in (("train", 3), ("test", 2)):
        rows[split] = [(f"{split}{i}", (rng.integers(-3000, 3000, RATE // 4 * (i + 1)) / 32768).astype(np.float32),
                        ["AB C", "CA", "B"][i], f"spk{i % 2}") for i in range(n)]
    on_disk = root / "on_disk.wav"  # a row whose audio is a path (datasets embeds its bytes when saving)
    sf.write(on_disk, rows["test"][1][1], RATE, subtype="PCM_16")

    def dataset(split):
        audio = [{"bytes": encoded(s, "FLAC" if i % 2 else "WAV"), "path": f"{u}.wav"}
                 for i, (u, s, _, _) in enumerate(rows[split])]
        if split == "test":
            audio[1] = {"bytes": None, "path": str(on_disk)}
        ds = datasets.Dataset.from_dict({"audio": audio, "sentence": [t for _, _, t, _ in rows[split]],
                                         "who": [s for *_, s in rows[split]], "id": [u for u, *_ in rows[split]]})
        return ds.cast_column("audio", datasets.Audio())

    dd = datasets.DatasetDict({s: dataset(s) for s in rows})
    dd.save_to_disk(str(root / "dict"))
    for s in rows:
        dd[s].to_parquet(str(root / "pq" / "data" / f"{s}-00000-of-00001.parquet"))
    dataset("train").save_to_disk(str(root / "single"))
    return root, rows


def check_split(src, split, rows):
    items = src.split(split).items
    assert [(it.utt_id, it.speaker, "".join(it.labels).replace(WORD_SEP, " ")) for it in items] == \
        [(u, spk, t) for u, _, t, spk in rows]
    for it, (_, samples, _, _) in zip(items, rows, strict=True):
        np.testing.assert_array_equal(src.read(str(it.path), **it.audio_options()).samples, samples)
    return items


@pytest.mark.parametrize("form", ["dict", "pq"])
def test_saved_dataset_and_parquet_give_the_utterances(data, form):
    root, rows = data
    src = source(root / form, text_column="sentence", speaker_column="who")
    check_split(src, "train", rows["train"])
    items = check_split(src, "test", rows["test"])
    assert items[0].cell == ("audio", 0)
    # save_to_disk embedded the path-only row's file; parquet kept the path, read as a file
    assert items[1].cell == ("audio", 1) if form == "dict" else items[1].path.name == "on_disk.wav"
    with pytest.raises(CorpusError, match="no split 'dev'|no dataset for split 'dev'"):
        src.split("dev")


def test_prep_reads_the_bytes_in_worker_processes(data, tmp_path):
    root, rows = data
    src = source(root / "dict", text_column="sentence", speaker_column="who")
    report = prep_split(src, "train", tmp_path / "feats", FeatureConfig(), TokenSet(src.tokens()), jobs=2)
    assert report.utterances == 3 and not report.skipped
    assert report.frames == sum(FeatureConfig().num_frames(len(s)) for _, s, _, _ in rows["train"])


def test_single_dataset_columns_and_bad_rows(data, tmp_path):
    root, rows = data
    single = source(root / "single", text_column="sentence")
    assert [it.speaker for it in single.split("train").items] == ["train0", "train1", "train2"]  # own speakers
    with pytest.raises(CorpusError, match=r"no split 'test' in the saved dataset \(it has: train\)"):
        single.split("test")
    with pytest.raises(CorpusError, match=r"no column 'text' \(columns: audio, sentence, who, id"):
        source(root / "single").split("train")
    datasets = pytest.importorskip("datasets")
    import pyarrow as pa
    import pyarrow.parquet as pq

    audio = pa.array([{"bytes": b"not audio", "path": None}, {"bytes": None, "path": None},
                      {"bytes": encoded(rows["train"][0][1], "WAV"), "path": None}],
                     pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    (tmp_path / "bad").mkdir()
    pq.write_table(pa.table({"audio": audio, "text": ["A", "B", ""]}), tmp_path / "bad" / "train.parquet")
    src = source(tmp_path / "bad")
    listing = src.listing("train")
    assert [u.utt_id for u in listing.utterances] == ["train-000001"]
    assert sorted(r for _, r in listing.skipped) == ["no audio", "no transcript"]
    it = src.split("train").items[0]
    with pytest.raises(CorpusError, match=r"row 0\): cannot decode audio"):
        src.read(str(it.path), **it.audio_options())
    (tmp_path / "paths").mkdir()
    sf.write(tmp_path / "paths" / "a.flac", rows["train"][0][1], RATE)
    datasets.Dataset.from_dict({"audio": ["a.flac", "gone.flac"], "text": ["A", "B"]}).to_parquet(
        str(tmp_path / "paths" / "train.parquet"))
    listing = source(tmp_path / "paths").listing("train")  # a column of paths, from the dataset's folder
    assert [u.path for u in listing.utterances] == [str(tmp_path / "paths" / "a.flac")]
    assert listing.skipped == [(str(tmp_path / "paths" / "gone.flac"), "audio file not found")]


def test_parquet_rows_are_read_from_their_row_group(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow not installed (pip install 'lstm-asr[hf]')")
    import pyarrow.parquet as pq

    rng = np.random.default_rng(2)
    clips = [(rng.integers(-3000, 3000, 1600 + 160 * i) / 32768).astype(np.float32) for i in range(5)]
    audio = pa.array([{"bytes": encoded(c, "WAV"), "path": None} for c in clips],
                     pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    (tmp_path / "train").mkdir()
    pq.write_table(pa.table({"audio": audio, "text": list("ABABA")}), tmp_path / "train" / "part0.parquet",
                   row_group_size=2)  # groups of 2, 2, 1 rows
    src = source(tmp_path)
    items = src.split("train").items
    assert [it.cell for it in items] == [("audio", i) for i in range(5)]
    for it, clip in reversed(list(zip(items, clips, strict=True))):
        np.testing.assert_array_equal(src.read(str(it.path), **it.audio_options()).samples, clip)
    with pytest.raises(CorpusError, match="no row 5 .the table has 5."):
        src.read(str(items[0].path), cell=("audio", 5))
