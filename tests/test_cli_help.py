"""``lstm-asr --help`` lists the commands in the order a user meets them along the pipeline."""

from __future__ import annotations

import re

from conftest import run_cli

from lstm_asr.cli import COMMAND_ORDER, app


def test_help_lists_commands_in_pipeline_order():
    done = run_cli("--help")
    assert done.returncode == 0
    listed = re.findall(r"^│ ([a-z]+) ", done.stdout, flags=re.M)
    assert listed[: len(COMMAND_ORDER)] == list(COMMAND_ORDER)
    assert listed[:4] == ["download", "synth", "corpus", "prep"]
    assert listed.index("train") < listed.index("decode") < listed.index("export")


def test_every_command_has_a_place_in_the_order():
    """A new command must be placed deliberately (it would otherwise drift to the end of the list)."""
    names = {c.name or c.callback.__name__ for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert names == set(COMMAND_ORDER)
