"""TIMIT phone inventories and the standard 61 -> 48 -> 39 foldings.

The tables come from ``resources/phones.60-48-39.map`` (Kaldi's file: one line per TIMIT symbol with its
48-class and 39-class targets; ``q`` has no target and is deleted). It is read once at import time so every
caller folds with the same table.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

_MAP_NAME = "phones.60-48-39.map"


def _load_map() -> tuple[tuple[str, ...], dict[str, str | None], dict[str, str | None]]:
    """Parse the map file into (symbols in file order, 61->48 table, 61->39 table); None means delete."""
    text = resources.files("data_prep").joinpath("resources", _MAP_NAME).read_text(encoding="utf-8")
    symbols: list[str] = []
    to48: dict[str, str | None] = {}
    to39: dict[str, str | None] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (1, 3):
            # A packaging error, not user input: fail loudly at import.
            raise RuntimeError(f"{_MAP_NAME}:{lineno}: expected 1 or 3 fields, got {len(fields)}")
        sym = fields[0]
        symbols.append(sym)
        to48[sym] = fields[1] if len(fields) == 3 else None
        to39[sym] = fields[2] if len(fields) == 3 else None
    return tuple(symbols), to48, to39


TIMIT_61, _TO_48, _TO_39 = _load_map()
"""The 61 TIMIT symbols in the map's order."""

TRAIN_PHONES: tuple[str, ...] = tuple(p for p in TIMIT_61 if p != "q")
"""The 60-symbol training label inventory: TIMIT_61 without the glottal stop ``q``."""

PHONES_48: tuple[str, ...] = tuple(sorted({p for p in _TO_48.values() if p is not None}))
"""The 48 intermediate classes, sorted."""

PHONES_39: tuple[str, ...] = tuple(sorted({p for p in _TO_39.values() if p is not None}))
"""The 39 scoring classes, sorted and unique."""

# Folding is idempotent on the folded sets so a hypothesis already in 39 (or 48) classes can be passed again
# without special casing; e.g. "cl"/"vcl"/"sil" are not TIMIT symbols but are legal inputs to fold_39.
_FOLD_39: dict[str, str | None] = {**{p: p for p in PHONES_48}, **{p: p for p in PHONES_39}, **_TO_39}
_FOLD_48: dict[str, str | None] = {**{p: p for p in PHONES_48}, **_TO_48}
_FOLD_39.update({p48: _TO_39[p61] for p61, p48 in _TO_48.items() if p48 is not None})


def _fold(phones: Sequence[str], table: dict[str, str | None], name: str) -> list[str]:
    out: list[str] = []
    for p in phones:
        try:
            target = table[p]
        except KeyError:
            raise ValueError(f"unknown phone symbol {p!r} (cannot fold to {name} classes)") from None
        if target is not None:
            out.append(target)
    return out


def fold_39(phones: Sequence[str]) -> list[str]:
    """Map TIMIT 61 (or 60/48) symbols to the 39 scoring classes; ``q`` is deleted.

    Raises ValueError for a symbol that is in none of the inventories.
    """
    return _fold(phones, _FOLD_39, "39")


def fold_48(phones: Sequence[str]) -> list[str]:
    """Map TIMIT 61 (or 60) symbols to the 48 classes; ``q`` is deleted.

    Raises ValueError for a symbol that is in none of the inventories.
    """
    return _fold(phones, _FOLD_48, "48")
