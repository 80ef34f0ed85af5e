"""The documentation site: generated references that cannot drift, a strict build, a short README."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from typing import Annotated

import pytest
import typer

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "docs"))
import gen_reference  # noqa: E402

from lstm_asr import cli, recipe  # noqa: E402

HAVE_MKDOCS = importlib.util.find_spec("mkdocs") is not None and importlib.util.find_spec("material") is not None
needs_mkdocs = pytest.mark.skipif(not HAVE_MKDOCS, reason="mkdocs and mkdocs-material are not installed "
                                                          "(pip install -e '.[docs]'; CI installs them)")


def test_reference_pages_match_the_code():
    stale = gen_reference.stale_pages()
    assert not stale, (f"{', '.join(p.name for p in stale)} differ from lstm_asr/recipe.py or lstm_asr/cli.py: "
                       "run PYTHONPATH=. python docs/gen_reference.py and commit docs/reference/")


def _schema_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        keys.append(key)
        sub = gen_reference._section_class(hints[f.name])
        if sub is not None:
            keys += _schema_keys(sub, key + ".")
    return keys


def test_recipe_reference_lists_every_key_with_its_comment_and_default():
    page = gen_reference.recipe_reference()
    for key in _schema_keys(recipe.Recipe):
        assert f"`{key}`" in page, key
    row = next(line for line in page.splitlines() if line.startswith("| `training.loss_reduction` |"))
    assert "`mean`" in row and "one of `mean`, `sum`" in row and "per-utterance SGD pace" in row  # comment above
    row = next(line for line in page.splitlines() if line.startswith("| `model.pred_embedding` |"))
    assert "`int`" in row and "`0`" in row and ">= 0" in row and "one-hot previous label" in row  # comment beside
    assert "| `augment.speed` | `list[float]` | `[1.0]` |" in page


def test_cli_reference_lists_every_command_and_option():
    page = gen_reference.cli_reference()
    root = typer.main.get_command(cli.app)
    for name in cli.COMMAND_ORDER:
        assert f"## `lstm-asr {name}`" in page, name
    decode = root.commands["decode"]
    for param in decode.params:
        if param.param_type_name == "option":
            assert f"`{param.opts[0]}`" in page, param.opts[0]
            assert param.help.split()[0] in page
    assert "| `--set` | text, repeatable |" in page
    assert "lstm-asr lm build [OPTIONS]" in page and "lstm-asr synth timit [OPTIONS] OUT" in page


def test_a_schema_change_makes_the_recipe_reference_stale(monkeypatch):
    monkeypatch.setitem(recipe.CHOICES, "training.schedule", (*recipe.CHOICES["training.schedule"], "warmup"))
    assert REPO / "docs" / "reference" / "recipe.md" in gen_reference.stale_pages()
    monkeypatch.undo()

    @dataclasses.dataclass
    class DecodingWithNewKey(recipe.DecodingSection):
        temperature: float = 1.0  # divides the log-probs before the search

    monkeypatch.setattr(recipe, "DecodingSection", DecodingWithNewKey)  # Recipe.decoding's annotation names it
    page = gen_reference.recipe_reference()
    assert "| `decoding.temperature` | `float` | `1.0` |  | divides the log-probs before the search |" in page
    assert REPO / "docs" / "reference" / "recipe.md" in gen_reference.stale_pages()


def test_a_cli_change_makes_the_cli_reference_stale(monkeypatch):
    changed = typer.Typer(cls=cli.PipelineOrder)
    changed.registered_commands = list(cli.app.registered_commands)
    changed.registered_groups = list(cli.app.registered_groups)

    @changed.command("tune")
    def tune(steps: Annotated[int, typer.Option(help="Steps to tune for.")] = 3) -> None:
        """Tune something new."""

    monkeypatch.setattr(cli, "app", changed)
    page = gen_reference.cli_reference()
    assert "## `lstm-asr tune`" in page and "| `--steps` | integer | `3` | Steps to tune for. |" in page
    assert REPO / "docs" / "reference" / "cli.md" in gen_reference.stale_pages()


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          capture_output=True, text=True, env=env, timeout=300)


@needs_mkdocs
def test_the_site_builds_strictly(tmp_path):
    done = _build(REPO / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    for page in ("index.html", "reference/recipe/index.html", "reference/cli/index.html", "results/index.html",
                 "architecture/index.html", "outputs/index.html"):
        assert (tmp_path / "site" / page).exists(), page
    assert "fonts.googleapis" not in (tmp_path / "site" / "index.html").read_text()


@needs_mkdocs
@pytest.mark.parametrize("damage", ["broken link", "missing anchor", "page not in nav", "stale reference"])
def test_the_strict_build_fails_on(tmp_path, damage):
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "docs", copy / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "mkdocs.yml", copy)
    shutil.copy(REPO / "ARCHITECTURE.md", copy)
    (copy / "bench").mkdir()
    shutil.copy(REPO / "bench" / "RESULTS.md", copy / "bench")
    page = copy / "docs" / "decoding.md"
    if damage == "broken link":
        page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    elif damage == "missing anchor":
        page.write_text(page.read_text() + "\nSee [there](papers.md#no-such-heading).\n")
    elif damage == "page not in nav":
        (copy / "docs" / "orphan.md").write_text("# Orphan\n")
    else:
        ref = copy / "docs" / "reference" / "recipe.md"
        ref.write_text(ref.read_text().replace("`training.lr`", "`training.learning_rate`"))
    done = _build(copy / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0, f"{damage}: the strict build passed"


def test_readme_is_short_and_starts_with_the_two_commands():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 160
    assert lines[0] == "# lstm-asr"
    assert "bash scripts/demo.sh" in lines[5] and "bash scripts/test.sh" in lines[6]


def test_readme_links_point_at_files_that_exist():
    text = (REPO / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert targets
    for target in targets:
        assert (REPO / target).exists(), target


def test_pictures_are_small_and_shown():
    pictures = sorted((REPO / "docs" / "img").glob("*.png"))
    assert {p.name for p in pictures} >= {"learning_curve.png", "confusion.png", "report_page.png", "live_page.png"}
    pages = "".join(p.read_text() for p in (REPO / "docs").glob("*.md"))
    for picture in pictures:
        assert picture.stat().st_size < 300_000, picture.name
        assert f"img/{picture.name}" in pages, picture.name


RESULTS_TOPICS = ("Speed", "Accuracy: ", "Corpora: ", "Decoding", "Streaming", "Export", "Cells and studies", "Memory",
                  "Comparisons with ")


def test_results_are_organised_by_topic_and_every_figure_has_its_command_date_and_machine():
    """bench/RESULTS.md: `##` sections are topics (in RESULTS_TOPICS' order), and every `###` section starts with
    the '> **Command:** ... · **Date:** ... · **Machine:** ...' line, or its `##` section does."""
    lines = (REPO / "bench" / "RESULTS.md").read_text().splitlines()

    def first_text_after(i: int) -> str:
        return next((line for line in lines[i + 1:] if line.strip()), "")

    def is_meta(line: str) -> bool:
        return line.startswith("> **Command:**") and "**Date:** 20" in line and "**Machine:**" in line

    order, topic_has_meta = [], False
    for i, line in enumerate(lines):
        if line.startswith("## "):
            title = line[3:]
            matches = [k for k, prefix in enumerate(RESULTS_TOPICS) if title.startswith(prefix)]
            assert matches, f"bench/RESULTS.md: '{title}' is not one of the topics {RESULTS_TOPICS}"
            order.append(matches[0])
            topic_has_meta = is_meta(first_text_after(i))
        elif line.startswith("### "):
            assert topic_has_meta or is_meta(first_text_after(i)), f"RESULTS.md: '{line}': no command/date/machine"
    assert order == sorted(order), "bench/RESULTS.md: topics out of order"
    assert set(order) == set(range(len(RESULTS_TOPICS)))
