"""Output token inventories: blank at index 0, then the labels."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lstm_asr.errors import LstmAsrError

BLANK = "<blank>"


class TokenSet:
    """Maps label symbols to ids (blank = 0) and back. Stored with every model as a plain list."""

    def __init__(self, labels: Sequence[str]) -> None:
        if len(set(labels)) != len(labels):
            raise LstmAsrError("token list has duplicates")
        if BLANK in labels:
            raise LstmAsrError(f"{BLANK} is reserved for the CTC blank")
        self.symbols: list[str] = [BLANK, *labels]
        self._ids = {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._ids and symbol != BLANK

    def encode(self, symbols: Iterable[str]) -> list[int]:
        """Label ids of ``symbols``; an unknown symbol raises KeyError naming it."""
        try:
            return [self._ids[s] for s in symbols]
        except KeyError as exc:
            raise KeyError(f"symbol {exc.args[0]!r} is not in the token set") from None

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.symbols[i] for i in ids]


def unknown_symbols(refs: Iterable[Sequence[str]], tokens: Iterable[str]) -> dict:
    """The reference symbols outside an inventory (``tokens``, the blank aside): ``{"symbols": {symbol:
    occurrences}, "utterances": how many references hold one}``; empty symbols when there are none.

    Only dev and test references can hold them (prep keeps them there; the inventory comes from the training
    split): scored as they are, they are errors no model can avoid, and reports say so."""
    known = set(tokens) - {BLANK}
    counts: dict[str, int] = {}
    utterances = 0
    for ref in refs:
        bad = [s for s in ref if s not in known]
        utterances += bool(bad)
        for s in bad:
            counts[s] = counts.get(s, 0) + 1
    return {"symbols": dict(sorted(counts.items())), "utterances": utterances}


def describe_unknown(found: dict, what: str = "utterances") -> str:
    """One line about :func:`unknown_symbols`' result ("" when there are none)."""
    if not found["symbols"]:
        return ""
    n = found["utterances"]
    noun, verb = (what, "hold") if n != 1 else (what.rstrip("s"), "holds")
    return (f"{n} {noun} {verb} symbols outside the model's inventory "
            f"({' '.join(repr(s) for s in found['symbols'])}), scored as errors no model can avoid")
