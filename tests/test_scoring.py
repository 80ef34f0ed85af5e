"""Tests of Levenshtein alignment, error counting and alignment display."""

from __future__ import annotations

import functools
import random
import sys
from collections.abc import Callable
from types import FrameType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_asr.scoring.levenshtein import ErrorCounts, align, format_alignment, score


def reference_distance(ref: tuple[str, ...], hyp: tuple[str, ...]) -> int:
    """Plain recursive edit distance, the definition itself."""

    @functools.cache
    def d(i: int, j: int) -> int:
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (ref[i - 1] != hyp[j - 1]))

    return d(len(ref), len(hyp))


def check_ops(ref: list[str], hyp: list[str], ops, counts: ErrorCounts) -> None:
    """The ops must spell out ref and hyp in order and agree with the counts."""
    assert [r for _, r, _ in ops if r is not None] == ref
    assert [h for _, _, h in ops if h is not None] == hyp
    for op, r, h in ops:
        assert (op == "C") == (r is not None and r == h)
        assert (op == "S") == (r is not None and h is not None and r != h)
        assert (op == "D") == (h is None) and (op == "I") == (r is None)
    assert counts.sub == sum(op == "S" for op, _, _ in ops)
    assert counts.dele == sum(op == "D" for op, _, _ in ops)
    assert counts.ins == sum(op == "I" for op, _, _ in ops)
    assert counts.ref_tokens == len(ref)


@pytest.mark.parametrize(
    ("ref", "hyp", "sdi"),
    [
        ("a b c", "a b c", (0, 0, 0)),
        ("a b c", "a x c", (1, 0, 0)),
        ("a b c", "a c", (0, 1, 0)),
        ("a b c", "a b b c", (0, 0, 1)),
        ("a b c d", "x a b c", (0, 1, 1)),  # shift: one insertion + one deletion beats 4 substitutions
        ("a b c", "", (0, 3, 0)),
        ("", "a b", (0, 0, 2)),
        ("sil dh ax k ae t sil", "sil ax k aa t t sil", (1, 1, 1)),
        ("a a a", "b", (1, 2, 0)),  # substitution preferred to deletion + insertion
    ],
)
def test_hand_computed(ref: str, hyp: str, sdi: tuple[int, int, int]) -> None:
    r, h = ref.split(), hyp.split()
    ops, counts = align(r, h)
    assert (counts.sub, counts.dele, counts.ins) == sdi
    check_ops(r, h, ops, counts)


def test_exact_alignment_and_tie_break() -> None:
    ops, _ = align("a b c".split(), "a x c".split())
    assert ops == [("C", "a", "a"), ("S", "b", "x"), ("C", "c", "c")]
    ops, _ = align(["a"], ["b"])
    assert ops == [("S", "a", "b")]  # not D + I
    ops, _ = align("a b".split(), "b".split())
    assert ops == [("D", "a", None), ("C", "b", "b")]
    # Equal-cost alternatives: the backtrace (from the end) takes the diagonal first.
    assert align(["a", "b"], ["c"])[0] == [("D", "a", None), ("S", "b", "c")]
    assert align(["c"], ["a", "b"])[0] == [("I", None, "a"), ("S", "c", "b")]
    # Deterministic: same input, same alignment.
    assert align("a b a b".split(), "b a b a".split()) == align("a b a b".split(), "b a b a".split())


def test_brute_force_random_strings() -> None:
    rng = random.Random(0)
    for _ in range(400):
        ref = [rng.choice("abc") for _ in range(rng.randint(0, 7))]
        hyp = [rng.choice("abcd") for _ in range(rng.randint(0, 7))]
        ops, counts = align(ref, hyp)
        assert counts.errors == reference_distance(tuple(ref), tuple(hyp)), (ref, hyp)
        check_ops(ref, hyp, ops, counts)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(["aa", "b", "sil"]), max_size=9), st.lists(st.sampled_from(["aa", "b", "x"]), max_size=9)
)
def test_property_edit_distance(ref: list[str], hyp: list[str]) -> None:
    ops, counts = align(ref, hyp)
    assert counts.errors == reference_distance(tuple(ref), tuple(hyp))
    check_ops(ref, hyp, ops, counts)


def test_long_sequences_take_python_steps_per_token_not_per_cell() -> None:
    """What keeps long alignments fast: the table is filled a numpy row per reference token (no Python loop over
    the hypothesis), and the backtrace takes one step per operation. Counted in Python lines run, not timed: a
    time bound fails on a busy machine and lets a slow loop through on a fast one."""
    rng = random.Random(1)
    ref = [rng.choice("abcdefgh") for _ in range(2000)]
    hyp = [rng.choice("abcdefgh") for _ in range(2000)]
    lines = 0

    def count_lines(frame: FrameType, event: str, arg: object) -> Callable:
        nonlocal lines
        lines += event == "line"
        return count_lines

    previous = sys.gettrace()
    sys.settrace(count_lines)
    try:
        ops, counts = align(ref, hyp)
    finally:
        sys.settrace(previous)
    # About 8 lines per token here; a loop over the 2000 x 2000 cells would run millions.
    assert lines < 50 * (len(ref) + len(hyp)), lines
    check_ops(ref, hyp, ops, counts)


def test_score_is_pooled_over_the_set() -> None:
    total = score([["a", "b", "c", "d"], ["a"]], [["a", "b", "c", "d"], ["b", "c"]])
    assert (total.ref_tokens, total.sub, total.dele, total.ins) == (5, 1, 0, 1)
    assert total.rate == pytest.approx(2 / 5)  # not the mean of per-utterance rates (0 and 2)
    with pytest.raises(ValueError):
        score([["a"]], [])


def test_error_counts_arithmetic() -> None:
    a = ErrorCounts(10, 1, 2, 3)
    b = ErrorCounts(5, 1, 0, 0)
    c = a + b
    assert c == ErrorCounts(15, 2, 2, 3) and a == ErrorCounts(10, 1, 2, 3)
    assert c.errors == 7 and c.rate == pytest.approx(7 / 15)
    a += b
    assert a == c
    assert ErrorCounts().rate == 0.0 and ErrorCounts(ins=2).rate == 0.0
    assert c.to_dict() == {"ref_tokens": 15, "sub": 2, "dele": 2, "ins": 3, "errors": 7, "rate": pytest.approx(7 / 15)}


def test_format_alignment_columns() -> None:
    text = format_alignment("sil dh ax k sil".split(), "sil ax k aa sil".split())
    lines = text.split("\n")
    assert len(lines) == 3
    assert [line.split(":")[0] for line in lines] == ["REF", "HYP", "EVAL"]
    assert lines[0].split()[1:] == ["sil", "dh", "ax", "k", "***", "sil"]
    assert lines[1].split()[1:] == ["sil", "***", "ax", "k", "aa", "sil"]
    assert lines[2].split()[1:] == ["D", "I"]
    # Every token starts in the same column on the REF and HYP lines.
    starts = [[i for i, ch in enumerate(line) if ch != " " and (i == 0 or line[i - 1] == " ")] for line in lines[:2]]
    assert starts[0] == starts[1]
    assert lines[2].index("D") == lines[0].index("dh") and lines[2].index("I") == lines[1].index("aa")
