"""``corpus.type: lhotse``: manifests written by the real Lhotse package (cuts, recordings + supervisions), parts of
recordings, channels, alignment labels, and the handling of bad manifests."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.corpora import open_source
from data_prep.units import WORD_SEP
from lstm_asr.errors import CorpusError, LstmAsrError
from lstm_asr.recipe import CorpusSection

RATE = 16000


def source(path: Path, **opts):
    return open_source("lhotse", path, CorpusSection(type="lhotse", path=str(path), **opts))


def chars(item) -> str:
    return "".join(item.labels).replace(WORD_SEP, " ")


def audio_of(src, item) -> np.ndarray:
    return src.read(str(item.path), **item.audio_options()).samples


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """Manifests written by Lhotse: a mono recording with two parts (one with a phone alignment), a stereo one
    with a supervision on channel 1, and one on both channels. ``train``: cuts trimmed to the supervisions, with a
    prefix (icefall's naming); ``dev``: recordings + supervisions; ``test``: one cut per whole recording."""
    lhotse = pytest.importorskip("lhotse", reason="lhotse not installed (pip install 'lstm-asr[lhotse]')")
    from lhotse.supervision import AlignmentItem

    root = tmp_path_factory.mktemp("lhotse")
    rng = np.random.default_rng(0)
    mono = (rng.normal(0, 0.1, 2 * RATE) * 32767).astype(np.int16)
    stereo = (rng.normal(0, 0.1, (RATE, 2)) * 32767).astype(np.int16)
    sf.write(root / "mono.wav", mono, RATE)
    sf.write(root / "stereo.flac", stereo, RATE)
    recs = lhotse.RecordingSet.from_recordings([lhotse.Recording.from_file(root / "mono.wav"),
                                                lhotse.Recording.from_file(root / "stereo.flac")])
    phones = [AlignmentItem("s", 0.5, 0.2), AlignmentItem("iy", 0.7, 0.3)]
    sups = lhotse.SupervisionSet.from_segments([
        lhotse.SupervisionSegment("m1", "mono", 0.5, 0.5, channel=0, text="SEE", speaker="ann",
                                  alignment={"phone": phones}),
        lhotse.SupervisionSegment("m2", "mono", 1.25, 0.5, channel=0, text="A CAT", speaker="bob"),
        lhotse.SupervisionSegment("s1", "stereo", 0.0, 1.0, channel=1, text="RIGHT", speaker="cy"),
        lhotse.SupervisionSegment("s2", "stereo", 0.25, 0.5, channel=[0, 1], text="BOTH", speaker="cy"),
    ])
    cuts = lhotse.CutSet.from_manifests(recordings=recs, supervisions=sups)
    cuts.trim_to_supervisions(keep_overlapping=False).to_file(root / "corpus_cuts_train.jsonl.gz")
    recs.to_file(root / "recordings_dev.jsonl.gz")
    sups.to_file(root / "supervisions_dev.jsonl")
    cuts.to_file(root / "cuts_test.jsonl.gz")
    return root


def test_supervisions_are_utterances_with_their_part_and_channel(written):
    src = source(written)
    items = {it.utt_id: it for it in src.split("dev").items}
    assert {k: (it.speaker, chars(it)) for k, it in items.items()} == {
        "m1": ("ann", "SEE"), "m2": ("bob", "A CAT"), "s1": ("cy", "RIGHT"), "s2": ("cy", "BOTH")}
    mono, _ = sf.read(written / "mono.wav", dtype="float32")
    stereo, _ = sf.read(written / "stereo.flac", dtype="float32")
    np.testing.assert_array_equal(audio_of(src, items["m1"]), mono[8000:16000])
    np.testing.assert_array_equal(audio_of(src, items["m2"]), mono[20000:28000])
    assert items["s1"].start is None and items["s1"].channels == (1,)  # the whole recording, channel 1
    np.testing.assert_array_equal(audio_of(src, items["s1"]), stereo[:, 1])
    np.testing.assert_allclose(audio_of(src, items["s2"]), stereo[4000:12000].mean(axis=1), atol=1e-7)


def test_cuts_read_the_audio_lhotse_loads(written):
    """Every (trimmed, mono-channel) cut: our reader's samples are what Lhotse's load_audio gives."""
    lhotse = pytest.importorskip("lhotse")
    src = source(written)
    items = {it.utt_id: it for it in src.split("train").items}
    assert sorted(items) == ["m1", "m2", "s1", "s2"]
    for cut in lhotse.CutSet.from_file(written / "corpus_cuts_train.jsonl.gz"):
        audio = cut.load_audio()
        ours = audio_of(src, items[cut.supervisions[0].id])
        np.testing.assert_allclose(ours, audio.mean(axis=0), atol=1e-7)
    # whole-recording cuts holding several supervisions give the same utterances
    whole = {it.utt_id: (it.start, it.end, it.channels, it.labels) for it in src.split("test").items}
    assert whole == {k: (it.start, it.end, it.channels, it.labels) for k, it in items.items()}


def test_phone_alignment_labels_and_channel_choice(written):
    src = source(written, alignment="phone", units="phones")
    split = src.split("train")
    assert [(it.utt_id, it.labels) for it in split.items] == [("m1", ("s", "iy"))]
    assert sorted(r for _, r in split.skipped) == ["no 'phone' alignment"] * 3
    assert src.tokens() == ["iy", "s"]
    for units in ("chars", ""):  # "" would score phones as characters glued into words
        with pytest.raises(LstmAsrError, match="corpus.alignment: 'phone' labels .* set corpus.units: phones"):
            source(written, alignment="phone", units=units)
    left = {it.utt_id: it for it in source(written, channel=0).split("dev").items}
    stereo, _ = sf.read(written / "stereo.flac", dtype="float32")
    np.testing.assert_array_equal(audio_of(source(written), left["s1"]), stereo[:, 0])
    none = source(written, channel=5).listing("dev")
    assert not none.utterances and {r for _, r in none.skipped} == {"recording has no channel 5"}


def _rewrite(path: Path, edit) -> None:
    rows = [json.loads(line) for line in gzip.open(path, "rt")]
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in edit(rows))


def test_bad_manifests(written, tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    for f in written.iterdir():
        (root / f.name).write_bytes(f.read_bytes())
    with pytest.raises(CorpusError, match=r"no Lhotse manifests for split 'nope'"):
        source(root).split("nope")

    def sources(rows):
        rows[0]["sources"][0] = {"type": "url", "channels": [0], "source": "https://example.org/a.wav"}
        rows[1]["sources"][0]["source"] = str(root / "gone.flac")
        return rows

    _rewrite(root / "recordings_dev.jsonl.gz", sources)
    listing = source(root).split("dev")
    assert not listing.items
    assert sorted({r for _, r in listing.skipped}) == [
        "audio file not found", "audio source type 'url' is not read (only files and commands; nothing is fetched)"]
    _rewrite(root / "recordings_dev.jsonl.gz", lambda rows: [{**rows[0], "sources": [
        {"type": "command", "channels": [0], "source": f"cat {written / 'mono.wav'}"}]}])
    with pytest.raises(CorpusError, match="command source refused .*allow_commands"):
        source(root).split("dev")
    piped = source(root, allow_commands=True)
    m1 = next(it for it in piped.split("dev").items if it.utt_id == "m1")
    np.testing.assert_array_equal(audio_of(piped, m1), audio_of(source(written), m1))
    (root / "supervisions_dev.jsonl").write_text((root / "supervisions_dev.jsonl").read_text() + "{oops\n")
    with pytest.raises(CorpusError, match=r"supervisions_dev.jsonl: line 5: not valid JSON"):
        source(root).split("dev")
    first = (written / "supervisions_dev.jsonl").read_text().splitlines()[0]
    (root / "supervisions_dev.jsonl").write_text(first + "\n" + first + "\n")
    with pytest.raises(CorpusError, match=r"line 2: duplicate utterance id 'm1'"):
        source(root, allow_commands=True).split("dev")
    (root / "other_cuts_train.jsonl").write_text("")
    with pytest.raises(CorpusError, match="several cuts manifests for split 'train'"):
        source(root).split("train")


def test_export_keeps_channels_and_parts(written, tmp_path):
    """Lhotse -> Lhotse keeps recordings, parts and channels; Kaldi and NeMo get one WAV per channel-picked
    utterance (they cannot pick a channel of a file): every way, the same audio per utterance."""
    from data_prep.corpus_export import export_corpus

    src = source(written)
    export_corpus(src, ["train", "dev"], "lhotse", tmp_path / "lh")
    export_corpus(src, ["train", "dev"], "kaldi", tmp_path / "kd")
    reports = export_corpus(src, ["train", "dev"], "nemo", tmp_path / "nemo")
    assert [r.converted for r in reports] == [1, 1]  # s1, channel 1 (s2 averages both: the whole file)
    for kind, path in (("lhotse", tmp_path / "lh"), ("kaldi_dir", tmp_path / "kd"), ("manifest", tmp_path / "nemo")):
        back = open_source(kind, path, CorpusSection(type=kind, path=str(path)))
        ours = {it.utt_id: it for it in src.split("dev").items}
        theirs = {it.utt_id: it for it in back.split("dev").items}
        assert sorted(theirs) == sorted(ours)
        for utt, it in ours.items():
            assert theirs[utt].speaker == it.speaker and theirs[utt].labels == it.labels
            np.testing.assert_allclose(audio_of(back, theirs[utt]), audio_of(src, it), atol=1 / 32768)
    lh = {it.utt_id: it for it in source(tmp_path / "lh").split("dev").items}
    assert lh["s1"].channels == (1,) and lh["m1"].start == 0.5
