"""The Kaldi data dir, LibriSpeech and manifest readers, and their handling of bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fake_text_corpus import make_kaldi_data, make_librispeech, make_manifest

from data_prep.corpora import open_source
from data_prep.units import WORD_SEP
from lstm_asr.data.features import FeatureConfig
from lstm_asr.data.prep import prep_split
from lstm_asr.data.tokens import TokenSet
from lstm_asr.errors import CorpusError
from lstm_asr.recipe import CorpusSection

SPLITS = {"train": (2, 3), "dev": (1, 2)}


def source(kind: str, path: Path, **opts):
    return open_source(kind, path, CorpusSection(type=kind, path=str(path), **opts))


def frames_of(item) -> int:
    """Frames of an item as prep computes them (through its source's reader, segment options included)."""
    from data_prep.corpora import source_class
    from lstm_asr.data.prep import featurize_input

    raw = source_class("kaldi_dir").read(str(item.path), **item.audio_options())
    return featurize_input(raw, FeatureConfig().to_dict(), str(item.path)).shape[0]


@pytest.fixture(scope="module")
def libri(tmp_path_factory) -> Path:
    return make_librispeech(tmp_path_factory.mktemp("ls") / "LibriSpeech", SPLITS)


@pytest.fixture(scope="module")
def kaldi(tmp_path_factory) -> Path:
    return make_kaldi_data(tmp_path_factory.mktemp("kd"), SPLITS, fmt="WAV")


def test_librispeech_lists_utterances_speakers_and_char_labels(libri):
    src = source("librispeech", libri)
    train = src.split("train")
    assert len(train.items) == 6 and not train.skipped
    assert len({it.speaker for it in train.items}) == 2
    it = train.items[0]
    text = (it.path.parent / f"{it.path.parent.parent.name}-{it.path.parent.name}.trans.txt").read_text()
    ref = dict(line.split(" ", 1) for line in text.splitlines())[it.utt_id]
    assert "".join(it.labels).replace(WORD_SEP, " ") == ref
    assert it.path.suffix == ".flac" and set(src.tokens()) >= set(it.labels)


def test_librispeech_missing_audio_is_skipped_and_counted(libri, tmp_path):
    root = shutil.copytree(libri, tmp_path / "LS")
    victim = sorted((root / "dev").rglob("*.flac"))[0]
    victim.unlink()
    listing = source("librispeech", root).split("dev")
    assert len(listing.items) == 1
    assert listing.skipped == [(str(victim), "audio file not found")]


def test_librispeech_duplicate_id_is_a_one_line_error(libri, tmp_path):
    root = shutil.copytree(libri, tmp_path / "LS")
    trans = sorted((root / "train").rglob("*.trans.txt"))[0]
    first = trans.read_text().splitlines()[0]
    trans.write_text(trans.read_text() + first + "\n")
    with pytest.raises(CorpusError, match=r"line 4: duplicate utterance id"):
        source("librispeech", root).split("train")


def test_char_outside_the_training_inventory_is_kept_in_dev_and_scored_as_an_error(libri, tmp_path):
    from data_prep.corpora import score_units_for
    from lstm_asr.data.feature_store import FeatureSplit
    from lstm_asr.scoring.evaluate import score_split

    root = shutil.copytree(libri, tmp_path / "LS")
    trans = sorted((root / "dev").rglob("*.trans.txt"))[0]
    lines = trans.read_text().splitlines()
    utt = lines[0].split()[0]
    trans.write_text("\n".join([f"{utt} ZAP", *lines[1:]]) + "\n")
    src = source("librispeech", root)
    listing = src.split("dev")
    # Z and P never occur in the training text: a dev reference keeps them (the inventory comes from training).
    assert len(listing.items) == 2 and not listing.skipped
    assert {"Z", "P"}.isdisjoint(src.tokens()) and listing.items[0].labels == ("Z", "A", "P")
    tokens = TokenSet(src.tokens())
    report = prep_split(src, "dev", tmp_path / "dev", FeatureConfig(), tokens, jobs=1, scoring_only=True)
    assert report.utterances == 2 and not report.skipped
    assert report.unknown == {"symbols": {"P": 1, "Z": 1}, "utterances": 1}
    assert "1 utterance holds symbols outside the model's inventory ('P' 'Z')" in report.summary()
    split = FeatureSplit(tmp_path / "dev")
    i = split.ids.index(utt)
    assert split.refs[i] == "Z A P" and tokens.decode(split.labels(i).tolist()) == ["A"]  # ids: known ones only
    # Every symbol the model has is right: the errors are exactly the words holding unknown characters, counted
    # among the reference's words (WER for characters on speech).
    score = score_split(split, [split.labels(k).tolist() for k in range(len(split))], tokens.symbols,
                        score_units_for("librispeech", "chars"))
    words = [len(r.replace(" ", "").split("|")) for r in split.refs]
    assert (score.counts.ref_tokens, score.counts.errors) == (sum(words), 1)
    assert score.to_dict()["unknown_symbols"] == report.unknown
    # A training split cannot hold them: there they skip the utterance, as before.
    train = prep_split(src, "dev", tmp_path / "as_train", FeatureConfig(), tokens, jobs=1)
    assert train.utterances == 1 and list(train.skipped) == ["symbol 'Z' is not in the token set"]


def test_kaldi_dir_reads_wav_scp_text_utt2spk(kaldi):
    src = source("kaldi_dir", kaldi)
    items = src.split("train").items
    assert len(items) == 6 and {it.speaker for it in items} == {"100", "101"}
    text = dict(line.split(" ", 1) for line in (kaldi / "train" / "text").read_text().splitlines())
    for it in items:
        assert "".join(it.labels).replace(WORD_SEP, " ") == text[it.utt_id]
        assert it.start is None and it.path.is_file()


def test_kaldi_segments_cut_the_recording(tmp_path):
    data = make_kaldi_data(tmp_path, {"train": (1, 3)}, fmt="FLAC", segments=True)
    items = source("kaldi_dir", data).split("train").items
    assert len(items) == 3 and len({it.path for it in items}) == 1  # one recording, three segments
    cfg = FeatureConfig()
    for it in items:
        assert frames_of(it) == cfg.num_frames(int(round(it.end * 16000)) - int(round(it.start * 16000)))


def test_kaldi_segment_past_the_end_is_skipped_and_counted(tmp_path):
    data = make_kaldi_data(tmp_path, {"train": (1, 3)}, segments=True)
    segs = (data / "train" / "segments").read_text().splitlines()
    utt, rec, start, _ = segs[-1].split()
    segs[-1] = f"{utt} {rec} {start} {float(start) + 30:.4f}"
    (data / "train" / "segments").write_text("\n".join(segs) + "\n")
    src = source("kaldi_dir", data)
    report = prep_split(src, "train", tmp_path / "feats", FeatureConfig(), TokenSet(src.tokens()), jobs=1)
    assert report.utterances == 2
    [(reason, n)] = report.skipped.items()
    assert n == 1 and "runs past the end of the audio" in reason


def test_kaldi_piped_command_refused_unless_allowed(kaldi, tmp_path):
    d = tmp_path / "data" / "train"
    shutil.copytree(kaldi / "train", d)
    lines = (d / "wav.scp").read_text().splitlines()
    utt, path = lines[0].split()
    lines[0] = f"{utt} cat {path} |"
    (d / "wav.scp").write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError, match=r"wav.scp: line 1: piped command refused .*allow_commands"):
        source("kaldi_dir", tmp_path / "data").split("train")
    items = source("kaldi_dir", tmp_path / "data", allow_commands=True).split("train").items
    piped = next(it for it in items if it.utt_id == utt)
    assert piped.command == f"cat {path} |"
    direct = next(it for it in source("kaldi_dir", kaldi).split("train").items if it.utt_id == utt)
    from data_prep.text_corpus import read_segment

    np.testing.assert_array_equal(read_segment(str(piped.path), **piped.audio_options()).samples,
                                  read_segment(str(direct.path)).samples)


def test_kaldi_bad_lists(kaldi, tmp_path):
    d = tmp_path / "data" / "train"
    shutil.copytree(kaldi / "train", d)
    wav = (d / "wav.scp").read_text().splitlines()
    missing_utt = wav[1].split()[0]
    wav[1] = f"{missing_utt} {tmp_path / 'nowhere.wav'}"
    (d / "wav.scp").write_text("\n".join(wav[:-1]) + "\n")  # the last utterance loses its audio entry
    listing = source("kaldi_dir", tmp_path / "data").split("train")
    reasons = sorted(r for _, r in listing.skipped)
    assert reasons == ["audio file not found", "no audio in wav.scp"]
    assert len(listing.items) == 4
    text = (d / "text").read_text().splitlines()
    (d / "text").write_text("\n".join([*text, text[0]]) + "\n")
    with pytest.raises(CorpusError, match=r"text: line 7: duplicate utterance id"):
        source("kaldi_dir", tmp_path / "data").split("train")


def test_manifest_jsonl_csv_and_split_column(tmp_path):
    jl = make_manifest(tmp_path / "jl", SPLITS, kind="jsonl")
    cs = make_manifest(tmp_path / "cs", SPLITS, kind="csv")
    a, b = source("manifest", jl).split("train").items, source("manifest", cs).split("train").items
    assert [(x.utt_id, x.labels, x.speaker) for x in a] == [(x.utt_id, x.labels, x.speaker) for x in b]
    assert len(a) == 6 and all(x.path.is_file() for x in a)
    rows = [dict(json.loads(line), split=s, path=str(jl / json.loads(line)["path"]))
            for s in SPLITS for line in (jl / f"{s}.jsonl").read_text().splitlines()]
    single = tmp_path / "all.jsonl"
    single.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert len(source("manifest", single).split("dev").items) == 2


def test_manifest_start_end_and_bad_rows(tmp_path):
    root = make_manifest(tmp_path / "m", {"train": (1, 2)})
    rows = [json.loads(line) for line in (root / "train.jsonl").read_text().splitlines()]
    dur = sf.info(root / rows[0]["path"]).duration
    rows.append({**rows[0], "id": "part", "start": 0.1, "end": dur - 0.1})
    rows.append({**rows[0], "id": "gone", "path": "wav/none.wav"})
    rows.append({**rows[0], "id": "notext", "text": ""})
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    listing = source("manifest", root).split("train")
    assert [it.utt_id for it in listing.items] == [rows[0]["id"], rows[1]["id"], "part"]
    assert sorted(r for _, r in listing.skipped) == ["audio file not found", "no transcript"]
    part = listing.items[2]
    assert frames_of(part) == FeatureConfig().num_frames(int(round((dur - 0.1) * 16000)) - 1600)
    (root / "train.jsonl").write_text((root / "train.jsonl").read_text() + "{not json\n")
    with pytest.raises(CorpusError, match=r"train.jsonl: line 6: not valid JSON"):
        source("manifest", root).split("train")
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [rows[0], rows[0]]))
    with pytest.raises(CorpusError, match=r"line 2: duplicate utterance id"):
        source("manifest", root).split("train")


def test_timit_layouts_rewrite_a_timit_tree_for_both_readers(tiny_corpus, tmp_path):
    from data_prep.timit import TimitCorpus, read_txt
    from data_prep.timit_layouts import convert, normalize_transcript

    counts = convert(tiny_corpus, tmp_path / "ls", "librispeech")
    assert counts == {s: len(TimitCorpus(tiny_corpus).split(s).utterances) for s in ("train", "dev", "test")}
    convert(tiny_corpus, tmp_path / "kd", "kaldi")
    train = TimitCorpus(tiny_corpus).split("train").utterances
    expected = sorted(normalize_transcript(read_txt(u.txt)) for u in train)
    for kind, path in (("librispeech", tmp_path / "ls"), ("kaldi_dir", tmp_path / "kd" / "data")):
        items = source(kind, path).split("train").items
        assert sorted("".join(it.labels).replace(WORD_SEP, " ") for it in items) == expected
        assert {it.path.suffix for it in items} == ({".flac"} if kind == "librispeech" else {".wav"})


def test_example_recipes_are_valid():
    from lstm_asr.recipe import load_recipe

    repo = Path(__file__).resolve().parents[1]
    for name in ("librispeech/chars_3l_250h", "librispeech/synth_demo", "kaldi_dir/chars", "kaldi_dir/bpe"):
        r = load_recipe(repo / "recipes" / f"{name}.yaml")
        assert r.corpus.type in ("librispeech", "kaldi_dir") and r.corpus.units in ("chars", "bpe")


def test_phone_units_through_a_lexicon_skip_out_of_lexicon_utterances(libri, tmp_path):
    words = {w for it in source("librispeech", libri).listing("train").utterances for w in it.text.split()}
    missing = sorted(words)[0]
    lex = tmp_path / "lexicon.dict"
    lex.write_text("".join(f"{w}  {' '.join(c.lower() + '1' for c in w)}\n" for w in sorted(words) if w != missing))
    src = source("librispeech", libri, units="phones", lexicon=str(lex))
    train = src.split("train")
    assert set(src.tokens()) == {c.lower() + "1" for w in words - {missing} for c in w}
    reasons = {r for _, r in train.skipped}
    assert reasons == {f"out-of-lexicon word {missing!r}"}
    n_with = sum(missing in u.text.split() for u in src.listing("train").utterances)
    assert len(train.skipped) == n_with and len(train.items) == 6 - n_with


def test_units_keep_unknown_symbols_only_when_asked():
    from data_prep.units import BpeUnits, CharUnits, PhoneUnits, UnitError

    for units, text, labels in ((CharUnits(), "ab ba", ("a", "b", WORD_SEP, "b", "a")),
                                (PhoneUnits(), "aa bb aa", ("aa", "bb", "aa"))):
        units.fit(["ab ba"] if isinstance(units, CharUnits) else ["aa bb"])
        assert units.labels(text) == labels
        bad = text + (" ~" if isinstance(units, CharUnits) else " zz")
        with pytest.raises(UnitError):
            units.labels(bad)
        assert units.labels(bad, keep_unknown=True)[:len(labels)] == labels
        assert units.labels(bad, keep_unknown=True)[-1] in ("~", "zz")
    pytest.importorskip("sentencepiece")
    bpe = BpeUnits(12)
    bpe.fit(["abc cab bca"] * 20)
    with pytest.raises(UnitError):
        bpe.labels("ab q")
    kept = bpe.labels("ab q", keep_unknown=True)
    from data_prep.units import tokens_to_words

    assert tokens_to_words(kept, "bpe") == ["ab", "q"] and "q" not in "".join(bpe.inventory)


def test_bpe_units_through_a_reader(kaldi):
    pytest.importorskip("sentencepiece")
    src = source("kaldi_dir", kaldi, units="bpe", bpe_vocab_size=20)
    items = src.split("train").items
    text = dict(line.split(" ", 1) for line in (kaldi / "train" / "text").read_text().splitlines())
    from data_prep.units import tokens_to_words

    assert all(tokens_to_words(it.labels, "bpe") == text[it.utt_id].split() for it in items)
    assert set().union(*(it.labels for it in items)) <= set(src.tokens())


def test_a_corpus_only_tested_on_fits_nothing_and_keeps_every_symbol(kaldi):
    """train_split "" (a multi-corpus recipe's test-only corpus): no training split is read, no units are fitted,
    and the dev split's labels are its transcripts, every character kept (scored against the model's inventory)."""
    src = source("kaldi_dir", kaldi, train_split="")
    assert src.tokens() == [WORD_SEP]  # characters: only the word boundary, which every inventory has
    text = dict(line.split(" ", 1) for line in (kaldi / "dev" / "text").read_text().splitlines())
    items = src.split("dev").items
    assert len(items) == len(text) > 0
    for it in items:
        assert "".join(it.labels).replace(WORD_SEP, " ") == text[it.utt_id]
    with pytest.raises(CorpusError):
        source("kaldi_dir", kaldi, train_split="missing").tokens()
