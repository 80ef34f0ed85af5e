"""Recorded speech corpora: festvox ARCTIC voices, audio folders (Kathleen's layout, wav-only folders with a
prompts file), speechocean762; phones from words (ARPAbet -> TIMIT, the lexicon chain); held-out splits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fake_recorded import PROMPTS, festival_prompts, make_arctic_voice, make_kathleen, make_speechocean
from hypothesis import given, settings
from hypothesis import strategies as st

from data_prep.arctic import read_lab
from data_prep.arpabet import PhoneSetError, arpabet_phone, radio_phone, timed_labels, utterance_labels
from data_prep.corpora import open_source, score_units_for, source_class
from data_prep.heldout import DROPPED, HeldOut, sentence_key
from data_prep.lexicon import Pronouncer, PronunciationError, espeak_available, lexicon_words, possessive_ending
from data_prep.phones import TRAIN_PHONES
from data_prep.recorded import prompt_for, read_prompts
from lstm_asr.data.features import FeatureConfig
from lstm_asr.data.prep import featurize_input, prep_split
from lstm_asr.data.tokens import TokenSet
from lstm_asr.errors import CorpusError, LstmAsrError
from lstm_asr.recipe import CorpusSection

needs_espeak = pytest.mark.skipif(bool(espeak_available()), reason=espeak_available() or "ok")


def source(kind: str, path: Path, **opts):
    return open_source(kind, path, CorpusSection(type=kind, path=str(path), **opts))


def all_items(src) -> dict[str, list]:
    return {name: src.split(name).items for name in ("train", "dev", "test")}


# --- ARPAbet and radio phones -> TIMIT-61 --------------------------------------------------------------------------


def test_arpabet_to_timit_removes_stress_and_reduces_schwa_only_when_trusted():
    assert [arpabet_phone(p) for p in "AO1 TH ER0 AH0 AH1 HH".split()] == ["ao", "th", "er", "ax", "ah", "hh"]
    assert arpabet_phone("AH0", schwa_from_stress=False) == "ah"
    for bad in ("AX1", "Q", "AH01", "", "pau"):
        with pytest.raises(PhoneSetError):
            arpabet_phone(bad)


def test_labels_have_edge_silences_and_closures_like_the_generated_corpus():
    assert utterance_labels([["b", "ae", "t"], ["ch", "ih", "n"]]) == (
        "h#", "bcl", "b", "ae", "tcl", "t", "tcl", "ch", "ih", "n", "h#")
    assert set(utterance_labels([[p] for p in "b d g p t k ch jh".split()])) <= set(TRAIN_PHONES)
    # timed labels: edge pauses -> one h# each side; inner runs of pauses -> one pau; q dropped
    phones = [radio_phone(p) for p in "pau ssil dh ax pau brth k ae t pau".split()]
    assert timed_labels(phones) == ("h#", "dh", "ax", "pau", "kcl", "k", "ae", "tcl", "t", "h#")
    assert radio_phone("q") is None and radio_phone("axr") == "axr"
    with pytest.raises(PhoneSetError):
        radio_phone("xx")


# --- the lexicon chain ---------------------------------------------------------------------------------------------


def test_words_are_spelt_as_lexicons_spell_them():
    assert lexicon_words("Lord, but I'm glad -- 'em, Phil. Seventy-five!") == [
        "LORD", "BUT", "I'M", "GLAD", "EM", "PHIL", "SEVENTY-FIVE"]


def test_lexicon_chain_order_counts_and_oov():
    calls = []

    def fake_espeak(word: str) -> list[str]:
        calls.append(word)
        return ["z", "ao", "r", "q", "pau", "b", "l", "ae", "kcl"] if word == "zorblax" else []

    p = Pronouncer({"AUTHOR": ("AO0", "TH", "ER0")}, corpus_stress=False, espeak=fake_espeak)
    words = p.words("Author the zorblax, author")
    assert words[0] == ("ao", "th", "er")  # the corpus lexicon wins over CMUdict
    assert words[1] in (("dh", "ax"), ("dh", "ah"), ("dh", "iy"))  # CMUdict
    assert words[2] == ("z", "ao", "r", "b", "l", "ae", "kcl")  # espeak-ng: q and pauses dropped
    assert p.stats.tokens == {"corpus lexicon": 2, "cmudict": 1, "espeak-ng": 1}
    assert p.stats.oov == {"ZORBLAX": 1}
    assert p.stats.notes()["out-of-lexicon words (distinct)"] == 1
    p.words("zorblax")
    assert calls == ["zorblax"]  # looked up once
    with pytest.raises(PronunciationError) as err:
        p.words("the qwxzv")
    assert err.value.word == "QWXZV" and "out-of-lexicon" in str(err.value)


def test_without_a_fallback_oov_words_raise_and_hyphens_and_possessives_split():
    p = Pronouncer(fallback="none")
    assert p.words("tea-bear")[0] == p.word("TEA") + p.word("BEAR")
    assert p.words("Thorpe's Selden's Ross's")[0][-2:] == ("p", "s")
    assert p.word("SELDEN'S")[-1] == "z" and possessive_ending("jh") == ("ix", "z")
    assert p.stats.tokens["lexicon parts ('s, hyphens)"] == 3 and p.stats.tokens["cmudict"] == 1  # ROSS'S is in it
    assert not p.stats.oov
    with pytest.raises(PronunciationError, match="word_fallback: none"):
        p.words("zorblax")
    assert p.stats.tokens["none"] == 1


@needs_espeak
def test_espeak_ng_pronounces_what_no_lexicon_has():
    p = Pronouncer(fallback="espeak")
    phones = p.words("zorblax 1908")
    assert phones[0][0] == "z" and len(phones[1]) > 6  # a number is read out
    assert all(ph in TRAIN_PHONES for w in phones for ph in w)
    assert p.stats.tokens["espeak-ng"] == 2


# --- held-out splits ------------------------------------------------------------------------------------------------

SPEAKERS = st.lists(st.text("abcdefgh", min_size=1, max_size=3), min_size=1, max_size=6, unique=True)
SENTENCES = st.lists(st.text("ab cd.,'", min_size=1, max_size=8), min_size=1, max_size=30)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(speakers=SPEAKERS, sentences=SENTENCES, rule=st.sampled_from(["sentence", "speaker", "speaker_sentence"]),
       held=st.integers(0, 2), shares=st.sampled_from([(0.05, 0.1), (0.3, 0.3), (0.0, 0.5)]))
def test_splits_are_disjoint_by_speaker_and_by_sentence(speakers, sentences, rule, held, shares):
    h = HeldOut(rule, *shares, test_speakers=tuple(speakers[:held]))
    where = {(spk, s): h.assign(spk, s) for spk in speakers for s in sentences}
    split_of_sentence: dict[str, set[str]] = {}
    split_of_speaker: dict[str, set[str]] = {}
    for (spk, s), split in where.items():
        if split != DROPPED:
            split_of_sentence.setdefault(sentence_key(s), set()).add(split)
            split_of_speaker.setdefault(spk, set()).add(split)
    if rule != "speaker":
        assert all(len(v) == 1 for v in split_of_sentence.values()), "a sentence in two splits"
        # another corpus with other speakers puts each sentence in the same split
        other = HeldOut(rule, *shares)
        for key, splits in split_of_sentence.items():
            assert other.sentence_split(key) in splits | {DROPPED} or other.sentence_split(key) == next(iter(splits))
    if rule != "sentence":
        assert all(len(v) == 1 for v in split_of_speaker.values()), "a speaker in two splits"
    for spk in speakers[:held]:
        assert split_of_speaker.get(spk, {"test"}) == {"test"}
    if held:
        assert all(split_of_speaker[spk] != {"test"} or spk in speakers[:held]
                   for spk in split_of_speaker if "test" in split_of_speaker[spk])


def test_same_sentence_same_split_whatever_its_spelling():
    h = HeldOut()
    assert sentence_key("Lord, but I'm glad to see you again, Phil.") == "lord but i'm glad to see you again phil"
    assert h.sentence_split("LORD BUT I'M GLAD TO SEE YOU AGAIN PHIL") == h.sentence_split(
        "Lord, but I'm glad to see you again, Phil.")
    shares = [h.sentence_split(f"sentence number {i}") for i in range(2000)]
    assert 0.07 < shares.count("test") / 2000 < 0.13 and 0.03 < shares.count("dev") / 2000 < 0.07


# --- festvox ARCTIC ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def arctic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("arctic") / "cmu_arctic"
    labs = {"arctic_a0001": "pau ao th er ax v dh ax d ey n jh er t r ey l pau"}
    make_arctic_voice(root, "aaa", PROMPTS, labs=labs, extra_wavs=("arctic_b0999",))
    make_arctic_voice(root, "bbb", PROMPTS, rate=48000, channels=2)
    return root


def test_arctic_voices_are_speakers_labels_from_lab_else_words(arctic):
    src = source("arctic", arctic, dev_share=0.3, test_share=0.3)
    splits = all_items(src)
    items = [it for v in splits.values() for it in v]
    assert {it.speaker for it in items} == {"aaa", "bbb"}
    assert len(items) == 2 * len(PROMPTS)  # zorblax: espeak-ng, or skipped without it
    by_id = {it.utt_id: it for it in items}
    lab = by_id.get("aaa_arctic_a0001")
    if lab is not None:
        assert lab.labels[:4] == ("h#", "ao", "th", "er") and "jh" in lab.labels and lab.labels[-1] == "h#"
    words = by_id["bbb_arctic_a0005"].labels  # "Will we ever forget it." from CMUdict
    assert words[0] == "h#" and words[1:4] == ("w", "ih", "l") and words[-3:] == ("tcl", "t", "h#")
    assert src.tokens() == list(TRAIN_PHONES)
    skipped = src.split("train").skipped
    assert any("arctic_b0999" in f and "no prompt line" in r for f, r in skipped)
    # one sentence, one split, in both voices
    for split, its in splits.items():
        for it in its:
            other = "bbb" if it.speaker == "aaa" else "aaa"
            twin = by_id.get(f"{other}_{it.utt_id.split('_', 1)[1]}")
            assert twin is None or twin in splits[split]


def test_arctic_scores_39_folded_phones():
    assert score_units_for("arctic", "")(["h#", "bcl", "b", "ax", "q"]) == ["sil", "sil", "b", "ah"]
    assert score_units_for("speechocean762", "phones") == score_units_for("audio_folder", "phones")


def test_arctic_48k_stereo_reads_as_mono_and_preps_at_16k(arctic, tmp_path):
    src = source("arctic", arctic, dev_share=0.3, test_share=0.3)
    item = next(it for it in src.split("train").items if it.speaker == "bbb")
    raw = source_class("arctic").read(str(item.path))
    assert raw.rate == 48000 and raw.samples.ndim == 1
    feats = featurize_input(raw, FeatureConfig().to_dict(), str(item.path))
    assert abs(feats.shape[0] - 60) <= 2  # 0.6 s at 10 ms frames: resampled, not read as 3x longer
    report = prep_split(src, "train", tmp_path / "train", FeatureConfig(), TokenSet(src.tokens()), jobs=1)
    assert report.utterances == len(src.split("train").items) and report.speakers == 2


def test_lab_reader_errors_name_file_and_line(tmp_path):
    lab = tmp_path / "x.lab"
    lab.write_text("#\n0.1 125 pau\n0.05 125 ax\n")
    with pytest.raises(CorpusError, match="line 3"):
        read_lab(lab)
    lab.write_text("0.1 125 pau\n0.2 125 zz\n")
    with pytest.raises(CorpusError, match="line 2: 'zz'"):
        read_lab(lab)
    lab.write_text("0.1 125 ax\n0.2 125 pau\n")  # no header is fine
    assert read_lab(lab) == ["ax", "pau"]


def test_a_voice_without_prompts_reads_corpus_prompts(tmp_path):
    voice = make_arctic_voice(tmp_path, "ccc", PROMPTS)
    (voice / "etc" / "txt.done.data").unlink()
    with pytest.raises(CorpusError, match="corpus.prompts"):
        source("arctic", voice).split("train")
    (tmp_path / "prompts.data").write_text(festival_prompts(PROMPTS))
    src = source("arctic", voice, prompts=str(tmp_path / "prompts.data"), test_share=0.3)
    assert sum(len(v) for v in all_items(src).values()) >= len(PROMPTS) - 1


# --- audio folders --------------------------------------------------------------------------------------------------


def test_kathleen_layout_takes_share_their_prompts_split(tmp_path):
    root = make_kathleen(tmp_path / "kathleen", PROMPTS)
    # a take whose transcript was clipped still goes where its prompt goes
    clipped = sorted((root / "data").glob("arctic_a0003_*.txt"))[0]
    clipped.write_text("For the twentieth time\n")
    src = source("audio_folder", root, prompts="cmuarctic.data", test_share=0.4, dev_share=0.2)
    splits = all_items(src)
    assert {it.speaker for v in splits.values() for it in v} == {"kathleen"}
    where = {}
    for split, its in splits.items():
        for it in its:
            where.setdefault(it.utt_id.split("_15927")[0], set()).add(split)
    assert all(len(v) == 1 for v in where.values())
    assert HeldOut(dev_share=0.2, test_share=0.4).sentence_split(PROMPTS["arctic_a0003"]) in where[
        "kathleen_arctic_a0003"]
    short = next(it for v in splits.values() for it in v if it.utt_id.startswith(f"kathleen_{clipped.stem}"))
    assert len(short.labels) < 25  # labelled from its own (clipped) transcript, not the 48-label prompt
    raw = source_class("audio_folder").read(str(short.path))
    assert raw.rate == 48000 and raw.samples.ndim == 1


def test_wav_only_speaker_folders_with_an_external_prompts_file(tmp_path, arctic):
    root = tmp_path / "arctic"
    for voice in ("aaa", "bbb"):
        shutil.copytree(arctic / f"cmu_us_{voice}_arctic" / "wav", root / voice)
    (tmp_path / "cmuarctic.data").write_text(festival_prompts(PROMPTS))
    src = source("audio_folder", root, prompts=str(tmp_path / "cmuarctic.data"), split_by="sentence",
                 test_speakers=["bbb"], test_share=0.4)
    splits = all_items(src)
    assert {it.speaker for it in splits["test"]} == {"bbb"}
    assert {it.speaker for it in splits["train"] + splits["dev"]} == {"aaa"}
    test_sentences = {it.utt_id.split("_", 1)[1] for it in splits["test"]}
    assert not test_sentences & {it.utt_id.split("_", 1)[1] for it in splits["train"]}
    left_out = [r for _, r in src.split("train").skipped if r.startswith("left out")]
    assert left_out  # bbb's training sentences and aaa's test sentences
    assert any("no transcript" in r for _, r in src.split("train").skipped)  # arctic_b0999 has no prompt


def test_prompts_file_formats_and_take_names(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text('( a_1 "He said \\"hi\\"." )\n\nb_2\tSecond one.\n')
    assert read_prompts(f) == {"a_1": 'He said "hi".', "b_2": "Second one."}
    assert prompt_for("a_1_1592748574", {"a_1": "x"}) == "a_1" and prompt_for("a_10", {"a_1": "x"}) is None
    f.write_text("a_1 x\na_1 y\n")
    with pytest.raises(CorpusError, match="line 2: duplicate"):
        read_prompts(f)
    f.write_text('( a_1 "unterminated )\n')
    with pytest.raises(CorpusError, match="line 1"):
        read_prompts(f)


def test_unknown_split_name_is_a_one_line_error(tmp_path):
    root = make_kathleen(tmp_path / "k", dict(list(PROMPTS.items())[:2]), takes=1)
    with pytest.raises(CorpusError, match="no split 'valid'"):
        source("audio_folder", root).split("valid")


def test_chars_units_work_on_recorded_corpora(tmp_path):
    root = make_kathleen(tmp_path / "k", PROMPTS, takes=1)
    src = source("audio_folder", root, units="chars", test_share=0.3)
    it = src.split("train").items[0]
    assert "|" in it.labels and score_units_for("audio_folder", "chars")(list("ab|c")) == ["ab", "c"]


# --- speechocean762 -------------------------------------------------------------------------------------------------


def test_speechocean762_phones_from_text_phone_dev_speakers_and_relative_paths(tmp_path, monkeypatch):
    root = make_speechocean(tmp_path / "so", {"train": [f"{i:04d}" for i in range(1, 11)], "test": ["0100", "0101"]},
                            missing_text_phone=("000100000",))
    monkeypatch.chdir(tmp_path)  # wav.scp paths are relative to the corpus folder, not to here
    src = source("speechocean762", root, dev_share=0.3)
    splits = all_items(src)
    spk = {k: {it.speaker for it in v} for k, v in splits.items()}
    assert spk["test"] == {"0100", "0101"} and not spk["train"] & spk["dev"] and spk["dev"]
    assert spk["train"] | spk["dev"] == {f"{i:04d}" for i in range(1, 11)}
    it = next(i for i in splits["train"] + splits["dev"] if i.utt_id.endswith("00003"))  # THE SUN IS HOT
    assert it.labels == ("h#", "dh", "ah", "s", "ah", "n", "ih", "z", "hh", "aa", "tcl", "t", "h#")  # AH0 stays ah
    assert it.path.is_file()
    notes = src.split("train").notes
    missing = sum(i.utt_id == "000100000" for i in splits["train"])
    assert notes["utterances with the corpus's own phone labels"] == len(splits["train"]) - missing
    # an utterance missing from text-phone is pronounced through the corpus lexicon
    first = next(i for i in splits["train"] + splits["dev"] if i.utt_id == "000100000")  # WE CALL IT BEAR
    assert first.labels[:4] == ("h#", "w", "iy", "kcl")


def test_speechocean762_is_also_a_kaldi_dir_for_the_plain_reader(tmp_path, monkeypatch):
    root = make_speechocean(tmp_path / "so", {"train": ["0001"], "test": ["0002"]})
    monkeypatch.chdir(root)  # the plain Kaldi reader takes relative paths from the current folder
    assert len(source("kaldi_dir", root).split("test").items) == 4


def test_recipe_keys_are_checked():
    from lstm_asr.errors import RecipeError
    from lstm_asr.recipe import recipe_from_dict

    base = {"name": "x", "corpus": {"type": "arctic", "path": "/tmp/x"}}
    for bad in ({"split_by": "voice"}, {"dev_share": -0.1}, {"test_share": 0.6, "dev_share": 0.5},
                {"word_fallback": "guess"}):
        with pytest.raises(RecipeError):
            recipe_from_dict({**base, "corpus": {**base["corpus"], **bad}}, "t.yaml")


def test_a_recorded_source_refuses_bad_shares_from_code(tmp_path):
    root = make_kathleen(tmp_path / "k", PROMPTS, takes=1)
    with pytest.raises(LstmAsrError, match="shares"):
        source("audio_folder", root, dev_share=0.6, test_share=0.5)


def test_linked_speaker_folders_make_one_corpus(tmp_path, arctic):
    """A folder of links to other corpora's speakers (how recipes/real_en/native_arctic_kathleen.yaml is built)."""
    (tmp_path / "native").mkdir()
    (tmp_path / "native" / "aaa").symlink_to(arctic / "cmu_us_aaa_arctic" / "wav")
    (tmp_path / "native" / "kat").symlink_to(make_kathleen(tmp_path / "kathleen", PROMPTS, takes=1))
    src = source("audio_folder", tmp_path / "native", prompts="kat/cmuarctic.data", test_share=0.0, dev_share=0.0)
    items = src.split("train").items
    assert {it.speaker for it in items} == {"aaa", "kat"} and len(items) == 2 * len(PROMPTS)


def test_real_en_recipes_are_valid():
    from lstm_asr.recipe import load_recipe

    repo = Path(__file__).resolve().parents[1]
    types = {load_recipe(p).corpus.type for p in sorted((repo / "recipes" / "real_en").glob("*.yaml"))}
    assert types == {"speechocean762", "audio_folder", "arctic"}


def test_dev_share_of_speakers_does_not_depend_on_test_share():
    speakers = [f"{i:04d}" for i in range(400)]
    for test_share in (0.0, 0.1, 0.4):
        h = HeldOut(dev_share=0.2, test_share=test_share)
        dev = sum(h.speaker_bucket(s, test_allowed=False) == "dev" for s in speakers)
        assert 60 < dev < 100
