"""Names from recipes that become output folders cannot reach outside them through ``..`` or absolute paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli, write_recipe

from lstm_asr.errors import LstmAsrError, RecipeError
from lstm_asr.path_names import inside, name_problem
from lstm_asr.recipe import load_recipe

SAFE = ["run1", "timit/ctc_3l", "a.b", "x..y", "..hidden", "./run"]
UNSAFE = {"": "is empty", "..": "'..'", "../x": "'..'", "a/../../b": "'..'", "/etc/x": "absolute",
          "C:\\x": "absolute", "a\\..\\..\\b": "'..'", "a\nb": "control", ".": "folder itself", "./.": "folder itself"}


@pytest.mark.parametrize("name", SAFE)
def test_safe_names_stay_inside(tmp_path: Path, name: str) -> None:
    assert name_problem(name) is None
    target = inside(tmp_path, name, "recipe name").resolve()
    assert target.is_relative_to(tmp_path.resolve()) and target != tmp_path.resolve()


@pytest.mark.parametrize("name", sorted(UNSAFE))
def test_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    assert UNSAFE[name] in name_problem(name)
    with pytest.raises(LstmAsrError, match="must be a relative path inside"):
        inside(tmp_path, name, "recipe name")


@pytest.mark.parametrize(("key", "value"), [("name", "../../etc"), ("name", "/tmp/elsewhere"),
                                            ("corpus.dev_split", "../../outside"), ("corpus.train_split", ""),
                                            ("corpus.test_split", "/abs")])
def test_recipe_names_that_would_escape_are_refused(tmp_path: Path, key: str, value: str) -> None:
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "corpus", tmp_path / "feats")
    with pytest.raises(RecipeError) as err:
        load_recipe(recipe, [f"{key}={value}"])
    message = str(err.value)
    assert message.startswith(f"--set: {key}: ") or message.startswith(f"{recipe}: {key}: ")
    assert "must stay inside" in message and "\n" not in message


def test_name_taken_from_the_file_name_is_checked_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_recipe(tmp_path / "...yaml", tmp_path / "corpus", tmp_path / "feats")  # stem "..": exp/.. = cwd
    with pytest.raises(RecipeError, match=r"name: the name taken from the file name, '\.\.', contains '\.\.'"):
        load_recipe(Path("...yaml"))
    assert load_recipe(tmp_path / "...yaml").name == f"{tmp_path.name}_.."  # fine inside a folder: one component


def test_cli_train_refuses_an_escaping_experiment_name_before_writing(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    recipe = write_recipe(work / "evil.yaml", tmp_path / "corpus", work / "feats")
    recipe.write_text(recipe.read_text() + "name: ../../escaped\n")
    res = run_cli("train", str(recipe), cwd=work)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr == f"error: {recipe}: name: '../../escaped' contains '..': it names a folder that must stay " \
                         "inside the experiments or feature-store folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"] and sorted(p.name for p in work.iterdir()) == [
        "evil.yaml"]
