"""The UNIPEN reader and source (data_prep/unipen.py) on hand-written fixture files in UNIPEN 1.0 syntax
(tests/unipen_fixture/), and the device-independent ink features (lstm_asr/data/ink_features.py).

The fixture has two sites writing the same pen-down traces: ``tst`` (X Y T in ms, recorded pen-up movement, 400
points per inch) and ``nopu`` (X Y only, bare ``.PEN_UP`` markers, 800 points per inch stated in points per mm, a
nested ``.INCLUDE`` and a site keyword UNIPEN does not define); ``abm`` is a non-English site; ``gone`` includes a
file that is not there; category 7 repeats category 6's ``tst`` index file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_prep.iam_ondb import read_ink_and_truth
from data_prep.ink import Ink
from data_prep.unipen import (
    UnipenOptions,
    UnipenSource,
    parse_delineation,
    read_document,
    read_unipen,
    segment_ink,
    writer_role,
)
from lstm_asr.data.ink_features import InkFeatureConfig, featurize_ink, normalize
from lstm_asr.errors import CorpusError, LstmAsrError

FIXTURE = Path(__file__).parent / "unipen_fixture"
INCLUDE = FIXTURE / "include"
ANNA = FIXTURE / "data" / "6" / "tst" / "anna.dat"
BOB = FIXTURE / "data" / "6" / "nopu" / "bob.dat"
DEVICE_FREE = InkFeatureConfig(spacing=0.3, resolution=True, arc_weighted=True, pen_up_time=False)


def source(**options) -> UnipenSource:
    return UnipenSource(FIXTURE, UnipenOptions(**{"dev_fraction": 0.0, "test_fraction": 0.0, **options}))


# --- the format -------------------------------------------------------------------------------------------------------


def test_document_components_devices_and_writer() -> None:
    doc = read_document(ANNA, INCLUDE)
    assert [c.pen_down for c in doc.components] == [False, True, False, True, False, True, True]
    assert doc.writer == "anna"
    assert (doc.devices[0].x_per_inch, doc.devices[0].y_per_inch, doc.devices[0].points_per_second) == (400, 400, 100)
    assert doc.components[1].points[0, 2] == pytest.approx(1.03)  # T is in ms
    assert len(doc.segments) == 10 and doc.segments[0].level == "TEXT"
    assert not doc.oddities  # every keyword of this file is known


def test_bare_pen_up_markers_nested_include_points_per_mm_and_unknown_keyword() -> None:
    doc = read_document(BOB, INCLUDE)
    assert [c.pen_down for c in doc.components] == [True] * 4  # bare .PEN_UP lines are no components
    assert doc.oddities["empty pen block"] == 4
    assert doc.oddities["unknown keyword .SITE_SPECIFIC_KEYWORD"] == 1
    assert doc.devices[0].x_per_inch == pytest.approx(800)  # from .X_POINTS_PER_MM in the nested device.doc
    # No T column: 100 points per second over the recorded samples, and the 250 ms .DT before the third trace.
    t = [c.points[:, 2] for c in doc.components]
    assert np.allclose(np.diff(t[0]), 0.01)
    assert t[2][0] == pytest.approx(t[1][-1] + 0.01 + 0.25)


def test_delineations() -> None:
    p = Path("x.dat")
    assert parse_delineation("0-4", p) == [(0, None, 4, None)]
    assert parse_delineation("7", p) == [(7, None, 7, None)]
    assert parse_delineation("3:1-5:2", p) == [(3, 1, 5, 2)]
    assert parse_delineation("1,3-4", p) == [(1, None, 1, None), (3, None, 4, None)]
    for bad in ("", "a-b", "5-3", "-1", "1:x"):
        with pytest.raises(CorpusError):
            parse_delineation(bad, p)


def test_segments_are_pen_down_ink_upright_with_point_ranges() -> None:
    doc = read_document(ANNA, INCLUDE)
    seg = {s.label: s for s in doc.segments}
    ol = segment_ink(doc, seg["ol"])
    assert [len(s) for s in ol.strokes] == [9, 7]  # components 0-3 hold two pen-down traces; pen-up ones left out
    down = ol.strokes[1]  # the "l" is written top to bottom: UNIPEN's y falls, the Ink's (pointing down) grows
    assert np.all(np.diff(down[:, 1]) > 0)
    lc = segment_ink(doc, seg["lc"])  # 3:1-5:2: the "l" from its point 1, the "c" up to its point 2
    assert [len(s) for s in lc.strokes] == [6, 3]
    assert np.array_equal(lc.strokes[0], ol.strokes[1][1:])
    assert len(segment_ink(doc, seg["cl"]).strokes) == 2  # "5,6"
    assert (ol.x_per_inch, ol.points_per_second) == (400, 100)


def test_labels_escapes_quality_and_non_ascii() -> None:
    doc = read_document(ANNA, INCLUDE)
    by_delin = {s.delineation: s for s in doc.segments}
    assert by_delin["1-3"].label == '"o\\l'  # \" and \\ unescaped, kai's \@ mark dropped
    assert by_delin["6"].quality == ""  # no quality given
    assert by_delin["5"].quality == "BAD"
    assert by_delin["3"].label == "\u00fc"  # ISO-8859-1 byte 0xfc


def test_segment_past_the_data_is_a_one_line_error() -> None:
    with pytest.raises(CorpusError, match="segment reaches past the last component"):
        read_unipen(ANNA, "5-9")


def test_missing_and_looping_includes(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="include file gone/nothere.dat missing"):
        read_document(FIXTURE / "data" / "6" / "gone" / "g1.dat", INCLUDE)
    (tmp_path / "loop.dat").write_text(".INCLUDE loop.dat\n")
    with pytest.raises(CorpusError, match="nested deeper"):
        read_document(tmp_path / "loop.dat", tmp_path)


# --- the source: selection, skips, splits -----------------------------------------------------------------------------


def test_selection_skips_and_counts() -> None:
    src = source()
    counts = src.counts()
    assert counts["missing_includes"] == ["gone/nothere.dat"]
    assert counts["skipped"] == {"include file missing": 1}
    assert counts["oddities"]["quality BAD left out"] == 1  # once: category 7's copy is ...
    assert counts["oddities"]["segment listed in two categories"] == 9  # ... left out before its quality counts
    items = src.split("train").items
    labels = {"".join(it.labels).replace("|", " ") for it in items}
    assert {"ol", "lc", "cl", "l", '"o\\l', "\u00fc", "far"} <= labels and "c" not in labels  # BAD left out
    assert "ol cl" not in labels  # TEXT level
    assert {it.speaker for it in items} == {"tst/anna", "nopu/bob", "abm/k1"}
    assert all(it.path.parts[-3] == "6" for it in items)  # the category 7 duplicate is gone
    assert "ol cl" in {"".join(it.labels).replace("|", " ") for it in source(level="TEXT").split("train").items}


def test_chosen_character_set_skips_and_counts() -> None:
    split = source(charset="ascii").split("train")
    assert "\u00fc" not in {"".join(it.labels) for it in split.items}
    assert [reason for _, reason in split.skipped if "\u00fc" in reason] == \
        ["character '\u00fc' is not in the chosen character set (ascii)"]


def test_sites_writers_and_languages() -> None:
    assert {it.speaker for it in source(sites=("nopu",)).split("train").items} == {"nopu/bob"}
    assert {it.speaker for it in source(writers=("tst/anna",)).split("train").items} == {"tst/anna"}
    assert {it.speaker for it in source().split("train_other").items} == {"abm/k1"}  # German site
    assert "abm/k1" not in {it.speaker for it in source().split("train_en").items}
    held = source(test_sites=("nopu",))
    assert {it.speaker for it in held.split("site_test").items} == {"nopu/bob"}
    assert "nopu/bob" not in {it.speaker for it in held.split("train").items}
    with pytest.raises(CorpusError):
        source().split("valid")


def test_held_out_references_keep_characters_training_never_had() -> None:
    held = source(test_sites=("tst",))  # only tst's writer writes "far": no training word has an "f"
    assert not any("f" in it.labels for it in held.split("train").items)
    assert ("f", "a", "r") in {it.labels for it in held.split("site_test").items}  # scored as a reference, kept
    # A tested-only corpus (train_split "", as in a multi-corpus recipe) has no training text at all: every
    # held-out word is still read, none is skipped for its characters.
    tested_only = UnipenSource(FIXTURE, UnipenOptions(dev_fraction=0.0, test_fraction=1.0), train_split="")
    split = tested_only.split("test")
    assert split.items and not [r for _, r in split.skipped if "character" in r]


def test_writer_hash_split_is_disjoint_deterministic_and_sized() -> None:
    writers = [f"site{k % 7}/w{k}" for k in range(4000)]
    roles = [writer_role(w, 0.1, 0.2) for w in writers]
    assert roles == [writer_role(w, 0.1, 0.2) for w in writers]  # no salted hash(): same on every run
    assert abs(roles.count("test") / 4000 - 0.2) < 0.03 and abs(roles.count("dev") / 4000 - 0.1) < 0.03
    assert roles != [writer_role(w, 0.1, 0.2, salt="x") for w in writers]
    src = UnipenSource(FIXTURE, UnipenOptions(dev_fraction=0.0, test_fraction=1.0))  # every writer is a test one
    assert src.listing().rows and all(r[5] == "test" for r in src.listing().rows)


def test_render_and_decode_read_a_segment_by_name() -> None:
    ink, label = read_ink_and_truth(f"{ANNA}#3:1-5:2")
    assert label == "lc" and [len(s) for s in ink.strokes] == [6, 3]
    ink, label = read_ink_and_truth(f"{ANNA}#@1")
    assert label == "ol"


def test_recipe_section_reaches_the_source(tmp_path: Path) -> None:
    from data_prep.corpora import open_source
    from lstm_asr.recipe import load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: u\ncorpus:\n  type: unipen\n  path: {FIXTURE}\n  unipen:\n    categories: ['6']\n"
                      "    sites: [tst]\n    dev_fraction: 0\n    test_fraction: 0\n    charset: ascii\n"
                      "features:\n  type: ink\n  ink_resolution: true\n  ink_pen_up_time: false\n")
    r = load_recipe(recipe)
    src = open_source("unipen", r.corpus.path, r.corpus)
    assert {it.speaker for it in src.split("train").items} == {"tst/anna"}
    assert "\u00fc" not in src.tokens()


def test_single_corpus_recipe_keeps_its_unipen_section_on_the_way_to_the_reader(tmp_path: Path) -> None:
    """prep, train and evaluate open a one-corpus recipe through corpora_of(): its ``unipen:`` selection (salt,
    sites, lines) must reach the reader, not the defaults."""
    from data_prep.corpora import open_source
    from lstm_asr.recipe import corpora_of, load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: u\ncorpus:\n  type: unipen\n  path: {FIXTURE}\n  unipen:\n    sites: [tst]\n"
                      "    dev_fraction: 0\n    test_fraction: 0\n    salt: '7'\n    lines_from_words: 3\n"
                      "features:\n  type: ink\n")
    entry = corpora_of(load_recipe(recipe))[0]
    src = open_source("unipen", entry.path, entry)
    assert (src.options.salt, src.options.sites, src.options.lines_from_words) == ("7", ("tst",), 3)
    assert {it.speaker for it in src.split("train").items} == {"tst/anna"}


def test_tested_only_corpus_prepares_every_word_and_blames_no_inventory(tmp_path: Path) -> None:
    """In a multi-corpus recipe, a UNIPEN corpus that is only tested (train_split "") keeps all its words; its reader
    has no training text, so prep must not call every character "outside the model's inventory"."""
    from lstm_asr.data.prep import prep
    from lstm_asr.recipe import load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: u\ncorpora:\n"
        f"  - {{name: a, type: unipen, path: {FIXTURE}, dev_split: '', test_split: '',\n"
        "     unipen: {categories: ['6'], sites: [tst], dev_fraction: 0, test_fraction: 0}}\n"
        f"  - {{name: b, type: unipen, path: {FIXTURE}, train_split: '', dev_split: test, test_split: test,\n"
        "     unipen: {categories: ['6'], sites: [nopu], dev_fraction: 0, test_fraction: 1}}\n"
        f"features:\n  type: ink\n  ink_resolution: true\n  ink_pen_up_time: false\n  store: {tmp_path / 'f'}\n")
    reports = {r.split: r for r in prep(load_recipe(recipe), show_progress=False, jobs=1)}
    tested = reports["b/test"]
    assert tested.utterances == 2 and not tested.unknown.get("symbols")  # bob's "ol" and "cl"
    assert "outside the model's inventory" not in tested.summary()


# --- lines from words -------------------------------------------------------------------------------------------------


def test_lines_from_words_keep_natural_gaps_and_place_the_others() -> None:
    # "ol" (components 0-3) and "cl" (5,6) were written side by side: the line keeps them where they are.
    ink, text = read_unipen(ANNA, "line:0-3|5,6")
    doc = read_document(ANNA, INCLUDE)
    words = [segment_ink(doc, s) for s in doc.segments if s.delineation in ("0-3", "5,6")]
    assert text == "ol cl"
    kept = np.concatenate([*words[0].strokes, *words[1].strokes])
    assert np.allclose(np.concatenate(ink.strokes)[:, :2], kept[:, :2])
    # "l" (component 6) then "ol": "ol" lies left of it, so it is moved to its right, a gap apart, in time after it.
    ink, text = read_unipen(ANNA, "line:6|0-3")
    assert text == "l ol"
    first, rest = ink.strokes[0], ink.strokes[1:]
    gap = min(s[:, 0].min() for s in rest) - first[:, 0].max()
    assert gap > 0
    assert min(s[0, 2] for s in rest) > first[-1, 2]


def test_train_split_gets_lines_of_one_writer() -> None:
    items = source(lines_from_words=3).split("train").items
    lines = [it for it in items if it.part and it.part.startswith("line:")]
    assert lines and all("|" in it.labels for it in lines)
    for it in lines:  # every line is read back with its words' ink, from one file (one writer)
        if "5-9" in it.part.split(":", 1)[1].split("|"):  # a word whose segment is past the data spoils its line
            with pytest.raises(CorpusError):
                read_unipen(it.path, it.part)
            continue
        ink, text = read_unipen(it.path, it.part)
        assert "".join(it.labels).replace("|", " ") == text and ink.num_points > 0
    assert not [it for it in source(lines_from_words=3).split("dev").items if it.part.startswith("line:")]
    only = source().split("train_lines").items  # lines alone, for scoring a model on lines
    assert only and all(it.part.startswith("line:") for it in only)
    assert {it.speaker for it in source().split("train_lines_other").items} <= {"abm/k1"}


# --- device-independent features --------------------------------------------------------------------------------------


def test_missing_pen_up_data_gives_the_same_features_as_recorded() -> None:
    """tst records pen-up movement and time stamps at 400 ppi, nopu neither at 800 ppi: the same word must give
    the same features when the device options are on, and must not when they are off (so the test sees them)."""
    a, _ = read_unipen(ANNA, "0-3")
    b, _ = read_unipen(BOB, "0-1")
    fa, fb = featurize_ink(a, DEVICE_FREE)[0], featurize_ink(b, DEVICE_FREE)[0]
    assert fa.shape == fb.shape and np.allclose(fa, fb, atol=1e-5)
    with_pen_up_time = InkFeatureConfig(spacing=0.3, resolution=True, arc_weighted=True)
    fa, fb = featurize_ink(a, with_pen_up_time)[0], featurize_ink(b, with_pen_up_time)[0]
    assert not np.allclose(fa[:, 2], fb[:, 2])  # tst's hover time shows in the stroke-start dt
    unscaled = InkFeatureConfig(spacing=0.0, size=False, resolution=False, pen_up_time=False)
    fa, fb = featurize_ink(a, unscaled)[0], featurize_ink(b, unscaled)[0]
    assert np.allclose(2 * fa[:, :2], fb[:, :2])  # the raw units differ by the resolution ...
    in_mm = InkFeatureConfig(spacing=0.0, size=False, resolution=True, pen_up_time=False)
    assert np.allclose(featurize_ink(a, in_mm)[0], featurize_ink(b, in_mm)[0], atol=1e-6)  # ... mm do not


def _word(rate: float, slow_top: bool = False) -> Ink:
    """A smooth cursive-like trace (loops with ascenders) sampled at ``rate`` points per second; ``slow_top``:
    the pen moves three times slower in the upper half (more points there)."""
    u = np.linspace(0.0, 1.0, 2000)
    x = 40 * u + 1.2 * np.sin(2 * np.pi * 6 * u)
    y = -np.cos(2 * np.pi * 6 * u) - 1.5 * np.clip(np.sin(2 * np.pi * 2 * u), 0, None) ** 4
    speed = np.where(y < 0, 1 / 3, 1.0) if slow_top else np.ones_like(u)
    t = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)) / speed[1:])]) / 8.0
    at = np.arange(0.0, t[-1], 1.0 / rate)
    pts = np.stack([np.interp(at, t, x), np.interp(at, t, y), at], axis=1)
    return Ink([pts * np.array([100.0, 100.0, 1.0])], x_per_inch=400, y_per_inch=400, points_per_second=rate)


def test_sampling_rate_does_not_change_the_features() -> None:
    """The same trace sampled at 100 and 400 points per second: after resampling along the trace, as many points,
    the same extent and the same amount of up-and-down movement (within 3%); without resampling, four times the
    points (so the test sees it)."""
    cfg = InkFeatureConfig(spacing=0.2, arc_weighted=True, resolution=True)
    slow, fast = featurize_ink(_word(100.0), cfg)[0], featurize_ink(_word(400.0), cfg)[0]
    assert len(fast) == pytest.approx(len(slow), rel=0.03)
    for k in (0, 1):
        assert np.abs(fast[:, k]).sum() == pytest.approx(np.abs(slow[:, k]).sum(), rel=0.03)
    raw = InkFeatureConfig(spacing=0.0, arc_weighted=True, resolution=True)
    assert len(featurize_ink(_word(400.0), raw)[0]) > 3.5 * len(featurize_ink(_word(100.0), raw)[0])


def test_arc_weighted_core_band_ignores_writing_speed() -> None:
    """A writer slowing down in the upper half puts more points there; the point-count core band moves, the
    arc-weighted one does not."""
    def band(ink: Ink, weighted: bool) -> float:
        return float(np.ptp(normalize(ink, deskew=False, deslant=False, arc_weighted=weighted).points()[:, 1]))

    even, slow_top = _word(100.0), _word(100.0, slow_top=True)
    assert band(even, True) == pytest.approx(band(slow_top, True), rel=0.03)
    assert band(even, False) != pytest.approx(band(slow_top, False), rel=0.03)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(scale=st.floats(0.25, 8.0), rate=st.sampled_from([50.0, 100.0, 200.0]))
def test_resolution_scaling_leaves_features_unchanged(scale: float, rate: float) -> None:
    base = _word(rate)
    scaled = Ink([s * np.array([scale, scale, 1.0]) for s in base.strokes], x_per_inch=400 * scale,
                 y_per_inch=400 * scale, points_per_second=rate)
    for cfg in (DEVICE_FREE, InkFeatureConfig(spacing=0.0, size=False, resolution=True)):
        assert np.allclose(featurize_ink(base, cfg)[0], featurize_ink(scaled, cfg)[0], atol=1e-4)


def _upright_bars() -> Ink:
    """A square wave like "uuuu": exactly vertical down- and up-strokes joined by flat hooks (no slant at all)."""
    corners = []
    for k in range(8):
        corners += [(k, -1.0), (k, 0.0), (k + 0.5, 0.0), (k + 0.5, -1.0)]
    corners = np.asarray(corners + [(8.0, -1.0)]) * 100
    seg = np.linspace(0.0, 1.0, 12)[:-1, None]
    pts = np.concatenate([a + seg * (b - a) for a, b in zip(corners[:-1], corners[1:], strict=True)])
    return Ink([np.column_stack([pts, np.arange(len(pts)) / 100.0])])


@settings(max_examples=30, deadline=None, derandomize=True)
@given(shear=st.floats(-0.6, 0.6), angle=st.floats(-0.1, 0.1))
def test_slant_and_skew_correction_recover_the_upright_word(shear: float, angle: float) -> None:
    upright = _upright_bars()
    sheared = upright.strokes[0].copy()
    sheared[:, 0] -= shear * sheared[:, 1]  # slanted (y points down: a positive shear leans the tops right)
    tilted = upright.strokes[0].copy()
    c, s = np.cos(angle), np.sin(angle)
    tilted[:, :2] = tilted[:, :2] @ np.array([[c, s], [-s, c]])  # written on a tilted line
    for weighted in (False, True):
        # Slant alone: the median shear of the down-strokes is removed exactly (the skew line, a regression, would
        # mistake part of a word's slant for skew: it is off here).
        a = normalize(upright, deskew=False, arc_weighted=weighted).points()[:, :2]
        b = normalize(Ink([sheared]), deskew=False, arc_weighted=weighted).points()[:, :2]
        assert np.abs(a - b).max() < 1e-6
        # Skew: rotated back within 0.05 core heights and 2% of the distance along the word (the core band is
        # estimated after the rotation, so its height may differ by a little).
        a = normalize(upright, arc_weighted=weighted).points()[:, :2]
        b = normalize(Ink([tilted]), arc_weighted=weighted).points()[:, :2]
        assert np.all(np.abs(a - b) < 0.05 + 0.02 * np.abs(a[:, :1]))
    if abs(shear) > 0.2:  # without the correction the sheared word is not upright (so the test sees it)
        b = normalize(Ink([sheared]), deslant=False, deskew=False).points()[:, :2]
        assert np.abs(normalize(upright, deskew=False).points()[:, :2] - b).max() > 0.1


def test_default_settings_keep_old_fingerprints_and_export_refuses_new_ones() -> None:
    assert set(InkFeatureConfig().to_dict()) == {"type", "spacing", "deskew", "deslant"}
    assert InkFeatureConfig.from_dict(DEVICE_FREE.to_dict()) == DEVICE_FREE
    from lstm_asr.data.ink_script import ScriptableInkFeatures

    ScriptableInkFeatures(InkFeatureConfig())
    with pytest.raises(LstmAsrError, match="resolution"):
        ScriptableInkFeatures(DEVICE_FREE)


def test_copied_fixture_with_damaged_points_is_read_or_skipped(tmp_path: Path) -> None:
    root = tmp_path / "u"
    shutil.copytree(FIXTURE, root)
    data = root / "include" / "tst" / "data" / "anna.dat"
    data.write_text(data.read_text().replace("1030\n", "1030 7\nnot numbers\n", 1))
    doc = read_document(root / "data" / "6" / "tst" / "anna.dat", root / "include")
    assert doc.oddities["malformed point line"] == 1 and len(doc.components[1].points) == 9


def test_utterance_ids_are_unique_when_sites_reuse_file_names(tmp_path: Path) -> None:
    root = tmp_path / "u"
    shutil.copytree(FIXTURE, root)
    (root / "data" / "6" / "tst" / "sub").mkdir()  # sta gives every writer a folder with the same file names
    (root / "data" / "6" / "tst" / "sub" / "anna.dat").write_text(
        ".INCLUDE tst/tst.doc\n.INCLUDE tst/data/anna.dat\n.SEGMENT WORD 0-3 GOOD \"ol\"\n.SEGMENT WORD 6 OK \"x\"\n")
    rows = UnipenSource(root, UnipenOptions(categories=("6",))).listing().rows
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)) and "c6_tst_sub-anna_1" in ids


def test_new_sites_recipe_holds_out_exactly_the_sites_the_greff_study_never_trains_on():
    """recipes/unipen/new_sites.yaml scores the Greff study's models on new devices: its train/dev/test must be the
    study's (same sites among the others, same writer hash, same feature store and front end), and its held-out
    sites none of the study's."""
    from lstm_asr.data.prep import feature_config
    from lstm_asr.recipe import load_recipe

    recipes = Path(__file__).parents[1] / "recipes" / "unipen"
    study, new = load_recipe(recipes / "greff_study.yaml"), load_recipe(recipes / "new_sites.yaml")
    s, n = study.corpus.unipen, new.corpus.unipen
    assert set(n.test_sites).isdisjoint(s.sites)
    assert set(n.sites) == set(s.sites) | set(n.test_sites)
    assert (n.categories, n.salt, n.dev_fraction, n.test_fraction) == (s.categories, s.salt, s.dev_fraction,
                                                                        s.test_fraction)
    assert new.corpus.test_split == "site_test"
    assert feature_config(new).to_dict() == feature_config(study).to_dict()
    assert new.features.store == study.features.store
