"""``python -m lstm_asr`` runs the command line (also what ``torchrun -m lstm_asr`` starts)."""

from lstm_asr.cli import main

main()
