"""Make the site's pictures: train a tiny experiment, draw its curves, score it, and photograph its report page and
the live page in headless Chromium.

    PYTHONPATH=. .venv/bin/python docs/screenshots.py [--work /tmp/docs_shots] [--minutes 2]

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


def live_page(exp: Path, wav: Path, out: Path, work: Path) -> None:
    """The page of ``lstm-asr serve`` after it recognised ``wav`` played by Chromium's fake microphone (the same
    driver as ``tests/test_serve.py``), photographed through the DevTools protocol."""
    import base64

    from browser import Chromium

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "lstm_asr", "serve", str(exp), "--port", str(port)], cwd=work)
    browser = None
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                time.sleep(0.5)
        profile = Path(tempfile.mkdtemp(prefix="chromium_profile_"))
        browser = Chromium(profile, fake_audio=wav)
        browser.call("Emulation.setDeviceMetricsOverride", browser.session, width=1100, height=520,
                     deviceScaleFactor=1, mobile=False)
        seconds = round(float(subprocess.check_output(
            [sys.executable, "-c", f"import soundfile; print(soundfile.info({str(wav)!r}).duration)"])) + 0.8, 1)
        browser.goto(f"{url}?record={seconds}")
        browser.wait_for("window.lstmAsr && (window.lstmAsr.done || window.lstmAsr.error)", timeout=120)
        time.sleep(1.0)
        shot = browser.call("Page.captureScreenshot", browser.session, format="png")
        out.write_bytes(base64.b64decode(shot["data"]))
        print(f"wrote {out}")
    finally:
        if browser is not None:
            browser.close()
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lstm_asr_docs_shots")
    parser.add_argument("--minutes", type=float, default=2.0, help="training budget of each tiny experiment")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    import soundfile
    import yaml
    from fake_timit import make_fake_timit

    from data_prep.audio import load_audio

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
    # Two experiments: one trained until it stops learning (its curves, and the live page), one stopped after 3
    # epochs so that its report and confusion matrix still have errors to show.
    full, early = work / "exp" / "docs_tiny", work / "exp" / "docs_tiny_3_epochs"
    for exp, extra in ((full, []), (early, ["--set", "training.max_epochs=3"])):
        if not (exp / "results.json").exists():
            cli("train", str(recipe), "--out", str(exp), *extra, cwd=work)
    IMG.mkdir(parents=True, exist_ok=True)
    cli("plot", str(full), str(early), "-o", str(IMG / "learning_curve.png"), "--steps", cwd=work)
    cli("evaluate", str(early), "--split", "test", cwd=work)
    decoded = early / "decode_test"
    shutil.copyfile(decoded / "confusion.png", IMG / "confusion.png")
    screenshot((decoded / "report.html").as_uri(), IMG / "report_page.png", 1200, 2000)

    utterance = sorted((corpus / "TEST").rglob("S[IX]*.WAV"))[0]
    wav = work / "live.wav"
    soundfile.write(wav, load_audio(utterance).numpy(), 16000, subtype="PCM_16")
    live_page(full, wav, IMG / "live_page.png", work)
    for name, width in (("learning_curve", 900), ("confusion", 700), ("report_page", 1000), ("live_page", 1000)):
        shrink(IMG / f"{name}.png", width)
        print(f"{name}.png: {(IMG / f'{name}.png').stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
