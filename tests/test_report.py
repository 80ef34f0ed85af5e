"""``lstm-asr report``: a markdown table over several experiments, the paper's figure from recipe metadata."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from conftest import run_cli


def test_report_tables_two_experiments(trained_exp: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(trained_exp, other)
    recipe = yaml.safe_load((other / "recipe.yaml").read_text())
    recipe["metadata"] = {"paper_per": 18.6}
    (other / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    res = run_cli("report", str(trained_exp), str(other), "-o", str(tmp_path / "r.md"))
    assert res.returncode == 0, res.stderr
    table = (tmp_path / "r.md").read_text().splitlines()
    assert table[0].startswith("| recipe | parameters | epochs") and len(table) == 4
    results = json.loads((trained_exp / "results.json").read_text())
    assert f"{results['test']['per']:.2f}%" in table[2] and table[2].split("|")[7].strip() == "-"
    assert table[3].split("|")[7].strip() == "18.60%" and res.stdout.splitlines() == table
    missing = run_cli("report", str(tmp_path / "nope"))
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "results.json" in missing.stderr
