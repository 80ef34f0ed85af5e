"""The sentence pool that the synthetic TIMIT-layout corpus is read from.

Source: the King James Version of the Bible (1611), as shipped by Debian's ``bible-kjv`` /
``bible-kjv-text`` packages (the "Bible Retrieval System" text by Chip Chapin; see that package's
``copyright`` file). The translation's copyright expired centuries ago: the text is in the public domain
(in the United Kingdom the Crown's letters patent still restrict printing of the KJV, which does not concern
a derived sentence list used as reading prompts elsewhere).

``resources/text_pool.txt`` holds one prompt per line: a sentence or clause of 5-14 words, ASCII letters,
apostrophes, spaces and basic punctuation only (no digits), deduplicated case-insensitively, in Bible order.
It was built once with :func:`build_pool` (which needs the ``bible`` program); loading it with
:func:`load_pool` does not.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from functools import lru_cache
from importlib import resources
from pathlib import Path

POOL_NAME = "text_pool.txt"
MIN_WORDS = 5
MAX_WORDS = 14
# Keeps the shipped file well under 1 MB while leaving far more sentences than a corpus needs.
MAX_SENTENCES = 14000

_ALLOWED = re.compile(r"^[A-Za-z' ,;:.?!]+$")
_VERSE = re.compile(r"^\s+\d+\s+(.*)$")


@lru_cache(maxsize=1)
def load_pool() -> tuple[str, ...]:
    """Return the shipped sentence pool, in file order (read once, then cached)."""
    text = resources.files("data_prep").joinpath("resources", POOL_NAME).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def normalise_words(sentence: str) -> list[str]:
    """The words of a prompt as TIMIT's ``.WRD`` files spell them: lower case, punctuation dropped."""
    words = []
    for tok in sentence.split():
        w = re.sub(r"[^a-z']", "", tok.lower()).strip("'")
        if w:
            words.append(w)
    return words


def _read_verses(bible_program: str = "bible") -> list[str]:
    """Every verse of the KJV as one line of text (the program wraps lines; undo that)."""
    out = subprocess.run(
        [bible_program, "-l10000", "Ge1:1-Re22:21"], check=True, capture_output=True, text=True
    ).stdout
    verses: list[str] = []
    for line in out.splitlines():
        m = _VERSE.match(line)
        if m:
            verses.append(m.group(1).strip())
        elif line.strip() and verses and not line.startswith(" ") and not re.match(r"^\S.* \d+$", line):
            # A wrapped continuation line (only when the width limit is hit).
            verses[-1] += " " + line.strip()
    return verses


def _clean(piece: str) -> str | None:
    """Tidy one candidate prompt; None when it must be dropped."""
    piece = piece.strip(" ,;:")
    if not piece or not _ALLOWED.match(piece):
        return None  # digits, brackets, hyphens: drop rather than guess how they are read
    # All-capital words ("LORD") can be spelled out letter by letter by a synthesiser: use title case.
    piece = " ".join(w.capitalize() if len(w) > 1 and w.isupper() else w for w in piece.split())
    n = len(piece.split())
    if not MIN_WORDS <= n <= MAX_WORDS:
        return None
    piece = piece[0].upper() + piece[1:]
    if piece[-1] not in ".?!":
        piece += "."
    return piece


def _split_long(text: str) -> list[str]:
    """Split a too-long sentence at ``;``/``:`` and then at commas into 5-14 word pieces."""
    if len(text.split()) <= MAX_WORDS:
        return [text]
    pieces: list[str] = []
    for clause in re.split(r"(?<=[;:])\s+", text):
        if len(clause.split()) <= MAX_WORDS:
            pieces.append(clause)
            continue
        # Greedy comma grouping: keep adding comma phrases while the group stays short enough.
        group = ""
        for phrase in re.split(r"(?<=,)\s+", clause):
            cand = f"{group} {phrase}".strip()
            if group and len(cand.split()) > MAX_WORDS:
                pieces.append(group)
                group = phrase
            else:
                group = cand
        if group:
            pieces.append(group)
    return pieces


def build_pool(out: Path | None = None, bible_program: str = "bible") -> list[str]:
    """Rebuild the pool from the ``bible`` program (Debian ``bible-kjv``) and write it to ``out``.

    A one-off maintenance step; the result is shipped as ``resources/text_pool.txt``.
    """
    seen: set[str] = set()
    pool: list[str] = []
    for verse in _read_verses(bible_program):
        for sentence in re.split(r"(?<=[.?!])\s+", verse):
            for piece in _split_long(sentence):
                cleaned = _clean(piece)
                if cleaned is None:
                    continue
                key = " ".join(normalise_words(cleaned))
                if key in seen:
                    continue
                seen.add(key)
                pool.append(cleaned)
    if len(pool) > MAX_SENTENCES:
        # A hash-ranked subset is stable across rebuilds and spread over the whole book; keep Bible order.
        ranked = sorted(pool, key=lambda s: hashlib.sha1(s.encode()).hexdigest())[:MAX_SENTENCES]
        keep = set(ranked)
        pool = [s for s in pool if s in keep]
    if out is not None:
        out.write_text("".join(s + "\n" for s in pool), encoding="utf-8")
    return pool


if __name__ == "__main__":
    target = Path(__file__).resolve().parent / "resources" / POOL_NAME
    sentences = build_pool(target)
    print(f"wrote {len(sentences)} sentences to {target}")
