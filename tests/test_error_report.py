"""The error analysis evaluate writes: the confusion matrix adds up to the S/D/I counts, per-class rates add up to
the whole, and report.html renders in a real browser (headless Chromium): screenshot checked for the colour-coded
S/D/I marks and the heatmap, the embedded audio decoded by the browser."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lstm_asr.scoring.confusion import DEL, INS, PHONE_CLASSES, class_rates, confusions, is_phone_set
from lstm_asr.scoring.html_report import COLOURS, write_report
from lstm_asr.scoring.levenshtein import score

PHONES = [p for phones in PHONE_CLASSES.values() for p in phones]


def _random_pairs(n: int, seed: int = 0) -> tuple[list[list[str]], list[list[str]]]:
    rng = np.random.default_rng(seed)
    refs, hyps = [], []
    for _ in range(n):
        ref = list(rng.choice(PHONES, size=int(rng.integers(1, 12))))
        hyp = [p if rng.random() < 0.7 else str(rng.choice(PHONES)) for p in ref if rng.random() < 0.85]
        hyp[int(rng.integers(0, len(hyp) + 1)):0] = list(rng.choice(PHONES, size=int(rng.integers(0, 3))))
        refs.append(ref)
        hyps.append(hyp)
    return refs, hyps


def test_confusion_matrix_adds_up_to_the_error_counts() -> None:
    refs, hyps = _random_pairs(200)
    conf = confusions(refs, hyps)
    total = score(refs, hyps)
    m = conf.counts
    k = len(conf.symbols)
    assert conf.rows[-1] == INS and conf.cols[-1] == DEL
    ref_counts = {s: sum(r.count(s) for r in refs) for s in conf.symbols}
    assert m[:k].sum(axis=1).tolist() == [ref_counts[s] for s in conf.symbols]  # rows: every reference token
    assert m[:k, k].sum() == total.dele and m[k, :k].sum() == total.ins
    assert m[:k, :k].sum() - np.trace(m[:k, :k]) == total.sub
    classes = class_rates(conf)
    assert sum(c["ref_tokens"] for c in classes.values()) == total.ref_tokens
    assert sum(c["sub"] + c["dele"] + c["ins"] for c in classes.values()) == total.errors
    assert is_phone_set(conf.symbols) and not is_phone_set(["a", "b"])


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)


def _colour_pixels(png: Path, hex_colour: str) -> int:
    from PIL import Image

    rgb = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    want = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb.astype(int) - want).max(axis=1) <= 2).sum())


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/bootstrap.sh installs it as root)")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("PIL")
    refs = [["sil", "dh", "ah", "k", "ae", "t", "sil"], ["sil", "s", "iy", "sil"]]
    hyps = [["sil", "dh", "ih", "ae", "t", "sil"], ["sil", "s", "iy", "n", "sil"]]  # S, D; I
    conf = confusions(refs, hyps)
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * math.pi * 300 * t)).astype(np.float32)
    out = write_report(tmp_path / "report.html", title="test report", ids=["u1", "u2"], speakers=["s1", "s2"],
                       refs=refs, hyps=hyps, counts=score(refs, hyps), metric="PER", conf=conf,
                       classes=class_rates(conf), audio=lambda i: (tone, 16000))
    shot = tmp_path / "shot.png"
    done = _chromium(["--window-size=1000,3000", "--hide-scrollbars", f"--screenshot={shot}", out.as_uri()],
                     tmp_path / "profile1")
    assert shot.is_file(), done.stderr[-2000:]
    # Each kind of error is drawn in its colour (solid backgrounds of at least a glyph's size).
    for op, colour in COLOURS.items():
        assert _colour_pixels(shot, colour) > 100, f"no {op} marks ({colour}) in the screenshot"
    # The heatmap: viridis' darkest (empty cells) and brightest (a row that is all correct) colours are on screen.
    assert _colour_pixels(shot, "#440154") > 1000 and _colour_pixels(shot, "#fde725") > 100
    # The browser decodes the embedded audio: a probe page loads the report and reports the first player's duration.
    probe = tmp_path / "probe.html"
    probe.write_text(out.read_text().replace("</body>", """<script>
      const a = document.querySelector('audio'); a.preload = 'auto';
      a.addEventListener('loadedmetadata', () => { document.title = 'duration=' + a.duration.toFixed(2); });
      a.addEventListener('error', () => { document.title = 'audio error'; }); a.load();
    </script></body>"""))
    dom = _chromium(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path / "profile2").stdout
    found = re.search(r"<title>duration=([0-9.]+)</title>", dom)
    assert found and abs(float(found.group(1)) - 1.0) < 0.1, dom[:300]  # Vorbis pads a few ms
    assert dom.count("<audio") == 2 and dom.count('class="tok S"') == 1 and dom.count('class="tok D"') == 1
    assert dom.count('class="tok I"') == 1 and "<svg" in dom
