"""Stage 3: the network -- recurrent cells, the stacked bidirectional model with its output head, frame-rate
reduction, and checkpoints (a model on disk)."""
