"""Several corpora in one recipe, input normalisation modes and training.init_from (issue 21)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from conftest import run_cli, write_recipe
from fake_timit import make_fake_timit

from lstm_asr.data.corpus_mix import (
    check_units,
    excluded_sentences,
    group_counts,
    load_training_data,
    sentence_key,
    union_tokens,
    weighted_epoch,
)
from lstm_asr.data.feature_store import FeatureSplit
from lstm_asr.data.features import FeatureConfig, compute_features
from lstm_asr.data.prep import load_splits
from lstm_asr.data.split_views import NormalizedSplit
from lstm_asr.errors import LstmAsrError, RecipeError
from lstm_asr.nn.checkpoint import save_checkpoint
from lstm_asr.recipe import CorpusEntry, corpora_of, load_recipe, primary_corpus, recipe_from_dict
from lstm_asr.training.init_from import init_from
from lstm_asr.training.train import build_model, model_checkpoint

TRAINING = {"lr": 0.02, "max_epochs": 1, "max_frames": 100000, "max_batch": 4, "log_every": 1000, "threads": 1}


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two small fake TIMIT trees of other voices; one training sentence of B is a test sentence of A."""
    root = tmp_path_factory.mktemp("mix")
    a = make_fake_timit(root / "A" / "TIMIT", n_train=2, n_dev=1, n_core=1, utts_per_speaker=2)
    b = make_fake_timit(root / "B" / "TIMIT", n_train=1, n_dev=1, n_core=1, utts_per_speaker=2, seed=1)
    tested = sorted((a / "TEST").rglob("SI*.TXT"))[0].read_text().split(None, 2)[2]
    trained = sorted((b / "TRAIN").rglob("SI*.TXT"))[0]
    begin, end, _ = trained.read_text().split(None, 2)
    trained.write_text(f"{begin} {end} {tested.upper()}")  # the same sentence, in other case
    return a, b


def mixed_recipe(path: Path, a: Path, b: Path, store: Path, **sections: dict) -> Path:
    data = {"corpora": [{"name": "a", "path": str(a), "weight": 1.0}, {"name": "b", "path": str(b), "weight": 3.0}],
            "features": {"store": str(store)}, "model": {"hidden": 16, "layers": 1}, "training": dict(TRAINING)}
    for key, value in sections.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data))
    return path


# --- recipe schema ---------------------------------------------------------------------------------------------

def test_corpora_schema_parses_and_single_corpus_is_unchanged() -> None:
    r = recipe_from_dict({"corpora": [
        {"name": "synth", "type": "timit", "path": "s", "weight": 1, "generate": {"kind": "timit", "minutes": 5}},
        {"name": "rec", "type": "kaldi_dir", "path": "k", "units": "phones", "weight": 2},
        {"name": "other", "type": "kaldi_dir", "path": "o", "train_split": "", "dev_split": "", "test_split": "t"}]})
    assert [c.name for c in r.corpora] == ["synth", "rec", "other"]
    assert r.corpora[0].generate.minutes == 5 and r.corpora[1].weight == 2.0
    assert primary_corpus(r).name == "synth"
    # the recipe as dumped into an experiment reads back the same (train --resume, evaluate)
    assert recipe_from_dict(yaml.safe_load(yaml.safe_dump(r.to_dict()))) == r
    single = recipe_from_dict({"corpus": {"path": "p", "type": "kaldi_dir", "units": "chars"}})
    (entry,) = corpora_of(single)
    assert isinstance(entry, CorpusEntry) and entry.path == "p" and entry.units == "chars" and entry.name == ""
    # the primary corpus of a single-corpus recipe is that same named entry (scoring looks it up by name)
    assert single.corpora == [] and primary_corpus(single) == entry


@pytest.mark.parametrize("data, where, says", [
    ({"corpora": [{"name": "a", "path": "x", "wieght": 1}]}, "corpora[0].wieght", "did you mean 'weight'"),
    ({"corpora": [{"path": "x"}]}, "corpora[0].name", "required"),
    ({"corpora": [{"name": "a", "path": "x"}, {"name": "a", "path": "y"}]}, "corpora[1].name", "twice"),
    ({"corpora": [{"name": "a", "path": "x", "weight": 1}, {"name": "b", "path": "y"}]}, "corpora[1].weight",
     "or none"),
    ({"corpora": [{"name": "a", "path": "x", "type": "timitt"}]}, "corpora[0].type", "not one of"),
    ({"corpora": [{"name": "a"}]}, "corpora[0].path", "required"),
    ({"corpora": [{"name": "a", "path": "x", "dev_split": ""}]}, "corpora", "dev_split"),
    ({"corpora": [{"name": "a", "path": "x", "weight": -1}]}, "corpora[0].weight", ">= 0"),
    ({"corpora": [{"name": "../a", "path": "x"}]}, "corpora[0].name", ""),
    ({"corpus": {"path": "p"}, "corpora": [{"name": "a", "path": "x"}]}, "corpus", "not both"),
    ({"corpus": {"path": "p"}, "features": {"normalize": "speakers"}}, "features.normalize", "not one of"),
    ({"corpus": {"path": "p"}, "features": {"type": "ink", "normalize": "utterance"}}, "features.normalize", "speech"),
    ({"corpus": {"path": "p"}, "training": {"exclude_eval_sentences": "yes"}}, "training.exclude_eval_sentences", ""),
    ({"corpus": {"path": "p"}, "model": {"head": "transducer"},
      "training": {"init_from": "e", "init_encoder_from": "f"}}, "training.init_encoder_from", "init_from"),
])
def test_corpora_schema_errors(data: dict, where: str, says: str) -> None:
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(data, "r.yaml")
    assert f"r.yaml: {where}:" in str(err.value) and says in str(err.value)
    assert "\n" not in str(err.value)


def test_real_en_multi_corpus_recipes_parse() -> None:
    real_en = Path(__file__).parents[1] / "recipes" / "real_en"
    mixed = load_recipe(real_en / "recorded_generated.yaml")
    assert [c.name for c in mixed.corpora] == ["so762", "native", "synth"]
    assert [c.weight for c in mixed.corpora] == [1, 1, 2]
    assert load_recipe(real_en / "recorded_speaker_norm.yaml").features.normalize == "speaker"
    assert load_recipe(real_en / "adapted.yaml").training.init_from == "exp/synth_timit_demo"
    held_out = load_recipe(real_en / "transfer_to_so762.yaml").corpora[-1]
    assert (held_out.name, held_out.train_split, held_out.dev_split, held_out.test_split) == ("so762", "", "", "test")


# --- inventory, weights, sentences -----------------------------------------------------------------------------

def test_union_inventory_and_unit_consistency() -> None:
    assert union_tokens([["<blank>", "a", "b"], ["<blank>", "c", "a"], ["<blank>", "d"]]) == \
        ["<blank>", "a", "b", "c", "d"]
    check_units([CorpusEntry(name="t", type="timit"), CorpusEntry(name="k", type="kaldi_dir", units="phones")])
    with pytest.raises(LstmAsrError, match=r"corpora\[1\] \(k, kaldi_dir\): trains chars") as err:
        check_units([CorpusEntry(name="t", type="timit"), CorpusEntry(name="k", type="kaldi_dir")])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("sizes, weights", [([10, 3], [1, 1]), ([5, 40, 7], [3, 1, 2]), ([1, 100], [1, 9]),
                                            ([6, 6], [1, 2]), ([4, 9, 2], [0.2, 0.2, 0.6])])
def test_weights_give_each_corpus_its_share_of_the_epoch(sizes: list[int], weights: list[float]) -> None:
    parts = np.concatenate([np.full(n, k) for k, n in enumerate(sizes)])
    indices = np.arange(len(parts)) * 3 + 1  # any utterance indices
    n_total = len(indices)
    for epoch in (1, 2):
        drawn = weighted_epoch(indices, parts, np.asarray(weights), seed=5, epoch=epoch)
        assert len(drawn) == n_total  # an epoch has as many draws as the corpora hold utterances
        group = parts[np.searchsorted(indices, drawn)]
        counts = np.bincount(group, minlength=len(sizes))
        share = n_total * np.asarray(weights) / np.sum(weights)
        assert counts.sum() == n_total and np.all(np.abs(counts - share) < 1)  # the weight's share, rounded
        np.testing.assert_array_equal(counts, group_counts(n_total, np.asarray(weights)))
        for k, n in enumerate(sizes):  # whole repeats first: each utterance floor or ceil of m_k / n_k times
            times = np.bincount(np.searchsorted(indices, drawn[group == k]), minlength=n_total)[parts == k]
            assert times.min() >= counts[k] // n and times.max() <= -(-counts[k] // n)
        np.testing.assert_array_equal(drawn, weighted_epoch(indices, parts, np.asarray(weights), 5, epoch))
    big = [k for k, n in enumerate(sizes) if group_counts(n_total, np.asarray(weights))[k] % n]
    if big:  # a subsampled corpus gets another subset in another epoch
        k = big[0]
        e1 = weighted_epoch(indices, parts, np.asarray(weights), 5, 1)
        e2 = weighted_epoch(indices, parts, np.asarray(weights), 5, 2)
        sel = [np.sort(e[parts[np.searchsorted(indices, e)] == k]) for e in (e1, e2)]
        assert len(sel[0]) == len(sel[1])


def test_sentence_key_and_exclusion_rule() -> None:
    assert sentence_key("She had your dark suit, in greasy wash-water!") == \
        sentence_key("  she HAD your dark suit in greasy wash water ")
    train = SimpleNamespace(index={"texts": ["Author of the danger trail.", "", "Other words"]},
                            refs=["a b", "x y", "c d"])
    test = SimpleNamespace(index={"texts": ["author of the DANGER trail"]}, refs=["q"])
    dev = SimpleNamespace(index={}, refs=["x  y"])  # no texts: compared by labels
    np.testing.assert_array_equal(excluded_sentences(train, [test, dev]), [True, True, False])
    np.testing.assert_array_equal(excluded_sentences(train, []), [False, False, False])


# --- a real multi-corpus run -----------------------------------------------------------------------------------

def test_mixed_corpora_train_and_report_each_test_corpus(two_corpora: tuple[Path, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    from lstm_asr.training.train import train

    a, b = two_corpora
    recipe = load_recipe(mixed_recipe(tmp_path / "mix.yaml", a, b, tmp_path / "feats"))
    data = load_training_data(recipe, show_progress=False)
    sizes = [len(c.train) for c in data.corpora]
    assert len(data.train) == sum(sizes) and set(data.tests) == {"a", "b"}
    assert data.train.speakers[0].startswith("a/") and data.train.speakers[-1].startswith("b/")
    # B trains on one of A's test sentences: dropped from training, and counted for B
    held = {sentence_key(x) for c in data.corpora for s in (c.dev, c.test) for x in s.index["texts"]}
    shared = np.asarray([sentence_key(t) in held for t in data.train.index["texts"]])
    assert shared.sum() == 1 and np.array_equal(data.excluded, shared) and data.train.ids[int(np.flatnonzero(
        shared)[0])].startswith("b/")
    assert data.excluded_counts == {"a": 0, "b": 1}
    # each corpus's stored labels map into the union inventory by symbol
    for i in range(len(data.train)):
        part = data.train.parts[data.train.part[i]]
        local = int(data.train.local[i])
        symbols = [data.tokens[j] for j in data.train.labels(i)]
        assert symbols == [part.index["tokens"][j] for j in part.labels(local)] == data.train.refs[i].split()

    results = train(recipe, tmp_path / "exp", show_progress=False)
    assert set(results["test_corpora"]) == {"a", "b"} and set(results["dev_corpora"]) == {"a", "b"}
    for name, corpus in ((n, c) for n, c in zip("ab", data.corpora, strict=True)):
        entry = results["test_corpora"][name]
        assert np.isfinite(entry["per"]) and entry["utterances"] == len(corpus.test)
        assert (tmp_path / "exp" / f"decode_test_{name}" / "hyp.txt").is_file()
    assert results["test"]["utterances"] == sum(len(c.test) for c in data.corpora)  # pooled
    assert results["excluded_eval_sentences"] == {"a": 0, "b": 1}
    # lstm-asr lm build EXP: the LM counts exactly the label sequences training trained on, over the model's tokens
    from lstm_asr.decoding.ngram import experiment_sentences

    sentences, lm_tokens = experiment_sentences(tmp_path / "exp")
    assert sorted(sentences) == sorted(r.split() for r, keep in zip(data.train.refs, data.keep_mask(), strict=True)
                                       if keep)
    assert lm_tokens == data.tokens[1:]  # blank first
    ckpt = torch.load(tmp_path / "exp" / "best.pt", weights_only=True)
    assert ckpt["tokens"] == data.tokens and ckpt["corpus_type"] == "timit"
    out = capsys.readouterr().out
    assert "excluded 1 training utterances whose sentence is in a dev or test split (b: 1)" in out
    # lstm-asr evaluate: a line per corpus, then the pooled one
    from lstm_asr.recognition.corpora_evaluation import evaluate_corpora

    lines = evaluate_corpora(tmp_path / "exp", load_recipe(tmp_path / "exp" / "recipe.yaml"), "test")
    assert [x.split(" (best.pt)")[0] for x in lines] == ["test a", "test b", "test (all corpora)"]
    for line, name in zip(lines, ("a", "b"), strict=False):
        assert f"PER {results['test_corpora'][name]['per']:.2f}%" in line
    # lstm-asr evaluate EXP --on RECIPE: the model scored on another recipe's corpora (here B's test split under
    # another name): the same model on the same utterances gives the same figure as its own evaluation did.
    other = {"corpora": [{"name": "a", "path": str(a), "test_split": ""},
                         {"name": "other", "path": str(b), "train_split": "", "dev_split": ""}],
             "features": {"store": str(tmp_path / "feats")}, "name": "elsewhere"}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    done = run_cli("evaluate", str(tmp_path / "exp"), "--on", str(tmp_path / "other.yaml"))
    assert done.returncode == 0, done.stderr
    scored = [x for x in done.stdout.splitlines() if x.startswith("test ")]  # after prep's summary of "other"
    assert [x.split(" (best.pt)")[0] for x in scored] == ["test other", "test (all corpora)"]
    assert f"PER {results['test_corpora']['b']['per']:.2f}%" in scored[0]
    assert (tmp_path / "exp" / "decode_test_on_elsewhere_other" / "hyp.txt").is_file()
    # --on a single-corpus recipe (a plain corpus: section): one line, the same figure for the same utterances
    single = {"corpus": {"path": str(b)}, "features": {"store": str(tmp_path / "feats_single")}, "name": "plain"}
    (tmp_path / "single.yaml").write_text(yaml.safe_dump(single))
    done = run_cli("evaluate", str(tmp_path / "exp"), "--on", str(tmp_path / "single.yaml"))
    assert done.returncode == 0, done.stderr
    scored = [x for x in done.stdout.splitlines() if x.startswith("test ")]
    assert [x.split(" (best.pt)")[0] for x in scored] == ["test"]
    assert f"PER {results['test_corpora']['b']['per']:.2f}%" in scored[0]
    assert (tmp_path / "exp" / "decode_test_on_plain" / "hyp.txt").is_file()
    other["features"]["num_mel_bins"] = 20
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    bad = run_cli("evaluate", str(tmp_path / "exp"), "--on", str(tmp_path / "other.yaml"))
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert "reads other features than elsewhere's corpora (num_mel_bins: 40 vs 20)" in bad.stderr


def test_lm_build_counts_every_training_corpus(two_corpora: tuple[Path, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    """``lm build EXP`` of a multi-corpus experiment counts the training sentences of each training corpus, as the
    single-corpus recipe of that corpus reads them, less B's utterance that reads A's test sentence (dropped from
    training by the sentence rule); a corpus that only tests adds nothing."""
    from collections import Counter

    from lstm_asr.cli import lm_build
    from lstm_asr.decoding.ngram import experiment_sentences, read_arpa

    a, b = two_corpora

    def sentences_of(recipe: dict) -> list[list[str]]:
        exp = tmp_path / f"exp{len(list(tmp_path.glob('exp*')))}"
        exp.mkdir()
        (exp / "recipe.yaml").write_text(yaml.safe_dump(recipe))
        sentences, tokens = experiment_sentences(exp)
        assert tokens == []  # no best.pt
        return sentences

    single_a = sentences_of({"corpus": {"path": str(a)}})
    single_b = sentences_of({"corpus": {"path": str(b)}})
    both = sentences_of({"corpora": [{"name": "a", "path": str(a)}, {"name": "b", "path": str(b)}]})
    key = lambda s: " ".join(s)  # noqa: E731
    dropped = Counter(map(key, single_a + single_b)) - Counter(map(key, both))
    assert sum(dropped.values()) == 1 and next(iter(dropped)) in set(map(key, single_b))
    assert not Counter(map(key, both)) - Counter(map(key, single_a + single_b))
    tested_only = sentences_of({"corpora": [{"name": "a", "path": str(a)},
                                            {"name": "b", "path": str(b), "train_split": "", "dev_split": ""}]})
    assert sorted(tested_only) == sorted(single_a)  # A's sentence B tests on is not in A's training split

    exp = tmp_path / "exp"
    exp.mkdir()
    mixed_recipe(exp / "recipe.yaml", a, b, tmp_path / "feats")
    arpa = tmp_path / "phones.arpa"
    lm_build(exp, arpa, order=2, smoothing="kneser-ney", units="words")
    assert f"from {len(both)} sentences" in capsys.readouterr().out
    assert read_arpa(arpa).vocab >= {p for s in both for p in s}


# --- normalisation ---------------------------------------------------------------------------------------------

def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    return x.mean(0), x.std(0)


def test_normalize_modes(tiny_corpus: Path, tmp_path: Path) -> None:
    store = tmp_path / "feats"
    base = load_recipe(write_recipe(tmp_path / "g.yaml", tiny_corpus, store))
    raw = load_splits(base, show_progress=False)["train"]
    assert isinstance(raw, FeatureSplit)
    stamp = (raw.folder / "feats.npy").stat().st_mtime_ns
    for mode in ("utterance", "speaker"):
        r = load_recipe(write_recipe(tmp_path / f"{mode}.yaml", tiny_corpus, store, features={"normalize": mode}))
        split = load_splits(r, show_progress=False)["train"]
        assert isinstance(split, NormalizedSplit)
        assert (raw.folder / "feats.npy").stat().st_mtime_ns == stamp  # the same raw store serves every mode
        live = np.asarray(raw.all_feats()).std(0) > 1e-3  # dimensions that vary at all
        if mode == "utterance":
            for i in range(len(split)):
                mean, std = _moments(split.feats(i))
                np.testing.assert_allclose(mean[live], 0, atol=1e-4)
                np.testing.assert_allclose(std[live], 1, atol=1e-3)
        else:
            speakers = sorted(set(split.speakers))
            assert len(speakers) == 2
            for spk in speakers:
                rows = [i for i, s in enumerate(split.speakers) if s == spk]
                mean, std = _moments(np.concatenate([split.feats(i) for i in rows]))
                np.testing.assert_allclose(mean[live], 0, atol=1e-4)
                np.testing.assert_allclose(std[live], 1, atol=1e-3)
                one, _ = _moments(split.feats(rows[0]))  # not per utterance: one utterance alone is off zero
                assert np.abs(one[live]).max() > 1e-2
        feats, lengths, _, _ = split.batch([0, 1])
        np.testing.assert_allclose(feats[0, : lengths[0]].numpy(), split.feats(0), rtol=0, atol=0)


def test_single_file_features_fall_back_to_the_utterance(tiny_corpus: Path) -> None:
    """Decoding a file (compute_features, and the exported front end) normalises by its own statistics."""
    from lstm_asr.data.kaldi_fbank import ScriptableFbank, StreamingFbank

    wave = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32))
    plain = compute_features(wave, FeatureConfig())
    for mode in ("utterance", "speaker"):
        cfg = FeatureConfig(normalize=mode)
        feats = compute_features(wave, cfg)
        expect = (plain.double() - plain.double().mean(0)) / plain.double().std(0, unbiased=False)
        torch.testing.assert_close(feats.double(), expect, atol=1e-3, rtol=1e-3)
        torch.testing.assert_close(ScriptableFbank(cfg)(wave), feats, atol=1e-3, rtol=1e-3)
        torch.testing.assert_close(torch.jit.script(ScriptableFbank(cfg))(wave), feats, atol=1e-3, rtol=1e-3)
        assert "normalize" in cfg.to_dict() and FeatureConfig(**cfg.to_dict()) == cfg
        with pytest.raises(LstmAsrError, match="cannot stream"):
            StreamingFbank(cfg)
    assert "normalize" not in FeatureConfig().to_dict()  # stores and checkpoints of global models are as before


def test_utterance_normalized_training_keeps_an_identity_model_normalizer(tiny_corpus: Path, tmp_path: Path) -> None:
    from lstm_asr.training.train import train

    r = load_recipe(write_recipe(tmp_path / "u.yaml", tiny_corpus, tmp_path / "feats", features={"normalize":
                                                                                                    "utterance"},
                                 model={"hidden": 16, "layers": 1}, training=TRAINING))
    results = train(r, tmp_path / "exp", show_progress=False)
    assert np.isfinite(results["test"]["per"])
    ckpt = torch.load(tmp_path / "exp" / "best.pt", weights_only=True)
    assert ckpt["features"]["normalize"] == "utterance"
    assert torch.equal(ckpt["state_dict"]["normalizer.mean"], torch.zeros_like(ckpt["state_dict"]["normalizer.mean"]))


# --- init_from -------------------------------------------------------------------------------------------------

def _saved(tmp_path: Path, name: str, tokens: list[str], seed: int, **model: object) -> tuple[Path, torch.nn.Module]:
    r = recipe_from_dict({"corpus": {"path": "p"}, "model": {"hidden": 12, "layers": 2, **model}})
    torch.manual_seed(seed)
    m = build_model(r, 9, len(tokens))
    with torch.no_grad():
        m.normalizer.mean.uniform_()
    path = tmp_path / name / "best.pt"
    path.parent.mkdir()
    save_checkpoint(model_checkpoint(m, r, tokens, epoch=3, dev_per=0.25), path)
    return path.parent, m


FEATS = FeatureConfig().to_dict()


def test_init_from_copies_every_weight(tmp_path: Path) -> None:
    tokens = ["<blank>", "a", "b", "c"]
    exp, source = _saved(tmp_path, "src", tokens, seed=1)
    _, target = _saved(tmp_path, "dst", tokens, seed=2)
    done = init_from(target, str(exp), FEATS, tokens)
    for name, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], value), name
    assert done["output"] == "copied" and done["epoch"] == 3 and done["dev_per"] == 25.0


@pytest.mark.parametrize("head", ["ctc", "transducer"])
def test_init_from_rebuilds_the_output_layer_for_another_inventory(tmp_path: Path, head: str) -> None:
    theirs = ["<blank>", "a", "b", "c"]
    ours = ["<blank>", "c", "x", "a"]  # c and a shared (moved), x new, b gone
    exp, source = _saved(tmp_path, "src", theirs, seed=1, head=head, pred_hidden=8, joint_dim=8)
    _, target = _saved(tmp_path, "dst", ours, seed=2, head=head, pred_hidden=8, joint_dim=8)
    fresh = {k: v.clone() for k, v in target.state_dict().items()}
    done = init_from(target, str(exp), FEATS, ours)
    assert done["new_tokens"] == ["x"] and done["output"].startswith("rebuilt: 3 of 4")
    got, src = target.state_dict(), source.state_dict()
    out = "output" if head == "ctc" else "joint.output"
    for key in (f"{out}.weight", f"{out}.bias"):
        for i, t in enumerate(ours):
            expect = src[key][theirs.index(t)] if t in theirs else fresh[key][i]
            assert torch.equal(got[key][i], expect), (key, t)
    if head == "transducer":  # the prediction network's one-hot input: a column per label, blank left out
        key = "predictor.lstm.weight_ih_l0"
        for i, t in enumerate(ours[1:]):
            expect = src[key][:, theirs.index(t) - 1] if t in theirs else fresh[key][:, i]
            assert torch.equal(got[key][:, i], expect), t
    for name in src:
        if not name.startswith((f"{out}.", "predictor.lstm.weight_ih_l0")):
            assert torch.equal(got[name], src[name]), name


def test_init_from_refuses_another_encoder_naming_the_parameter(tmp_path: Path) -> None:
    tokens = ["<blank>", "a", "b"]
    exp, _ = _saved(tmp_path, "src", tokens, seed=1)
    _, wider = _saved(tmp_path, "wide", tokens, seed=1, hidden=14)
    with pytest.raises(LstmAsrError, match=r"layers\.0\.\S+ is \d+x\d+ there, \d+x\d+ here \(training.init_from\)"):
        init_from(wider, str(exp), FEATS, tokens)
    _, deeper = _saved(tmp_path, "deep", tokens, seed=1, layers=3)
    with pytest.raises(LstmAsrError, match=r"it has no layers\.2\."):
        init_from(deeper, str(exp), FEATS, tokens)
    _, rnnt = _saved(tmp_path, "rnnt", tokens, seed=1, head="transducer")
    with pytest.raises(LstmAsrError, match="a ctc model, and this recipe trains a transducer"):
        init_from(rnnt, str(exp), FEATS, tokens)
    _, same = _saved(tmp_path, "same", tokens, seed=1)
    with pytest.raises(LstmAsrError, match="features.normalize differ"):
        init_from(same, str(exp), FeatureConfig(normalize="speaker").to_dict(), tokens)
    with pytest.raises(LstmAsrError, match="no trained experiment"):
        init_from(same, str(tmp_path / "nowhere"), FEATS, tokens)


def test_resume_takes_precedence_over_init_from(tiny_corpus: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import lstm_asr.training.train as train_module

    store = tmp_path / "feats"
    source = write_recipe(tmp_path / "src.yaml", tiny_corpus, store, model={"hidden": 16, "layers": 1},
                          training=TRAINING)
    train_module.train(load_recipe(source), tmp_path / "src", show_progress=False)
    recipe = write_recipe(tmp_path / "adapt.yaml", tiny_corpus, store, model={"hidden": 16, "layers": 1},
                          training={**TRAINING, "init_from": str(tmp_path / "src"), "lr": 1e-3})
    calls = []
    real = train_module.init_from
    monkeypatch.setattr(train_module, "init_from", lambda *a: calls.append(a) or real(*a))
    out = tmp_path / "adapt"
    first = train_module.train(load_recipe(recipe), out, resume=True, show_progress=False)  # no last.pt: init
    assert len(calls) == 1 and first["pretraining"]["init_from"]["from"] == str(tmp_path / "src" / "best.pt")
    more = load_recipe(recipe, ["training.max_epochs=2"])
    second = train_module.train(more, out, resume=True, force=True, show_progress=False)  # continues last.pt
    assert len(calls) == 1  # not initialised again
    assert second["epochs"] == 2 and second["pretraining"] == first["pretraining"]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines if x["kind"] == "epoch"] == [1, 2]
