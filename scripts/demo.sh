#!/usr/bin/env bash
# The README's first command: set everything up, generate the demo corpus, train the demo recipe, decode one wav
# and print the test PER. Takes under 20 minutes on 2 cores from a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
RECIPE=recipes/synth_timit/demo.yaml
EXP=exp/synth_timit_demo
echo "== training $RECIPE (generates data/synth_timit/corpus on first use)"
lstm-asr train "$RECIPE" --out "$EXP"
wavs=(data/synth_timit/corpus/TEST/DR*/*/SX*.WAV)  # a glob, not ls | head: SIGPIPE under pipefail
WAV=${wavs[0]}
echo "== decoding a held-out test talker's utterance: $WAV"
lstm-asr decode --model "$EXP" "$WAV"
echo "   reference: $(cut -d' ' -f3 "${WAV%.WAV}.PHN" | tr '\n' ' ')"
echo "== scoring the core test set"
lstm-asr evaluate "$EXP" --split test
