"""``lstm-asr report EXP...``: one markdown table comparing finished experiments with the papers they reproduce, and
the table of each study folder (``lstm_asr/scoring/study_report.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from lstm_asr.errors import LstmAsrError
from lstm_asr.scoring.study_report import is_study, read_study, study_table

COLUMNS = ("recipe", "parameters", "epochs", "hours", "dev PER", "test PER", "paper PER", "scoring")


def experiment_row(exp: Path) -> dict[str, str]:
    """The table row of one experiment folder (``results.json`` and ``recipe.yaml``); one-line error if missing."""
    results_path, recipe_path = exp / "results.json", exp / "recipe.yaml"
    try:
        results: dict[str, Any] = json.loads(results_path.read_text())
        recipe = yaml.safe_load(recipe_path.read_text()) or {}
    except FileNotFoundError as exc:
        raise LstmAsrError(f"{exc.filename}: not found (is {exp} a finished experiment?)") from None
    except (json.JSONDecodeError, yaml.YAMLError, OSError) as exc:
        raise LstmAsrError(f"{exp}: unreadable results or recipe ({str(exc).splitlines()[0][:100]})") from None
    metric = results.get("metric", "PER")
    paper = (recipe.get("metadata") or {}).get("paper_per")
    return {
        "recipe": str(results.get("recipe") or recipe.get("name") or exp.name),
        "parameters": f"{results.get('parameters', 0) / 1e6:.2f}M",
        "epochs": str(results.get("epochs", "")),
        "hours": f"{results.get('train_minutes', 0.0) / 60:.2f}",
        "dev PER": f"{results['dev']['per']:.2f}%" + ("" if metric == "PER" else f" ({metric})"),
        "test PER": f"{results['test']['per']:.2f}%" + ("" if metric == "PER" else f" ({metric})"),
        "paper PER": f"{paper:.2f}%" if isinstance(paper, int | float) else "-",
        "scoring": str(results.get("scoring", "")),
    }


def report_table(exps: list[Path]) -> str:
    """A markdown table with one row per experiment; a study folder (``lstm-asr study``) gets its own table of
    settings (mean and spread over seeds, significance against the first setting) after it."""
    plain = [exp for exp in exps if not is_study(exp)]
    parts = []
    if plain:
        rows = [experiment_row(exp) for exp in plain]
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
        lines += ["| " + " | ".join(row[c].replace("|", "/") for c in COLUMNS) + " |" for row in rows]
        parts.append("\n".join(lines) + "\n")
    for exp in exps:
        if is_study(exp):
            summary = read_study(exp)
            parts.append(f"Study {exp}: `{summary.command}`\n\n{study_table(summary)}")
    return "\n".join(parts)
