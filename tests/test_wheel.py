"""The wheel installs and runs on its own: ``python -m build`` makes a wheel holding every file of the packages
(the serving page's static files, the reference data in data_prep/resources), and a fresh virtual environment with
only that wheel (and the already-installed dependencies) runs ``lstm-asr --help`` and decodes from outside the
repository, where the checkout's sources cannot be imported."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import run_cli
from streaming_models import make_model, write_checkpoint, write_speech_like_wav

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lstm_asr", "data_prep")


def _package_files() -> set[str]:
    """Every file of the packages in the checkout (caches left out), as paths inside the wheel."""
    return {p.relative_to(ROOT).as_posix() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("build")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy, so that the build's egg-info and build/ folders stay out of the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # --no-isolation: setuptools from this environment, nothing fetched.
    done = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp / "dist"),
                           str(src)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (whl,) = (tmp / "dist").glob("lstm_asr-*.whl")
    return whl


def test_wheel_holds_every_package_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert _package_files() <= names, sorted(_package_files() - names)
    for needed in ("lstm_asr/serving/static/index.html", "data_prep/resources/phones.60-48-39.map",
                   "data_prep/resources/text_pool.txt"):
        assert needed in names
    assert any(n.endswith("entry_points.txt") for n in names)


def test_wheel_installs_in_a_fresh_venv_and_decodes(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # torch and the other dependencies from this interpreter's site-packages (a path line: its own .pth files, such
    # as an editable install of the checkout, are not processed), after the venv's own.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                           "--disable-pip-version-check", "-q", str(wheel)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    work = tmp_path / "elsewhere"  # not the checkout: its sources are not on sys.path
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    where = subprocess.run([str(py), "-c", "import lstm_asr, data_prep; print(lstm_asr.__file__, data_prep.__file__)"],
                           capture_output=True, text=True, cwd=work, env=env, check=True).stdout
    assert str(ROOT) not in where and str(site) in where
    lstm_asr_exe = str(venv / "bin" / "lstm-asr")
    helped = subprocess.run([lstm_asr_exe, "--help"], capture_output=True, text=True, cwd=work, env=env, timeout=120)
    assert helped.returncode == 0 and "decode" in helped.stdout, helped.stderr
    exp = write_checkpoint(make_model(stack_frames=3, subsample=3), work / "exp")
    wav = write_speech_like_wav(work / "utt.wav", seconds=1.0, seed=2)
    got = subprocess.run([lstm_asr_exe, "decode", "--model", str(exp), "--json", str(wav)], capture_output=True,
                         text=True, cwd=work, env=env, timeout=300)
    assert got.returncode == 0, got.stderr
    assert got.stdout == run_cli("decode", "--model", str(exp), "--json", str(wav)).stdout
    # The package data read at run time: the TIMIT phone map and speaker lists, the sentence pool, the page.
    data = subprocess.run([str(py), "-c", "from data_prep import phones, text_pool, timit; "
                           "from lstm_asr.serving.server import _static_text; "
                           "print(len(text_pool.load_pool()) > 0, len(timit.DEV_SPEAKERS) > 0, "
                           "'<html' in _static_text('index.html').lower())"],
                          capture_output=True, text=True, cwd=work, env=env, timeout=120)
    assert data.returncode == 0 and data.stdout.split() == ["True", "True", "True"], data.stderr[-2000:]
