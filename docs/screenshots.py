"""Make the site's pictures: train a tiny experiment, draw its curves, score it, and photograph its report page and
the live page in headless Chromium.

    PYTHONPATH=. .venv/bin/python docs/screenshots.py [--work /tmp/docs_shots] [--minutes 4]

Writes ``docs/img/learning_curve.png``, ``confusion.png``, ``report_page.png`` and ``live_page.png``. The experiment
is trained on the generated test corpus (``tests/fake_timit.py``: invented speakers, synthetic vowel-like phones), so
the figures show what the pages look like, not an accuracy worth quoting. Needs the ``plot`` and ``serve`` extras
and Chromium (``/usr/bin/chromium``; ``scripts/bootstrap.sh`` installs it when run as root).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMG = REPO / "docs" / "img"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def cli(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "lstm_asr", *args], cwd=cwd, check=True)


def chromium() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        sys.exit("docs/screenshots.py: Chromium not found (Debian: apt-get install chromium)")
    return found


def screenshot(url: str, out: Path, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
                        f"--window-size={width},{height}", "--virtual-time-budget=4000", url],
                       check=True, capture_output=True, timeout=120)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shrink(png: Path, width: int) -> None:
    """Scale a PNG down to ``width`` pixels and quantise it, so the committed pictures stay small."""
    from PIL import Image

    with Image.open(png) as im:
        im = im.convert("RGB")
        if im.width > width:
            im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
        im = im.quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        im.save(png, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lstm_asr_docs_shots")
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget of the tiny experiment")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    import yaml
    from fake_timit import make_fake_timit

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus"
    if not corpus.exists():
        make_fake_timit(corpus, n_train=8, n_dev=2, n_core=2, utts_per_speaker=6)
    recipe = work / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "docs_tiny",
        "corpus": {"path": str(corpus)},
        "features": {"store": str(work / "features")},
        "model": {"hidden": 48, "layers": 2},
        "training": {"lr": 0.02, "max_epochs": 40, "max_frames": 100000, "max_batch": 2, "patience": 40,
                     "log_every": 4, "threads": 1, "max_minutes": args.minutes},
    }))
    exp = work / "exp" / "docs_tiny"
    if not (exp / "results.json").exists():
        cli("train", str(recipe), "--out", str(exp), cwd=work)
    IMG.mkdir(parents=True, exist_ok=True)
    cli("plot", str(exp), "-o", str(IMG / "learning_curve.png"), "--steps", cwd=work)
    cli("evaluate", str(exp), "--split", "test", cwd=work)
    decoded = exp / "decode_test"
    shutil.copyfile(decoded / "confusion.png", IMG / "confusion.png")
    screenshot((decoded / "report.html").as_uri(), IMG / "report_page.png", 1200, 1400)

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "lstm_asr", "serve", str(exp), "--port", str(port)], cwd=work)
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(120):
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                time.sleep(0.5)
        screenshot(url, IMG / "live_page.png", 1100, 800)
    finally:
        server.terminate()
        server.wait(timeout=30)
    for name, width in (("learning_curve", 900), ("confusion", 900), ("report_page", 1000), ("live_page", 1000)):
        shrink(IMG / f"{name}.png", width)
        print(f"{name}.png: {(IMG / f'{name}.png').stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
