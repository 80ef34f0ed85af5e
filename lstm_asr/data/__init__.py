"""Stage 2: features and the feature store -- raw inputs from ``data_prep`` become stored feature and label
sequences (prep, shards), read back in length-bucketed batches; filterbanks for speech, per-point features for ink."""
