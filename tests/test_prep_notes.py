"""prep's summary line reports a source's counts that are not skips (SplitItems.notes): for recorded corpora, where
the words got their phones and how many were out of every lexicon."""

from __future__ import annotations

from fake_recorded import PROMPTS, make_kathleen

from data_prep.corpora import open_source
from lstm_asr.data.features import FeatureConfig
from lstm_asr.data.prep import prep_split
from lstm_asr.data.tokens import TokenSet
from lstm_asr.recipe import CorpusSection


def test_prep_summary_reports_where_words_got_their_phones(tmp_path):
    root = make_kathleen(tmp_path / "k", PROMPTS, takes=1)
    src = open_source("audio_folder", root, CorpusSection(type="audio_folder", prompts="cmuarctic.data",
                                                          test_share=0.0, dev_share=0.0))
    report = prep_split(src, "train", tmp_path / "train", FeatureConfig(), TokenSet(src.tokens()), jobs=1)
    assert "words from cmudict: " in report.summary() and "out-of-lexicon words (distinct): " in report.summary()
