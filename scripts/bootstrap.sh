#!/usr/bin/env bash
# Set up a fresh machine for lstm-asr: Debian's speech synthesizers and headless Chromium (which the test of the
# evaluate command's report.html renders it in) when run as root, and a .venv in the repo root
# with the project installed. Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: the browser test of lstm-asr serve (headless, fake microphone); libportaudio2: the microphone for
# decode --stream (the sounddevice package loads it).
APT_PACKAGES="festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts flite sox espeak-ng chromium libportaudio2"
missing=""
for bin in festival flite sox espeak-ng chromium; do command -v "$bin" >/dev/null 2>&1 || missing="$missing $bin"; done
[ -e /usr/lib/x86_64-linux-gnu/libportaudio.so.2 ] || ldconfig -p 2>/dev/null | grep -q libportaudio.so.2 || missing="$missing libportaudio2"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ]; then
    echo "== installing the speech synthesizers, the browser and PortAudio:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
  else
    echo "== the demo corpus needs Debian's synthesizers (missing:$missing); as root, run:"
    echo "   sudo apt-get update && sudo apt-get install -y --no-install-recommends $APT_PACKAGES"
  fi
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.lstm-asr-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "== installing lstm-asr and its dependencies into .venv (torch, torchaudio: about 2 minutes)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
  touch "$stamp"
fi
