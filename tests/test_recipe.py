"""Recipes: typed schema, one-line errors naming the key path, --set overrides, safe YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from lstm_asr.errors import RecipeError
from lstm_asr.recipe import dump_recipe, load_recipe, recipe_from_dict

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_shipped_recipes_load() -> None:
    demo = load_recipe(REPO / "recipes/synth_timit/demo.yaml")
    assert demo.corpus.generate is not None and demo.features.num_mel_bins == 40
    graves = load_recipe(REPO / "recipes/timit/ctc_3l_250h.yaml", ["corpus.path=/data/TIMIT"])
    assert (graves.model.layers, graves.model.hidden, graves.model.init) == (3, 250, "uniform")
    assert (graves.training.optimizer, graves.training.lr, graves.training.momentum) == ("sgd", 1e-4, 0.9)
    assert graves.decoding.beam == 100


def test_unknown_and_misspelt_keys_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"r.yaml: training.learning_rate: unknown key"):
        load_recipe(_write(tmp_path, "corpus: {path: x}\ntraining: {learning_rate: 0.1}\n"))
    with pytest.raises(RecipeError, match=r"model.hiden: unknown key \(did you mean 'hidden'\?\)"):
        load_recipe(_write(tmp_path, "corpus: {path: x}\nmodel: {hiden: 3}\n"))
    with pytest.raises(RecipeError, match=r"modle: unknown key \(did you mean 'model'\?\)"):
        load_recipe(_write(tmp_path, "corpus: {path: x}\nmodle: {}\n"))


def test_wrong_types_and_values(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"model.layers: expected an integer, got 'three'"):
        load_recipe(_write(tmp_path, "corpus: {path: x}\nmodel: {layers: three}\n"))
    with pytest.raises(RecipeError, match=r"training.lr: expected a number"):
        load_recipe(_write(tmp_path, "corpus: {path: x}\ntraining: {lr: fast}\n"))
    with pytest.raises(RecipeError, match=r"features.use_energy: expected true or false"):
        load_recipe(_write(tmp_path, "corpus: {path: x}\nfeatures: {use_energy: 1}\n"))
    with pytest.raises(RecipeError, match=r"training.optimizer: 'rmsprop' is not one of adam, sgd"):
        load_recipe(_write(tmp_path, "corpus: {path: x}\ntraining: {optimizer: rmsprop}\n"))
    with pytest.raises(RecipeError, match=r"training.max_frames: must be > 0"):
        load_recipe(_write(tmp_path, "corpus: {path: x}\ntraining: {max_frames: 0}\n"))
    with pytest.raises(RecipeError, match=r"corpus.path: is required"):
        load_recipe(_write(tmp_path, "model: {layers: 2}\n"))
    with pytest.raises(RecipeError, match=r"model: expected a mapping"):
        load_recipe(_write(tmp_path, "corpus: {path: x}\nmodel: 3\n"))


def test_yaml_1_1_float_strings_are_numbers(tmp_path: Path) -> None:
    r = load_recipe(_write(tmp_path, "corpus: {path: x}\ntraining: {lr: 1e-4}\n"))
    assert r.training.lr == 1e-4


def test_overrides_apply_before_validation(tmp_path: Path) -> None:
    p = _write(tmp_path, "corpus: {path: x}\n")
    r = load_recipe(p, ["model.hidden=64", "training.optimizer=sgd", "corpus.generate.minutes=5"])
    assert r.model.hidden == 64 and r.training.optimizer == "sgd" and r.corpus.generate.minutes == 5.0
    with pytest.raises(RecipeError, match=r"model.hiden: unknown key"):
        load_recipe(p, ["model.hiden=64"])
    with pytest.raises(RecipeError, match="expected key.path=value"):
        load_recipe(p, ["model.hidden"])


def test_unsafe_yaml_is_refused(tmp_path: Path) -> None:
    p = _write(tmp_path, "corpus: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(RecipeError, match="invalid YAML"):
        load_recipe(p)


def test_missing_file_and_round_trip(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "missing.yaml")
    import yaml

    r = recipe_from_dict({"corpus": {"path": "x"}, "model": {"hidden": 7}})
    again = recipe_from_dict(yaml.safe_load(dump_recipe(r)))
    assert again == r
