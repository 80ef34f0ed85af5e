"""Online handwriting: IAM-OnDB and InkML readers, glitch repair, normalisation, the generated corpus, the ondb
source, a tiny overfitted model, and the decode / render CLIs with their bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, write_recipe

from data_prep.iam_ondb import OndbSource, read_ink, read_strokes, write_strokes
from data_prep.ink import Ink
from data_prep.inkml import inkml_truth, read_inkml, write_inkml
from data_prep.units import tokens_to_words
from lstm_asr.data.ink_features import InkFeatureConfig, featurize_ink, ink_features, normalize, repair, resample
from lstm_asr.errors import CorpusError
from lstm_asr.scoring.levenshtein import align

pytest.importorskip("HersheyFonts")
pytest.importorskip("PIL")

from data_prep.synth_ondb import WriterStyle, generate_ondb_corpus, write_line  # noqa: E402
from lstm_asr.data.ink_render import render_ink  # noqa: E402

IAM_HEAD = '<?xml version="1.0" encoding="ISO-8859-1"?>\n<WhiteboardCaptureSession><StrokeSet>\n'
IAM_TAIL = "</StrokeSet></WhiteboardCaptureSession>\n"


def iam_xml(strokes: list[list[tuple[float, float, float]]]) -> str:
    body = "".join("<Stroke>" + "".join(f'<Point x="{x}" y="{y}" time="{t}"/>' for x, y, t in s) + "</Stroke>\n"
                   for s in strokes)
    return IAM_HEAD + body + IAM_TAIL


def generated_ink(text: str = "The quick brown fox.", writer: int = 0) -> Ink:
    style = WriterStyle.draw(np.random.default_rng([0, writer]))
    return write_line(text, style, np.random.default_rng(writer), (1000.0, 1000.0, 50.0))


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ondb") / "corpus"
    generate_ondb_corpus(root, lines=32, seed=3, progress=False)
    return root


# --- readers and the round trip ------------------------------------------------------------------------------


def test_generate_read_render_round_trip_keeps_every_point(tmp_path: Path) -> None:
    ink = generated_ink()
    assert len(ink.strokes) >= 4 and ink.num_points > 100
    write_strokes(tmp_path / "line-01.xml", ink)
    back = read_strokes(tmp_path / "line-01.xml")
    assert len(back.strokes) == len(ink.strokes)
    for a, b in zip(ink.strokes, back.strokes, strict=True):
        np.testing.assert_allclose(a, b, atol=5e-4)
    assert not repair(back).repairs  # generated ink has no glitches to repair
    info = render_ink(back, tmp_path / "line.png", text="The quick brown fox.")
    assert len(info.pixels) == ink.num_points and info.strokes == len(ink.strokes)
    from PIL import Image

    img = np.asarray(Image.open(tmp_path / "line.png").convert("L"))
    cols, rows = info.pixels.T
    assert (img[rows, cols] < 250).all()  # every point is inked

    write_inkml(tmp_path / "line.inkml", back, truth="The quick brown fox.")
    again = read_ink(tmp_path / "line.inkml")
    for a, b in zip(back.strokes, again.strokes, strict=True):
        np.testing.assert_allclose(a, b, atol=5e-4)
    assert inkml_truth(tmp_path / "line.inkml") == "The quick brown fox."


def test_iam_reader_repairs_and_counts_glitches(tmp_path: Path) -> None:
    f = tmp_path / "glitch.xml"
    stroke = [(100 + 5 * i, 200 + (i % 3), 10.0 + 0.01 * i) for i in range(20)]
    stroke[7] = (9000, -5000, stroke[7][2])  # a sensor spike
    repeated = [(300 + 4 * i, 210, 10.5) for i in range(4)] + [(316, 212, 10.54)]  # four equal stamps
    f.write_text(iam_xml([stroke, [], repeated]), encoding="iso-8859-1")
    ink = read_strokes(f)
    assert [len(s) for s in ink.strokes] == [20, 0, 5]
    fixed = repair(ink)
    assert fixed.repairs == {"outlier point": 1, "empty stroke": 1, "repeated time stamp": 3}
    assert [len(s) for s in fixed.strokes] == [19, 5]
    assert np.all(np.diff(fixed.points()[:, 2]) > 0)
    assert fixed.points()[:, 0].max() < 1000


def test_inkml_reader_channels_units_and_glitches(tmp_path: Path) -> None:
    f = tmp_path / "a.inkml"
    f.write_text('<ink xmlns="http://www.w3.org/2003/InkML"><traceFormat><channel name="X"/><channel name="Y"/>'
                 '<channel name="T" units="ms"/></traceFormat><trace>10 20 1000, 12 22 1010, 14 25 1010</trace>'
                 '<trace> </trace><trace>30 20 1200</trace></ink>')
    ink = read_inkml(f)
    assert [len(s) for s in ink.strokes] == [3, 0, 1]
    np.testing.assert_allclose(ink.strokes[0][:, 2], [1.0, 1.01, 1.01])
    assert repair(ink).repairs == {"empty stroke": 1, "repeated time stamp": 1}
    g = tmp_path / "b.inkml"  # no traceFormat: X Y, times from the default sampling rate
    g.write_text("<ink><trace>0 0, 1 1, 2 2</trace><trace>5 5, 6 6</trace></ink>")
    t = read_inkml(g).points()[:, 2]
    assert np.all(np.diff(t) > 0)


BAD_INPUTS = {
    "malformed": "<WhiteboardCaptureSession><StrokeSet><Stroke><Point x='1' y='2' time='3'></Stroke>",
    "bomb": '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">'
            '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]>\n<WhiteboardCaptureSession>&lol3;</WhiteboardCaptureSession>',
    "external": '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
                "<ink><trace>&xxe;</trace></ink>",
    "no_points": IAM_HEAD + "<Stroke></Stroke>" + IAM_TAIL,
    "no_points_inkml": "<ink><trace></trace></ink>",
    "bad_number": IAM_HEAD + '<Stroke><Point x="a" y="1" time="0"/></Stroke>' + IAM_TAIL,
}
BAD_MESSAGES = {"malformed": "malformed XML", "bomb": "DTD", "external": "DTD", "no_points": "no points",
                "no_points_inkml": "no points", "bad_number": "not a number"}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_ink_files_are_one_line_errors_naming_the_file(tmp_path: Path, name: str) -> None:
    f = tmp_path / f"{name}.xml"
    f.write_text(BAD_INPUTS[name])
    with pytest.raises(CorpusError) as err:
        read_ink(f)
    assert str(f) in str(err.value) and BAD_MESSAGES[name] in str(err.value) and "\n" not in str(err.value)


# --- normalisation and features ---------------------------------------------------------------------------------


def test_normalisation_removes_position_scale_and_slant() -> None:
    ink = generated_ink("minimum lines", writer=1)
    cfg = InkFeatureConfig(spacing=0.2)
    base, norm = featurize_ink(ink, cfg)
    pts = ink.points()
    # Scaled 3x, moved, sheared (slanted) and slowed: the normalised ink is close to the original one.
    moved = pts.copy()
    moved[:, 0] = 3 * pts[:, 0] + 0.4 * 3 * (pts[:, 1] - pts[:, 1].mean()) + 5000
    moved[:, 1] = 3 * pts[:, 1] - 700
    moved[:, 2] = 2 * pts[:, 2]
    other = Ink(np.split(moved, np.cumsum([len(s) for s in ink.strokes])[:-1]))
    feats2, norm2 = featurize_ink(other, cfg)
    a = normalize(repair(ink)).points()
    b = normalize(repair(other)).points()
    assert np.abs(a[:, :2] - b[:, :2]).mean() < 0.08
    lo, hi = np.percentile(a[:, 1], [20, 80])
    assert abs(hi - lo - 1.0) < 1e-6 and abs(a[:, 0].min()) < 1e-9
    assert abs(len(base) - len(feats2)) <= 0.1 * len(base)
    # Equidistant resampling: points `spacing` apart along the trace (chords are shorter only across corners).
    steps = np.hypot(*np.diff(norm.strokes[0][:, :2], axis=0).T)
    assert np.median(steps) > 0.18 and steps.max() <= 0.2 + 1e-9


def test_point_features_mark_strokes() -> None:
    ink = Ink([np.array([[0, 0, 0], [1, 0, 0.1], [2, 0, 0.2]], float), np.array([[5, 1, 0.5]], float)])
    f = ink_features(ink)
    np.testing.assert_allclose(f[:, 0], [0, 1, 1, 3])  # dx, the pen-up jump included
    np.testing.assert_allclose(f[:, 2], [0, 0.1, 0.1, 0.3])  # dt
    np.testing.assert_array_equal(f[:, 3], [0, 0, 1, 1])  # pen-up after the point
    np.testing.assert_array_equal(f[:, 4], [1, 0, 0, 1])  # start of stroke
    r = resample(ink, 0.5)
    assert [len(s) for s in r.strokes] == [5, 1]


# --- corpus -----------------------------------------------------------------------------------------------------


def test_generated_corpus_is_deterministic_with_disjoint_writers(small_corpus: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_ondb_corpus(again, lines=32, seed=3, progress=False)
    files = sorted(p.relative_to(small_corpus) for p in small_corpus.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((small_corpus / f).read_bytes() == (again / f).read_bytes() for f in files)
    src = OndbSource(small_corpus)
    writers = {name: {it.speaker for it in src.split(name).items} for name in ("train", "dev", "test")}
    assert all(writers.values())
    assert not (writers["train"] & writers["dev"]) and not (writers["train"] & writers["test"])
    assert not (writers["dev"] & writers["test"])
    assert "|" in src.tokens() and " " not in src.tokens()


def test_source_skips_missing_lines_and_keeps_unknown_characters_in_test(small_corpus: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "c"
    shutil.copytree(small_corpus, root)
    test_form = (root / "testset_f.txt").read_text().split()[0]
    ascii_file = next(root.glob(f"ascii/*/*/{test_form}.txt"))
    lines = ascii_file.read_text(encoding="iso-8859-1").splitlines()
    lines[-1] = "the ~ tilde"  # ~ never occurs in the training text
    lines = lines[:-2] + lines[-1:]  # drop one line: line 7 is now the "~" one, line 8 has no transcription
    ascii_file.write_text("\n".join(lines) + "\n", encoding="iso-8859-1")
    src = OndbSource(root)
    listing = src.split("test")
    reasons = [why for _, why in listing.skipped]
    assert reasons == ["transcription line 8 missing"]
    # The "~" line is a test reference: kept, "~" and all (scored, it is an error no model can avoid).
    tilde = [it for it in listing.items if it.path.stem == f"{test_form}-07"]
    assert [list(it.labels) for it in tilde] == [list("the|~|tilde")] and "~" not in src.tokens()
    assert len(listing.items) + len(listing.skipped) == 8 * len((root / "testset_f.txt").read_text().split())


# --- a tiny model, decode and render ------------------------------------------------------------------------------


# Characters the generated corpus never writes: a reference holding them is one the model cannot spell.
UNKNOWN_AT = {3: "~", 5: "^"}  # line number -> character appended to that line of the test form


def unknown_form(corpus: Path) -> str:
    """Add a copy of the ``few`` form (strokes and transcription) whose lines ``UNKNOWN_AT`` end with a character
    no training line has; returns its form id."""
    import shutil

    form = (corpus / "few.txt").read_text().split()[0]
    twin = form[:-1] + "z"  # same folder (g00/g00-000), other form
    for f in sorted(corpus.glob(f"lineStrokes/*/*/{form}-*.xml")):
        shutil.copy(f, f.with_name(f.name.replace(form, twin)))
    ascii_file = next(corpus.glob(f"ascii/*/*/{form}.txt"))
    text = ascii_file.read_text(encoding="iso-8859-1").splitlines()
    body = text.index("CSR:") + 2
    for k, c in UNKNOWN_AT.items():
        text[body + k - 1] += c
    ascii_file.with_name(f"{twin}.txt").write_text("\n".join(text) + "\n", encoding="iso-8859-1")
    return twin


@pytest.fixture(scope="module")
def ink_exp(tmp_path_factory: pytest.TempPathFactory, small_corpus: Path) -> Path:
    """A small BLSTM overfitted on the 8 lines of one training form; its test split is the same lines (a copy of
    the form) with an unknown character at the end of two of them."""
    import shutil

    from lstm_asr.recipe import load_recipe
    from lstm_asr.training.train import train

    work = tmp_path_factory.mktemp("inkexp")
    (small_corpus / "few.txt").write_text((small_corpus / "trainset.txt").read_text().split()[0] + "\n")
    corpus = shutil.copytree(small_corpus, work / "corpus")
    (corpus / "fewtest.txt").write_text(unknown_form(corpus) + "\n")
    recipe = write_recipe(work / "ink.yaml", corpus, work / "feats",
                          corpus={"type": "ondb", "train_split": "few", "dev_split": "few",
                                  "test_split": "fewtest"},
                          features={"type": "ink", "ink_spacing": 0.8},
                          model={"hidden": 64, "layers": 2},
                          training={"lr": 0.01, "max_epochs": 150, "max_batch": 2, "patience": 150, "threads": 1})
    exp = work / "exp"
    train(load_recipe(recipe), exp, show_progress=False)
    return exp


def _lines(path: Path) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in path.read_text().splitlines()}


def _rate(refs: dict[str, list[str]], hyps: dict[str, list[str]]) -> float:
    """Percent, rounded as results.json rounds: edit errors summed over utterances / reference symbols."""
    return round(100 * sum(align(r, hyps[u])[1].errors for u, r in refs.items()) / sum(map(len, refs.values())), 2)


def test_tiny_model_trains_and_is_scored_in_characters_and_words(ink_exp: Path) -> None:
    results = json.loads((ink_exp / "results.json").read_text())
    assert results["metric"] == "CER" and results["test"]["utterances"] == 8
    # The main rate is the character error rate (the space counted, as '|'), WER is over the words glued back from
    # the characters: both as the decoded files say, whatever the model's quality.
    refs, hyps = (_lines(ink_exp / "decode_test" / name) for name in ("ref.txt", "hyp.txt"))
    assert results["test"]["cer"] == results["test"]["per"] == _rate(refs, hyps)
    # The test lines whose references hold a character the training text never had are kept and scored: the
    # character is in the reference (counted in N, an error no hypothesis avoids), and results.json names it.
    twin = (ink_exp.parent / "corpus" / "fewtest.txt").read_text().split()[0]
    for k, c in UNKNOWN_AT.items():
        assert refs[f"{twin}-{k:02d}"][-1] == c and c not in hyps[f"{twin}-{k:02d}"]
    assert results["test"]["ref_tokens"] == sum(map(len, refs.values()))
    assert results["test"]["unknown_symbols"] == {"symbols": {c: 1 for c in sorted(UNKNOWN_AT.values())},
                                                  "utterances": len(UNKNOWN_AT)}
    assert "unknown_symbols" not in results["dev"]
    words = {u: tokens_to_words(s, "chars") for u, s in refs.items()}
    assert results["test"]["wer"] == _rate(words, {u: tokens_to_words(s, "chars") for u, s in hyps.items()})
    assert all(w and "|" not in "".join(w) for w in words.values())


def test_decode_and_render_cli(ink_exp: Path, small_corpus: Path, tmp_path: Path) -> None:
    form = (small_corpus / "few.txt").read_text().split()[0]
    line = next(small_corpus.glob(f"lineStrokes/*/*/{form}-01.xml"))
    res = run_cli("decode", "--model", str(ink_exp), "--json", str(line))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["reference"] and out["text"]
    # The CER printed is the edit distance between the transcription's characters (a space is '|') and the tokens.
    ref = ["|" if c == " " else c for c in out["reference"]]
    hyp = [t["token"] for t in out["tokens"]]
    assert out["cer"] == pytest.approx(100 * align(ref, hyp)[1].errors / len(ref), abs=0.006)
    starts = [t["start"] for t in out["tokens"]]
    assert starts == sorted(starts)

    # The same line as InkML: same text.
    inkml = tmp_path / "line.inkml"
    write_inkml(inkml, read_strokes(line))
    res2 = run_cli("decode", "--model", str(ink_exp), str(inkml))
    assert res2.returncode == 0, res2.stderr
    assert res2.stdout.split("\t")[1].strip() == out["text"]

    png = tmp_path / "line.png"
    res3 = run_cli("render", str(line), str(png), "--model", str(ink_exp))
    assert res3.returncode == 0, res3.stderr
    n_points = read_strokes(line).num_points
    assert f"{n_points} points" in res3.stdout and out["text"] in res3.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_scores_test_lines_with_unknown_characters(ink_exp: Path, tmp_path: Path) -> None:
    import shutil

    from data_prep.iam_ondb import read_transcription
    from data_prep.units import char_labels
    from lstm_asr.recognition.experiment_evaluation import evaluate_experiment

    exp = shutil.copytree(ink_exp, tmp_path / "exp")  # evaluate rewrites decode_test
    lines = evaluate_experiment(exp, "test")
    corpus = ink_exp.parent / "corpus"
    twin = (corpus / "fewtest.txt").read_text().split()[0]
    texts = read_transcription(next(corpus.glob(f"ascii/*/*/{twin}.txt")))
    scores = json.loads((exp / "decode_test" / "scores.json").read_text())
    # Every line is scored, the unknown characters counted in N as the transcription spells them.
    assert scores["utterances"] == len(texts) == 8
    assert scores["ref_tokens"] == sum(len(char_labels(t)) for t in texts)
    refs, hyps = (_lines(exp / "decode_test" / name) for name in ("ref.txt", "hyp.txt"))
    assert round(100 * scores["rate"], 2) == _rate(refs, hyps)
    assert scores["unknown_symbols"] == {"symbols": {"^": 1, "~": 1}, "utterances": 2}
    notes = [line for line in lines if line.startswith("note:")]
    assert notes == ["note: 2 utterances hold symbols outside the model's inventory ('^' '~'), scored as errors no "
                     "model can avoid"]


def _decoded(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.strip()]


def test_decode_cli_scores_references_with_unknown_characters(ink_exp: Path) -> None:
    from lstm_asr.recognition.recognizer import Recognizer

    corpus = ink_exp.parent / "corpus"
    twin = (corpus / "fewtest.txt").read_text().split()[0]
    files = sorted(corpus.glob(f"lineStrokes/*/*/{twin}-0[1-6].xml"))
    assert len(files) == 6 and not set(UNKNOWN_AT.values()) & set(Recognizer.load(ink_exp).tokens)
    res = run_cli("decode", "--model", str(ink_exp), "--json", *map(str, files))
    assert res.returncode == 0, res.stderr
    out = [json.loads(line) for line in _decoded(res.stdout)]
    assert [o["file"] for o in out] == list(map(str, files))
    for k, o in enumerate(out, start=1):
        # The CER counts the unknown character: edit distance to the reference as written, over its length.
        ref = ["|" if c == " " else c for c in o["reference"]]
        hyp = [t["token"] for t in o["tokens"]]
        assert o["cer"] == pytest.approx(100 * align(ref, hyp)[1].errors / len(ref), abs=0.006)
        if k in UNKNOWN_AT:
            assert ref[-1] == UNKNOWN_AT[k] and o["unknown_chars"] == [UNKNOWN_AT[k]]
        else:
            assert "unknown_chars" not in o
    notes = [line for line in res.stderr.splitlines() if "outside the model's inventory" in line]
    assert notes == ["note: 2 reference lines hold characters outside the model's inventory ('^' '~'); they are "
                     "scored as errors the model cannot avoid"]
    plain = run_cli("decode", "--model", str(ink_exp), *map(str, files))
    assert plain.returncode == 0, plain.stderr
    assert len(_decoded(plain.stdout)) == 6 and all("\tCER " in line for line in _decoded(plain.stdout))
    assert [line for line in plain.stderr.splitlines() if "outside the model's inventory" in line] == notes


def test_decode_cli_bad_inputs(ink_exp: Path, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(BAD_INPUTS["bomb"])
    empty = tmp_path / "empty.xml"
    empty.write_text(BAD_INPUTS["no_points"])
    oov = tmp_path / "oov.inkml"
    write_inkml(oov, generated_ink("ab"), truth="ab ~")
    res = run_cli("decode", "--model", str(ink_exp), str(bomb), str(empty), str(oov))
    assert res.returncode == 1
    errors = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 3  # one line per bad file, then the summary
    assert str(bomb) in errors[0] and "DTD" in errors[0]
    assert str(empty) in errors[1] and "no points" in errors[1]
    assert "2 of 3 files" in errors[2]
    # A transcription the model cannot spell is no reason not to decode: the file is decoded and scored.
    assert [line.split("\t")[0] for line in _decoded(res.stdout)] == [str(oov)]
    assert "1 reference line holds characters outside the model's inventory ('~')" in res.stderr
    assert "Traceback" not in res.stderr
    res2 = run_cli("render", str(bomb), str(tmp_path / "x.png"))
    assert res2.returncode == 1 and str(bomb) in res2.stderr and "Traceback" not in res2.stderr


def test_shipped_handwriting_recipes_load() -> None:
    from lstm_asr.recipe import load_recipe

    repo = Path(__file__).resolve().parent.parent
    demo = load_recipe(repo / "recipes/synth_ondb/demo.yaml")
    assert demo.corpus.type == "ondb" and demo.features.type == "ink" and demo.corpus.generate.kind == "ondb"
    full = load_recipe(repo / "recipes/iam_ondb/blstm_ctc.yaml")
    assert full.features.type == "ink" and full.corpus.dev_split == "dev"
    from lstm_asr.errors import RecipeError

    with pytest.raises(RecipeError, match="features.type"):
        load_recipe(repo / "recipes/synth_ondb/demo.yaml", ["features.type=pixels"])
