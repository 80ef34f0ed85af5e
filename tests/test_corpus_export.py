"""``lstm-asr corpus export``: Lhotse, Kaldi and NeMo manifests that read back (through our own readers, and
through Lhotse) as the same utterances, labels and features."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, write_recipe
from fake_text_corpus import make_kaldi_data

from data_prep.corpora import open_source
from data_prep.corpus_export import export_corpus
from lstm_asr.data.features import FeatureConfig
from lstm_asr.data.prep import featurize_input
from lstm_asr.errors import LstmAsrError
from lstm_asr.recipe import CorpusSection

SPLITS = ["train", "dev", "test"]


def source(kind: str, path: Path, **opts):
    return open_source(kind, path, CorpusSection(type=kind, path=str(path), **opts))


def features(src, item) -> np.ndarray:
    """An item's features as prep computes them (the source's reader, then the filterbank)."""
    raw = src.read(str(item.path), **item.audio_options())
    return featurize_input(raw, FeatureConfig().to_dict(), str(item.path))


def assert_same_corpus(a, b, splits=SPLITS) -> None:
    """Same utterance ids, speakers and labels, split by split, and the same features (of the first split: the
    audio of every split is written the same way)."""
    for split in splits:
        xs, ys = a.split(split).items, b.split(split).items
        assert [(x.utt_id, x.speaker, x.labels) for x in xs] == [(y.utt_id, y.speaker, y.labels) for y in ys]
        for x, y in zip(xs, ys, strict=True) if split == splits[0] else ():
            np.testing.assert_array_equal(features(a, x), features(b, y))


@pytest.fixture(scope="module")
def timit(tiny_corpus):
    return source("timit", tiny_corpus)


def test_timit_to_lhotse_and_back(timit, tmp_path):
    reports = export_corpus(timit, SPLITS, "lhotse", tmp_path / "lh")
    assert [r.utterances for r in reports] == [len(timit.split(s).items) for s in SPLITS]
    assert_same_corpus(timit, source("lhotse", tmp_path / "lh", units="phones"))
    # the phones as a phone alignment too
    assert_same_corpus(timit, source("lhotse", tmp_path / "lh", alignment="phone", units="phones"))
    sup = json.loads(gzip.open(tmp_path / "lh" / "supervisions_train.jsonl.gz", "rt").readline())
    item = timit.split("train").items[0]
    assert sup["text"].split() == list(item.labels) and sup["speaker"] == item.speaker
    assert [a[0] for a in sup["alignment"]["phone"]] == list(item.labels)
    lhotse = pytest.importorskip("lhotse")
    cuts = lhotse.CutSet.from_file(tmp_path / "lh" / "cuts_train.jsonl.gz")  # Lhotse reads it, SPHERE audio too
    cut = next(c for c in cuts if c.id == item.utt_id)
    np.testing.assert_array_equal(cut.load_audio()[0], timit.read(str(item.path)).samples)
    assert cut.supervisions[0].alignment["phone"][0].symbol == item.labels[0]


def test_timit_to_kaldi_and_nemo_and_back(timit, tmp_path):
    export_corpus(timit, SPLITS, "kaldi", tmp_path / "kd")
    assert_same_corpus(timit, source("kaldi_dir", tmp_path / "kd", units="phones"))
    assert not (tmp_path / "kd" / "train" / "segments").exists()
    spk2utt = (tmp_path / "kd" / "train" / "spk2utt").read_text().splitlines()
    assert [line.split()[0] for line in spk2utt] == sorted({it.speaker for it in timit.split("train").items})
    export_corpus(timit, SPLITS, "nemo", tmp_path / "nemo")
    assert_same_corpus(timit, source("manifest", tmp_path / "nemo", units="phones"))
    # --convert-audio: 16-bit RIFF WAV files (Kaldi's binaries read no SPHERE), the same features
    export_corpus(timit, SPLITS, "kaldi", tmp_path / "kdw", convert_audio=tmp_path / "wav")
    converted = source("kaldi_dir", tmp_path / "kdw", units="phones")
    assert_same_corpus(timit, converted)
    assert all(it.path.read_bytes()[:4] == b"RIFF" and it.path.is_relative_to(tmp_path / "wav")
               for it in converted.split("dev").items)


def test_segments_stay_parts_of_their_recordings(tmp_path):
    data = make_kaldi_data(tmp_path / "src", {"train": (2, 2), "dev": (1, 1), "test": (1, 1)}, segments=True)
    kaldi = source("kaldi_dir", data)
    export_corpus(kaldi, SPLITS, "lhotse", tmp_path / "lh")
    export_corpus(kaldi, SPLITS, "kaldi", tmp_path / "kd")
    export_corpus(kaldi, SPLITS, "nemo", tmp_path / "nemo")
    for kind, path in (("lhotse", tmp_path / "lh"), ("kaldi_dir", tmp_path / "kd"), ("manifest", tmp_path / "nemo")):
        back = source(kind, path)
        assert_same_corpus(kaldi, back)
        items = back.split("train").items
        assert all(it.start is not None for it in items) and len({it.path for it in items}) == 2
    recordings = gzip.open(tmp_path / "lh" / "recordings_train.jsonl.gz", "rt").read().splitlines()
    assert len(recordings) == 2  # one per recording, not per segment
    nemo = [json.loads(line) for line in (tmp_path / "nemo" / "train.jsonl").read_text().splitlines()]
    assert all("offset" in row and row["duration"] > 0 for row in nemo)


def test_dataset_bytes_are_written_as_wav(tmp_path):
    """A Hugging Face dataset's audio is no file: the export writes each utterance's audio under OUT/audio."""
    datasets = pytest.importorskip("datasets")
    import io

    import soundfile as sf

    rng = np.random.default_rng(0)

    def wav(n):
        buf = io.BytesIO()
        sf.write(buf, rng.integers(-2000, 2000, n).astype(np.int16), 16000, format="WAV")
        return buf.getvalue()

    for split in SPLITS:
        datasets.Dataset.from_dict({"audio": [{"bytes": wav(4000 + 800 * i), "path": None} for i in range(2)],
                                    "text": ["AB", "BA"]}).to_parquet(str(tmp_path / "hf" / f"{split}.parquet"))
    hf = source("hf", tmp_path / "hf")
    reports = export_corpus(hf, SPLITS, "lhotse", tmp_path / "lh")
    assert [r.converted for r in reports] == [2, 2, 2]
    assert_same_corpus(hf, source("lhotse", tmp_path / "lh"))
    assert all(it.path.is_relative_to(tmp_path / "lh" / "audio") for it in source("lhotse", tmp_path / "lh")
               .split("dev").items)


def test_cli_export_and_its_errors(tiny_corpus, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_corpus, tmp_path / "feats")
    done = run_cli("corpus", "export", str(recipe), str(tmp_path / "out"), "--format", "nemo")
    assert done.returncode == 0, done.stderr
    assert "train: 8 utterances" in done.stdout and (tmp_path / "out" / "test.jsonl").is_file()
    with pytest.raises(LstmAsrError, match="unknown export format"):
        export_corpus(source("timit", tiny_corpus), SPLITS, "sphinx", tmp_path / "x")


def test_text_transcripts_are_kept_and_pen_strokes_refused(tmp_path):
    from fake_text_corpus import make_librispeech

    from data_prep.ink import Ink
    from data_prep.sources import CorpusItem, SplitItems

    libri = source("librispeech", make_librispeech(tmp_path / "LS", {"train": (1, 2), "dev": (1, 1), "test": (1, 1)}))
    export_corpus(libri, SPLITS, "kaldi", tmp_path / "kd")
    trans = next((tmp_path / "LS" / "train").rglob("*.trans.txt")).read_text()
    assert (tmp_path / "kd" / "train" / "text").read_text() == trans  # the words, not the character labels
    assert_same_corpus(libri, source("kaldi_dir", tmp_path / "kd"))

    class Strokes:
        kind, default_units, root = "ondb", "chars", tmp_path

        def split(self, name):
            return SplitItems([CorpusItem("a01", "w1", tmp_path / "a01.xml", ("A",))], [])

        @staticmethod
        def read(path, **options):
            return Ink([np.zeros((2, 3), np.float32)])

    with pytest.raises(LstmAsrError, match="corpus.type ondb holds pen strokes"):
        export_corpus(Strokes(), ["train"], "lhotse", tmp_path / "ink")


def test_wav_scp_pipes_stay_pipes_for_kaldi_and_become_wav_for_lhotse(tmp_path):
    data = make_kaldi_data(tmp_path / "src", {"train": (1, 2), "dev": (1, 1), "test": (1, 1)})
    for split in SPLITS:
        scp = data / split / "wav.scp"
        scp.write_text("".join(f"{utt} cat {path} |\n" for utt, path in
                               (line.split() for line in scp.read_text().splitlines())))
    piped = source("kaldi_dir", data, allow_commands=True)
    export_corpus(piped, SPLITS, "kaldi", tmp_path / "kd")
    assert all(line.endswith(" |") for line in (tmp_path / "kd" / "train" / "wav.scp").read_text().splitlines())
    assert_same_corpus(piped, source("kaldi_dir", tmp_path / "kd", allow_commands=True))
    reports = export_corpus(piped, SPLITS, "lhotse", tmp_path / "lh")
    assert [r.converted for r in reports] == [2, 1, 1]
    assert_same_corpus(piped, source("lhotse", tmp_path / "lh"))
